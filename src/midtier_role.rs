//! `strata midtier`: the edge's cache engine in the parent role, with the mid-tier's own
//! documented defaults (`configs/midtier.toml`) and flags.

use crate::cli::MidtierArgs;
use crate::edge_role;
use crate::role_config::{self, Settled};
use crate::shutdown;
use std::process::ExitCode;
use strata_contracts::config::midtier::{DEFAULT_TOML, MidtierConfig};
use strata_edge::Role;

/// Runs `strata midtier`.
pub fn main(args: MidtierArgs) -> anyhow::Result<ExitCode> {
    let config = match role_config::settle(&args.node.config, DEFAULT_TOML, |c| apply_flags(c, &args)) {
        Settled::Run(c) => c,
        Settled::Exit(code) => return Ok(code),
    };
    let support = edge_role::support_runtime()?;
    let shutdown = support.block_on(async { shutdown::on_signal() })?;
    edge_role::run(config, Role::Midtier, &support, shutdown)?;
    Ok(ExitCode::SUCCESS)
}

fn apply_flags(config: &mut MidtierConfig, args: &MidtierArgs) -> bool {
    let before = config.clone();
    edge_role::apply_node_flags(config, &args.node);
    if !args.upstream_failover.is_empty() {
        config.upstream_failover = args.upstream_failover.clone();
    }
    if let Some(t) = &args.admin_token {
        config.admin_token = t.clone();
    }
    *config != before
}
