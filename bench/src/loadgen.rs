//! `strata loadgen`: synthetic viewers against a CDN, in real time. Each viewer picks a title
//! (Zipf over the titles given, or a flash crowd's), optionally starts a play at a control
//! plane, fetches the HLS master playlist or DASH MPD, follows its Content Steering server
//! (`pathway`), plays the video renditions with the `viewer` model (ABR, buffer, stalls) and the
//! audio beside them over real HTTP/1.1, HTTP/2 or HTTP/3 downloads through a shaped link,
//! sends CMCD if asked, and ends after its session length or the title's end. The run is
//! bounded in time; the report aggregates QoE, request and (given its metrics) cache figures.

use crate::cache_figures::{CacheCounters, CacheFigures};
use crate::cmcd::{Cmcd, CmcdMode, ObjectType};
use crate::fetch::{H3Sender, h3_connect, h3_request};
use crate::pathway::{SteeringClient, replace_uri};
use crate::presentation::{Presentation, SegmentList, Source, parse_media, resolve};
use crate::trust::Trust;
use crate::viewer::{Qoe, Trace, Viewer, ViewerSettings};
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_contracts::api::steering::SteeringManifest;

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
    /// How servers' certificates are checked.
    pub trust: Trust,
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
    /// Seed of the viewers' title draws: the same seed gives every run the same sequence of
    /// titles (so runs against different caches compare); random when absent.
    pub seed: Option<u64>,
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
    /// Requests by what they fetched: manifest, steering, init, video (or muxed), audio.
    pub requests_by_object: BTreeMap<String, u64>,
    /// Media requests (init sections and segments) by the pathway they went to.
    pub requests_by_pathway: BTreeMap<String, u64>,
    /// Pathway changes, steered or after a failure, over all sessions.
    pub pathway_switches: u64,
    /// Requests that failed on one pathway and were tried on another.
    pub failovers: u64,
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
    by_object: BTreeMap<String, u64>,
    by_pathway: BTreeMap<String, u64>,
    pathway_switches: u64,
    failovers: u64,
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
        let b = plan
            .trust
            .reqwest(reqwest::Client::builder())?
            .timeout(Duration::from_secs(20));
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
        by_object: BTreeMap::new(),
        by_pathway: BTreeMap::new(),
        pathway_switches: 0,
        failovers: 0,
    }));
    let started = Instant::now();
    let deadline = started + plan.duration;
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
    let picks = title_draws(
        plan.viewers - flash_count,
        plan.titles.len(),
        plan.zipf_alpha,
        plan.seed,
    );
    for (n, title) in picks.into_iter().enumerate() {
        let start_at = started + Duration::from_secs_f64(n as f64 / plan.arrival_per_s.max(1e-3));
        if start_at >= deadline {
            break;
        }
        tokio::time::sleep_until(start_at.into()).await;
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
        requests_by_object: t.by_object.clone(),
        requests_by_pathway: t.by_pathway.clone(),
        pathway_switches: t.pathway_switches,
        failovers: t.failovers,
        errors: t.errors.clone(),
        seconds,
        cache,
    })
}

/// The titles of `count` viewers, Zipf(`alpha`) over `titles` ranked titles (index 0 the most
/// popular); the same `seed` gives the same draws.
fn title_draws(count: usize, titles: usize, alpha: f64, seed: Option<u64>) -> Vec<usize> {
    let weights: Vec<f64> = (1..=titles).map(|k| 1.0 / (k as f64).powf(alpha)).collect();
    let total: f64 = weights.iter().sum();
    let mut rng = seed.map_or_else(|| SmallRng::from_rng(&mut rand::rng()), SmallRng::seed_from_u64);
    (0..count)
        .map(|_| {
            let mut pick = rng.random::<f64>() * total;
            weights
                .iter()
                .position(|w| {
                    pick -= w;
                    pick <= 0.0
                })
                .unwrap_or(0)
        })
        .collect()
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

/// Which track of a presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TrackRef {
    Video(usize),
    Audio,
}

