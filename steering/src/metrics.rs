//! Steering's Prometheus metrics, `strata_steering_*`.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// Every metric steering keeps.
#[derive(Clone)]
pub struct Metrics {
    /// Edges by state: `in` rotation or `out`.
    pub edges: IntGaugeVec,
    /// Registrations and heartbeats by kind and outcome (`ok`, `refused`).
    pub edge_messages: IntCounterVec,
    /// Health polls by outcome (`ok`, `failed`).
    pub polls: IntCounterVec,
    /// Decisions by how the cluster was found (`prefix`, `nearest`, `default`, `none`).
    pub decisions: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            edges: IntGaugeVec::new(
                Opts::new("strata_steering_edges", "Registered edges, by state"),
                &["state"],
            )?,
            edge_messages: IntCounterVec::new(
                Opts::new(
                    "strata_steering_edge_messages_total",
                    "Edge registrations and heartbeats, by outcome",
                ),
                &["kind", "outcome"],
            )?,
            polls: IntCounterVec::new(
                Opts::new(
                    "strata_steering_health_polls_total",
                    "Health polls of edges, by outcome",
                ),
                &["outcome"],
            )?,
            decisions: IntCounterVec::new(
                Opts::new(
                    "strata_steering_decisions_total",
                    "Steering decisions, by how the cluster was found",
                ),
                &["matched_by"],
            )?,
        };
        registry.register(Box::new(m.edges.clone()))?;
        registry.register(Box::new(m.edge_messages.clone()))?;
        registry.register(Box::new(m.polls.clone()))?;
        registry.register(Box::new(m.decisions.clone()))?;
        Ok(m)
    }
}
