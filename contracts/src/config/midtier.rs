//! The mid-tier's config file (`strata midtier --config`), version 1.
//!
//! A mid-tier runs the edge's cache engine in the parent role, so its config has the edge's
//! shape ([`EdgeConfig`]); what differs is the documented default, `configs/midtier.toml`,
//! embedded here: a field a file leaves out takes the value shown there.

pub use super::edge::EdgeConfig as MidtierConfig;

/// The documented default config, as printed by `strata midtier --print-default-config`.
pub const DEFAULT_TOML: &str = include_str!("../../../configs/midtier.toml");

/// The built-in default.
pub fn default_config() -> MidtierConfig {
    super::parse("configs/midtier.toml", DEFAULT_TOML).expect("the embedded midtier.toml parses")
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::{Validate, parse_over};

    #[test]
    fn documented_default_is_valid_and_differs_from_the_edge_where_it_should() {
        let c = default_config();
        assert_eq!(c.validate(), Ok(()));
        let edge = MidtierConfig::default();
        assert_ne!(c.listen, edge.listen);
        assert_ne!(c.admin_listen, edge.admin_listen);
        assert_ne!(c.cache.dir, edge.cache.dir);
    }

    #[test]
    fn a_partial_file_keeps_the_midtier_defaults() {
        let c: MidtierConfig = parse_over(DEFAULT_TOML, "m.toml", "[cache]\nmemory_mb = 7\n").unwrap();
        assert_eq!(c.cache.memory_mb, 7);
        assert_eq!(c.cache.dir, default_config().cache.dir);
        assert_eq!(c.listen, default_config().listen);
        let bad: Result<MidtierConfig, _> = parse_over(DEFAULT_TOML, "m.toml", "[cache]\nmemory = 7\n");
        assert!(bad.unwrap_err().to_string().contains("cache.memory"));
    }
}
