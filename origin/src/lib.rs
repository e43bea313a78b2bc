//! Strata's origin: the source of truth for packaged content.
//!
//! [`OriginServer`] serves a content tree over HTTP/1.1 and HTTP/2 from a storage backend
//! (`storage`: a local directory or S3-compatible object storage), with the HTTP semantics
//! a CDN's upper tiers rely on: strong validators, conditional requests, single and
//! multi-range responses, and `Cache-Control` per class of path. [`packaging`] makes content.

pub mod conditional;
mod content_type;
mod metrics;
mod multipart;
pub mod packaging;
mod path_class;
pub mod range;
mod request_path;
mod server;
mod service;
mod storage;
pub mod synthetic;

pub use server::{OriginError, OriginHealth, OriginServer};
