//! The edge's Prometheus metrics (`strata_edge_*`). foyer's own cache metrics (hits and
//! misses per tier, disk writes skipped when the write buffer is full, evictions) are
//! registered in the same registry under `foyer_*`.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// Counters shared by the proxy and the cache store.
#[derive(Clone)]
pub struct EdgeMetrics {
    /// Responses by cache outcome (`hit`, `miss`, `stale`, `revalidated`, `uncacheable`, ...).
    pub requests: IntCounterVec,
    /// Response body bytes by where they came from (`cache`, `upstream`).
    pub response_bytes: IntCounterVec,
    /// Time from request to the end of the response.
    pub duration: Histogram,
    /// Requests that streamed another request's in-progress fill instead of fetching.
    pub collapsed: IntCounter,
    /// Cache entries found corrupt or incomplete, dropped and refetched.
    pub corrupt_entries: IntCounter,
    /// Requests that failed upstream (connect, timeout, reset).
    pub upstream_errors: IntCounter,
    /// Connect attempts retried after a failure.
    pub upstream_retries: IntCounter,
    /// Stored responses invalidated by an unsafe request (RFC 9111 section 4.4).
    pub invalidations: IntCounter,
    /// Body bytes read from the cache for responses, by tier (`memory`, `disk`).
    pub cache_read_bytes: IntCounterVec,
    /// Time from choosing the upstream to its response head.
    pub upstream_latency: Histogram,
}

impl EdgeMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("strata_edge_requests_total", "Responses, by cache outcome"),
            &["cache_status"],
        )?;
        let response_bytes = IntCounterVec::new(
            Opts::new(
                "strata_edge_response_bytes_total",
                "Response body bytes, by source",
            ),
            &["source"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "strata_edge_request_duration_seconds",
                "Time from request to the end of the response",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let collapsed = IntCounter::new(
            "strata_edge_collapsed_requests_total",
            "Requests served by following another request's in-progress upstream fill",
        )?;
        let corrupt_entries = IntCounter::new(
            "strata_edge_cache_corrupt_entries_total",
            "Cache entries found corrupt or incomplete, dropped and refetched",
        )?;
        let upstream_errors = IntCounter::new(
            "strata_edge_upstream_errors_total",
            "Requests that failed upstream",
        )?;
        let upstream_retries = IntCounter::new(
            "strata_edge_upstream_retries_total",
            "Upstream connect attempts retried after a failure",
        )?;
        let invalidations = IntCounter::new(
            "strata_edge_invalidations_total",
            "Stored responses invalidated by a successful unsafe request (RFC 9111 section 4.4)",
        )?;
        let cache_read_bytes = IntCounterVec::new(
            Opts::new(
                "strata_edge_cache_read_bytes_total",
                "Body bytes read from the cache for responses, by tier",
            ),
            &["tier"],
        )?;
        let upstream_latency = Histogram::with_opts(
            HistogramOpts::new(
                "strata_edge_upstream_response_seconds",
                "Time from choosing the upstream to receiving its response head",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        registry.register(Box::new(cache_read_bytes.clone()))?;
        registry.register(Box::new(upstream_latency.clone()))?;
        registry.register(Box::new(upstream_retries.clone()))?;
        registry.register(Box::new(invalidations.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(response_bytes.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(collapsed.clone()))?;
        registry.register(Box::new(corrupt_entries.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        Ok(Self {
            requests,
            response_bytes,
            duration,
            collapsed,
            corrupt_entries,
            upstream_errors,
            upstream_retries,
            invalidations,
            cache_read_bytes,
            upstream_latency,
        })
    }
}
