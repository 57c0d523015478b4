//! Checking who someone is: passwords with lockout, and TOTP with replay protection.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::{User, UserStatus, now_micros};
use crate::password::{self, PasswordHasher};
use crate::store::Store;
use crate::totp::{self, SeedCipher};
use crate::validate;

/// The issuer shown in authenticator apps.
const TOTP_ISSUER: &str = "Portcullis";

/// Lockout after failed password attempts.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account.
    pub threshold: i64,
    /// How long the lock lasts.
    pub duration: Duration,
}

/// Password and TOTP checks.
#[derive(Debug, Clone)]
pub struct Authenticators {
    store: Store,
    hasher: PasswordHasher,
    seeds: Arc<SeedCipher>,
    lockout: LockoutPolicy,
}

impl Authenticators {
    /// Checks over `store`.
    pub fn new(store: Store, hasher: PasswordHasher, seeds: SeedCipher, lockout: LockoutPolicy) -> Self {
        Self {
            store,
            hasher,
            seeds: Arc::new(seeds),
            lockout,
        }
    }

    /// Sets a user's password.
    pub async fn set_password(&self, user_id: &str, password: String, actor: &str) -> Result<()> {
        validate::identifier("user_id", user_id)?;
        let chars = password.chars().count();
        if !(password::MIN_CHARS..=password::MAX_CHARS).contains(&chars) {
            return Err(Error::field(
                "password",
                format!("must be {} to {} characters", password::MIN_CHARS, password::MAX_CHARS),
            ));
        }
        self.store.get_user(user_id).await?;
        let hash = self
            .hasher
            .hash(password)
            .await
            .map_err(|e| Error::Secret(e.to_string()))?;
        self.store.set_password(user_id, &hash, actor).await
    }

    /// The user whose login and password these are. The hash work is done whether or not the
    /// user exists, has a password, or is locked, so timing tells nothing.
    pub async fn verify_password(&self, login: &str, password: String, actor: &str) -> Result<User> {
        validate::login("login", login)?;
        if password.is_empty() || password.chars().count() > password::MAX_CHARS {
            return Err(Error::InvalidCredentials);
        }
        let state = self.store.password_state(login).await?;
        let stored = state.as_ref().and_then(|s| s.hash.clone());
        let matches = self
            .hasher
            .verify(password, stored)
            .await
            .map_err(|e| Error::Secret(e.to_string()))?;
        let Some(state) = state else {
            return Err(Error::InvalidCredentials);
        };
        let now = now_micros();
        if state.user.locked_until.is_some_and(|until| until > now) {
            return Err(Error::LockedOut);
        }
        if !matches {
            let lock_until = now + i64::try_from(self.lockout.duration.as_micros()).unwrap_or(i64::MAX / 2);
            let locked = self
                .store
                .record_password_failure(&state.user.id, self.lockout.threshold, lock_until, actor)
                .await?;
            return Err(if locked.is_some() {
                Error::LockedOut
            } else {
                Error::InvalidCredentials
            });
        }
        if state.user.status != UserStatus::Active {
            return Err(Error::UserNotActive);
        }
        self.store.record_password_success(&state.user.id).await?;
        self.store.get_user(&state.user.id).await
    }

    /// Starts (or restarts) TOTP enrollment; the URI is shown once.
    pub async fn enroll_totp(&self, user_id: &str, actor: &str) -> Result<String> {
        validate::identifier("user_id", user_id)?;
        let user = self.store.get_user(user_id).await?;
        let seed = totp::new_seed().map_err(|e| Error::Secret(e.to_string()))?;
        let sealed = self
            .seeds
            .seal(&seed, user_id)
            .map_err(|e| Error::Secret(e.to_string()))?;
        self.store.set_totp_seed(user_id, &sealed, actor).await?;
        Ok(totp::otpauth_uri(TOTP_ISSUER, &user.login, &seed))
    }

    /// Checks a TOTP code; each step's code works once.
    pub async fn verify_totp(&self, user_id: &str, code: &str) -> Result<User> {
        validate::identifier("user_id", user_id)?;
        let (user, sealed) = self.store.totp_seed(user_id).await?;
        let sealed = sealed.ok_or(Error::TotpNotEnrolled)?;
        let seed = self
            .seeds
            .open(&sealed, user_id)
            .map_err(|e| Error::Secret(e.to_string()))?;
        let now = now_micros() / 1_000_000;
        let step = totp::matching_step(&seed, code.trim(), now).ok_or(Error::InvalidTotp)?;
        // Refused users do not spend the step.
        if user.status != UserStatus::Active {
            return Err(Error::UserNotActive);
        }
        if !self.store.use_totp_step(user_id, step).await? {
            return Err(Error::TotpReplayed);
        }
        Ok(user)
    }
}
