//! Packaged manifests, read from the origin (or the CDN in front of it) over HTTP and kept for
//! a few seconds, so that a burst of plays of one title costs one fetch.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Manifests larger than this are refused: a packaged manifest is kilobytes.
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Why a packaged manifest could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// No answer, or the answer broke off.
    #[error("the origin did not answer for {path}: {reason}")]
    Unreachable {
        /// Path asked for.
        path: String,
        /// What failed.
        reason: String,
    },
    /// An answer other than 200.
    #[error("the origin answered {status} for {path}")]
    Status {
        /// Path asked for.
        path: String,
        /// Its status.
        status: u16,
    },
}

/// Reads packaged manifests from one base URL.
pub struct Packaged {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    kept: Mutex<HashMap<String, (Instant, Bytes)>>,
    keep_for: Duration,
    timeout: Duration,
}

impl Packaged {
    /// Reads from `base` (`http://host:port`), keeping answers for `keep_for`.
    pub fn new(base: &str, keep_for: Duration) -> Packaged {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Packaged {
            base: base.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            kept: Mutex::new(HashMap::new()),
            keep_for,
            timeout: Duration::from_secs(5),
        }
    }

    /// The manifest at `path`.
    pub async fn get(&self, path: &str) -> Result<Bytes, FetchError> {
        if let Some((at, body)) = self.kept.lock().get(path)
            && at.elapsed() < self.keep_for
        {
            return Ok(body.clone());
        }
        let body = tokio::time::timeout(self.timeout, self.fetch(path))
            .await
            .map_err(|_| FetchError::Unreachable {
                path: path.to_string(),
                reason: format!("no answer within {:?}", self.timeout),
            })??;
        let mut kept = self.kept.lock();
        kept.retain(|_, (at, _)| at.elapsed() < self.keep_for);
        kept.insert(path.to_string(), (Instant::now(), body.clone()));
        Ok(body)
    }

    async fn fetch(&self, path: &str) -> Result<Bytes, FetchError> {
        let unreachable = |reason: String| FetchError::Unreachable {
            path: path.to_string(),
            reason,
        };
        let uri: http::Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e: http::uri::InvalidUri| unreachable(e.to_string()))?;
        let resp = self
            .client
            .get(uri)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if resp.status() != http::StatusCode::OK {
            return Err(FetchError::Status {
                path: path.to_string(),
                status: resp.status().as_u16(),
            });
        }
        Limited::new(resp.into_body(), MAX_MANIFEST_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| unreachable(e.to_string()))
    }
}
