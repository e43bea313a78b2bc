//! Pre-warm jobs: fill the edges of chosen clusters with a title's objects before viewers ask.
//!
//! A job's manifests are expanded when it is created (so a manifest that does not parse is a
//! 4xx, not a failed job). Then, inside its window, each target edge is asked for every
//! object through its normal request path, so it fills through its mid-tier (one origin fetch
//! per object fleet-wide). Each edge's fetches share a bandwidth cap (a token bucket from
//! `governor`) and a cache budget (`max_cache_share` of the capacity it registered). Every
//! object's outcome is recorded, so a job resumed after a restart skips what is done.

use crate::api::{App, now_ms};
use crate::expand;
use crate::store::StoredJob;
use bytes::Bytes;
use futures::StreamExt;
use governor::{Quota, RateLimiter};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use strata_contracts::api::steering::{EdgeProgress, EdgeRegistration, PrewarmJob, PrewarmRequest};
use strata_contracts::token::{PlaybackClaims, sign_playback};
use tokio_util::sync::CancellationToken;

/// A job in memory.
pub struct Job {
    /// Id.
    pub id: String,
    /// What was asked.
    pub request: PrewarmRequest,
    /// The objects each target edge fills.
    pub objects: Vec<String>,
    state: Mutex<(String, Option<String>)>,
    progress: Mutex<BTreeMap<String, EdgeProgress>>,
    cancel: CancellationToken,
}

impl Job {
    /// The API's view of it.
    pub fn view(&self) -> PrewarmJob {
        let (state, message) = self.state.lock().clone();
        PrewarmJob {
            id: self.id.clone(),
            state,
            message,
            request: self.request.clone(),
            objects: self.objects.len() as u64,
            edges: self.progress.lock().values().cloned().collect(),
        }
    }

    /// Whether it has ended.
    pub fn ended(&self) -> bool {
        matches!(self.state.lock().0.as_str(), "done" | "cancelled" | "failed")
    }

    /// Asks it to stop.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// Why a request cannot become a job.
#[derive(Debug, thiserror::Error)]
pub enum PrewarmError {
    /// Something in the request itself.
    #[error("{0}")]
    BadRequest(String),
    /// A manifest the origin does not have.
    #[error("{0}")]
    NotFound(String),
    /// A manifest that does not parse.
    #[error("{0}")]
    Unprocessable(String),
    /// The origin could not be asked.
    #[error("{0}")]
    Upstream(String),
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Further tries of an object whose fetch failed.
const FETCH_RETRIES: u32 = 3;

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Checks a request as an operator sent it.
pub fn check(r: &PrewarmRequest) -> Result<(), PrewarmError> {
    let bad = |m: String| Err(PrewarmError::BadRequest(m));
    if r.manifests.is_empty() && r.paths.is_empty() {
        return bad("give manifests or paths to pre-warm".into());
    }
    if let Some(p) = r
        .manifests
        .iter()
        .chain(&r.paths)
        .find(|p| !p.starts_with('/') || p.contains(".."))
    {
        return bad(format!("{p:?} is not an absolute path on the origin"));
    }
    if let Some(m) = r
        .manifests
        .iter()
        .find(|m| !(m.ends_with(".m3u8") || m.ends_with(".mpd")))
    {
        return bad(format!(
            "manifests: {m:?} is neither an HLS playlist (.m3u8) nor a DASH MPD (.mpd)"
        ));
    }
    if let (Some(start), Some(end)) = (r.start, r.end)
        && end <= start
    {
        return bad("the window ends before it starts".into());
    }
    if !(1..=64).contains(&r.concurrency) {
        return bad("concurrency must be 1-64".into());
    }
    if !(r.max_cache_share > 0.0 && r.max_cache_share <= 1.0) {
        return bad("max_cache_share must be above 0 and at most 1".into());
    }
    Ok(())
}

async fn get_text(client: &HttpClient, base: &str, path: &str) -> Result<Bytes, PrewarmError> {
    let uri: http::Uri = format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| PrewarmError::BadRequest(format!("{path}: {e}")))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| PrewarmError::Upstream(format!("the origin did not answer for {path} within 10 s")))?
        .map_err(|e| PrewarmError::Upstream(format!("the origin could not be asked for {path}: {e}")))?;
    match resp.status() {
        s if s.is_success() => {}
        http::StatusCode::NOT_FOUND => {
            return Err(PrewarmError::NotFound(format!("the origin has no {path}")));
        }
        s => {
            return Err(PrewarmError::Upstream(format!(
                "the origin answered {s} for {path}"
            )));
        }
    }
    let body = http_body_util::Limited::new(resp.into_body(), 8 << 20)
        .collect()
        .await
        .map_err(|e| PrewarmError::Upstream(format!("reading {path}: {e}")))?;
    Ok(body.to_bytes())
}

