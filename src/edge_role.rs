//! `strata edge` (and the cache engine's shell for `strata midtier`): config and flags in,
//! cache opened, pingora serving, drain on signal.
//!
//! pingora runs its own runtimes and blocks the thread that runs it, so a cache node keeps a
//! second, small runtime for everything else: foyer's background tasks (which must outlive
//! any request), the admin listener and the signal handler.

use crate::admin::{Admin, Health, HealthCheck};
use crate::cli::{CacheNodeArgs, EdgeArgs};
use crate::role_config::{self, Settled};
use crate::shutdown;
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;
use strata_contracts::config::edge::{DEFAULT_TOML, EdgeConfig, ParentConfig};
use strata_edge::{Edge, Role};
use tokio_util::sync::CancellationToken;

/// Runs `strata edge`.
pub fn main(args: EdgeArgs) -> anyhow::Result<ExitCode> {
    let config = match role_config::settle(&args.node.config, DEFAULT_TOML, |c| apply_flags(c, &args)) {
        Settled::Run(c) => c,
        Settled::Exit(code) => return Ok(code),
    };
    let support = support_runtime()?;
    let shutdown = support.block_on(async { shutdown::on_signal() })?;
    run(config, Role::Edge, &support, shutdown)?;
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
    role: Role,
    support: &tokio::runtime::Runtime,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let admin_addr = config.admin_listen;
    let (edge, admin) = support.block_on(async {
        let edge = Edge::open(config, role, &registry, support.handle().clone()).await?;
        let health = edge.health_check();
        let check: HealthCheck = Arc::new(move || {
            let health = match health() {
                Ok(()) => Health::Ok,
                Err(reason) => Health::Degraded(reason),
            };
            Box::pin(async move { health })
        });
        let admin = Admin::bind(
            admin_addr,
            role.name(),
            registry.clone(),
            check,
            edge.admin_routes(),
        )
        .await?;
        anyhow::Ok((edge, admin))
    })?;
    edge.link_to_steering(admin.local_addr(), shutdown.clone());
    let admin_task = support.spawn(admin.serve(shutdown.clone()));
    let store = edge.store();
    edge.serve(shutdown.clone())?;
    // The edge has drained: nothing is in flight (or the drain timeout has passed).
    shutdown.cancel();
    support.block_on(async {
        store.close().await;
        admin_task.await.context("admin listener task")?
    })?;
    Ok(())
}

fn apply_flags(config: &mut EdgeConfig, args: &EdgeArgs) -> bool {
    let before = config.clone();
    apply_node_flags(config, &args.node);
    if !args.parents.is_empty() {
        config.parents = args
            .parents
            .iter()
            .map(|url| ParentConfig {
                url: url.clone(),
                weight: 1,
            })
            .collect();
    }
    if let Some(t) = &args.admin_token {
        config.admin_token = t.clone();
    }
    *config != before
}

/// Applies the flags every cache node takes.
pub fn apply_node_flags(config: &mut EdgeConfig, args: &CacheNodeArgs) {
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
    if let Some(n) = &args.node_id {
        config.node_id = n.clone();
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
    if args.cache_dir.is_some() || args.disk_mb.is_some() {
        // The flags name one disk: they replace a config's list of disks.
        config.cache.disks.clear();
    }
    if let Some(t) = args.threads {
        config.threads = t;
    }
    if let Some(n) = args.disk_admission {
        config.cache.disk_admission_requests = n;
    }
    if args.disk_admission_by_size {
        config.cache.disk_admission_by_size = true;
    }
    if let Some(kb) = args.slice_kb {
        config.cache.slice_kb = kb;
    }
}
