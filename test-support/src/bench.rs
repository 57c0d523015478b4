//! What the load generators share: the database a run uses (a SQLite file or a fresh
//! PostgreSQL database, dropped afterwards) and the machine facts they print.

use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row};

use crate::TempDir;

/// The PostgreSQL server load generators use unless `PORTCULLIS_BENCH_DATABASE_URL` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which database a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temp dir.
    Sqlite,
    /// A new database on a PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The number of processors, as `nproc` says.
pub fn nproc() -> String {
    std::process::Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into())
        })
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The database for one run: a SQLite file in a temp dir, or a new PostgreSQL database.
pub struct BenchDatabase {
    /// The URL to give the service.
    pub url: String,
    /// Which database.
    pub backend: Backend,
    /// For PostgreSQL: the server's admin URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl BenchDatabase {
    /// A fresh database; `file` names the SQLite file. PostgreSQL runs on the server at
    /// `PORTCULLIS_BENCH_DATABASE_URL` (default the local server, trust auth).
    pub async fn create(backend: Backend, file: &str) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = TempDir::new("bench");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join(file).display());
                Self {
                    url,
                    backend,
                    postgres: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("PORTCULLIS_BENCH_DATABASE_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
                let name = format!("pc_bench_{}", uuid::Uuid::now_v7().simple());
                let mut conn = AnyConnection::connect(&admin_url).await.expect("connect to PostgreSQL");
                conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
                conn.close().await.ok();
                let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
                let url = format!("{base}/{name}");
                Self {
                    url,
                    backend,
                    postgres: Some((admin_url, name)),
                    _dir: None,
                }
            }
        }
    }

    /// Bytes on disk.
    pub async fn size(&self, pool: &AnyPool) -> u64 {
        match self.backend {
            Backend::Sqlite => {
                let Some(dir) = &self._dir else { return 0 };
                std::fs::read_dir(dir.path())
                    .map(|entries| {
                        entries
                            .flatten()
                            .filter_map(|e| e.metadata().ok())
                            .map(|m| m.len())
                            .sum()
                    })
                    .unwrap_or(0)
            }
            Backend::Postgres => sqlx::query("SELECT pg_database_size(current_database())")
                .fetch_one(pool)
                .await
                .ok()
                .and_then(|row| row.try_get::<i64, _>(0).ok())
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
        }
    }

    /// Drops the PostgreSQL database; the SQLite temp dir goes with `self`.
    pub async fn remove(self) {
        if let Some((admin_url, name)) = &self.postgres {
            match AnyConnection::connect(admin_url).await {
                Ok(mut conn) => {
                    match conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await
                    {
                        Ok(_) => println!("dropped PostgreSQL database {name}"),
                        Err(e) => eprintln!("cannot drop database {name}: {e}"),
                    }
                    conn.close().await.ok();
                }
                Err(e) => eprintln!("cannot connect to drop database {name}: {e}"),
            }
        }
        if let Some(dir) = &self._dir {
            println!("removing SQLite files in {}", dir.path().display());
        }
    }
}
