//! The cache engine of the edge appliance (and, in the parent role, of the mid-tier): a
//! pingora proxy over a foyer memory + disk segment cache, in front of parents chosen per
//! object (`parent_select`, `health`, `upstreams`) or of the origins, with hop safety (`hop`).
//!
//! pingora-proxy and pingora-cache carry the HTTP work (collapsing, freshness,
//! revalidation, stale serving, ranges); the modules here are the policy they are given:
//! [`cache_key`] (what identifies an object), `cacheability` (what may be stored, with
//! RFC 9213's targeted fields), `cache_status` (RFC 9211), and `store` (where bytes live).

mod admin_api;
mod body_channel;
mod byteranges;
pub mod cache_key;
mod cache_status;
pub mod cacheability;
mod client_socket;
mod collapse;
mod dns;
mod health;
mod hit_repair;
mod hop;
mod http2;
mod http3;
mod metrics;
mod parent_select;
mod proxy;
mod relay;
mod request_directives;
mod response_tasks;
mod resume;
mod revalidation;
mod server;
mod slice;
mod slicer;
mod steering_link;
mod store;
mod tls_certs;
mod token_gate;
mod upstreams;

pub use server::{Edge, EdgeError, Role};
