//! The cache key: host + path + the query parameters that select content.
//!
//! Players decorate segment URLs with parameters that do not change the bytes: CMCD
//! (CTA-5004) on every request, and playback tokens. A key that kept them would never hit,
//! so they are always dropped; the operator can drop more, or keep only an allow-list.

/// Query parameters that never enter the key.
pub const ALWAYS_IGNORED: [&str; 2] = ["CMCD", "token"];

/// How query parameters enter the key.
#[derive(Debug, Clone, Default)]
pub struct KeyRules {
    /// Also left out, beside [`ALWAYS_IGNORED`].
    pub ignore: Vec<String>,
    /// When non-empty, only these are kept.
    pub only: Vec<String>,
    /// When set, the host of every key, instead of the request's.
    pub host: Option<String>,
}

impl KeyRules {
    fn keeps(&self, name: &str) -> bool {
        if ALWAYS_IGNORED.contains(&name) {
            return false;
        }
        if !self.only.is_empty() {
            return self.only.iter().any(|p| p == name);
        }
        !self.ignore.iter().any(|p| p == name)
    }
}

/// The primary key for a request: lower-cased host without port, the path as sent, and the
/// kept query parameters sorted by name (so their order in the URL does not matter).
pub fn primary_key(host: &str, path: &str, query: Option<&str>, rules: &KeyRules) -> String {
    let host = rules
        .host
        .as_deref()
        .unwrap_or_else(|| strip_port(host))
        .to_ascii_lowercase();
    let mut params: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| rules.keeps(p.split_once('=').map_or(*p, |(name, _)| name)))
        .collect();
    params.sort_by(|a, b| {
        let name = |p: &str| p.split_once('=').map_or(p, |(n, _)| n).to_string();
        name(a).cmp(&name(b))
    });
    let mut key = String::with_capacity(host.len() + path.len() + 16);
    key.push_str(&host);
    key.push_str(path);
    if !params.is_empty() {
        key.push('?');
        key.push_str(&params.join("&"));
    }
    key
}

/// What separates a primary key from a slice's byte range in the slice's key. A space never
/// occurs in a request target, so no URL's key can look like a slice's.
pub const SLICE_MARK: &str = " slice=";

/// The key of the slice holding bytes `first..=last` of the object keyed `primary`. The
/// range is in the key (not the slice's number), so a change of slice size never mixes
/// slices cut at different boundaries.
pub fn slice_key(primary: &str, first: u64, last: u64) -> String {
    format!("{primary}{SLICE_MARK}{first}-{last}")
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host.split_once(']').map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod test {
    use super::*;

    fn key(url_query: Option<&str>, rules: &KeyRules) -> String {
        primary_key("Edge.Example:8081", "/t/seg-1.m4s", url_query, rules)
    }

    #[test]
    fn cmcd_and_token_never_enter_the_key() {
        let r = KeyRules::default();
        let plain = key(None, &r);
        assert_eq!(plain, "edge.example/t/seg-1.m4s");
        assert_eq!(key(Some("CMCD=br%3D3200%2Cbs%2Cd%3D4004"), &r), plain);
        assert_eq!(key(Some("token=abc&CMCD=sid%3D%22x%22"), &r), plain);
    }

    #[test]
    fn other_parameters_are_kept_in_name_order() {
        let r = KeyRules::default();
        assert_eq!(key(Some("v=2&a=1"), &r), "edge.example/t/seg-1.m4s?a=1&v=2");
        assert_eq!(key(Some("a=1&v=2"), &r), key(Some("v=2&a=1"), &r));
        assert_ne!(key(Some("v=2"), &r), key(Some("v=3"), &r));
    }

    #[test]
    fn configured_ignores_and_allow_list() {
        let ignore = KeyRules {
            ignore: vec!["session".into()],
            only: vec![],
            host: None,
        };
        assert_eq!(
            key(Some("session=9&v=2"), &ignore),
            "edge.example/t/seg-1.m4s?v=2"
        );
        let only = KeyRules {
            ignore: vec![],
            only: vec!["v".into()],
            host: None,
        };
        assert_eq!(key(Some("x=1&v=2&y"), &only), "edge.example/t/seg-1.m4s?v=2");
        let only_token = KeyRules {
            ignore: vec![],
            only: vec!["token".into()],
            host: None,
        };
        assert_eq!(
            key(Some("token=1"), &only_token),
            "edge.example/t/seg-1.m4s",
            "token is never kept"
        );
    }

    #[test]
    fn host_case_and_port_do_not_split_the_cache() {
        let r = KeyRules::default();
        assert_eq!(
            primary_key("EDGE.example", "/a", None, &r),
            primary_key("edge.example:80", "/a", None, &r)
        );
        assert_eq!(primary_key("[::1]:8081", "/a", None, &r), "[::1]/a");
        let fixed = KeyRules {
            host: Some("video.cdn.example".into()),
            ..KeyRules::default()
        };
        assert_eq!(
            primary_key("lon-1.edges.example:8081", "/a", None, &fixed),
            "video.cdn.example/a"
        );
        assert_eq!(
            primary_key("127.0.0.3", "/a", None, &fixed),
            "video.cdn.example/a"
        );
    }
}
