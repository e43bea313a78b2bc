//! `strata demo` and `strata sample-content`: the whole CDN on one box, with a real title.
//!
//! The demo runs every role that exists in this process, on loopback, with embedded
//! defaults (origin, one mid-tier, two edges whose parent it is); content lives in the data
//! directory and is made on first run.

use crate::cli::{DemoArgs, SampleContentArgs, SynthCatalogArgs};
use crate::{api_client, control_plane_role, edge_role, origin_role, shutdown, steering_role};
use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use strata_contracts::api::control_plane::{NewAccount, PlaybackResponse, SignInResponse, Title};
use strata_contracts::config::control_plane::ControlPlaneConfig;
use strata_contracts::config::edge::{CacheConfig, EdgeConfig, ParentConfig, SteeringLink, TokenConfig};
use strata_contracts::config::origin::OriginConfig;
use strata_contracts::config::steering::SteeringConfig;
use strata_contracts::token::sign_edge;
use strata_edge::Role;
use strata_origin::packaging::{self, SampleTitle};
use tokio_util::sync::CancellationToken;

/// Length of the demo's sample title, seconds.
const DEMO_TITLE_SECS: u32 = 30;

/// The demo's viewer account.
const DEMO_EMAIL: &str = "demo@strata.test";
const DEMO_PASSWORD: &str = "demo-password";

/// The sample title as the demo's catalog lists it.
fn sample_title() -> Title {
    Title {
        id: packaging::SAMPLE_TITLE.into(),
        name: "Strata Sample".into(),
        synopsis: "A synthetic test pattern with a tone, packaged as a three-rung CMAF ladder.".into(),
        genres: vec!["Documentary".into()],
        cast: vec!["Test Card".into()],
        year: 2026,
        runtime_min: 1,
        artwork: String::new(),
        hls: format!("/{}/master.m3u8", packaging::SAMPLE_TITLE),
        dash: format!("/{}/manifest.mpd", packaging::SAMPLE_TITLE),
        renditions: packaging::sample_renditions(),
        licensing: Default::default(),
    }
}