/// Expands a request into the object paths each edge fills, reading manifests from `origin`.
pub async fn expand_request(origin: &str, r: &PrewarmRequest) -> Result<Vec<String>, PrewarmError> {
    let client = client();
    let unprocessable = |e: expand::ExpandError| PrewarmError::Unprocessable(e.to_string());
    let mut objects: Vec<String> = Vec::new();
    for manifest in &r.manifests {
        let text = get_text(&client, origin, manifest).await?;
        if manifest.ends_with(".mpd") {
            let text = std::str::from_utf8(&text)
                .map_err(|_| PrewarmError::Unprocessable(format!("{manifest} is not UTF-8")))?;
            objects.extend(expand::dash_objects(manifest, text, r.max_height).map_err(unprocessable)?);
        } else {
            for playlist in
                expand::hls_media_playlists(manifest, &text, r.max_height).map_err(unprocessable)?
            {
                let media = get_text(&client, origin, &playlist).await?;
                objects.push(playlist.clone());
                objects.extend(expand::hls_media_objects(&playlist, &media).map_err(unprocessable)?);
            }
        }
        objects.push(manifest.clone());
    }
    objects.extend(r.paths.iter().cloned());
    let mut seen = HashSet::new();
    objects.retain(|o| seen.insert(o.clone()));
    Ok(objects)
}

/// Registers a job (new or restored) with the app and starts running it.
pub fn start(app: &Arc<App>, stored: StoredJob) -> Arc<Job> {
    let job = Arc::new(Job {
        id: stored.id,
        request: stored.request,
        objects: stored.objects,
        state: Mutex::new((stored.state, stored.message)),
        progress: Mutex::new(BTreeMap::new()),
        cancel: CancellationToken::new(),
    });
    app.jobs.lock().insert(job.id.clone(), Arc::clone(&job));
    if !job.ended() {
        tokio::spawn(run(Arc::clone(app), Arc::clone(&job)));
    }
    job
}

async fn set_state(app: &App, job: &Job, state: &str, message: Option<String>) {
    *job.state.lock() = (state.to_string(), message.clone());
    if let Err(e) = app.store.set_job_state(&job.id, state, message.as_deref()).await {
        tracing::warn!(job = %job.id, "{e}");
    }
}

