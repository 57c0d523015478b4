//! The HTTP face of pki-svc: SCEP at `/scep/{integration}` (RFC 8894 §4) and CRLs at
//! `/crl/{ca}.crl`. Plain HTTP, as MDMs expect: SCEP messages are signed and encrypted
//! themselves, and CRLs are signed.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::Deserialize;

use crate::authority::Authorities;
use crate::device_ca::DEVICE_CA;
use crate::scep::enroll::{ScepError, ScepServer};

/// Largest pkiMessage accepted, in bytes; real ones are a few kilobytes.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What GetCACaps advertises.
pub const CA_CAPS: &[&str] = &[
    "POSTPKIOperation",
    "SHA-1",
    "SHA-256",
    "SHA-512",
    "AES",
    "DES3",
    "SCEPStandard",
    "Renewal",
];

#[derive(Debug, Clone)]
struct HttpState {
    scep: ScepServer,
    authorities: Arc<Authorities>,
}

/// The routes.
pub fn router(authorities: Arc<Authorities>) -> Router {
    let state = HttpState {
        scep: ScepServer::new(authorities.clone()),
        authorities,
    };
    Router::new()
        .route("/scep/{integration}", get(scep_get).post(scep_post))
        .route("/crl/{file}", get(crl))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct ScepQuery {
    operation: Option<String>,
    message: Option<String>,
}

async fn scep_get(
    State(state): State<HttpState>,
    Path(integration): Path<String>,
    Query(query): Query<ScepQuery>,
) -> Response {
    match query.operation.as_deref() {
        Some("GetCACaps") => match state.scep.integration(&integration).await {
            Ok(_) => text(StatusCode::OK, CA_CAPS.join("\n")),
            Err(e) => error(e),
        },
        Some("GetCACert") => match state.scep.integration(&integration).await {
            Ok(_) => binary("application/x-x509-ca-cert", state.scep.ca_certificate().to_vec()),
            Err(e) => error(e),
        },
        Some("PKIOperation") => {
            let Some(message) = query.message else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "PKIOperation by GET needs a `message` parameter",
                );
            };
            // Standard base64. A client that did not percent-encode '+' has had it turned into a
            // space by form decoding; some wrap lines.
            let cleaned: String = message
                .chars()
                .filter(|c| !matches!(c, '\n' | '\r'))
                .map(|c| if c == ' ' { '+' } else { c })
                .collect();
            match base64::engine::general_purpose::STANDARD.decode(cleaned.as_bytes()) {
                Ok(der) => pki_operation(&state, &integration, &der).await,
                Err(_) => text(StatusCode::BAD_REQUEST, "`message` is not base64"),
            }
        }
        Some(other) => text(StatusCode::BAD_REQUEST, format!("unsupported operation {other:?}")),
        None => text(StatusCode::BAD_REQUEST, "missing `operation`"),
    }
}

async fn scep_post(
    State(state): State<HttpState>,
    Path(integration): Path<String>,
    Query(query): Query<ScepQuery>,
    body: Bytes,
) -> Response {
    match query.operation.as_deref() {
        Some("PKIOperation") => pki_operation(&state, &integration, &body).await,
        Some(other) => text(
            StatusCode::BAD_REQUEST,
            format!("unsupported operation {other:?} by POST"),
        ),
        None => text(StatusCode::BAD_REQUEST, "missing `operation`"),
    }
}

async fn pki_operation(state: &HttpState, integration: &str, der: &[u8]) -> Response {
    match state.scep.pki_operation(integration, der).await {
        Ok(reply) => binary("application/x-pki-message", reply),
        Err(e) => error(e),
    }
}

async fn crl(State(state): State<HttpState>, Path(file): Path<String>) -> Response {
    if file.strip_suffix(".crl") != Some(DEVICE_CA) {
        return text(StatusCode::NOT_FOUND, format!("no CRL named {file:?}"));
    }
    match state.authorities.device_crl().await {
        Ok(der) => binary("application/pkix-crl", der),
        Err(e) => {
            tracing::error!(error = %e, "cannot serve the CRL");
            text(StatusCode::SERVICE_UNAVAILABLE, "the CRL is unavailable; retry")
        }
    }
}

fn error(error: ScepError) -> Response {
    let status = match error {
        ScepError::UnknownIntegration(_) => StatusCode::NOT_FOUND,
        ScepError::BadMessage(_) => StatusCode::BAD_REQUEST,
        ScepError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(status, error.to_string())
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut body: String = body.into();
    body.push('\n');
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn binary(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}
