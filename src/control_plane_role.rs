//! `strata control-plane`: config and flags in, API and admin listeners up, drain on signal.

use crate::admin::{Admin, health_check, serve_beside};
use crate::cli::ControlPlaneArgs;
use crate::role_config::{self, Settled};
use crate::shutdown;
use anyhow::Context;
use std::process::ExitCode;
use strata_contracts::config::control_plane::{ControlPlaneConfig, DEFAULT_TOML};
use strata_control_plane::ControlPlane;
use tokio_util::sync::CancellationToken;

/// Runs `strata control-plane`.
pub fn main(args: ControlPlaneArgs) -> anyhow::Result<ExitCode> {
    let config = match role_config::settle(&args.config, DEFAULT_TOML, |c| apply_flags(c, &args)) {
        Settled::Run(c) => c,
        Settled::Exit(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown::on_signal()?;
        let (cp, admin) = bind(&config).await?;
        serve(cp, admin, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Binds the control plane and its admin listener (so a caller knows they are up).
pub async fn bind(config: &ControlPlaneConfig) -> anyhow::Result<(ControlPlane, Admin)> {
    let registry = prometheus::Registry::new();
    let cp = ControlPlane::bind(config, &registry).await?;
    let health = cp.health();
    let check = health_check(move || {
        let health = health.clone();
        async move {
            health
                .check()
                .await
                .map_err(|reason| format!("database: {reason}"))
        }
    });
    let admin = Admin::bind(
        config.admin_listen,
        "control-plane",
        registry,
        check,
        axum::Router::new(),
    )
    .await?;
    Ok((cp, admin))
}

/// Serves both listeners until `shutdown`.
pub async fn serve(cp: ControlPlane, admin: Admin, shutdown: CancellationToken) -> anyhow::Result<()> {
    serve_beside(admin, shutdown.clone(), cp.serve(shutdown)).await
}

fn apply_flags(config: &mut ControlPlaneConfig, args: &ControlPlaneArgs) -> bool {
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
    if let Some(d) = &args.database {
        set(&mut || config.database = d.clone());
    }
    if let Some(d) = &args.data_dir {
        set(&mut || config.data_dir = d.clone());
    }
    if let Some(u) = &args.cdn_url {
        set(&mut || config.cdn_url = u.clone());
    }
    if let Some(u) = &args.origin_url {
        set(&mut || config.origin_url = u.clone());
    }
    if let Some(g) = &args.geoip_db {
        set(&mut || config.geoip_db = g.clone());
    }
    applied
}
