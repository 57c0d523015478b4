//! policy-svc: decides every sign-in (allow, deny, or prove more) from the person, the app, the
//! network and the device, under policies operators manage as resources or as code.

pub mod access;
pub mod api;
pub mod assurance;
pub mod compiled;
pub mod config;
pub mod context;
pub mod convert;
pub mod decide;
pub mod decisions;
pub mod document;
pub mod edit;
pub mod error;
pub mod expression;
pub mod grace;
pub mod model;
pub mod reload;
pub mod secrets;
pub mod store;
pub mod validate;
pub mod version;
pub mod zones;

use portcullis_proto::policy::v1::policy_service_server::PolicyServiceServer;
use service_kit::db::{self, Migrations};
use service_kit::observe::Metrics;
use service_kit::page_token::PageTokens;
use service_kit::server::{self, Listeners, MAX_MESSAGE_BYTES, ServeOptions};
use service_kit::shutdown::Shutdown;
use service_kit::tls::TlsMaterial;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::api::PolicyApi;
use crate::compiled::InForce;
use crate::config::PolicyConfig;
use crate::decisions::DecisionLog;
use crate::grace::FailureClock;
use crate::store::Store;

/// The gRPC service names, for health checks.
pub const SERVICE_NAMES: &[&str] = &["portcullis.policy.v1.PolicyService"];

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// policy-svc's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};

/// Why policy-svc could not start or stopped with an error.
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
    /// The stored configuration could not be loaded.
    #[error("configuration: {0}")]
    Configuration(#[from] error::Error),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] service_kit::server::ServeError),
}

/// Reads the certificates, binds the configured listeners, then serves until `shutdown`.
pub async fn run(config: PolicyConfig, shutdown: Shutdown) -> Result<(), RunError> {
    let tls = TlsMaterial::load(&config.server.tls)?;
    let listeners = Listeners::bind(&config.server).await?;
    serve(config, tls, listeners.grpc, listeners.admin, shutdown).await
}

/// Serves on already-bound listeners until `shutdown`; tests bind `127.0.0.1:0`.
pub async fn serve_on(
    config: PolicyConfig,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let tls = TlsMaterial::load(&config.server.tls)?;
    serve(config, tls, listener, admin_listener, shutdown).await
}

async fn serve(
    config: PolicyConfig,
    tls: TlsMaterial,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let database = db::connect(&config.server.database_url, config.database_max_connections, MIGRATIONS).await?;
    let store = Store::new(database);
    // A new database gets the default global session policy (a no-op once it exists); what the
    // change read, or wrote, is the configuration to put in force.
    let current = store
        .change(
            |c| {
                edit::ensure_default_global_policy(c, service_kit::clock::now_micros());
                Ok(())
            },
            validate::configuration,
        )
        .await?;
    let compiled = compiled::Compiled::build(current.version, std::sync::Arc::new(current.config))
        .map_err(|e| error::Error::Corrupt(e.to_string()))?;
    let in_force = InForce::new(compiled);
    let failures = FailureClock::new(store.clone());
    let reloader = {
        let failures = failures.clone();
        tokio::spawn(reload::run(
            store.clone(),
            in_force.clone(),
            config.reload_poll_interval,
            move || failures.forget(),
            shutdown.clone(),
        ))
    };
    let (log, writer) = DecisionLog::start(store.clone(), shutdown.clone());
    let page_tokens = PageTokens::from_setting(config.page_token_secret.as_deref());
    let api = PolicyApi::new(store, in_force, failures, log, page_tokens);
    let routes = Routes::new(
        PolicyServiceServer::new(api)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
    tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "policy-svc serving");
    let options = ServeOptions {
        service_names: SERVICE_NAMES,
        listener,
        admin_listener,
        tls,
        trust_domain: config.server.trust_domain.clone(),
        policy: access::POLICY,
        request_timeout: config.server.request_timeout,
        concurrency_limit: config.server.concurrency_limit,
        metrics: Metrics::new(),
    };
    let result = server::serve(options, routes, shutdown.triggered()).await;
    shutdown.trigger();
    let _ = reloader.await;
    // The writer has stopped taking decisions; it finishes the queue.
    let _ = writer.await;
    Ok(result?)
}
