//! Steering's HTTP API (axum): edge registration and heartbeats, Content Steering manifests,
//! 302 routing, the decision API and the operator's fleet view. Errors are JSON
//! `{"error": reason, "message": text}`.

use crate::decide::{Client, decide};
use crate::fleet::{Fleet, FleetError, Rules};
use crate::geo::{GeoDb, client_ip};
use crate::manifest::{Player, steering_manifest};
use crate::metrics::Metrics;
use crate::store::Store;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use strata_contracts::api::control_plane::ApiError;
use strata_contracts::api::steering::{
    BASE_PARAM, Decision, EdgeAck, EdgeRegistration, FleetView, Heartbeat, PrewarmJob, PrewarmJobs,
    PrewarmRequest,
};
use strata_contracts::config::steering::SteeringConfig;
use strata_contracts::query;
use strata_contracts::token::{EdgeClaims, KeyRing, TokenKind, same_secret};

/// Everything the handlers share.
pub(crate) struct App {
    pub config: SteeringConfig,
    pub public_url: String,
    pub fleet: RwLock<Fleet>,
    pub rules: Rules,
    pub store: Store,
    pub edge_keys: KeyRing,
    pub geo: Option<GeoDb>,
    pub metrics: Metrics,
    pub admin_token: String,
    /// Pre-warm jobs by id.
    pub jobs: parking_lot::Mutex<std::collections::HashMap<String, Arc<crate::prewarm::Job>>>,
}

type Shared = Arc<App>;

