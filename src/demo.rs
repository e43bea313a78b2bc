//! `strata demo` and `strata sample-content`: the whole CDN on one box, with a real title.
//!
//! The demo runs every role that exists in this process, on loopback, with embedded
//! defaults; content lives in the data directory and is made on first run.

use crate::cli::{DemoArgs, SampleContentArgs};
use crate::{origin_role, shutdown};
use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use strata_contracts::config::origin::OriginConfig;
use strata_origin::packaging::{self, SampleTitle};

/// Length of the demo's sample title, seconds.
const DEMO_TITLE_SECS: u32 = 30;

/// Runs `strata sample-content`.
pub fn sample_content(args: SampleContentArgs) -> anyhow::Result<ExitCode> {
    eprintln!("making a {} s sample title with ffmpeg in {} ...", args.duration, args.out.display());
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
        let p = args.port_base.checked_add(offset).context("--port-base is too high")?;
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
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = shutdown::on_signal()?;
        let (server, admin) = origin_role::bind(&origin).await.context(
            "starting the origin (is another demo running? pick other ports with --port-base)",
        )?;
        let base = format!("http://{}", server.local_addr());
        println!();
        println!("Strata demo is running. Open these in any HLS or DASH player:");
        println!("  HLS master playlist  {base}/sample/master.m3u8");
        println!("  DASH MPD             {base}/sample/manifest.mpd");
        println!("Operator endpoints:");
        println!("  origin metrics       http://{}/metrics", admin.local_addr());
        println!("  origin health        http://{}/healthz", admin.local_addr());
        println!("Content: {}. Press Ctrl-C to stop.", content.display());
        origin_role::serve(server, admin, shutdown).await
    })?;
    eprintln!("demo stopped");
    Ok(ExitCode::SUCCESS)
}
