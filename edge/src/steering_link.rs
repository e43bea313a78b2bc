//! The edge's side of steering: register at start, then a heartbeat every few seconds with
//! health, load, free cache and disk state. Steering being away never stops the edge from
//! serving: failures are logged when the link's state changes and retried on the next tick.

use crate::metrics::EdgeMetrics;
use crate::store::FoyerStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus::core::Collector;
use std::time::{Duration, Instant};
use strata_contracts::api::steering::{EDGE_PROTOCOL_VERSION, EdgeRegistration, Heartbeat};
use tokio_util::sync::CancellationToken;

/// What the link sends and where.
pub struct LinkSettings {
    /// Steering's base URL.
    pub url: String,
    /// The edge's credential.
    pub credential: String,
    /// The registration sent at start (and again when steering has forgotten the edge).
    pub registration: EdgeRegistration,
    /// Heartbeat interval.
    pub every: Duration,
    /// Requests per second the edge is sized for; 0: load 0.
    pub capacity_rps: u64,
}

/// Load as a share of capacity: `requests` over `elapsed` against `capacity_rps`.
pub fn load_share(requests: u64, elapsed: Duration, capacity_rps: u64) -> f64 {
    if capacity_rps == 0 || elapsed.is_zero() {
        return 0.0;
    }
    (requests as f64 / elapsed.as_secs_f64() / capacity_rps as f64).clamp(0.0, 1.0)
}

fn total_requests(metrics: &EdgeMetrics) -> u64 {
    metrics
        .requests
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

enum Sent {
    Ok,
    /// Steering does not know this edge (404): register again.
    Unregistered,
    Failed(String),
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    credential: &str,
    body: Vec<u8>,
) -> Sent {
    let req = match http::Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {credential}"))
        .body(Full::new(Bytes::from(body)))
    {
        Ok(r) => r,
        Err(e) => return Sent::Failed(e.to_string()),
    };
    match tokio::time::timeout(Duration::from_secs(3), client.request(req)).await {
        Err(_) => Sent::Failed("no answer within 3 s".into()),
        Ok(Err(e)) => Sent::Failed(e.to_string()),
        Ok(Ok(resp)) if resp.status().is_success() => Sent::Ok,
        Ok(Ok(resp)) if resp.status() == http::StatusCode::NOT_FOUND => Sent::Unregistered,
        Ok(Ok(resp)) => {
            let status = resp.status();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Sent::Failed(format!("{status}: {}", body.trim()))
        }
    }
}

/// Runs the link on `handle` until `shutdown`.
pub fn spawn(
    settings: LinkSettings,
    metrics: EdgeMetrics,
    store: &'static FoyerStore,
    handle: &tokio::runtime::Handle,
    shutdown: CancellationToken,
) {
    handle.spawn(async move {
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let base = settings.url.trim_end_matches('/').to_string();
        let edge_id = settings.registration.edge_id.clone();
        let registration = serde_json::to_vec(&settings.registration).expect("registrations serialize");
        let mut registered = false;
        let mut last_error: Option<String> = None;
        let mut last = (Instant::now(), total_requests(&metrics));
        loop {
            let outcome = if registered {
                let now = (Instant::now(), total_requests(&metrics));
                let load = load_share(
                    now.1.saturating_sub(last.1),
                    now.0 - last.0,
                    settings.capacity_rps,
                );
                last = now;
                let hb = Heartbeat {
                    version: EDGE_PROTOCOL_VERSION,
                    edge_id: edge_id.clone(),
                    // An edge whose disk is out still serves from memory and its parents.
                    healthy: true,
                    load,
                    free_cache_bytes: store.free_bytes(),
                    disks_ok: store.disk_health().is_ok(),
                };
                let body = serde_json::to_vec(&hb).expect("heartbeats serialize");
                post(
                    &client,
                    &format!("{base}/v1/edges/heartbeat"),
                    &settings.credential,
                    body,
                )
                .await
            } else {
                post(
                    &client,
                    &format!("{base}/v1/edges/register"),
                    &settings.credential,
                    registration.clone(),
                )
                .await
            };
            match outcome {
                Sent::Ok => {
                    if !registered {
                        tracing::info!(steering = %base, edge = %edge_id, "registered with steering");
                    } else if last_error.is_some() {
                        tracing::info!(steering = %base, "steering answers again");
                    }
                    registered = true;
                    last_error = None;
                }
                Sent::Unregistered => {
                    tracing::warn!(steering = %base, "steering does not know this edge: registering again");
                    registered = false;
                    continue;
                }
                Sent::Failed(e) => {
                    if last_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!(steering = %base, "steering link: {e}; serving on, retrying");
                    }
                    last_error = Some(e);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(settings.every) => {}
            }
        }
    });
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn load_is_the_rate_over_capacity() {
        assert_eq!(load_share(200, Duration::from_secs(2), 0), 0.0);
        assert_eq!(load_share(200, Duration::from_secs(2), 200), 0.5);
        assert_eq!(load_share(2000, Duration::from_secs(1), 100), 1.0);
        assert_eq!(load_share(5, Duration::ZERO, 100), 0.0);
    }
}
