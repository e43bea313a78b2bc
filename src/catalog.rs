//! `strata catalog import`: sends a catalog file to a running control plane's admin API.

use crate::api_client;
use crate::cli::CatalogImportArgs;
use anyhow::Context;
use std::process::ExitCode;
use strata_contracts::api::control_plane::{CatalogFile, ImportResult};

/// Runs `strata catalog import`.
pub fn import(args: CatalogImportArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    // Checked here first, so a bad file is named with its field before anything is sent.
    let file: CatalogFile =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&text))
            .map_err(|e| anyhow::anyhow!("{}: field `{}`: {}", args.file.display(), e.path(), e.inner()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let url = format!("{}/v1/admin/catalog", args.url.trim_end_matches('/'));
    let result: ImportResult = runtime.block_on(api_client::post_raw(&url, Some(&args.admin_token), text))?;
    println!("imported {} of {} titles", result.imported, file.titles.len());
    Ok(ExitCode::SUCCESS)
}
