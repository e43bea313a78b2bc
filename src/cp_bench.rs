//! `strata cp-bench`: the command-line shell around `strata_bench::control_plane`.

use crate::cli::CpBenchArgs;
use anyhow::bail;
use std::process::ExitCode;
use std::time::Duration;
use strata_bench::control_plane::{self, CpBenchPlan};

/// Runs `strata cp-bench`; exits 1 when any request failed.
pub fn main(args: CpBenchArgs) -> anyhow::Result<ExitCode> {
    if args.titles == 0 || args.concurrency == 0 || args.concurrency > 1024 {
        bail!("--titles must be at least 1 and --concurrency 1-1024");
    }
    let plan = CpBenchPlan {
        url: args.url,
        admin_token: args.admin_token,
        titles: args.titles,
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.duration),
        seed: args.seed,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(control_plane::run(plan, |line| eprintln!("cp-bench: {line}")))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", control_plane::table(&report));
    }
    let failed = report.phases.iter().any(|p| p.errors > 0 || p.ok == 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
