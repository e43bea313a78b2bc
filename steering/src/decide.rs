//! Where a viewer goes: a pure function of (fleet, client, title, clock).
//!
//! Order of candidates:
//! 1. the clusters whose prefixes hold the client's address (most specific first), as Open
//!    Connect serves an ISP's own subscribers from the ISP's own edges;
//! 2. every other cluster, nearest first by great-circle distance from the client's location
//!    (by name when the location is unknown);
//! 3. external CDNs, cheapest first, spread by weight among equal costs;
//! 4. last resort: our overloaded edges, least loaded first.
//!
//! Within a cluster each title has a home edge (rendezvous hashing of title and edge id), so a
//! title's viewers meet in one cache; an edge out of rotation is skipped, and an overloaded one
//! drops to the last resort, so its titles move to the next edge in their own order.

use crate::fleet::{EdgeState, Fleet, Rules};
use rendezvous_hash::{Capacity, IdNode, Node, NodeHasher, RendezvousNodes, WeightedNode};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use strata_contracts::api::steering::{Decision, Pathway};
use strata_contracts::config::steering::CdnConfig;

/// The client being steered.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// Its address.
    pub ip: IpAddr,
    /// Its location (latitude, longitude), when the geo database places it.
    pub location: Option<(f64, f64)>,
}

/// xxHash64 with a fixed seed, so a title's home edge is the same on every steering node,
/// across restarts and upgrades (a reshuffle would empty the caches' hit ratios).
#[derive(Debug, Clone, Default)]
struct StableHasher;

impl NodeHasher<String> for StableHasher {
    fn hash<T: Hash>(&self, node: &String, item: &T) -> u64 {
        let mut h = twox_hash::XxHash64::with_seed(0);
        item.hash(&mut h);
        node.hash(&mut h);
        h.finish()
    }
}

/// `ids` ordered for `key` by weighted rendezvous hashing.
fn rendezvous_order(ids: &[(String, u32)], key: &str) -> Vec<String> {
    let mut nodes = RendezvousNodes::new(StableHasher);
    for (id, weight) in ids {
        let capacity = Capacity::new(f64::from((*weight).max(1))).expect("a positive weight");
        nodes.insert(WeightedNode::new(IdNode::new(id.clone()), capacity));
    }
    nodes.calc_candidates(&key).map(|n| n.node_id().clone()).collect()
}

/// Great-circle distance in kilometres.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1, lat2, lon2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h =
        ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// The pathway id of one of our edges.
pub fn edge_pathway(edge_id: &str) -> String {
    format!("edge-{edge_id}")
}

fn pathway_of(e: &EdgeState) -> Pathway {
    Pathway {
        id: edge_pathway(&e.registration.edge_id),
        url: e.registration.url.clone(),
        kind: "edge".into(),
        cluster: Some(e.registration.cluster.clone()),
    }
}

