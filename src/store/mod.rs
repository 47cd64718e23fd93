//! Persistence: one code path over sqlx's native SQLite and PostgreSQL drivers ([`sql`]).
//!
//! SQLite (a file, WAL, one writer) is the embedded default; PostgreSQL is the production
//! store that several instances share. Queries are written once in the SQL both understand
//! (`$1` placeholders, `ON CONFLICT`, `RETURNING`); where the dialects differ (job claiming,
//! bulk writes with `UNNEST`, lists with `= ANY`) they branch on [`Kind`]. Ids are UUID text,
//! money is BIGINT minor units, times are BIGINT microseconds since the epoch.

pub mod attempts;
pub mod audit;
pub mod batches;
pub mod callbacks;
pub mod charts;
pub mod dossier;
pub mod entries;
pub mod exceptions;
pub mod group;
pub mod idempotency;
pub mod inbound;
pub mod instances;
pub mod jobs;
pub mod keys;
pub mod payments;
pub mod payrolls;
pub mod recon;
pub mod reversals;
pub mod search;
pub mod sessions;
pub mod sql;
pub mod writer;

pub use sql::{Conn, Pool, Row};
pub use writer::Tx;

use chrono::{DateTime, TimeZone, Utc};
use std::str::FromStr;
use std::time::Duration;

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

/// A handle on the store: the pool its holder uses, and the pool background work uses.
///
/// Background work (the dispatcher and what it runs: payments, webhook deliveries, rechecks,
/// reversals; the bank watchers; the batch poller) takes its connections from a pool of its
/// own, a bounded share of `db_connections` (see `Config::pool_sizes`), through
/// [`Db::background`]. However busy, slow or stuck that work is, it cannot take the API's
/// connections. A second pool rather than a semaphore over one pool: every query takes its
/// connection from `pool()` itself, and a semaphore would have to be threaded through all of
/// them to be honoured.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    /// Background work's pool, when it has one of its own.
    background: Option<Pool>,
    kind: Kind,
    /// This running gateway, as the owner of what it holds (in-flight idempotency keys).
    instance: uuid::Uuid,
    /// SQLite has one writer: write transactions of this process take turns here, in the
    /// order they asked, and share commits ([`writer`]). None on PostgreSQL.
    writer: Option<std::sync::Arc<writer::Writer>>,
    acquire_timeout: Duration,
    /// The connections of `pool`.
    connections: u32,
    /// The connections of `background`, when it has its own.
    background_connections: u32,
}

/// How the pools are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizes {
    /// The API's connections.
    pub api: u32,
    /// Background work's connections; 0 = it shares the API's pool (one-shot commands).
    pub background: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

fn kind_of(url: &str) -> Result<Kind> {
    if url.starts_with("sqlite:") {
        Ok(Kind::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Kind::Postgres)
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// How long SQLite's write-ahead log grows, in pages, before a commit copies it into the
/// database file (SQLite's default is 1,000 pages, 4 MiB). The pages a busy gateway writes
/// are mostly the same few (the newest rows of each table and index, written again by each
/// commit): copied back ten times less often, each is copied once where it was ten times, and
/// the writer stops for a checkpoint ten times less often. The log's file stays at its
/// largest size (some 40 MiB) once it has grown there.
const WAL_CHECKPOINT_PAGES: u32 = 10_000;

async fn open_pool(url: &str, kind: Kind, max: u32, acquire_timeout: Duration) -> Result<Pool> {
    let pool = match kind {
        Kind::Sqlite => {
            let url = if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            };
            // FULL: a commit is on disk before we acknowledge it.
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string());
            Pool::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(max.max(1))
                    .acquire_timeout(acquire_timeout)
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?,
            )
        }
        Kind::Postgres => {
            let mut options = sqlx::postgres::PgConnectOptions::from_str(url)?;
            // The gateway's hot statements find a batch of rows by key. With PostgreSQL's
            // default random_page_cost (4, for spinning disks), a plan made while a table is
            // young (a new deployment, a new month's partition) scans it whole instead, and a
            // cached generic plan keeps scanning as the table grows. Its working set is in
            // memory or on SSD, where PostgreSQL's documentation suggests a cost near 1.
            // An operator's own setting in the URL (`options=-c random_page_cost=…`) wins.
            if !url.contains("random_page_cost") {
                options = options.options([("random_page_cost", "1.1")]);
            }
            Pool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max.max(1))
                    .acquire_timeout(acquire_timeout)
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?,
            )
        }
    };
    Ok(pool)
}

