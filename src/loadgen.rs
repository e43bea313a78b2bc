//! `strata loadgen`: the command-line shell around `strata_bench::loadgen`.

use crate::cli::LoadgenArgs;
use anyhow::Context;
use std::process::ExitCode;
use std::time::Duration;
use strata_bench::cmcd::CmcdMode;
use strata_bench::loadgen::{self, FlashCrowd, Link, LoadPlan, PlayStart};
use strata_bench::trust::Trust;
use strata_bench::viewer::Trace;

/// Runs `strata loadgen`; exits 1 when any session failed.
pub fn main(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.viewers > 0, "--viewers must be at least 1");
    anyhow::ensure!(args.arrival_per_s > 0.0, "--arrival-per-s must be above 0");
    anyhow::ensure!(
        args.link_kbps.is_none_or(|k| k > 0.0),
        "--link-kbps must be above 0"
    );
    let link = match (&args.link_kbps, &args.link_trace) {
        (Some(kbps), _) => Link::Fixed(*kbps),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the link trace {}", path.display()))?;
            let trace = Trace::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Link::Trace(std::sync::Arc::new(trace))
        }
        (None, None) => Link::Unshaped,
    };
    let plan = LoadPlan {
        titles: args.titles,
        zipf_alpha: args.zipf_alpha,
        viewers: args.viewers,
        arrival_per_s: args.arrival_per_s,
        session_s: args.session_s,
        duration: Duration::from_secs(args.duration),
        http2: args.http2,
        http3: args.http3,
        trust: Trust::from_args(args.insecure, args.ca_file.as_deref())?,
        control_plane: args.control_plane.as_ref().map(|url| PlayStart {
            url: url.clone(),
            email: args.email.clone().unwrap_or_default(),
            password: args.password.clone().unwrap_or_default(),
            device: args.device.clone(),
            dash: args.dash,
        }),
        flash: match (args.flash_crowd, &args.flash_title) {
            (Some(share), Some(title)) => {
                anyhow::ensure!((0.0..=1.0).contains(&share), "--flash-crowd: a share from 0 to 1");
                Some(FlashCrowd {
                    title: title.clone(),
                    share,
                    at_s: args.flash_at,
                })
            }
            _ => None,
        },
        cmcd: match args.cmcd.as_str() {
            "query" => CmcdMode::Query,
            "header" => CmcdMode::Header,
            _ => CmcdMode::Off,
        },
        metrics: args.metrics.clone(),
        seed: args.seed,
        link,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(loadgen::run(plan, |line| eprintln!("{line}")))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "sessions          {} ({} failed)",
            report.sessions, report.failed_sessions
        );
        println!(
            "startup           p50 {:.2} s  p95 {:.2} s  p99 {:.2} s",
            report.startup_p50_s, report.startup_p95_s, report.startup_p99_s
        );
        println!("rebuffering ratio {:.4}", report.rebuffering_ratio);
        println!("average bitrate   {:.0} kbit/s", report.average_bitrate_kbps);
        println!("switches          {:.2} per minute", report.switches_per_minute);
        println!(
            "requests          {}  p50 {:.1} ms  p99 {:.1} ms  {:.1} Mbit/s",
            report.requests, report.request_p50_ms, report.request_p99_ms, report.mbit_per_sec
        );
        if let Some(c) = &report.cache {
            println!(
                "cache             hit ratio {:.3} over {} responses  upstream requests {} (origin {})",
                c.hit_ratio, c.responses, c.upstream_requests, c.origin_requests
            );
        }
        for (kind, n) in &report.errors {
            println!("errors            {kind}: {n}");
        }
    }
    Ok(if report.failed_sessions == 0 && report.sessions > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
