//! Steering's config file (`strata steering --config`), version 1.
//!
//! The documented default is `configs/steering.toml`, embedded here.

use super::{FieldError, Validate, check_version};
use crate::token::{TokenKey, validate_keys};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The documented default config, as printed by `strata steering --print-default-config`.
pub const DEFAULT_TOML: &str = include_str!("../../../configs/steering.toml");

/// Everything `strata steering` needs to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SteeringConfig {
    /// Config format version.
    pub version: u32,
    /// API listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// The URL players reach steering at; empty: `http://<listen>`.
    pub public_url: String,
    /// Directory of the fleet store.
    pub data_dir: PathBuf,
    /// Bearer credential of the admin API; empty disables it.
    pub admin_token: String,
    /// Keys that sign and verify edge credentials; the first signs.
    pub edge_keys: Vec<TokenKey>,
    /// Heartbeat silence that takes an edge out of rotation, milliseconds.
    pub heartbeat_timeout_ms: u64,
    /// How often each edge's health endpoint is polled, milliseconds; 0: never.
    pub poll_interval_ms: u64,
    /// Consecutive failed polls that take an edge out of rotation.
    pub poll_fail_after: u32,
    /// Load share at or above which an edge is skipped for new viewers.
    pub overload: f64,
    /// Content Steering manifest TTL, seconds.
    pub ttl_secs: u64,
    /// Our edges named in a decision at most, best first (external CDNs come on top).
    pub max_pathways: usize,
    /// GeoLite2-City database; empty: no locations.
    pub geoip_db: PathBuf,
    /// Header with the real client address behind a trusted proxy; empty: the peer.
    pub client_ip_header: String,
    /// Where pre-warm jobs read packaged manifests.
    pub origin_url: String,
    /// Keys that sign pre-warm fetches' playback tokens; the first signs.
    pub playback_keys: Vec<TokenKey>,
    /// External CDNs, after our clusters.
    pub cdns: Vec<CdnConfig>,
}

/// An external CDN as a pathway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnConfig {
    /// Pathway id, for example `cdn-b`.
    pub name: String,
    /// Base URL (`https://cdn-b.example`), whose host replaces ours for this pathway.
    pub url: String,
    /// Share among CDNs of equal cost.
    #[serde(default = "one")]
    pub weight: u32,
    /// Lower is preferred.
    #[serde(default)]
    pub cost: u32,
}

fn one() -> u32 {
    1
}

impl Default for SteeringConfig {
    fn default() -> Self {
        Self {
            version: super::CONFIG_VERSION,
            listen: SocketAddr::from(([127, 0, 0, 1], 8070)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9070)),
            public_url: String::new(),
            data_dir: PathBuf::from("/var/lib/strata/steering"),
            admin_token: String::new(),
            edge_keys: Vec::new(),
            heartbeat_timeout_ms: 10_000,
            poll_interval_ms: 2000,
            poll_fail_after: 2,
            overload: 0.85,
            ttl_secs: 30,
            max_pathways: 8,
            geoip_db: PathBuf::new(),
            client_ip_header: String::new(),
            origin_url: "http://127.0.0.1:8080".into(),
            playback_keys: Vec::new(),
            cdns: Vec::new(),
        }
    }
}

impl SteeringConfig {
    /// The URL players reach steering at.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// Whether `s` is a pathway id as Content Steering allows: `[A-Za-z0-9._-]+`.
pub fn is_pathway_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Validate for SteeringConfig {
    fn validate(&self) -> Result<(), FieldError> {
        check_version(self.version)?;
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(FieldError::new("admin_listen", "must differ from listen"));
        }
        if !self.public_url.is_empty()
            && !self.public_url.starts_with("http://")
            && !self.public_url.starts_with("https://")
        {
            return Err(FieldError::new(
                "public_url",
                "must start with http:// or https://",
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(FieldError::new("data_dir", "is required"));
        }
        validate_keys(&self.edge_keys).map_err(|e| FieldError::new("edge_keys", e.to_string()))?;
        validate_keys(&self.playback_keys).map_err(|e| FieldError::new("playback_keys", e.to_string()))?;
        if !self.origin_url.starts_with("http://") && !self.origin_url.starts_with("https://") {
            return Err(FieldError::new(
                "origin_url",
                "must start with http:// or https://",
            ));
        }
        if self.heartbeat_timeout_ms == 0 {
            return Err(FieldError::new("heartbeat_timeout_ms", "must be at least 1"));
        }
        if self.poll_fail_after == 0 {
            return Err(FieldError::new("poll_fail_after", "must be at least 1"));
        }
        if !(self.overload > 0.0 && self.overload <= 1.0) {
            return Err(FieldError::new("overload", "must be above 0 and at most 1"));
        }
        if !(1..=100).contains(&self.max_pathways) {
            return Err(FieldError::new("max_pathways", "must be 1-100"));
        }
        if self.ttl_secs == 0 {
            return Err(FieldError::new("ttl_secs", "must be at least 1"));
        }
        if !self.client_ip_header.is_empty() && !super::edge::is_token(&self.client_ip_header) {
            return Err(FieldError::new("client_ip_header", "is not a header name"));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.cdns {
            if !is_pathway_id(&c.name) || c.name.starts_with("edge-") {
                return Err(FieldError::new(
                    "cdns",
                    format!(
                        "`{}`: a name is 1-64 of A-Z a-z 0-9 . _ - and does not start with edge-",
                        c.name
                    ),
                ));
            }
            if !seen.insert(&c.name) {
                return Err(FieldError::new("cdns", format!("`{}` appears twice", c.name)));
            }
            if !c.url.starts_with("http://") && !c.url.starts_with("https://") {
                return Err(FieldError::new(
                    "cdns",
                    format!("`{}`: url must start with http:// or https://", c.name),
                ));
            }
            if c.weight == 0 {
                return Err(FieldError::new(
                    "cdns",
                    format!("`{}`: weight must be at least 1", c.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::parse;

    #[test]
    fn documented_default_is_the_default_and_valid() {
        let parsed: SteeringConfig = parse("configs/steering.toml", DEFAULT_TOML).unwrap();
        assert_eq!(parsed, SteeringConfig::default());
        assert_eq!(parsed.validate(), Ok(()));
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |f: &dyn Fn(&mut SteeringConfig)| {
            let mut c = SteeringConfig::default();
            f(&mut c);
            c.validate().unwrap_err().field
        };
        assert_eq!(bad(&|c| c.overload = 1.5), "overload");
        assert_eq!(bad(&|c| c.ttl_secs = 0), "ttl_secs");
        let cdn = |name: &str, url: &str| CdnConfig {
            name: name.into(),
            url: url.into(),
            weight: 1,
            cost: 0,
        };
        assert_eq!(bad(&|c| c.cdns = vec![cdn("edge-x", "https://x")]), "cdns");
        assert_eq!(bad(&|c| c.cdns = vec![cdn("b", "ftp://x")]), "cdns");
        assert_eq!(
            bad(&|c| c.cdns = vec![cdn("b", "https://x"), cdn("b", "https://y")]),
            "cdns"
        );
    }
}
