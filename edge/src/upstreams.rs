//! The upstreams of one cache node at run time: its parents (with their rendezvous ring) and
//! its origins, each with a health state fed by real traffic and, for parents, by probes.
//! Policy lives in `parent_select` and `health`; this is the shared state and the probe loop.

use crate::dns::Dns;
use crate::health::{Health, HealthPolicy, Source, Transition};
use crate::metrics::EdgeMetrics;
use crate::parent_select::{self, ParentRing, Target};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_contracts::config::edge::{EdgeConfig, HEALTH_PROBE_PATH, UpstreamUrl, parse_upstream};
use tokio_util::sync::CancellationToken;

/// One parent or origin.
pub struct UpstreamNode {
    /// Where it is.
    pub url: UpstreamUrl,
    /// `parent` or `origin`, for metrics and logs.
    pub kind: &'static str,
    /// Its URL as configured, for metrics and logs.
    pub label: String,
    health: Mutex<Health>,
}

/// Every upstream of this node.
pub struct Upstreams {
    ring: ParentRing,
    parents: Vec<UpstreamNode>,
    origins: Vec<UpstreamNode>,
    origin_fallback: bool,
    policy: HealthPolicy,
    metrics: EdgeMetrics,
    dns: Dns,
}

impl Upstreams {
    /// From a validated config.
    pub fn from_config(config: &EdgeConfig, metrics: EdgeMetrics) -> Result<Self, String> {
        let probed = config.health.probe_interval_ms > 0;
        let node = |url: &str, kind: &'static str, probed: bool| -> Result<UpstreamNode, String> {
            metrics.upstream_up.with_label_values(&[kind, url]).set(1);
            Ok(UpstreamNode {
                url: parse_upstream(url)?,
                kind,
                label: url.to_string(),
                health: Mutex::new(Health::new(probed)),
            })
        };
        let parents = config
            .parents
            .iter()
            .map(|p| node(&p.url, "parent", probed))
            .collect::<Result<Vec<_>, _>>()?;
        let origins = std::iter::once(&config.upstream)
            .chain(&config.upstream_failover)
            .map(|u| node(u, "origin", false))
            .collect::<Result<Vec<_>, _>>()?;
        let h = &config.health;
        Ok(Self {
            ring: ParentRing::new(config.parents.iter().map(|p| (p.url.as_str(), p.weight))),
            parents,
            origins,
            origin_fallback: config.origin_fallback,
            policy: HealthPolicy {
                fail_after: h.fail_after,
                rise_after: h.rise_after,
                retry_down_after: Duration::from_millis(h.retry_down_after_ms),
            },
            metrics,
            dns: Dns::new(&config.dns.nameservers),
        })
    }

    /// The address to connect to for `target`, its name resolved (TTL-cached) if it has one.
    pub async fn addr(&self, target: Target) -> Result<SocketAddr, String> {
        let url = &self.node(target).url;
        self.dns.resolve(&url.host, url.port).await
    }

    /// Whether parents are configured.
    pub fn has_parents(&self) -> bool {
        !self.ring.is_empty()
    }

    /// The attempts for a miss of `key`, in order (see [`parent_select::plan`]).
    pub fn plan(&self, key: &str) -> Vec<Target> {
        let now = Instant::now();
        let order = if self.ring.is_empty() {
            Vec::new()
        } else {
            self.ring.order(key)
        };
        parent_select::plan(
            &order,
            |p| self.parents[p].health.lock().admit(now, &self.policy),
            self.origins.len(),
            |o| self.origins[o].health.lock().admit(now, &self.policy),
            self.origin_fallback,
        )
    }

    /// The parents and origins marked down, by URL.
    pub fn down(&self) -> Vec<String> {
        self.parents
            .iter()
            .chain(&self.origins)
            .filter(|n| !n.health.lock().is_up())
            .map(|n| format!("{} {}", n.kind, n.label))
            .collect()
    }

    /// The node an attempt goes to.
    pub fn node(&self, target: Target) -> &UpstreamNode {
        match target {
            Target::Parent(i) => &self.parents[i],
            Target::Origin(i) => &self.origins[i],
        }
    }

    /// Records how an attempt (or a probe) went.
    pub fn report(&self, target: Target, ok: bool, source: Source) {
        let node = self.node(target);
        let labels = [node.kind, node.label.as_str()];
        if !ok && source == Source::Traffic {
            self.metrics.upstream_failures.with_label_values(&labels).inc();
        }
        let transition = node
            .health
            .lock()
            .observe(ok, source, Instant::now(), &self.policy);
        match transition {
            Some(Transition::Down) => {
                self.metrics.upstream_up.with_label_values(&labels).set(0);
                tracing::warn!(kind = node.kind, upstream = %node.label, ?source, "upstream marked down");
            }
            Some(Transition::Up) => {
                self.metrics.upstream_up.with_label_values(&labels).set(1);
                tracing::info!(kind = node.kind, upstream = %node.label, "upstream marked up");
            }
            None => {}
        }
    }

    /// Probes every parent every `interval` until `shutdown`.
    pub fn spawn_probes(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        interval: Duration,
        timeout: Duration,
        shutdown: CancellationToken,
    ) {
        for i in 0..self.parents.len() {
            let this = Arc::clone(self);
            let shutdown = shutdown.clone();
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = ticks.tick() => {}
                    }
                    let probe = async {
                        let addr = this.addr(Target::Parent(i)).await?;
                        probe(addr, &this.parents[i].url).await
                    };
                    let ok = matches!(tokio::time::timeout(timeout, probe).await, Ok(Ok(())));
                    this.report(Target::Parent(i), ok, Source::Probe);
                }
            });
        }
    }
}

/// One probe: `GET /.strata/health` on a fresh connection must answer 200.
async fn probe(addr: SocketAddr, url: &UpstreamUrl) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let request = http::Request::get(HEALTH_PROBE_PATH)
        .header(http::header::HOST, url.authority.as_str())
        .header(http::header::USER_AGENT, "strata-health-probe")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string());
    conn.abort();
    match response?.status() {
        http::StatusCode::OK => Ok(()),
        status => Err(format!("status {status}")),
    }
}
