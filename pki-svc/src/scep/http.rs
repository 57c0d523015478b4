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
        .route("/scep/{integration}/challenge", get(dynamic_challenge))
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
                Ok(der) => pki_operation(&state, &integration, der).await,
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
        Some("PKIOperation") => pki_operation(&state, &integration, body.to_vec()).await,
        Some(other) => text(
            StatusCode::BAD_REQUEST,
            format!("unsupported operation {other:?} by POST"),
        ),
        None => text(StatusCode::BAD_REQUEST, "missing `operation`"),
    }
}

async fn pki_operation(state: &HttpState, integration: &str, der: Vec<u8>) -> Response {
    match state.scep.pki_operation(integration, der).await {
        Ok(reply) => binary("application/x-pki-message", reply),
        Err(e) => error(e),
    }
}

/// A one-time challenge for a dynamic integration, for an MDM holding its HTTP Basic
/// credentials (user: the integration's name). The body is what NDES's `mscep_admin` page says,
/// which MDMs parse, or just the challenge when the client asks for `text/plain`.
async fn dynamic_challenge(
    State(state): State<HttpState>,
    Path(integration): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let record = match state.scep.integration(&integration).await {
        Ok(record) => record,
        Err(e) => return error(e),
    };
    if record.challenge_type != crate::store::DYNAMIC {
        return text(StatusCode::NOT_FOUND, "this integration uses a static challenge");
    }
    let authorized = basic_credentials(&headers).is_some_and(|(user, password)| {
        // Always compare the password, so a wrong user name takes as long as a wrong password.
        let password_ok = crate::challenge::matches(&password, &record.secret_salt, &record.secret_hash);
        password_ok && user == record.name
    });
    if !authorized {
        let realm = format!("Basic realm=\"Portcullis SCEP {}\"", record.name);
        let mut response = text(
            StatusCode::UNAUTHORIZED,
            "HTTP Basic credentials of the integration are required",
        );
        if let Ok(value) = HeaderValue::from_str(&realm) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        return response;
    }
    let (challenge, _) = match crate::challenge::create_dynamic(state.authorities.store(), &record.name).await {
        Ok(created) => created,
        Err(e) => {
            tracing::error!(error = %e, "cannot make a dynamic challenge");
            return text(StatusCode::SERVICE_UNAVAILABLE, "cannot make a challenge now; retry");
        }
    };
    tracing::info!(integration = %record.name, "dynamic challenge issued");
    let wants_text = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|part| part.trim().starts_with("text/plain")));
    if wants_text {
        return text(StatusCode::OK, challenge);
    }
    let thumbprint = crate::scep::enroll::fingerprint(state.scep.ca_certificate()).to_uppercase();
    let minutes = crate::challenge::DYNAMIC_CHALLENGE_LIFETIME.as_secs() / 60;
    let body = format!(
        "<HTML><Head><Meta HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=UTF-8\">\
         <Title>Network Device Enrollment Service</Title></Head><Body BgColor=#FFFFFF>\
         <P> The thumbprint (hash value) for the CA certificate is: <B> {thumbprint} </B>\
         <P> The enrollment challenge password is: <B> {challenge} </B>\
         <P> This password can be used only once and will expire within {minutes} minutes.\
         </Body></HTML>\n"
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn crl(State(state): State<HttpState>, Path(file): Path<String>) -> Response {
    if file.strip_suffix(".crl") != Some(DEVICE_CA) {
        return text(StatusCode::NOT_FOUND, format!("no CRL named {file:?}"));
    }
    match state.authorities.device_crl().await {
        Ok(Some(der)) => binary("application/pkix-crl", der),
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            "the device CA publishes no CRL: its key usage lacks cRLSign",
        ),
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
