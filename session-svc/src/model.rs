//! What session-svc holds: users, groups, sessions and events, with proto conversions.

use std::collections::BTreeMap;

use portcullis_proto::session::v1 as pb;

/// Lifecycle status of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// May sign in.
    Active,
    /// May not sign in until unsuspended.
    Suspended,
    /// Deactivated; may be deleted.
    Deprovisioned,
}

impl UserStatus {
    /// Stored and filtered names.
    pub const NAMES: &'static [&'static str] = &["ACTIVE", "SUSPENDED", "DEPROVISIONED"];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "ACTIVE",
            UserStatus::Suspended => "SUSPENDED",
            UserStatus::Deprovisioned => "DEPROVISIONED",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ACTIVE" => Some(UserStatus::Active),
            "SUSPENDED" => Some(UserStatus::Suspended),
            "DEPROVISIONED" => Some(UserStatus::Deprovisioned),
            _ => None,
        }
    }

    fn to_proto(self) -> pb::UserStatus {
        match self {
            UserStatus::Active => pb::UserStatus::Active,
            UserStatus::Suspended => pb::UserStatus::Suspended,
            UserStatus::Deprovisioned => pb::UserStatus::Deprovisioned,
        }
    }
}

/// A person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Opaque, time-ordered id.
    pub id: String,
    /// As entered; unique without regard to case.
    pub login: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Free-form attributes (`user.profile.*`).
    pub profile: BTreeMap<String, String>,
    /// Lifecycle status.
    pub status: UserStatus,
    /// Created (µs).
    pub created_at: i64,
    /// Last changed (µs).
    pub updated_at: i64,
    /// Last successful sign-in (µs).
    pub last_login_at: Option<i64>,
    /// Locked after failed password attempts until then (µs).
    pub locked_until: Option<i64>,
    /// A password is set.
    pub has_password: bool,
    /// A TOTP authenticator is enrolled.
    pub has_totp: bool,
}

/// A named set of users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Opaque id.
    pub id: String,
    /// Unique without regard to case.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Created (µs).
    pub created_at: i64,
}

/// A session as stored (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Opaque id.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The device, or empty.
    pub device_id: String,
    /// Authentication methods (RFC 8176).
    pub amr: Vec<String>,
    /// Established with the device authenticator (FastPass).
    pub device_authenticator: bool,
    /// Created (µs).
    pub created_at: i64,
    /// Last validated (µs).
    pub last_active_at: i64,
    /// Idle timeout (µs).
    pub idle_timeout_us: i64,
    /// Hard expiry (µs).
    pub expires_at: i64,
    /// Revoked (µs).
    pub revoked_at: Option<i64>,
    /// Why it was revoked.
    pub revocation_reason: pb::RevocationReason,
    /// Client IP at creation.
    pub client_ip: String,
    /// User agent at creation.
    pub user_agent: String,
}

/// Where a session stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Usable.
    Active,
    /// Ended by revocation.
    Revoked,
    /// Ended by its idle timeout or maximum lifetime.
    Expired,
}

impl Session {
    /// When the session ends if not used again (µs).
    pub fn idle_expires_at(&self) -> i64 {
        self.last_active_at
            .saturating_add(self.idle_timeout_us)
            .min(self.expires_at)
    }

    /// Its state at `now` (µs).
    pub fn state(&self, now: i64) -> SessionState {
        if self.revoked_at.is_some() {
            SessionState::Revoked
        } else if now >= self.idle_expires_at() {
            SessionState::Expired
        } else {
            SessionState::Active
        }
    }
}

/// A sign-in event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Time-ordered id.
    pub id: String,
    /// `user.session.start`, …
    pub event_type: String,
    /// The user, or empty.
    pub user_id: String,
    /// The session, or empty.
    pub session_id: String,
    /// SPIFFE id of the caller, or `system`.
    pub actor: String,
    /// When (µs).
    pub created_at: i64,
    /// Details.
    pub details: BTreeMap<String, String>,
}

