//! The edge's config file (`strata edge --config`), version 1.
//!
//! The documented default is `configs/edge.toml`, embedded here.

use super::{FieldError, Validate, check_version};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The documented default config, as printed by `strata edge --print-default-config`.
pub const DEFAULT_TOML: &str = include_str!("../../../configs/edge.toml");

/// Everything `strata edge` needs to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Config format version.
    pub version: u32,
    /// Player-facing listener (HTTP/1.1 and h2c).
    pub listen: SocketAddr,
    /// HTTPS listener (HTTP/1.1 and HTTP/2 by ALPN); `None` for cleartext only.
    #[serde(with = "optional_addr")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the HTTPS listener.
    pub tls_cert: PathBuf,
    /// PEM private key for the HTTPS listener.
    pub tls_key: PathBuf,
    /// DER OCSP response stapled with `tls_cert`; empty for none.
    pub tls_ocsp: PathBuf,
    /// Further certificates, each served to clients whose SNI it is valid for.
    pub tls_sni: Vec<SniCertificate>,
    /// How often certificate files are checked for changes, milliseconds; 0 never.
    pub tls_reload_ms: u64,
    /// Oldest TLS version the HTTPS listener accepts (HTTP/3 is TLS 1.3 always).
    pub tls_min_version: TlsVersion,
    /// Admin listener: `/metrics` and `/healthz`.
    pub admin_listen: SocketAddr,
    /// This node's name in `Via` and `CDN-Loop`; empty: made from the host name and `listen`.
    pub node_id: String,
    /// The origin's base URL: where misses go when no parent is configured (or, with
    /// `origin_fallback`, when every parent is down).
    pub upstream: String,
    /// Further origins, tried in this order when the ones before fail before answering.
    pub upstream_failover: Vec<String>,
    /// Parent caches (mid-tiers); each object is fetched from one, chosen by rendezvous hashing.
    pub parents: Vec<ParentConfig>,
    /// Whether to fetch from the origins directly when every parent is down.
    pub origin_fallback: bool,
    /// Whether a response whose upstream fails mid-body is continued from the next one, and a
    /// hit whose stored copy fails mid-response from the upstreams.
    pub resume_mid_body: bool,
    /// `Timing-Allow-Origin` added to responses that lack one; empty adds none.
    pub timing_allow_origin: String,
    /// How parents and origins are marked down and back up.
    pub health: HealthConfig,
    /// How upstream host names are resolved.
    pub dns: DnsConfig,
    /// HTTP/3 on the TLS port.
    pub http3: Http3Config,
    /// Grace period for in-flight requests on shutdown.
    pub drain_timeout_secs: u64,
    /// How long a write to a client may wait for the client to take data before the
    /// response is abandoned, seconds; 0: no limit.
    pub client_send_timeout_secs: u64,
    /// Unsent bytes a client connection's socket may hold before a write waits
    /// (`TCP_NOTSENT_LOWAT`), KiB; 0 leaves the kernel's setting.
    pub client_notsent_lowat_kb: u32,
    /// Proxy worker threads.
    pub threads: usize,
    /// Bearer credential for the admin API; empty disables it.
    pub admin_token: String,
    /// The segment cache.
    pub cache: CacheConfig,
    /// What goes into the cache key.
    pub cache_key: CacheKeyConfig,
    /// Upstream timeouts.
    pub upstream_timeouts: UpstreamTimeouts,
    /// Request collapsing.
    pub collapse: CollapseConfig,
    /// Playback tokens on player requests.
    pub token: TokenConfig,
    /// Registration and heartbeats to steering.
    pub steering: SteeringLink,
}

/// How this edge tells steering about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SteeringLink {
    /// Steering's base URL; empty: the edge does not register.
    pub url: String,
    /// This edge's credential (`strata steering --issue-credential <node_id>`).
    pub credential: String,
    /// The cluster (site) the edge belongs to; empty: its node id.
    pub cluster: String,
    /// The region the site is in, for pre-warm jobs by region; empty: none.
    pub region: String,
    /// Latitude of the site, degrees.
    pub lat: f64,
    /// Longitude of the site, degrees.
    pub lon: f64,
    /// Client prefixes this edge's cluster serves (CIDR).
    pub prefixes: Vec<String>,
    /// The URL players use for this edge; empty: `http://<listen>`.
    pub public_url: String,
    /// Heartbeat interval, milliseconds.
    pub heartbeat_ms: u64,
    /// Requests per second the edge is sized for; its reported load is the recent rate over
    /// this. 0: load is always reported as 0.
    pub capacity_rps: u64,
}

