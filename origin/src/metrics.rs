//! The origin's Prometheus metrics (`strata_origin_*`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// Counters and histograms of the content listener.
#[derive(Clone)]
pub(crate) struct OriginMetrics {
    /// Responses by status class (`2xx`, `3xx`, `4xx`, `5xx`).
    pub requests: IntCounterVec,
    /// Body bytes written to clients.
    pub response_bytes: IntCounter,
    /// Time from request to response headers.
    pub latency: Histogram,
    /// Storage failures by kind.
    pub storage_errors: IntCounterVec,
}

impl OriginMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("strata_origin_requests_total", "Responses sent, by status class"),
            &["status_class"],
        )?;
        let response_bytes = IntCounter::new(
            "strata_origin_response_bytes_total",
            "Response body bytes written to clients",
        )?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "strata_origin_request_duration_seconds",
                "Time from receiving a request to sending its response headers",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        let storage_errors = IntCounterVec::new(
            Opts::new("strata_origin_storage_errors_total", "Storage failures, by kind"),
            &["kind"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(response_bytes.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(storage_errors.clone()))?;
        // Pre-create the usual label values so dashboards see zeros, not gaps.
        for class in ["2xx", "3xx", "4xx", "5xx"] {
            requests.with_label_values(&[class]);
        }
        Ok(Self {
            requests,
            response_bytes,
            latency,
            storage_errors,
        })
    }
}

/// The label for a status code's class.
pub(crate) fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
