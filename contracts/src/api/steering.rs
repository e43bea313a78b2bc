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
//! - `POST /v1/admin/prewarm` with a [`PrewarmRequest`]: `202` and the [`PrewarmJob`]
//! - `GET /v1/admin/prewarm`: [`PrewarmJobs`]; `GET /v1/admin/prewarm/{id}`: one
//! - `DELETE /v1/admin/prewarm/{id}`: cancel

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
    /// The region the site is in (`eu-west`, `us-east`), for pre-warm jobs by region.
    #[serde(default)]
    pub region: String,
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

/// The query parameter of a steering URL that names the CDN base URL the manifest's own
/// pathway points at. Steering then names a pathway at that URL by the manifest's own id
/// rather than a clone of it, so a player already on the best edge is not moved at its
/// first steering answer (a needless switch: playlists reloaded, and hls.js 1.7 can stall
/// when it lands while the first fragments load).
pub const BASE_PARAM: &str = "base";

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

fn default_ttl() -> u64 {
    300
}

/// A Content Steering manifest (HLS Content Steering 1.2, DASH-IF CTS 001): the same JSON
/// for HLS and DASH players.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringManifest {
    /// Always 1.
    #[serde(rename = "VERSION")]
    pub version: u32,
    /// Seconds until the player asks again (absent: 300, as the specs say).
    #[serde(rename = "TTL", default = "default_ttl")]
    pub ttl: u64,
    /// Where to ask next time, carrying the session's state (absent: the same URL again).
    #[serde(rename = "RELOAD-URI", default)]
    pub reload_uri: String,
    /// Pathway ids, best first.
    #[serde(rename = "PATHWAY-PRIORITY")]
    pub pathway_priority: Vec<String>,
    /// Pathways made by host replacement from the manifest's own pathway.
    #[serde(rename = "PATHWAY-CLONES", skip_serializing_if = "Vec::is_empty", default)]
    pub pathway_clones: Vec<PathwayClone>,
}

/// The request header a pre-warm fetch carries (value `1`): the edge writes what it fetches
/// to disk at once, without waiting for the object to earn the disk by requests.
pub const PREWARM_HEADER: &str = "strata-prewarm";

/// A pre-warm job to create (`POST /v1/admin/prewarm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrewarmRequest {
    /// Packaged manifests to expand (`/title/master.m3u8`, `/title/manifest.mpd`): every
    /// segment and init section of their renditions (at most `max_height` tall).
    #[serde(default)]
    pub manifests: Vec<String>,
    /// Further object paths to fill as they are.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Clusters whose edges fill; with `regions` empty too: every cluster.
    #[serde(default)]
    pub clusters: Vec<String>,
    /// Regions whose edges fill (beside `clusters`).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Tallest video rendition to fill; 0: all.
    #[serde(default)]
    pub max_height: u32,
    /// Fill window: not before this (RFC 3339); absent: now.
    #[serde(default)]
    pub start: Option<crate::api::control_plane::Timestamp>,
    /// Fill window: what is not done by then is left (RFC 3339); absent: no end.
    #[serde(default)]
    pub end: Option<crate::api::control_plane::Timestamp>,
    /// Bandwidth cap per edge, kbit/s; 0: none.
    #[serde(default)]
    pub bandwidth_kbps: u64,
    /// Objects fetched at once per edge.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Share of an edge's cache the job may fill (0-1]; the rest is left alone.
    #[serde(default = "default_cache_share")]
    pub max_cache_share: f64,
}

fn default_concurrency() -> u32 {
    4
}

fn default_cache_share() -> f64 {
    0.5
}

/// One edge's progress in a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeProgress {
    /// The edge.
    pub edge_id: String,
    /// Objects filled by this job.
    pub done: u64,
    /// Objects the edge already had.
    pub skipped: u64,
    /// Objects that failed.
    pub failed: u64,
    /// Objects left out: over the cache share, or after the window closed.
    pub left: u64,
    /// Body bytes moved to the edge.
    pub bytes: u64,
}

/// A pre-warm job and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrewarmJob {
    /// Job id.
    pub id: String,
    /// `waiting` (for its window), `running`, `done`, `cancelled`, `failed`.
    pub state: String,
    /// Why it failed, or a note on how it ended.
    pub message: Option<String>,
    /// The request.
    pub request: PrewarmRequest,
    /// Objects per edge.
    pub objects: u64,
    /// Progress per target edge.
    pub edges: Vec<EdgeProgress>,
}

/// Every job, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrewarmJobs {
    /// The jobs.
    pub jobs: Vec<PrewarmJob>,
}
