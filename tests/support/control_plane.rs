//! Starting the control plane for tests: an origin with the sample title, a token-enforcing
//! edge in front of it, the control plane pointed at both, and a small JSON API client.

use super::{ServerProcess, base_url, sample_content_root, start_edge, start_origin};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use strata_contracts::token::TokenKey;

/// The admin credential of test control planes.
pub const ADMIN: &str = "admin-credential-for-tests";

/// The token key shared by the test edge and control plane.
pub fn key() -> TokenKey {
    TokenKey {
        id: "k1".into(),
        secret: "control-plane-test-secret-0123456789".into(),
    }
}

/// The real GeoLite2-City database from PyPI's `maxminddb-geolite2`.
pub fn geolite2() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "from _maxminddb_geolite2 import geolite2_database; print(geolite2_database())",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the GeoLite2 database is missing: run .ci/install-deps test (pip install maxminddb-geolite2==2018.703)"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// An origin and an edge.
pub struct Cdn {
    _origin: ServerProcess,
    pub edge: ServerProcess,
    pub origin_url: String,
    pub content: PathBuf,
    _cache: tempfile::TempDir,
    _edge_dir: tempfile::TempDir,
}

/// An edge config section that enforces playback tokens signed by [`key`].
pub fn enforcing_token_toml() -> String {
    let k = key();
    format!(
        "[token]\nenforce = true\n[[token.keys]]\nid = \"{}\"\nsecret = \"{}\"\n",
        k.id, k.secret
    )
}

/// An origin with the sample title and an edge in front of it that enforces tokens.
pub fn start_cdn() -> Cdn {
    let content = sample_content_root();
    let origin = start_origin(&content);
    let edge_dir = tempfile::tempdir().unwrap();
    let config = edge_dir.path().join("edge.toml");
    std::fs::write(&config, enforcing_token_toml()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let edge = start_edge(
        &base_url(&origin),
        cache.path(),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    Cdn {
        origin_url: base_url(&origin),
        _origin: origin,
        edge,
        content,
        _cache: cache,
        _edge_dir: edge_dir,
    }
}

/// `strata control-plane` on `database` (empty: SQLite in `data_dir`) for `cdn`, with the
/// default device classes and a `watch` class capped at 360p.
pub fn start_control_plane(cdn: &Cdn, database: &str, data_dir: &Path) -> ServerProcess {
    start_control_plane_with(&cdn.edge.url(""), &cdn.origin_url, database, data_dir, "")
}

/// [`start_control_plane`] with segment URLs at `cdn_url`, manifests read from `origin_url`,
/// and `extra_toml` at the top of its config (for example `steering_url = "..."`).
pub fn start_control_plane_with(
    cdn_url: &str,
    origin_url: &str,
    database: &str,
    data_dir: &Path,
    extra_toml: &str,
) -> ServerProcess {
    let k = key();
    let config = data_dir.join("control-plane.toml");
    std::fs::write(
        &config,
        format!(
            "{extra_toml}\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN}\"\nsearch_refresh_secs = 1\n\
             client_ip_header = \"x-forwarded-for\"\n\
             [[token_keys]]\nid = \"{}\"\nsecret = \"{}\"\n\
             [[devices]]\nname = \"phone\"\nmax_height = 720\n[[devices]]\nname = \"web\"\nmax_height = 1080\n\
             [[devices]]\nname = \"tv\"\nmax_height = 2160\n[[devices]]\nname = \"watch\"\nmax_height = 360\n",
            k.id, k.secret
        ),
    )
    .unwrap();
    let geo = geolite2();
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--cdn-url",
        cdn_url,
        "--origin-url",
        origin_url,
        "--geoip-db",
        geo.to_str().unwrap(),
    ];
    if !database.is_empty() {
        args.extend(["--database", database]);
    }
    ServerProcess::start("control-plane", &args, &[])
}

/// A catalog title over the sample's packaged manifests.
pub fn title(id: &str, licensing: Value) -> Value {
    json!({
        "id": id,
        "name": format!("The {id} title"),
        "synopsis": "A synthetic test pattern with a tone.",
        "genres": ["Documentary"],
        "cast": ["Test Card"],
        "year": 2026,
        "runtime_min": 1,
        "hls": "/sample/master.m3u8",
        "dash": "/sample/manifest.mpd",
        "renditions": [
            {"id": "0", "codec": "avc1.4d401e", "width": 640, "height": 360, "bitrate": 800000},
            {"id": "1", "codec": "avc1.4d401f", "width": 960, "height": 540, "bitrate": 1600000},
            {"id": "2", "codec": "avc1.4d401f", "width": 1280, "height": 720, "bitrate": 3000000},
            {"id": "3", "codec": "mp4a.40.2", "bitrate": 128000}
        ],
        "licensing": licensing,
    })
}

/// A window covering every test run.
pub const ALWAYS: (&str, &str) = ("2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z");

/// A JSON client for the control plane's API.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    /// Sends a request; the answer as JSON (or a JSON string of its text).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<&str>,
        xff: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        if let Some(ip) = xff {
            req = req.header("x-forwarded-for", ip);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Starts a play from `ip` (a trusted X-Forwarded-For).
    pub async fn play(&self, session: &str, ip: &str, title: &str, device: &str) -> (StatusCode, Value) {
        self.send(
            reqwest::Method::POST,
            "/v1/playback",
            Some(session),
            Some(ip),
            Some(json!({"title": title, "device": device})),
        )
        .await
    }

    /// Puts the sample title (no licensing rules) in the catalog, makes an account of `tier`
    /// for `email` and signs it in; returns the session token.
    pub async fn sample_and_viewer(&self, email: &str, tier: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::PUT,
                "/v1/admin/titles/sample",
                Some(ADMIN),
                None,
                Some(title("sample", json!({}))),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/v1/admin/accounts",
                Some(ADMIN),
                None,
                Some(json!({"email": email, "password": "long enough", "tier": tier})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.sign_in(email, "long enough").await
    }

    /// Signs in and returns the session token.
    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/v1/sessions",
                None,
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["session"].as_str().unwrap().to_string()
    }
}
