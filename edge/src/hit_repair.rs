//! Continuing a hit whose stored copy fails mid-response (a chunk corrupt on disk, or evicted
//! past the read-ahead): the store asks for the bytes it could not read, and this asks the
//! request's upstreams for exactly those through the relay (`Range` + `If-Range` with the
//! stored validator, `resume::answers_between` judging the answer); a slice's bytes are asked
//! for at its offset in the object. The client then gets one intact response instead of a
//! cut one; the damaged object is refetched on its next request.

use crate::metrics::EdgeMetrics;
use crate::parent_select::Target;
use crate::relay::{HOP_BY_HOP, Relay};
use crate::resume::Validator;
use crate::store::{Repair, RepairBody};
use async_trait::async_trait;
use futures::StreamExt;
use http::HeaderMap;
use http_body_util::BodyExt;
use std::sync::Arc;

/// Request fields that would change what an upstream answers to the repair's own `Range`
/// (the client's connection's own fields go too: `relay::HOP_BY_HOP`).
const RANGE_AND_PRECONDITIONS: &[&str] = &[
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

/// One hit's way back to its upstreams.
pub struct HitRepair {
    relay: Arc<Relay>,
    targets: Vec<Target>,
    path_and_query: String,
    headers: HeaderMap,
    /// Where the stored bytes begin in the object (a slice's first byte; 0 for a whole one).
    offset: u64,
    total: u64,
    validator: Validator,
    metrics: EdgeMetrics,
}

impl HitRepair {
    /// A repair for stored bytes that begin at `offset` of a `total`-byte object named by
    /// `validator`, asked of `targets` in order with the request's path and fields (less
    /// those of `RANGE_AND_PRECONDITIONS` and `HOP_BY_HOP`); `hop` adds this node's `Via` and `CDN-Loop` entries.
    pub fn new(
        relay: Arc<Relay>,
        targets: Vec<Target>,
        path_and_query: String,
        request: &HeaderMap,
        hop: [(&'static str, String); 2],
        (offset, total, validator): (u64, u64, Validator),
        metrics: EdgeMetrics,
    ) -> Self {
        let mut headers = request.clone();
        for name in HOP_BY_HOP.iter().chain(RANGE_AND_PRECONDITIONS) {
            headers.remove(*name);
        }
        for (name, value) in hop {
            if let Ok(value) = value.parse() {
                headers.append(name, value);
            }
        }
        Self {
            relay,
            targets,
            path_and_query,
            headers,
            offset,
            total,
            validator,
            metrics,
        }
    }
}

#[async_trait]
impl Repair for HitRepair {
    async fn fetch(&self, first: u64, end: u64) -> Result<RepairBody, String> {
        let body = self
            .relay
            .fetch_between(
                &self.targets,
                &self.path_and_query,
                &self.headers,
                (self.offset + first, self.offset + end, self.total),
                &self.validator,
            )
            .await?;
        let timeout = self.relay.read_timeout();
        // Each read is bounded as the relay bounds its own; trailers and other frames carry
        // no bytes of the body.
        let data = futures::stream::unfold(Some(body), move |body| async move {
            let mut body = body?;
            loop {
                match tokio::time::timeout(timeout, body.frame()).await {
                    Ok(None) => return None,
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), Some(body)));
                        }
                    }
                    Ok(Some(Err(e))) => return Some((Err(e.to_string()), None)),
                    Err(_) => return Some((Err("timed out".to_string()), None)),
                }
            }
        });
        Ok(data.boxed())
    }

    fn outcome(&self, continued: bool) {
        let result = if continued { "continued" } else { "failed" };
        self.metrics.hit_repairs.with_label_values(&[result]).inc();
    }
}
