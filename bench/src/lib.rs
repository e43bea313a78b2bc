//! Strata's load tools. Today: `control_plane` (`strata cp-bench`, playback start, search
//! and browse under concurrent load), `fetch`, a protocol-level fetch benchmark (HTTP/1.1, HTTP/2,
//! HTTP/3) behind `strata fetch-bench`, and the player model of the coming load generator:
//! `abr` (rendition choice) and `viewer` (buffer, stalls and QoE over a given clock, and
//! bandwidth traces), driven against a CDN by `loadgen` (`strata loadgen`, HLS over HTTP/1.1
//! or HTTP/2).

pub mod abr;
pub mod cmcd;
pub mod control_plane;
pub mod fetch;
pub mod loadgen;
pub mod viewer;
