//! A small JSON client for Strata's own HTTP APIs (the control plane's and steering's admin
//! and player endpoints), used by the CLI tools and the demo.

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use strata_contracts::api::control_plane::ApiError;

/// POSTs `body` as JSON to `url` (with a bearer credential when given) and decodes a 2xx
/// answer; any other answer becomes an error carrying the API's reason.
pub async fn post_json<T: DeserializeOwned>(
    url: &str,
    bearer: Option<&str>,
    body: &impl Serialize,
) -> anyhow::Result<T> {
    let body = serde_json::to_vec(body).context("encoding the request")?;
    send(http::Method::POST, url, bearer, body).await
}

/// [`post_json`] with an already encoded body.
pub async fn post_raw<T: DeserializeOwned>(
    url: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<T> {
    send(http::Method::POST, url, bearer, body).await
}

/// GETs `url` and decodes a 2xx JSON answer.
pub async fn get_json<T: DeserializeOwned>(url: &str, bearer: Option<&str>) -> anyhow::Result<T> {
    send(http::Method::GET, url, bearer, Vec::new()).await
}

/// DELETEs `url` and decodes a 2xx JSON answer.
pub async fn delete_json<T: DeserializeOwned>(url: &str, bearer: Option<&str>) -> anyhow::Result<T> {
    send(http::Method::DELETE, url, bearer, Vec::new()).await
}

async fn send<T: DeserializeOwned>(
    method: http::Method,
    url: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<T> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .with_context(|| format!("bad URL {url}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(60), client.request(req))
        .await
        .with_context(|| format!("{url} did not answer within 60 s"))?
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    if !status.is_success() {
        let reason = serde_json::from_slice::<ApiError>(&body)
            .map(|e| format!("{}: {}", e.error, e.message))
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        bail!("{url} answered {status}: {reason}");
    }
    serde_json::from_slice(&body).with_context(|| format!("{url} answered with unexpected JSON"))
}