async fn run(app: Arc<App>, job: Arc<Job>) {
    // What is recorded already (a resumed job) counts, and is not fetched again.
    let recorded = app.store.job_objects(&job.id).await.unwrap_or_default();
    let mut done_before: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    {
        let mut progress = job.progress.lock();
        for (edge, path, outcome, bytes) in &recorded {
            let p = progress.entry(edge.clone()).or_insert_with(|| EdgeProgress {
                edge_id: edge.clone(),
                ..Default::default()
            });
            match outcome.as_str() {
                "done" => p.done += 1,
                "skipped" => p.skipped += 1,
                _ => {}
            }
            p.bytes += bytes;
            if outcome == "done" || outcome == "skipped" {
                done_before.entry(edge.clone()).or_default().insert(path.clone());
            }
        }
    }
    if let Some(start) = job.request.start {
        let wait = (start.0 * 1000 - now_ms() as i64).max(0) as u64;
        if wait > 0 {
            set_state(
                &app,
                &job,
                "waiting",
                Some(format!("window opens in {} s", wait / 1000)),
            )
            .await;
            tokio::select! {
                _ = job.cancel.cancelled() => {
                    set_state(&app, &job, "cancelled", None).await;
                    return;
                }
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            }
        }
    }
    let targets: Vec<EdgeRegistration> = {
        let fleet = app.fleet.read();
        let now = now_ms();
        fleet
            .edges()
            .filter(|e| e.out_because(now, &app.rules).is_none())
            .filter(|e| {
                let (clusters, regions) = (&job.request.clusters, &job.request.regions);
                (clusters.is_empty() && regions.is_empty())
                    || clusters.contains(&e.registration.cluster)
                    || (!e.registration.region.is_empty() && regions.contains(&e.registration.region))
            })
            .map(|e| e.registration.clone())
            .collect()
    };
    if targets.is_empty() {
        let msg = format!(
            "no edge in rotation in {}",
            if job.request.clusters.is_empty() && job.request.regions.is_empty() {
                "any cluster".to_string()
            } else {
                let named: Vec<&str> = job
                    .request
                    .clusters
                    .iter()
                    .chain(&job.request.regions)
                    .map(String::as_str)
                    .collect();
                named.join(", ")
            }
        );
        set_state(&app, &job, "failed", Some(msg)).await;
        return;
    }
    set_state(&app, &job, "running", None).await;
    let client = client();
    let tasks = targets.into_iter().map(|edge| {
        let skip = done_before.remove(&edge.edge_id).unwrap_or_default();
        fill_edge(Arc::clone(&app), Arc::clone(&job), client.clone(), edge, skip)
    });
    let left: u64 = futures::future::join_all(tasks).await.into_iter().sum();
    if job.cancel.is_cancelled() {
        set_state(&app, &job, "cancelled", None).await;
    } else {
        let message =
            (left > 0).then(|| format!("{left} objects left out (window closed or cache share reached)"));
        set_state(&app, &job, "done", message).await;
    }
}

