//! `strata demo` and `strata sample-content`: the whole CDN on one box, with a real title.
//!
//! The demo runs every role that exists in this process, on loopback, with embedded
//! defaults; content lives in the data directory and is made on first run.

use crate::cli::{DemoArgs, SampleContentArgs};
use crate::{edge_role, origin_role, shutdown};
use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use strata_contracts::config::edge::{CacheConfig, EdgeConfig};
use strata_contracts::config::origin::OriginConfig;
use strata_origin::packaging::{self, SampleTitle};

/// Length of the demo's sample title, seconds.
const DEMO_TITLE_SECS: u32 = 30;

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
    let edge = EdgeConfig {
        listen: port(1)?,
        admin_listen: port(1001)?,
        upstream: format!("http://{}", origin.listen),
        drain_timeout_secs: 5,
        cache: CacheConfig {
            dir: args.data_dir.join("edge-cache"),
            memory_mb: 128,
            disk_mb: 1024,
            ..CacheConfig::default()
        },
        ..EdgeConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let shutdown = runtime.block_on(async { shutdown::on_signal() })?;
    let (server, admin) = runtime
        .block_on(origin_role::bind(&origin))
        .context("starting the origin (is another demo running? pick other ports with --port-base)")?;
    let origin_admin = admin.local_addr();
    let origin_task = runtime.spawn(origin_role::serve(server, admin, shutdown.clone()));

    // The edge blocks the thread that runs it (pingora has its own runtimes).
    let edge_shutdown = shutdown.clone();
    let edge_config = edge.clone();
    let edge_thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let support = edge_role::support_runtime()?;
        let result = edge_role::run(
            edge_config,
            strata_edge::Role::Edge,
            &support,
            edge_shutdown.clone(),
        );
        edge_shutdown.cancel(); // an edge that fails takes the demo down with it
        result
    });
    let up = wait_for(edge.listen, Duration::from_secs(30));
    if up {
        let base = format!("http://{}", edge.listen);
        println!();
        println!("Strata demo is running. Open these in any HLS or DASH player:");
        println!("  HLS master playlist  {base}/sample/master.m3u8");
        println!("  DASH MPD             {base}/sample/manifest.mpd");
        println!("Operator endpoints:");
        println!("  edge metrics         http://{}/metrics", edge.admin_listen);
        println!("  edge health          http://{}/healthz", edge.admin_listen);
        println!("  origin metrics       http://{origin_admin}/metrics");
        println!("  origin health        http://{origin_admin}/healthz");
        println!(
            "  origin (no cache)    http://{}/sample/master.m3u8",
            origin.listen
        );
        println!("Content: {}. Press Ctrl-C to stop.", content.display());
    } else {
        shutdown.cancel();
    }
    let edge_result = edge_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the edge thread panicked"))?;
    runtime.block_on(origin_task).context("origin task")??;
    edge_result.context("edge")?;
    anyhow::ensure!(up, "the edge did not start listening on {}", edge.listen);
    eprintln!("demo stopped");
    Ok(ExitCode::SUCCESS)
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
