//! The origin's config file (`strata origin --config`), version 1.
//!
//! The documented default is `configs/origin.toml`, embedded here so that the file an
//! operator copies and the defaults the binary runs with are one text.

use super::{FieldError, Validate, check_version, validate_cache_control};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The documented default config, as printed by `strata origin --print-default-config`.
pub const DEFAULT_TOML: &str = include_str!("../../../configs/origin.toml");

/// Everything `strata origin` needs to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// Config format version.
    pub version: u32,
    /// Content listener (HTTP/1.1 and h2c).
    pub listen: SocketAddr,
    /// Admin listener: `/metrics` and `/healthz`.
    pub admin_listen: SocketAddr,
    /// Grace period for in-flight requests on shutdown.
    pub drain_timeout_secs: u64,
    /// `Access-Control-Allow-Origin` value; empty for no CORS headers.
    pub cors_allow_origin: String,
    /// Where content is read from.
    pub storage: StorageConfig,
    /// `Cache-Control` per path class.
    pub cache_control: CacheControlConfig,
    /// Request limits.
    pub limits: LimitsConfig,
}

/// Which storage backend holds the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A local directory.
    Local,
    /// An S3-compatible bucket.
    S3,
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The backend in use.
    pub backend: Backend,
    /// Content root for the local backend.
    pub root: PathBuf,
    /// Settings for the S3 backend.
    pub s3: S3Config,
}

/// S3-compatible object storage settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL; empty for AWS.
    pub endpoint: String,
    /// Region name.
    pub region: String,
    /// Key prefix of the content tree.
    pub prefix: String,
    /// Whether a plain-http endpoint is allowed.
    pub allow_http: bool,
    /// Access key id; empty to take it from the environment.
    pub access_key_id: String,
    /// Secret access key; empty to take it from the environment.
    pub secret_access_key: String,
}

/// `Cache-Control` header values per path class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheControlConfig {
    /// Media and init segments.
    pub segment: String,
    /// VOD playlists and MPDs.
    pub vod_manifest: String,
    /// Live playlists and MPDs.
    pub live_manifest: String,
    /// Any other file.
    pub other: String,
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest accepted request header block, in bytes.
    pub max_header_bytes: usize,
    /// Most ranges accepted in one `Range` header.
    pub max_ranges: usize,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            version: super::CONFIG_VERSION,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9080)),
            drain_timeout_secs: 30,
            cors_allow_origin: "*".into(),
            storage: StorageConfig::default(),
            cache_control: CacheControlConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            root: PathBuf::from("/var/lib/strata/content"),
            s3: S3Config::default(),
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            prefix: String::new(),
            allow_http: false,
            access_key_id: String::new(),
            secret_access_key: String::new(),
        }
    }
}

