//! `strata edge`: config and flags in, cache opened, pingora serving, drain on signal.
//!
//! pingora runs its own runtimes and blocks the thread that runs it, so the edge keeps a
//! second, small runtime for everything else: foyer's background tasks (which must outlive
//! any request), the admin listener and the signal handler.

use crate::admin::{Admin, Health, HealthCheck};
use crate::cli::EdgeArgs;
use crate::role_config::{self, Settled};
use crate::shutdown;
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;
use strata_contracts::config::edge::{DEFAULT_TOML, EdgeConfig};
use strata_edge::Edge;
use tokio_util::sync::CancellationToken;

/// Runs `strata edge`.
pub fn main(args: EdgeArgs) -> anyhow::Result<ExitCode> {
    let config = match role_config::settle(&args.config, DEFAULT_TOML, |c| apply_flags(c, &args)) {
        Settled::Run(c) => c,
        Settled::Exit(code) => return Ok(code),
    };
    let support = support_runtime()?;
    let shutdown = support.block_on(async { shutdown::on_signal() })?;
    run(config, &support, shutdown)?;
    Ok(ExitCode::SUCCESS)
}

/// The runtime for foyer, the admin listener and signals; it must outlive the edge.
pub fn support_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("edge-support")
        .enable_all()
        .build()
        .context("starting the edge's support runtime")
}

/// Opens the cache, starts the admin listener, serves until `shutdown`, then closes the
/// cache so that pending disk writes land. Blocks the calling thread.
pub fn run(
    config: EdgeConfig,
    support: &tokio::runtime::Runtime,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let admin_addr = config.admin_listen;
    let (edge, admin) = support.block_on(async {
        let edge = Edge::open(config, &registry, support.handle().clone()).await?;
        let store = edge.store();
        let check: HealthCheck = Arc::new(move || {
            let health = match store.disk_health() {
                Ok(()) => Health::Ok,
                Err(reason) => Health::Degraded(reason),
            };
            Box::pin(async move { health })
        });
        let admin = Admin::bind(admin_addr, "edge", registry.clone(), check, edge.admin_routes()).await?;
        anyhow::Ok((edge, admin))
    })?;
    let admin_task = support.spawn(admin.serve(shutdown.clone()));
    let store = edge.store();
    edge.serve(shutdown.clone())?;
    // pingora has returned: no request is in flight any more.
    shutdown.cancel();
    support.block_on(async {
        store.close().await;
        admin_task.await.context("admin listener task")?
    })?;
    Ok(())
}

fn apply_flags(config: &mut EdgeConfig, args: &EdgeArgs) -> bool {
    let before = config.clone();
    if let Some(a) = args.listen {
        config.listen = a;
    }
    if let Some(a) = args.admin_listen {
        config.admin_listen = a;
    }
    if let Some(a) = args.tls_listen {
        config.tls_listen = Some(a);
    }
    if let Some(c) = &args.tls_cert {
        config.tls_cert = c.clone();
    }
    if let Some(k) = &args.tls_key {
        config.tls_key = k.clone();
    }
    if let Some(u) = &args.upstream {
        config.upstream = u.clone();
    }
    if let Some(d) = &args.cache_dir {
        config.cache.dir = d.clone();
    }
    if let Some(m) = args.memory_mb {
        config.cache.memory_mb = m;
    }
    if let Some(d) = args.disk_mb {
        config.cache.disk_mb = d;
    }
    if let Some(t) = args.threads {
        config.threads = t;
    }
    if let Some(t) = &args.admin_token {
        config.admin_token = t.clone();
    }
    *config != before
}
