//! The edge's admin API (purge and inventory), served on the admin listener beside
//! `/metrics` and `/healthz`, behind a bearer credential. Bodies are the versioned types of
//! `strata_contracts::api::edge`.

use crate::cache_key::{KeyRules, primary_key};
use crate::store::FoyerStore;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Arc;
use strata_contracts::api::edge::{ApiError, PurgeRequest, PurgeResponse};

/// Most objects one inventory answer lists.
const MAX_LIMIT: usize = 100_000;

#[derive(Clone)]
struct ApiState {
    store: &'static FoyerStore,
    rules: Arc<KeyRules>,
}

/// The admin API routes; with no token they all answer 403.
pub fn routes(store: &'static FoyerStore, rules: KeyRules, token: Option<String>) -> Router {
    let state = ApiState {
        store,
        rules: Arc::new(rules),
    };
    Router::new()
        .route("/v1/purge", post(purge))
        .route("/v1/inventory", get(inventory))
        .with_state(state)
        .layer(middleware::from_fn_with_state(Arc::new(token), require_bearer))
}

fn api_error(status: StatusCode, error: &str, message: impl Into<String>) -> Response {
    let body = ApiError {
        error: error.into(),
        message: message.into(),
    };
    (status, axum::Json(body)).into_response()
}

async fn require_bearer(
    State(token): State<Arc<Option<String>>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = token.as_deref() else {
        return api_error(
            StatusCode::FORBIDDEN,
            "disabled",
            "the admin API is off: set admin_token in the edge config",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        let mut r = api_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer credential",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().unwrap());
        return r;
    }
    next.run(req).await
}

/// Compares secrets without an early exit that would leak how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn purge(State(state): State<ApiState>, body: Bytes) -> Response {
    let request: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("body is not a purge request: {e}"),
            );
        }
    };
    if request.urls.is_empty() && request.prefixes.is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "give at least one of `urls` or `prefixes`",
        );
    }
    let mut keys = Vec::new();
    for url in &request.urls {
        let uri: http::Uri = match url.parse() {
            Ok(u) => u,
            Err(e) => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("`{url}` is not a URL: {e}"),
                );
            }
        };
        let Some(host) = uri.host() else {
            return api_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("`{url}` has no host"),
            );
        };
        keys.push(primary_key(host, uri.path(), uri.query(), &state.rules));
    }
    if let Some(bad) = request.prefixes.iter().find(|p| !p.starts_with('/')) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("prefix `{bad}` must be a path starting with /"),
        );
    }
    let mut purged = 0;
    for key in &keys {
        purged += state.store.purge_key(key).await;
    }
    for prefix in &request.prefixes {
        purged += state.store.purge_prefix(prefix).await;
    }
    tracing::info!(
        urls = request.urls.len(),
        prefixes = request.prefixes.len(),
        purged,
        "purge"
    );
    axum::Json(PurgeResponse { purged }).into_response()
}

async fn inventory(State(state): State<ApiState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let prefix = q.get("prefix").map(String::as_str).unwrap_or("/");
    if !prefix.starts_with('/') {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "prefix must be a path starting with /",
        );
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 1000,
        Some(Ok(l)) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("limit must be 1..={MAX_LIMIT}"),
            );
        }
    };
    axum::Json(state.store.inventory(prefix, limit)).into_response()
}

#[cfg(test)]
mod test {
    use super::constant_time_eq;

    #[test]
    fn secrets_compare_exactly() {
        assert!(constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnoq"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
