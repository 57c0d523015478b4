//! What Portcullis integration tests share: a test PKI on disk, a fresh database per test
//! (SQLite, or PostgreSQL when `PORTCULLIS_TEST_DATABASE_URL` is set), and mTLS channels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bench;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use service_kit::dev_pki::{DevCa, IssuedCertificate};
use service_kit::identity::Role;
use service_kit::tls::{TlsFiles, TlsMaterial};
use sqlx::Executor;
use tonic::transport::{Channel, Endpoint};

/// The variable naming a PostgreSQL server for tests (`postgres://user@host:port/db`).
pub const POSTGRES_URL_VAR: &str = "PORTCULLIS_TEST_DATABASE_URL";

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes one.
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("portcullis-{label}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A service CA and the certificates tests need, written to a temp dir.
#[derive(Debug)]
pub struct TestPki {
    /// The CA.
    pub ca: DevCa,
    /// Where the PEM files are.
    pub dir: TempDir,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A fresh CA for trust domain `portcullis.local`.
    pub fn new() -> Self {
        let dir = TempDir::new("pki");
        let ca = DevCa::load_or_create(dir.path(), service_kit::identity::DEFAULT_TRUST_DOMAIN).unwrap();
        Self { ca, dir }
    }

    /// Certificate files for service `name` (written once).
    pub fn service_files(&self, name: &str) -> TlsFiles {
        self.ca
            .load_or_issue(self.dir.path(), name, |ca| ca.issue_service(name, &[]))
            .unwrap()
    }

    /// TLS material for service `name`.
    pub fn service(&self, name: &str) -> TlsMaterial {
        TlsMaterial::load(&self.service_files(name)).unwrap()
    }

    /// TLS material for an operator holding `role`.
    pub fn operator(&self, name: &str, role: Role) -> TlsMaterial {
        self.ca.issue_operator(name, role).unwrap().tls(&self.ca)
    }

    /// TLS material from a certificate issued some other way.
    pub fn material(&self, issued: &IssuedCertificate) -> TlsMaterial {
        issued.tls(&self.ca)
    }
}

/// An mTLS channel to `addr` presenting `tls`, expecting the server to be `localhost`.
pub async fn channel(addr: SocketAddr, tls: &TlsMaterial) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("valid URI")
        .tls_config(tls.client_config("localhost"))?
        .connect()
        .await
}

/// A database for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL to give the service.
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDatabase {
    /// A fresh, empty database: a new PostgreSQL database when [`POSTGRES_URL_VAR`] is set,
    /// otherwise a SQLite file.
    pub async fn new() -> Self {
        match std::env::var(POSTGRES_URL_VAR) {
            Ok(admin_url) if !admin_url.is_empty() => Self::postgres(&admin_url).await,
            _ => Self::sqlite(),
        }
    }

    /// A SQLite file in a temp dir.
    pub fn sqlite() -> Self {
        let dir = TempDir::new("db");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Self { url, _dir: Some(dir) }
    }

    /// A new database on the PostgreSQL server at `admin_url`.
    pub async fn postgres(admin_url: &str) -> Self {
        sqlx::any::install_default_drivers();
        let name = format!("pc_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin_url)
            .await
            .unwrap();
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(admin_url);
        Self {
            url: format!("{base}/{name}"),
            _dir: None,
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

/// A service under test: serving on ephemeral ports until stopped.
#[derive(Debug)]
pub struct RunningService {
    /// The mTLS gRPC address.
    pub addr: SocketAddr,
    /// The plaintext admin address.
    pub admin_addr: SocketAddr,
    shutdown: service_kit::shutdown::Shutdown,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl RunningService {
    /// Binds `127.0.0.1:0` twice and runs `serve(grpc, admin, shutdown)` (a service's `serve_on`).
    pub async fn start<F, Fut, E>(serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, tokio::net::TcpListener, service_kit::shutdown::Shutdown) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = grpc.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let shutdown = service_kit::shutdown::Shutdown::new();
        let serving = serve(grpc, admin, shutdown.clone());
        let task = tokio::spawn(async move { serving.await.map_err(|e| e.to_string()) });
        Self {
            addr,
            admin_addr,
            shutdown,
            task,
        }
    }

    /// Stops the service and waits for it to drain; panics if it had failed.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap();
    }
}

/// The settings every service needs in a test: its certificate files from `pki`, `database`
/// and a page-token secret.
pub fn base_settings(pki: &TestPki, service: &str, database: &TestDatabase) -> service_kit::config::Settings {
    service_settings(pki, service, &database.url)
}

/// [`base_settings`] for a database given by URL (the load generators' own databases).
pub fn service_settings(pki: &TestPki, service: &str, database_url: &str) -> service_kit::config::Settings {
    let files = pki.service_files(service);
    let mut settings = service_kit::config::Settings::default();
    settings
        .set("tls_ca", files.ca.display().to_string())
        .set("tls_cert", files.cert.display().to_string())
        .set("tls_key", files.key.display().to_string())
        .set("database_url", database_url)
        .set("page_token_secret", "test-page-token-secret");
    settings
}

/// Retries `attempt` every 25 ms for up to 5 s until it succeeds: a service is ready when a call
/// gets through (migrations run before it serves).
pub async fn wait_until_ready<F, Fut, T, E>(mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let mut last = None;
    for _ in 0..200 {
        match attempt().await {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the service did not become ready: {last:?}");
}
