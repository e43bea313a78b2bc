//! `strata loadgen`: synthetic HLS viewers against a CDN, in real time. Each viewer picks a
//! title (Zipf over the titles given), fetches its master playlist, plays the video renditions
//! with the `viewer` model (ABR, buffer, stalls) over real HTTP downloads, optionally through a
//! shaped link, and ends after its session length or the title's end. The run is bounded in
//! time; the report aggregates QoE and request figures.
//!
//! Not built yet: DASH, audio renditions, CMCD, steering, flash crowds.

use crate::cache_figures::{CacheCounters, CacheFigures};
use crate::cmcd::{Cmcd, CmcdMode, ObjectType};
use crate::fetch::{H3Sender, h3_connect, h3_request};
use crate::viewer::{Qoe, Trace, Viewer, ViewerSettings};
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Master playlist URLs, most popular first.
    pub titles: Vec<String>,
    /// Zipf exponent of title popularity.
    pub zipf_alpha: f64,
    /// Viewers to start.
    pub viewers: usize,
    /// New viewers per second.
    pub arrival_per_s: f64,
    /// Longest session, seconds.
    pub session_s: f64,
    /// Whole run, bounded.
    pub duration: Duration,
    /// HTTP/2 (h2c prior knowledge or ALPN) instead of HTTP/1.1.
    pub http2: bool,
    /// HTTP/3 (each viewer on its own QUIC connection) instead of TCP.
    pub http3: bool,
    /// Accept any server certificate (loopback test certificates).
    pub insecure: bool,
    /// Each viewer's link.
    pub link: Link,
    /// Whether and how viewers send CMCD (CTA-5004).
    pub cmcd: CmcdMode,
    /// A flash crowd: a share of the viewers all starting one title at once.
    pub flash: Option<FlashCrowd>,
    /// Start every viewer's play at a control plane; `titles` are then title ids.
    pub control_plane: Option<PlayStart>,
    /// The cache's Prometheus endpoint, read before and after the run.
    pub metrics: Option<String>,
}

/// Where viewers start their plays: each viewer asks the control plane for a play of its
/// title (`POST /v1/playback`) and plays the manifest it is given, as a real player does.
#[derive(Debug, Clone)]
pub struct PlayStart {
    /// The control plane's API URL.
    pub url: String,
    /// Sign-in of the account the viewers share.
    pub email: String,
    /// Its password.
    pub password: String,
    /// Device class to declare.
    pub device: String,
    /// Play the DASH MPD instead of the HLS master playlist.
    pub dash: bool,
}

/// A flash crowd: `share` of the viewers start `title` together, `at_s` into the run (the
/// others arrive at the arrival rate as usual).
#[derive(Debug, Clone)]
pub struct FlashCrowd {
    /// The title's master playlist.
    pub title: String,
    /// Share of the viewers, 0 to 1.
    pub share: f64,
    /// When, seconds into the run.
    pub at_s: f64,
}

/// How a viewer's link delivers bytes.
#[derive(Debug, Clone)]
pub enum Link {
    /// As fast as the network here allows.
    Unshaped,
    /// A fixed rate, kbit/s.
    Fixed(f64),
    /// A bandwidth trace, replayed from each viewer's start.
    Trace(Arc<Trace>),
}

