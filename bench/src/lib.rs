//! Strata's load tools: `control_plane` (`strata cp-bench`, playback start, search and browse
//! under concurrent load), `fetch`, a protocol-level fetch benchmark (HTTP/1.1, HTTP/2,
//! HTTP/3) behind `strata fetch-bench`, and the load generator `loadgen` (`strata loadgen`):
//! the player model `abr` (rendition choice) and `viewer` (buffer, stalls and QoE over a given
//! clock, bandwidth traces) driven against a CDN over HTTP/1.1, HTTP/2 or HTTP/3, with `cmcd`
//! (CTA-5004 keys) and `cache_figures` (the cache's own hit ratio over a run).

pub mod abr;
pub mod cache_figures;
pub mod cmcd;
pub mod control_plane;
pub mod fetch;
pub mod loadgen;
pub mod pathway;
pub mod presentation;
pub mod trust;
pub mod viewer;
