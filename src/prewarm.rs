//! `strata prewarm`: start, follow, list and cancel pre-warm jobs on a running steering.

use crate::api_client;
use crate::cli::{PrewarmCommand, PrewarmStartArgs, SteeringAdmin};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::Duration;
use strata_contracts::api::control_plane::Timestamp;
use strata_contracts::api::steering::{PrewarmJob, PrewarmJobs, PrewarmRequest};

/// Runs `strata prewarm ...`.
pub fn main(command: PrewarmCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match command {
            PrewarmCommand::Start(args) => start(args).await,
            PrewarmCommand::List(admin) => {
                let jobs: PrewarmJobs =
                    api_client::get_json(&url(&admin, ""), Some(&admin.admin_token)).await?;
                for j in &jobs.jobs {
                    println!("{}", summary(j));
                }
                if jobs.jobs.is_empty() {
                    println!("no pre-warm jobs");
                }
                Ok(ExitCode::SUCCESS)
            }
            PrewarmCommand::Watch { admin, id } => follow(&admin, &id).await,
            PrewarmCommand::Cancel { admin, id } => {
                let job: PrewarmJob =
                    api_client::delete_json(&url(&admin, &format!("/{id}")), Some(&admin.admin_token))
                        .await?;
                println!("cancelling {}", job.id);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn url(admin: &SteeringAdmin, rest: &str) -> String {
    format!("{}/v1/admin/prewarm{rest}", admin.steering.trim_end_matches('/'))
}

fn parse_time(flag: &str, text: &Option<String>) -> anyhow::Result<Option<Timestamp>> {
    text.as_deref()
        .map(|t| {
            serde_json::from_value::<Timestamp>(serde_json::Value::String(t.to_string()))
                .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
        })
        .transpose()
}

async fn start(args: PrewarmStartArgs) -> anyhow::Result<ExitCode> {
    let request = PrewarmRequest {
        manifests: args.manifests,
        paths: args.paths,
        clusters: args.clusters,
        regions: args.regions,
        max_height: args.max_height,
        start: parse_time("start", &args.start)?,
        end: parse_time("end", &args.end)?,
        bandwidth_kbps: args.bandwidth_kbps,
        concurrency: args.concurrency,
        max_cache_share: args.max_cache_share,
    };
    let job: PrewarmJob =
        api_client::post_json(&url(&args.admin, ""), Some(&args.admin.admin_token), &request).await?;
    eprintln!("pre-warm job {}: {} objects per edge", job.id, job.objects);
    if args.detach {
        println!("{}", job.id);
        return Ok(ExitCode::SUCCESS);
    }
    follow(&args.admin, &job.id).await
}

fn handled(j: &PrewarmJob) -> u64 {
    j.edges
        .iter()
        .map(|e| e.done + e.skipped + e.failed + e.left)
        .sum()
}

fn summary(j: &PrewarmJob) -> String {
    let sum =
        |f: fn(&strata_contracts::api::steering::EdgeProgress) -> u64| j.edges.iter().map(f).sum::<u64>();
    format!(
        "{} {}: {} edges, {} objects each; done {}, already cached {}, failed {}, left {}, {:.1} MB{}",
        j.id,
        j.state,
        j.edges.len(),
        j.objects,
        sum(|e| e.done),
        sum(|e| e.skipped),
        sum(|e| e.failed),
        sum(|e| e.left),
        sum(|e| e.bytes) as f64 / 1e6,
        j.message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    )
}

/// Follows a job with a progress bar until it ends; exits 1 when objects failed or the job
/// did not finish.
async fn follow(admin: &SteeringAdmin, id: &str) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} objects {msg}")
            .expect("a valid template"),
    );
    loop {
        let job: PrewarmJob =
            api_client::get_json(&url(admin, &format!("/{id}")), Some(&admin.admin_token)).await?;
        bar.set_length(job.objects * job.edges.len().max(1) as u64);
        bar.set_position(handled(&job));
        bar.set_message(format!(
            "{} on {} edges, {:.1} MB",
            job.state,
            job.edges.len(),
            job.edges.iter().map(|e| e.bytes).sum::<u64>() as f64 / 1e6
        ));
        if matches!(job.state.as_str(), "done" | "cancelled" | "failed") {
            bar.finish_and_clear();
            println!("{}", summary(&job));
            let failed: u64 = job.edges.iter().map(|e| e.failed).sum();
            return Ok(if job.state == "done" && failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
