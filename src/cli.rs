//! The command line: global flags and one subcommand per role.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Strata: a self-hosted CDN for video streaming.
#[derive(Parser, Debug)]
#[command(name = "strata", version, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "STRATA_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (for example `info` or `strata_origin=debug`).
    #[arg(long, global = true, default_value = "info", env = "STRATA_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// The roles and tools.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve packaged content (HLS, DASH, CMAF) over HTTP/1.1 and HTTP/2 from a local
    /// directory or S3-compatible storage.
    Origin(OriginArgs),
    /// Serve players from a memory + disk segment cache in front of an upstream (the origin
    /// or a mid-tier), over HTTP/1.1 and HTTP/2.
    Edge(EdgeArgs),
    /// Serve edges as their parent cache and origin shield: the edge's cache engine in front
    /// of one or more origins, collapsing the misses of many edges into one origin fetch.
    Midtier(MidtierArgs),
    /// Serve the control plane: catalog, accounts and sign-in, playback authorization
    /// (entitlement, country, blackouts), per-play manifests with tokenized segment URLs.
    ControlPlane(ControlPlaneArgs),
    /// Serve steering: the fleet view (edge registration, heartbeats, health polls) and the
    /// choice of edge or external CDN per viewer, as Content Steering manifests, 302
    /// redirects and a JSON decision API.
    Steering(SteeringArgs),
    /// Pre-warm jobs on a running steering service: fill the edges of chosen clusters with
    /// titles before a release, watch them, cancel them.
    #[command(subcommand)]
    Prewarm(PrewarmCommand),
    /// Catalog tools that talk to a running control plane's admin API.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Make the sample title (a synthetic 3-rendition H.264/AAC CMAF ladder, HLS + DASH)
    /// with ffmpeg.
    SampleContent(SampleContentArgs),
    /// Write a synthetic catalog for load tests: many titles with real HLS and DASH manifests
    /// and segments sized like real ones (random bytes, no ffmpeg), plus catalog.json for
    /// `strata catalog import`.
    SynthCatalog(SynthCatalogArgs),
    /// Run the whole CDN on this machine, on loopback, with sample content.
    Demo(DemoArgs),
    /// Fetch URLs as fast as possible over HTTP/1.1, HTTP/2 or HTTP/3 for a bounded time and
    /// report requests/s, Gbit/s and latency percentiles (a protocol benchmark, not players).
    FetchBench(FetchBenchArgs),
    /// The control plane's light path under concurrent load: imports a synthetic catalog,
    /// then times playback start, search (with typos) and browse; prints req/s and latency
    /// percentiles per phase.
    CpBench(CpBenchArgs),
    /// Synthetic HLS/DASH viewers against a CDN in real time: a player model per viewer (ABR,
    /// buffer, stalls, the audio track beside the video, Content Steering with failover to
    /// the next pathway), Zipf title popularity or a flash crowd; reports QoE (startup,
    /// rebuffering, bitrate, switches), request figures and, given --metrics, the cache's.
    Loadgen(LoadgenArgs),
}

/// Flags common to every server role.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// The role's TOML config file; without it the built-in defaults apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the documented default config and exit.
    #[arg(long)]
    pub print_default_config: bool,
    /// Check the config (file and flags) and exit: 0 when valid.
    #[arg(long)]
    pub check_config: bool,
}

/// `strata origin`.
#[derive(Args, Debug, Clone)]
pub struct OriginArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Content listener address (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin listener address for /metrics and /healthz (overrides `admin_listen`).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Serve this local directory (sets `storage.backend = "local"` and `storage.root`).
    #[arg(long, value_name = "DIR", conflicts_with = "s3_bucket")]
    pub root: Option<PathBuf>,
    /// Serve this S3 bucket (sets `storage.backend = "s3"` and `storage.s3.bucket`).
    #[arg(long, value_name = "BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3-compatible endpoint URL (overrides `storage.s3.endpoint`).
    #[arg(long, value_name = "URL", requires = "s3_bucket")]
    pub s3_endpoint: Option<String>,
    /// S3 region (overrides `storage.s3.region`).
    #[arg(long, value_name = "REGION", requires = "s3_bucket")]
    pub s3_region: Option<String>,
    /// Key prefix of the content tree in the bucket (overrides `storage.s3.prefix`).
    #[arg(long, value_name = "PREFIX", requires = "s3_bucket")]
    pub s3_prefix: Option<String>,
    /// Allow a plain-http S3 endpoint (sets `storage.s3.allow_http`).
    #[arg(long, requires = "s3_bucket")]
    pub s3_allow_http: bool,
}

