//! policy-svc's errors and their mapping to gRPC statuses with `ErrorInfo` reasons.

use service_kit::status::{ERROR_DOMAIN, database_status, internal_status, invalid_field, status_with_reason_str};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// Everything that can go wrong in policy-svc.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; `field` is its proto path.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// An expression does not parse.
    #[error("{field}: line {line}, column {column}: {reason}")]
    InvalidExpression {
        /// Where the expression was given.
        field: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// Why.
        reason: String,
    },
    /// The filter does not parse or names an unknown field.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// The page token was not issued for this query.
    #[error("invalid page token")]
    InvalidPageToken,
    /// No resource of this kind has this id.
    #[error("{kind} {id} not found")]
    NotFound {
        /// App, network zone, …
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// Another resource of this kind has this name (or client id).
    #[error("{kind} {name:?} already exists")]
    AlreadyExists {
        /// App, network zone, …
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// The resource is named by others and cannot be deleted.
    #[error("{what} is in use by {users}")]
    PolicyInUse {
        /// What was to be deleted.
        what: String,
        /// What names it.
        users: String,
    },
    /// The catch-all rule (or the default global session policy) cannot be deleted or reordered.
    #[error("{0}")]
    BuiltIn(String),
    /// A policy would hold more rules than allowed.
    #[error("a policy holds at most {0} rules, the catch-all included")]
    TooManyRules(usize),
    /// A configuration document does not parse or does not describe a valid configuration.
    #[error("configuration document: {0}")]
    InvalidDocument(String),
    /// The stored data cannot be read back (a bug or manual tampering).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl Error {
    /// An invalid field.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidField {
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
            Error::InvalidExpression {
                field,
                line,
                column,
                reason,
            } => {
                let mut details = ErrorDetails::with_error_info(
                    "INVALID_EXPRESSION",
                    ERROR_DOMAIN,
                    [
                        ("line".to_owned(), line.to_string()),
                        ("column".to_owned(), column.to_string()),
                    ],
                );
                details.add_bad_request_violation(field, format!("line {line}, column {column}: {reason}"));
                tonic::Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::InvalidFilter(_) => status_with_reason_str(Code::InvalidArgument, "INVALID_FILTER", message),
            Error::InvalidPageToken => status_with_reason_str(Code::InvalidArgument, "INVALID_PAGE_TOKEN", message),
            Error::NotFound { kind, .. } => {
                let reason = match kind {
                    "app" => "APP_NOT_FOUND",
                    "network zone" => "NETWORK_ZONE_NOT_FOUND",
                    "device assurance policy" => "DEVICE_ASSURANCE_POLICY_NOT_FOUND",
                    "rule" => "RULE_NOT_FOUND",
                    _ => "POLICY_NOT_FOUND",
                };
                status_with_reason_str(Code::NotFound, reason, message)
            }
            Error::AlreadyExists { .. } => status_with_reason_str(Code::AlreadyExists, "ALREADY_EXISTS", message),
            Error::PolicyInUse { .. } => status_with_reason_str(Code::FailedPrecondition, "POLICY_IN_USE", message),
            Error::BuiltIn(_) => status_with_reason_str(Code::FailedPrecondition, "BUILT_IN", message),
            Error::TooManyRules(_) => status_with_reason_str(Code::FailedPrecondition, "TOO_MANY_RULES", message),
            Error::InvalidDocument(_) => status_with_reason_str(Code::InvalidArgument, "INVALID_DOCUMENT", message),
            Error::Corrupt(detail) => internal_status(&detail),
            Error::Database(e) => database_status(&e),
        }
    }
}
