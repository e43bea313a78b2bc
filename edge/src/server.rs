//! Running the edge: the cache opened on a long-lived runtime, pingora's server for the
//! listeners, and shutdown driven by our cancellation token rather than pingora's own
//! signal handling, so that every role of the binary stops the same way.

use crate::cache_key::KeyRules;
use crate::client_socket::ClientSockets;
use crate::collapse::FillAwareLock;
use crate::hop;
use crate::http2::H2Streams;
use crate::http3;
use crate::metrics::EdgeMetrics;
use crate::proxy::{EdgeProxy, UpstreamSettings};
use crate::relay::{Relay, RelayConnector};
use crate::store::{FoyerStore, StoreSettings};
use crate::tls_certs::{CertFiles, CertStore};
use crate::token_gate::TokenGate;
use crate::upstreams::Upstreams;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use pingora_cache::lock::CacheKeyLockImpl;
use std::sync::Arc;
use std::time::Duration;
use strata_contracts::config::edge::{EdgeConfig, TlsVersion};
use tokio_util::sync::CancellationToken;

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The cache could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreOpenError),
    /// A config value the validator should have caught.
    #[error("config: {0}")]
    Config(String),
    /// HTTP/3 could not start.
    #[error(transparent)]
    Http3(#[from] crate::http3::Http3Error),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The proxy (pingora's thread) could not start or stopped on its own.
    #[error("proxy: {0}")]
    Proxy(String),
}

/// The part a cache node plays; the engine is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves players.
    Edge,
    /// Serves edges: the parent cache and origin shield.
    Midtier,
}

impl Role {
    /// The role's name in logs and metric names.
    pub fn name(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Midtier => "midtier",
        }
    }
}

/// Keys of the cache index checked for eviction each second (a million in about 8 minutes).
const INDEX_SWEEP_BATCH: usize = 2000;

/// How many objects a node remembers as not sliceable (`EdgeProxy::unsliceable`).
const UNSLICEABLE_KEYS: usize = 100_000;

/// A ready cache node: cache open, proxy built, listeners not yet bound.
pub struct Edge {
    config: EdgeConfig,
    role: Role,
    store: &'static FoyerStore,
    metrics: EdgeMetrics,
    support: tokio::runtime::Handle,
    upstreams: Arc<Upstreams>,
}

impl Edge {
    /// Opens the cache (recovering what the disk tier holds) with foyer's tasks on `support`,
    /// a runtime that must outlive the edge.
    pub async fn open(
        config: EdgeConfig,
        role: Role,
        registry: &prometheus::Registry,
        support: tokio::runtime::Handle,
    ) -> Result<Self, EdgeError> {
        let prefix = format!("strata_{}", role.name());
        let metrics = EdgeMetrics::register(registry, &prefix)?;
        let c = &config.cache;
        let disks = c.disk_list();
        let disk_mb: u64 = disks.iter().map(|(_, mb)| mb).sum();
        let settings = StoreSettings {
            metric_prefix: prefix,
            memory_bytes: (c.memory_mb * 1024 * 1024) as usize,
            disks: disks
                .iter()
                .map(|(dir, mb)| (dir.clone(), (mb * 1024 * 1024) as usize))
                .collect(),
            eviction: c.eviction,
            chunk_size: match c.chunk_kb {
                0 => crate::store::auto_chunk_size(
                    disks.iter().map(|(_, mb)| (mb * 1024 * 1024) as usize).min(),
                ),
                kb => (kb * 1024) as usize,
            },
            write_buffer_bytes: (c.write_buffer_mb * 1024 * 1024) as usize,
            disk_admission_requests: c.disk_admission_requests,
            disk_admission_window: match c.disk_admission_window {
                0 => (32 * disk_mb).max(100),
                w => w,
            },
            disk_admission_by_size: c.disk_admission_by_size,
        };
        let store = FoyerStore::open(&settings, metrics.clone(), registry, support.clone()).await?;
        // pingora's cache API wants 'static storage; the edge lives as long as the process.
        let store: &'static FoyerStore = Box::leak(Box::new(store));
        store.watch_disk(&support, Duration::from_millis(c.disk_check_ms));
        store.sweep_index(&support, Duration::from_secs(1), INDEX_SWEEP_BATCH);
        let upstreams =
            Arc::new(Upstreams::from_config(&config, metrics.clone()).map_err(EdgeError::Config)?);
        Ok(Self {
            config,
            role,
            store,
            metrics,
            support,
            upstreams,
        })
    }

    /// The admin API routes (purge, inventory) for the admin listener.
    pub fn admin_routes(&self) -> axum::Router {
        let token = (!self.config.admin_token.is_empty()).then(|| self.config.admin_token.clone());
        crate::admin_api::routes(self.store, self.key_rules(), token)
    }

