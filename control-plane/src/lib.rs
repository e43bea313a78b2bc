//! Strata's control plane: everything a player asks before the first video byte.
//!
//! - `store`: catalog, accounts, profiles and plays in SQLite or PostgreSQL (sqlx, one schema)
//! - `accounts`: argon2id passwords and signed session tokens
//! - `entitlement`: the licensing decision (tier, device, country window, blackout), pure
//! - `geo`: the client's country from a MaxMind database
//! - `packaged` + `manifest`: per-play HLS and DASH manifests from the packaged ones,
//!   renditions filtered and segment URLs tokenized for the edge
//! - `search`: the tantivy index behind `/v1/search`
//! - `api`: the axum routes; `metrics`: `strata_control_plane_*`

mod accounts;
mod api;
mod entitlement;
mod geo;
mod manifest;
mod metrics;
mod packaged;
mod search;
mod steering_client;
mod store;

pub use store::{Backend, Store, StoreError};

use api::App;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use strata_contracts::config::control_plane::ControlPlaneConfig;
use strata_contracts::token::{KeyRing, TokenKey};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long packaged manifests are kept before they are read again.
const PACKAGED_KEEP: Duration = Duration::from_secs(5);

/// Why the control plane could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The GeoIP database could not be read.
    #[error("geoip_db {path}: {error}")]
    Geo {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The generated signing key could not be read or written.
    #[error("token key in {path}: {error}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The search index could not be built.
    #[error("{0}")]
    Search(String),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// A bound control plane.
pub struct ControlPlane {
    listener: TcpListener,
    app: Arc<App>,
}

/// Checks whether the control plane can serve (its database answers).
#[derive(Clone)]
pub struct HealthCheck {
    store: Store,
}

impl HealthCheck {
    /// `Err(reason)` when the database does not answer.
    pub async fn check(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}

impl ControlPlane {
    /// Opens the database (running migrations), loads keys and the GeoIP database, and
    /// binds the API listener.
    pub async fn bind(
        config: &ControlPlaneConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, ControlPlaneError> {
        let url = if config.database.is_empty() {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| ControlPlaneError::Key {
                path: config.data_dir.display().to_string(),
                error: e.to_string(),
            })?;
            Store::sqlite_url_in(&config.data_dir)
        } else {
            config.database.clone()
        };
        let store = Store::open(&url).await?;
        let keys = if config.token_keys.is_empty() {
            vec![load_or_make_key(&config.data_dir)?]
        } else {
            config.token_keys.clone()
        };
        let ring = KeyRing::new(&keys).map_err(|e| ControlPlaneError::Key {
            path: "token_keys".into(),
            error: e.to_string(),
        })?;
        let geo = if config.geoip_db.as_os_str().is_empty() {
            None
        } else {
            Some(
                geo::GeoDb::open(&config.geoip_db).map_err(|e| ControlPlaneError::Geo {
                    path: config.geoip_db.display().to_string(),
                    error: e.to_string(),
                })?,
            )
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|error| ControlPlaneError::Bind {
                addr: config.listen,
                error,
            })?;
        let local = listener.local_addr().map_err(ControlPlaneError::Serve)?;
        let public_url = if config.public_url.is_empty() {
            format!("http://{local}")
        } else {
            config.public_url()
        };
        let search = search::SearchIndex::new().map_err(|e| ControlPlaneError::Search(e.to_string()))?;
        let indexed = search
            .rebuild(store.all_titles().await.map_err(|e| e.to_string()))
            .map_err(|e| ControlPlaneError::Search(e.to_string()))?;
        tracing::info!(titles = indexed, "search index built");
        let app = App {
            steering: (!config.steering_url.is_empty())
                .then(|| steering_client::SteeringClient::new(&config.steering_url)),
            search,
            browse: tokio::sync::Mutex::new(None),
            config: config.clone(),
            public_url,
            store,
            ring,
            signer: keys[0].clone(),
            geo,
            packaged: packaged::Packaged::new(&config.origin_url, PACKAGED_KEEP),
            metrics: metrics::Metrics::register(registry)?,
            admin_token: std::env::var("STRATA_CONTROL_PLANE_ADMIN_TOKEN")
                .unwrap_or_else(|_| config.admin_token.clone()),
        };
        tracing::info!(
            addr = %local,
            database = app.store.backend_name(),
            geoip = app.geo.is_some(),
            "control-plane listening"
        );
        Ok(ControlPlane {
            listener,
            app: Arc::new(app),
        })
    }

    /// The bound API address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Creates or replaces titles (as `POST /v1/admin/catalog` does, without the HTTP).
    pub async fn import_titles(
        &self,
        titles: &[strata_contracts::api::control_plane::Title],
    ) -> Result<(), ControlPlaneError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(self.app.store.put_titles(titles, now).await?)
    }

    /// Creates an account unless one with its email exists; returns whether it was created.
    pub async fn ensure_account(
        &self,
        new: &strata_contracts::api::control_plane::NewAccount,
    ) -> Result<bool, ControlPlaneError> {
        if self.app.store.account_by_email(&new.email).await?.is_some() {
            return Ok(false);
        }
        let account = accounts::new_account(&new.email, &new.tier, &new.profiles);
        let record = store::AccountRecord {
            account,
            password_hash: accounts::hash_password(&new.password),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.app.store.create_account(&record, now).await?;
        Ok(true)
    }

    /// The health check for `/healthz`.
    pub fn health(&self) -> HealthCheck {
        HealthCheck {
            store: self.app.store.clone(),
        }
    }

    /// Serves until `shutdown`, then finishes the requests in flight.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), ControlPlaneError> {
        tokio::spawn(refresh_search(Arc::clone(&self.app), shutdown.clone()));
        let router = api::router(self.app);
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(ControlPlaneError::Serve)
    }
}

/// Rebuilds the search index when the catalog changed behind this process's back (another
/// control plane on the same database) or when an earlier update failed. A change made
/// here is in the index at once and also moves the database's version, so it is rebuilt
/// once more on the next tick: deliberate, since telling our own change from another
/// node's interleaved one would need a per-change log, and a rebuild per burst of admin
/// changes is cheap.
async fn refresh_search(app: Arc<App>, shutdown: CancellationToken) {
    let every = Duration::from_secs(app.config.search_refresh_secs);
    let mut seen = app.store.catalog_version().await.ok();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let version = match app.store.catalog_version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("search refresh: {e}");
                continue;
            }
        };
        if seen == Some(version) && !app.search.is_stale() {
            continue;
        }
        let titles = app.store.all_titles().await.map_err(|e| e.to_string());
        app.metrics.search_rebuilds.inc();
        match app.search.rebuild(titles) {
            Ok(n) => {
                tracing::info!(titles = n, "search index rebuilt");
                seen = Some(version);
            }
            Err(e) => {
                app.metrics.search_index_failures.inc();
                tracing::error!("{e}; the last good index keeps serving");
            }
        }
    }
}

/// The signing key kept in `dir/token-key.json`, made on first start. A single box needs no
/// key in its config; a fleet (several control planes, or edges that verify) configures
/// `token_keys` instead, since every party must hold the same secret.
pub fn load_or_make_key(dir: &Path) -> Result<TokenKey, ControlPlaneError> {
    let path = dir.join("token-key.json");
    let err = |error: String| ControlPlaneError::Key {
        path: path.display().to_string(),
        error,
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).map_err(|e| err(e.to_string()));
    }
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let key = TokenKey {
        id: "local".into(),
        secret: accounts::random_id() + &accounts::random_id(),
    };
    let text = serde_json::to_string_pretty(&key).expect("keys serialize");
    write_private(&path, text.as_bytes()).map_err(|e| err(e.to_string()))?;
    tracing::warn!(
        "no token_keys configured: signing with a generated key kept in {}; edges that verify tokens need the same key",
        path.display()
    );
    Ok(key)
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(data)
}
