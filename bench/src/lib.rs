//! Strata's load tools. Today: `fetch`, a protocol-level fetch benchmark (HTTP/1.1, HTTP/2,
//! HTTP/3) behind `strata fetch-bench`, and the player model of the coming load generator:
//! `abr` (rendition choice) and `viewer` (buffer, stalls and QoE over a given clock, and
//! bandwidth traces). The network shell that drives viewers against a CDN (`strata
//! loadgen`) is not built yet.

pub mod abr;
pub mod fetch;
pub mod viewer;
