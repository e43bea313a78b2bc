//! Types that cross Strata's process boundaries, defined once and versioned.
//!
//! Every role's config file lives in [`config`]; later issues add playback tokens, steering
//! manifests, heartbeats and admin API bodies here, so that the writer and the reader of a
//! contract can never drift apart.

pub mod config;
