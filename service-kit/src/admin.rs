//! The plaintext admin listener: `grpc.health.v1` and Prometheus `/metrics`, nothing else.
//!
//! Plaintext because Kubernetes gRPC probes cannot present a client certificate.

use std::future::Future;
use std::sync::Arc;

use axum::routing::get;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::pb::health_server::{Health, HealthServer};

use crate::observe::Metrics;

/// Serves health and metrics on `listener` until `shutdown` resolves.
pub async fn serve_admin<H: Health>(
    listener: TcpListener,
    health: HealthServer<H>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let metrics_router = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    );
    let routes = Routes::from(metrics_router).add_service(health);
    Server::builder()
        .accept_http1(true)
        .add_routes(routes)
        .serve_with_incoming_shutdown(crate::server::incoming(listener), shutdown)
        .await
}
