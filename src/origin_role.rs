//! `strata origin`: config and flags in, origin and admin listeners up, drain on signal.

use crate::admin::{Admin, health_check, serve_beside};
use crate::cli::OriginArgs;
use crate::role_config::{self, Settled};
use crate::shutdown;
use anyhow::Context;
use std::process::ExitCode;
use strata_contracts::config::origin::{Backend, DEFAULT_TOML, OriginConfig};
use strata_origin::OriginServer;
use tokio_util::sync::CancellationToken;

/// Runs `strata origin`.
pub fn main(args: OriginArgs) -> anyhow::Result<ExitCode> {
    let config = match role_config::settle(&args.config, DEFAULT_TOML, |c| apply_flags(c, &args)) {
        Settled::Run(c) => c,
        Settled::Exit(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown::on_signal()?;
        run(config, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Starts the origin and its admin listener and runs them until `shutdown`.
pub async fn run(config: OriginConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (origin, admin) = bind(&config).await?;
    serve(origin, admin, shutdown).await
}

/// Binds the origin's listeners (so a caller knows they are up before serving).
pub async fn bind(config: &OriginConfig) -> anyhow::Result<(OriginServer, Admin)> {
    let registry = prometheus::Registry::new();
    let origin = OriginServer::bind(config, &registry).await?;
    let health = origin.health();
    let check = health_check(move || {
        let health = health.clone();
        async move { health.check().await }
    });
    let admin = Admin::bind(
        config.admin_listen,
        "origin",
        registry,
        check,
        axum::Router::new(),
    )
    .await?;
    Ok((origin, admin))
}

/// Serves both listeners until `shutdown`, then waits for the origin to drain.
pub async fn serve(origin: OriginServer, admin: Admin, shutdown: CancellationToken) -> anyhow::Result<()> {
    serve_beside(admin, shutdown.clone(), origin.serve(shutdown)).await
}

fn apply_flags(config: &mut OriginConfig, args: &OriginArgs) -> bool {
    let mut applied = false;
    let mut set = |f: &mut dyn FnMut()| {
        f();
        applied = true;
    };
    if let Some(a) = args.listen {
        set(&mut || config.listen = a);
    }
    if let Some(a) = args.admin_listen {
        set(&mut || config.admin_listen = a);
    }
    if let Some(root) = &args.root {
        set(&mut || {
            config.storage.backend = Backend::Local;
            config.storage.root = root.clone();
        });
    }
    if let Some(bucket) = &args.s3_bucket {
        set(&mut || {
            config.storage.backend = Backend::S3;
            config.storage.s3.bucket = bucket.clone();
        });
    }
    if let Some(e) = &args.s3_endpoint {
        set(&mut || config.storage.s3.endpoint = e.clone());
    }
    if let Some(r) = &args.s3_region {
        set(&mut || config.storage.s3.region = r.clone());
    }
    if let Some(p) = &args.s3_prefix {
        set(&mut || config.storage.s3.prefix = p.clone());
    }
    if args.s3_allow_http {
        set(&mut || config.storage.s3.allow_http = true);
    }
    applied
}
