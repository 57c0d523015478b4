//! Runs a service: the mTLS gRPC listener with its middleware, and the plaintext admin listener.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;

use crate::access::AccessPolicy;
use crate::config::ServerConfig;
use crate::guard::GuardLayer;
use crate::observe::{Metrics, ObserveLayer};
use crate::tls::TlsMaterial;

/// Largest gRPC message a service accepts or sends.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// How long in-flight calls may take to finish after shutdown starts.
const DRAIN_GRACE: Duration = Duration::from_secs(20);

/// A service's two listeners: mTLS gRPC and the plaintext admin port.
#[derive(Debug)]
pub struct Listeners {
    /// The mTLS gRPC listener.
    pub grpc: TcpListener,
    /// The plaintext admin listener.
    pub admin: TcpListener,
}

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address.
    pub addr: std::net::SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(config: &ServerConfig) -> Result<Self, BindError> {
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| BindError { addr, source })
        };
        Ok(Self {
            grpc: bind(config.listen).await?,
            admin: bind(config.admin_listen).await?,
        })
    }
}

/// Everything [`serve`] needs besides the service itself.
#[derive(Debug)]
pub struct ServeOptions {
    /// Fully qualified names of the gRPC services, for health (`portcullis.device.v1.DeviceService`).
    pub service_names: &'static [&'static str],
    /// The bound mTLS listener.
    pub listener: TcpListener,
    /// The bound plaintext admin listener.
    pub admin_listener: TcpListener,
    /// Certificates.
    pub tls: TlsMaterial,
    /// Trust domain of callers.
    pub trust_domain: String,
    /// The access rules.
    pub policy: AccessPolicy,
    /// Per-call deadline.
    pub request_timeout: Duration,
    /// Calls served at once.
    pub concurrency_limit: usize,
    /// Where request metrics go.
    pub metrics: Arc<Metrics>,
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[source] tonic::transport::Error),
    /// The reflection service could not be built from the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A listener failed.
    #[error("server: {0}")]
    Transport(#[source] tonic::transport::Error),
}

/// Serves `routes` until `shutdown` resolves, then reports NOT_SERVING, stops accepting and lets
/// in-flight calls finish (up to a grace period).
pub async fn serve(
    options: ServeOptions,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let ServeOptions {
        service_names,
        listener,
        admin_listener,
        tls,
        trust_domain,
        policy,
        request_timeout,
        concurrency_limit,
        metrics,
    } = options;

    let (health, health_service) = tonic_health::server::health_reporter();
    set_all(&health, service_names, ServingStatus::Serving).await;

    // Reflection describes our services, health, and the google.rpc error details, so grpcurl
    // can decode the ErrorInfo and BadRequest attached to errors.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(portcullis_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let routes = routes
        .add_service(health_service.clone())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    // Outermost first. Observe sees every call, denied or shed ones included, so metrics and
    // logs count them and each carries a request id. Load shedding comes before authentication
    // so an overloaded server spends nothing on a call it will refuse. The guard runs before the
    // service, so a denied caller never reaches validation or storage.
    let layers = ServiceBuilder::new()
        .layer(ObserveLayer::new(metrics.clone()))
        .load_shed()
        .concurrency_limit(concurrency_limit)
        .layer(GuardLayer::new(policy, &trust_domain));

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(crate::admin::serve_admin(
        admin_listener,
        health_service,
        metrics,
        async {
            let _ = admin_stopped.await;
        },
    ));

    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let health_on_shutdown = health.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
        set_all(&health_on_shutdown, service_names, ServingStatus::NotServing).await;
        let _ = drain_tx.send(());
    };

    let server = Server::builder()
        .tls_config(tls.server_config())
        .map_err(ServeError::Tls)?
        .timeout(request_timeout)
        .layer(layers)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), signal);

    // Bound the drain: after the grace period, stop waiting for slow calls.
    let result = tokio::select! {
        result = server => result.map_err(ServeError::Transport),
        () = async {
            let _ = drain_rx.await;
            tokio::time::sleep(DRAIN_GRACE).await;
        } => {
            tracing::warn!("calls still running after the drain grace period; stopping anyway");
            Ok(())
        }
    };
    let _ = stop_admin.send(());
    let _ = admin.await;
    result
}

/// Accepted connections with Nagle's algorithm off: gRPC writes small frames, and Nagle holding
/// them for the peer's delayed ACK adds ~40 ms to nearly every call.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

async fn set_all(health: &HealthReporter, names: &[&str], status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in names {
        health.set_service_status(*name, status).await;
    }
}
