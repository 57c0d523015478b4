//! Sessions: creation with a one-time token, validation with idle refresh, revocation (feeding
//! the revocation feed), and single-use authorization codes.

use std::sync::Arc;

use portcullis_proto::session::v1 as pb;

use crate::error::{Error, Result};
use crate::feed::RevocationFeed;
use crate::model::{Session, SessionState, UserStatus, new_id, now_micros};
use crate::session_cache::SessionCache;
use crate::store::{AuthorizationCode, Redemption, SessionSelector, Store};
use crate::tokens;
use crate::validate;

/// Authentication method references a session may carry (RFC 8176's registry).
const AMR_VALUES: &[&str] = &[
    "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pwd", "rba", "retina", "sc", "sms", "swk",
    "tel", "user", "vbm", "wia",
];

const SECOND_US: i64 = 1_000_000;
const MINUTE_US: i64 = 60 * SECOND_US;
const DAY_US: i64 = 24 * 60 * MINUTE_US;
/// Okta's defaults when the policy gives none: two hours idle, a day at most.
const DEFAULT_IDLE_US: i64 = 2 * 60 * MINUTE_US;
const DEFAULT_LIFETIME_US: i64 = DAY_US;
/// Authorization codes live a minute.
const CODE_LIFETIME_US: i64 = MINUTE_US;

/// Session operations.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    feed: Arc<RevocationFeed>,
    cache: Arc<SessionCache>,
}

fn duration_us(field: &str, value: Option<prost_types::Duration>, default: i64, max: i64) -> Result<i64> {
    let Some(value) = value else { return Ok(default) };
    let us = value
        .seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(value.nanos) / 1_000);
    if !(SECOND_US..=max).contains(&us) {
        return Err(Error::field(
            field,
            format!("must be between 1 second and {} days", max / DAY_US),
        ));
    }
    Ok(us)
}

/// Whether validating at `now` should move the session's last activity: often enough for the
/// idle timeout to be right within a tenth of itself (at most a minute), rarely enough that
/// validation is nearly always a read.
fn needs_touch(session: &Session, now: i64) -> bool {
    now - session.last_active_at >= (session.idle_timeout_us / 10).min(MINUTE_US)
}

impl Sessions {
    /// Sessions over `store`, announcing revocations on `feed`, validating through `cache`.
    pub fn new(store: Store, feed: Arc<RevocationFeed>, cache: Arc<SessionCache>) -> Self {
        Self { store, feed, cache }
    }

    /// Starts a session; returns it and its token (the only time the token exists outside the
    /// caller).
    pub async fn create(&self, request: pb::CreateSessionRequest, actor: &str) -> Result<(Session, String)> {
        let pb::CreateSessionRequest {
            user_id,
            device_id,
            amr,
            device_authenticator,
            idle_timeout,
            max_lifetime,
            client_ip,
            user_agent,
        } = request;
        validate::identifier("user_id", &user_id)?;
        if !device_id.is_empty() {
            validate::identifier("device_id", &device_id)?;
        }
        if device_authenticator && device_id.is_empty() {
            return Err(Error::field(
                "device_id",
                "is required for a device authenticator session",
            ));
        }
        if amr.is_empty() {
            return Err(Error::field("amr", "at least one authentication method is required"));
        }
        if let Some(unknown) = amr.iter().find(|m| !AMR_VALUES.contains(&m.as_str())) {
            return Err(Error::field(
                "amr",
                format!("unknown authentication method {unknown:?}"),
            ));
        }
        let idle_timeout_us = duration_us("idle_timeout", idle_timeout, DEFAULT_IDLE_US, 30 * DAY_US)?;
        let lifetime_us = duration_us(
            "max_lifetime",
            max_lifetime,
            DEFAULT_LIFETIME_US.max(idle_timeout_us),
            90 * DAY_US,
        )?;
        if lifetime_us < idle_timeout_us {
            return Err(Error::field("max_lifetime", "must be at least idle_timeout"));
        }
        validate::length("client_ip", &client_ip, 0, 64)?;
        validate::length("user_agent", &user_agent, 0, 1024)?;
        let user = self.store.get_user(&user_id).await?;
        if user.status != UserStatus::Active {
            return Err(Error::UserNotActive);
        }
        let token = tokens::new_secret().map_err(|e| Error::Secret(e.to_string()))?;
        let now = now_micros();
        let mut amr = amr;
        amr.dedup();
        let session = Session {
            id: new_id(),
            user_id,
            device_id,
            amr,
            device_authenticator,
            created_at: now,
            last_active_at: now,
            idle_timeout_us,
            expires_at: now + lifetime_us,
            revoked_at: None,
            revocation_reason: pb::RevocationReason::Unspecified,
            client_ip,
            user_agent,
        };
        self.store
            .create_session(&session, &tokens::secret_hash(&token), actor)
            .await?;
        Ok((session, token))
    }

