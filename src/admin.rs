//! The admin listener every role runs beside its data listener: `/metrics` in the
//! Prometheus text format and `/healthz`. It has an address of its own, so no content path
//! can collide with it and it can stay off the viewer-facing network.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::future::BoxFuture;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a role's health check found.
pub enum Health {
    /// Serving normally.
    Ok,
    /// Serving, with a part out of service (for example an edge's disk): 200, with the reason.
    Degraded(String),
    /// Not able to serve: 503, with the reason.
    Unhealthy(String),
}

/// A role's health check.
pub type HealthCheck = Arc<dyn Fn() -> BoxFuture<'static, Health> + Send + Sync>;

/// A health check from a role's own probe: `Ok` is healthy, `Err(reason)` unhealthy.
pub fn health_check<P, F>(probe: P) -> HealthCheck
where
    P: Fn() -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || {
        let checked = probe();
        Box::pin(async move {
            match checked.await {
                Ok(()) => Health::Ok,
                Err(reason) => Health::Unhealthy(reason),
            }
        })
    })
}

/// Serves `admin` beside a role's own server future until both have finished (the role
/// returns once `shutdown` fired and it drained).
pub async fn serve_beside<E>(
    admin: Admin,
    shutdown: CancellationToken,
    role: impl std::future::Future<Output = Result<(), E>>,
) -> anyhow::Result<()>
where
    anyhow::Error: From<E>,
{
    let admin_task = tokio::spawn(admin.serve(shutdown));
    role.await?;
    admin_task
        .await
        .map_err(|e| anyhow::anyhow!("admin listener task: {e}"))??;
    Ok(())
}

#[derive(Clone)]
struct AdminState {
    role: &'static str,
    registry: Registry,
    health: HealthCheck,
}

/// A bound admin listener.
pub struct Admin {
    listener: TcpListener,
    state: AdminState,
    role_routes: Router,
}

impl Admin {
    /// Binds `addr` and registers the build-info metric in `registry`. `role_routes` are the
    /// role's own admin endpoints (with their own authentication), served beside the two
    /// common ones.
    pub async fn bind(
        addr: SocketAddr,
        role: &'static str,
        registry: Registry,
        health: HealthCheck,
        role_routes: Router,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (admin): {e}"))?;
        let info = IntGaugeVec::new(
            Opts::new("strata_build_info", "Strata build and role; always 1"),
            &["version", "role"],
        )?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION"), role]).set(1);
        registry.register(Box::new(info))?;
        let addr = listener.local_addr().unwrap_or(addr);
        tracing::info!(%addr, role, paths = "/metrics /healthz", "admin listening");
        Ok(Self {
            listener,
            state: AdminState {
                role,
                registry,
                health,
            },
            role_routes,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves until `shutdown` fires.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .with_state(self.state)
            .merge(self.role_routes);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await?;
        Ok(())
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut out = Vec::new();
    match encoder.encode(&state.registry.gather(), &mut out) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_string())],
            out,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_string())],
            format!("cannot encode metrics: {e}\n").into_bytes(),
        ),
    }
}

async fn healthz(State(state): State<AdminState>) -> impl IntoResponse {
    let version = env!("CARGO_PKG_VERSION");
    match (state.health)().await {
        Health::Ok => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok", "role": state.role, "version": version})),
        ),
        Health::Degraded(reason) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "status": "degraded", "role": state.role, "version": version, "reason": reason
            })),
        ),
        Health::Unhealthy(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "unhealthy", "role": state.role, "version": version, "reason": reason
            })),
        ),
    }
}
