//! The edge appliance: a pingora proxy in front of one upstream, over a foyer memory + disk
//! segment cache.
//!
//! pingora-proxy and pingora-cache carry the HTTP work (collapsing, freshness,
//! revalidation, stale serving, ranges); the modules here are the policy they are given:
//! [`cache_key`] (what identifies an object), `cacheability` (what may be stored, with
//! RFC 9213's targeted fields), `cache_status` (RFC 9211), and `store` (where bytes live).

mod admin_api;
pub mod cache_key;
mod cache_status;
mod cacheability;
mod collapse;
mod metrics;
mod proxy;
mod request_directives;
mod revalidation;
mod server;
mod store;

pub use server::{Edge, EdgeError};
