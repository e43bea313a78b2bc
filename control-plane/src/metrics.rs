//! The control plane's Prometheus metrics, `strata_control_plane_*`.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Every metric the control plane keeps.
#[derive(Clone)]
pub struct Metrics {
    /// Requests by route template and status.
    pub requests: IntCounterVec,
    /// Request durations by route template.
    pub duration: HistogramVec,
    /// Playback starts by outcome: `allowed` or the refusal reason.
    pub playback: IntCounterVec,
    /// Sign-ins by outcome: `ok`, `bad_credentials`.
    pub signins: IntCounterVec,
    /// Search index updates or rebuilds that failed.
    pub search_index_failures: IntCounter,
    /// Search index rebuilds from the database.
    pub search_rebuilds: IntCounter,
    /// Plays started on `cdn_url` because steering did not answer.
    pub steering_fallbacks: IntCounter,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "strata_control_plane_requests_total",
                    "API requests, by route and status",
                ),
                &["route", "status"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "strata_control_plane_request_duration_seconds",
                    "API request durations, by route",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5,
                ]),
                &["route"],
            )?,
            playback: IntCounterVec::new(
                Opts::new(
                    "strata_control_plane_playback_total",
                    "Playback starts, by outcome (allowed, or the refusal reason)",
                ),
                &["outcome"],
            )?,
            signins: IntCounterVec::new(
                Opts::new("strata_control_plane_signins_total", "Sign-ins, by outcome"),
                &["outcome"],
            )?,
            search_index_failures: IntCounter::new(
                "strata_control_plane_search_index_failures_total",
                "Search index updates or rebuilds that failed (the last good index kept serving)",
            )?,
            search_rebuilds: IntCounter::new(
                "strata_control_plane_search_rebuilds_total",
                "Search index rebuilds from the database",
            )?,
            steering_fallbacks: IntCounter::new(
                "strata_control_plane_steering_fallbacks_total",
                "Plays started on cdn_url because steering did not answer",
            )?,
        };
        registry.register(Box::new(m.steering_fallbacks.clone()))?;
        registry.register(Box::new(m.search_index_failures.clone()))?;
        registry.register(Box::new(m.search_rebuilds.clone()))?;
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.playback.clone()))?;
        registry.register(Box::new(m.signins.clone()))?;
        Ok(m)
    }
}
