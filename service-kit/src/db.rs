//! Database pools: SQLite (WAL) by default, PostgreSQL in production, with embedded migrations.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Connection as _, Executor, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use crate::filter::{SqlCondition, SqlValue};

/// Which database a pool talks to. SQL is written once for both (numbered `$n` placeholders,
/// integers for times and flags), so this matters only for migrations and a few pragmas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file per service.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A service's migrations for each backend.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// For SQLite.
    pub sqlite: &'static Migrator,
    /// For PostgreSQL.
    pub postgres: &'static Migrator,
}

/// A pool and the backend behind it.
#[derive(Debug, Clone)]
pub struct Database {
    /// The pool.
    pub pool: AnyPool,
    /// The backend.
    pub backend: Backend,
    /// SQLite has one writer; taking turns here instead of in SQLite avoids "database is locked"
    /// when a read transaction upgrades to a write. Unused on PostgreSQL.
    sqlite_writer: Arc<Mutex<()>>,
}

/// A connection a batching task keeps between batches while work keeps arriving, so it does not
/// pay the pool's ping on every return. Let go of when the queue runs dry or after an error (the
/// pool's ping on return then closes a broken connection).
#[derive(Debug, Default)]
pub struct HeldConnection {
    conn: Option<PoolConnection<Any>>,
}

impl HeldConnection {
    /// The held connection, or a new one from `db`'s pool.
    pub async fn get(&mut self, db: &Database) -> Result<&mut AnyConnection, sqlx::Error> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => db.pool.acquire().await?,
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// After a batch: keep the connection only if the batch succeeded, more work is waiting, and
    /// the pool still has an idle connection for everyone else (so holders never starve other
    /// work, nor each other, in a small pool).
    pub fn after_batch(&mut self, db: &Database, succeeded: bool, more_waiting: bool) {
        if !(succeeded && more_waiting && db.pool.num_idle() > 0) {
            self.conn = None;
        }
    }
}

/// A write transaction, holding SQLite's writer turn for as long as it lives.
#[derive(Debug)]
pub struct WriteTx<'a> {
    /// The transaction.
    pub tx: Transaction<'static, Any>,
    _turn: Option<MutexGuard<'a, ()>>,
}

impl Database {
    /// Waits for SQLite's writer turn (no wait on PostgreSQL). Queuing here is fairer and faster
    /// than SQLite's busy handler, which sleeps and retries. Hold it across any write.
    pub async fn write_turn(&self) -> Option<MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.sqlite_writer.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Begins a transaction that will write.
    pub async fn begin_write(&self) -> Result<WriteTx<'_>, sqlx::Error> {
        let turn = self.write_turn().await;
        Ok(WriteTx {
            tx: self.pool.begin().await?,
            _turn: turn,
        })
    }

    /// Row lock for read-then-write on PostgreSQL; SQLite's single writer makes it unnecessary.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// Two connections per core: more only adds context switches (each SQLite connection is a
/// thread, each PostgreSQL connection a server process), as the load generators showed.
pub fn default_max_connections() -> u32 {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    u32::try_from(cores * 2).unwrap_or(u32::MAX)
}

/// Binds `values` to `query` in order.
pub fn bind_values<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    values: &'q [SqlValue],
) -> Query<'q, Any, AnyArguments<'q>> {
    for value in values {
        query = match value {
            SqlValue::Text(s) => query.bind(s.as_str()),
            SqlValue::Int(i) => query.bind(*i),
        };
    }
    query
}

/// A page of `table` in id order: rows matching `condition` after `after_id` (keyset
/// pagination: rows inserted meanwhile never shift the page), at most `limit`.
pub fn keyset_page(
    columns: &str,
    table: &str,
    condition: &SqlCondition,
    after_id: Option<&str>,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    let mut clauses = Vec::new();
    if !condition.sql.is_empty() {
        clauses.push(condition.sql.clone());
    }
    let mut values = condition.values.clone();
    if let Some(after) = after_id {
        values.push(SqlValue::Text(after.to_owned()));
        clauses.push(format!("id > ${}", values.len()));
    }
    let where_clause = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (
        format!("SELECT {columns} FROM {table}{where_clause} ORDER BY id LIMIT {limit}"),
        values,
    )
}

/// `$first, $first+1, …` for `count` values.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported database.
    #[error("unsupported database URL (expected sqlite: or postgres://)")]
    UnsupportedUrl,
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// How long a pooled connection may sit idle before it is pinged on the way out of the pool.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// Opens a pool for `url` with up to `max_connections`, and runs `migrations`.
///
/// PostgreSQL migrations take an advisory lock, so replicas starting together apply them once.
pub async fn connect(url: &str, max_connections: u32, migrations: Migrations) -> Result<Database, DbError> {
    sqlx::any::install_default_drivers();
    let backend = if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Backend::Postgres
    } else {
        return Err(DbError::UnsupportedUrl);
    };
    let options = AnyConnectOptions::from_str(url).map_err(DbError::Connect)?;
    let mut pool_options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection when it goes back to the pool, and by default again when it
        // comes out: a round trip to the database (or to SQLite's worker thread) on each side of
        // every query. A connection that was returned moments ago passed the first ping, so only
        // one that has sat idle for a while (a database restart or a proxy's idle cut may have
        // ended it) is checked before use.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
    if backend == Backend::Sqlite {
        pool_options = pool_options.after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; busy_timeout queues writers instead of
                // failing them; NORMAL sync is durable across process crashes in WAL mode. No
                // memory map: in WAL mode a connection unmaps the whole file whenever another one
                // has written since its last read, and at thousands of writes a second the unmaps
                // (with their TLB shootdowns) cost more than copying pages from the OS cache.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        });
    }
    let pool = pool_options.connect_with(options).await.map_err(DbError::Connect)?;
    let migrator = match backend {
        Backend::Sqlite => migrations.sqlite,
        Backend::Postgres => migrations.postgres,
    };
    // Replicas starting together: PostgreSQL serialises them with an advisory lock; SQLite has
    // none, so a process that loses the race sees "already applied" and succeeds on a retry.
    let mut attempt = 0;
    loop {
        match migrator.run(&pool).await {
            Ok(()) => break,
            Err(e) if attempt < 3 => {
                attempt += 1;
                tracing::info!(error = %e, attempt, "migration raced another process; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(DbError::Migrate(e)),
        }
    }
    Ok(Database {
        pool,
        backend,
        sqlite_writer: Arc::new(Mutex::new(())),
    })
}