impl Db {
    /// Connects to `sqlite://path` (created if missing) or `postgres://...`, one pool shared by
    /// everything (one-shot commands, tests).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db> {
        Db::connect_with(
            url,
            PoolSizes {
                api: max_connections,
                background: 0,
                acquire_timeout: Duration::from_secs(30),
            },
        )
        .await
    }

    /// Connects with the API's pool and, when `sizes.background > 0`, background work's own.
    pub async fn connect_with(url: &str, sizes: PoolSizes) -> Result<Db> {
        let kind = kind_of(url)?;
        let pool = open_pool(url, kind, sizes.api, sizes.acquire_timeout).await?;
        let background = if sizes.background > 0 {
            Some(open_pool(url, kind, sizes.background, sizes.acquire_timeout).await?)
        } else {
            None
        };
        // SQLite's one writer gets a connection of its own (see `writer::Writer::own`).
        let writer = match kind {
            Kind::Sqlite => Some(std::sync::Arc::new(writer::Writer::new(
                open_pool(url, kind, 1, sizes.acquire_timeout).await?,
            ))),
            Kind::Postgres => None,
        };
        Ok(Db {
            pool,
            background,
            kind,
            instance: uuid::Uuid::new_v4(),
            writer,
            acquire_timeout: sizes.acquire_timeout,
            connections: sizes.api.max(1),
            background_connections: sizes.background,
        })
    }

    /// The same store through background work's pool (this handle when there is none).
    pub fn background(&self) -> Db {
        match &self.background {
            Some(pool) => Db {
                pool: pool.clone(),
                background: Some(pool.clone()),
                kind: self.kind,
                instance: self.instance,
                writer: self.writer.clone(),
                acquire_timeout: self.acquire_timeout,
                connections: self.background_connections.max(1),
                background_connections: self.background_connections,
            },
            None => self.clone(),
        }
    }

    /// This running gateway's id, as the owner of in-flight idempotency keys.
    pub fn instance(&self) -> uuid::Uuid {
        self.instance
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// How many group committers of one kind may write at once through this handle's pool:
    /// one on SQLite (one writer); on PostgreSQL up to four, a quarter of the pool, so that
    /// committers never hold what the rest of the pool's users need. Their work is spread
    /// by key (a payment, an attempt reference), so that one payment's writes always go
    /// through the same committer and two committers never wait on each other's rows.
    pub fn writers(&self) -> usize {
        match self.kind {
            Kind::Sqlite => 1,
            Kind::Postgres => usize::try_from(self.connections / 4)
                .unwrap_or(1)
                .clamp(1, 4),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies the migrations this build knows. Ones a newer build already applied are left
    /// alone (several versions may share a database during a rolling upgrade; what a newer
    /// build added, such as a job kind, an older one leaves untouched).
    pub async fn migrate(&self) -> Result<()> {
        let mut migrator = match self.kind {
            Kind::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Kind::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.set_ignore_missing(true);
        self.pool.migrate(&migrator).await?;
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
            sql::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await?;
        Ok(applied >= expected)
    }

    /// Starts a write transaction. On SQLite it first waits for this process's writer turn,
    /// then takes the write lock at once (`BEGIN IMMEDIATE`), or joins the transaction the
    /// last turn left open for it ([`writer`]).
    pub async fn begin(&self) -> Result<Tx> {
        match &self.writer {
            Some(writer) => writer.begin(self.acquire_timeout).await,
            None => {
                count_write();
                Ok(Tx::plain(self.pool.begin_with("BEGIN").await?))
            }
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(w) = &self.writer {
            w.close().await;
        }
        if let Some(b) = &self.background {
            b.close().await;
        }
    }
}

/// Counts one write transaction in `railgate_write_transactions_total`: every transaction
/// begun with [`Db::begin`] (on SQLite, one that joins another's open transaction is not
/// counted again: they commit as one), and each write made outside one (a single statement
/// commits on its own), where the code makes it. Reads are not counted. With the count of payments it
/// gives the figure the engine is built to keep low: write transactions per payment.
pub fn count_write() {
    metrics::counter!("railgate_write_transactions_total").increment(1);
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
pub(crate) fn col<'r, T: sql::Value<'r>>(row: &'r Row, name: &str) -> Result<T> {
    row.try_get(name).map_err(StoreError::Db)
}

pub(crate) fn uuid_col(row: &Row, name: &str) -> Result<uuid::Uuid> {
    let s: String = col(row, name)?;
    uuid::Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt(format!("{name} is not a UUID")))
}