/// `strata control-plane`.
#[derive(Args, Debug, Clone)]
pub struct ControlPlaneArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// API listener address (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin listener address for /metrics and /healthz (overrides `admin_listen`).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Database URL: sqlite://FILE or postgres://... (overrides `database`).
    #[arg(long, value_name = "URL", env = "STRATA_CONTROL_PLANE_DATABASE")]
    pub database: Option<String>,
    /// Directory for the SQLite file and a generated token key (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// CDN base URL that segment URLs point at (overrides `cdn_url`).
    #[arg(long, value_name = "URL")]
    pub cdn_url: Option<String>,
    /// Where packaged manifests are read (overrides `origin_url`).
    #[arg(long, value_name = "URL")]
    pub origin_url: Option<String>,
    /// MaxMind GeoLite2 database for client countries (overrides `geoip_db`).
    #[arg(long, value_name = "FILE")]
    pub geoip_db: Option<PathBuf>,
}

/// `strata steering`.
#[derive(Args, Debug, Clone)]
pub struct SteeringArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// API listener address (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin listener address for /metrics and /healthz (overrides `admin_listen`).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Directory of the fleet store (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// GeoLite2-City database for client locations (overrides `geoip_db`).
    #[arg(long, value_name = "FILE")]
    pub geoip_db: Option<PathBuf>,
    /// Print the credential of edge ID (signed with the first of `edge_keys`) and exit.
    #[arg(long, value_name = "ID")]
    pub issue_credential: Option<String>,
}

/// Where steering is and how to be let in.
#[derive(Args, Debug, Clone)]
pub struct SteeringAdmin {
    /// Steering's API URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8070")]
    pub steering: String,
    /// Steering's admin credential.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "STRATA_STEERING_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: String,
}

/// `strata prewarm ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum PrewarmCommand {
    /// Start a job and follow it with a progress bar until it ends (or return at once with
    /// --detach).
    Start(PrewarmStartArgs),
    /// List the jobs.
    List(SteeringAdmin),
    /// Follow a job until it ends.
    Watch {
        #[command(flatten)]
        admin: SteeringAdmin,
        /// The job's id.
        id: String,
    },
    /// Cancel a job.
    Cancel {
        #[command(flatten)]
        admin: SteeringAdmin,
        /// The job's id.
        id: String,
    },
}

/// `strata prewarm start`.
#[derive(Args, Debug, Clone)]
pub struct PrewarmStartArgs {
    #[command(flatten)]
    pub admin: SteeringAdmin,
    /// Packaged manifests to expand and fill (/title/master.m3u8, /title/manifest.mpd).
    #[arg(value_name = "MANIFEST")]
    pub manifests: Vec<String>,
    /// Further object paths to fill as they are (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Only the edges of this cluster (repeatable); default every cluster.
    #[arg(long = "cluster", value_name = "NAME")]
    pub clusters: Vec<String>,
    /// Also the edges of this region (repeatable).
    #[arg(long = "region", value_name = "NAME")]
    pub regions: Vec<String>,
    /// Tallest video rendition to fill; 0 for all.
    #[arg(long, default_value_t = 0)]
    pub max_height: u32,
    /// Bandwidth cap per edge, kbit/s; 0 for none.
    #[arg(long, default_value_t = 0)]
    pub bandwidth_kbps: u64,
    /// Objects fetched at once per edge (1-64).
    #[arg(long, default_value_t = 4)]
    pub concurrency: u32,
    /// Share of each edge's cache the job may fill (0-1].
    #[arg(long, default_value_t = 0.5)]
    pub max_cache_share: f64,
    /// Window start, RFC 3339 (default now).
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// Window end, RFC 3339: what is not filled by then is left.
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// Print the job and return without following it.
    #[arg(long)]
    pub detach: bool,
}

/// `strata catalog ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum CatalogCommand {
    /// Create or replace every title of a catalog file (JSON, `{"version": 1, "titles": [...]}`)
    /// in one transaction: all or none.
    Import(CatalogImportArgs),
}

/// `strata catalog import`.
#[derive(Args, Debug, Clone)]
pub struct CatalogImportArgs {
    /// The catalog file.
    #[arg(value_name = "FILE.json")]
    pub file: PathBuf,
    /// The control plane's API URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8090")]
    pub url: String,
    /// The admin bearer credential.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "STRATA_CONTROL_PLANE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: String,
}