/// Decides for `client` and `title` at `now` (milliseconds, the fleet's clock).
pub fn decide(
    fleet: &Fleet,
    rules: &Rules,
    cdns: &[CdnConfig],
    client: &Client,
    title: &str,
    now: u64,
) -> Decision {
    // Clusters of edges in rotation, and where each is (the mean of its edges' sites).
    let mut clusters: BTreeMap<&str, Vec<&EdgeState>> = BTreeMap::new();
    for e in fleet.edges().filter(|e| e.out_because(now, rules).is_none()) {
        clusters
            .entry(e.registration.cluster.as_str())
            .or_default()
            .push(e);
    }
    let by_prefix: Vec<String> = fleet
        .clusters_serving(client.ip)
        .into_iter()
        .filter(|c| clusters.contains_key(c.as_str()))
        .collect();
    let matched_by = if !by_prefix.is_empty() {
        "prefix"
    } else if clusters.is_empty() {
        "none"
    } else if client.location.is_some() {
        "nearest"
    } else {
        "default"
    };
    let mut rest: Vec<(&str, f64)> = clusters
        .iter()
        .filter(|(name, _)| !by_prefix.iter().any(|p| p == *name))
        .map(|(name, edges)| {
            let n = edges.len() as f64;
            let site = (
                edges.iter().map(|e| e.registration.lat).sum::<f64>() / n,
                edges.iter().map(|e| e.registration.lon).sum::<f64>() / n,
            );
            (*name, client.location.map_or(0.0, |loc| distance_km(loc, site)))
        })
        .collect();
    // Stable sort: equal distances (or no location) keep the clusters' name order.
    rest.sort_by(|a, b| a.1.total_cmp(&b.1));
    let cluster_order = by_prefix
        .iter()
        .map(String::as_str)
        .chain(rest.iter().map(|(n, _)| *n));

    let mut pathways = Vec::new();
    let mut overloaded: Vec<&EdgeState> = Vec::new();
    for name in cluster_order {
        // Enough edges named: the rest of the fleet is not ranked at all.
        if pathways.len() >= rules.max_edge_pathways {
            break;
        }
        let edges = &clusters[name];
        let ids: Vec<(String, u32)> = edges
            .iter()
            .map(|e| (e.registration.edge_id.clone(), 1))
            .collect();
        for id in rendezvous_order(&ids, title) {
            let e = edges
                .iter()
                .find(|e| e.registration.edge_id == id)
                .expect("ordered from these edges");
            if e.load() >= rules.overload {
                overloaded.push(e);
            } else if pathways.len() < rules.max_edge_pathways {
                pathways.push(pathway_of(e));
            }
        }
    }
    let mut costs: Vec<u32> = cdns.iter().map(|c| c.cost).collect();
    costs.sort_unstable();
    costs.dedup();
    for cost in costs {
        let tier: Vec<(String, u32)> = cdns
            .iter()
            .filter(|c| c.cost == cost)
            .map(|c| (c.name.clone(), c.weight))
            .collect();
        // Spread viewers of one title over equal-cost CDNs by client too, not only by title.
        for name in rendezvous_order(&tier, &format!("{title}/{}", client.ip)) {
            let c = cdns
                .iter()
                .find(|c| c.name == name)
                .expect("ordered from these CDNs");
            pathways.push(Pathway {
                id: c.name.clone(),
                url: c.url.trim_end_matches('/').to_string(),
                kind: "cdn".into(),
                cluster: None,
            });
        }
    }
    overloaded.sort_by(|a, b| a.load().total_cmp(&b.load()));
    overloaded.truncate(rules.max_edge_pathways);
    pathways.extend(overloaded.into_iter().map(pathway_of));
    Decision {
        client: client.ip.to_string(),
        matched_by: matched_by.into(),
        pathways,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::fleet::test::{RULES, heartbeat, registration};

    const LONDON: (f64, f64) = (51.5, -0.12);
    const PARIS: (f64, f64) = (48.86, 2.35);
    const NEW_YORK: (f64, f64) = (40.7, -74.0);

    /// `clusters` clusters of `per` edges each, every edge healthy at load 0.1 at time 0.
    fn fleet(clusters: &[(&str, (f64, f64), &[&str])], per: usize) -> Fleet {
        let mut f = Fleet::default();
        for (name, site, prefixes) in clusters {
            for i in 0..per {
                let id = format!("{name}-{i}");
                f.register(registration(&id, name, site.0, site.1, prefixes))
                    .unwrap();
                f.heartbeat(heartbeat(&id, 0.1), 0).unwrap();
            }
        }
        f
    }

    fn client(ip: &str, location: Option<(f64, f64)>) -> Client {
        Client {
            ip: ip.parse().unwrap(),
            location,
        }
    }

    fn clusters_of(d: &Decision) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &d.pathways {
            let c = p.cluster.clone().unwrap_or_else(|| p.id.clone());
            if out.last() != Some(&c) {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn a_prefix_match_wins_then_clusters_follow_by_distance_then_cdns() {
        let f = fleet(
            &[
                ("lon", LONDON, &["81.2.0.0/16"]),
                ("par", PARIS, &[]),
                ("nyc", NEW_YORK, &[]),
            ],
            3,
        );
        let cdns = [
            CdnConfig {
                name: "cdn-cheap".into(),
                url: "https://cheap.test/".into(),
                weight: 1,
                cost: 1,
            },
            CdnConfig {
                name: "cdn-dear".into(),
                url: "https://dear.test".into(),
                weight: 1,
                cost: 9,
            },
        ];
        // An ISP subscriber in London's prefix, located in New York by the geo database: the
        // prefix wins.
        let d = decide(&f, &RULES, &cdns, &client("81.2.69.160", Some(NEW_YORK)), "t1", 1);
        assert_eq!(d.matched_by, "prefix");
        assert_eq!(clusters_of(&d), ["lon", "nyc", "par", "cdn-cheap", "cdn-dear"]);
        assert_eq!(d.pathways.len(), 9 + 2);
        assert_eq!(d.pathways[9].url, "https://cheap.test");
        // Elsewhere: nearest first.
        let d = decide(
            &f,
            &RULES,
            &cdns,
            &client("192.0.2.1", Some((48.0, 2.0))),
            "t1",
            1,
        );
        assert_eq!(d.matched_by, "nearest");
        assert_eq!(clusters_of(&d)[..3], ["par", "lon", "nyc"]);
        let d = decide(&f, &RULES, &cdns, &client("192.0.2.1", None), "t1", 1);
        assert_eq!(d.matched_by, "default");
        assert_eq!(clusters_of(&d)[..3], ["lon", "nyc", "par"]);
    }

    #[test]
    fn titles_keep_their_edge_and_spread_over_the_cluster() {
        let f = fleet(&[("lon", LONDON, &[])], 10);
        let c = client("192.0.2.1", None);
        let mut homes = BTreeMap::new();
        for t in 0..1000 {
            let title = format!("title-{t}");
            let first = decide(&f, &RULES, &[], &c, &title, 1).pathways[0].id.clone();
            // Same answer again, and for another client.
            assert_eq!(
                decide(&f, &RULES, &[], &client("198.51.100.7", None), &title, 1).pathways[0].id,
                first
            );
            *homes.entry(first).or_insert(0) += 1;
        }
        assert_eq!(homes.len(), 10);
        assert!(
            homes.values().all(|n| (50..=150).contains(n)),
            "uneven spread: {homes:?}"
        );
    }

    #[test]
    fn in_a_fleet_of_hundreds_only_the_lost_edges_titles_move() {
        // 20 clusters of 15 edges (300 edges).
        let names: Vec<String> = (0..20).map(|i| format!("c{i:02}")).collect();
        let spec: Vec<(&str, (f64, f64), &[&str])> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), (40.0 + i as f64, -5.0 + i as f64), &[][..]))
            .collect();
        let mut f = fleet(&spec, 15);
        let c = client("192.0.2.1", Some((40.0, -5.0)));
        let titles: Vec<String> = (0..2000).map(|t| format!("t{t}")).collect();
        let before: Vec<String> = titles
            .iter()
            .map(|t| decide(&f, &RULES, &[], &c, t, 1).pathways[0].id.clone())
            .collect();
        assert!(
            before.iter().all(|p| p.starts_with("edge-c00-")),
            "nearest cluster first"
        );
        // c00-3 stops sending heartbeats; by t = 10 s it is out.
        for i in 0..15 {
            if i != 3 {
                f.heartbeat(heartbeat(&format!("c00-{i}"), 0.1), 9_000).unwrap();
            }
        }
        let after: Vec<String> = titles
            .iter()
            .map(|t| decide(&f, &RULES, &[], &c, t, 10_500).pathways[0].id.clone())
            .collect();
        for (b, a) in before.iter().zip(&after) {
            if b == "edge-c00-3" {
                assert_ne!(a, b);
                assert!(a.starts_with("edge-c00-"), "stays in the cluster: {a}");
            } else {
                assert_eq!(a, b, "a title whose edge is fine must not move");
            }
        }
        assert!(before.iter().filter(|b| *b == "edge-c00-3").count() > 50);
    }

    #[test]
    fn overload_spills_to_the_next_edge_then_cluster_and_is_the_last_resort() {
        let mut f = fleet(&[("lon", LONDON, &[]), ("par", PARIS, &[])], 2);
        let c = client("192.0.2.1", Some(LONDON));
        let home = decide(&f, &RULES, &[], &c, "hot", 1).pathways[0].id.clone();
        let home_id = home.trim_start_matches("edge-").to_string();
        f.heartbeat(heartbeat(&home_id, 0.9), 2).unwrap();
        let d = decide(&f, &RULES, &[], &c, "hot", 3);
        assert_ne!(d.pathways[0].id, home);
        assert_eq!(
            d.pathways[0].cluster.as_deref(),
            Some("lon"),
            "the next edge of the same cluster"
        );
        assert_eq!(
            d.pathways.last().unwrap().id,
            home,
            "an overloaded edge is the last resort"
        );
        for i in 0..2 {
            f.heartbeat(heartbeat(&format!("lon-{i}"), 0.95), 4).unwrap();
        }
        let d = decide(&f, &RULES, &[], &c, "hot", 5);
        assert_eq!(clusters_of(&d), ["par", "lon"]);
        assert_eq!(d.pathways.len(), 4);
    }

    #[test]
    fn an_empty_fleet_sends_everyone_to_the_cdns() {
        let f = Fleet::default();
        let cdns = [
            CdnConfig {
                name: "a".into(),
                url: "https://a.test".into(),
                weight: 3,
                cost: 0,
            },
            CdnConfig {
                name: "b".into(),
                url: "https://b.test".into(),
                weight: 1,
                cost: 0,
            },
        ];
        let mut first_a = 0;
        for i in 0..400 {
            let d = decide(
                &f,
                &RULES,
                &cdns,
                &client(&format!("10.0.{}.{}", i / 250, i % 250), None),
                "t",
                0,
            );
            assert_eq!(d.matched_by, "none");
            assert_eq!(d.pathways.len(), 2);
            first_a += usize::from(d.pathways[0].id == "a");
        }
        // Weight 3 to 1: about three quarters go to `a` first.
        assert!((240..=360).contains(&first_a), "{first_a}");
    }

    #[test]
    fn a_decision_names_at_most_the_configured_number_of_edges() {
        let f = fleet(
            &[("lon", LONDON, &[]), ("par", PARIS, &[]), ("nyc", NEW_YORK, &[])],
            5,
        );
        let cdns = [CdnConfig {
            name: "cdn-b".into(),
            url: "https://b.test".into(),
            weight: 1,
            cost: 0,
        }];
        let rules = Rules {
            max_edge_pathways: 7,
            ..RULES
        };
        let d = decide(&f, &rules, &cdns, &client("192.0.2.1", Some(LONDON)), "t", 1);
        assert_eq!(d.pathways.len(), 7 + 1);
        assert_eq!(clusters_of(&d), ["lon", "par", "cdn-b"]);
        // The first pathways are the same as without the cap.
        let full = decide(&f, &RULES, &cdns, &client("192.0.2.1", Some(LONDON)), "t", 1);
        assert_eq!(d.pathways[..7], full.pathways[..7]);
    }

    #[test]
    fn distances_are_great_circle() {
        let d = distance_km(LONDON, PARIS);
        assert!((330.0..=350.0).contains(&d), "{d}");
        assert!(distance_km(LONDON, NEW_YORK) > 5500.0);
    }
}