impl Default for SteeringLink {
    fn default() -> Self {
        Self {
            url: String::new(),
            credential: String::new(),
            cluster: String::new(),
            region: String::new(),
            lat: 0.0,
            lon: 0.0,
            prefixes: Vec::new(),
            public_url: String::new(),
            heartbeat_ms: 2000,
            capacity_rps: 0,
        }
    }
}

/// Whether player requests must carry a playback token, and the keys that verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Refuse requests without a valid token (401/403 with a reason).
    pub enforce: bool,
    /// The keys accepted, by id; the control plane signs with one of them.
    pub keys: Vec<crate::token::TokenKey>,
    /// Path prefixes served without a token (for example public artwork).
    pub exempt_paths: Vec<String>,
}

/// A certificate chosen by SNI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniCertificate {
    /// PEM certificate chain, leaf first; served for the names its leaf is valid for.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// DER OCSP response to staple; empty for none.
    #[serde(default)]
    pub ocsp: PathBuf,
}

/// One parent cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentConfig {
    /// Base URL, `http://host:port`.
    pub url: String,
    /// Relative share of the objects this parent is given.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// Active and passive health checking of parents and origins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Interval between probes of each parent, milliseconds; 0 turns probes off.
    pub probe_interval_ms: u64,
    /// How long a probe may take, milliseconds.
    pub probe_timeout_ms: u64,
    /// Consecutive failures (probes or real requests) that mark a node down.
    pub fail_after: u32,
    /// Consecutive successful probes that mark a down node up again.
    pub rise_after: u32,
    /// With probes off, how long a down node rests before one request may try it again.
    pub retry_down_after_ms: u64,
}

/// HTTP/3 (QUIC) on `tls_listen`'s port, over UDP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http3Config {
    /// Whether HTTP/3 is served when `tls_listen` is set.
    pub enabled: bool,
    /// Close a QUIC connection idle for this long, milliseconds.
    pub idle_timeout_ms: u64,
    /// Concurrent request streams per connection.
    pub max_streams: u32,
    /// Per-stream receive window, KiB.
    pub stream_window_kb: u32,
    /// Per-connection send window, MiB.
    pub send_window_mb: u32,
    /// `ma` of the `Alt-Svc` advertisement, seconds.
    pub alt_svc_max_age_secs: u64,
    /// Congestion controller: `cubic` or `bbr`.
    pub congestion: Congestion,
    /// QUIC connections served at once; further ones are refused.
    pub max_connections: u32,
    /// Above this many open connections, a new client must first prove its address (a
    /// Retry round trip), which blunts spoofed-source floods; 0 always asks.
    pub retry_above_connections: u32,
}

/// QUIC congestion controllers (both from quinn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Congestion {
    /// CUBIC (RFC 9438).
    Cubic,
    /// BBR.
    Bbr,
}

impl Default for Http3Config {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_timeout_ms: 30_000,
            max_streams: 256,
            stream_window_kb: 1024,
            send_window_mb: 16,
            alt_svc_max_age_secs: 86_400,
            congestion: Congestion::Cubic,
            max_connections: 10_000,
            retry_above_connections: 1_000,
        }
    }
}

/// Name resolution for upstream host names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Name servers (`ip` or `ip:port`); empty: the system's.
    #[serde(with = "nameservers")]
    pub nameservers: Vec<SocketAddr>,
}

/// Name servers as written: `10.0.0.53` (port 53) or `10.0.0.53:5353`.
mod nameservers {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::{IpAddr, SocketAddr};

    pub fn serialize<S: Serializer>(v: &[SocketAddr], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|a| a.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| {
                        serde::de::Error::custom(format!(
                            "`{s}` is not an address such as 10.0.0.53 or 10.0.0.53:53"
                        ))
                    })
            })
            .collect()
    }
}

/// The path every cache node answers itself, for its children's health probes.
pub const HEALTH_PROBE_PATH: &str = "/.strata/health";

/// TLS protocol versions, as the config names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 (RFC 8446).
    #[serde(rename = "1.3")]
    Tls13,
}

