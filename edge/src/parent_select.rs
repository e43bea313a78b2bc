//! Which upstream a miss goes to: parents ordered per object by weighted rendezvous hashing
//! (each object has one home parent; when it is down, its objects, and only those, move to
//! their next parent), then the origins in priority order. Pure: health is asked through
//! closures, so tests drive it without sockets.

use rendezvous_hash::{Capacity, IdNode, Node, NodeHasher, RendezvousNodes, WeightedNode};
use std::hash::{Hash, Hasher};

/// Where one attempt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The parent at this index of the configured list.
    Parent(usize),
    /// The origin at this index (0 is `upstream`, then `upstream_failover`).
    Origin(usize),
}

/// xxHash64 with a fixed seed: the order must be the same on every edge, every build and
/// every run, or edges would disagree on an object's home parent.
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

/// The configured parents, identified by URL (so the order of the config list does not
/// matter) and weighted.
pub struct ParentRing {
    nodes: RendezvousNodes<WeightedNode<IdNode<String>>, StableHasher>,
    /// Index in the configured list, by URL.
    index: std::collections::HashMap<String, usize>,
}

impl ParentRing {
    /// A ring over `(url, weight)` pairs; weights must be at least 1.
    pub fn new<'a>(parents: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut nodes = RendezvousNodes::new(StableHasher);
        let mut index = std::collections::HashMap::new();
        for (i, (url, weight)) in parents.into_iter().enumerate() {
            let capacity = Capacity::new(f64::from(weight.max(1))).expect("a positive weight");
            nodes.insert(WeightedNode::new(IdNode::new(url.to_string()), capacity));
            index.insert(url.to_string(), i);
        }
        Self { nodes, index }
    }

    /// Whether no parent is configured.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every parent's index, most preferred first, for the object `key`.
    pub fn order(&self, key: &str) -> Vec<usize> {
        self.nodes
            .calc_candidates(&key)
            .map(|n| self.index[n.node_id().as_str()])
            .collect()
    }
}

