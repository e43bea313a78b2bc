//! `strata catalog import`: sends a catalog file to a running control plane's admin API.

use crate::cli::CatalogImportArgs;
use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::process::ExitCode;
use strata_contracts::api::control_plane::{ApiError, CatalogFile, ImportResult};

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
    let result: ImportResult = runtime.block_on(async {
        let url = format!("{}/v1/admin/catalog", args.url.trim_end_matches('/'));
        let req = http::Request::post(&url)
            .header("authorization", format!("Bearer {}", args.admin_token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(text)))
            .with_context(|| format!("bad URL {url}"))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let resp = tokio::time::timeout(std::time::Duration::from_secs(60), client.request(req))
            .await
            .with_context(|| format!("{url} did not answer within 60 s"))?
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("reading the answer")?
            .to_bytes();
        if !status.is_success() {
            let reason = serde_json::from_slice::<ApiError>(&body)
                .map(|e| format!("{}: {}", e.error, e.message))
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            bail!("{url} answered {status}: {reason}");
        }
        serde_json::from_slice(&body).context("the answer is not an import result")
    })?;
    println!("imported {} of {} titles", result.imported, file.titles.len());
    Ok(ExitCode::SUCCESS)
}
