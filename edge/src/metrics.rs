//! The cache node's Prometheus metrics, named `strata_edge_*` on an edge and
//! `strata_midtier_*` on a mid-tier. foyer's own cache metrics (hits and misses per tier,
//! disk writes skipped when the write buffer is full, evictions) are registered in the same
//! registry under `foyer_*`.

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Labels of the per-upstream metrics: `kind` (`parent`, `origin`) and `upstream` (its URL).
pub const UPSTREAM_LABELS: &[&str] = &["kind", "upstream"];

/// Counters shared by the proxy and the cache store.
#[derive(Clone)]
pub struct EdgeMetrics {
    /// Responses by cache outcome (`hit`, `miss`, `stale`, `revalidated`, `uncacheable`, ...).
    pub requests: IntCounterVec,
    /// Response body bytes by where they came from (`cache`, `upstream`).
    pub response_bytes: IntCounterVec,
    /// Time from request to the end of the response.
    pub duration: Histogram,
    /// Requests being served now (subrequests such as slices and refreshes included); a
    /// shutdown waits for this to reach zero.
    pub in_flight: prometheus::IntGauge,
    /// Client TCP connections (HTTP/1.1 and HTTP/2, plain and TLS) open now; a shutdown
    /// waits for these too, so that bytes an HTTP/2 connection still buffers go out.
    pub client_connections: prometheus::IntGauge,
    /// Requests that streamed another request's in-progress fill instead of fetching.
    pub collapsed: IntCounter,
    /// Objects written to disk when they earned it while held in memory only.
    pub disk_promotions: IntCounter,
    /// Cache entries found corrupt or incomplete, dropped and refetched.
    pub corrupt_entries: IntCounter,
    /// Requests that failed upstream (connect, timeout, reset).
    pub upstream_errors: IntCounter,
    /// Upstream attempts retried after a failure before a response head.
    pub upstream_retries: IntCounter,
    /// Stored responses invalidated by an unsafe request (RFC 9111 section 4.4).
    pub invalidations: IntCounter,
    /// Body bytes read from the cache for responses, by tier (`memory`, `disk`).
    pub cache_read_bytes: IntCounterVec,
    /// Time from choosing an upstream to its response head, per upstream.
    pub upstream_latency: HistogramVec,
    /// Attempts sent to each upstream.
    pub upstream_requests: IntCounterVec,
    /// Attempts that failed before a complete response, per upstream.
    pub upstream_failures: IntCounterVec,
    /// Response body bytes received from each upstream.
    pub upstream_bytes: IntCounterVec,
    /// 1 while an upstream is marked up, 0 while down.
    pub upstream_up: IntGaugeVec,
    /// Requests refused as loops or as too many hops.
    pub loops_refused: IntCounter,
    /// Player requests refused for their playback token, by reason.
    pub token_rejections: IntCounterVec,
    /// Responses continued from another upstream after one failed mid-body.
    pub resumed: IntCounter,
    /// Responses cut because no upstream could continue them.
    pub resume_failures: IntCounter,
    /// Hits whose stored copy failed mid-response, by whether an upstream continued them.
    pub hit_repairs: IntCounterVec,
    /// Responses by client protocol (`h1`, `h2`, `h3`).
    pub protocol_requests: IntCounterVec,
    /// Response body bytes by client protocol.
    pub protocol_bytes: IntCounterVec,
    /// QUIC connections accepted, by outcome (`established`, `handshake_failed`).
    pub quic_connections: IntCounterVec,
    /// QUIC connections open now.
    pub quic_open: prometheus::IntGauge,
    /// Packets QUIC declared lost, summed at connection close.
    pub quic_lost_packets: IntCounter,
    /// Smoothed RTT of QUIC connections, sampled when they close.
    pub quic_rtt: Histogram,
    /// UDP datagrams of QUIC connections, by direction (`sent`, `received`), at close.
    pub quic_udp_datagrams: IntCounterVec,
    /// System calls that moved them, by direction: fewer than datagrams when segmentation
    /// offload (GSO/GRO) batches them.
    pub quic_udp_ios: IntCounterVec,
    /// Certificate reloads after their files changed, by outcome (`ok`, `failed`).
    pub tls_reloads: IntCounterVec,
    /// TLS handshakes refused because the client offered no TLS 1.3 cipher suite.
    pub tls_refused: IntCounter,
    /// Health probes answered (`/.strata/health`), kept out of the request counts and log.
    pub health_probes: IntCounter,
    /// Slice fetches of large objects, by cache outcome (not in the request counts).
    pub slice_requests: IntCounterVec,
    /// Responses served from slices.
    pub sliced_responses: IntCounter,
    /// Sliced responses cut because a slice came from another version of the object.
    pub slice_mismatches: IntCounter,
    /// Objects the cache's key index lists (for purge and inventory), as of its last sweep.
    pub indexed_objects: prometheus::IntGauge,
}

