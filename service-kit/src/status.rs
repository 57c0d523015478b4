//! gRPC statuses carrying a `google.rpc.ErrorInfo` reason (and `BadRequest` field violations).

use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Portcullis error.
pub const ERROR_DOMAIN: &str = "portcullis.dev";

/// Reasons shared by every service; each service adds its own through [`status_with_reason_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No usable client certificate.
    Unauthenticated,
    /// The access rules deny this caller this method.
    PermissionDenied,
    /// A request field is invalid.
    InvalidArgument,
    /// Something failed inside the service; details are in its logs.
    Internal,
    /// A dependency (database, another service) is unavailable.
    Unavailable,
}

impl Reason {
    /// The `ErrorInfo.reason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::Internal => "INTERNAL",
            Reason::Unavailable => "UNAVAILABLE",
        }
    }
}

/// A status with an `ErrorInfo` detail naming `reason`.
pub fn status_with_reason(code: tonic::Code, reason: Reason, message: impl Into<String>) -> tonic::Status {
    status_with_reason_str(code, reason.as_str(), message)
}

/// A status with an `ErrorInfo` detail naming a service-specific `reason` such as `DEVICE_SUSPENDED`.
pub fn status_with_reason_str(code: tonic::Code, reason: &str, message: impl Into<String>) -> tonic::Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, []);
    tonic::Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT with an `ErrorInfo` reason and a `BadRequest` naming the offending field.
pub fn invalid_field(field: &str, description: impl Into<String>) -> tonic::Status {
    let description = description.into();
    let mut details = ErrorDetails::with_error_info(Reason::InvalidArgument.as_str(), ERROR_DOMAIN, []);
    details.add_bad_request_violation(field, description.clone());
    tonic::Status::with_error_details(tonic::Code::InvalidArgument, format!("{field}: {description}"), details)
}

/// The status for a database error: UNAVAILABLE when the database cannot be reached, INTERNAL
/// otherwise. The driver's message (which may hold SQL) goes to the log, never to the caller.
pub fn database_status(error: &sqlx::Error) -> tonic::Status {
    tracing::error!(error = %error, "database error");
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => status_with_reason(
            tonic::Code::Unavailable,
            Reason::Unavailable,
            "the database is unavailable",
        ),
        _ => status_with_reason(tonic::Code::Internal, Reason::Internal, "internal error"),
    }
}

/// INTERNAL for a fault the caller cannot fix; `detail` goes to the log only.
pub fn internal_status(detail: &str) -> tonic::Status {
    tracing::error!(%detail, "internal error");
    status_with_reason(tonic::Code::Internal, Reason::Internal, "internal error")
}