impl Default for CacheControlConfig {
    fn default() -> Self {
        Self {
            segment: "public, max-age=31536000, immutable".into(),
            vod_manifest: "public, max-age=3600".into(),
            live_manifest: "public, max-age=1".into(),
            other: "public, max-age=300".into(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_ranges: 16,
        }
    }
}

/// Smallest header limit that still admits an ordinary player request.
const MIN_HEADER_BYTES: usize = 1024;
/// Largest header limit: the HTTP/1 parser's own buffer is sized from it.
const MAX_HEADER_BYTES: usize = 1024 * 1024;

impl Validate for OriginConfig {
    fn validate(&self) -> Result<(), FieldError> {
        check_version(self.version)?;
        // Port 0 asks the OS for a free port, so two such addresses never collide.
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(FieldError::new(
                "admin_listen",
                format!(
                    "is the same address as `listen` ({}); give it its own",
                    self.listen
                ),
            ));
        }
        let cors = &self.cors_allow_origin;
        let one_origin = (cors.starts_with("http://") || cors.starts_with("https://"))
            && cors.bytes().all(|b| b.is_ascii_graphic());
        if !cors.is_empty() && cors != "*" && !one_origin {
            return Err(FieldError::new(
                "cors_allow_origin",
                format!("`{cors}` is not \"*\", \"\" or one origin such as https://player.example"),
            ));
        }
        match self.storage.backend {
            Backend::Local => {
                let root = &self.storage.root;
                if root.as_os_str().is_empty() {
                    return Err(FieldError::new("storage.root", "is empty"));
                }
                if !root.is_dir() {
                    return Err(FieldError::new(
                        "storage.root",
                        format!("`{}` is not a directory that exists", root.display()),
                    ));
                }
            }
            Backend::S3 => {
                let s3 = &self.storage.s3;
                if s3.bucket.is_empty() {
                    return Err(FieldError::new(
                        "storage.s3.bucket",
                        "is required when storage.backend = \"s3\"",
                    ));
                }
                let is_url = s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://");
                if !s3.endpoint.is_empty() && !is_url {
                    return Err(FieldError::new(
                        "storage.s3.endpoint",
                        format!("`{}` is not an http:// or https:// URL", s3.endpoint),
                    ));
                }
                if s3.endpoint.starts_with("http://") && !s3.allow_http {
                    return Err(FieldError::new(
                        "storage.s3.endpoint",
                        "is plain http; set storage.s3.allow_http = true to allow it",
                    ));
                }
                if s3.access_key_id.is_empty() != s3.secret_access_key.is_empty() {
                    return Err(FieldError::new(
                        "storage.s3.secret_access_key",
                        "access_key_id and secret_access_key must be given together",
                    ));
                }
            }
        }
        let cc = &self.cache_control;
        validate_cache_control("cache_control.segment", &cc.segment)?;
        validate_cache_control("cache_control.vod_manifest", &cc.vod_manifest)?;
        validate_cache_control("cache_control.live_manifest", &cc.live_manifest)?;
        validate_cache_control("cache_control.other", &cc.other)?;
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&self.limits.max_header_bytes) {
            return Err(FieldError::new(
                "limits.max_header_bytes",
                format!("must be between {MIN_HEADER_BYTES} and {MAX_HEADER_BYTES}"),
            ));
        }
        if self.limits.max_ranges == 0 {
            return Err(FieldError::new("limits.max_ranges", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::{ConfigError, parse};

    fn with_root(mut c: OriginConfig) -> OriginConfig {
        c.storage.root = std::env::temp_dir();
        c
    }

    #[test]
    fn documented_default_is_the_default() {
        let parsed: OriginConfig = parse("configs/origin.toml", DEFAULT_TOML).unwrap();
        assert_eq!(parsed, OriginConfig::default());
    }

    #[test]
    fn empty_file_means_defaults() {
        let parsed: OriginConfig = parse("x", "").unwrap();
        assert_eq!(parsed, OriginConfig::default());
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let err = parse::<OriginConfig>("o.toml", "[storage]\nrooot = \"/x\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("o.toml: field `storage"), "{msg}");
        assert!(msg.contains("rooot"), "{msg}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let err = parse::<OriginConfig>("o.toml", "[limits]\nmax_ranges = \"many\"\n").unwrap_err();
        match err {
            ConfigError::Field { error, .. } => assert_eq!(error.field, "limits.max_ranges"),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn bad_address_is_named() {
        let err = parse::<OriginConfig>("o.toml", "listen = \"nowhere\"\n").unwrap_err();
        assert!(err.to_string().contains("field `listen`"), "{err}");
    }

    #[test]
    fn syntax_error_is_reported_as_such() {
        let err = parse::<OriginConfig>("o.toml", "listen = \n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }

    #[test]
    fn missing_root_is_refused() {
        let mut c = OriginConfig::default();
        c.storage.root = "/definitely/not/here".into();
        assert_eq!(c.validate().unwrap_err().field, "storage.root");
    }

    #[test]
    fn colliding_listeners_are_refused() {
        let mut c = with_root(OriginConfig::default());
        c.admin_listen = c.listen;
        assert_eq!(c.validate().unwrap_err().field, "admin_listen");
    }

    #[test]
    fn s3_needs_a_bucket_and_paired_credentials() {
        let mut c = OriginConfig::default();
        c.storage.backend = Backend::S3;
        assert_eq!(c.validate().unwrap_err().field, "storage.s3.bucket");
        c.storage.s3.bucket = "b".into();
        assert_eq!(c.validate(), Ok(()));
        c.storage.s3.access_key_id = "k".into();
        assert_eq!(c.validate().unwrap_err().field, "storage.s3.secret_access_key");
        c.storage.s3.secret_access_key = "s".into();
        c.storage.s3.endpoint = "http://127.0.0.1:5000".into();
        assert_eq!(c.validate().unwrap_err().field, "storage.s3.endpoint");
        c.storage.s3.allow_http = true;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn bad_cache_control_and_limits_are_named() {
        let mut c = with_root(OriginConfig::default());
        c.cache_control.live_manifest = "max-age=soon".into();
        assert_eq!(c.validate().unwrap_err().field, "cache_control.live_manifest");
        let mut c = with_root(OriginConfig::default());
        c.limits.max_ranges = 0;
        assert_eq!(c.validate().unwrap_err().field, "limits.max_ranges");
        c.limits.max_ranges = 1;
        c.limits.max_header_bytes = 10;
        assert_eq!(c.validate().unwrap_err().field, "limits.max_header_bytes");
    }

    #[test]
    fn cors_origin_must_be_star_empty_or_one_origin() {
        let mut c = with_root(OriginConfig::default());
        c.cors_allow_origin = "https://player.example".into();
        assert_eq!(c.validate(), Ok(()));
        c.cors_allow_origin = "a b".into();
        assert_eq!(c.validate().unwrap_err().field, "cors_allow_origin");
    }

    #[test]
    fn wrong_version_is_refused() {
        let mut c = with_root(OriginConfig::default());
        c.version = 2;
        assert_eq!(c.validate().unwrap_err().field, "version");
    }
}
