//! Hop safety: every cache node adds itself to `Via` (RFC 9110 section 7.6.3) and to
//! `CDN-Loop` (RFC 8586) on what it forwards, and refuses a request that has already passed
//! through it, so that a misconfigured pair of nodes pointing at each other answers 508
//! instead of looping.

use strata_contracts::config::edge::{is_tchar, is_token};

/// Our CDN's identifier in `CDN-Loop`; each node is told apart by its `node` parameter.
pub const CDN_ID: &str = "strata";

/// More Strata hops than any sane hierarchy has (edge, mid-tier, maybe a second shield).
pub const MAX_HOPS: usize = 8;

/// Why a request is refused before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopVerdict {
    /// Forward it.
    Forward,
    /// It already passed through this node.
    Loop,
    /// It passed through too many Strata nodes.
    TooManyHops(usize),
}

/// The `CDN-Loop` member this node appends.
pub fn cdn_loop_entry(node_id: &str) -> String {
    format!("{CDN_ID}; node={node_id}")
}

/// The `Via` member this node appends, for a message of `version` (`1.1`, `2`).
pub fn via_entry(version: &str, node_id: &str) -> String {
    format!("{version} {node_id} ({CDN_ID})")
}

/// Judges a request by its `CDN-Loop` field values.
pub fn judge<'a>(cdn_loop_values: impl IntoIterator<Item = &'a str>, node_id: &str) -> LoopVerdict {
    let mut hops = 0;
    for value in cdn_loop_values {
        for member in split_outside_quotes(value, ',') {
            let mut parts = split_outside_quotes(member, ';').into_iter().map(str::trim);
            if !parts.next().is_some_and(|id| id.eq_ignore_ascii_case(CDN_ID)) {
                continue;
            }
            hops += 1;
            let ours = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("node") && v.trim().trim_matches('"') == node_id
                })
            });
            if ours {
                return LoopVerdict::Loop;
            }
        }
    }
    if hops >= MAX_HOPS {
        LoopVerdict::TooManyHops(hops)
    } else {
        LoopVerdict::Forward
    }
}

/// Splits on `sep` where it is not inside a quoted string.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The node id used when the config leaves it empty: the host name and the listen address,
/// made into a token (two nodes on one machine differ by address or port).
pub fn default_node_id(hostname: &str, listen: std::net::SocketAddr) -> String {
    let raw = format!("{}-{}-{}", hostname.trim(), listen.ip(), listen.port());
    let id: String = raw
        .chars()
        .map(|c| if c.is_ascii() && is_tchar(c as u8) { c } else { '-' })
        .collect();
    if is_token(&id) {
        id
    } else {
        format!("{CDN_ID}-{}", listen.port())
    }
}

/// This machine's host name, or `strata` when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| CDN_ID.to_string())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_request_that_passed_through_us_is_a_loop() {
        assert_eq!(judge([], "mid-a"), LoopVerdict::Forward);
        assert_eq!(
            judge(["strata; node=edge-1, strata; node=mid-b"], "mid-a"),
            LoopVerdict::Forward
        );
        assert_eq!(
            judge(["other-cdn", "strata; node=mid-a, strata; node=mid-b"], "mid-a"),
            LoopVerdict::Loop
        );
        assert_eq!(judge(["Strata;node=\"mid-a\""], "mid-a"), LoopVerdict::Loop);
        // Another CDN's member with a node parameter of the same value is not us.
        assert_eq!(judge(["fastcdn; node=mid-a"], "mid-a"), LoopVerdict::Forward);
        // A comma inside a quoted parameter does not split members.
        assert_eq!(
            judge(["other; note=\"a, strata; node=mid-a\""], "mid-a"),
            LoopVerdict::Forward
        );
    }

    #[test]
    fn too_many_strata_hops_is_refused() {
        let chain: Vec<String> = (0..MAX_HOPS).map(|i| cdn_loop_entry(&format!("n{i}"))).collect();
        let value = chain.join(", ");
        assert_eq!(judge([value.as_str()], "me"), LoopVerdict::TooManyHops(MAX_HOPS));
    }

    #[test]
    fn entries_and_default_ids_are_well_formed() {
        assert_eq!(cdn_loop_entry("edge-1"), "strata; node=edge-1");
        assert_eq!(via_entry("1.1", "edge-1"), "1.1 edge-1 (strata)");
        let id = default_node_id("box 1", "127.0.0.2:8082".parse().unwrap());
        assert_eq!(id, "box-1-127.0.0.2-8082");
        assert!(is_token(&default_node_id("h", "[::1]:80".parse().unwrap())));
    }
}
