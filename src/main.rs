//! `strata`: one binary, a subcommand per role.
//!
//! This file only parses the command line, sets up logging and hands over to the role;
//! each role's wiring (config, listeners, admin, shutdown) lives in its own module.

mod admin;
mod api_client;
mod catalog;
mod cli;
mod control_plane_role;
mod cp_bench;
mod demo;
mod edge_role;
mod fetch_bench;
mod loadgen;
mod logging;
mod midtier_role;
mod origin_role;
mod prewarm;
mod role_config;
mod shutdown;
mod steering_role;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format, &cli.log);
    let outcome = match cli.command {
        cli::Command::Origin(args) => origin_role::main(args),
        cli::Command::Edge(args) => edge_role::main(args),
        cli::Command::Midtier(args) => midtier_role::main(args),
        cli::Command::ControlPlane(args) => control_plane_role::main(args),
        cli::Command::Steering(args) => steering_role::main(args),
        cli::Command::Prewarm(command) => prewarm::main(command),
        cli::Command::Catalog(cli::CatalogCommand::Import(args)) => catalog::import(args),
        cli::Command::SampleContent(args) => demo::sample_content(args),
        cli::Command::SynthCatalog(args) => demo::synth_catalog(args),
        cli::Command::Demo(args) => demo::main(args),
        cli::Command::CpBench(args) => cp_bench::main(args),
        cli::Command::FetchBench(args) => fetch_bench::main(args),
        cli::Command::Loadgen(args) => loadgen::main(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