/// `strata synth-catalog`.
#[derive(Args, Debug, Clone)]
pub struct SynthCatalogArgs {
    /// Content root to write into (a directory per title, t0000, t0001, ...).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of titles.
    #[arg(long, default_value_t = 20)]
    pub titles: usize,
    /// Length of each title, seconds (4 s segments; 360p, 720p and 1080p).
    #[arg(long, default_value_t = 40)]
    pub duration: u32,
    /// Seed of the sizes and bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `strata sample-content`.
#[derive(Args, Debug, Clone)]
pub struct SampleContentArgs {
    /// Content root to write into; the title lands in OUT/sample/.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Length of the title in seconds (4-600).
    #[arg(long, default_value_t = 20)]
    pub duration: u32,
}

/// `strata demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Where the demo keeps its content and state; sample content is made here on first run.
    #[arg(long, value_name = "DIR", default_value = "strata-data")]
    pub data_dir: PathBuf,
    /// Loopback address the demo's servers listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// First port; each role takes the next ones (origin: BASE, edge 1: BASE+1 and HTTPS +
    /// HTTP/3 on BASE+4, mid-tier: BASE+2, edge 2: BASE+3; admin listeners at +1000).
    #[arg(long, default_value_t = 8080)]
    pub port_base: u16,
}

/// Flags every cache node (edge or mid-tier) takes; each overrides a config field.
#[derive(Args, Debug, Clone)]
pub struct CacheNodeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Listener address (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin listener address for /metrics and /healthz (overrides `admin_listen`).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// HTTPS listener address, HTTP/1.1 and HTTP/2 by ALPN (overrides `tls_listen`).
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the HTTPS listener (overrides `tls_cert`).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the HTTPS listener (overrides `tls_key`).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// The origin's base URL, http://host:port (overrides `upstream`).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// This node's name in Via and CDN-Loop (overrides `node_id`).
    #[arg(long, value_name = "NAME")]
    pub node_id: Option<String>,
    /// Disk tier directory (overrides `cache.dir`; with it or `--disk-mb`, the edge uses this
    /// one disk, not the config's `cache.disks`).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Memory tier size in MiB (overrides `cache.memory_mb`).
    #[arg(long, value_name = "N")]
    pub memory_mb: Option<u64>,
    /// Disk tier size in MiB; 0 for memory only (overrides `cache.disk_mb`).
    #[arg(long, value_name = "N")]
    pub disk_mb: Option<u64>,
    /// Proxy worker threads (overrides `threads`).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Requests an object needs before it is written to disk; 1 writes every object
    /// (overrides `cache.disk_admission_requests`).
    #[arg(long, value_name = "N")]
    pub disk_admission: Option<u32>,
    /// Count `--disk-admission` requests per MiB of body, so large objects need more
    /// (overrides `cache.disk_admission_by_size`).
    #[arg(long)]
    pub disk_admission_by_size: bool,
    /// Slice size in KiB for ranges of objects not held whole; 0 turns slicing off
    /// (overrides `cache.slice_kb`).
    #[arg(long, value_name = "KIB")]
    pub slice_kb: Option<u64>,
}