/// Runs `strata sample-content`.
pub fn sample_content(args: SampleContentArgs) -> anyhow::Result<ExitCode> {
    eprintln!(
        "making a {} s sample title with ffmpeg in {} ...",
        args.duration,
        args.out.display()
    );
    let title = packaging::make_sample_title(&args.out, args.duration)?;
    println!("HLS master playlist: {}", title.master_playlist.display());
    println!("DASH MPD:            {}", title.mpd.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata synth-catalog`.
pub fn synth_catalog(args: SynthCatalogArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1..=100_000).contains(&args.titles) && (1..=3600).contains(&args.duration),
        "--titles must be 1-100000 and --duration 1-3600 seconds"
    );
    let plan = strata_origin::synthetic::SyntheticPlan {
        titles: args.titles,
        duration_secs: args.duration,
        seed: args.seed,
    };
    eprintln!(
        "writing {} synthetic titles of {} s into {} ...",
        args.titles,
        args.duration,
        args.out.display()
    );
    let made = strata_origin::synthetic::write(&args.out, &plan)
        .with_context(|| format!("writing into {}", args.out.display()))?;
    println!(
        "{} titles, {} files, {:.1} MB in {}; catalog for `strata catalog import`: {}",
        made.titles.len(),
        made.files,
        made.bytes as f64 / 1e6,
        args.out.display(),
        args.out.join("catalog.json").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata demo`.
pub fn main(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let content = args.data_dir.join("content");
    let title = SampleTitle::under(&content);
    if !title.exists() {
        eprintln!(
            "first run: making a {DEMO_TITLE_SECS} s sample title with ffmpeg in {} (about 15 s) ...",
            content.display()
        );
        packaging::make_sample_title(&content, DEMO_TITLE_SECS)?;
    }
    let port = |offset: u16| -> anyhow::Result<SocketAddr> {
        let p = args
            .port_base
            .checked_add(offset)
            .context("--port-base is too high")?;
        Ok(SocketAddr::new(args.host, p))
    };
    let origin = OriginConfig {
        listen: port(0)?,
        admin_listen: port(1000)?,
        drain_timeout_secs: 5,
        storage: strata_contracts::config::origin::StorageConfig {
            root: content.clone(),
            ..Default::default()
        },
        ..OriginConfig::default()
    };
    let cache_node = |listen: u16, name: &str, upstream: String, parents: Vec<ParentConfig>, memory_mb| {
        anyhow::Ok(EdgeConfig {
            listen: port(listen)?,
            admin_listen: port(listen + 1000)?,
            node_id: format!("demo-{name}"),
            upstream,
            parents,
            drain_timeout_secs: 5,
            cache: CacheConfig {
                dir: args.data_dir.join(format!("{name}-cache")),
                memory_mb,
                disk_mb: 1024,
                ..CacheConfig::default()
            },
            ..EdgeConfig::default()
        })
    };
    let origin_url = format!("http://{}", origin.listen);
    let midtier = cache_node(2, "midtier", origin_url.clone(), Vec::new(), 128)?;
    let parent = vec![ParentConfig {
        url: format!("http://{}", midtier.listen),
        weight: 1,
    }];
    let mut edges = [
        cache_node(1, "edge-1", origin_url.clone(), parent.clone(), 64)?,
        cache_node(3, "edge-2", origin_url, parent, 64)?,
    ];
    // Edge 1 also serves HTTPS and HTTP/3, with a self-signed certificate kept in the data
    // directory (so a browser told to trust it keeps trusting it across runs).
    let tls = DemoCertificate::load_or_make(&args.data_dir.join("tls"))?;
    // Edges serve only requests that carry a playback token from the control plane.
    let cp_dir = args.data_dir.join("control-plane");
    let token_key = strata_control_plane::load_or_make_key(&cp_dir)?;
    for edge in &mut edges {
        edge.token = TokenConfig {
            enforce: true,
            keys: vec![token_key.clone()],
            exempt_paths: Vec::new(),
        };
    }
    let admin_token = format!("demo-admin-{}", std::process::id());
    // Steering: both edges register and send heartbeats, as two sites (London, Frankfurt).
    let edge_key = strata_control_plane::load_or_make_key(&args.data_dir.join("steering"))?;
    let steering = SteeringConfig {
        listen: port(20)?,
        admin_listen: port(1020)?,
        data_dir: args.data_dir.join("steering"),
        admin_token: admin_token.clone(),
        edge_keys: vec![edge_key.clone()],
        ..SteeringConfig::default()
    };
    for (edge, (cluster, lat, lon)) in edges
        .iter_mut()
        .zip([("london", 51.51, -0.13), ("frankfurt", 50.11, 8.68)])
    {
        edge.steering = SteeringLink {
            url: format!("http://{}", steering.listen),
            credential: sign_edge(&edge_key, &edge.node_id),
            cluster: cluster.into(),
            lat,
            lon,
            heartbeat_ms: 1000,
            ..SteeringLink::default()
        };
    }
    let control_plane = ControlPlaneConfig {
        listen: port(10)?,
        admin_listen: port(1010)?,
        data_dir: cp_dir,
        admin_token: admin_token.clone(),
        cdn_url: format!("http://{}", edges[0].listen),
        origin_url: format!("http://{}", origin.listen),
        // Manifests carry the steering tag: players that speak Content Steering move between
        // the edges as steering says; others stay on edge 1.
        steering_url: format!("http://{}", steering.listen),
        token_keys: vec![token_key],
        ..ControlPlaneConfig::default()
    };
    edges[0].tls_listen = Some(port(4)?);
    edges[0].tls_cert = tls.cert.clone();
    edges[0].tls_key = tls.key.clone();
    let runtime = tokio::runtime::Runtime::new()?;
    let shutdown = runtime.block_on(async { shutdown::on_signal() })?;
    let (server, admin) = runtime
        .block_on(origin_role::bind(&origin))
        .context("starting the origin (is another demo running? pick other ports with --port-base)")?;
    let origin_admin = admin.local_addr();
    let origin_task = runtime.spawn(origin_role::serve(server, admin, shutdown.clone()));
    let steering_task = runtime.block_on(async {
        let (st, admin) = steering_role::bind(&steering)
            .await
            .context("starting steering")?;
        anyhow::Ok(tokio::spawn(steering_role::serve(st, admin, shutdown.clone())))
    })?;
    let cp_task = runtime.block_on(async {
        let (cp, admin) = control_plane_role::bind(&control_plane)
            .await
            .context("starting the control plane")?;
        cp.import_titles(&[sample_title()]).await?;
        cp.ensure_account(&NewAccount {
            email: DEMO_EMAIL.into(),
            password: DEMO_PASSWORD.into(),
            tier: "premium".into(),
            profiles: vec!["Demo".into()],
        })
        .await?;
        anyhow::Ok(tokio::spawn(control_plane_role::serve(
            cp,
            admin,
            shutdown.clone(),
        )))
    })?;

    // Each cache node blocks the thread that runs it (pingora has its own runtimes).
    let mut threads = vec![spawn_cache_node(midtier.clone(), Role::Midtier, &shutdown)];
    threads.extend(
        edges
            .iter()
            .map(|e| spawn_cache_node(e.clone(), Role::Edge, &shutdown)),
    );
    let up = [&midtier, &edges[0], &edges[1]]
        .iter()
        .all(|c| wait_for(c.listen, Duration::from_secs(30)));
    let play = if up {
        runtime.block_on(wait_for_steering(&format!("http://{}", steering.listen)));
        runtime
            .block_on(start_play(&format!("http://{}", control_plane.listen)))
            .map_err(|e| eprintln!("error: starting the demo's play: {e:#}"))
            .ok()
    } else {
        None
    };
    let up = up && play.is_some();
    if let Some(play) = &play {
        let cp = format!("http://{}", control_plane.listen);
        println!();
        println!("Strata demo is running: control plane, origin -> mid-tier -> two edges.");
        println!(
            "A play of the sample title for {DEMO_EMAIL} (valid until {}); open in any HLS or DASH player:",
            serde_json::to_string(&play.expires)?.trim_matches('"')
        );
        println!(
            "  HLS master playlist  {}",
            play.hls_url.as_deref().unwrap_or_default()
        );
        println!(
            "  DASH MPD             {}",
            play.dash_url.as_deref().unwrap_or_default()
        );
        println!(
            "Its segments come from {} (steering's choice) with the play's token; edges refuse requests without one.",
            play.cdn
        );
        println!("Start another play (password {DEMO_PASSWORD}):");
        println!(
            "  curl -s -d '{{\"email\":\"{DEMO_EMAIL}\",\"password\":\"{DEMO_PASSWORD}\"}}' {cp}/v1/sessions"
        );
        println!(
            "  curl -s -H 'Authorization: Bearer SESSION' -d '{{\"title\":\"sample\",\"device\":\"web\"}}' {cp}/v1/playback"
        );
        println!("  catalog              {cp}/v1/titles  (admin credential: {admin_token})");
        let token = &play.token;
        for (i, edge) in edges.iter().enumerate() {
            let base = format!("http://{}", edge.listen);
            println!(
                "  edge {} segment        {base}/sample/seg-0-00001.m4s?token={token}",
                i + 1
            );
        }
        if let Some(https) = edges[0].tls_listen {
            println!(
                "  edge 1 HTTPS (HTTP/1.1, HTTP/2, HTTP/3)  https://{https}/sample/seg-0-00001.m4s?token={token}"
            );
            println!(
                "  Its certificate is self-signed ({}). To play over HTTP/3 in Chromium, start it with",
                tls.cert.display()
            );
            println!(
                "    --origin-to-force-quic-on={https} --ignore-certificate-errors-spki-list={}",
                tls.spki_sha256
            );
        }
        let st = format!("http://{}", steering.listen);
        println!("Steering (both edges register there; nearest site first, one home edge per title):");
        println!(
            "  steering manifest    {st}/v1/steering/{}?title=sample",
            play.play
        );
        println!(
            "  302 to the best edge {st}/v1/route/sample/seg-0-00001.m4s?token={}",
            play.token
        );
        println!("  fleet                curl -H 'Authorization: Bearer {admin_token}' {st}/v1/admin/edges");
        println!("Operator endpoints:");
        for (name, admin) in [
            ("control plane", control_plane.admin_listen),
            ("steering", steering.admin_listen),
            ("edge 1", edges[0].admin_listen),
            ("edge 2", edges[1].admin_listen),
            ("midtier", midtier.admin_listen),
            ("origin", origin_admin),
        ] {
            println!("  {:<22} http://{admin}/metrics", format!("{name} metrics"));
            println!("  {:<22} http://{admin}/healthz", format!("{name} health"));
        }
        println!(
            "  origin (no cache)      http://{}/sample/master.m3u8",
            origin.listen
        );
        println!("Content: {}. Press Ctrl-C to stop.", content.display());
    } else {
        shutdown.cancel();
    }
    let mut failure = None;
    for thread in threads {
        let result = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a cache node's thread panicked"))?;
        if let Err(e) = result {
            failure.get_or_insert(e);
        }
    }
    runtime.block_on(origin_task).context("origin task")??;
    runtime.block_on(cp_task).context("control plane task")??;
    runtime.block_on(steering_task).context("steering task")??;
    if let Some(e) = failure {
        return Err(e);
    }
    anyhow::ensure!(up, "the demo did not come up (see the errors above)");
    eprintln!("demo stopped");
    Ok(ExitCode::SUCCESS)
}

/// Waits (at most 5 s) until steering has an edge in rotation, so that the demo's play starts
/// on steering's choice rather than on the control plane's fallback.
async fn wait_for_steering(steering: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let decision: anyhow::Result<strata_contracts::api::steering::Decision> =
            api_client::get_json(&format!("{steering}/v1/decide?title=sample&ip=127.0.0.1"), None).await;
        if decision.is_ok_and(|d| !d.pathways.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Signs the demo account in and starts a play of the sample title, over the real API.
async fn start_play(cp: &str) -> anyhow::Result<PlaybackResponse> {
    let session: SignInResponse = api_client::post_json(
        &format!("{cp}/v1/sessions"),
        None,
        &serde_json::json!({"email": DEMO_EMAIL, "password": DEMO_PASSWORD}),
    )
    .await?;
    api_client::post_json(
        &format!("{cp}/v1/playback"),
        Some(&session.session),
        &serde_json::json!({"title": packaging::SAMPLE_TITLE, "device": "tv"}),
    )
    .await
}

/// Runs a cache node on its own thread; a node that fails takes the demo down with it.
fn spawn_cache_node(
    config: EdgeConfig,
    role: Role,
    shutdown: &CancellationToken,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    let shutdown = shutdown.clone();
    std::thread::spawn(move || {
        let support = edge_role::support_runtime()?;
        let listen = config.listen;
        let result = edge_role::run(config, role, &support, shutdown.clone())
            .with_context(|| format!("{} on {listen}", role.name()));
        shutdown.cancel();
        result
    })
}
/// The demo's self-signed certificate for 127.0.0.1 and localhost.
struct DemoCertificate {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    /// Base64 SHA-256 of the public key (SPKI), as Chromium's trust flag wants it.
    spki_sha256: String,
}

impl DemoCertificate {
    /// Reuses the certificate in `dir`, or makes one there.
    fn load_or_make(dir: &std::path::Path) -> anyhow::Result<Self> {
        use base64::Engine;
        use rcgen::PublicKeyData;
        use sha2::Digest;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let key_pair = if cert.is_file() && key.is_file() {
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(&key)?).context("reading the demo's TLS key")?
        } else {
            std::fs::create_dir_all(dir)?;
            let made =
                rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                    .context("making the demo's certificate")?;
            std::fs::write(&cert, made.cert.pem())?;
            std::fs::write(&key, made.signing_key.serialize_pem())?;
            made.signing_key
        };
        let spki = sha2::Sha256::digest(key_pair.subject_public_key_info());
        Ok(Self {
            cert,
            key,
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki),
        })
    }
}

/// Waits until something accepts connections on `addr`.
fn wait_for(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
