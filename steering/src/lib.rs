//! Strata's steering: which edge (or external CDN) serves each viewer.
//!
//! - `fleet`: registered edges, heartbeats, health polls, rotation (a pure state machine)
//! - `decide`: the per-viewer decision: prefix, then nearest cluster, a home edge per title,
//!   overload spill, external CDNs (pure)

pub mod decide;
pub mod fleet;
