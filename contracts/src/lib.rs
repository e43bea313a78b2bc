//! Types that cross Strata's process boundaries, defined once and versioned.
//!
//! Every role's config file lives in [`config`], the admin API bodies in [`api`]; playback and
//! session tokens in [`token`]; later issues add steering manifests and heartbeats here, so that the writer
//! and the reader of a contract can never drift apart.

pub mod api;
pub mod config;
pub mod forwarded;
pub mod query;
pub mod token;