/// The attempts for one miss, in order: the parents that `parent_ok` admits in `order`, then
/// (with no parents at all, or with `origin_fallback`) the origins that `origin_ok` admits,
/// then the remaining origins as a last resort, since an origin is the end of the line.
/// Empty when parents are configured, none is admitted and there is no fallback.
pub fn plan(
    order: &[usize],
    mut parent_ok: impl FnMut(usize) -> bool,
    origins: usize,
    mut origin_ok: impl FnMut(usize) -> bool,
    origin_fallback: bool,
) -> Vec<Target> {
    let mut targets: Vec<Target> = order
        .iter()
        .copied()
        .filter(|&p| parent_ok(p))
        .map(Target::Parent)
        .collect();
    if order.is_empty() || origin_fallback {
        let (up, down): (Vec<usize>, Vec<usize>) = (0..origins).partition(|&o| origin_ok(o));
        targets.extend(up.into_iter().chain(down).map(Target::Origin));
    }
    targets
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::health::{Health, HealthPolicy, Source};
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    fn ring(n: usize) -> (Vec<String>, ParentRing) {
        let urls: Vec<String> = (0..n)
            .map(|i| format!("http://10.0.{}.{}:8082", i / 250, i % 250))
            .collect();
        let ring = ParentRing::new(urls.iter().map(|u| (u.as_str(), 1)));
        (urls, ring)
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("cdn.example/title/{i}/seg.m4s")).collect()
    }

    #[test]
    fn the_order_depends_on_urls_not_on_list_order() {
        let a = ParentRing::new([("http://a:1", 1), ("http://b:1", 1), ("http://c:1", 1)]);
        let b = ParentRing::new([("http://c:1", 1), ("http://a:1", 1), ("http://b:1", 1)]);
        let names_a = ["a", "b", "c"];
        let names_b = ["c", "a", "b"];
        for key in keys(200) {
            let oa: Vec<&str> = a.order(&key).into_iter().map(|i| names_a[i]).collect();
            let ob: Vec<&str> = b.order(&key).into_iter().map(|i| names_b[i]).collect();
            assert_eq!(oa, ob);
            assert_eq!(oa.len(), 3);
        }
    }

    #[test]
    fn weights_set_the_shares() {
        let ring = ParentRing::new([("http://big:1", 3), ("http://small:1", 1)]);
        let big = keys(20_000).iter().filter(|k| ring.order(k)[0] == 0).count();
        let share = big as f64 / 20_000.0;
        assert!(
            (0.72..0.78).contains(&share),
            "share of the weight-3 parent: {share}"
        );
    }

    #[test]
    fn a_100_node_ring_spreads_keys_and_moves_only_a_down_nodes_keys() {
        let (_, ring) = ring(100);
        let keys = keys(20_000);
        let home: Vec<usize> = keys.iter().map(|k| ring.order(k)[0]).collect();
        let mut per_node: HashMap<usize, usize> = HashMap::new();
        for h in &home {
            *per_node.entry(*h).or_default() += 1;
        }
        assert_eq!(per_node.len(), 100);
        let (min, max) = (per_node.values().min().unwrap(), per_node.values().max().unwrap());
        assert!(
            *min > 130 && *max < 270,
            "200 keys a node expected, saw {min}..{max}"
        );

        let down = [7usize, 42, 99];
        let first_up = |k: &str| {
            let order = ring.order(k);
            plan(&order, |p| !down.contains(&p), 1, |_| true, false)[0]
        };
        for (k, h) in keys.iter().zip(&home) {
            let now = first_up(k);
            if down.contains(h) {
                assert!(!matches!(now, Target::Parent(p) if down.contains(&p)));
            } else {
                assert_eq!(now, Target::Parent(*h), "a key whose home is up must not move");
            }
        }
    }

    #[test]
    fn flapping_nodes_with_a_simulated_clock() {
        let policy = HealthPolicy {
            fail_after: 2,
            rise_after: 2,
            retry_down_after: Duration::from_secs(5),
        };
        let (_, ring) = ring(100);
        let keys = keys(1_000);
        let home: Vec<usize> = keys.iter().map(|k| ring.order(k)[0]).collect();
        let mut health: Vec<Health> = (0..100).map(|_| Health::new(true)).collect();
        let t0 = Instant::now();
        // Every second for a minute, the nodes divisible by 10 fail their probes in odd
        // 10-second windows and pass them in even ones; the rest always pass.
        for second in 0..60u64 {
            let now = t0 + Duration::from_secs(second);
            let failing = (second / 10) % 2 == 1;
            for (i, h) in health.iter_mut().enumerate() {
                let ok = !(i % 10 == 0 && failing);
                h.observe(ok, Source::Probe, now, &policy);
            }
            // Within the first probes of a window, a flapper is still on its way down or up.
            let settling = second % 10 < 2;
            for (k, &h) in keys.iter().zip(&home) {
                let order = ring.order(k);
                let targets = plan(&order, |p| health[p].is_up(), 1, |_| true, false);
                let flapper = h % 10 == 0;
                match targets[0] {
                    Target::Parent(p) if p == h => assert!(!(flapper && failing && !settling)),
                    Target::Parent(p) => {
                        assert!(
                            flapper && (failing || settling),
                            "key of node {h} moved to {p} at {second}s"
                        );
                        assert_eq!(p, order.into_iter().find(|&q| health[q].is_up()).unwrap());
                    }
                    Target::Origin(_) => panic!("parents were up"),
                }
            }
        }
    }

    #[test]
    fn the_plan_falls_back_to_origins_only_when_allowed() {
        let order = [1, 0];
        assert_eq!(
            plan(&order, |_| true, 2, |_| true, false),
            vec![Target::Parent(1), Target::Parent(0)]
        );
        assert_eq!(plan(&order, |_| false, 2, |_| true, false), vec![]);
        assert_eq!(
            plan(&order, |p| p == 0, 2, |o| o == 1, true),
            vec![Target::Parent(0), Target::Origin(1), Target::Origin(0)]
        );
        // No parents: origins by priority, the down ones last.
        assert_eq!(
            plan(&[], |_| true, 3, |o| o != 0, false),
            vec![Target::Origin(1), Target::Origin(2), Target::Origin(0)]
        );
    }
}
