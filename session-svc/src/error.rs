//! session-svc's errors and their mapping to gRPC statuses with `ErrorInfo` reasons.

use service_kit::status::{database_status, internal_status, invalid_field, status_with_reason_str};
use tonic::Code;

use crate::model::UserStatus;

/// Everything that can go wrong in session-svc.
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
    /// The filter does not parse or names an unknown field.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// The page token was not issued for this query.
    #[error("invalid page token")]
    InvalidPageToken,
    /// No user has this id or login.
    #[error("user {0} not found")]
    UserNotFound(String),
    /// Another user has this login.
    #[error("login {0} is taken")]
    LoginTaken(String),
    /// The user's status does not allow the action.
    #[error("cannot {action} a user who is {}", from.as_str())]
    IllegalUserStatus {
        /// The action.
        action: &'static str,
        /// The status.
        from: UserStatus,
    },
    /// No group has this id.
    #[error("group {0} not found")]
    GroupNotFound(String),
    /// Another group has this name.
    #[error("group name {0} is taken")]
    GroupNameTaken(String),
    /// The user is not a member of the group.
    #[error("user {user_id} is not a member of group {group_id}")]
    MembershipNotFound {
        /// The group.
        group_id: String,
        /// The user.
        user_id: String,
    },
    /// Wrong login or password (which one is not said).
    #[error("invalid login or password")]
    InvalidCredentials,
    /// The account is locked after failed attempts.
    #[error("the account is locked; try again later")]
    LockedOut,
    /// The user may not sign in (suspended or deprovisioned).
    #[error("the user may not sign in")]
    UserNotActive,
    /// The TOTP code is wrong.
    #[error("invalid TOTP code")]
    InvalidTotp,
    /// The TOTP code was already used in its time step.
    #[error("TOTP code already used")]
    TotpReplayed,
    /// The user has no TOTP authenticator.
    #[error("no TOTP authenticator is enrolled")]
    TotpNotEnrolled,
    /// No session has this id.
    #[error("session {0} not found")]
    SessionNotFound(String),
    /// The token names no session.
    #[error("invalid session token")]
    InvalidSession,
    /// The session ended by timeout.
    #[error("the session has expired")]
    SessionExpired,
    /// The session was revoked.
    #[error("the session was revoked")]
    SessionRevoked,
    /// The authorization code is unknown, expired, used, or does not match the request.
    #[error("invalid authorization code: {0}")]
    InvalidGrant(&'static str),
    /// The feed cursor is older than what the feed keeps.
    #[error("the cursor is older than the revocations kept; resynchronise and watch from now")]
    CursorExpired,
    /// Secrets could not be handled (random source, TOTP key).
    #[error("secret handling failed: {0}")]
    Secret(String),
    /// The database failed; details stay in the logs.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Stored data could not be read back.
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
        let reason = |code, reason: &str| status_with_reason_str(code, reason, message.clone());
        match error {
            Error::InvalidField { field, reason } => invalid_field(&field, reason),
            Error::InvalidFilter(_) => invalid_field("filter", message),
            Error::InvalidPageToken => invalid_field("page_token", message),
            Error::UserNotFound(_) => reason(Code::NotFound, "USER_NOT_FOUND"),
            Error::LoginTaken(_) => reason(Code::AlreadyExists, "LOGIN_TAKEN"),
            Error::IllegalUserStatus { .. } => reason(Code::FailedPrecondition, "ILLEGAL_USER_STATUS"),
            Error::GroupNotFound(_) => reason(Code::NotFound, "GROUP_NOT_FOUND"),
            Error::GroupNameTaken(_) => reason(Code::AlreadyExists, "GROUP_NAME_TAKEN"),
            Error::MembershipNotFound { .. } => reason(Code::NotFound, "MEMBERSHIP_NOT_FOUND"),
            Error::InvalidCredentials => reason(Code::Unauthenticated, "INVALID_CREDENTIALS"),
            Error::LockedOut => reason(Code::PermissionDenied, "LOCKED_OUT"),
            Error::UserNotActive => reason(Code::PermissionDenied, "USER_NOT_ACTIVE"),
            Error::InvalidTotp => reason(Code::Unauthenticated, "INVALID_TOTP"),
            Error::TotpReplayed => reason(Code::Unauthenticated, "TOTP_REPLAYED"),
            Error::TotpNotEnrolled => reason(Code::FailedPrecondition, "TOTP_NOT_ENROLLED"),
            Error::SessionNotFound(_) => reason(Code::NotFound, "SESSION_NOT_FOUND"),
            Error::InvalidSession => reason(Code::Unauthenticated, "INVALID_SESSION"),
            Error::SessionExpired => reason(Code::Unauthenticated, "SESSION_EXPIRED"),
            Error::SessionRevoked => reason(Code::Unauthenticated, "SESSION_REVOKED"),
            Error::InvalidGrant(_) => reason(Code::InvalidArgument, "INVALID_GRANT"),
            Error::CursorExpired => reason(Code::OutOfRange, "CURSOR_EXPIRED"),
            Error::Secret(detail) => internal_status(&format!("secret handling failed: {detail}")),
            Error::Database(e) => database_status(&e),
            Error::Corrupt(detail) => internal_status(&format!("corrupt stored data: {detail}")),
        }
    }
}

/// session-svc's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