    /// The live session `token` stands for.
    pub async fn validate(&self, token: &str) -> Result<Session> {
        if !tokens::well_formed(token) {
            return Err(Error::InvalidSession);
        }
        let token_hash = tokens::secret_hash(token);
        let now = now_micros();
        // A cached session is live as of its last validation here and was not revoked since (a
        // revocation evicts it). If it looks expired, another replica may have refreshed it:
        // the database decides.
        if let Some(mut session) = self.cache.get(&token_hash) {
            if session.state(now) == SessionState::Active {
                if needs_touch(&session, now) {
                    self.store.touch_session(&session.id, now).await?;
                    self.cache.touch(&token_hash, now);
                    session.last_active_at = now;
                }
                return Ok(session);
            }
            self.cache.evict(&session.id);
        }
        let generation = self.cache.generation();
        let mut session = self
            .store
            .session_by_token_hash(&token_hash)
            .await?
            .ok_or(Error::InvalidSession)?;
        match session.state(now) {
            SessionState::Revoked => return Err(Error::SessionRevoked),
            SessionState::Expired => return Err(Error::SessionExpired),
            SessionState::Active => {}
        }
        if needs_touch(&session, now) {
            self.store.touch_session(&session.id, now).await?;
            session.last_active_at = now;
        }
        self.cache.insert(generation, &token_hash, &session);
        Ok(session)
    }

    /// Ends one session.
    pub async fn revoke(&self, session_id: &str, reason: pb::RevocationReason, actor: &str) -> Result<Session> {
        validate::identifier("session_id", session_id)?;
        let (session, record) = self.store.revoke_session(session_id, reason, actor).await?;
        self.feed.announce(record.as_slice());
        Ok(session)
    }

    /// Ends the sessions of a user or a device, once per idempotency key.
    pub async fn revoke_many(&self, request: pb::RevokeSessionsRequest, actor: &str) -> Result<i64> {
        let pb::RevokeSessionsRequest {
            user_id,
            device_id,
            device_authenticator_only,
            reason,
            idempotency_key,
        } = request;
        if user_id.is_empty() && device_id.is_empty() {
            return Err(Error::field("user_id", "user_id or device_id is required"));
        }
        if !user_id.is_empty() {
            validate::identifier("user_id", &user_id)?;
        }
        if !device_id.is_empty() {
            validate::identifier("device_id", &device_id)?;
        }
        if device_authenticator_only && device_id.is_empty() {
            return Err(Error::field("device_id", "is required with device_authenticator_only"));
        }
        validate::length("idempotency_key", &idempotency_key, 0, 255)?;
        let reason = match pb::RevocationReason::try_from(reason) {
            Ok(pb::RevocationReason::Unspecified) => pb::RevocationReason::Admin,
            Ok(reason) => reason,
            Err(_) => return Err(Error::field("reason", "unknown value")),
        };
        let selector = SessionSelector {
            user_id,
            device_id,
            device_authenticator_only,
        };
        let (count, revoked) = self
            .store
            .revoke_sessions(&selector, reason, &idempotency_key, actor)
            .await?;
        self.feed.announce(&revoked);
        Ok(count)
    }

    /// Issues a single-use code for a live session.
    pub async fn issue_code(&self, request: pb::IssueAuthorizationCodeRequest) -> Result<(String, i64)> {
        let pb::IssueAuthorizationCodeRequest {
            session_id,
            client_id,
            redirect_uri,
            code_challenge,
            code_challenge_method,
            nonce,
            scopes,
        } = request;
        validate::identifier("session_id", &session_id)?;
        validate::identifier("client_id", &client_id)?;
        validate::length("redirect_uri", &redirect_uri, 1, 2048)?;
        if code_challenge_method != "S256" {
            return Err(Error::field("code_challenge_method", "only S256 is supported"));
        }
        if !tokens::pkce_well_formed(&code_challenge) {
            return Err(Error::field(
                "code_challenge",
                "must be 43 to 128 unreserved characters (RFC 7636)",
            ));
        }
        validate::length("nonce", &nonce, 0, 512)?;
        if scopes.len() > 32 {
            return Err(Error::field("scopes", "at most 32 scopes"));
        }
        for scope in &scopes {
            validate::length("scopes", scope, 1, 128)?;
            if scope.contains(' ') {
                return Err(Error::field("scopes", "a scope must not contain spaces"));
            }
        }
        let session = self.store.get_session(&session_id).await?;
        match session.state(now_micros()) {
            SessionState::Active => {}
            SessionState::Revoked => return Err(Error::SessionRevoked),
            SessionState::Expired => return Err(Error::SessionExpired),
        }
        let code = tokens::new_secret().map_err(|e| Error::Secret(e.to_string()))?;
        let expires_at = now_micros() + CODE_LIFETIME_US;
        let stored = AuthorizationCode {
            session_id,
            client_id,
            redirect_uri,
            code_challenge,
            code_challenge_method,
            nonce,
            scopes,
            expires_at,
        };
        self.store.insert_code(&tokens::secret_hash(&code), &stored).await?;
        Ok((code, expires_at))
    }