/// One viewer's network side: its connection, its steering client, the segment lists it has
/// loaded per pathway, and the CMCD it sends.
struct Player<'a> {
    conn: Conn,
    plan: &'a LoadPlan,
    tally: &'a Mutex<Tally>,
    t0: Instant,
    master_url: String,
    presentation: Presentation,
    steering: Option<SteeringClient>,
    pathway: String,
    lists: HashMap<(TrackRef, String), SegmentList>,
    sid: String,
}

impl Player<'_> {
    fn clock(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn cmcd(
        &self,
        object: ObjectType,
        bitrate: Option<u64>,
        duration_s: Option<f64>,
        viewer: Option<&Viewer>,
    ) -> Option<Cmcd> {
        (self.plan.cmcd != CmcdMode::Off).then(|| Cmcd {
            bitrate_kbps: bitrate.map(|b| b / 1000),
            buffer_ms: viewer.map(|v| (v.buffer_s() * 1000.0) as u64),
            duration_ms: duration_s.map(|d| (d * 1000.0).round() as u64),
            throughput_kbps: None,
            object,
            session: self.sid.clone(),
            content: self.master_url.clone(),
            startup: viewer.is_none_or(|v| v.buffer_s() <= 0.0),
        })
    }

    /// GET `url`, counted under `kind` and, for media, the pathway it was fetched from.
    async fn fetch(&mut self, url: &str, kind: &str, cmcd: Option<Cmcd>) -> anyhow::Result<Vec<u8>> {
        let plan = self.plan;
        let body = get(
            &mut self.conn,
            url,
            &plan.link,
            self.t0,
            self.tally,
            plan.cmcd,
            cmcd.as_ref(),
        )
        .await;
        let mut t = self.tally.lock().unwrap();
        *t.by_object.entry(kind.to_string()).or_default() += 1;
        if kind != "manifest" && kind != "steering" {
            *t.by_pathway.entry(self.pathway.clone()).or_default() += 1;
        }
        body
    }

    /// Asks the steering server when due, and moves to the pathway it ranks first.
    async fn steer(&mut self, throughput_bps: Option<f64>) {
        let now = self.clock();
        let Some(url) = self
            .steering
            .as_ref()
            .and_then(|s| s.due(now, self.presentation.dash, throughput_bps))
        else {
            return;
        };
        let answer = self.fetch(&url, "steering", None).await;
        let now = self.clock();
        let steering = self.steering.as_mut().expect("steering checked above");
        match answer.map(|body| serde_json::from_slice::<SteeringManifest>(&body)) {
            Ok(Ok(manifest)) => {
                if let Err(e) = steering.answered(&url, &manifest, now) {
                    *self
                        .tally
                        .lock()
                        .unwrap()
                        .errors
                        .entry(format!("steering: {e}"))
                        .or_default() += 1;
                }
            }
            Ok(Err(e)) => {
                steering.failed(now, None);
                *self
                    .tally
                    .lock()
                    .unwrap()
                    .errors
                    .entry(format!("steering: not a steering manifest: {e}"))
                    .or_default() += 1;
            }
            Err(e) => {
                let status = format!("{e:#}").contains("status 410").then_some(410);
                steering.failed(now, status);
            }
        }
        self.choose_pathway();
    }

    /// Re-picks the pathway (after an answer, or a failure on the current one).
    fn choose_pathway(&mut self) -> bool {
        let now = self.clock();
        let Some(steering) = self.steering.as_mut() else {
            return false;
        };
        if steering.choose(&self.presentation.pathways, now) {
            self.pathway = steering.current().to_string();
            self.tally.lock().unwrap().pathway_switches += 1;
            true
        } else {
            false
        }
    }

    /// Segment `index` of `track` on the current pathway (URL, seconds); `None` past the end.
    async fn segment(
        &mut self,
        track: TrackRef,
        index: usize,
        viewer: Option<&Viewer>,
    ) -> anyhow::Result<Option<(String, f64)>> {
        let key = (track, self.pathway.clone());
        if !self.lists.contains_key(&key) {
            let list = self.load(track, viewer).await?;
            self.lists.insert(key.clone(), list);
        }
        Ok(self.lists[&key].0.get(index).cloned())
    }

    /// `track`'s segments on the current pathway: HLS loads its media playlist there, DASH
    /// resolves the templates against the pathway's BaseURL; then the init section is fetched.
    async fn load(&mut self, track: TrackRef, viewer: Option<&Viewer>) -> anyhow::Result<SegmentList> {
        let t = match track {
            TrackRef::Video(i) => self.presentation.video[i].clone(),
            TrackRef::Audio => self.presentation.audio.clone().context("no audio track")?,
        };
        let (base, replacement) = match &self.steering {
            Some(s) => {
                let (b, r) = s.base();
                (b.to_string(), r.cloned())
            }
            None => (self.pathway.clone(), None),
        };
        let rewrite = |url: String| match &replacement {
            Some(r) => replace_uri(&url, r),
            None => url,
        };
        let list = match &t.source {
            Source::Playlist(_) => {
                let url = rewrite(
                    self.presentation
                        .playlist_url(&t, &base)
                        .with_context(|| format!("the manifest has no pathway {base}"))?,
                );
                let cmcd = self.cmcd(ObjectType::Manifest, None, None, viewer);
                let text = self.fetch(&url, "manifest", cmcd).await?;
                parse_media(&url, &text)?
            }
            Source::Template { segments, init } => {
                let base_url = rewrite(
                    self.presentation
                        .bases
                        .get(&base)
                        .cloned()
                        .with_context(|| format!("the MPD has no BaseURL for {base}"))?,
                );
                (
                    segments
                        .iter()
                        .map(|(r, s)| Ok((resolve(&base_url, r)?, *s)))
                        .collect::<anyhow::Result<_>>()?,
                    init.as_deref().map(|i| resolve(&base_url, i)).transpose()?,
                )
            }
        };
        if let Some(init) = &list.1 {
            let cmcd = self.cmcd(ObjectType::Init, Some(t.bandwidth), None, viewer);
            self.fetch(init, "init", cmcd).await?;
        }
        Ok(list)
    }

    /// A request on the current pathway failed with `e`: with steering and another pathway to
    /// go to, the failed one is avoided for a while and the caller tries there (as players fail
    /// over); otherwise, or when `tries_left` is spent, `e` ends the session.
    fn fail_over(&mut self, e: anyhow::Error, tries_left: usize) -> anyhow::Result<()> {
        let now = self.clock();
        let Some(s) = self.steering.as_mut() else {
            return Err(e);
        };
        s.penalize(&self.pathway, now);
        if tries_left == 0 || !self.choose_pathway() {
            return Err(e);
        }
        self.tally.lock().unwrap().failovers += 1;
        Ok(())
    }
}

