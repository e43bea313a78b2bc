//! The cache's own figures over a load run: its Prometheus endpoint is read before and after,
//! and the difference gives the hit ratio and the requests it sent upstream meanwhile. Works
//! with any Strata cache node (`strata_edge_*`, `strata_midtier_*`): the metric families are
//! found by suffix and label, not by full name.

use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counters of one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheCounters {
    /// Responses by `cache_status` (hit, miss, stale, revalidated, bypass, ...).
    pub responses: BTreeMap<String, f64>,
    /// Requests sent upstream, by `kind` (parent, origin).
    pub upstream: BTreeMap<String, f64>,
}

/// What the cache did between two scrapes.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct CacheFigures {
    /// Responses it sent.
    pub responses: u64,
    /// Share of them served from its store (fresh hits and stale answers).
    pub hit_ratio: f64,
    /// Requests it sent to parents and origins.
    pub upstream_requests: u64,
    /// Of those, requests to origins.
    pub origin_requests: u64,
}

impl CacheCounters {
    /// Reads the counters out of a Prometheus text exposition.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .context("not a Prometheus text exposition")?;
        let mut counters = CacheCounters::default();
        // Labelled families show up only once used; this plain counter is always there.
        let mut is_cache = false;
        for sample in &scrape.samples {
            is_cache |= sample.metric.ends_with("_collapsed_requests_total");
            let value = match sample.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => continue,
            };
            if sample.metric.ends_with("_upstream_requests_total") {
                if let Some(kind) = sample.labels.get("kind") {
                    *counters.upstream.entry(kind.to_string()).or_default() += value;
                }
            } else if sample.metric.ends_with("_requests_total")
                && let Some(status) = sample.labels.get("cache_status")
            {
                *counters.responses.entry(status.to_string()).or_default() += value;
            }
        }
        anyhow::ensure!(
            is_cache,
            "no cache counters (a Strata edge's or mid-tier's /metrics has *_collapsed_requests_total)"
        );
        Ok(counters)
    }

    /// Fetches and reads `url`.
    pub async fn scrape(client: &reqwest::Client, url: &str) -> anyhow::Result<Self> {
        let resp = client
            .get(url)
            .send()
            .await
            .with_context(|| format!("cannot read the cache's metrics at {url}"))?;
        anyhow::ensure!(resp.status().is_success(), "{url}: status {}", resp.status());
        let text = resp.text().await.with_context(|| format!("{url}: body"))?;
        Self::parse(&text).with_context(|| url.to_string())
    }

    /// What happened between `self` (earlier) and `later`.
    pub fn until(&self, later: &CacheCounters) -> CacheFigures {
        let delta = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, key: Option<&str>| {
            b.iter()
                .filter(|(k, _)| key.is_none_or(|key| k.as_str() == key))
                .map(|(k, v)| (v - a.get(k).copied().unwrap_or(0.0)).max(0.0))
                .sum::<f64>()
        };
        let responses = delta(&self.responses, &later.responses, None);
        let hits = delta(&self.responses, &later.responses, Some("hit"))
            + delta(&self.responses, &later.responses, Some("stale"));
        CacheFigures {
            responses: responses as u64,
            hit_ratio: if responses > 0.0 { hits / responses } else { 0.0 },
            upstream_requests: delta(&self.upstream, &later.upstream, None) as u64,
            origin_requests: delta(&self.upstream, &later.upstream, Some("origin")) as u64,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn exposition(hit: u32, miss: u32, origin: u32, parent: u32) -> String {
        format!(
            "# HELP strata_edge_requests_total Responses, by cache outcome\n\
             # TYPE strata_edge_requests_total counter\n\
             strata_edge_requests_total{{cache_status=\"hit\"}} {hit}\n\
             strata_edge_requests_total{{cache_status=\"miss\"}} {miss}\n\
             strata_edge_requests_total{{cache_status=\"stale\"}} 1\n\
             # TYPE strata_edge_upstream_requests_total counter\n\
             strata_edge_upstream_requests_total{{kind=\"origin\",upstream=\"http://o\"}} {origin}\n\
             strata_edge_upstream_requests_total{{kind=\"parent\",upstream=\"http://p1\"}} {parent}\n\
             strata_edge_upstream_requests_total{{kind=\"parent\",upstream=\"http://p2\"}} 4\n\
             # TYPE strata_edge_protocol_requests_total counter\n\
             strata_edge_protocol_requests_total{{protocol=\"h1\"}} 999\n\
             strata_edge_collapsed_requests_total 0\n"
        )
    }

    #[test]
    fn the_difference_of_two_scrapes_gives_hit_ratio_and_upstream_requests() {
        let before = CacheCounters::parse(&exposition(10, 5, 2, 3)).unwrap();
        assert_eq!(before.responses["hit"], 10.0);
        assert_eq!(before.upstream["parent"], 7.0);
        let after = CacheCounters::parse(&exposition(40, 15, 6, 9)).unwrap();
        let f = before.until(&after);
        // 30 hits and 10 misses since; the stale count did not move; other families ignored.
        assert_eq!(f.responses, 40);
        assert!((f.hit_ratio - 0.75).abs() < 1e-9);
        assert_eq!(f.upstream_requests, 10);
        assert_eq!(f.origin_requests, 4);
    }

    #[test]
    fn an_endpoint_without_cache_counters_is_refused_and_a_fresh_cache_is_not() {
        let err = CacheCounters::parse("# TYPE up gauge\nup 1\n").unwrap_err();
        assert!(err.to_string().contains("no cache counters"), "{err}");
        let fresh = CacheCounters::parse("strata_edge_collapsed_requests_total 0\n").unwrap();
        let later = CacheCounters::parse(&exposition(3, 1, 1, 0)).unwrap();
        assert_eq!(fresh.until(&later).responses, 5);
    }
}
