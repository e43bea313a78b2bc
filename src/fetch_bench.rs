//! `strata fetch-bench`: the command-line shell around `strata_bench::fetch`.

use crate::cli::FetchBenchArgs;
use std::process::ExitCode;
use std::time::Duration;
use strata_bench::fetch::{self, FetchPlan, Protocol};

/// Runs `strata fetch-bench`; exits 1 when any request failed.
pub fn main(args: FetchBenchArgs) -> anyhow::Result<ExitCode> {
    let protocol = match args.protocol.as_str() {
        "h2" => Protocol::H2,
        "h3" => Protocol::H3,
        _ => Protocol::H1,
    };
    let plan = FetchPlan {
        urls: args.urls,
        protocol,
        connections: args.connections,
        streams: args.streams,
        duration: Duration::from_secs(args.duration),
        trust: strata_bench::trust::Trust::from_args(args.insecure, args.ca_file.as_deref())?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(fetch::run(plan))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("protocol | requests | errors | req/s    | Gbit/s | p50 ms | p90 ms | p99 ms");
        println!(
            "{:<8} | {:<8} | {:<6} | {:<8.1} | {:<6.2} | {:<6.1} | {:<6.1} | {:.1}",
            format!("{:?}", report.protocol).to_lowercase(),
            report.requests,
            report.errors,
            report.requests_per_sec,
            report.gbit_per_sec,
            report.p50_ms,
            report.p90_ms,
            report.p99_ms
        );
    }
    Ok(if report.errors == 0 && report.requests > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
