//! The fleet view: registered edges, their last heartbeat and health polls, and whether each
//! is in rotation. A pure state machine over a millisecond clock passed in by the caller.

use ip_network::IpNetwork;
use ip_network_table::IpNetworkTable;
use std::collections::BTreeMap;
use std::net::IpAddr;
use strata_contracts::api::steering::{EDGE_PROTOCOL_VERSION, EdgeRegistration, EdgeView, Heartbeat};
use strata_contracts::config::steering::is_pathway_id;

/// When an edge leaves rotation.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Heartbeat silence that takes an edge out, milliseconds.
    pub heartbeat_timeout_ms: u64,
    /// Consecutive failed polls that take an edge out.
    pub poll_fail_after: u32,
    /// Load share at or above which an edge is skipped for new viewers.
    pub overload: f64,
    /// Edges named in a decision at most (external CDNs come on top).
    pub max_edge_pathways: usize,
}

/// Why a registration or heartbeat was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// A message of another protocol version.
    #[error("version {0} is not supported (this steering reads {EDGE_PROTOCOL_VERSION})")]
    Version(u32),
    /// A field that does not make sense.
    #[error("field `{0}`: {1}")]
    Field(&'static str, String),
    /// A heartbeat from an edge that never registered.
    #[error("edge {0:?} is not registered: register first")]
    Unregistered(String),
}

impl FleetError {
    /// The machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            FleetError::Version(_) | FleetError::Field(..) => "bad_request",
            FleetError::Unregistered(_) => "unregistered",
        }
    }
}

/// One edge.
#[derive(Debug, Clone)]
pub struct EdgeState {
    /// What it registered.
    pub registration: EdgeRegistration,
    /// Its prefixes, parsed.
    pub prefixes: Vec<IpNetwork>,
    /// Its last heartbeat and when it arrived.
    pub heartbeat: Option<(u64, Heartbeat)>,
    /// Consecutive failed health polls.
    pub failed_polls: u32,
}

impl EdgeState {
    /// Why it is out of rotation at `now`, or `None` when it is in.
    pub fn out_because(&self, now: u64, rules: &Rules) -> Option<String> {
        let Some((at, hb)) = &self.heartbeat else {
            return Some("no heartbeat yet".into());
        };
        let age = now.saturating_sub(*at);
        if age >= rules.heartbeat_timeout_ms {
            return Some(format!("last heartbeat {age} ms ago"));
        }
        if !hb.healthy {
            return Some("reports itself unhealthy".into());
        }
        if self.failed_polls >= rules.poll_fail_after {
            return Some(format!("{} failed health polls", self.failed_polls));
        }
        None
    }

    /// Its reported load, 0 before any heartbeat.
    pub fn load(&self) -> f64 {
        self.heartbeat.as_ref().map_or(0.0, |(_, hb)| hb.load)
    }
}

/// Every registered edge.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    edges: BTreeMap<String, EdgeState>,
    /// Client prefix to the clusters that serve it.
    prefixes: IpNetworkTableWrap,
}

/// The prefix table, rebuilt when registrations change.
#[derive(Default)]
struct IpNetworkTableWrap(IpNetworkTable<Vec<String>>);

impl Clone for IpNetworkTableWrap {
    fn clone(&self) -> Self {
        let mut t = IpNetworkTable::new();
        for (net, clusters) in self.0.iter() {
            t.insert(net, clusters.clone());
        }
        IpNetworkTableWrap(t)
    }
}

impl std::fmt::Debug for IpNetworkTableWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpNetworkTable")
            .field("len", &self.0.len())
            .finish()
    }
}

/// Checks a registration and parses its prefixes.
pub fn check_registration(r: &EdgeRegistration) -> Result<Vec<IpNetwork>, FleetError> {
    if r.version != EDGE_PROTOCOL_VERSION {
        return Err(FleetError::Version(r.version));
    }
    if !is_pathway_id(&r.edge_id) {
        return Err(FleetError::Field(
            "edge_id",
            "1-64 characters of A-Z a-z 0-9 . _ -".into(),
        ));
    }
    if !is_pathway_id(&r.cluster) {
        return Err(FleetError::Field(
            "cluster",
            "1-64 characters of A-Z a-z 0-9 . _ -".into(),
        ));
    }
    if !(-90.0..=90.0).contains(&r.lat) || !(-180.0..=180.0).contains(&r.lon) {
        return Err(FleetError::Field(
            "lat",
            "latitude -90..90 and longitude -180..180".into(),
        ));
    }
    for (field, url) in [
        ("url", Some(&r.url)),
        ("https_url", r.https_url.as_ref()),
        ("health_url", Some(&r.health_url)),
    ] {
        if let Some(u) = url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(FleetError::Field(
                field,
                format!("`{u}` must start with http:// or https://"),
            ));
        }
    }
    r.prefixes
        .iter()
        .map(|p| {
            p.parse::<IpNetwork>().map_err(|_| {
                FleetError::Field(
                    "prefixes",
                    format!("`{p}` is not a network such as 203.0.113.0/24"),
                )
            })
        })
        .collect()
}