    fn key_rules(&self) -> KeyRules {
        KeyRules {
            ignore: self.config.cache_key.ignore_params.clone(),
            only: self.config.cache_key.only_params.clone(),
            host: (!self.config.cache_key.host.is_empty()).then(|| self.config.cache_key.host.clone()),
        }
    }

    /// Serves until `shutdown` fires, then drains; blocks the calling thread (pingora runs
    /// its own runtimes). Returns once every in-flight request has finished or the drain
    /// timeout passed.
    pub fn serve(self, shutdown: CancellationToken) -> Result<(), EdgeError> {
        let config = &self.config;
        let upstreams = Arc::clone(&self.upstreams);
        if upstreams.has_parents() && config.health.probe_interval_ms > 0 {
            upstreams.spawn_probes(
                &self.support,
                Duration::from_millis(config.health.probe_interval_ms),
                Duration::from_millis(config.health.probe_timeout_ms),
                shutdown.clone(),
            );
        }
        let relay = config.resume_mid_body.then(|| {
            let relay = Relay::new(
                Arc::clone(&upstreams),
                Duration::from_millis(config.upstream_timeouts.connect_ms),
                Duration::from_millis(config.upstream_timeouts.read_ms),
                config.upstream_timeouts.retries.max(1),
                self.metrics.clone(),
                self.support.clone(),
            );
            Arc::new(RelayConnector::new(Arc::new(relay)))
        });
        let node_id = self.node_id();
        let tokens = TokenGate::from_config(&config.token)
            .map_err(|e| EdgeError::Config(format!("token.keys: {e}")))?
            .map(Arc::new);
        let lock: &'static CacheKeyLockImpl = Box::leak(Box::new(FillAwareLock::new(
            self.store,
            Duration::from_millis(config.collapse.wait_timeout_ms),
        )));
        let proxy = EdgeProxy {
            upstreams,
            timeouts: UpstreamSettings {
                connect: Duration::from_millis(config.upstream_timeouts.connect_ms),
                read: Duration::from_millis(config.upstream_timeouts.read_ms),
                retries: config.upstream_timeouts.retries,
            },
            node_id: node_id.clone(),
            cache_name: format!("strata-{}", self.role.name()),
            relay,
            rules: self.key_rules(),
            store: self.store,
            lock,
            wait_timeout: Duration::from_millis(config.collapse.wait_timeout_ms),
            metrics: self.metrics.clone(),
            honor_request_cache_control: config.cache.honor_request_cache_control,
            alt_svc: None,
            tokens: tokens.clone(),
            timing_allow_origin: (!config.timing_allow_origin.is_empty())
                .then(|| config.timing_allow_origin.clone()),
            slice_size: (config.cache.slice_kb > 0).then_some(config.cache.slice_kb * 1024),
            unsliceable: foyer::CacheBuilder::new(UNSLICEABLE_KEYS).build(),
            send_timeout: (config.client_send_timeout_secs > 0)
                .then(|| Duration::from_secs(config.client_send_timeout_secs)),
        };
        let mut proxy = proxy;
        let h3 = config.tls_listen.filter(|_| config.http3.enabled);
        if let Some(tls) = h3 {
            proxy.alt_svc = Some(format!(
                "h3=\":{}\"; ma={}",
                tls.port(),
                config.http3.alt_svc_max_age_secs
            ));
        }

        // pingora's grace period is the time in-flight requests get once it has stopped
        // accepting (its runtimes are dropped, with whatever they still run, at its end). It
        // is a fixed sleep, so `drain` below ends the wait early once nothing is in flight.
        let conf = ServerConf {
            threads: config.threads,
            // A second more than `drain` waits, so that `drain` sees what is left at its
            // timeout before pingora drops it.
            grace_period_seconds: Some(config.drain_timeout_secs.saturating_add(1)),
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();
        // One store serves HTTPS and HTTP/3, by SNI, reloading when the files change; it is
        // loaded before anything listens, so a bad file is an error naming its field.
        let certs = match config.tls_listen {
            Some(_) => {
                let mut store = CertStore::load(cert_files(config), self.metrics.tls_reloads.clone())
                    .map_err(EdgeError::Config)?;
                if config.tls_min_version == TlsVersion::Tls13 {
                    store = store.tls13_only(self.metrics.tls_refused.clone());
                }
                let store = Arc::new(store);
                if config.tls_reload_ms > 0 {
                    store.watch(
                        &self.support,
                        Duration::from_millis(config.tls_reload_ms),
                        shutdown.clone(),
                    );
                }
                Some(store)
            }
            None => None,
        };
        // HTTP/3 gets its own runtime; its requests run the same proxy over the same cache.
        let h3_runtime = match (h3, &certs) {
            (Some(addr), Some(store)) => Some(self.start_http3(
                addr,
                Arc::clone(store),
                &server.configuration,
                proxy.clone(),
                shutdown.clone(),
            )?),
            _ => None,
        };
        let mut http = pingora::proxy::http_proxy(&server.configuration, proxy);
        // Cleartext HTTP/2 by prior knowledge (h2c) beside HTTP/1.1 on the plain listener.
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        http.server_options = Some(options);
        let app = ClientSockets::new(
            H2Streams::new(Arc::new(http)),
            config.client_notsent_lowat_kb,
            self.metrics.client_connections.clone(),
        );
        let mut service = Service::new("Pingora HTTP Proxy Service".to_string(), app);
        service.add_tcp(&config.listen.to_string());
        if let Some(tls) = config.tls_listen {
            let mut settings = TlsSettings::intermediate("", "")
                .map_err(|e| EdgeError::Config(format!("TLS settings: {e}")))?;
            if let Some(store) = &certs {
                settings.set_cert_resolver(Arc::clone(store) as _);
            }
            settings.enable_h2();
            service.add_tls_with_settings(&tls.to_string(), None, settings);
            tracing::info!(addr = %tls, "{} listening (https: h2, http/1.1)", self.role.name());
        }
        server.add_service(service);
        let parents: Vec<&str> = config.parents.iter().map(|p| p.url.as_str()).collect();
        tracing::info!(
            addr = %config.listen,
            node = %node_id,
            upstream = %config.upstream,
            parents = ?parents,
            "{} listening",
            self.role.name()
        );
        let watch = TokenWatch(shutdown.clone());
        let pingora = std::thread::Builder::new()
            .name("pingora".into())
            .spawn(move || {
                server.run(RunArgs {
                    shutdown_signal: Box::new(watch),
                })
            })
            .map_err(|e| EdgeError::Proxy(format!("starting its thread: {e}")))?;
        let limit = Duration::from_secs(config.drain_timeout_secs);
        let busy = [
            &self.metrics.in_flight,
            &self.metrics.client_connections,
            &self.metrics.quic_open,
        ];
        let left = drain(&shutdown, &busy, limit, &pingora);
        // With nothing in flight, pingora's thread is left in its grace sleep (it ends with
        // the process). At the timeout its sleep is over too: wait for it to drop what is
        // still running, so that nothing uses the cache while it closes.
        if (left > 0 || pingora.is_finished()) && pingora.join().is_err() {
            return Err(EdgeError::Proxy("pingora's thread panicked".into()));
        }
        if let Some(runtime) = h3_runtime {
            runtime.shutdown_timeout(Duration::from_millis(100));
        }
        if left > 0 {
            tracing::warn!(
                left,
                "{} drain timeout ({}s) reached; cut the requests and connections still open",
                self.role.name(),
                config.drain_timeout_secs
            );
        }
        tracing::info!("{} drained", self.role.name());
        Ok(())
    }

    /// Starts HTTP/3 on `addr` (UDP) on a runtime of its own, which the caller keeps until
    /// the edge has drained.
    fn start_http3(
        &self,
        addr: std::net::SocketAddr,
        certs: Arc<CertStore>,
        conf: &Arc<ServerConf>,
        proxy: EdgeProxy,
        shutdown: CancellationToken,
    ) -> Result<tokio::runtime::Runtime, EdgeError> {
        let c = &self.config.http3;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.config.threads)
            .thread_name("edge-h3")
            .enable_all()
            .build()
            .map_err(|e| EdgeError::Config(format!("starting the HTTP/3 runtime: {e}")))?;
        let app = Arc::new(pingora::proxy::http_proxy(conf, proxy));
        let quic = http3::QuicSettings {
            idle_timeout: Duration::from_millis(c.idle_timeout_ms),
            max_streams: c.max_streams,
            stream_window: c.stream_window_kb.saturating_mul(1024),
            send_window: u64::from(c.send_window_mb) << 20,
            bbr: c.congestion == strata_contracts::config::edge::Congestion::Bbr,
            max_connections: c.max_connections,
            retry_above: c.retry_above_connections,
        };
        let bound = http3::start(
            addr,
            certs,
            &quic,
            app,
            self.metrics.clone(),
            runtime.handle(),
            shutdown,
        )?;
        tracing::info!(addr = %bound, "{} listening (h3 over QUIC)", self.role.name());
        Ok(runtime)
    }

    /// What `/healthz` reports: `Err` (degraded, with the reasons) while the disk tier is out of
    /// service or an upstream is marked down.
    pub fn health_check(&self) -> impl Fn() -> Result<(), String> + Send + Sync + 'static {
        let store = self.store;
        let upstreams = Arc::clone(&self.upstreams);
        move || {
            let mut reasons = Vec::new();
            if let Err(disk) = store.disk_health() {
                reasons.push(disk);
            }
            reasons.extend(
                upstreams
                    .down()
                    .into_iter()
                    .map(|u| format!("upstream {u} is down")),
            );
            if reasons.is_empty() {
                Ok(())
            } else {
                Err(reasons.join("; "))
            }
        }
    }

    /// Starts registering with steering and sending heartbeats, when `[steering] url` is set;
    /// `admin` is the bound admin address (its `/healthz` is what steering polls).
    pub fn link_to_steering(&self, admin: std::net::SocketAddr, shutdown: CancellationToken) {
        let st = &self.config.steering;
        if st.url.is_empty() {
            return;
        }
        let node_id = self.node_id();
        let credential =
            std::env::var("STRATA_EDGE_STEERING_CREDENTIAL").unwrap_or_else(|_| st.credential.clone());
        let registration = strata_contracts::api::steering::EdgeRegistration {
            version: strata_contracts::api::steering::EDGE_PROTOCOL_VERSION,
            edge_id: node_id.clone(),
            cluster: if st.cluster.is_empty() {
                node_id
            } else {
                st.cluster.clone()
            },
            region: st.region.clone(),
            lat: st.lat,
            lon: st.lon,
            prefixes: st.prefixes.clone(),
            url: if st.public_url.is_empty() {
                format!("http://{}", self.config.listen)
            } else {
                st.public_url.trim_end_matches('/').to_string()
            },
            https_url: self.config.tls_listen.map(|a| format!("https://{a}")),
            health_url: format!("http://{admin}/healthz"),
            capacity_bytes: self.store.capacity_bytes(),
        };
        crate::steering_link::spawn(
            crate::steering_link::LinkSettings {
                url: st.url.clone(),
                credential,
                registration,
                every: Duration::from_millis(st.heartbeat_ms),
                capacity_rps: st.capacity_rps,
            },
            self.metrics.clone(),
            self.store,
            &self.support,
            shutdown,
        );
    }

    /// This node's id: `node_id`, or one made from the host name and `listen`.
    pub fn node_id(&self) -> String {
        if self.config.node_id.is_empty() {
            hop::default_node_id(&hop::hostname(), self.config.listen)
        } else {
            self.config.node_id.clone()
        }
    }

    /// The cache, for closing after `serve` returns.
    pub fn store(&self) -> &'static FoyerStore {
        self.store
    }
}

