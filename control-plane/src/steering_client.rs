//! Asks steering (`GET /v1/decide`) which CDN a new play should start on, so that players
//! that do not speak Content Steering also start on the best edge. Steering being slow or
//! away never stops a play: the configured `cdn_url` serves instead.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::IpAddr;
use std::time::Duration;
use strata_contracts::api::steering::Decision;

/// How long a play waits for steering's answer before starting on `cdn_url`.
const DECIDE_TIMEOUT: Duration = Duration::from_millis(300);

/// A client of steering's decision API.
pub struct SteeringClient {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl SteeringClient {
    /// A client of the steering service at `base`.
    pub fn new(base: &str) -> SteeringClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(DECIDE_TIMEOUT));
        SteeringClient {
            base: base.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The base URL of the best pathway for `title` and a client at `ip`.
    pub async fn best_cdn(&self, title: &str, ip: IpAddr) -> Result<String, String> {
        let encoded = strata_contracts::query::encode(title);
        let uri: http::Uri = format!("{}/v1/decide?title={encoded}&ip={ip}", self.base)
            .parse()
            .map_err(|e| format!("steering URL: {e}"))?;
        let ask = async {
            let resp = self.client.get(uri).await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("steering answered {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let decision: Decision =
                serde_json::from_slice(&body).map_err(|e| format!("steering's answer: {e}"))?;
            decision
                .pathways
                .first()
                .map(|p| p.url.trim_end_matches('/').to_string())
                .ok_or_else(|| "steering has no pathway".to_string())
        };
        tokio::time::timeout(DECIDE_TIMEOUT, ask)
            .await
            .map_err(|_| format!("steering did not answer within {DECIDE_TIMEOUT:?}"))?
    }
}
