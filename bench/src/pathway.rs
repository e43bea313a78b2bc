//! A viewer's Content Steering client (HLS Content Steering, DASH-IF CTS 001) as plain code
//! over a clock it is given: which pathway to fetch from, its URLs, when to ask the steering
//! server again and with what, and what to do when a pathway fails. The network shell in
//! `loadgen` fetches; this decides.

use crate::presentation::SteeringTag;
use std::collections::BTreeMap;
use strata_contracts::api::steering::{PathwayClone, SteeringManifest, UriReplacement};

/// How long a pathway that failed a request is avoided, seconds (players keep a failed
/// pathway out for a while rather than for the whole session).
pub const PENALTY_S: f64 = 30.0;

/// How long to wait before asking again after the steering server failed, when it never gave a
/// TTL (the spec's default TTL).
pub const DEFAULT_RETRY_S: f64 = 300.0;

/// One session's steering state.
#[derive(Debug, Clone)]
pub struct SteeringClient {
    /// Where to ask next (`SERVER-URI`, then each answer's `RELOAD-URI`).
    next_url: String,
    /// When to ask next, session seconds.
    reload_at: f64,
    ttl_s: f64,
    priority: Vec<String>,
    clones: BTreeMap<String, PathwayClone>,
    penalties: BTreeMap<String, f64>,
    current: String,
    /// The server answered 410 Gone: no more steering this session.
    gone: bool,
}

impl SteeringClient {
    /// A session that starts on `initial` and asks `tag`'s server before its first segment.
    pub fn new(tag: &SteeringTag, initial: &str) -> Self {
        Self {
            next_url: tag.server_uri.clone(),
            reload_at: 0.0,
            ttl_s: DEFAULT_RETRY_S,
            priority: Vec::new(),
            clones: BTreeMap::new(),
            penalties: BTreeMap::new(),
            current: initial.to_string(),
            gone: false,
        }
    }

    /// The pathway fetched from now.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// The steering request to send at `now`, if one is due: the next URL with the player's
    /// current pathway and throughput (`_HLS_pathway`/`_HLS_throughput`, or the `_DASH_` pair
    /// with the pathway quoted, as DASH-IF CTS writes it).
    pub fn due(&self, now: f64, dash: bool, throughput_bps: Option<f64>) -> Option<String> {
        if self.gone || now < self.reload_at {
            return None;
        }
        let Ok(mut url) = reqwest::Url::parse(&self.next_url) else {
            return Some(self.next_url.clone());
        };
        let (pathway, throughput) = if dash {
            ("_DASH_pathway", "_DASH_throughput")
        } else {
            ("_HLS_pathway", "_HLS_throughput")
        };
        let keep: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != pathway && k != throughput)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        {
            let mut q = url.query_pairs_mut();
            q.clear().extend_pairs(keep);
            if dash {
                q.append_pair(pathway, &format!("\"{}\"", self.current));
            } else {
                q.append_pair(pathway, &self.current);
            }
            if let Some(bps) = throughput_bps {
                q.append_pair(throughput, &format!("{}", bps.round() as u64));
            }
        }
        Some(url.to_string())
    }

    /// The server's answer to a request sent to `from` at `now`. A manifest of another version,
    /// or with no pathway, is refused (kept as before) and asked again after its TTL.
    pub fn answered(&mut self, from: &str, manifest: &SteeringManifest, now: f64) -> Result<(), String> {
        self.ttl_s = if manifest.ttl > 0 {
            manifest.ttl as f64
        } else {
            DEFAULT_RETRY_S
        };
        self.reload_at = now + self.ttl_s;
        if manifest.version != 1 {
            return Err(format!("steering manifest VERSION {}, not 1", manifest.version));
        }
        if manifest.pathway_priority.is_empty() {
            return Err("steering manifest without PATHWAY-PRIORITY".into());
        }
        if !manifest.reload_uri.is_empty() {
            // RELOAD-URI is relative to the steering manifest's own URL.
            if let Ok(next) = reqwest::Url::parse(from).and_then(|b| b.join(&manifest.reload_uri)) {
                self.next_url = next.to_string();
            }
        }
        self.priority = manifest.pathway_priority.clone();
        self.clones = manifest
            .pathway_clones
            .iter()
            .map(|c| (c.id.clone(), c.clone()))
            .collect();
        Ok(())
    }

    /// The steering server did not answer, or not with a manifest, at `now`: keep the last
    /// priority and ask again after the TTL; `410 Gone` ends steering for the session.
    pub fn failed(&mut self, now: f64, status: Option<u16>) {
        if status == Some(410) {
            self.gone = true;
        }
        self.reload_at = now + self.ttl_s;
    }

    /// A request on `pathway` failed at `now`: avoid it for `PENALTY_S`.
    pub fn penalize(&mut self, pathway: &str, now: f64) {
        self.penalties.insert(pathway.to_string(), now + PENALTY_S);
    }

    /// Picks the pathway to fetch from at `now`: the first of the priority that is not
    /// penalized and can be played (one the manifest names, in `known`, or a clone of one);
    /// before any answer, or when every candidate is penalized, the current one unless it is
    /// penalized itself, then the one whose penalty ends first. Returns whether it changed.
    pub fn choose(&mut self, known: &[String], now: f64) -> bool {
        let playable =
            |p: &String| known.contains(p) || self.clones.get(p).is_some_and(|c| known.contains(&c.base_id));
        let ok = |p: &String| self.penalties.get(p).is_none_or(|until| *until <= now);
        let mut candidates: Vec<&String> = self.priority.iter().filter(|p| playable(p)).collect();
        if candidates.is_empty() {
            candidates = known.iter().collect();
        }
        let chosen = candidates
            .iter()
            .find(|p| ok(p))
            .or_else(|| {
                candidates
                    .iter()
                    .min_by(|a, b| self.penalties[a.as_str()].total_cmp(&self.penalties[b.as_str()]))
            })
            .map(|p| p.to_string());
        match chosen {
            Some(p) if p != self.current => {
                self.current = p;
                true
            }
            _ => false,
        }
    }

    /// The manifest pathway the current one stands on, and the replacement that turns that
    /// pathway's URLs into the current one's (`None` for a manifest pathway).
    pub fn base(&self) -> (&str, Option<&UriReplacement>) {
        match self.clones.get(&self.current) {
            Some(c) => (&c.base_id, Some(&c.uri_replacement)),
            None => (&self.current, None),
        }
    }
}

