//! session-svc: who people are (`portcullis.session.v1.DirectoryService`) and which sessions are
//! alive (`portcullis.session.v1.SessionService`), with the revocation feed gateways follow.

pub mod access;
pub mod authenticators;
pub mod config;
pub mod directory_api;
pub mod error;
pub mod feed;
pub mod model;
pub mod password;
pub mod session_api;
pub mod session_cache;
pub mod sessions;
pub mod store;
pub mod sweeper;
pub mod tokens;
pub mod totp;
pub mod validate;

use portcullis_proto::session::v1::directory_service_server::DirectoryServiceServer;
use portcullis_proto::session::v1::session_service_server::SessionServiceServer;
use service_kit::db::{self, Migrations};
use service_kit::observe::Metrics;
use service_kit::page_token::PageTokens;
use service_kit::server::{self, Listeners, MAX_MESSAGE_BYTES, ServeOptions};
use service_kit::shutdown::Shutdown;
use service_kit::tls::TlsMaterial;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::authenticators::{Authenticators, LockoutPolicy};
use crate::config::SessionConfig;
use crate::directory_api::DirectoryApi;
use crate::feed::RevocationFeed;
use crate::password::PasswordHasher;
use crate::session_api::SessionApi;
use crate::sessions::Sessions;
use crate::store::Store;
use crate::totp::SeedCipher;

/// The gRPC service names, for health checks.
pub const SERVICE_NAMES: &[&str] = &[
    "portcullis.session.v1.DirectoryService",
    "portcullis.session.v1.SessionService",
];

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// session-svc's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};

/// Why session-svc could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Certificates could not be read.
    #[error(transparent)]
    Tls(#[from] service_kit::tls::TlsLoadError),
    /// The database could not be opened.
    #[error(transparent)]
    Database(#[from] service_kit::db::DbError),
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] service_kit::server::BindError),
    /// Secrets could not be set up.
    #[error("{0}")]
    Secrets(String),
    /// The revocation feed's position could not be read.
    #[error("revocation feed: {0}")]
    Feed(String),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] service_kit::server::ServeError),
}

/// Reads the certificates, binds the configured listeners, then serves until `shutdown`.
pub async fn run(config: SessionConfig, shutdown: Shutdown) -> Result<(), RunError> {
    let tls = TlsMaterial::load(&config.server.tls)?;
    let listeners = Listeners::bind(&config.server).await?;
    serve(config, tls, listeners.grpc, listeners.admin, shutdown).await
}

/// Serves on already-bound listeners until `shutdown`; tests bind `127.0.0.1:0`.
pub async fn serve_on(
    config: SessionConfig,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let tls = TlsMaterial::load(&config.server.tls)?;
    serve(config, tls, listener, admin_listener, shutdown).await
}

async fn serve(
    config: SessionConfig,
    tls: TlsMaterial,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let database = db::connect(&config.server.database_url, config.database_max_connections, MIGRATIONS).await?;
    let store = Store::new(database);
    let seeds = SeedCipher::from_base64(&config.totp_encryption_key).map_err(|e| RunError::Secrets(e.to_string()))?;
    let hasher = PasswordHasher::new(config.password_hash_concurrency).map_err(|e| RunError::Secrets(e.to_string()))?;
    let authenticators = Authenticators::new(
        store.clone(),
        hasher,
        seeds,
        LockoutPolicy {
            threshold: config.lockout_threshold,
            duration: config.lockout_duration,
        },
    );
    let page_tokens = PageTokens::from_setting(config.page_token_secret.as_deref());
    let cache = std::sync::Arc::new(session_cache::SessionCache::default());
    let feed = RevocationFeed::new(store.clone(), config.feed_poll_interval, cache.clone());
    // Taken before serving, so no revocation committed while the tail starts is skipped.
    let feed_position = feed.position().await.map_err(|e| RunError::Feed(e.to_string()))?;
    let tail = tokio::spawn(feed.clone().run_tail(feed_position, shutdown.clone()));
    let sweeper = tokio::spawn(sweeper::run(
        store.clone(),
        config.sweep_interval,
        config.retention,
        shutdown.clone(),
    ));
    let trust_domain = config.server.trust_domain.clone();
    let sessions = Sessions::new(store.clone(), feed.clone(), cache);
    let directory = DirectoryApi::new(
        store.clone(),
        authenticators,
        feed.clone(),
        page_tokens.clone(),
        trust_domain.clone(),
    );
    let session_api = SessionApi::new(store, sessions, feed, page_tokens, trust_domain.clone());
    let routes = Routes::new(
        DirectoryServiceServer::new(directory)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
    .add_service(
        SessionServiceServer::new(session_api)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
    tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "session-svc serving");
    let options = ServeOptions {
        service_names: SERVICE_NAMES,
        listener,
        admin_listener,
        tls,
        trust_domain,
        policy: access::POLICY,
        request_timeout: config.server.request_timeout,
        concurrency_limit: config.server.concurrency_limit,
        metrics: Metrics::new(),
    };
    let result = server::serve(options, routes, shutdown.triggered()).await;
    shutdown.trigger();
    let _ = tail.await;
    let _ = sweeper.await;
    Ok(result?)
}
