//! The control plane's storage: catalog, accounts, profiles and plays, in SQLite or
//! PostgreSQL through sqlx's Any driver. One schema and one set of queries for both: TEXT and
//! BIGINT columns only, `$N` parameters (which SQLite also reads), times as Unix seconds.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row, SqlSafeStr};
use std::path::Path;
use strata_contracts::api::control_plane::{Account, Profile, Title};

/// What the store could not do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations could not run.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not decode (written by another version, or edited by hand).
    #[error("stored {what} {id:?} does not decode: {reason}")]
    Corrupt {
        /// What kind of row.
        what: &'static str,
        /// Its id.
        id: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// A unique value already taken (for example an email).
    #[error("{0} already exists")]
    Conflict(String),
}

/// The schema's migrations, embedded, in order.
const MIGRATIONS: [(i64, &str, &str); 3] = [
    (
        1,
        "catalog accounts plays",
        include_str!("../migrations/0001_catalog_accounts_plays.sql"),
    ),
    (
        2,
        "discovery indexes",
        include_str!("../migrations/0002_discovery_indexes.sql"),
    ),
    (3, "play cdn", include_str!("../migrations/0003_play_cdn.sql")),
];

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// An account row with its password hash, for sign-in.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    /// The account as the API shows it.
    pub account: Account,
    /// argon2 PHC string.
    pub password_hash: String,
}

/// A started play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    /// Random id, also the bearer of the play's manifest URLs.
    pub id: String,
    /// Title.
    pub title_id: String,
    /// Account.
    pub account_id: String,
    /// Profile.
    pub profile_id: String,
    /// Device class.
    pub device: String,
    /// Client country, empty when unknown.
    pub country: String,
    /// Tallest video rendition allowed.
    pub max_height: u32,
    /// Playback token.
    pub token: String,
    /// Start, Unix seconds.
    pub started_at: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// CDN base URL steering chose at the start; empty: the configured `cdn_url`.
    pub cdn: String,
}

