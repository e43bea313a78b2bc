//! The fleet store: registrations and last heartbeats in an SQLite file, so that a restarted
//! steering knows its edges (and keeps those with a recent heartbeat in rotation) at once.

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row, SqlSafeStr};
use std::path::Path;
use strata_contracts::api::steering::{EdgeRegistration, Heartbeat};

/// What the store could not do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("fleet store: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("fleet store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A stored edge: registration, and last heartbeat with its time (Unix milliseconds).
pub type StoredEdge = (EdgeRegistration, Option<(u64, Heartbeat)>);

/// The fleet store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens (creating) the store in `dir`.
    pub async fn open(dir: &Path) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", dir.join("steering.db").display());
        let pool = AnyPoolOptions::new().max_connections(2).connect(&url).await?;
        sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        let migration = Migration::new(
            1,
            "edges".into(),
            MigrationType::Simple,
            include_str!("../migrations/0001_edges.sql").into_sql_str(),
            false,
        );
        Migrator::with_migrations(vec![migration]).run(&pool).await?;
        Ok(Store { pool })
    }

    /// Saves a registration (replacing an earlier one of the same edge).
    pub async fn register(&self, r: &EdgeRegistration, now_ms: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO edges (id, registration, heartbeat, heartbeat_at, registered_at) VALUES ($1, $2, NULL, 0, $3) \
             ON CONFLICT (id) DO UPDATE SET registration = excluded.registration, registered_at = excluded.registered_at",
        )
        .bind(&r.edge_id)
        .bind(serde_json::to_string(r).expect("registrations serialize"))
        .bind(now_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Saves an edge's last heartbeat.
    pub async fn heartbeat(&self, hb: &Heartbeat, now_ms: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE edges SET heartbeat = $1, heartbeat_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(hb).expect("heartbeats serialize"))
            .bind(now_ms as i64)
            .bind(&hb.edge_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets an edge.
    pub async fn remove(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM edges WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every stored edge; rows that no longer decode are skipped with a warning.
    pub async fn load(&self) -> Result<Vec<StoredEdge>, StoreError> {
        let rows = sqlx::query("SELECT id, registration, heartbeat, heartbeat_at FROM edges ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let reg: String = row.try_get("registration")?;
            let hb: Option<String> = row.try_get("heartbeat")?;
            let at: i64 = row.try_get("heartbeat_at")?;
            let Ok(reg) = serde_json::from_str::<EdgeRegistration>(&reg) else {
                tracing::warn!(edge = %id, "stored registration does not decode; skipped until the edge registers again");
                continue;
            };
            let hb = hb
                .and_then(|h| serde_json::from_str::<Heartbeat>(&h).ok())
                .map(|h| (at.max(0) as u64, h));
            out.push((reg, hb));
        }
        Ok(out)
    }
}
