//! The edge's admin API, `/v1/...` on its admin listener, behind `Authorization: Bearer`.
//!
//! - `POST /v1/purge` with [`PurgeRequest`] answers [`PurgeResponse`]
//! - `GET /v1/inventory?prefix=/path/&limit=N` answers [`Inventory`]

use serde::{Deserialize, Serialize};

/// What to remove from the cache. A purged object is never served again: the next request
/// for it goes upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Exact URLs as players request them (`http://edge.example/t/seg-1.m4s`); the query is
    /// reduced the way the cache key reduces it (CMCD and tokens do not matter).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Path prefixes (`/titles/42/`): every cached object whose path starts with one of them,
    /// on any host.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeResponse {
    /// Objects removed (each stored variant counts once).
    pub purged: u64,
}

/// One cached object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryItem {
    /// The cache key: host, path and the query parameters that select content.
    pub key: String,
    /// Body bytes.
    pub bytes: u64,
    /// Stored variants (`Vary`) of this key.
    pub variants: u32,
}

/// What the cache holds under a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The prefix asked for.
    pub prefix: String,
    /// Objects, in key order, at most the limit asked for.
    pub objects: Vec<InventoryItem>,
    /// Objects under the prefix in all (not only those listed).
    pub count: u64,
    /// Body bytes under the prefix in all.
    pub bytes: u64,
    /// Whether `objects` was cut at the limit.
    pub truncated: bool,
}

/// The error body of every admin API refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable reason (`unauthorized`, `bad_request`, `disabled`).
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
}
