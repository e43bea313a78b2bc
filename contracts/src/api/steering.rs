//! Steering's API, `/v1/...` on its listener.
//!
//! Edges (`Authorization: Bearer <edge credential>`):
//! - `POST /v1/edges/register` with [`EdgeRegistration`]: who the edge is and where it serves
//! - `POST /v1/edges/heartbeat` with [`Heartbeat`]: how it is doing, every few seconds
//!
//! Players and the control plane:
//! - `GET /v1/steering/{session}`: a [`SteeringManifest`] (HLS and DASH Content Steering)
//! - `GET /v1/route/{path}`: `302` to the best pathway's URL for `path`
//! - `GET /v1/decide?title=...&ip=...`: a [`Decision`]
//!
//! Operators (`Authorization: Bearer <admin_token>`):
//! - `GET /v1/admin/edges`: [`FleetView`]

use serde::{Deserialize, Serialize};

/// The version of edge messages this build reads and writes.
pub const EDGE_PROTOCOL_VERSION: u32 = 1;

/// What an edge tells steering about itself when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeRegistration {
    /// [`EDGE_PROTOCOL_VERSION`].
    pub version: u32,
    /// The edge's id (its `node_id`); must match its credential.
    pub edge_id: String,
    /// The cluster it belongs to (edges of one site or ISP).
    pub cluster: String,
    /// Latitude of the site, degrees.
    pub lat: f64,
    /// Longitude of the site, degrees.
    pub lon: f64,
    /// Client prefixes the cluster serves (CIDR, for example `203.0.113.0/24`).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Base URL players use for this edge over HTTP/1.1 and HTTP/2 (`http://host:port`).
    pub url: String,
    /// Base URL of its HTTPS (and HTTP/3) listener, if it has one.
    #[serde(default)]
    pub https_url: Option<String>,
    /// Its `/healthz`, polled by steering.
    pub health_url: String,
    /// Cache capacity, bytes (memory and disk).
    #[serde(default)]
    pub capacity_bytes: u64,
}

/// What an edge reports every few seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// [`EDGE_PROTOCOL_VERSION`].
    pub version: u32,
    /// The edge's id; must match its credential.
    pub edge_id: String,
    /// Whether the edge considers itself able to serve.
    pub healthy: bool,
    /// Load as a share of what it can serve, 0 to 1.
    pub load: f64,
    /// Free cache bytes.
    #[serde(default)]
    pub free_cache_bytes: u64,
    /// Whether every configured disk is in service.
    #[serde(default = "yes")]
    pub disks_ok: bool,
}

fn yes() -> bool {
    true
}

/// An answer to a registration or heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeAck {
    /// The edge's id.
    pub edge_id: String,
    /// Whether steering sends viewers to it now.
    pub in_rotation: bool,
}

/// One edge as steering sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeView {
    /// Its registration.
    pub registration: EdgeRegistration,
    /// Its last heartbeat, if any.
    pub heartbeat: Option<Heartbeat>,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: Option<u64>,
    /// Consecutive failed health polls.
    pub failed_polls: u32,
    /// Whether viewers are sent to it.
    pub in_rotation: bool,
    /// Why not, when it is out.
    pub reason: Option<String>,
}

/// The fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetView {
    /// Every registered edge, by id.
    pub edges: Vec<EdgeView>,
}

/// One candidate in a decision, best first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pathway {
    /// Pathway id: `edge-<edge id>` for ours, the CDN's name for an external CDN.
    pub id: String,
    /// Base URL.
    pub url: String,
    /// `edge` or `cdn`.
    pub kind: String,
    /// The cluster, for edges.
    pub cluster: Option<String>,
}

/// Where a viewer should go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The client address decided for.
    pub client: String,
    /// How its cluster was found: `prefix`, `nearest`, `default` or `none`.
    pub matched_by: String,
    /// Candidates, best first.
    pub pathways: Vec<Pathway>,
}

/// A URI replacement of a pathway clone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UriReplacement {
    /// The host that replaces the base pathway's (dash.js: with scheme and port).
    #[serde(rename = "HOST", skip_serializing_if = "Option::is_none", default)]
    pub host: Option<String>,
    /// Query parameters added to the clone's playlist URIs (HLS).
    #[serde(rename = "PARAMS", skip_serializing_if = "Option::is_none", default)]
    pub params: Option<std::collections::BTreeMap<String, String>>,
}

/// The query parameter through which an HLS pathway clone names its CDN base URL to the
/// control plane's media playlists (`PARAMS` of the clone).
pub const CDN_PARAM: &str = "cdn";

/// A pathway made from another by replacing its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathwayClone {
    /// The pathway it is cloned from.
    #[serde(rename = "BASE-ID")]
    pub base_id: String,
    /// Its own id.
    #[serde(rename = "ID")]
    pub id: String,
    /// What changes.
    #[serde(rename = "URI-REPLACEMENT")]
    pub uri_replacement: UriReplacement,
}

/// A Content Steering manifest (HLS Content Steering 1.2, DASH-IF CTS 001): the same JSON
/// for HLS and DASH players.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringManifest {
    /// Always 1.
    #[serde(rename = "VERSION")]
    pub version: u32,
    /// Seconds until the player asks again.
    #[serde(rename = "TTL")]
    pub ttl: u64,
    /// Where to ask next time, carrying the session's state.
    #[serde(rename = "RELOAD-URI")]
    pub reload_uri: String,
    /// Pathway ids, best first.
    #[serde(rename = "PATHWAY-PRIORITY")]
    pub pathway_priority: Vec<String>,
    /// Pathways made by host replacement from the manifest's own pathway.
    #[serde(rename = "PATHWAY-CLONES", skip_serializing_if = "Vec::is_empty", default)]
    pub pathway_clones: Vec<PathwayClone>,
}