/// Evaluates `$step` (a fallible request of player `$p`) until it succeeds, failing over to
/// another pathway after each failure while `Player::fail_over` allows.
macro_rules! on_some_pathway {
    ($p:ident, $step:expr) => {{
        let mut tries = $p.presentation.pathways.len() + 8;
        loop {
            match $step {
                Ok(v) => break v,
                Err(e) => {
                    tries -= 1;
                    $p.fail_over(e, tries)?;
                }
            }
        }
    }};
}

/// One viewer's session: the manifest, steering when it names a server, then segments
/// chosen by the ABR model (and the audio beside them), until the session or the title ends.
async fn session(
    client: &reqwest::Client,
    master_url: &str,
    plan: &LoadPlan,
    deadline: Instant,
    tally: &Mutex<Tally>,
) -> anyhow::Result<Qoe> {
    let t0 = Instant::now();
    // CMCD's session id: unique per viewer; the content id: the title's manifest.
    let sid = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
    let mut p = Player {
        conn: Conn::new(client.clone(), plan.http3, plan.trust.clone()),
        plan,
        tally,
        t0,
        master_url: master_url.to_string(),
        presentation: Presentation::default(),
        steering: None,
        pathway: String::new(),
        lists: HashMap::new(),
        sid,
    };
    let cmcd = p.cmcd(ObjectType::Manifest, None, None, None);
    let master = p.fetch(master_url, "manifest", cmcd).await?;
    p.presentation = Presentation::parse(master_url, &master)?;
    p.pathway = p.presentation.initial_pathway();
    p.steering = p
        .presentation
        .steering
        .as_ref()
        .map(|tag| SteeringClient::new(tag, &p.pathway));
    let video_object = if p.presentation.audio.is_some() {
        ObjectType::Video
    } else {
        ObjectType::Muxed
    };
    let ladder: Vec<u64> = p.presentation.video.iter().map(|x| x.bandwidth).collect();
    let mut viewer: Option<Viewer> = None;
    let mut index = 0usize;
    let (mut video_end_s, mut audio_end_s, mut audio_index) = (0.0f64, 0.0f64, 0usize);
    let end = (t0 + Duration::from_secs_f64(plan.session_s)).min(deadline);
    loop {
        if Instant::now() >= end {
            break;
        }
        // Steering before the first segment (queryBeforeStart) and after each TTL.
        p.steer(viewer.as_ref().and_then(Viewer::throughput_bps)).await;
        let choice = match &viewer {
            Some(v) => v.next_rendition(),
            None => Some(0),
        };
        let Some(r) = choice else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = p.clock();
            if let Some(v) = viewer.as_mut() {
                v.advance(now);
            }
            continue;
        };
        let next = on_some_pathway!(p, p.segment(TrackRef::Video(r), index, viewer.as_ref()).await);
        let Some((_, duration)) = next else {
            // The title is all fetched: play out what is buffered, within the session.
            if let Some(v) = viewer.as_mut() {
                while v.buffer_s() > 0.0 && Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    v.advance(p.clock());
                }
            }
            break;
        };
        let v = viewer.get_or_insert_with(|| {
            Viewer::new(
                ViewerSettings {
                    ladder: ladder.clone(),
                    segment_s: duration,
                    startup_buffer_s: duration,
                    target_buffer_s: 30.0,
                },
                0.0,
            )
        });
        let started = Instant::now();
        let bandwidth = ladder[r];
        let cmcd = p.cmcd(video_object, Some(bandwidth), Some(duration), Some(v));
        let mut bytes = on_some_pathway!(p, {
            // After a failover the segment is the new pathway's.
            match p.segment(TrackRef::Video(r), index, None).await {
                Ok(Some((url, _))) => p.fetch(&url, "video", cmcd.clone()).await,
                Ok(None) => Err(anyhow::anyhow!("pathway {} lists no segment {index}", p.pathway)),
                Err(e) => Err(e),
            }
        })
        .len() as u64;
        video_end_s += duration;
        // The audio that plays with it.
        while p.presentation.audio.is_some() && audio_end_s < video_end_s - 1e-3 {
            let audio_bandwidth = p.presentation.audio.as_ref().map(|a| a.bandwidth);
            let fetched: Option<(u64, f64)> = on_some_pathway!(p, {
                match p.segment(TrackRef::Audio, audio_index, None).await {
                    Ok(None) => Ok(None),
                    Ok(Some((url, seconds))) => {
                        let cmcd = p.cmcd(ObjectType::Audio, audio_bandwidth, Some(seconds), None);
                        p.fetch(&url, "audio", cmcd)
                            .await
                            .map(|body| Some((body.len() as u64, seconds)))
                    }
                    Err(e) => Err(e),
                }
            });
            let Some((audio_bytes, seconds)) = fetched else {
                break;
            };
            bytes += audio_bytes;
            audio_end_s += seconds;
            audio_index += 1;
        }
        let v = viewer.as_mut().expect("created above");
        v.segment_arrived(p.clock(), r, bytes, started.elapsed().as_secs_f64());
        index += 1;
    }
    let now = p.clock();
    Ok(viewer.map(|mut v| v.qoe(now)).unwrap_or_default())
}

