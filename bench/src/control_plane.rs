//! `strata cp-bench`: the control plane's light path under concurrent load. Imports a
//! synthetic catalog, signs a bench account in, then runs timed phases (playback start,
//! search with a typo, browse), each with a fixed number of concurrent clients, and reports
//! requests per second and latency percentiles (HDR histograms) per phase.

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_contracts::api::control_plane::{CATALOG_VERSION, CatalogFile, Licensing, Rendition, Title};

/// What to run.
#[derive(Debug, Clone)]
pub struct CpBenchPlan {
    /// The control plane's API URL.
    pub url: String,
    /// Its admin credential.
    pub admin_token: String,
    /// Titles in the synthetic catalog.
    pub titles: usize,
    /// Concurrent clients per phase.
    pub concurrency: usize,
    /// Length of each phase.
    pub duration: Duration,
    /// Seed of the catalog and the request mix.
    pub seed: u64,
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// `playback`, `search` or `browse`.
    pub phase: String,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that failed or were answered otherwise.
    pub errors: u64,
    /// Answered requests per second.
    pub requests_per_s: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Search only: share of typo'd queries whose intended title was among the results.
    pub found_share: Option<f64>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct CpBenchReport {
    /// Titles imported.
    pub titles: usize,
    /// Seconds the import took.
    pub import_s: f64,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Per phase.
    pub phases: Vec<PhaseReport>,
}

const WORDS: [&str; 40] = [
    "amber",
    "harbour",
    "silent",
    "river",
    "midnight",
    "circuit",
    "glass",
    "mountain",
    "echo",
    "falcon",
    "garden",
    "hollow",
    "iron",
    "jungle",
    "kingdom",
    "lantern",
    "meadow",
    "north",
    "orchid",
    "paper",
    "quiet",
    "raven",
    "salt",
    "thunder",
    "umbrella",
    "velvet",
    "winter",
    "yellow",
    "zephyr",
    "copper",
    "desert",
    "ember",
    "forest",
    "granite",
    "horizon",
    "island",
    "jasper",
    "kettle",
    "lighthouse",
    "marble",
];
const GENRES: [&str; 10] = [
    "Drama",
    "Comedy",
    "Documentary",
    "Thriller",
    "Animation",
    "Romance",
    "Horror",
    "Family",
    "Science Fiction",
    "Crime",
];

/// A catalog of `n` titles with three-word names, one to three genres and years 1950-2026,
/// all pointing at the sample title's packaging (playback start does not read manifests).
pub fn synthetic_catalog(n: usize, seed: u64) -> Vec<Title> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let name: Vec<&str> = (0..3).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
            let genres: Vec<String> = (0..rng.random_range(1..=3))
                .map(|_| GENRES[rng.random_range(0..GENRES.len())].to_string())
                .collect();
            Title {
                id: format!("bench-{i}"),
                name: capitalize(&name.join(" ")),
                synopsis: format!("A story of {} and {}.", name[0], name[2]),
                genres,
                cast: vec![capitalize(&format!("{} {}", name[1], WORDS[i % WORDS.len()]))],
                year: rng.random_range(1950..=2026),
                runtime_min: rng.random_range(20..=180),
                artwork: String::new(),
                hls: "/sample/master.m3u8".into(),
                dash: "/sample/manifest.mpd".into(),
                renditions: vec![Rendition {
                    id: "0".into(),
                    codec: "avc1.4d401e".into(),
                    width: 640,
                    height: 360,
                    bitrate: 800_000,
                }],
                licensing: Licensing::default(),
            }
        })
        .collect()
}