/// Memory-tier eviction policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Eviction {
    /// S3-FIFO.
    S3fifo,
    /// Least recently used.
    Lru,
    /// w-TinyLFU.
    Lfu,
}

/// One disk of the disk tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Directory for the cache files (on that disk's file system).
    pub path: PathBuf,
    /// Space to use there, MiB.
    pub size_mb: u64,
}

impl CacheConfig {
    /// The disk tier's disks, directory and MiB: `disks` when set, else `dir` with `disk_mb`
    /// (none when `disk_mb` is 0).
    pub fn disk_list(&self) -> Vec<(PathBuf, u64)> {
        if !self.disks.is_empty() {
            return self.disks.iter().map(|d| (d.path.clone(), d.size_mb)).collect();
        }
        if self.disk_mb > 0 {
            vec![(self.dir.clone(), self.disk_mb)]
        } else {
            Vec::new()
        }
    }
}

/// Cache tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Memory tier size, MiB.
    pub memory_mb: u64,
    /// Disk tier directory.
    pub dir: PathBuf,
    /// Disk tier size, MiB; 0 for memory only.
    pub disk_mb: u64,
    /// Several disks for the disk tier, each a directory on its own device; when set, `dir`
    /// and `disk_mb` are not used.
    pub disks: Vec<DiskConfig>,
    /// Memory-tier eviction policy.
    pub eviction: Eviction,
    /// Body chunk size, KiB; 0 chooses by disk size (1024 on disks of 1 GiB or more, else 256).
    pub chunk_kb: u64,
    /// Slice size, KiB: a range of an object not held whole is fetched and stored as the
    /// slices of this size it touches; 0 turns slicing off (ranges then fetch whole objects).
    pub slice_kb: u64,
    /// Disk write buffer, MiB.
    pub write_buffer_mb: u64,
    /// Disk probe interval, milliseconds.
    pub disk_check_ms: u64,
    /// Whether request `no-cache`, `max-age`, `min-fresh`, `max-stale` and `no-store` are
    /// honoured.
    pub honor_request_cache_control: bool,
    /// Requests an object needs within the recent past before it is written to disk; 1
    /// writes every object.
    pub disk_admission_requests: u32,
    /// Requests after which every object's request count is halved (how far "recent" goes);
    /// 0: 32 per MiB of disk.
    pub disk_admission_window: u64,
    /// Whether `disk_admission_requests` counts per MiB of body, so that large objects need
    /// more requests than small ones (popularity per byte).
    pub disk_admission_by_size: bool,
}

/// Cache key rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CacheKeyConfig {
    /// Query parameters left out of the key (besides `CMCD` and `token`).
    pub ignore_params: Vec<String>,
    /// When non-empty, only these query parameters are kept.
    pub only_params: Vec<String>,
    /// The host every key is made with, whatever host the request named; empty: the
    /// request's own host.
    pub host: String,
}

/// Upstream timeouts, milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTimeouts {
    /// Connect.
    pub connect_ms: u64,
    /// Each read: the response head, then each piece of the body.
    pub read_ms: u64,
    /// Further attempts when an upstream fails before its response head, each on the next
    /// candidate (the next parent or origin; the same one when it is the only one).
    #[serde(alias = "connect_retries")]
    pub retries: u32,
}

/// Request collapsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollapseConfig {
    /// How long a waiter waits for another request's fetch.
    pub wait_timeout_ms: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            version: super::CONFIG_VERSION,
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            tls_listen: None,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            tls_ocsp: PathBuf::new(),
            tls_sni: Vec::new(),
            tls_reload_ms: 2000,
            tls_min_version: TlsVersion::Tls13,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9081)),
            node_id: String::new(),
            upstream: "http://127.0.0.1:8080".into(),
            upstream_failover: Vec::new(),
            parents: Vec::new(),
            origin_fallback: false,
            resume_mid_body: true,
            timing_allow_origin: "*".into(),
            health: HealthConfig::default(),
            dns: DnsConfig::default(),
            http3: Http3Config::default(),
            drain_timeout_secs: 30,
            client_send_timeout_secs: 30,
            client_notsent_lowat_kb: 16,
            threads: 2,
            admin_token: String::new(),
            cache: CacheConfig::default(),
            cache_key: CacheKeyConfig::default(),
            upstream_timeouts: UpstreamTimeouts::default(),
            collapse: CollapseConfig::default(),
            token: TokenConfig::default(),
            steering: SteeringLink::default(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            memory_mb: 256,
            dir: PathBuf::from("/var/cache/strata/edge"),
            disk_mb: 4096,
            disks: Vec::new(),
            eviction: Eviction::S3fifo,
            chunk_kb: 0,
            slice_kb: 4096,
            write_buffer_mb: 64,
            disk_check_ms: 5000,
            honor_request_cache_control: false,
            disk_admission_requests: 4,
            disk_admission_window: 0,
            disk_admission_by_size: true,
        }
    }
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect_ms: 2000,
            read_ms: 10_000,
            retries: 2,
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            probe_interval_ms: 2000,
            probe_timeout_ms: 1000,
            fail_after: 3,
            rise_after: 2,
            retry_down_after_ms: 10_000,
        }
    }
}