/// The certificate files: the default (`tls_cert`) first, then the SNI ones.
fn cert_files(config: &EdgeConfig) -> Vec<CertFiles> {
    let ocsp = |p: &std::path::Path| (!p.as_os_str().is_empty()).then(|| p.to_path_buf());
    std::iter::once(CertFiles {
        field_prefix: "tls_".into(),
        cert: config.tls_cert.clone(),
        key: config.tls_key.clone(),
        ocsp: ocsp(&config.tls_ocsp),
    })
    .chain(config.tls_sni.iter().enumerate().map(|(i, s)| CertFiles {
        field_prefix: format!("tls_sni[{i}]."),
        cert: s.cert.clone(),
        key: s.key.clone(),
        ocsp: ocsp(&s.ocsp),
    }))
    .collect()
}

/// Waits for `shutdown`, then until every gauge in `busy` is zero (requests in flight, open
/// client connections), at most `limit`, or until pingora is done. Returns what was left.
///
/// Connections are waited for because a response that pingora has finished may still sit in
/// h2's or quinn's send buffer; after their GOAWAY, HTTP/2 connections close once their
/// streams are done, and an HTTP/3 client closes its connection once it has everything.
fn drain(
    shutdown: &CancellationToken,
    busy: &[&prometheus::IntGauge],
    limit: Duration,
    pingora: &std::thread::JoinHandle<()>,
) -> i64 {
    // pingora's thread ends on its own only if it failed; then there is nothing to drain.
    while !shutdown.is_cancelled() && !pingora.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let until = std::time::Instant::now() + limit;
    let left = || busy.iter().map(|g| g.get()).sum::<i64>();
    // pingora closes its listeners as soon as it sees the cancellation; a request accepted
    // just before is counted by the time this first look is taken.
    std::thread::sleep(Duration::from_millis(100));
    while left() > 0 && std::time::Instant::now() < until && !pingora.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
    left()
}

/// Hands our cancellation to pingora as a graceful terminate.
struct TokenWatch(CancellationToken);

#[async_trait]
impl ShutdownSignalWatch for TokenWatch {
    async fn recv(&self) -> ShutdownSignal {
        self.0.cancelled().await;
        ShutdownSignal::GracefulTerminate
    }
}
