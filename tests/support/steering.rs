//! Starting steering for tests, and edges that register with it.

use super::control_plane::geolite2;
use super::{ServerProcess, free_port, run_strata, start_cache_node};

/// The admin credential of test steering services.
pub const ADMIN: &str = "steering-admin-credential";
const KEY: &str = "steering-edge-key-secret-0123456789abcdef";

/// A steering config on disk (a fixed port, so a restart keeps its URL).
pub struct SteeringSetup {
    /// Holds the config and the fleet store.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: String,
}

/// A steering config: fast heartbeat timeout and polls, TTL `ttl_secs`, the real GeoLite2
/// database, X-Forwarded-For trusted, and one external CDN (`cdn-b`, nothing listening).
pub fn steering_setup(ttl_secs: u64) -> SteeringSetup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steering.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN}\"\n\
             data_dir = \"{}\"\nheartbeat_timeout_ms = 1500\npoll_interval_ms = 300\nttl_secs = {ttl_secs}\n\
             client_ip_header = \"x-forwarded-for\"\ngeoip_db = \"{}\"\n\
             [[edge_keys]]\nid = \"k1\"\nsecret = \"{KEY}\"\n\
             [[cdns]]\nname = \"cdn-b\"\nurl = \"http://127.0.0.9:9\"\n",
            free_port(),
            dir.path().join("data").display(),
            geolite2().display()
        ),
    )
    .unwrap();
    SteeringSetup {
        config: config.to_str().unwrap().to_string(),
        dir,
    }
}

/// `strata steering` with this setup's config.
pub fn start_steering(s: &SteeringSetup) -> ServerProcess {
    ServerProcess::start("steering", &["--config", &s.config], &[])
}

/// The credential of edge `edge_id`, from `strata steering --issue-credential`.
pub fn credential(s: &SteeringSetup, edge_id: &str) -> String {
    let (status, out, err) = run_strata(
        &["steering", "--config", &s.config, "--issue-credential", edge_id],
        &[],
    );
    assert!(status.success(), "{err}");
    out.trim().to_string()
}

/// An edge on `ip` named `id` (its cluster is the part before the first `-`), at `site`,
/// serving `prefixes`, registering with `steering` every 300 ms; `extra_toml` is added at the
/// top of its config file, `steering_toml` inside its `[steering]` section.
#[allow(clippy::too_many_arguments)]
pub fn start_steered_edge(
    s: &SteeringSetup,
    steering: &ServerProcess,
    origin: &str,
    ip: &str,
    id: &str,
    site: (f64, f64),
    prefixes: &[&str],
    extra_toml: &str,
    steering_toml: &str,
) -> (ServerProcess, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let config = cache.path().join("edge.toml");
    let cluster = id.split('-').next().unwrap();
    std::fs::write(
        &config,
        format!(
            "node_id = \"{id}\"\n{extra_toml}\n[steering]\nurl = \"{}\"\ncredential = \"{}\"\ncluster = \"{cluster}\"\n\
             lat = {}\nlon = {}\nprefixes = {}\nheartbeat_ms = 300\n{steering_toml}\n",
            steering.url(""),
            credential(s, id),
            site.0,
            site.1,
            serde_json::to_string(prefixes).unwrap()
        ),
    )
    .unwrap();
    let listen = format!("{ip}:{}", free_port());
    let edge = start_cache_node(
        "edge",
        origin,
        &cache.path().join("cache"),
        &["--config", config.to_str().unwrap(), "--listen", &listen],
        &[],
    );
    (edge, cache)
}

/// The ids of the edges steering has in rotation now.
pub async fn in_rotation(steering: &ServerProcess) -> Vec<String> {
    let fleet: serde_json::Value = super::http1()
        .get(steering.url("/v1/admin/edges"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default();
    fleet["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter(|e| e["in_rotation"] == true)
                .map(|e| e["registration"]["edge_id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (at most 15 s) until steering has `n` edges in rotation.
pub async fn wait_in_rotation(steering: &ServerProcess, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let up = in_rotation(steering).await;
        if up.len() == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} edges never in rotation: {up:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Steering's decision for `title` and a client at 127.0.0.1 (`GET /v1/decide`).
pub async fn decide(steering: &ServerProcess, title: &str) -> serde_json::Value {
    super::http1()
        .get(steering.url(&format!("/v1/decide?title={title}&ip=127.0.0.1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Control plane config lines that point plays at `steering` and let its clones name the
/// edges on 127.0.0.2 and 127.0.0.3.
pub fn control_plane_toml(steering: &ServerProcess) -> String {
    format!(
        "steering_url = \"{}\"\npathway_hosts = [\"127.0.0.2\", \"127.0.0.3\"]",
        steering.url("")
    )
}