impl Fleet {
    /// Registers (or re-registers) an edge; its health history starts afresh, its last
    /// heartbeat is kept.
    pub fn register(&mut self, registration: EdgeRegistration) -> Result<(), FleetError> {
        let prefixes = check_registration(&registration)?;
        let heartbeat = self.edges.remove(&registration.edge_id).and_then(|e| e.heartbeat);
        self.edges.insert(
            registration.edge_id.clone(),
            EdgeState {
                registration,
                prefixes,
                heartbeat,
                failed_polls: 0,
            },
        );
        self.rebuild_prefixes();
        Ok(())
    }

    /// Takes an edge's heartbeat at `now`.
    pub fn heartbeat(&mut self, hb: Heartbeat, now: u64) -> Result<(), FleetError> {
        if hb.version != EDGE_PROTOCOL_VERSION {
            return Err(FleetError::Version(hb.version));
        }
        if !(0.0..=1.0).contains(&hb.load) || hb.load.is_nan() {
            return Err(FleetError::Field("load", "a share from 0 to 1".into()));
        }
        let edge = self
            .edges
            .get_mut(&hb.edge_id)
            .ok_or_else(|| FleetError::Unregistered(hb.edge_id.clone()))?;
        edge.heartbeat = Some((now, hb));
        Ok(())
    }

    /// Records a health poll of `edge_id`.
    pub fn poll_result(&mut self, edge_id: &str, ok: bool) {
        if let Some(e) = self.edges.get_mut(edge_id) {
            e.failed_polls = if ok { 0 } else { e.failed_polls.saturating_add(1) };
        }
    }

    /// Forgets an edge.
    pub fn remove(&mut self, edge_id: &str) -> bool {
        let removed = self.edges.remove(edge_id).is_some();
        self.rebuild_prefixes();
        removed
    }

    fn rebuild_prefixes(&mut self) {
        let mut table: IpNetworkTable<Vec<String>> = IpNetworkTable::new();
        for e in self.edges.values() {
            for net in &e.prefixes {
                let mut clusters = table.exact_match(*net).cloned().unwrap_or_default();
                if !clusters.contains(&e.registration.cluster) {
                    clusters.push(e.registration.cluster.clone());
                    clusters.sort();
                }
                table.insert(*net, clusters);
            }
        }
        self.prefixes = IpNetworkTableWrap(table);
    }

