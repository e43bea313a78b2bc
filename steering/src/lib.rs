//! Strata's steering: which edge (or external CDN) serves each viewer.
//!
//! - `fleet`: registered edges, heartbeats, health polls, rotation (a pure state machine)
//! - `decide`: the per-viewer decision: prefix, then nearest cluster, a home edge per title,
//!   overload spill, external CDNs (pure)
//! - `manifest`: Content Steering manifests from a decision (pure)
//! - `expand` (pure) and `prewarm`: pre-warm jobs, from manifests to filled edges
//! - `store`: the fleet in SQLite, so a restart keeps it; `geo`: client locations
//! - `api`: the axum routes; `metrics`: `strata_steering_*`

mod api;
pub mod decide;
pub mod expand;
pub mod fleet;
mod geo;
pub mod manifest;
mod metrics;
mod prewarm;
mod store;

use api::{App, now_ms};
use fleet::{Fleet, Rules};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::RwLock;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use strata_contracts::config::steering::SteeringConfig;
use strata_contracts::token::{KeyRing, TokenKey, sign_edge};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why steering could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The fleet store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A config value the validator should have caught, or a file that could not be read.
    #[error("{0}")]
    Config(String),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// A bound steering service.
pub struct Steering {
    listener: TcpListener,
    app: Arc<App>,
}

/// The credential of edge `edge_id`, signed with the first of `keys`.
pub fn edge_credential(keys: &[TokenKey], edge_id: &str) -> Option<String> {
    keys.first().map(|k| sign_edge(k, edge_id))
}

impl Steering {
    /// Opens the fleet store (restoring the fleet) and binds the API listener.
    pub async fn bind(
        config: &SteeringConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, SteeringError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| SteeringError::Config(format!("data_dir {}: {e}", config.data_dir.display())))?;
        let store = store::Store::open(&config.data_dir).await?;
        let mut fleet = Fleet::default();
        for (registration, heartbeat) in store.load().await? {
            let id = registration.edge_id.clone();
            if let Err(e) = fleet.register(registration) {
                tracing::warn!(edge = %id, "stored registration refused: {e}");
                continue;
            }
            if let Some((at, hb)) = heartbeat {
                let _ = fleet.heartbeat(hb, at);
            }
        }
        let edge_keys =
            KeyRing::new(&config.edge_keys).map_err(|e| SteeringError::Config(format!("edge_keys: {e}")))?;
        if edge_keys.is_empty() {
            tracing::warn!("no edge_keys configured: every edge registration will be refused");
        }
        let geo =
            if config.geoip_db.as_os_str().is_empty() {
                None
            } else {
                Some(geo::GeoDb::open(&config.geoip_db).map_err(|e| {
                    SteeringError::Config(format!("geoip_db {}: {e}", config.geoip_db.display()))
                })?)
            };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|error| SteeringError::Bind {
                addr: config.listen,
                error,
            })?;
        let local = listener.local_addr().map_err(SteeringError::Serve)?;
        let public_url = if config.public_url.is_empty() {
            format!("http://{local}")
        } else {
            config.public_url()
        };
        let restored = fleet.edges().count();
        let app = App {
            rules: Rules {
                heartbeat_timeout_ms: config.heartbeat_timeout_ms,
                poll_fail_after: config.poll_fail_after,
                overload: config.overload,
                max_edge_pathways: config.max_pathways,
            },
            config: config.clone(),
            public_url,
            fleet: RwLock::new(fleet),
            store,
            edge_keys,
            geo,
            metrics: metrics::Metrics::register(registry)?,
            admin_token: std::env::var("STRATA_STEERING_ADMIN_TOKEN")
                .unwrap_or_else(|_| config.admin_token.clone()),
            jobs: parking_lot::Mutex::new(std::collections::HashMap::new()),
        };
        tracing::info!(addr = %local, edges = restored, "steering listening");
        Ok(Steering {
            listener,
            app: Arc::new(app),
        })
    }

    /// The bound API address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown`, polling edges and keeping the rotation gauge current.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), SteeringError> {
        tokio::spawn(watch_fleet(Arc::clone(&self.app), shutdown.clone()));
        // Jobs that were waiting or running when steering stopped go on where they were.
        for job in self.app.store.jobs().await? {
            if matches!(job.state.as_str(), "waiting" | "running") {
                tracing::info!(job = %job.id, "resuming pre-warm job");
            }
            prewarm::start(&self.app, job);
        }
        let router = api::router(self.app);
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(SteeringError::Serve)
    }
}

/// Polls every edge's health endpoint each `poll_interval_ms` (once a second when polling is
/// off, only to refresh the rotation gauge).
async fn watch_fleet(app: Arc<App>, shutdown: CancellationToken) {
    let polling = app.config.poll_interval_ms > 0;
    let every = Duration::from_millis(if polling {
        app.config.poll_interval_ms
    } else {
        1000
    });
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_millis(500)));
    let client: Client<HttpConnector, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if polling {
            let targets: Vec<(String, String)> = app
                .fleet
                .read()
                .edges()
                .map(|e| (e.registration.edge_id.clone(), e.registration.health_url.clone()))
                .collect();
            let polls = targets.into_iter().map(|(id, url)| {
                let client = client.clone();
                async move {
                    let ok = match url.parse::<http::Uri>() {
                        Ok(uri) => matches!(
                            tokio::time::timeout(Duration::from_secs(1), client.get(uri)).await,
                            Ok(Ok(resp)) if resp.status().is_success()
                        ),
                        Err(_) => false,
                    };
                    (id, ok)
                }
            });
            let results = futures::future::join_all(polls).await;
            let mut fleet = app.fleet.write();
            for (id, ok) in results {
                app.metrics
                    .polls
                    .with_label_values(&[if ok { "ok" } else { "failed" }])
                    .inc();
                fleet.poll_result(&id, ok);
            }
        }
        let now = now_ms();
        let fleet = app.fleet.read();
        let (mut inside, mut outside) = (0, 0);
        for e in fleet.edges() {
            if e.out_because(now, &app.rules).is_none() {
                inside += 1;
            } else {
                outside += 1;
            }
        }
        app.metrics.edges.with_label_values(&["in"]).set(inside);
        app.metrics.edges.with_label_values(&["out"]).set(outside);
    }
}