/// `url` with a clone's `URI-REPLACEMENT`: `HOST` replaces the host (and, when it carries a
/// scheme as dash.js accepts, the scheme and port too); `PARAMS` are set as query parameters.
pub fn replace_uri(url: &str, r: &UriReplacement) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    if let Some(host) = &r.host {
        match reqwest::Url::parse(host) {
            Ok(with_scheme) if host.contains("://") => {
                let _ = u.set_scheme(with_scheme.scheme());
                let _ = u.set_host(with_scheme.host_str());
                let _ = u.set_port(with_scheme.port());
            }
            _ => {
                let _ = u.set_host(Some(host));
            }
        }
    }
    if let Some(params) = &r.params {
        let keep: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| !params.contains_key(k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(keep)
            .extend_pairs(params);
    }
    u.to_string()
}

#[cfg(test)]
mod test {
    use super::*;

    /// A clone: base, id, `HOST`, one `PARAMS` pair.
    type CloneSpec<'a> = (&'a str, &'a str, Option<&'a str>, Option<(&'a str, &'a str)>);

    fn manifest(priority: &[&str], clones: &[CloneSpec]) -> SteeringManifest {
        SteeringManifest {
            version: 1,
            ttl: 10,
            reload_uri: "/v1/steering/s1?n=2".into(),
            pathway_priority: priority.iter().map(|s| s.to_string()).collect(),
            pathway_clones: clones
                .iter()
                .map(|(base, id, host, param)| PathwayClone {
                    base_id: base.to_string(),
                    id: id.to_string(),
                    uri_replacement: UriReplacement {
                        host: host.map(str::to_string),
                        params: param.map(|(k, v)| [(k.to_string(), v.to_string())].into()),
                    },
                })
                .collect(),
        }
    }

    fn tag() -> SteeringTag {
        SteeringTag {
            server_uri: "http://steer.test/v1/steering/s1?title=t".into(),
            pathway: Some("strata".into()),
        }
    }

    #[test]
    fn asks_before_start_then_after_each_ttl_at_the_reload_uri() {
        let mut s = SteeringClient::new(&tag(), "strata");
        let first = s.due(0.0, false, None).unwrap();
        assert_eq!(
            first,
            "http://steer.test/v1/steering/s1?title=t&_HLS_pathway=strata"
        );
        s.answered(
            &first,
            &manifest(
                &["edge-a", "strata"],
                &[("strata", "edge-a", None, Some(("cdn", "http://a:1")))],
            ),
            0.5,
        )
        .unwrap();
        assert!(s.due(10.0, false, Some(5e6)).is_none(), "not before the TTL");
        assert!(s.choose(&["strata".into()], 1.0));
        assert_eq!(s.current(), "edge-a");
        let next = s.due(10.5, false, Some(5.2e6)).unwrap();
        assert_eq!(
            next,
            "http://steer.test/v1/steering/s1?n=2&_HLS_pathway=edge-a&_HLS_throughput=5200000"
        );
        // DASH quotes the pathway.
        let dash = s.due(10.5, true, None).unwrap();
        assert!(dash.ends_with("_DASH_pathway=%22edge-a%22"), "{dash}");
    }

    #[test]
    fn a_failed_pathway_is_avoided_for_a_while_then_comes_back() {
        let known = ["strata".to_string()];
        let mut s = SteeringClient::new(&tag(), "strata");
        let m = manifest(
            &["edge-a", "edge-b", "strata"],
            &[
                ("strata", "edge-a", Some("a.test"), None),
                ("strata", "edge-b", Some("b.test"), None),
            ],
        );
        s.answered("http://steer.test/x", &m, 0.0).unwrap();
        s.choose(&known, 0.0);
        assert_eq!(s.current(), "edge-a");
        s.penalize("edge-a", 5.0);
        assert!(s.choose(&known, 5.0));
        assert_eq!(s.current(), "edge-b");
        assert_eq!(s.base().0, "strata");
        // Every pathway failed: the one whose penalty ends first.
        s.penalize("edge-b", 6.0);
        s.penalize("strata", 7.0);
        s.choose(&known, 8.0);
        assert_eq!(s.current(), "edge-a");
        // The penalty over, the best pathway is first again.
        s.penalize("edge-a", 9.0);
        s.choose(&known, 9.0);
        assert_eq!(s.current(), "edge-b");
        s.choose(&known, 9.0 + PENALTY_S);
        assert_eq!(s.current(), "edge-a");
    }

    #[test]
    fn unknown_pathways_bad_manifests_and_gone_servers() {
        let mut s = SteeringClient::new(&tag(), "strata");
        // A pathway neither in the manifest nor a clone of one is skipped.
        s.answered("http://steer.test/x", &manifest(&["nowhere", "strata"], &[]), 0.0)
            .unwrap();
        assert!(!s.choose(&["strata".into()], 0.0));
        let mut bad = manifest(&["strata"], &[]);
        bad.version = 2;
        assert!(s.answered("http://steer.test/x", &bad, 1.0).is_err());
        assert!(s.due(5.0, false, None).is_none() && s.due(11.0, false, None).is_some());
        s.failed(11.0, Some(503));
        assert!(s.due(21.0, false, None).is_some());
        s.failed(21.0, Some(410));
        assert!(s.due(1e9, false, None).is_none(), "410 ends steering");
    }

    #[test]
    fn uri_replacement_sets_host_or_scheme_and_port_and_params() {
        let host = UriReplacement {
            host: Some("b.test".into()),
            params: None,
        };
        assert_eq!(
            replace_uri("http://a.test:8080/t/x.m4s?token=1", &host),
            "http://b.test:8080/t/x.m4s?token=1"
        );
        let full = UriReplacement {
            host: Some("https://b.test:9443".into()),
            params: None,
        };
        assert_eq!(
            replace_uri("http://a.test:8080/t/", &full),
            "https://b.test:9443/t/"
        );
        let params = UriReplacement {
            host: None,
            params: Some([("cdn".to_string(), "http://e:1".to_string())].into()),
        };
        assert_eq!(
            replace_uri("http://cp/v1/plays/p/0.m3u8?cdn=old&x=1", &params),
            "http://cp/v1/plays/p/0.m3u8?x=1&cdn=http%3A%2F%2Fe%3A1"
        );
    }
}