impl Link {
    /// When `bytes` of a response whose request left `offset_s` into the session may have
    /// arrived, counted from the request; `None` when unshaped.
    fn due(&self, offset_s: f64, bytes: u64) -> Option<Duration> {
        let seconds = match self {
            Link::Unshaped => return None,
            Link::Fixed(kbps) => bytes as f64 * 8.0 / (kbps * 1000.0),
            Link::Trace(trace) => trace.download_time(offset_s, bytes),
        };
        Some(Duration::from_secs_f64(seconds))
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LoadReport {
    /// Viewers that started.
    pub sessions: u64,
    /// Sessions that failed (a manifest or segment could not be fetched or parsed).
    pub failed_sessions: u64,
    /// Startup time percentiles over sessions that started playing, seconds.
    pub startup_p50_s: f64,
    pub startup_p95_s: f64,
    pub startup_p99_s: f64,
    /// Stalled time over stalled plus played time, all sessions together.
    pub rebuffering_ratio: f64,
    /// Played-time-weighted bitrate over all sessions, kbit/s.
    pub average_bitrate_kbps: f64,
    /// Rendition switches per minute of playback.
    pub switches_per_minute: f64,
    /// HTTP requests made (manifests and segments).
    pub requests: u64,
    /// Request latency to the end of the body, milliseconds.
    pub request_p50_ms: f64,
    pub request_p99_ms: f64,
    /// Body bytes received.
    pub bytes: u64,
    /// Received body rate over the run, Mbit/s.
    pub mbit_per_sec: f64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Seconds the run took.
    pub seconds: f64,
    /// The cache's own figures over the run, when its metrics were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheFigures>,
}

/// Shared tallies of the running viewers.
struct Tally {
    qoe: Vec<Qoe>,
    failed: u64,
    latency: Histogram<u64>,
    requests: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
}

/// One video rendition of a title.
#[derive(Debug, Clone)]
struct Rendition {
    bandwidth: u64,
    /// HLS: the media playlist, fetched when the rendition is first chosen.
    playlist: String,
    /// DASH: the segments and init section, known from the MPD alone.
    known: Option<(Vec<(String, f64)>, Option<String>)>,
}

/// Runs `plan`, calling `progress` about once a second with a one-line status.
pub async fn run(
    plan: LoadPlan,
    progress: impl Fn(&str) + Send + Sync + 'static,
) -> anyhow::Result<LoadReport> {
    if plan.titles.is_empty() {
        bail!("no title given");
    }
    let client = {
        let b = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .danger_accept_invalid_certs(plan.insecure);
        if plan.http2 {
            b.http2_prior_knowledge()
        } else {
            b.http1_only()
        }
        .build()?
    };
    // Read first so that a wrong metrics URL fails the run before any viewer starts.
    let metrics_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let cache_before = match &plan.metrics {
        Some(url) => Some(CacheCounters::scrape(&metrics_client, url).await?),
        None => None,
    };
    // One sign-in for every viewer; each then starts its own play.
    let session_token = match &plan.control_plane {
        Some(cp) => Some(sign_in(&client, cp).await?),
        None => None,
    };
    let tally = Arc::new(Mutex::new(Tally {
        qoe: Vec::new(),
        failed: 0,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        requests: 0,
        bytes: 0,
        errors: BTreeMap::new(),
    }));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let weights: Vec<f64> = (1..=plan.titles.len())
        .map(|k| 1.0 / (k as f64).powf(plan.zipf_alpha))
        .collect();
    let total: f64 = weights.iter().sum();
    let reporter = {
        let tally = Arc::clone(&tally);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let t = tally.lock().unwrap();
                progress(&format!(
                    "{:>4.0}s  requests {}  errors {}  sessions done {}  failed {}  {:.1} MB",
                    started.elapsed().as_secs_f64(),
                    t.requests,
                    t.errors.values().sum::<u64>(),
                    t.qoe.len(),
                    t.failed,
                    t.bytes as f64 / 1e6
                ));
            }
        })
    };
    let flash_count = plan.flash.as_ref().map_or(0, |f| {
        (f.share.clamp(0.0, 1.0) * plan.viewers as f64).round() as usize
    });
    let spawn_viewer = {
        let (client, tally, plan, token) = (
            client.clone(),
            Arc::clone(&tally),
            plan.clone(),
            session_token.clone(),
        );
        move |url: String| {
            let (client, tally, plan, token) =
                (client.clone(), Arc::clone(&tally), plan.clone(), token.clone());
            tokio::spawn(async move {
                let started = async {
                    let master = match (&plan.control_plane, &token) {
                        (Some(cp), Some(token)) => start_play(&client, cp, token, &url).await?,
                        _ => url.clone(),
                    };
                    session(&client, &master, &plan, deadline, &tally).await
                };
                match started.await {
                    Ok(qoe) => tally.lock().unwrap().qoe.push(qoe),
                    Err(e) => {
                        let mut t = tally.lock().unwrap();
                        t.failed += 1;
                        *t.errors
                            .entry(format!("session: {}", first_line(&e)))
                            .or_default() += 1;
                    }
                }
            })
        }
    };
    let mut viewers = Vec::new();
    let flash = plan.flash.clone().filter(|_| flash_count > 0).map(|f| {
        let crowd: Vec<_> = (0..flash_count).map(|_| f.title.clone()).collect();
        let spawn_viewer = spawn_viewer.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((started + Duration::from_secs_f64(f.at_s.max(0.0))).into()).await;
            if Instant::now() >= deadline {
                return Vec::new();
            }
            crowd.into_iter().map(spawn_viewer).collect::<Vec<_>>()
        })
    });
    for n in 0..plan.viewers - flash_count {
        let start_at = started + Duration::from_secs_f64(n as f64 / plan.arrival_per_s.max(1e-3));
        if start_at >= deadline {
            break;
        }
        tokio::time::sleep_until(start_at.into()).await;
        let mut pick = rand::random::<f64>() * total;
        let title = weights
            .iter()
            .position(|w| {
                pick -= w;
                pick <= 0.0
            })
            .unwrap_or(0);
        viewers.push(spawn_viewer(plan.titles[title].clone()));
    }
    if let Some(flash) = flash {
        viewers.extend(flash.await.unwrap_or_default());
    }
    for v in viewers {
        let _ = v.await;
    }
    reporter.abort();
    let seconds = started.elapsed().as_secs_f64();
    let cache = match (&plan.metrics, cache_before) {
        (Some(url), Some(before)) => match CacheCounters::scrape(&metrics_client, url).await {
            Ok(after) => Some(before.until(&after)),
            Err(e) => {
                *tally
                    .lock()
                    .unwrap()
                    .errors
                    .entry(format!("metrics: {}", first_line(&e)))
                    .or_default() += 1;
                None
            }
        },
        _ => None,
    };
    let t = tally.lock().unwrap();
    let mut startup = Histogram::<u64>::new_with_bounds(1, 600_000, 3).expect("histogram bounds");
    for q in &t.qoe {
        if let Some(s) = q.startup_s {
            let _ = startup.record(((s * 1000.0) as u64).clamp(1, 600_000));
        }
    }
    let played: f64 = t.qoe.iter().map(|q| q.played_s).sum();
    let stalled: f64 = t.qoe.iter().map(|q| q.stalled_s).sum();
    let bitrate_seconds: f64 = t.qoe.iter().map(|q| q.average_bitrate_bps * q.played_s).sum();
    let switches: u32 = t.qoe.iter().map(|q| q.switches).sum();
    Ok(LoadReport {
        sessions: t.qoe.len() as u64 + t.failed,
        failed_sessions: t.failed,
        startup_p50_s: startup.value_at_quantile(0.5) as f64 / 1000.0,
        startup_p95_s: startup.value_at_quantile(0.95) as f64 / 1000.0,
        startup_p99_s: startup.value_at_quantile(0.99) as f64 / 1000.0,
        rebuffering_ratio: if played + stalled > 0.0 {
            stalled / (played + stalled)
        } else {
            0.0
        },
        average_bitrate_kbps: if played > 0.0 {
            bitrate_seconds / played / 1000.0
        } else {
            0.0
        },
        switches_per_minute: if played > 0.0 {
            switches as f64 / (played / 60.0)
        } else {
            0.0
        },
        requests: t.requests,
        request_p50_ms: t.latency.value_at_quantile(0.5) as f64 / 1000.0,
        request_p99_ms: t.latency.value_at_quantile(0.99) as f64 / 1000.0,
        bytes: t.bytes,
        mbit_per_sec: t.bytes as f64 * 8.0 / seconds / 1e6,
        errors: t.errors.clone(),
        seconds,
        cache,
    })
}