/// The database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `url` (`sqlite://FILE` or `postgres://...`), creating an SQLite file if
    /// needed, and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // Readers do not wait for the writer; the setting lives in the file.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations).run(&pool).await?;
        Ok(Store { pool, backend })
    }

    /// The SQLite URL of a file in `dir`.
    pub fn sqlite_url_in(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("control-plane.db").display())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database's name for logs.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Creates or replaces titles, all or none.
    pub async fn put_titles(&self, titles: &[Title], now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for t in titles {
            let body = serde_json::to_string(t).expect("titles serialize");
            sqlx::query(
                "INSERT INTO titles (id, name, year, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, year = excluded.year, \
                 body = excluded.body, updated_at = excluded.updated_at",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(i64::from(t.year))
            .bind(body)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM title_genres WHERE title_id = $1")
                .bind(&t.id)
                .execute(&mut *tx)
                .await?;
            let mut genres: Vec<&String> = t.genres.iter().collect();
            genres.sort();
            genres.dedup();
            for g in genres {
                sqlx::query("INSERT INTO title_genres (title_id, genre) VALUES ($1, $2)")
                    .bind(&t.id)
                    .bind(g)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a title; false when there was none.
    pub async fn delete_title(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM title_genres WHERE title_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM titles WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// One title.
    pub async fn title(&self, id: &str) -> Result<Option<Title>, StoreError> {
        let row = sqlx::query("SELECT id, body FROM titles WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode_title(&r)).transpose()
    }

    /// A page of titles by id, and how many there are.
    pub async fn titles(&self, limit: i64, offset: i64) -> Result<(Vec<Title>, u64), StoreError> {
        let rows = sqlx::query("SELECT id, body FROM titles ORDER BY id LIMIT $1 OFFSET $2")
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM titles")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let titles = rows.iter().map(decode_title).collect::<Result<_, _>>()?;
        Ok((titles, total.max(0) as u64))
    }

    /// Every title, for building the search index.
    pub async fn all_titles(&self) -> Result<Vec<Title>, StoreError> {
        let rows = sqlx::query("SELECT id, body FROM titles ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_title).collect()
    }

    /// Changes whenever the catalog does (count and latest update): how a control plane
    /// notices changes made by another one on the same database.
    pub async fn catalog_version(&self) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n, MAX(updated_at) AS latest FROM titles")
            .fetch_one(&self.pool)
            .await?;
        let latest: Option<i64> = row.try_get("latest")?;
        Ok((row.try_get("n")?, latest.unwrap_or(0)))
    }

    /// The newest titles: latest year first, then most recently added.
    pub async fn newest_titles(&self, limit: i64) -> Result<Vec<Title>, StoreError> {
        let rows =
            sqlx::query("SELECT id, body FROM titles ORDER BY year DESC, created_at DESC, id LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(decode_title).collect()
    }

    /// The most played titles since `since` (Unix seconds).
    pub async fn trending_titles(&self, since: i64, limit: i64) -> Result<Vec<Title>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.body FROM titles t JOIN              (SELECT title_id, COUNT(*) AS n FROM plays WHERE started_at >= $1 GROUP BY title_id) p              ON p.title_id = t.id ORDER BY p.n DESC, t.id LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_title).collect()
    }

    /// The genres with the most titles.
    pub async fn top_genres(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT genre, COUNT(*) AS n FROM title_genres GROUP BY genre ORDER BY n DESC, genre LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("genre"))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Titles of one genre, newest first.
    pub async fn titles_in_genre(&self, genre: &str, limit: i64) -> Result<Vec<Title>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.body FROM titles t JOIN title_genres g ON g.title_id = t.id              WHERE g.genre = $1 ORDER BY t.year DESC, t.id LIMIT $2",
        )
        .bind(genre)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_title).collect()
    }

    /// Creates an account with its profiles.
    pub async fn create_account(&self, record: &AccountRecord, now: i64) -> Result<(), StoreError> {
        let a = &record.account;
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query("SELECT id FROM accounts WHERE email = $1")
            .bind(&a.email)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("an account for {}", a.email)));
        }
        sqlx::query(
            "INSERT INTO accounts (id, email, password_hash, tier, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&a.id)
        .bind(&a.email)
        .bind(&record.password_hash)
        .bind(&a.tier)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (i, p) in a.profiles.iter().enumerate() {
            sqlx::query("INSERT INTO profiles (id, account_id, name, position) VALUES ($1, $2, $3, $4)")
                .bind(&p.id)
                .bind(&a.id)
                .bind(&p.name)
                .bind(i as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An account by email, with its hash, for sign-in.
    pub async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>, StoreError> {
        let row = sqlx::query("SELECT id, email, password_hash, tier FROM accounts WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(self.account_record(&r).await?)),
        }
    }

    /// An account by id.
    pub async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query("SELECT id, email, password_hash, tier FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(self.account_record(&r).await?.account)),
        }
    }

    async fn account_record(&self, r: &AnyRow) -> Result<AccountRecord, StoreError> {
        let id: String = r.try_get("id")?;
        let profiles = sqlx::query("SELECT id, name FROM profiles WHERE account_id = $1 ORDER BY position")
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|p| {
                Ok(Profile {
                    id: p.try_get("id")?,
                    name: p.try_get("name")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(AccountRecord {
            account: Account {
                id,
                email: r.try_get("email")?,
                tier: r.try_get("tier")?,
                profiles,
            },
            password_hash: r.try_get("password_hash")?,
        })
    }

    /// Records a started play.
    pub async fn insert_play(&self, p: &Play) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plays (id, title_id, account_id, profile_id, device, country, max_height, token, started_at, expires_at, cdn) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&p.id)
        .bind(&p.title_id)
        .bind(&p.account_id)
        .bind(&p.profile_id)
        .bind(&p.device)
        .bind(&p.country)
        .bind(i64::from(p.max_height))
        .bind(&p.token)
        .bind(p.started_at)
        .bind(p.expires_at)
        .bind(&p.cdn)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A play by id.
    pub async fn play(&self, id: &str) -> Result<Option<Play>, StoreError> {
        let row = sqlx::query(
            "SELECT id, title_id, account_id, profile_id, device, country, max_height, token, started_at, expires_at, cdn \
             FROM plays WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let max_height: i64 = r.try_get("max_height")?;
        Ok(Some(Play {
            id: r.try_get("id")?,
            title_id: r.try_get("title_id")?,
            account_id: r.try_get("account_id")?,
            profile_id: r.try_get("profile_id")?,
            device: r.try_get("device")?,
            country: r.try_get("country")?,
            max_height: u32::try_from(max_height).unwrap_or(0),
            token: r.try_get("token")?,
            started_at: r.try_get("started_at")?,
            expires_at: r.try_get("expires_at")?,
            cdn: r.try_get("cdn")?,
        }))
    }
}

fn decode_title(r: &AnyRow) -> Result<Title, StoreError> {
    let id: String = r.try_get("id")?;
    let body: String = r.try_get("body")?;
    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
        what: "title",
        id,
        reason: e.to_string(),
    })
}
