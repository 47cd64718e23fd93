//! Persistence: one code path over sqlx's `Any` driver for both stores.
//!
//! SQLite (a file, WAL, one writer) is the embedded default; PostgreSQL is the production
//! store that several instances share. Queries are written once in the SQL both understand
//! (`$1` placeholders, `ON CONFLICT`, `RETURNING`); the few that must differ (job claiming)
//! branch on [`Kind`]. Ids are UUID text, money is BIGINT minor units, times are BIGINT
//! microseconds since the epoch, so no driver-specific type crosses this layer.

pub mod attempts;
pub mod batches;
pub mod callbacks;
pub mod entries;
pub mod idempotency;
pub mod inbound;
pub mod jobs;
pub mod keys;
pub mod payments;
pub mod payrolls;
pub mod recon;
pub mod reversals;
pub mod sessions;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Transaction};
use std::time::Duration;

pub type Tx = Transaction<'static, Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    UnsupportedUrl,
}

impl StoreError {
    /// True when the error is a unique-constraint violation (a lost race for a key).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    kind: Kind,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connects to `sqlite://path` (created if missing) or `postgres://...`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            Kind::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Kind::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let options = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30));
        let pool = match kind {
            Kind::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                options
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // FULL: a commit is on disk before we acknowledge it.
                            conn.execute(
                                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                                 PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Kind::Postgres => options.connect(url).await?,
        };
        Ok(Db { pool, kind })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.kind {
            Kind::Sqlite => SQLITE_MIGRATOR.run(&self.pool).await?,
            Kind::Postgres => POSTGRES_MIGRATOR.run(&self.pool).await?,
        }
        Ok(())
    }

    /// True when every migration this build knows has been applied.
    pub async fn migrations_applied(&self) -> Result<bool> {
        let migrator = match self.kind {
            Kind::Sqlite => &SQLITE_MIGRATOR,
            Kind::Postgres => &POSTGRES_MIGRATOR,
        };
        let expected = i64::try_from(migrator.iter().count()).unwrap_or(i64::MAX);
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await?;
        Ok(applied >= expected)
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`) so two writers queue instead of failing on upgrade.
    pub async fn begin(&self) -> Result<Tx> {
        let tx = match self.kind {
            Kind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Kind::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Now, in the store's time unit.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// Reads a column, naming it in the error.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    use sqlx::Row;
    row.try_get(name).map_err(StoreError::Db)
}

pub(crate) fn uuid_col(row: &AnyRow, name: &str) -> Result<uuid::Uuid> {
    let s: String = col(row, name)?;
    uuid::Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt(format!("{name} is not a UUID")))
}