/// `strata edge`.
#[derive(Args, Debug, Clone)]
pub struct EdgeArgs {
    #[command(flatten)]
    pub node: CacheNodeArgs,
    /// A parent cache (strata midtier) base URL, http://host:port; repeat for several. Misses
    /// go to the parents instead of the origin (replaces `parents`).
    #[arg(long = "parent", value_name = "URL")]
    pub parents: Vec<String>,
    /// Bearer credential for the admin API (overrides `admin_token`); prefer the environment
    /// variable, which other users of the machine cannot read from the process list.
    #[arg(
        long,
        value_name = "SECRET",
        env = "STRATA_EDGE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

/// `strata midtier`.
#[derive(Args, Debug, Clone)]
pub struct MidtierArgs {
    #[command(flatten)]
    pub node: CacheNodeArgs,
    /// A further origin, tried after `--upstream` fails; repeat for several, in order
    /// (replaces `upstream_failover`).
    #[arg(long = "upstream-failover", value_name = "URL")]
    pub upstream_failover: Vec<String>,
    /// Bearer credential for the admin API (overrides `admin_token`); prefer the environment
    /// variable.
    #[arg(
        long,
        value_name = "SECRET",
        env = "STRATA_MIDTIER_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

/// `strata cp-bench`.
#[derive(Args, Debug, Clone)]
pub struct CpBenchArgs {
    /// The control plane's API URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8090")]
    pub url: String,
    /// Its admin credential (to import the catalog and make the bench account).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "STRATA_CONTROL_PLANE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: String,
    /// Titles in the synthetic catalog (ids bench-0 ... bench-N; imported, replacing earlier ones).
    #[arg(long, default_value_t = 5000)]
    pub titles: usize,
    /// Concurrent clients in each phase.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds per phase (1-600).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration: u64,
    /// Seed of the catalog and the request mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `strata fetch-bench`.
#[derive(Args, Debug, Clone)]
pub struct FetchBenchArgs {
    /// URLs to fetch, round-robin (http:// for h1/h2c, https:// for h2 or h3 over TLS).
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
    /// Protocol: h1, h2 or h3.
    #[arg(long, default_value = "h1", value_parser = ["h1", "h2", "h3"])]
    pub protocol: String,
    /// Connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Requests in flight per connection (h2 and h3; h1 has one).
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// How long to run, seconds (at most 600).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration: u64,
    /// Accept any server certificate (loopback test certificates only).
    #[arg(long)]
    pub insecure: bool,
    /// Check servers' certificates against the CA certificates in this PEM file instead of
    /// the Web PKI roots.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `strata loadgen`.
#[derive(Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// The titles, most popular first: HLS master playlist or DASH MPD URLs, or title ids
    /// with --control-plane.
    #[arg(required = true, value_name = "TITLE")]
    pub titles: Vec<String>,
    /// Viewers to start.
    #[arg(long, default_value_t = 10)]
    pub viewers: usize,
    /// New viewers per second.
    #[arg(long, default_value_t = 5.0)]
    pub arrival_per_s: f64,
    /// Longest session, seconds (a session also ends with its title).
    #[arg(long, default_value_t = 60.0)]
    pub session_s: f64,
    /// Whole run, seconds (at most 3600); viewers still playing then are stopped.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Zipf exponent of title popularity.
    #[arg(long, default_value_t = 0.9)]
    pub zipf_alpha: f64,
    /// HTTP/2 instead of HTTP/1.1 (prior knowledge on http://, ALPN on https://).
    #[arg(long, conflicts_with = "http3")]
    pub http2: bool,
    /// HTTP/3 (https:// URLs; each viewer on its own QUIC connection).
    #[arg(long)]
    pub http3: bool,
    /// Accept any server certificate (loopback test certificates only).
    #[arg(long)]
    pub insecure: bool,
    /// Check servers' certificates against the CA certificates in this PEM file instead of
    /// the Web PKI roots.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Send CMCD (CTA-5004) with every request: `query` (a `CMCD` parameter), `header`
    /// (`CMCD-*` headers; over HTTP/3 as the parameter), or `off`.
    #[arg(long, default_value = "off", value_parser = ["off", "query", "header"])]
    pub cmcd: String,
    /// A flash crowd: this share (0-1) of the viewers start --flash-title together.
    #[arg(long, value_name = "SHARE", requires = "flash_title")]
    pub flash_crowd: Option<f64>,
    /// The flash crowd's title (a master playlist URL).
    #[arg(long, value_name = "URL", requires = "flash_crowd")]
    pub flash_title: Option<String>,
    /// When the flash crowd starts, seconds into the run.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub flash_at: f64,
    /// Start each viewer's play at this control plane (sign-in, then `POST /v1/playback`, as a
    /// real player does); the TITLE arguments are then title ids.
    #[arg(long, value_name = "URL", requires_all = ["email", "password"])]
    pub control_plane: Option<String>,
    /// The account the viewers share (with --control-plane).
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// Its password (with --control-plane).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "STRATA_LOADGEN_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Device class the viewers declare (with --control-plane).
    #[arg(long, default_value = "web")]
    pub device: String,
    /// Play each play's DASH MPD instead of its HLS master playlist (with --control-plane).
    #[arg(long)]
    pub dash: bool,
    /// Each viewer's link rate in kbit/s; unshaped when absent.
    #[arg(long, value_name = "KBPS", conflicts_with = "link_trace")]
    pub link_kbps: Option<f64>,
    /// Each viewer's link follows this bandwidth trace from its start: lines of
    /// `seconds kbit/s` (`#` comments allowed), the rate holding until the next line.
    #[arg(long, value_name = "FILE")]
    pub link_trace: Option<std::path::PathBuf>,
    /// Seed of the viewers' title draws: runs with the same seed (and viewer count) play the
    /// same titles in the same order, so runs against different caches compare; random when
    /// absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// A Strata cache's Prometheus endpoint (its admin `/metrics`), read before and after the
    /// run: the report then adds the cache's hit ratio and its upstream and origin requests.
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}