impl Default for CollapseConfig {
    fn default() -> Self {
        Self {
            wait_timeout_ms: 10_000,
        }
    }
}

/// `tls_listen = ""` (or absent) means no HTTPS listener.
mod optional_addr {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.map(|a| a.to_string()).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not an address such as 0.0.0.0:443")))
    }
}

/// The parts of an `http://host:port/base` upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `host:port`, the port defaulting to 80.
    pub authority: String,
    /// Host name or address, for the `Host` header.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Parses an upstream URL; only plain `http://host[:port]` (an optional trailing `/`).
pub fn parse_upstream(url: &str) -> Result<UpstreamUrl, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` is not an http:// URL (https upstreams come later)"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err(format!("`{url}` must be http://host[:port] with no path"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("`{p}` in `{url}` is not a port"))?;
            (h.to_string(), port)
        }
        _ => (authority.to_string(), 80),
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(UpstreamUrl {
        authority: format!("{host}:{port}"),
        host,
        port,
    })
}

impl Validate for EdgeConfig {
    fn validate(&self) -> Result<(), FieldError> {
        check_version(self.version)?;
        if self.listen.port() == 0 {
            return Err(FieldError::new(
                "listen",
                "port 0 is not accepted: give the edge a known port",
            ));
        }
        if self.listen == self.admin_listen {
            return Err(FieldError::new(
                "admin_listen",
                format!(
                    "is the same address as `listen` ({}); give it its own",
                    self.listen
                ),
            ));
        }
        parse_upstream(&self.upstream).map_err(|e| FieldError::new("upstream", e))?;
        for url in &self.upstream_failover {
            parse_upstream(url).map_err(|e| FieldError::new("upstream_failover", e))?;
        }
        for (i, p) in self.parents.iter().enumerate() {
            parse_upstream(&p.url).map_err(|e| FieldError::new(format!("parents[{i}].url"), e))?;
            if p.weight == 0 || p.weight > 1000 {
                return Err(FieldError::new(
                    format!("parents[{i}].weight"),
                    "must be between 1 and 1000",
                ));
            }
            if self.parents[..i].iter().any(|q| q.url == p.url) {
                return Err(FieldError::new(
                    format!("parents[{i}].url"),
                    format!("`{}` is listed twice", p.url),
                ));
            }
        }
        if !self.node_id.is_empty() && !is_token(&self.node_id) {
            return Err(FieldError::new(
                "node_id",
                "may hold only letters, digits and `-._~!#$%&'*+^|`",
            ));
        }
        let h = &self.health;
        if h.fail_after == 0 || h.rise_after == 0 {
            return Err(FieldError::new(
                if h.fail_after == 0 {
                    "health.fail_after"
                } else {
                    "health.rise_after"
                },
                "must be at least 1",
            ));
        }
        if h.probe_interval_ms > 0 && h.probe_timeout_ms == 0 {
            return Err(FieldError::new("health.probe_timeout_ms", "must be at least 1"));
        }
        if let Some(tls) = self.tls_listen {
            if tls == self.listen || tls == self.admin_listen {
                return Err(FieldError::new(
                    "tls_listen",
                    format!("{tls} is already used by another listener"),
                ));
            }
            let mut files = vec![
                ("tls_cert".to_string(), &self.tls_cert, true),
                ("tls_key".to_string(), &self.tls_key, true),
                ("tls_ocsp".to_string(), &self.tls_ocsp, false),
            ];
            for (i, sni) in self.tls_sni.iter().enumerate() {
                files.push((format!("tls_sni[{i}].cert"), &sni.cert, true));
                files.push((format!("tls_sni[{i}].key"), &sni.key, true));
                files.push((format!("tls_sni[{i}].ocsp"), &sni.ocsp, false));
            }
            for (field, path, required) in files {
                if !required && path.as_os_str().is_empty() {
                    continue;
                }
                if path.as_os_str().is_empty() {
                    return Err(FieldError::new(field, "is required when tls_listen is set"));
                }
                if !path.is_file() {
                    return Err(FieldError::new(
                        field,
                        format!("`{}` is not a readable file", path.display()),
                    ));
                }
            }
        }
        let h3 = &self.http3;
        if h3.idle_timeout_ms == 0
            || h3.max_streams == 0
            || h3.stream_window_kb == 0
            || h3.send_window_mb == 0
        {
            return Err(FieldError::new(
                "http3",
                "idle_timeout_ms, max_streams, stream_window_kb and send_window_mb must be at least 1",
            ));
        }
        if !self.admin_token.is_empty() && self.admin_token.len() < 16 {
            return Err(FieldError::new(
                "admin_token",
                "is shorter than 16 characters; use a long random secret",
            ));
        }
        if self.upstream_timeouts.retries > 10 {
            return Err(FieldError::new("upstream_timeouts.retries", "must be at most 10"));
        }
        if self.threads == 0 || self.threads > 256 {
            return Err(FieldError::new("threads", "must be between 1 and 256"));
        }
        let c = &self.cache;
        if c.memory_mb == 0 {
            return Err(FieldError::new("cache.memory_mb", "must be at least 1"));
        }
        for (i, d) in c.disks.iter().enumerate() {
            let field = |f: &str| format!("cache.disks[{i}].{f}");
            if d.path.as_os_str().is_empty() {
                return Err(FieldError::new(field("path"), "is empty"));
            }
            if d.path.exists() && !d.path.is_dir() {
                return Err(FieldError::new(
                    field("path"),
                    format!("`{}` exists and is not a directory", d.path.display()),
                ));
            }
            if c.disks[..i].iter().any(|other| other.path == d.path) {
                return Err(FieldError::new(
                    field("path"),
                    format!("`{}` is listed twice", d.path.display()),
                ));
            }
            if d.size_mb < 64 {
                return Err(FieldError::new(field("size_mb"), "must be at least 64"));
            }
        }
        if c.disks.is_empty() && c.disk_mb > 0 {
            if c.dir.as_os_str().is_empty() {
                return Err(FieldError::new(
                    "cache.dir",
                    "is empty but cache.disk_mb is not 0",
                ));
            }
            if c.dir.exists() && !c.dir.is_dir() {
                return Err(FieldError::new(
                    "cache.dir",
                    format!("`{}` exists and is not a directory", c.dir.display()),
                ));
            }
            if c.disk_mb < 64 {
                return Err(FieldError::new(
                    "cache.disk_mb",
                    "must be 0 (memory only) or at least 64",
                ));
            }
        }
        if self.client_send_timeout_secs > 86_400 {
            return Err(FieldError::new(
                "client_send_timeout_secs",
                "must be at most 86400 (a day); 0 means no limit",
            ));
        }
        if self.client_notsent_lowat_kb > 64 * 1024 {
            return Err(FieldError::new(
                "client_notsent_lowat_kb",
                "must be at most 65536 (64 MiB); 0 leaves the kernel's setting",
            ));
        }
        if c.chunk_kb != 0 && !(64..=16 * 1024).contains(&c.chunk_kb) {
            return Err(FieldError::new(
                "cache.chunk_kb",
                "must be 0 (chosen by disk size) or between 64 and 16384",
            ));
        }
        if c.slice_kb != 0 && !(64..=1024 * 1024).contains(&c.slice_kb) {
            return Err(FieldError::new(
                "cache.slice_kb",
                "must be 0 (no slicing) or between 64 and 1048576",
            ));
        }
        if c.write_buffer_mb == 0 {
            return Err(FieldError::new("cache.write_buffer_mb", "must be at least 1"));
        }
        if !(1..=1000).contains(&c.disk_admission_requests) {
            return Err(FieldError::new(
                "cache.disk_admission_requests",
                "must be between 1 (every object) and 1000",
            ));
        }
        if c.disk_admission_window != 0 && c.disk_admission_window < 100 {
            return Err(FieldError::new(
                "cache.disk_admission_window",
                "must be 0 (sized to the disk) or at least 100",
            ));
        }
        let t = &self.upstream_timeouts;
        for (field, v) in [
            ("upstream_timeouts.connect_ms", t.connect_ms),
            ("upstream_timeouts.read_ms", t.read_ms),
            ("collapse.wait_timeout_ms", self.collapse.wait_timeout_ms),
            ("cache.disk_check_ms", self.cache.disk_check_ms),
        ] {
            if v == 0 {
                return Err(FieldError::new(field, "must be at least 1"));
            }
        }
        let st = &self.steering;
        if !st.url.is_empty() {
            if !st.url.starts_with("http://") && !st.url.starts_with("https://") {
                return Err(FieldError::new(
                    "steering.url",
                    "must start with http:// or https://",
                ));
            }
            if st.credential.is_empty() && std::env::var("STRATA_EDGE_STEERING_CREDENTIAL").is_err() {
                return Err(FieldError::new(
                    "steering.credential",
                    "is required when steering.url is set (strata steering --issue-credential <node_id>)",
                ));
            }
            if !(-90.0..=90.0).contains(&st.lat) || !(-180.0..=180.0).contains(&st.lon) {
                return Err(FieldError::new(
                    "steering.lat",
                    "latitude -90..90, longitude -180..180",
                ));
            }
            if st.heartbeat_ms == 0 {
                return Err(FieldError::new("steering.heartbeat_ms", "must be at least 1"));
            }
            if !st.public_url.is_empty()
                && !st.public_url.starts_with("http://")
                && !st.public_url.starts_with("https://")
            {
                return Err(FieldError::new(
                    "steering.public_url",
                    "must start with http:// or https://",
                ));
            }
            if !st.cluster.is_empty() && !crate::config::steering::is_pathway_id(&st.cluster) {
                return Err(FieldError::new(
                    "steering.cluster",
                    "1-64 characters of A-Z a-z 0-9 . _ -",
                ));
            }
        }
        if let Err(e) = crate::token::validate_keys(&self.token.keys) {
            return Err(FieldError::new("token.keys", e.to_string()));
        }
        if self.token.enforce && self.token.keys.is_empty() {
            return Err(FieldError::new(
                "token.keys",
                "at least one key is required when token.enforce is true",
            ));
        }
        if let Some(bad) = self.token.exempt_paths.iter().find(|p| !p.starts_with('/')) {
            return Err(FieldError::new(
                "token.exempt_paths",
                format!("`{bad}` must start with /"),
            ));
        }
        if self.cache_key.host.contains(['/', ' ', '?', '#', '@']) {
            return Err(FieldError::new(
                "cache_key.host",
                "must be a host name such as video.cdn.example",
            ));
        }
        for (field, list) in [
            ("cache_key.ignore_params", &self.cache_key.ignore_params),
            ("cache_key.only_params", &self.cache_key.only_params),
        ] {
            if let Some(bad) = list.iter().find(|p| p.is_empty() || p.contains(['&', '=', ' '])) {
                return Err(FieldError::new(
                    field,
                    format!("`{bad}` is not a query parameter name"),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `s` is an HTTP token (RFC 9110 section 5.6.2), as `Via` and `CDN-Loop` need.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Whether `b` may appear in an HTTP token.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::parse;

    #[test]
    fn documented_default_is_the_default_and_valid() {
        let parsed: EdgeConfig = parse("configs/edge.toml", DEFAULT_TOML).unwrap();
        assert_eq!(parsed, EdgeConfig::default());
        assert_eq!(parsed.validate(), Ok(()));
    }

    #[test]
    fn upstream_urls() {
        assert_eq!(
            parse_upstream("http://127.0.0.1:8080").unwrap().authority,
            "127.0.0.1:8080"
        );
        assert_eq!(
            parse_upstream("http://origin.example/").unwrap().authority,
            "origin.example:80"
        );
        assert!(parse_upstream("https://x").is_err());
        assert!(parse_upstream("http://x/path").is_err());
        assert!(parse_upstream("http://:80").is_err());
        assert!(parse_upstream("http://x:port").is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = EdgeConfig::default();
        c.upstream = "ftp://x".into();
        assert_eq!(c.validate().unwrap_err().field, "upstream");
        let mut c = EdgeConfig::default();
        c.cache.disk_admission_requests = 0;
        assert_eq!(c.validate().unwrap_err().field, "cache.disk_admission_requests");
        let mut c = EdgeConfig::default();
        c.cache.disk_admission_window = 10;
        assert_eq!(c.validate().unwrap_err().field, "cache.disk_admission_window");
        let mut c = EdgeConfig::default();
        c.cache.chunk_kb = 1;
        assert_eq!(c.validate().unwrap_err().field, "cache.chunk_kb");
        c.cache.chunk_kb = 0;
        c.client_notsent_lowat_kb = 1 << 20;
        assert_eq!(c.validate().unwrap_err().field, "client_notsent_lowat_kb");
        c.client_notsent_lowat_kb = 16;
        c.client_send_timeout_secs = 1 << 40;
        assert_eq!(c.validate().unwrap_err().field, "client_send_timeout_secs");
        c.client_send_timeout_secs = 0;
        assert!(c.validate().is_ok(), "0: no limit");
        c.client_send_timeout_secs = 30;
        c.cache.chunk_kb = 0;
        c.cache.slice_kb = 10;
        assert_eq!(c.validate().unwrap_err().field, "cache.slice_kb");
        let mut c = EdgeConfig::default();
        c.cache.disk_mb = 10;
        assert_eq!(c.validate().unwrap_err().field, "cache.disk_mb");
        let mut c = EdgeConfig::default();
        c.listen.set_port(0);
        assert_eq!(c.validate().unwrap_err().field, "listen");
        let mut c = EdgeConfig::default();
        c.cache_key.ignore_params = vec!["a=b".into()];
        assert_eq!(c.validate().unwrap_err().field, "cache_key.ignore_params");
    }

    #[test]
    fn tls_needs_its_files() {
        let mut c = EdgeConfig::default();
        c.tls_listen = Some("127.0.0.1:8443".parse().unwrap());
        assert_eq!(c.validate().unwrap_err().field, "tls_cert");
        c.tls_cert = "/no/cert.pem".into();
        assert_eq!(c.validate().unwrap_err().field, "tls_cert");
        let parsed: Result<EdgeConfig, _> = crate::config::parse("e", "tls_listen = \"nope\"\n");
        assert!(parsed.unwrap_err().to_string().contains("field `tls_listen`"));
        let parsed: Result<EdgeConfig, _> = crate::config::parse("e", "tls_min_version = \"1.1\"\n");
        assert!(
            parsed
                .unwrap_err()
                .to_string()
                .contains("field `tls_min_version`")
        );
        let parsed: EdgeConfig = crate::config::parse("e", "tls_min_version = \"1.2\"\n").unwrap();
        assert_eq!(parsed.tls_min_version, TlsVersion::Tls12);
    }

    #[test]
    fn several_disks_replace_dir_and_disk_mb_and_each_is_checked() {
        let text = "[cache]\ndisk_mb = 0\n[[cache.disks]]\npath = \"/srv/nvme0/strata\"\nsize_mb = 1024\n\
                    [[cache.disks]]\npath = \"/srv/nvme1/strata\"\nsize_mb = 2048\n";
        let c: EdgeConfig = crate::config::parse("e", text).unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.cache.disk_list(),
            vec![
                (PathBuf::from("/srv/nvme0/strata"), 1024),
                (PathBuf::from("/srv/nvme1/strata"), 2048)
            ]
        );
        let mut bad = c.clone();
        bad.cache.disks[1].size_mb = 10;
        assert_eq!(bad.validate().unwrap_err().field, "cache.disks[1].size_mb");
        let mut bad = c.clone();
        bad.cache.disks[1].path = bad.cache.disks[0].path.clone();
        assert_eq!(bad.validate().unwrap_err().field, "cache.disks[1].path");
        let mut bad = c;
        bad.cache.disks[0].path = PathBuf::new();
        assert_eq!(bad.validate().unwrap_err().field, "cache.disks[0].path");
        // Without `disks`, the one disk is `dir` with `disk_mb`.
        let d = EdgeConfig::default();
        assert_eq!(d.cache.disk_list(), vec![(d.cache.dir.clone(), d.cache.disk_mb)]);
    }

    #[test]
    fn memory_only_needs_no_directory() {
        let mut c = EdgeConfig::default();
        c.cache.disk_mb = 0;
        c.cache.dir = PathBuf::new();
        assert_eq!(c.validate(), Ok(()));
    }
}
