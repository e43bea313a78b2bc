//! Content Steering manifests from a decision. The control plane's manifests name one
//! pathway, `strata` (its `cdn_url`); every pathway here is a clone of it with the host
//! replaced, so a player can move between our edges and external CDNs without a new manifest.

use strata_contracts::api::steering::{CDN_PARAM, Decision, PathwayClone, SteeringManifest, UriReplacement};

/// The pathway id the control plane's manifests carry (`PATHWAY-ID`, `serviceLocation`).
pub const BASE_PATHWAY: &str = "strata";

/// Which player family asks: their manifests are addressed differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Player {
    /// HLS: the control plane serves the media playlists, so a clone keeps their host and
    /// names its CDN in `PARAMS` (`cdn=<base URL>`), which the control plane writes into the
    /// segment URLs. (hls.js's `HOST` would also replace only the host name, never the port.)
    Hls,
    /// DASH: segment URLs hang off the MPD's `BaseURL` at the CDN, so a clone replaces the
    /// host; dash.js keeps the port only when `HOST` carries the scheme and port.
    Dash,
}

impl Player {
    /// From the request: an explicit `player=hls|dash`, else the `_HLS_`/`_DASH_` parameters
    /// players add, else HLS.
    pub fn from_query(query: &[(String, String)]) -> Player {
        let has = |k: &str| query.iter().any(|(name, _)| name == k);
        match query.iter().find(|(k, _)| k == "player").map(|(_, v)| v.as_str()) {
            Some("dash") => Player::Dash,
            Some("hls") => Player::Hls,
            _ if has("_DASH_pathway") || has("_DASH_throughput") => Player::Dash,
            _ => Player::Hls,
        }
    }

    /// The query value for [`Player::from_query`].
    pub fn name(self) -> &'static str {
        match self {
            Player::Hls => "hls",
            Player::Dash => "dash",
        }
    }
}

/// `host[:port]` of an `http(s)://host[:port]/...` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://{}", authority(url)),
        None => authority(url).to_string(),
    }
}