fn capitalize(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` with two neighbouring letters swapped: the typo viewers make most.
pub fn with_typo(word: &str, rng: &mut impl Rng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() >= 4 {
        let i = rng.random_range(1..chars.len() - 1);
        chars.swap(i, i + 1);
    }
    chars.into_iter().collect()
}

/// Runs the benchmark.
pub async fn run(plan: CpBenchPlan, progress: impl Fn(&str)) -> anyhow::Result<CpBenchReport> {
    let base = plan.url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let catalog = synthetic_catalog(plan.titles, plan.seed);
    progress(&format!("importing {} titles", catalog.len()));
    let started = Instant::now();
    let file = CatalogFile {
        version: CATALOG_VERSION,
        titles: catalog.clone(),
    };
    let resp = client
        .post(format!("{base}/v1/admin/catalog"))
        .bearer_auth(&plan.admin_token)
        .json(&file)
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    if !resp.status().is_success() {
        bail!(
            "catalog import answered {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let import_s = started.elapsed().as_secs_f64();
    let email = format!("bench-{}-{}@strata.test", std::process::id(), plan.seed);
    let password = "bench password";
    let resp = client
        .post(format!("{base}/v1/admin/accounts"))
        .bearer_auth(&plan.admin_token)
        .json(&serde_json::json!({"email": email, "password": password, "tier": "premium"}))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("creating the bench account answered {}", resp.status());
    }
    let signed: serde_json::Value = client
        .post(format!("{base}/v1/sessions"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    let session = signed["session"]
        .as_str()
        .context("sign-in gave no session")?
        .to_string();
    let catalog = Arc::new(catalog);
    let mut phases = Vec::new();
    for phase in ["playback", "search", "browse"] {
        progress(&format!(
            "{phase}: {} clients for {:?}",
            plan.concurrency, plan.duration
        ));
        phases.push(run_phase(phase, &plan, &client, &base, &session, &catalog).await);
    }
    Ok(CpBenchReport {
        titles: plan.titles,
        import_s,
        concurrency: plan.concurrency,
        phases,
    })
}

struct ClientTally {
    latencies: Histogram<u64>,
    ok: u64,
    errors: u64,
    asked: u64,
    found: u64,
}

async fn run_phase(
    phase: &str,
    plan: &CpBenchPlan,
    client: &reqwest::Client,
    base: &str,
    session: &str,
    catalog: &Arc<Vec<Title>>,
) -> PhaseReport {
    let deadline = Instant::now() + plan.duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..plan.concurrency)
        .map(|c| {
            let (client, base, session, catalog, phase) = (
                client.clone(),
                base.to_string(),
                session.to_string(),
                Arc::clone(catalog),
                phase.to_string(),
            );
            let mut rng = SmallRng::seed_from_u64(plan.seed ^ ((c as u64 + 1) * 0x9e37_79b9));
            tokio::spawn(async move {
                let mut tally = ClientTally {
                    latencies: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
                    ok: 0,
                    errors: 0,
                    asked: 0,
                    found: 0,
                };
                while Instant::now() < deadline {
                    let title = &catalog[rng.random_range(0..catalog.len())];
                    let t0 = Instant::now();
                    let (ok, found) = match phase.as_str() {
                        "playback" => {
                            let r = client
                                .post(format!("{base}/v1/playback"))
                                .bearer_auth(&session)
                                .json(&serde_json::json!({"title": title.id, "device": "tv"}))
                                .send()
                                .await;
                            (matches!(r, Ok(ref r) if r.status().is_success()), None)
                        }
                        "search" => {
                            let words: Vec<String> = title
                                .name
                                .split(' ')
                                .map(|w| with_typo(&w.to_lowercase(), &mut rng))
                                .collect();
                            let r = client
                                .get(format!("{base}/v1/search"))
                                .query(&[("q", words.join(" ").as_str()), ("limit", "10")])
                                .send()
                                .await;
                            match r {
                                Ok(r) if r.status().is_success() => {
                                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                                    let hit = body["results"]
                                        .as_array()
                                        .is_some_and(|a| a.iter().any(|t| t["name"] == title.name.as_str()));
                                    (true, Some(hit))
                                }
                                _ => (false, None),
                            }
                        }
                        _ => {
                            let r = client.get(format!("{base}/v1/browse?limit=20")).send().await;
                            (matches!(r, Ok(ref r) if r.status().is_success()), None)
                        }
                    };
                    let micros = t0.elapsed().as_micros().max(1) as u64;
                    if ok {
                        tally.ok += 1;
                        let _ = tally.latencies.record(micros);
                    } else {
                        tally.errors += 1;
                    }
                    if let Some(hit) = found {
                        tally.asked += 1;
                        tally.found += u64::from(hit);
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let (mut ok, mut errors, mut asked, mut found) = (0, 0, 0, 0);
    for t in tasks {
        if let Ok(t) = t.await {
            let _ = all.add(&t.latencies);
            ok += t.ok;
            errors += t.errors;
            asked += t.asked;
            found += t.found;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    PhaseReport {
        phase: phase.to_string(),
        ok,
        errors,
        requests_per_s: ok as f64 / secs,
        p50_ms: ms(0.50),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        max_ms: all.max() as f64 / 1000.0,
        found_share: (asked > 0).then(|| found as f64 / asked as f64),
    }
}

/// The report as a table.
pub fn table(r: &CpBenchReport) -> String {
    let mut out = format!(
        "{} titles imported in {:.2} s; {} concurrent clients per phase\n\
         phase       ok      errors  req/s    p50 ms  p95 ms  p99 ms  max ms  found\n",
        r.titles, r.import_s, r.concurrency
    );
    for p in &r.phases {
        out.push_str(&format!(
            "{:<10} {:>7} {:>7} {:>8.0} {:>7.1} {:>7.1} {:>7.1} {:>7.1}  {}\n",
            p.phase,
            p.ok,
            p.errors,
            p.requests_per_s,
            p.p50_ms,
            p.p95_ms,
            p.p99_ms,
            p.max_ms,
            p.found_share
                .map_or_else(|| "-".into(), |f| format!("{:.1}%", f * 100.0))
        ));
    }
    out
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_catalog_is_deterministic_and_typos_swap_neighbours() {
        let a = synthetic_catalog(50, 7);
        assert_eq!(a, synthetic_catalog(50, 7));
        assert_ne!(a, synthetic_catalog(50, 8));
        assert!(
            a.iter()
                .all(|t| t.name.split(' ').count() == 3 && !t.genres.is_empty())
        );
        let mut rng = SmallRng::seed_from_u64(1);
        let typo = with_typo("harbour", &mut rng);
        assert_ne!(typo, "harbour");
        let (mut x, mut y): (Vec<char>, Vec<char>) = (typo.chars().collect(), "harbour".chars().collect());
        x.sort();
        y.sort();
        assert_eq!(x, y, "same letters, two swapped");
    }
}
