//! The content listener: accepts connections, serves HTTP/1.1 and h2c on each, and drains
//! in-flight requests on shutdown.

use crate::metrics::OriginMetrics;
use crate::service::OriginService;
use crate::storage::{self, ContentStore};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use strata_contracts::config::origin::OriginConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A slow client gets this long to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the origin could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The listener address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
    /// The storage backend could not be opened.
    #[error(transparent)]
    Storage(#[from] storage::StoreError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A bound, not yet serving, origin.
pub struct OriginServer {
    listener: TcpListener,
    service: Arc<OriginService>,
    drain_timeout: Duration,
}

/// Answers health checks for the admin listener.
#[derive(Clone)]
pub struct OriginHealth {
    store: Arc<dyn ContentStore>,
}

impl OriginHealth {
    /// Checks that storage answers.
    pub async fn check(&self) -> Result<(), String> {
        self.store.probe().await.map_err(|e| e.to_string())
    }
}

impl OriginServer {
    /// Opens storage, registers metrics in `registry`, and binds the content listener.
    pub async fn bind(config: &OriginConfig, registry: &Registry) -> Result<Self, OriginError> {
        let store = storage::open(&config.storage)?;
        let metrics = OriginMetrics::register(registry)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|error| OriginError::Bind {
                addr: config.listen,
                error,
            })?;
        tracing::info!(addr = %listener.local_addr().unwrap_or(config.listen), storage = %store.describe(), "origin listening");
        let service = OriginService {
            store,
            cache_control: config.cache_control.clone(),
            limits: config.limits.clone(),
            cors_allow_origin: (!config.cors_allow_origin.is_empty())
                .then(|| http::HeaderValue::from_str(&config.cors_allow_origin).ok())
                .flatten(),
            metrics,
        };
        Ok(Self {
            listener,
            service: Arc::new(service),
            drain_timeout: Duration::from_secs(config.drain_timeout_secs),
        })
    }

    /// The address the content listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// A health checker for the admin listener.
    pub fn health(&self) -> OriginHealth {
        OriginHealth {
            store: self.service.store.clone(),
        }
    }

    /// Serves until `shutdown` fires, then drains in-flight requests.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), OriginError> {
        let limits = &self.service.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            // Past this the parser itself answers 431; below it our own check names the limit.
            .max_buf_size((limits.max_header_bytes * 2).max(16 * 1024));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes * 2).unwrap_or(u32::MAX));
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let service = self.service.clone();
            let svc = service_fn(move |req| {
                let service = service.clone();
                async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        let open = graceful.count();
        tracing::info!(connections = open, "origin draining");
        tokio::select! {
            _ = graceful.shutdown() => tracing::info!("origin drained"),
            _ = tokio::time::sleep(self.drain_timeout) => {
                tracing::warn!(timeout_secs = self.drain_timeout.as_secs(), "drain timed out; closing the rest");
            }
        }
        Ok(())
    }
}
