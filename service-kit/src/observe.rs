//! Request ids, a tracing span per call, and per-RPC request counts and latency histograms.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::Instrument;

/// The metadata key carrying the request id between services.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The request id of the call being served, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// Runs `future` with `request_id` as the current request id, so outbound calls carry it.
pub async fn with_request_id<F: Future>(request_id: Arc<str>, future: F) -> F::Output {
    REQUEST_ID.scope(request_id, future).await
}

/// A fresh request id.
pub fn new_request_id() -> Arc<str> {
    uuid::Uuid::now_v7().simple().to_string().into()
}

/// Client interceptor that forwards the current request id to the callee.
pub fn propagate_request_id(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    if let Some(id) = current_request_id()
        && let Ok(value) = id.parse()
    {
        request.metadata_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(request)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

/// The Prometheus registry of one service, with its gRPC request metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<CallLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
}

impl Metrics {
    /// A registry with `grpc_server_handled_total` and `grpc_server_handling_seconds`.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<CallLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to ~6.5 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        registry.register(
            "grpc_server_handled",
            "gRPC calls completed, by method and status code",
            requests.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Time from request to response headers, by method",
            latency.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            latency,
        })
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn record(&self, method: &str, code: &str, seconds: f64) {
        self.requests
            .get_or_create(&CallLabels {
                method: method.to_owned(),
                code: code.to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .observe(seconds);
    }
}

/// Gives each call a request id (the caller's `x-request-id`, or a new one), a tracing span, and
/// records its outcome in [`Metrics`].
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
}

impl ObserveLayer {
    /// Records into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`ObserveLayer`] makes.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<http::Request<Body>> for Observe<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let request_id: Arc<str> = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(Arc::from)
            .unwrap_or_else(new_request_id);
        let method = request.uri().path().to_owned();
        let span = tracing::info_span!("rpc", method = %method, request_id = %request_id);
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let call = self.inner.call(request);
        let future = async move {
            let result = call.await;
            let elapsed = started.elapsed().as_secs_f64();
            // Unary calls that fail are answered "trailers-only", so the status code is in the
            // response headers; a call whose headers carry no grpc-status completed with OK.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map(tonic::Code::from_i32)
                    .unwrap_or(tonic::Code::Ok),
                Err(_) => tonic::Code::Internal,
            };
            metrics.record(&method, code_name(code), elapsed);
            match &result {
                Ok(_) => tracing::debug!(code = code_name(code), elapsed_ms = elapsed * 1e3, "done"),
                Err(e) => tracing::warn!(error = %e, elapsed_ms = elapsed * 1e3, "failed"),
            }
            result
        };
        Box::pin(REQUEST_ID.scope(request_id, future.instrument(span)))
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Installs the global tracing subscriber: JSON lines when `json`, human-readable otherwise;
/// the level from `RUST_LOG` (default `info`). Safe to call more than once.
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