    /// The clusters whose prefixes hold `ip`, most specific prefix first.
    pub fn clusters_serving(&self, ip: IpAddr) -> Vec<String> {
        let mut matches: Vec<(u8, &Vec<String>)> = self
            .prefixes
            .0
            .matches(ip)
            .map(|(net, clusters)| (net.netmask(), clusters))
            .collect();
        matches.sort_by(|a, b| b.0.cmp(&a.0));
        let mut out: Vec<String> = Vec::new();
        for (_, clusters) in matches {
            for c in clusters {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
        out
    }

    /// Every edge, by id.
    pub fn edges(&self) -> impl Iterator<Item = &EdgeState> {
        self.edges.values()
    }

    /// One edge.
    pub fn edge(&self, id: &str) -> Option<&EdgeState> {
        self.edges.get(id)
    }

    /// The operator's view at `now`.
    pub fn view(&self, now: u64, rules: &Rules) -> Vec<EdgeView> {
        self.edges
            .values()
            .map(|e| {
                let reason = e.out_because(now, rules);
                EdgeView {
                    registration: e.registration.clone(),
                    heartbeat: e.heartbeat.as_ref().map(|(_, hb)| hb.clone()),
                    heartbeat_age_ms: e.heartbeat.as_ref().map(|(at, _)| now.saturating_sub(*at)),
                    failed_polls: e.failed_polls,
                    in_rotation: reason.is_none(),
                    reason,
                }
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod test {
    use super::*;

    pub fn registration(id: &str, cluster: &str, lat: f64, lon: f64, prefixes: &[&str]) -> EdgeRegistration {
        EdgeRegistration {
            version: EDGE_PROTOCOL_VERSION,
            edge_id: id.into(),
            cluster: cluster.into(),
            region: String::new(),
            lat,
            lon,
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            url: format!("http://{id}.test"),
            https_url: None,
            health_url: format!("http://{id}.test:9081/healthz"),
            capacity_bytes: 1 << 40,
        }
    }

    pub fn heartbeat(id: &str, load: f64) -> Heartbeat {
        Heartbeat {
            version: EDGE_PROTOCOL_VERSION,
            edge_id: id.into(),
            healthy: true,
            load,
            free_cache_bytes: 1 << 30,
            disks_ok: true,
        }
    }

    pub const RULES: Rules = Rules {
        heartbeat_timeout_ms: 10_000,
        poll_fail_after: 2,
        overload: 0.85,
        max_edge_pathways: 1000,
    };

    #[test]
    fn an_edge_is_in_rotation_only_while_its_heartbeats_and_polls_are_good() {
        let mut f = Fleet::default();
        f.register(registration("a", "lon", 51.5, -0.1, &["10.0.0.0/8"]))
            .unwrap();
        let out = |f: &Fleet, now| f.edge("a").unwrap().out_because(now, &RULES);
        assert_eq!(out(&f, 0).as_deref(), Some("no heartbeat yet"));
        f.heartbeat(heartbeat("a", 0.2), 1_000).unwrap();
        assert_eq!(out(&f, 5_000), None);
        assert_eq!(out(&f, 11_000).as_deref(), Some("last heartbeat 10000 ms ago"));
        f.heartbeat(heartbeat("a", 0.2), 11_000).unwrap();
        f.poll_result("a", false);
        assert_eq!(out(&f, 11_500), None, "one failed poll is not enough");
        f.poll_result("a", false);
        assert_eq!(out(&f, 11_500).as_deref(), Some("2 failed health polls"));
        f.poll_result("a", true);
        assert_eq!(out(&f, 11_500), None);
        let mut sick = heartbeat("a", 0.2);
        sick.healthy = false;
        f.heartbeat(sick, 12_000).unwrap();
        assert_eq!(out(&f, 12_000).as_deref(), Some("reports itself unhealthy"));
    }

    #[test]
    fn bad_messages_are_refused_with_their_field() {
        let mut f = Fleet::default();
        let mut r = registration("a", "lon", 51.5, -0.1, &["not-a-net"]);
        assert_eq!(
            f.register(r.clone()).unwrap_err().to_string().split(':').next(),
            Some("field `prefixes`")
        );
        r.prefixes.clear();
        r.edge_id = "a b".into();
        assert!(matches!(
            f.register(r.clone()),
            Err(FleetError::Field("edge_id", _))
        ));
        r.edge_id = "a".into();
        r.version = 2;
        assert_eq!(f.register(r), Err(FleetError::Version(2)));
        assert_eq!(
            f.heartbeat(heartbeat("ghost", 0.1), 0),
            Err(FleetError::Unregistered("ghost".into()))
        );
        f.register(registration("a", "lon", 0.0, 0.0, &[])).unwrap();
        assert!(matches!(
            f.heartbeat(heartbeat("a", 1.5), 0),
            Err(FleetError::Field("load", _))
        ));
    }

    #[test]
    fn the_most_specific_prefix_names_its_cluster_first() {
        let mut f = Fleet::default();
        f.register(registration("a", "isp-wide", 0.0, 0.0, &["10.0.0.0/8"]))
            .unwrap();
        f.register(registration(
            "b",
            "isp-metro",
            0.0,
            0.0,
            &["10.1.0.0/16", "2001:db8::/32"],
        ))
        .unwrap();
        assert_eq!(
            f.clusters_serving("10.1.2.3".parse().unwrap()),
            ["isp-metro", "isp-wide"]
        );
        assert_eq!(f.clusters_serving("10.2.0.1".parse().unwrap()), ["isp-wide"]);
        assert_eq!(f.clusters_serving("2001:db8::1".parse().unwrap()), ["isp-metro"]);
        assert!(f.clusters_serving("192.0.2.1".parse().unwrap()).is_empty());
        f.remove("b");
        assert_eq!(f.clusters_serving("10.1.2.3".parse().unwrap()), ["isp-wide"]);
    }
}
