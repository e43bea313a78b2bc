//! The control plane's config file (`strata control-plane --config`), version 1.
//!
//! The documented default is `configs/control-plane.toml`, embedded here.

use super::{FieldError, Validate, check_version};
use crate::token::{TokenKey, validate_keys};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The documented default config, as printed by `strata control-plane --print-default-config`.
pub const DEFAULT_TOML: &str = include_str!("../../../configs/control-plane.toml");

/// Everything `strata control-plane` needs to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlPlaneConfig {
    /// Config format version.
    pub version: u32,
    /// API listener.
    pub listen: SocketAddr,
    /// Admin listener: `/metrics` and `/healthz`.
    pub admin_listen: SocketAddr,
    /// The URL players reach this service at; empty: `http://<listen>`.
    pub public_url: String,
    /// Database URL: empty (SQLite in `data_dir`), `sqlite://...` or `postgres://...`.
    pub database: String,
    /// Directory for the SQLite file and a generated token key.
    pub data_dir: PathBuf,
    /// Bearer credential of the admin API; empty disables it.
    pub admin_token: String,
    /// Base URL of the CDN that segment URLs point at.
    pub cdn_url: String,
    /// Where packaged manifests are read.
    pub origin_url: String,
    /// Content steering server; empty for none.
    pub steering_url: String,
    /// Hosts (or `*.suffix`) HLS pathway clones may name as a play's CDN, beside `cdn_url`'s.
    pub pathway_hosts: Vec<String>,
    /// MaxMind database for client countries; empty: unknown.
    pub geoip_db: PathBuf,
    /// Header with the real client address behind a trusted proxy; empty: the peer address.
    pub client_ip_header: String,
    /// Lifetime of playback tokens, seconds.
    pub playback_token_ttl_secs: u64,
    /// Lifetime of sign-in sessions, seconds.
    pub session_ttl_secs: u64,
    /// How often the search index checks the database for changes made elsewhere, seconds.
    pub search_refresh_secs: u64,
    /// Signing keys; the first signs. Empty: a key generated once and kept in `data_dir`.
    pub token_keys: Vec<TokenKey>,
    /// Subscription tiers.
    pub tiers: Vec<RenditionCeiling>,
    /// Device classes.
    pub devices: Vec<RenditionCeiling>,
}

/// A named class (tier or device) and the tallest video rendition it may get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenditionCeiling {
    /// The class's name, as accounts and players give it.
    pub name: String,
    /// Tallest video height, pixels.
    pub max_height: u32,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        let ceiling = |name: &str, max_height| RenditionCeiling {
            name: name.into(),
            max_height,
        };
        Self {
            version: super::CONFIG_VERSION,
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            public_url: String::new(),
            database: String::new(),
            data_dir: PathBuf::from("/var/lib/strata/control-plane"),
            admin_token: String::new(),
            cdn_url: "http://127.0.0.1:8081".into(),
            origin_url: "http://127.0.0.1:8080".into(),
            steering_url: String::new(),
            pathway_hosts: Vec::new(),
            geoip_db: PathBuf::new(),
            client_ip_header: String::new(),
            playback_token_ttl_secs: 21_600,
            session_ttl_secs: 2_592_000,
            search_refresh_secs: 10,
            token_keys: Vec::new(),
            tiers: vec![
                ceiling("basic", 540),
                ceiling("standard", 1080),
                ceiling("premium", 2160),
            ],
            devices: vec![ceiling("phone", 720), ceiling("web", 1080), ceiling("tv", 2160)],
        }
    }
}

impl ControlPlaneConfig {
    /// Whether `host` (no port) may be named by an HLS pathway clone as a play's CDN.
    pub fn pathway_host_allowed(&self, host: &str) -> bool {
        let cdn_host = self
            .cdn_url
            .split_once("://")
            .map_or("", |(_, rest)| rest)
            .split(['/', '?'])
            .next()
            .unwrap_or("");
        let cdn_host = cdn_host.rsplit_once(':').map_or(cdn_host, |(h, _)| h);
        host.eq_ignore_ascii_case(cdn_host)
            || self
                .pathway_hosts
                .iter()
                .any(|allowed| match allowed.strip_prefix("*.") {
                    Some(suffix) => host
                        .len()
                        .checked_sub(suffix.len() + 1)
                        .is_some_and(|cut| host[cut..].eq_ignore_ascii_case(&format!(".{suffix}"))),
                    None => host.eq_ignore_ascii_case(allowed),
                })
    }

    /// The URL players reach this service at.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

fn http_url(field: &str, url: &str, required: bool) -> Result<(), FieldError> {
    if url.is_empty() && !required {
        return Ok(());
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| FieldError::new(field, format!("`{url}` must start with http:// or https://")))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(FieldError::new(field, format!("`{url}` has no host")));
    }
    Ok(())
}

