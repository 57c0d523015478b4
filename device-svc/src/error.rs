//! device-svc's errors and their mapping to gRPC statuses with `ErrorInfo` reasons.

use service_kit::status::{
    Reason, database_status, internal_status, invalid_field, status_with_reason, status_with_reason_str,
};
use tonic::Code;

use crate::assertion::AssertionError;
use crate::device::DeviceStatus;

/// Everything that can go wrong in device-svc.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; `field` is its proto path (`profile.imei`).
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
    /// No device has this id.
    #[error("device {0} not found")]
    DeviceNotFound(String),
    /// The device is not linked to this user.
    #[error("user {user_id} is not linked to device {device_id}")]
    DeviceUserNotFound {
        /// The device.
        device_id: String,
        /// The user.
        user_id: String,
    },
    /// The lifecycle transition is not allowed from the device's current status.
    #[error("cannot {action} a device that is {}", from.as_str())]
    IllegalDeviceStatus {
        /// The attempted action (`suspend`, `enroll`, …).
        action: &'static str,
        /// The status the device is in.
        from: DeviceStatus,
    },
    /// A key id is already enrolled on another device.
    #[error("key {0} is already enrolled")]
    KeyAlreadyEnrolled(String),
    /// The assertion names a key nobody enrolled.
    #[error("unknown device key")]
    UnknownKey,
    /// The assertion is invalid (signature, claims, algorithm …).
    #[error("invalid device assertion: {0}")]
    InvalidAssertion(#[from] AssertionError),
    /// The assertion's `jti` was already used.
    #[error("device assertion already used")]
    AssertionReplayed,
    /// The assertion's user is not linked to the device.
    #[error("the assertion's user is not linked to the device")]
    AssertionUserNotLinked,
    /// The enrollment token is unknown, used, expired or for another user.
    #[error("the enrollment token is unknown, already used or expired")]
    InvalidEnrollmentToken,
    /// The device is suspended.
    #[error("device {0} is suspended")]
    DeviceSuspended(String),
    /// The device is deactivated.
    #[error("device {0} is deactivated")]
    DeviceDeactivated(String),
    /// A dependency failed in a way worth retrying; the detail stays in the logs.
    #[error("unavailable: {0}")]
    Unavailable(String),
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
            Error::DeviceNotFound(_) => status_with_reason_str(Code::NotFound, "DEVICE_NOT_FOUND", message),
            Error::DeviceUserNotFound { .. } => {
                status_with_reason_str(Code::NotFound, "DEVICE_USER_NOT_FOUND", message)
            }
            Error::IllegalDeviceStatus { .. } => {
                status_with_reason_str(Code::FailedPrecondition, "ILLEGAL_DEVICE_STATUS", message)
            }
            Error::KeyAlreadyEnrolled(_) => {
                status_with_reason_str(Code::AlreadyExists, "KEY_ALREADY_ENROLLED", message)
            }
            Error::UnknownKey => status_with_reason_str(Code::Unauthenticated, "UNKNOWN_DEVICE_KEY", message),
            Error::InvalidAssertion(_) => {
                status_with_reason_str(Code::Unauthenticated, "INVALID_DEVICE_ASSERTION", message)
            }
            Error::AssertionReplayed => status_with_reason_str(Code::Unauthenticated, "ASSERTION_REPLAYED", message),
            Error::AssertionUserNotLinked => {
                status_with_reason_str(Code::Unauthenticated, "INVALID_DEVICE_ASSERTION", message)
            }
            Error::InvalidEnrollmentToken => {
                status_with_reason_str(Code::Unauthenticated, "INVALID_ENROLLMENT_TOKEN", message)
            }
            Error::DeviceSuspended(_) => status_with_reason_str(Code::FailedPrecondition, "DEVICE_SUSPENDED", message),
            Error::DeviceDeactivated(_) => {
                status_with_reason_str(Code::FailedPrecondition, "DEVICE_DEACTIVATED", message)
            }
            Error::Unavailable(detail) => {
                tracing::error!(%detail, "dependency unavailable");
                status_with_reason(Code::Unavailable, Reason::Unavailable, "temporarily unavailable; retry")
            }
            Error::Database(e) => database_status(&e),
            Error::Corrupt(detail) => internal_status(&format!("corrupt stored data: {detail}")),
        }
    }
}

/// device-svc's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
