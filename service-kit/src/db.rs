//! Database pools: SQLite (WAL) by default, PostgreSQL in production, with embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

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
        .acquire_timeout(Duration::from_secs(10));
    if backend == Backend::Sqlite {
        pool_options = pool_options.after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; busy_timeout queues writers instead of
                // failing them; NORMAL sync is durable across process crashes in WAL mode.
                conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
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
    Ok(Database { pool, backend })
}