/// Fills one edge; returns how many objects were left out.
async fn fill_edge(
    app: Arc<App>,
    job: Arc<Job>,
    client: HttpClient,
    edge: EdgeRegistration,
    skip: HashSet<String>,
) -> u64 {
    job.progress
        .lock()
        .entry(edge.edge_id.clone())
        .or_insert_with(|| EdgeProgress {
            edge_id: edge.edge_id.clone(),
            ..Default::default()
        });
    let r = &job.request;
    // Bytes per second; the bucket holds one second's worth, fed in 16 KiB cells.
    let limiter = (r.bandwidth_kbps > 0).then(|| {
        let cells = ((r.bandwidth_kbps * 1000 / 8) / 16_384).max(1);
        let per_second = NonZeroU32::new(u32::try_from(cells).unwrap_or(u32::MAX)).expect("at least one");
        Arc::new(RateLimiter::direct(Quota::per_second(per_second)))
    });
    let budget = (edge.capacity_bytes > 0).then(|| (edge.capacity_bytes as f64 * r.max_cache_share) as u64);
    let token = app.config.playback_keys.first().map(|key| {
        sign_playback(
            key,
            PlaybackClaims {
                kid: String::new(),
                path: "/".into(),
                exp: now_ms() / 1000 + 86_400,
                country: None,
                sid: Some(format!("prewarm-{}", job.id)),
            },
        )
    });
    let todo: Vec<String> = job
        .objects
        .iter()
        .filter(|o| !skip.contains(*o))
        .cloned()
        .collect();
    let left = std::sync::atomic::AtomicU64::new(0);
    futures::stream::iter(todo)
        .for_each_concurrent(r.concurrency as usize, |path| {
            let (app, job, client, edge, limiter, token, left) =
                (&app, &job, &client, &edge, &limiter, &token, &left);
            async move {
                if job.cancel.is_cancelled() {
                    return;
                }
                let spent = job.progress.lock().get(&edge.edge_id).map_or(0, |p| p.bytes);
                let window_closed = job.request.end.is_some_and(|end| now_ms() as i64 >= end.0 * 1000);
                if window_closed || budget.is_some_and(|b| spent >= b) {
                    left.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    job.progress
                        .lock()
                        .get_mut(&edge.edge_id)
                        .expect("entered above")
                        .left += 1;
                    return;
                }
                // An edge that restarts or hiccups gets a few more tries, 0.5, 1 and 2 s apart.
                let mut attempt = 0;
                let (outcome, bytes) = loop {
                    let (outcome, bytes) = fetch_one(
                        client,
                        edge,
                        &path,
                        token.as_deref(),
                        limiter.as_deref(),
                        &job.cancel,
                    )
                    .await;
                    if outcome != "failed" || attempt == FETCH_RETRIES {
                        break (outcome, bytes);
                    }
                    tokio::select! {
                        _ = job.cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500 << attempt)) => {}
                    }
                    attempt += 1;
                };
                if outcome == "cancelled" {
                    return;
                }
                {
                    let mut progress = job.progress.lock();
                    let p = progress.get_mut(&edge.edge_id).expect("entered above");
                    p.bytes += bytes;
                    match outcome {
                        "done" => p.done += 1,
                        "skipped" => p.skipped += 1,
                        _ => p.failed += 1,
                    }
                }
                if let Err(e) = app
                    .store
                    .record_object(&job.id, &edge.edge_id, &path, outcome, bytes)
                    .await
                {
                    tracing::warn!(job = %job.id, "{e}");
                }
            }
        })
        .await;
    left.into_inner()
}

type Limiter =
    RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, governor::clock::DefaultClock>;

/// Fetches one object through an edge, reading its body under the bandwidth cap. The edge's
/// own `Cache-Status` says whether it had the object already.
async fn fetch_one(
    client: &HttpClient,
    edge: &EdgeRegistration,
    path: &str,
    token: Option<&str>,
    limiter: Option<&Limiter>,
    cancel: &CancellationToken,
) -> (&'static str, u64) {
    let mut url = format!("{}{path}", edge.url.trim_end_matches('/'));
    if let Some(t) = token {
        url.push_str(&format!("?{}={t}", strata_contracts::token::TOKEN_PARAM));
    }
    let Ok(uri) = url.parse::<http::Uri>() else {
        return ("failed", 0);
    };
    let request = http::Request::get(uri)
        .header(strata_contracts::api::steering::PREWARM_HEADER, "1")
        .body(Empty::<Bytes>::new());
    let Ok(request) = request else {
        return ("failed", 0);
    };
    let resp = match tokio::time::timeout(Duration::from_secs(30), client.request(request)).await {
        Ok(Ok(r)) if r.status().is_success() => r,
        _ => return ("failed", 0),
    };
    let hit = resp
        .headers()
        .get_all("cache-status")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|m| m.trim().starts_with("strata-edge; hit")));
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => return ("cancelled", bytes),
            f = tokio::time::timeout(Duration::from_secs(30), body.frame()) => f,
        };
        match frame {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                    if let Some(l) = limiter {
                        let cells = (data.len() as u32).div_ceil(16_384).max(1);
                        // Wait one cell at a time: a large chunk never needs more than the
                        // bucket holds.
                        for _ in 0..cells {
                            l.until_ready().await;
                        }
                    }
                }
            }
            Ok(None) => break,
            _ => return ("failed", bytes),
        }
    }
    (if hit { "skipped" } else { "done" }, bytes)
}