/// Unix milliseconds: the fleet's clock (wall time, so stored heartbeats keep their age
/// across a restart).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The API's routes.
pub(crate) fn router(app: Shared) -> Router {
    Router::new()
        .route("/v1/edges/register", post(register))
        .route("/v1/edges/heartbeat", post(heartbeat))
        .route("/v1/steering/{session}", get(steering))
        .route("/v1/route/{*path}", get(route))
        .route("/v1/decide", get(decide_api))
        .route("/v1/admin/edges", get(fleet_view))
        .route("/v1/admin/edges/{id}", delete(forget_edge))
        .route("/v1/admin/prewarm", post(create_prewarm).get(list_prewarm))
        .route("/v1/admin/prewarm/{id}", get(get_prewarm).delete(cancel_prewarm))
        .fallback(|| async { failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(app)
}

fn failure(status: StatusCode, error: &str, message: impl Into<String>) -> Response {
    let mut resp = (
        status,
        Json(ApiError {
            error: error.into(),
            message: message.into(),
        }),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        failure(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("field `{path}`: {}", e.into_inner()),
        )
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The edge a request's credential names, checked against the id the body claims.
fn authenticate_edge(app: &App, headers: &HeaderMap, claimed: &str) -> Result<(), Response> {
    let Some(credential) = bearer(headers) else {
        return Err(failure(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an edge credential is required",
        ));
    };
    let claims: EdgeClaims = app.edge_keys.open(TokenKind::Edge, credential).map_err(|r| {
        failure(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("edge credential refused: {r}"),
        )
    })?;
    if claims.sub != claimed {
        return Err(failure(
            StatusCode::FORBIDDEN,
            "impersonation",
            format!(
                "this credential belongs to edge {:?}, not {claimed:?}",
                claims.sub
            ),
        ));
    }
    Ok(())
}

fn fleet_failure(e: FleetError) -> Response {
    let status = match e {
        FleetError::Unregistered(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    failure(status, e.reason(), e.to_string())
}

async fn register(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let reg: EdgeRegistration = match parse_json(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = authenticate_edge(&app, &headers, &reg.edge_id) {
        app.metrics
            .edge_messages
            .with_label_values(&["register", "refused"])
            .inc();
        return resp;
    }
    if let Err(e) = app.fleet.write().register(reg.clone()) {
        app.metrics
            .edge_messages
            .with_label_values(&["register", "refused"])
            .inc();
        return fleet_failure(e);
    }
    if let Err(e) = app.store.register(&reg, now_ms()).await {
        tracing::error!("{e}");
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            e.to_string(),
        );
    }
    app.metrics
        .edge_messages
        .with_label_values(&["register", "ok"])
        .inc();
    tracing::info!(edge = %reg.edge_id, cluster = %reg.cluster, url = %reg.url, "edge registered");
    let in_rotation = in_rotation(&app, &reg.edge_id);
    Json(EdgeAck {
        edge_id: reg.edge_id,
        in_rotation,
    })
    .into_response()
}

fn in_rotation(app: &App, id: &str) -> bool {
    app.fleet
        .read()
        .edge(id)
        .is_some_and(|e| e.out_because(now_ms(), &app.rules).is_none())
}

async fn heartbeat(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let hb: Heartbeat = match parse_json(&body) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    if let Err(resp) = authenticate_edge(&app, &headers, &hb.edge_id) {
        app.metrics
            .edge_messages
            .with_label_values(&["heartbeat", "refused"])
            .inc();
        return resp;
    }
    let now = now_ms();
    if let Err(e) = app.fleet.write().heartbeat(hb.clone(), now) {
        app.metrics
            .edge_messages
            .with_label_values(&["heartbeat", "refused"])
            .inc();
        return fleet_failure(e);
    }
    app.metrics
        .edge_messages
        .with_label_values(&["heartbeat", "ok"])
        .inc();
    if let Err(e) = app.store.heartbeat(&hb, now).await {
        // The fleet in memory is current; only a restart would lose this heartbeat.
        tracing::warn!("{e}");
    }
    Json(EdgeAck {
        in_rotation: in_rotation(&app, &hb.edge_id),
        edge_id: hb.edge_id,
    })
    .into_response()
}

/// Decides for a client address and a title key.
fn decide_for(app: &App, ip: IpAddr, title: &str) -> Decision {
    let client = Client {
        ip,
        location: app.geo.as_ref().and_then(|g| g.location(ip)),
    };
    let fleet = app.fleet.read();
    let d = decide(&fleet, &app.rules, &app.config.cdns, &client, title, now_ms());
    app.metrics
        .decisions
        .with_label_values(&[d.matched_by.as_str()])
        .inc();
    d
}

async fn steering(
    State(app): State<Shared>,
    Path(session): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let player = Player::from_query(&query);
    let title = query
        .iter()
        .find(|(k, _)| k == "title")
        .map_or(session.as_str(), |(_, v)| v.as_str())
        .to_string();
    let ip = client_ip(&app.config.client_ip_header, &headers, peer);
    let base = query
        .iter()
        .find(|(k, _)| k == BASE_PARAM)
        .map(|(_, v)| v.as_str());
    let decision = decide_for(&app, ip, &title);
    // The session's state rides in RELOAD-URI: which title, which player family, and where
    // the manifest's own pathway points.
    let mut reload = format!(
        "{}/v1/steering/{}?title={}&player={}",
        app.public_url,
        query::encode(&session),
        query::encode(&title),
        player.name()
    );
    if let Some(b) = base {
        reload.push_str(&format!("&{BASE_PARAM}={}", query::encode(b)));
    }
    let manifest = steering_manifest(&decision, player, app.config.ttl_secs, reload, base);
    let mut resp = Json(manifest).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Browser players fetch steering manifests from pages on other origins.
    resp.headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

async fn route(
    State(app): State<Shared>,
    Path(path): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: http::Uri,
) -> Response {
    // The title is the path's first segment (`/<title>/...`), as packaged titles are laid out.
    let title = path.split('/').next().unwrap_or_default().to_string();
    let ip = client_ip(&app.config.client_ip_header, &headers, peer);
    let decision = decide_for(&app, ip, &title);
    let Some(best) = decision.pathways.first() else {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_pathway",
            "no edge is in rotation and no external CDN is configured",
        );
    };
    let mut location = format!("{}/{path}", best.url.trim_end_matches('/'));
    if let Some(q) = uri.query() {
        location.push('?');
        location.push_str(q);
    }
    let Ok(value) = HeaderValue::from_str(&location) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the path cannot be redirected",
        );
    };
    let mut resp = StatusCode::FOUND.into_response();
    resp.headers_mut().insert(header::LOCATION, value);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(serde::Deserialize)]
struct DecideParams {
    title: String,
    ip: Option<IpAddr>,
}

async fn decide_api(
    State(app): State<Shared>,
    Query(p): Query<DecideParams>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let ip =
        p.ip.unwrap_or_else(|| client_ip(&app.config.client_ip_header, &headers, peer));
    Json(decide_for(&app, ip, &p.title)).into_response()
}

fn require_admin(app: &App, headers: &HeaderMap) -> Result<(), Response> {
    if app.admin_token.is_empty() {
        return Err(failure(
            StatusCode::FORBIDDEN,
            "disabled",
            "the admin API is disabled: set admin_token",
        ));
    }
    match bearer(headers) {
        Some(t) if same_secret(t, &app.admin_token) => Ok(()),
        _ => Err(failure(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer credential is required",
        )),
    }
}

async fn fleet_view(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(resp) = require_admin(&app, &headers) {
        return resp;
    }
    let edges = app.fleet.read().view(now_ms(), &app.rules);
    Json(FleetView { edges }).into_response()
}

async fn forget_edge(State(app): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(resp) = require_admin(&app, &headers) {
        return resp;
    }
    if !app.fleet.write().remove(&id) {
        return failure(StatusCode::NOT_FOUND, "unknown_edge", format!("no edge {id:?}"));
    }
    if let Err(e) = app.store.remove(&id).await {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            e.to_string(),
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn create_prewarm(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    use crate::prewarm::{self, PrewarmError};
    if let Err(resp) = require_admin(&app, &headers) {
        return resp;
    }
    let request: PrewarmRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let expanded = match prewarm::check(&request) {
        Ok(()) => prewarm::expand_request(&app.config.origin_url, &request).await,
        Err(e) => Err(e),
    };
    let objects = match expanded {
        Ok(o) => o,
        Err(e) => {
            let (status, reason) = match &e {
                PrewarmError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                PrewarmError::NotFound(_) => (StatusCode::NOT_FOUND, "unknown_manifest"),
                PrewarmError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_manifest"),
                PrewarmError::Upstream(_) => (StatusCode::BAD_GATEWAY, "origin_unavailable"),
            };
            return failure(status, reason, e.to_string());
        }
    };
    let id = format!("pw-{}-{:04x}", now_ms(), rand_u16());
    if let Err(e) = app.store.insert_job(&id, &request, &objects, now_ms()).await {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            e.to_string(),
        );
    }
    tracing::info!(job = %id, objects = objects.len(), "pre-warm job created");
    let job = prewarm::start(
        &app,
        crate::store::StoredJob {
            id,
            request,
            objects,
            state: "waiting".into(),
            message: None,
        },
    );
    (StatusCode::ACCEPTED, Json(job.view())).into_response()
}

fn rand_u16() -> u16 {
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        % 65_536) as u16
}

async fn list_prewarm(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(resp) = require_admin(&app, &headers) {
        return resp;
    }
    let mut jobs: Vec<PrewarmJob> = app.jobs.lock().values().map(|j| j.view()).collect();
    jobs.sort_by(|a, b| b.id.cmp(&a.id));
    Json(PrewarmJobs { jobs }).into_response()
}

async fn get_prewarm(State(app): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(resp) = require_admin(&app, &headers) {
        return resp;
    }
    let job = app.jobs.lock().get(&id).cloned();
    match job {
        Some(j) => Json(j.view()).into_response(),
        None => failure(
            StatusCode::NOT_FOUND,
            "unknown_job",
            format!("no pre-warm job {id:?}"),
        ),
    }
}

async fn cancel_prewarm(State(app): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(resp) = require_admin(&app, &headers) {
        return resp;
    }
    let job = app.jobs.lock().get(&id).cloned();
    match job {
        Some(j) if j.ended() => failure(
            StatusCode::CONFLICT,
            "ended",
            format!("job {id} has already ended"),
        ),
        Some(j) => {
            j.cancel();
            (StatusCode::ACCEPTED, Json(j.view())).into_response()
        }
        None => failure(
            StatusCode::NOT_FOUND,
            "unknown_job",
            format!("no pre-warm job {id:?}"),
        ),
    }
}
