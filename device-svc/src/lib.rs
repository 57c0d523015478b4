//! device-svc: the Portcullis device registry (`portcullis.device.v1.DeviceService`).

pub mod access;
pub mod api;
pub mod assertion;
pub mod config;
pub mod device;
pub mod enrollment;
pub mod enrollment_token;
pub mod error;
pub mod key_lookup;
pub mod lifecycle;
pub mod outbox;
pub mod replay;
pub mod signals;
pub mod store;

use portcullis_proto::device::v1::device_service_server::DeviceServiceServer;
use service_kit::db::{self, Migrations};
use service_kit::observe::Metrics;
use service_kit::page_token::PageTokens;
use service_kit::server::{self, Listeners, MAX_MESSAGE_BYTES, ServeOptions};
use service_kit::shutdown::Shutdown;
use service_kit::tls::TlsMaterial;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Channel;

use crate::api::{AssertionPolicy, DeviceApi};
use crate::config::DeviceConfig;
use crate::outbox::{DeliveryPolicy, Receivers};
use crate::store::Store;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = "portcullis.device.v1.DeviceService";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// device-svc's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};

/// Why device-svc could not start or stopped with an error.
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
    /// A receiver URL is unusable.
    #[error("{key}: {reason}")]
    Receiver {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] service_kit::server::ServeError),
}

/// Reads the certificates, binds the configured listeners, then serves until `shutdown`.
pub async fn run(config: DeviceConfig, shutdown: Shutdown) -> Result<(), RunError> {
    // Unreadable certificates fail the start before any port is bound.
    let tls = TlsMaterial::load(&config.server.tls)?;
    let listeners = Listeners::bind(&config.server).await?;
    serve(config, tls, listeners.grpc, listeners.admin, shutdown).await
}

fn receiver(key: &'static str, url: Option<&str>, tls: &TlsMaterial) -> Result<Option<Channel>, RunError> {
    // Lazy: the receiver may start after us, or be down; the outbox retries.
    url.map(|url| {
        tls.lazy_channel(url)
            .map_err(|reason| RunError::Receiver { key, reason })
    })
    .transpose()
}

/// Serves on already-bound listeners until `shutdown`; tests bind `127.0.0.1:0`.
pub async fn serve_on(
    config: DeviceConfig,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let tls = TlsMaterial::load(&config.server.tls)?;
    serve(config, tls, listener, admin_listener, shutdown).await
}

async fn serve(
    config: DeviceConfig,
    tls: TlsMaterial,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let database = db::connect(&config.server.database_url, config.database_max_connections, MIGRATIONS).await?;
    let replays = replay::ReplayLedger::start(database.clone());
    let store = Store::new(database);
    let key_lookups = key_lookup::KeyLookups::start(store.clone());
    let receivers = Receivers {
        session: receiver("session_svc_url", config.session_svc_url.as_deref(), &tls)?,
        pki: receiver("pki_svc_url", config.pki_svc_url.as_deref(), &tls)?,
    };
    let page_tokens = PageTokens::from_setting(config.page_token_secret.as_deref());
    let api = DeviceApi::new(
        store.clone(),
        page_tokens,
        config.server.trust_domain.clone(),
        AssertionPolicy {
            leeway_secs: config.assertion_leeway_secs,
            max_lifetime_secs: config.assertion_max_lifetime_secs,
        },
        replays,
        key_lookups,
    );
    let outbox = tokio::spawn(outbox::run_delivery(
        store.clone(),
        receivers,
        DeliveryPolicy::default(),
        shutdown.clone(),
    ));
    let pruning = tokio::spawn(prune_assertions(store, shutdown.clone()));
    let routes = Routes::new(
        DeviceServiceServer::new(api)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
    tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "device-svc serving");
    let options = ServeOptions {
        service_names: &[SERVICE_NAME],
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
    let _ = outbox.await;
    let _ = pruning.await;
    Ok(result?)
}

async fn prune_assertions(store: Store, shutdown: Shutdown) {
    let stopped = shutdown.triggered();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
        }
        let now = device::now_micros() / 1_000_000;
        if let Err(e) = store.prune_assertions(now).await {
            tracing::warn!(error = %e, "cannot prune assertion replay records");
        }
    }
}