impl EdgeMetrics {
    /// Creates the metrics, named `<prefix>_...`, and registers them in `registry`.
    pub fn register(registry: &Registry, prefix: &str) -> Result<Self, prometheus::Error> {
        let name = |n: &str| format!("{prefix}_{n}");
        let latency_buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(name("requests_total"), "Responses, by cache outcome"),
                &["cache_status"],
            )?,
            response_bytes: IntCounterVec::new(
                Opts::new(name("response_bytes_total"), "Response body bytes, by source"),
                &["source"],
            )?,
            duration: Histogram::with_opts(
                HistogramOpts::new(
                    name("request_duration_seconds"),
                    "Time from request to the end of the response",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )?,
            collapsed: IntCounter::new(
                name("collapsed_requests_total"),
                "Requests served by following another request's in-progress upstream fill",
            )?,
            disk_promotions: IntCounter::new(
                name("cache_disk_promotions_total"),
                "Objects written to disk when they earned it (disk admission) while held in memory only",
            )?,
            corrupt_entries: IntCounter::new(
                name("cache_corrupt_entries_total"),
                "Cache entries found corrupt or incomplete, dropped and refetched",
            )?,
            upstream_errors: IntCounter::new(name("upstream_errors_total"), "Requests that failed upstream")?,
            upstream_retries: IntCounter::new(
                name("upstream_retries_total"),
                "Upstream attempts retried after a failure before a response head",
            )?,
            invalidations: IntCounter::new(
                name("invalidations_total"),
                "Stored responses invalidated by a successful unsafe request (RFC 9111 section 4.4)",
            )?,
            cache_read_bytes: IntCounterVec::new(
                Opts::new(
                    name("cache_read_bytes_total"),
                    "Body bytes read from the cache for responses, by tier",
                ),
                &["tier"],
            )?,
            upstream_latency: HistogramVec::new(
                HistogramOpts::new(
                    name("upstream_response_seconds"),
                    "Time from choosing an upstream to receiving its response head",
                )
                .buckets(latency_buckets),
                UPSTREAM_LABELS,
            )?,
            upstream_requests: IntCounterVec::new(
                Opts::new(name("upstream_requests_total"), "Attempts sent to each upstream"),
                UPSTREAM_LABELS,
            )?,
            upstream_failures: IntCounterVec::new(
                Opts::new(
                    name("upstream_failures_total"),
                    "Attempts that failed (refused, reset, timed out) before a complete response",
                ),
                UPSTREAM_LABELS,
            )?,
            upstream_bytes: IntCounterVec::new(
                Opts::new(
                    name("upstream_bytes_total"),
                    "Response body bytes received from each upstream",
                ),
                UPSTREAM_LABELS,
            )?,
            upstream_up: IntGaugeVec::new(
                Opts::new(
                    name("upstream_up"),
                    "1 while an upstream is marked up, 0 while down",
                ),
                UPSTREAM_LABELS,
            )?,
            loops_refused: IntCounter::new(
                name("loops_refused_total"),
                "Requests refused because they had passed through this node or too many nodes",
            )?,
            token_rejections: IntCounterVec::new(
                Opts::new(
                    name("token_rejections_total"),
                    "Player requests refused for their playback token, by reason",
                ),
                &["reason"],
            )?,
            resumed: IntCounter::new(
                name("upstream_resumed_total"),
                "Responses continued from another upstream (Range request) after one failed mid-body",
            )?,
            resume_failures: IntCounter::new(
                name("upstream_resume_failures_total"),
                "Responses cut because no upstream could continue them after a mid-body failure",
            )?,
            hit_repairs: IntCounterVec::new(
                Opts::new(
                    name("hit_repairs_total"),
                    "Hits whose stored copy could not be read mid-response: continued (an upstream answered exactly the missing bytes) or failed (none did; the response was cut)",
                ),
                &["result"],
            )?,
            protocol_requests: IntCounterVec::new(
                Opts::new(name("protocol_requests_total"), "Responses, by client protocol"),
                &["protocol"],
            )?,
            protocol_bytes: IntCounterVec::new(
                Opts::new(
                    name("protocol_response_bytes_total"),
                    "Response body bytes, by client protocol",
                ),
                &["protocol"],
            )?,
            quic_connections: IntCounterVec::new(
                Opts::new(
                    name("quic_connections_total"),
                    "QUIC connections accepted, by outcome",
                ),
                &["outcome"],
            )?,
            quic_open: prometheus::IntGauge::new(name("quic_open_connections"), "QUIC connections open now")?,
            in_flight: prometheus::IntGauge::new(
                name("requests_in_flight"),
                "Requests being served now, subrequests included",
            )?,
            client_connections: prometheus::IntGauge::new(
                name("client_connections_open"),
                "Client TCP connections (HTTP/1.1, HTTP/2) open now",
            )?,
            quic_lost_packets: IntCounter::new(
                name("quic_lost_packets_total"),
                "Packets QUIC declared lost, counted when each connection closes",
            )?,
            quic_rtt: Histogram::with_opts(
                HistogramOpts::new(
                    name("quic_rtt_seconds"),
                    "Smoothed round-trip time of QUIC connections, sampled when they close",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
            )?,
            quic_udp_datagrams: IntCounterVec::new(
                Opts::new(
                    name("quic_udp_datagrams_total"),
                    "UDP datagrams of QUIC connections, by direction, counted when each connection closes",
                ),
                &["direction"],
            )?,
            quic_udp_ios: IntCounterVec::new(
                Opts::new(
                    name("quic_udp_ios_total"),
                    "System calls that sent or received those datagrams (fewer with GSO/GRO), by direction",
                ),
                &["direction"],
            )?,
            tls_reloads: IntCounterVec::new(
                Opts::new(
                    name("tls_reloads_total"),
                    "Certificate reloads after their files changed, by outcome",
                ),
                &["outcome"],
            )?,
            tls_refused: IntCounter::new(
                name("tls_handshakes_refused_total"),
                "TLS handshakes refused because the client offered no TLS 1.3 cipher suite (tls_min_version = \"1.3\")",
            )?,
            health_probes: IntCounter::new(
                name("health_probes_answered_total"),
                "Health probes answered on /.strata/health (not in the request counts or access log)",
            )?,
            slice_requests: IntCounterVec::new(
                Opts::new(
                    name("slice_requests_total"),
                    "Fetches of one slice of a large object, by cache outcome (not in requests_total)",
                ),
                &["outcome"],
            )?,
            sliced_responses: IntCounter::new(
                name("sliced_responses_total"),
                "Responses served from slices of a large object",
            )?,
            slice_mismatches: IntCounter::new(
                name("slice_mismatches_total"),
                "Sliced responses cut because a slice belonged to another version of the object",
            )?,
            indexed_objects: prometheus::IntGauge::new(
                name("cache_indexed_objects"),
                "Objects the cache's key index lists, evicted ones forgotten by its background sweep",
            )?,
        };
        let collectors: [Box<dyn Collector>; 37] = [
            Box::new(metrics.requests.clone()),
            Box::new(metrics.response_bytes.clone()),
            Box::new(metrics.duration.clone()),
            Box::new(metrics.collapsed.clone()),
            Box::new(metrics.disk_promotions.clone()),
            Box::new(metrics.corrupt_entries.clone()),
            Box::new(metrics.upstream_errors.clone()),
            Box::new(metrics.upstream_retries.clone()),
            Box::new(metrics.invalidations.clone()),
            Box::new(metrics.cache_read_bytes.clone()),
            Box::new(metrics.upstream_latency.clone()),
            Box::new(metrics.upstream_requests.clone()),
            Box::new(metrics.upstream_failures.clone()),
            Box::new(metrics.upstream_bytes.clone()),
            Box::new(metrics.upstream_up.clone()),
            Box::new(metrics.loops_refused.clone()),
            Box::new(metrics.token_rejections.clone()),
            Box::new(metrics.resumed.clone()),
            Box::new(metrics.resume_failures.clone()),
            Box::new(metrics.hit_repairs.clone()),
            Box::new(metrics.protocol_requests.clone()),
            Box::new(metrics.protocol_bytes.clone()),
            Box::new(metrics.quic_connections.clone()),
            Box::new(metrics.quic_open.clone()),
            Box::new(metrics.in_flight.clone()),
            Box::new(metrics.client_connections.clone()),
            Box::new(metrics.quic_lost_packets.clone()),
            Box::new(metrics.quic_rtt.clone()),
            Box::new(metrics.quic_udp_datagrams.clone()),
            Box::new(metrics.quic_udp_ios.clone()),
            Box::new(metrics.tls_reloads.clone()),
            Box::new(metrics.tls_refused.clone()),
            Box::new(metrics.health_probes.clone()),
            Box::new(metrics.slice_requests.clone()),
            Box::new(metrics.sliced_responses.clone()),
            Box::new(metrics.slice_mismatches.clone()),
            Box::new(metrics.indexed_objects.clone()),
        ];
        for c in collectors {
            registry.register(c)?;
        }
        for r in strata_contracts::token::Rejection::ALL {
            // Every reason shows from the start, at 0, so a rate over it is defined.
            metrics.token_rejections.with_label_values(&[r.reason()]);
        }
        Ok(metrics)
    }
}

/// One unit of a gauge, held: counted when made, uncounted when dropped, however what it
/// counts ends.
pub(crate) struct GaugeHold(prometheus::IntGauge);

impl GaugeHold {
    pub(crate) fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeHold {
    fn drop(&mut self) {
        self.0.dec();
    }
}
