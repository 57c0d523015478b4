//! pki-svc: the certificate authorities (`portcullis.pki.v1.PkiService`) and the SCEP server MDMs
//! enroll devices through, with the certificate inventory, revocation and CRLs.

pub mod access;
pub mod api;
pub mod attestation;
pub mod authority;
pub mod challenge;
pub mod config;
pub mod device_ca;
pub mod error;
pub mod maintenance;
pub mod scep;
pub mod store;
pub mod trust;

use portcullis_proto::pki::v1::pki_service_server::PkiServiceServer;
use service_kit::db::{self, Migrations};
use service_kit::observe::Metrics;
use service_kit::page_token::PageTokens;
use service_kit::server::{self, Listeners, MAX_MESSAGE_BYTES, ServeOptions};
use service_kit::shutdown::Shutdown;
use service_kit::tls::TlsMaterial;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::api::PkiApi;
use crate::attestation::Attestation;
use crate::authority::Authorities;
use crate::config::PkiConfig;
use crate::store::Store;
use crate::trust::Trust;
use service_kit::sealing::Sealer;

/// The gRPC service names, for health checks.
pub const SERVICE_NAMES: &[&str] = &["portcullis.pki.v1.PkiService"];

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// pki-svc's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};

/// Why pki-svc could not start or stopped with an error.
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
    /// The CAs could not be loaded or made.
    #[error(transparent)]
    Authority(#[from] authority::AuthorityError),
    /// The HTTP listener failed.
    #[error("HTTP listener: {0}")]
    Http(#[source] std::io::Error),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] service_kit::server::ServeError),
}

/// pki-svc's three listeners: mTLS gRPC, the admin port, and plain HTTP for SCEP and CRLs.
#[derive(Debug)]
pub struct PkiListeners {
    /// mTLS gRPC.
    pub grpc: TcpListener,
    /// Health and metrics.
    pub admin: TcpListener,
    /// SCEP and CRLs.
    pub http: TcpListener,
}

/// Reads the certificates, binds the configured listeners, then serves until `shutdown`.
pub async fn run(config: PkiConfig, shutdown: Shutdown) -> Result<(), RunError> {
    let Listeners { grpc, admin } = Listeners::bind(&config.server).await?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .map_err(|source| service_kit::server::BindError {
            addr: config.http_listen,
            source,
        })?;
    serve_on(config, PkiListeners { grpc, admin, http }, shutdown).await
}

/// Serves on already-bound listeners until `shutdown`; tests bind `127.0.0.1:0`.
pub async fn serve_on(config: PkiConfig, listeners: PkiListeners, shutdown: Shutdown) -> Result<(), RunError> {
    let tls = TlsMaterial::load(&config.server.tls)?;
    let database = db::connect(&config.server.database_url, config.database_max_connections, MIGRATIONS).await?;
    let store = Store::new(database);
    // Checked when the configuration was read.
    let sealer = std::sync::Arc::new(
        Sealer::from_base64(&config.ca_encryption_key)
            .map_err(|e| authority::AuthorityError::Material(format!("ca_encryption_key: {e}")))?,
    );
    let authorities = Authorities::open(&config, store.clone(), &sealer).await?;
    let trust = Trust::load(store.clone(), authorities.device_ca().certificate_der().to_vec())
        .await
        .map_err(authority::AuthorityError::Store)?;
    let page_tokens = PageTokens::from_setting(config.page_token_secret.as_deref());
    let schedule = maintenance::Schedule {
        trust_reload: config.trust_reload,
        maintenance: config.maintenance_interval,
        unused_certificate_lifetime: (config.unused_certificate_days > 0)
            .then(|| std::time::Duration::from_secs(config.unused_certificate_days * 24 * 3600)),
    };
    let background = tokio::spawn(maintenance::run(
        authorities.clone(),
        trust.clone(),
        schedule,
        shutdown.clone(),
    ));

    let http_app = scep::http::router(authorities.clone());
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(listeners.http, http_app)
            .with_graceful_shutdown(async move { http_shutdown.triggered().await })
            .await
    });

    let attestation = Attestation::new(store, trust.clone(), sealer.clone());
    let api = PkiApi::new(authorities, trust, attestation, sealer, page_tokens);
    let routes = Routes::new(
        PkiServiceServer::new(api)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
    tracing::info!(
        listen = %listeners.grpc.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        public_url = %config.public_url,
        "pki-svc serving"
    );
    let options = ServeOptions {
        service_names: SERVICE_NAMES,
        listener: listeners.grpc,
        admin_listener: listeners.admin,
        tls,
        trust_domain: config.server.trust_domain.clone(),
        policy: access::POLICY,
        request_timeout: config.server.request_timeout,
        concurrency_limit: config.server.concurrency_limit,
        metrics: Metrics::new(),
    };
    let result = server::serve(options, routes, shutdown.triggered()).await;
    shutdown.trigger();
    let http_result = http.await;
    let _ = background.await;
    result?;
    match http_result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(RunError::Http(e)),
        Err(e) => Err(RunError::Http(std::io::Error::other(e))),
    }
}