/// Whether two CDN base URLs name the same place (a trailing slash aside).
fn same_base(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The manifest for a decision: priority in the decision's order, each pathway a clone of
/// [`BASE_PATHWAY`] whose host is the pathway's, and the base pathway last (the manifest's
/// own URLs) so the list is never empty. When `base` (the URL the manifest's own pathway
/// names) is one of the decision's pathways, that pathway is named [`BASE_PATHWAY`] in its
/// place and not cloned: a player already there stays put.
pub fn steering_manifest(
    decision: &Decision,
    player: Player,
    ttl: u64,
    reload_uri: String,
    base: Option<&str>,
) -> SteeringManifest {
    let at_base = decision
        .pathways
        .iter()
        .position(|p| base.is_some_and(|b| same_base(&p.url, b)));
    let mut priority: Vec<String> = decision
        .pathways
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if Some(i) == at_base {
                BASE_PATHWAY.to_string()
            } else {
                p.id.clone()
            }
        })
        .collect();
    if at_base.is_none() {
        priority.push(BASE_PATHWAY.to_string());
    }
    let clones = decision
        .pathways
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != at_base)
        .map(|(_, p)| PathwayClone {
            base_id: BASE_PATHWAY.into(),
            id: p.id.clone(),
            uri_replacement: match player {
                Player::Hls => UriReplacement {
                    host: None,
                    params: Some([(CDN_PARAM.to_string(), origin(&p.url))].into_iter().collect()),
                },
                Player::Dash => UriReplacement {
                    host: Some(origin(&p.url)),
                    params: None,
                },
            },
        })
        .collect();
    SteeringManifest {
        version: 1,
        ttl,
        reload_uri,
        pathway_priority: priority,
        pathway_clones: clones,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use strata_contracts::api::steering::Pathway;

    fn decision() -> Decision {
        Decision {
            client: "192.0.2.1".into(),
            matched_by: "nearest".into(),
            pathways: vec![
                Pathway {
                    id: "edge-a".into(),
                    url: "http://127.0.0.2:8081".into(),
                    kind: "edge".into(),
                    cluster: Some("lon".into()),
                },
                Pathway {
                    id: "cdn-b".into(),
                    url: "https://cdn-b.example/base".into(),
                    kind: "cdn".into(),
                    cluster: None,
                },
            ],
        }
    }

    #[test]
    fn the_manifest_has_the_spec_fields_and_clones_every_pathway() {
        let m = steering_manifest(
            &decision(),
            Player::Hls,
            30,
            "http://steer/v1/steering/s?title=t".into(),
            None,
        );
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["VERSION"], 1);
        assert_eq!(json["TTL"], 30);
        assert_eq!(json["RELOAD-URI"], "http://steer/v1/steering/s?title=t");
        assert_eq!(
            json["PATHWAY-PRIORITY"],
            serde_json::json!(["edge-a", "cdn-b", "strata"])
        );
        assert_eq!(
            json["PATHWAY-CLONES"][0],
            serde_json::json!({"BASE-ID": "strata", "ID": "edge-a", "URI-REPLACEMENT": {"PARAMS": {"cdn": "http://127.0.0.2:8081"}}})
        );
        assert_eq!(
            json["PATHWAY-CLONES"][1]["URI-REPLACEMENT"]["PARAMS"]["cdn"],
            "https://cdn-b.example"
        );
        let dash = serde_json::to_value(steering_manifest(
            &decision(),
            Player::Dash,
            30,
            String::new(),
            None,
        ))
        .unwrap();
        assert_eq!(
            dash["PATHWAY-CLONES"][0]["URI-REPLACEMENT"],
            serde_json::json!({"HOST": "http://127.0.0.2:8081"})
        );
        assert_eq!(
            dash["PATHWAY-CLONES"][1]["URI-REPLACEMENT"]["HOST"],
            "https://cdn-b.example"
        );
    }

    #[test]
    fn a_pathway_at_the_manifests_own_base_keeps_the_manifests_id() {
        for base in ["http://127.0.0.2:8081", "http://127.0.0.2:8081/"] {
            let m = steering_manifest(&decision(), Player::Hls, 30, String::new(), Some(base));
            assert_eq!(m.pathway_priority, ["strata", "cdn-b"], "{base}");
            let clones: Vec<_> = m.pathway_clones.iter().map(|c| c.id.as_str()).collect();
            assert_eq!(clones, ["cdn-b"]);
        }
        // The base is second: the player moves to the first, and the base keeps its rank.
        let m = steering_manifest(
            &decision(),
            Player::Dash,
            30,
            String::new(),
            Some("https://cdn-b.example/base"),
        );
        assert_eq!(m.pathway_priority, ["edge-a", "strata"]);
        // A base that is not among the pathways (a dead edge): everything as without one.
        let m = steering_manifest(&decision(), Player::Hls, 30, String::new(), Some("http://gone:1"));
        assert_eq!(m.pathway_priority, ["edge-a", "cdn-b", "strata"]);
        assert_eq!(m.pathway_clones.len(), 2);
    }

    #[test]
    fn an_empty_decision_still_names_a_pathway() {
        let d = Decision {
            client: "x".into(),
            matched_by: "none".into(),
            pathways: vec![],
        };
        let m = steering_manifest(&d, Player::Hls, 5, String::new(), None);
        assert_eq!(m.pathway_priority, ["strata"]);
        assert!(serde_json::to_value(&m).unwrap().get("PATHWAY-CLONES").is_none());
    }

    #[test]
    fn the_player_is_told_by_its_parameters() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            Player::from_query(&q(&[("_DASH_pathway", "\"a\"")])),
            Player::Dash
        );
        assert_eq!(Player::from_query(&q(&[("_HLS_pathway", "a")])), Player::Hls);
        assert_eq!(Player::from_query(&q(&[("player", "dash")])), Player::Dash);
        assert_eq!(Player::from_query(&q(&[])), Player::Hls);
    }
}