/// Signs in at the control plane; returns the session token.
async fn sign_in(client: &reqwest::Client, cp: &PlayStart) -> anyhow::Result<String> {
    let url = format!("{}/v1/sessions", cp.url.trim_end_matches('/'));
    let resp = client
        .post(&url)
        .json(&serde_json::json!({"email": cp.email, "password": cp.password}))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "signing in at {url}: {status} {}",
            body["error"].as_str().unwrap_or_default()
        );
    }
    body["session"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{url} answered no session"))
}

/// Starts a play of `title`; returns its manifest URL.
async fn start_play(
    client: &reqwest::Client,
    cp: &PlayStart,
    token: &str,
    title: &str,
) -> anyhow::Result<String> {
    let url = format!("{}/v1/playback", cp.url.trim_end_matches('/'));
    let resp = client
        .post(&url)
        .bearer_auth(token)
        .json(&serde_json::json!({"title": title, "device": cp.device}))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "playback of {title}: {status} {}",
            body["error"].as_str().unwrap_or("refused")
        );
    }
    let field = if cp.dash { "dash_url" } else { "hls_url" };
    body[field]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("the play of {title} has no {field}"))
}

fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect()
}

/// One viewer's session: master playlist, then segments chosen by the ABR model.
async fn session(
    client: &reqwest::Client,
    master_url: &str,
    plan: &LoadPlan,
    deadline: Instant,
    tally: &Mutex<Tally>,
) -> anyhow::Result<Qoe> {
    let t0 = Instant::now();
    let clock = || t0.elapsed().as_secs_f64();
    let mut conn = if plan.http3 {
        Conn::H3(
            h3_connect(master_url, plan.insecure)
                .await
                .context("HTTP/3 connection")?,
        )
    } else {
        Conn::Tcp(client.clone())
    };
    let conn = &mut conn;
    // CMCD's session id: unique per viewer; the content id: the title's master playlist.
    let sid = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
    let cmcd = |object, bitrate_kbps: Option<u64>, duration_s: Option<f64>, viewer: Option<&Viewer>| {
        (plan.cmcd != CmcdMode::Off).then(|| Cmcd {
            bitrate_kbps,
            buffer_ms: viewer.map(|v| (v.buffer_s() * 1000.0) as u64),
            duration_ms: duration_s.map(|d| (d * 1000.0).round() as u64),
            throughput_kbps: None,
            object,
            session: sid.clone(),
            content: master_url.to_string(),
            startup: viewer.is_none_or(|v| v.buffer_s() <= 0.0),
        })
    };
    let master = get(
        conn,
        master_url,
        &plan.link,
        t0,
        tally,
        plan.cmcd,
        cmcd(ObjectType::Manifest, None, None, None).as_ref(),
    )
    .await?;
    let renditions = if master_url.split('?').next().unwrap_or_default().ends_with(".mpd") {
        parse_mpd(master_url, &master)?
    } else {
        parse_master(master_url, &master)?
    };
    let mut playlists: Vec<Option<Vec<(String, f64)>>> = vec![None; renditions.len()];
    let mut init_fetched: Vec<bool> = vec![false; renditions.len()];
    let mut viewer: Option<Viewer> = None;
    let mut index = 0usize;
    let end = (t0 + Duration::from_secs_f64(plan.session_s)).min(deadline);
    loop {
        if Instant::now() >= end {
            break;
        }
        let choice = match &viewer {
            Some(v) => v.next_rendition(),
            None => Some(0),
        };
        let Some(r) = choice else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(v) = viewer.as_mut() {
                v.advance(clock());
            }
            continue;
        };
        if playlists[r].is_none()
            && let Some((segments, init)) = renditions[r].known.clone()
        {
            if let Some(init) = init {
                let kbps = Some(renditions[r].bandwidth / 1000);
                get(
                    conn,
                    &init,
                    &plan.link,
                    t0,
                    tally,
                    plan.cmcd,
                    cmcd(ObjectType::Init, kbps, None, viewer.as_ref()).as_ref(),
                )
                .await?;
                init_fetched[r] = true;
            }
            playlists[r] = Some(segments);
        }
        if playlists[r].is_none() {
            let text = get(
                conn,
                &renditions[r].playlist,
                &plan.link,
                t0,
                tally,
                plan.cmcd,
                cmcd(ObjectType::Manifest, None, None, viewer.as_ref()).as_ref(),
            )
            .await?;
            let (segments, init) = parse_media(&renditions[r].playlist, &text)?;
            if let Some(init) = init
                && !init_fetched[r]
            {
                let kbps = Some(renditions[r].bandwidth / 1000);
                get(
                    conn,
                    &init,
                    &plan.link,
                    t0,
                    tally,
                    plan.cmcd,
                    cmcd(ObjectType::Init, kbps, None, viewer.as_ref()).as_ref(),
                )
                .await?;
                init_fetched[r] = true;
            }
            playlists[r] = Some(segments);
        }
        let segments = playlists[r].as_ref().expect("just fetched");
        let Some((url, duration)) = segments.get(index).cloned() else {
            // The title is all fetched: play out what is buffered, within the session.
            if let Some(v) = viewer.as_mut() {
                while v.buffer_s() > 0.0 && Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    v.advance(clock());
                }
            }
            break;
        };
        let v = viewer.get_or_insert_with(|| {
            Viewer::new(
                ViewerSettings {
                    ladder: renditions.iter().map(|x| x.bandwidth).collect(),
                    segment_s: duration,
                    startup_buffer_s: duration,
                    target_buffer_s: 30.0,
                },
                0.0,
            )
        });
        let started = Instant::now();
        let data = cmcd(
            ObjectType::Muxed,
            Some(renditions[r].bandwidth / 1000),
            Some(duration),
            Some(v),
        );
        let body = get(conn, &url, &plan.link, t0, tally, plan.cmcd, data.as_ref()).await?;
        v.segment_arrived(clock(), r, body.len() as u64, started.elapsed().as_secs_f64());
        index += 1;
    }
    Ok(viewer.map(|mut v| v.qoe(clock())).unwrap_or_default())
}

