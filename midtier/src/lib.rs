//! The mid-tier: the parent cache and origin shield that edges hash to, so the origin sees
//! each object about once.
//!
//! A mid-tier is the edge's cache engine (`strata-edge`) run in the parent role
//! (`strata_edge::Role::Midtier`): the same store, collapsing, RFC 9111 rules, hop safety and
//! origin failover, with its own defaults (`configs/midtier.toml`) and metric names
//! (`strata_midtier_*`). `strata midtier` wires it in the binary (`src/midtier_role.rs`).
//! This crate holds nothing yet: parts that only a parent needs (shield-wide pre-warm
//! intake, for one) land here when they are built.
