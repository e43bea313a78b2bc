//! `strata steering`: config and flags in, API and admin listeners up, drain on signal; or,
//! with `--issue-credential`, print an edge's credential.

use crate::admin::{Admin, Health, HealthCheck, serve_beside};
use crate::cli::SteeringArgs;
use crate::role_config::{self, Settled};
use crate::shutdown;
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;
use strata_contracts::config::steering::{DEFAULT_TOML, SteeringConfig};
use strata_steering::Steering;
use tokio_util::sync::CancellationToken;

/// Runs `strata steering`.
pub fn main(args: SteeringArgs) -> anyhow::Result<ExitCode> {
    let config = match role_config::settle(&args.config, DEFAULT_TOML, |c| apply_flags(c, &args)) {
        Settled::Run(c) => c,
        Settled::Exit(code) => return Ok(code),
    };
    if let Some(edge_id) = &args.issue_credential {
        anyhow::ensure!(
            strata_contracts::config::steering::is_pathway_id(edge_id),
            "--issue-credential: an edge id is 1-64 characters of A-Z a-z 0-9 . _ -"
        );
        let credential = strata_steering::edge_credential(&config.edge_keys, edge_id)
            .context("no edge_keys in the config: add one to sign edge credentials with")?;
        println!("{credential}");
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown::on_signal()?;
        let (steering, admin) = bind(&config).await?;
        serve(steering, admin, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Binds steering and its admin listener.
pub async fn bind(config: &SteeringConfig) -> anyhow::Result<(Steering, Admin)> {
    let registry = prometheus::Registry::new();
    let steering = Steering::bind(config, &registry).await?;
    // Steering answers from memory; if it runs, it is healthy.
    let check: HealthCheck = Arc::new(|| Box::pin(async { Health::Ok }));
    let admin = Admin::bind(
        config.admin_listen,
        "steering",
        registry,
        check,
        axum::Router::new(),
    )
    .await?;
    Ok((steering, admin))
}

/// Serves both listeners until `shutdown`.
pub async fn serve(steering: Steering, admin: Admin, shutdown: CancellationToken) -> anyhow::Result<()> {
    serve_beside(admin, shutdown.clone(), steering.serve(shutdown)).await
}

fn apply_flags(config: &mut SteeringConfig, args: &SteeringArgs) -> bool {
    let before = config.clone();
    if let Some(a) = args.listen {
        config.listen = a;
    }
    if let Some(a) = args.admin_listen {
        config.admin_listen = a;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(g) = &args.geoip_db {
        config.geoip_db = g.clone();
    }
    *config != before
}
