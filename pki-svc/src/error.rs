//! pki-svc's errors and their mapping to gRPC statuses with `ErrorInfo` reasons.

use service_kit::status::{database_status, internal_status, invalid_field, status_with_reason_str};
use tonic::Code;

/// Everything that can go wrong in pki-svc's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; `field` is its proto path.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The filter text does not parse or names an unknown field.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// The page token was not issued for this query, was altered, or is garbage.
    #[error("invalid page token")]
    InvalidPageToken,
    /// No SCEP integration has this name.
    #[error("SCEP integration {0:?} not found")]
    IntegrationNotFound(String),
    /// A SCEP integration with this name exists.
    #[error("SCEP integration {0:?} already exists")]
    IntegrationExists(String),
    /// No certificate has this serial number.
    #[error("certificate {0} not found")]
    CertificateNotFound(String),
    /// No trusted CA has this id.
    #[error("trusted CA {0:?} not found")]
    TrustedCaNotFound(String),
    /// No mobile integration has this id.
    #[error("mobile integration {0:?} not found")]
    MobileIntegrationNotFound(String),
    /// No service CA is configured.
    #[error("no service CA is configured (service_ca_cert, service_ca_key)")]
    NoServiceCa,
    /// Certificate generation or signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The database failed; the message stays in the logs.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Stored data could not be read back (a bug or manual tampering).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl Error {
    /// An invalid field.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidField { field, reason } => invalid_field(&field, reason),
            Error::InvalidFilter(_) => invalid_field("filter", message),
            Error::InvalidPageToken => invalid_field("page_token", message),
            Error::IntegrationNotFound(_) => {
                status_with_reason_str(Code::NotFound, "SCEP_INTEGRATION_NOT_FOUND", message)
            }
            Error::IntegrationExists(_) => {
                status_with_reason_str(Code::AlreadyExists, "SCEP_INTEGRATION_EXISTS", message)
            }
            Error::CertificateNotFound(_) => status_with_reason_str(Code::NotFound, "CERTIFICATE_NOT_FOUND", message),
            Error::TrustedCaNotFound(_) => status_with_reason_str(Code::NotFound, "TRUSTED_CA_NOT_FOUND", message),
            Error::MobileIntegrationNotFound(_) => {
                status_with_reason_str(Code::NotFound, "MOBILE_INTEGRATION_NOT_FOUND", message)
            }
            Error::NoServiceCa => status_with_reason_str(Code::FailedPrecondition, "NO_SERVICE_CA", message),
            Error::Signing(detail) => internal_status(&format!("signing failed: {detail}")),
            Error::Database(e) => database_status(&e),
            Error::Corrupt(detail) => internal_status(&format!("corrupt stored data: {detail}")),
        }
    }
}

/// pki-svc's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