/// A viewer's connections to the CDN.
enum Conn {
    /// HTTP/1.1 or HTTP/2 through reqwest.
    Tcp(reqwest::Client),
    /// HTTP/3 for https:// URLs, one QUIC connection per authority (made when first needed);
    /// http:// URLs (a control plane's playlists) go over TCP.
    H3 {
        trust: Trust,
        tcp: reqwest::Client,
        quic: HashMap<String, H3Sender>,
    },
}

impl Conn {
    fn new(tcp: reqwest::Client, http3: bool, trust: Trust) -> Self {
        if http3 {
            Conn::H3 {
                trust,
                tcp,
                quic: HashMap::new(),
            }
        } else {
            Conn::Tcp(tcp)
        }
    }
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
    let over_h3 = matches!(conn, Conn::H3 { .. }) && url.starts_with("https://");
    let query_cmcd = cmcd.filter(|_| mode == CmcdMode::Query || (mode == CmcdMode::Header && over_h3));
    let url = &query_cmcd.map_or_else(|| url.to_string(), |c| c.add_to_url(url));
    let header_cmcd = cmcd.filter(|_| mode == CmcdMode::Header && !over_h3);
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
            Conn::H3 { trust, quic, .. } if over_h3 => {
                let authority = reqwest::Url::parse(url)
                    .ok()
                    .map(|u| {
                        format!(
                            "{}:{}",
                            u.host_str().unwrap_or_default(),
                            u.port_or_known_default().unwrap_or(443)
                        )
                    })
                    .unwrap_or_default();
                if !quic.contains_key(&authority) {
                    let sender = h3_connect(url, trust)
                        .await
                        .with_context(|| format!("HTTP/3 connection to {authority}"))?;
                    quic.insert(authority.clone(), sender);
                }
                let sender = quic.get_mut(&authority).expect("inserted above");
                let mut r = match h3_request(sender, url).await {
                    Ok(r) => r,
                    Err(e) => {
                        // A broken connection is made anew on the next request.
                        quic.remove(&authority);
                        return Err(e).with_context(|| format!("GET {url} (h3)"));
                    }
                };
                while let Some(chunk) = r.chunk().await.with_context(|| format!("GET {url} (h3): body"))? {
                    body.extend_from_slice(&chunk);
                    if let Some(wait) = pace(body.len()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            Conn::Tcp(client) | Conn::H3 { tcp: client, .. } => {
                let mut req = client.get(url);
                for (name, value) in header_cmcd.map(Cmcd::headers).unwrap_or_default() {
                    req = req.header(name, value);
                }
                let mut r = req.send().await.with_context(|| format!("GET {url}"))?;
                if !r.status().is_success() {
                    bail!("GET {url}: status {}", r.status().as_u16());
                }
                while let Some(chunk) = r.chunk().await.with_context(|| format!("GET {url}: body"))? {
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

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn title_draws_follow_zipf_and_repeat_with_the_seed() {
        let a = title_draws(20_000, 10, 0.9, Some(7));
        assert_eq!(a, title_draws(20_000, 10, 0.9, Some(7)));
        assert_ne!(a, title_draws(20_000, 10, 0.9, Some(8)));
        let share = |k: usize| a.iter().filter(|&&t| t == k).count() as f64 / a.len() as f64;
        // Zipf(0.9) over 10: the first title's share is 1 / sum(k^-0.9) = 0.3104, the tenth's
        // 0.3104 / 10^0.9 = 0.0391.
        assert!((share(0) - 0.3104).abs() < 0.015, "{}", share(0));
        assert!((share(9) - 0.0391).abs() < 0.008, "{}", share(9));
        assert!(a.iter().all(|&t| t < 10));
    }
}