    /// Redeems a code once, for the client and redirect URI it was issued to, with the PKCE
    /// verifier. A reused code revokes its session.
    pub async fn redeem_code(
        &self,
        request: pb::RedeemAuthorizationCodeRequest,
        actor: &str,
    ) -> Result<(Session, AuthorizationCode)> {
        let pb::RedeemAuthorizationCodeRequest {
            code,
            client_id,
            redirect_uri,
            code_verifier,
        } = request;
        if !tokens::well_formed(&code) {
            return Err(Error::InvalidGrant("unknown code"));
        }
        if !tokens::pkce_well_formed(&code_verifier) {
            return Err(Error::field(
                "code_verifier",
                "must be 43 to 128 unreserved characters (RFC 7636)",
            ));
        }
        let matches = |stored: &AuthorizationCode| {
            if stored.client_id != client_id || stored.redirect_uri != redirect_uri {
                return Err(Error::InvalidGrant(
                    "the code was issued to another client or redirect URI",
                ));
            }
            if !tokens::pkce_s256_matches(&code_verifier, &stored.code_challenge) {
                return Err(Error::InvalidGrant("the code verifier does not match the challenge"));
            }
            Ok(())
        };
        let (redemption, revoked) = self
            .store
            .redeem_code(&tokens::secret_hash(&code), matches, actor)
            .await?;
        self.feed.announce(revoked.as_slice());
        let stored = match redemption {
            Redemption::Redeemed(stored) => stored,
            Redemption::Reused => return Err(Error::InvalidGrant("the code was already used; its session is revoked")),
            Redemption::Unknown => return Err(Error::InvalidGrant("unknown or expired code")),
        };
        let session = self.store.get_session(&stored.session_id).await?;
        match session.state(now_micros()) {
            SessionState::Active => Ok((session, stored)),
            SessionState::Revoked => Err(Error::SessionRevoked),
            SessionState::Expired => Err(Error::SessionExpired),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_writes_at_most_once_per_tenth_of_the_idle_timeout_or_minute() {
        let session = Session {
            id: "s".into(),
            user_id: "u".into(),
            device_id: String::new(),
            amr: vec![],
            device_authenticator: false,
            created_at: 0,
            last_active_at: 0,
            idle_timeout_us: 2 * 60 * MINUTE_US,
            expires_at: DAY_US,
            revoked_at: None,
            revocation_reason: pb::RevocationReason::Unspecified,
            client_ip: String::new(),
            user_agent: String::new(),
        };
        assert!(!needs_touch(&session, MINUTE_US - 1));
        assert!(needs_touch(&session, MINUTE_US));
        let short = Session {
            idle_timeout_us: 5 * MINUTE_US,
            ..session
        };
        assert!(needs_touch(&short, 30 * 1_000_000));
    }

    #[test]
    fn durations_must_be_between_a_second_and_the_maximum() {
        let d = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
        assert_eq!(duration_us("f", None, 7, DAY_US).unwrap(), 7);
        assert_eq!(duration_us("f", d(1), 7, DAY_US).unwrap(), SECOND_US);
        assert_eq!(duration_us("f", d(60), 7, DAY_US).unwrap(), MINUTE_US);
        assert!(
            duration_us(
                "f",
                Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 999_999_999
                }),
                7,
                DAY_US
            )
            .is_err()
        );
        assert!(duration_us("f", d(0), 7, DAY_US).is_err());
        assert!(duration_us("f", d(-1), 7, DAY_US).is_err());
        assert!(duration_us("f", d(86_401), 7, DAY_US).is_err());
        assert!(duration_us("f", d(i64::MAX), 7, DAY_US).is_err());
    }
}
