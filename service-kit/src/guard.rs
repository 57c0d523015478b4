//! Authentication and authorization middleware: peer certificate → identity → access rule.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use crate::access::AccessPolicy;
use crate::identity::{Identity, identity_from_certificate};
use crate::status::{Reason, status_with_reason};

/// Adds the caller's [`Identity`] to the request extensions and refuses calls its rules deny,
/// before the request body is read, so nothing is validated or looked up for a denied caller.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    policy: AccessPolicy,
    trust_domain: Arc<str>,
    identities: Arc<IdentityCache>,
}

impl GuardLayer {
    /// A guard enforcing `policy` for callers in `trust_domain`.
    pub fn new(policy: AccessPolicy, trust_domain: &str) -> Self {
        Self {
            policy,
            trust_domain: trust_domain.into(),
            identities: Arc::default(),
        }
    }
}

/// Identities of the client certificates seen lately. Parsing X.509 on every call showed in
/// profiles; a connection presents the same certificate for its whole life, and the TLS
/// handshake has already verified it, so the parse result can be reused.
#[derive(Debug, Default)]
struct IdentityCache {
    entries: Mutex<HashMap<Vec<u8>, Result<Identity, String>>>,
}

/// Certificates remembered at most; past that the cache starts over.
const IDENTITY_CACHE_SIZE: usize = 4096;

impl IdentityCache {
    fn identity(&self, der: &[u8], trust_domain: &str) -> Result<Identity, String> {
        if let Ok(entries) = self.entries.lock()
            && let Some(known) = entries.get(der)
        {
            return known.clone();
        }
        let parsed = identity_from_certificate(der, trust_domain).map_err(|e| e.to_string());
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= IDENTITY_CACHE_SIZE {
                entries.clear();
            }
            entries.insert(der.to_vec(), parsed.clone());
        }
        parsed
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            policy: self.policy,
            trust_domain: self.trust_domain.clone(),
            identities: self.identities.clone(),
        }
    }
}

/// The service [`GuardLayer`] makes.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    policy: AccessPolicy,
    trust_domain: Arc<str>,
    identities: Arc<IdentityCache>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let identity = match peer_identity(&request, &self.trust_domain, &self.identities) {
            Ok(identity) => identity,
            Err(message) => {
                let status = status_with_reason(tonic::Code::Unauthenticated, Reason::Unauthenticated, message);
                return Box::pin(async move { Ok(status.into_http()) });
            }
        };
        if !self.policy.allows(&identity, request.uri().path()) {
            tracing::info!(caller = %identity, method = request.uri().path(), "permission denied");
            let status = status_with_reason(
                tonic::Code::PermissionDenied,
                Reason::PermissionDenied,
                format!("{identity} may not call {}", request.uri().path()),
            );
            return Box::pin(async move { Ok(status.into_http()) });
        }
        request.extensions_mut().insert(identity);
        Box::pin(self.inner.call(request))
    }
}

fn peer_identity(request: &http::Request<Body>, trust_domain: &str, cache: &IdentityCache) -> Result<Identity, String> {
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .ok_or_else(|| "a client certificate is required".to_owned())?;
    let leaf = certs
        .first()
        .ok_or_else(|| "a client certificate is required".to_owned())?;
    cache.identity(leaf, trust_domain)
}

/// The caller of the current request, as the guard recorded it.
pub fn caller<T>(request: &tonic::Request<T>) -> Option<&Identity> {
    request.extensions().get::<Identity>()
}

/// The caller's SPIFFE id, as events record who did something ("" if the guard recorded none).
pub fn actor<T>(request: &tonic::Request<T>, trust_domain: &str) -> String {
    caller(request)
        .map(|identity| identity.spiffe_id(trust_domain))
        .unwrap_or_default()
}