impl Validate for ControlPlaneConfig {
    fn validate(&self) -> Result<(), FieldError> {
        check_version(self.version)?;
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(FieldError::new("admin_listen", "must differ from listen"));
        }
        http_url("public_url", &self.public_url, false)?;
        http_url("cdn_url", &self.cdn_url, true)?;
        http_url("origin_url", &self.origin_url, true)?;
        http_url("steering_url", &self.steering_url, false)?;
        if let Some(bad) = self
            .pathway_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains(['/', ':', '?', '@', ' ']))
        {
            return Err(FieldError::new(
                "pathway_hosts",
                format!("`{bad}` must be a host name such as edge-1.example or *.edges.example"),
            ));
        }
        let db = &self.database;
        if !(db.is_empty()
            || db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(FieldError::new(
                "database",
                format!("`{db}` must be empty, sqlite://FILE or postgres://..."),
            ));
        }
        if db.is_empty() && self.data_dir.as_os_str().is_empty() {
            return Err(FieldError::new("data_dir", "is required when database is empty"));
        }
        if !self.client_ip_header.is_empty() && !super::edge::is_token(&self.client_ip_header) {
            return Err(FieldError::new("client_ip_header", "is not a header name"));
        }
        if self.playback_token_ttl_secs == 0 {
            return Err(FieldError::new("playback_token_ttl_secs", "must be at least 1"));
        }
        if self.search_refresh_secs == 0 {
            return Err(FieldError::new("search_refresh_secs", "must be at least 1"));
        }
        if self.session_ttl_secs == 0 {
            return Err(FieldError::new("session_ttl_secs", "must be at least 1"));
        }
        validate_keys(&self.token_keys).map_err(|e| FieldError::new("token_keys", e.to_string()))?;
        for (field, list) in [("tiers", &self.tiers), ("devices", &self.devices)] {
            if list.is_empty() {
                return Err(FieldError::new(field, "must name at least one class"));
            }
            let mut seen = std::collections::HashSet::new();
            for c in list {
                if c.name.is_empty()
                    || !c
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
                {
                    return Err(FieldError::new(
                        field,
                        format!("`{}` must be letters, digits, _ or -", c.name),
                    ));
                }
                if !seen.insert(&c.name) {
                    return Err(FieldError::new(field, format!("`{}` appears twice", c.name)));
                }
                if c.max_height == 0 {
                    return Err(FieldError::new(
                        field,
                        format!("`{}`: max_height must be at least 1", c.name),
                    ));
                }
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
        let parsed: ControlPlaneConfig = parse("configs/control-plane.toml", DEFAULT_TOML).unwrap();
        assert_eq!(parsed, ControlPlaneConfig::default());
        assert_eq!(parsed.validate(), Ok(()));
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |f: &dyn Fn(&mut ControlPlaneConfig)| {
            let mut c = ControlPlaneConfig::default();
            f(&mut c);
            c.validate().unwrap_err().field
        };
        assert_eq!(bad(&|c| c.database = "mysql://x".into()), "database");
        assert_eq!(bad(&|c| c.cdn_url = "edge:8081".into()), "cdn_url");
        assert_eq!(bad(&|c| c.tiers.clear()), "tiers");
        assert_eq!(bad(&|c| c.devices[1].name = "phone".into()), "devices");
        assert_eq!(
            bad(&|c| c.token_keys = vec![TokenKey {
                id: "k".into(),
                secret: "short".into()
            }]),
            "token_keys"
        );
        assert_eq!(
            bad(&|c| c.client_ip_header = "x forwarded".into()),
            "client_ip_header"
        );
        assert_eq!(
            bad(&|c| c.pathway_hosts = vec!["edge:8081".into()]),
            "pathway_hosts"
        );
    }

    #[test]
    fn pathway_hosts_allow_the_cdn_and_listed_names_only() {
        let c = ControlPlaneConfig {
            cdn_url: "http://cdn.example:8081".into(),
            pathway_hosts: vec!["edge-1.example".into(), "*.edges.example".into()],
            ..ControlPlaneConfig::default()
        };
        assert!(c.pathway_host_allowed("cdn.example"));
        assert!(c.pathway_host_allowed("EDGE-1.example"));
        assert!(c.pathway_host_allowed("lon-3.edges.example"));
        assert!(!c.pathway_host_allowed("edges.example"));
        assert!(!c.pathway_host_allowed("evil-edges.example"));
        assert!(!c.pathway_host_allowed("attacker.example"));
    }
}