/// A viewer's connection to the CDN.
enum Conn {
    /// HTTP/1.1 or HTTP/2 through reqwest.
    Tcp(reqwest::Client),
    /// HTTP/3 on the viewer's own QUIC connection.
    H3(H3Sender),
}

/// GET through the viewer's `link` (its session began at `t0`), with its CMCD when it sends
/// any (over HTTP/3 always as the query parameter); records the request.
async fn get(
    conn: &mut Conn,
    url: &str,
    link: &Link,
    t0: Instant,
    tally: &Mutex<Tally>,
    mode: CmcdMode,
    cmcd: Option<&Cmcd>,
) -> anyhow::Result<Vec<u8>> {
    let query_cmcd =
        cmcd.filter(|_| mode == CmcdMode::Query || (mode == CmcdMode::Header && matches!(conn, Conn::H3(_))));
    let url = &query_cmcd.map_or_else(|| url.to_string(), |c| c.add_to_url(url));
    let header_cmcd = cmcd.filter(|_| mode == CmcdMode::Header);
    let started = Instant::now();
    let offset_s = started.duration_since(t0).as_secs_f64();
    // The link delivers no faster than its rate.
    let pace = |received: usize| {
        link.due(offset_s, received as u64)
            .and_then(|due| due.checked_sub(started.elapsed()))
    };
    let outcome: anyhow::Result<Vec<u8>> = async {
        let mut body = Vec::new();
        match conn {
            Conn::Tcp(client) => {
                let mut req = client.get(url);
                for (name, value) in header_cmcd.map(Cmcd::headers).unwrap_or_default() {
                    req = req.header(name, value);
                }
                let mut r = req.send().await.with_context(|| format!("GET {url}"))?;
                if !r.status().is_success() {
                    bail!("GET {url}: status {}", r.status());
                }
                while let Some(chunk) = r.chunk().await.with_context(|| format!("GET {url}: body"))? {
                    body.extend_from_slice(&chunk);
                    if let Some(wait) = pace(body.len()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            Conn::H3(sender) => {
                let mut r = h3_request(sender, url)
                    .await
                    .with_context(|| format!("GET {url} (h3)"))?;
                while let Some(chunk) = r.chunk().await.with_context(|| format!("GET {url} (h3): body"))? {
                    body.extend_from_slice(&chunk);
                    if let Some(wait) = pace(body.len()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Ok(body)
    }
    .await;
    let mut t = tally.lock().unwrap();
    t.requests += 1;
    match &outcome {
        Ok(body) => {
            t.bytes += body.len() as u64;
            let _ = t
                .latency
                .record((started.elapsed().as_micros() as u64).clamp(1, 60_000_000));
        }
        Err(e) => {
            let kind = if format!("{e:#}").contains("status") {
                "http status"
            } else {
                "transport"
            };
            *t.errors.entry(kind.to_string()).or_default() += 1;
        }
    }
    outcome
}

/// The video renditions of an HLS master playlist, lowest bandwidth first.
fn parse_master(url: &str, text: &[u8]) -> anyhow::Result<Vec<Rendition>> {
    let master = match m3u8_rs::parse_playlist_res(text) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => m,
        Ok(_) => bail!("{url}: a media playlist, not a master playlist"),
        Err(e) => bail!("{url}: not an HLS playlist: {e}"),
    };
    let mut renditions: Vec<Rendition> = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| {
            Ok(Rendition {
                bandwidth: v.bandwidth,
                playlist: resolve(url, &v.uri)?,
                known: None,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    if renditions.is_empty() {
        bail!("{url}: no variant streams");
    }
    renditions.sort_by_key(|r| r.bandwidth);
    Ok(renditions)
}

/// The video representations of a DASH MPD (`SegmentTemplate` with `$Number$` and a fixed
/// duration), lowest bandwidth first, each with its segments and init section.
fn parse_mpd(url: &str, text: &[u8]) -> anyhow::Result<Vec<Rendition>> {
    let text = std::str::from_utf8(text).map_err(|_| anyhow::anyhow!("{url}: not UTF-8"))?;
    let mpd = dash_mpd_core::parse(text).map_err(|e| anyhow::anyhow!("{url}: not a DASH MPD: {e}"))?;
    let mut renditions = Vec::new();
    let period = mpd
        .periods
        .first()
        .ok_or_else(|| anyhow::anyhow!("{url}: no period"))?;
    let length = period
        .duration
        .or(mpd.mediaPresentationDuration)
        .ok_or_else(|| anyhow::anyhow!("{url}: no duration"))?
        .as_secs_f64();
    // Segment URLs hang off the MPD's BaseURL, if any, else the MPD's own URL.
    let base = match mpd.base_url.first() {
        Some(b) => resolve(url, &b.base)?,
        None => url.to_string(),
    };
    for set in &period.adaptations {
        let video = set.contentType.as_deref() == Some("video")
            || set.mimeType.as_deref().is_some_and(|m| m.starts_with("video/"));
        if !video {
            continue;
        }
        for rep in &set.representations {
            let Some(t) = rep.SegmentTemplate.as_ref().or(set.SegmentTemplate.as_ref()) else {
                bail!("{url}: a representation without a SegmentTemplate");
            };
            let (Some(media), Some(duration)) = (t.media.as_deref(), t.duration) else {
                bail!("{url}: only SegmentTemplate with media and duration is played");
            };
            let seconds = duration / t.timescale.unwrap_or(1) as f64;
            let id = rep.id.as_deref().unwrap_or_default();
            let fill = |template: &str, n: Option<u64>| {
                let mut s = template.replace("$RepresentationID$", id);
                if let Some(n) = n {
                    s = s.replace("$Number$", &n.to_string());
                    if let Some(start) = s.find("$Number%0")
                        && let Some(end) = s[start + 9..].find("d$")
                    {
                        let width: usize = s[start + 9..start + 9 + end].parse().unwrap_or(1);
                        s.replace_range(start..start + 9 + end + 2, &format!("{n:0width$}"));
                    }
                }
                s
            };
            let count = (length / seconds - 1e-9).ceil().max(1.0) as u64;
            let first = t.startNumber.unwrap_or(1);
            let segments = (first..first + count)
                .map(|n| Ok((resolve(&base, &fill(media, Some(n)))?, seconds)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let init = t
                .initialization
                .as_deref()
                .map(|i| resolve(&base, &fill(i, None)))
                .transpose()?;
            renditions.push(Rendition {
                bandwidth: rep.bandwidth.unwrap_or(0),
                playlist: url.to_string(),
                known: Some((segments, init)),
            });
        }
    }
    if renditions.is_empty() {
        bail!("{url}: no video representations");
    }
    renditions.sort_by_key(|r| r.bandwidth);
    Ok(renditions)
}

/// A media playlist's segments (URL, seconds) and its init segment, if any.
fn parse_media(url: &str, text: &[u8]) -> anyhow::Result<(Vec<(String, f64)>, Option<String>)> {
    let media = match m3u8_rs::parse_playlist_res(text) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
        Ok(_) => bail!("{url}: a master playlist where a media playlist was expected"),
        Err(e) => bail!("{url}: not an HLS playlist: {e}"),
    };
    let init = media
        .segments
        .iter()
        .find_map(|s| s.map.as_ref())
        .map(|m| resolve(url, &m.uri))
        .transpose()?;
    let segments = media
        .segments
        .iter()
        .map(|s| Ok((resolve(url, &s.uri)?, f64::from(s.duration))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if segments.is_empty() {
        bail!("{url}: no segments");
    }
    Ok((segments, init))
}

/// `reference` resolved against `base` (RFC 3986).
fn resolve(base: &str, reference: &str) -> anyhow::Result<String> {
    let base = reqwest::Url::parse(base).with_context(|| format!("bad URL {base}"))?;
    Ok(base
        .join(reference)
        .with_context(|| format!("bad reference {reference}"))?
        .to_string())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn an_mpd_lists_each_video_representation_with_its_segments() {
        let mpd = br#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT5S">
<Period><AdaptationSet contentType="video">
<Representation id="1" bandwidth="3000000" height="720"><SegmentTemplate timescale="1000" duration="2000" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
<Representation id="0" bandwidth="800000" height="360"><SegmentTemplate timescale="1000" duration="2000" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
</AdaptationSet><AdaptationSet contentType="audio"><Representation id="3" bandwidth="128000"><SegmentTemplate timescale="1000" duration="2000" media="a-$Number$.m4s"/></Representation></AdaptationSet></Period></MPD>"#;
        let r = parse_mpd("http://e/t/manifest.mpd?token=x", mpd).unwrap();
        assert_eq!(
            r.iter().map(|x| x.bandwidth).collect::<Vec<_>>(),
            [800_000, 3_000_000]
        );
        let (segments, init) = r[0].known.clone().unwrap();
        assert_eq!(init.as_deref(), Some("http://e/t/init-0.m4s"));
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[2], ("http://e/t/seg-0-00003.m4s".to_string(), 2.0));
        assert!(parse_mpd("http://e/x.mpd", b"<html/>").is_err());
    }

    #[test]
    fn playlists_parse_and_resolve() {
        let master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2500000\n540p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n360p/index.m3u8\n";
        let r = parse_master("http://e/t/master.m3u8", master).unwrap();
        assert_eq!(r[0].bandwidth, 800_000);
        assert_eq!(r[0].playlist, "http://e/t/360p/index.m3u8");
        let media = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\nseg1.m4s\n#EXTINF:2.0,\nseg2.m4s\n#EXT-X-ENDLIST\n";
        let (segs, init) = parse_media("http://e/t/360p/index.m3u8", media).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1].0, "http://e/t/360p/seg2.m4s");
        assert_eq!(init.as_deref(), Some("http://e/t/360p/init.mp4"));
        assert!(
            parse_master("http://e/x", b"not a playlist")
                .unwrap_err()
                .to_string()
                .contains("not an HLS playlist")
        );
        assert!(parse_master("http://e/x", media).is_err());
    }
}
