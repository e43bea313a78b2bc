//! The fleet store: registrations and last heartbeats in an SQLite file, so that a restarted
//! steering knows its edges (and keeps those with a recent heartbeat in rotation) at once.

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row, SqlSafeStr};
use std::path::Path;
use strata_contracts::api::steering::{EdgeRegistration, Heartbeat, PrewarmRequest};

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

/// A stored pre-warm job.
pub struct StoredJob {
    /// Id.
    pub id: String,
    /// What was asked.
    pub request: PrewarmRequest,
    /// The expanded object paths.
    pub objects: Vec<String>,
    /// Its state when last saved.
    pub state: String,
    /// Its message.
    pub message: Option<String>,
}

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
        let migrations = [
            (1, "edges", include_str!("../migrations/0001_edges.sql")),
            (2, "prewarm", include_str!("../migrations/0002_prewarm.sql")),
        ]
        .into_iter()
        .map(|(v, d, sql)| Migration::new(v, d.into(), MigrationType::Simple, sql.into_sql_str(), false))
        .collect();
        Migrator::with_migrations(migrations).run(&pool).await?;
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

    /// Saves a new pre-warm job with its expanded objects.
    pub async fn insert_job(
        &self,
        id: &str,
        request: &PrewarmRequest,
        objects: &[String],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO prewarm_jobs (id, request, objects, state, message, created_at) VALUES ($1, $2, $3, 'waiting', NULL, $4)",
        )
        .bind(id)
        .bind(serde_json::to_string(request).expect("requests serialize"))
        .bind(serde_json::to_string(objects).expect("paths serialize"))
        .bind(now_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets a job's state and message.
    pub async fn set_job_state(
        &self,
        id: &str,
        state: &str,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE prewarm_jobs SET state = $1, message = $2 WHERE id = $3")
            .bind(state)
            .bind(message)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records what happened to one object on one edge.
    pub async fn record_object(
        &self,
        job: &str,
        edge: &str,
        path: &str,
        outcome: &str,
        bytes: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO prewarm_objects (job_id, edge_id, path, outcome, bytes) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (job_id, edge_id, path) DO UPDATE SET outcome = excluded.outcome, bytes = excluded.bytes",
        )
        .bind(job)
        .bind(edge)
        .bind(path)
        .bind(outcome)
        .bind(bytes as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every job, oldest first: (id, request, objects, state, message).
    pub async fn jobs(&self) -> Result<Vec<StoredJob>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, request, objects, state, message FROM prewarm_jobs ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            let request: String = r.try_get("request")?;
            let objects: String = r.try_get("objects")?;
            let (Ok(request), Ok(objects)) = (serde_json::from_str(&request), serde_json::from_str(&objects))
            else {
                tracing::warn!(job = %id, "stored pre-warm job does not decode; skipped");
                continue;
            };
            out.push(StoredJob {
                id,
                request,
                objects,
                state: r.try_get("state")?,
                message: r.try_get("message")?,
            });
        }
        Ok(out)
    }

    /// The recorded objects of a job: (edge, path, outcome, bytes).
    pub async fn job_objects(&self, job: &str) -> Result<Vec<(String, String, String, u64)>, StoreError> {
        let rows = sqlx::query("SELECT edge_id, path, outcome, bytes FROM prewarm_objects WHERE job_id = $1")
            .bind(job)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let bytes: i64 = r.try_get("bytes")?;
                Ok((
                    r.try_get("edge_id")?,
                    r.try_get("path")?,
                    r.try_get("outcome")?,
                    bytes.max(0) as u64,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
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