pub use service_kit::clock::{now_micros, timestamp};

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A revocation reason as events show it: `DEVICE_SUSPENDED`, without the enum's prefix.
pub fn reason_name(reason: pb::RevocationReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("REVOCATION_REASON_").unwrap_or(name)
}

impl User {
    /// The proto message, at time `now` (µs) so an expired lock is not shown.
    pub fn to_proto(&self, now: i64) -> pb::User {
        let User {
            id,
            login,
            email,
            display_name,
            profile,
            status,
            created_at,
            updated_at,
            last_login_at,
            locked_until,
            has_password,
            has_totp,
        } = self;
        pb::User {
            id: id.clone(),
            login: login.clone(),
            email: email.clone(),
            display_name: display_name.clone(),
            profile: profile.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            status: status.to_proto().into(),
            create_time: Some(timestamp(*created_at)),
            update_time: Some(timestamp(*updated_at)),
            last_login_time: last_login_at.map(timestamp),
            locked_until_time: locked_until.filter(|until| *until > now).map(timestamp),
            has_password: *has_password,
            has_totp: *has_totp,
        }
    }
}

impl From<&Group> for pb::Group {
    fn from(group: &Group) -> Self {
        let Group {
            id,
            name,
            description,
            created_at,
        } = group;
        pb::Group {
            id: id.clone(),
            name: name.clone(),
            description: description.clone(),
            create_time: Some(timestamp(*created_at)),
        }
    }
}

impl Session {
    /// The proto message, with the state at `now` (µs).
    pub fn to_proto(&self, now: i64) -> pb::Session {
        let Session {
            id,
            user_id,
            device_id,
            amr,
            device_authenticator,
            created_at,
            last_active_at,
            idle_timeout_us: _,
            expires_at,
            revoked_at,
            revocation_reason,
            client_ip,
            user_agent,
        } = self;
        let status = match self.state(now) {
            SessionState::Active => pb::SessionStatus::Active,
            SessionState::Revoked => pb::SessionStatus::Revoked,
            SessionState::Expired => pb::SessionStatus::Expired,
        };
        pb::Session {
            id: id.clone(),
            user_id: user_id.clone(),
            device_id: device_id.clone(),
            amr: amr.clone(),
            device_authenticator: *device_authenticator,
            status: status.into(),
            create_time: Some(timestamp(*created_at)),
            last_active_time: Some(timestamp(*last_active_at)),
            idle_expire_time: Some(timestamp(self.idle_expires_at())),
            expire_time: Some(timestamp(*expires_at)),
            revoke_time: revoked_at.map(timestamp),
            revocation_reason: (*revocation_reason).into(),
            client_ip: client_ip.clone(),
            user_agent: user_agent.clone(),
        }
    }
}

impl From<Event> for pb::Event {
    fn from(event: Event) -> Self {
        let Event {
            id,
            event_type,
            user_id,
            session_id,
            actor,
            created_at,
            details,
        } = event;
        pb::Event {
            id,
            event_type,
            user_id,
            session_id,
            actor,
            create_time: Some(timestamp(created_at)),
            details: details.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(last_active_at: i64, idle: i64, expires_at: i64) -> Session {
        Session {
            id: "s".into(),
            user_id: "u".into(),
            device_id: String::new(),
            amr: vec![],
            device_authenticator: false,
            created_at: 0,
            last_active_at,
            idle_timeout_us: idle,
            expires_at,
            revoked_at: None,
            revocation_reason: pb::RevocationReason::Unspecified,
            client_ip: String::new(),
            user_agent: String::new(),
        }
    }

    #[test]
    fn a_session_expires_at_the_earlier_of_idle_and_maximum_lifetime() {
        let s = session(100, 50, 1_000);
        assert_eq!(s.state(149), SessionState::Active);
        assert_eq!(s.state(150), SessionState::Expired);
        let s = session(980, 50, 1_000);
        assert_eq!(s.idle_expires_at(), 1_000);
        assert_eq!(s.state(1_000), SessionState::Expired);
    }

    #[test]
    fn revocation_wins_over_everything() {
        let mut s = session(100, 50, 1_000);
        s.revoked_at = Some(120);
        assert_eq!(s.state(110), SessionState::Revoked);
    }
}
