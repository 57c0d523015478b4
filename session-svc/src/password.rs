//! Passwords: argon2id with OWASP's recommended parameters, hashed on a bounded blocking pool, and
//! verified in the same time whether or not the user exists.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use tokio::sync::Semaphore;

/// OWASP's argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane.
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over memory.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// Shortest password accepted.
pub const MIN_CHARS: usize = 8;
/// Longest password accepted; bounds the work an attacker can ask for.
pub const MAX_CHARS: usize = 256;

/// Why a password could not be hashed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The stored hash is not an argon2id PHC string this code wrote.
    #[error("the stored password hash is malformed")]
    MalformedHash,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
    /// argon2 refused its parameters (a bug).
    #[error("argon2 failed: {0}")]
    Argon2(String),
    /// The hashing pool is shut down.
    #[error("the password hashing pool is closed")]
    PoolClosed,
}

/// Hashes and verifies passwords on at most `permits` blocking threads at once, so a burst of
/// sign-ins queues here instead of starving the async runtime or exhausting memory (each hash
/// takes 19 MiB).
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the user does not exist so the
    /// answer takes as long as for a real user.
    decoy: Arc<str>,
}

fn argon2() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, Some(HASH_LEN))
        .map_err(|e| PasswordError::Argon2(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string `$argon2id$v=19$m=…,t=…,p=…$salt$hash` of `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new().fill(&mut salt).map_err(|_| PasswordError::Random)?;
    let mut out = [0u8; HASH_LEN];
    argon2()?
        .hash_password_into(password.as_bytes(), &salt, &mut out)
        .map_err(|e| PasswordError::Argon2(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={MEMORY_KIB},t={ITERATIONS},p={PARALLELISM}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Whether `password` matches the PHC string `stored`, with the parameters `stored` names (so
/// hashes made under older parameters keep working).
pub fn verify(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let parts: Vec<&str> = stored.split('$').collect();
    let ["", "argon2id", "v=19", params, salt, expected] = parts.as_slice() else {
        return Err(PasswordError::MalformedHash);
    };
    let mut memory = None;
    let mut iterations = None;
    let mut parallelism = None;
    for pair in params.split(',') {
        let (name, value) = pair.split_once('=').ok_or(PasswordError::MalformedHash)?;
        let value: u32 = value.parse().map_err(|_| PasswordError::MalformedHash)?;
        match name {
            "m" => memory = Some(value),
            "t" => iterations = Some(value),
            "p" => parallelism = Some(value),
            _ => return Err(PasswordError::MalformedHash),
        }
    }
    let (Some(m), Some(t), Some(p)) = (memory, iterations, parallelism) else {
        return Err(PasswordError::MalformedHash);
    };
    let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| PasswordError::MalformedHash)?;
    let expected = STANDARD_NO_PAD
        .decode(expected)
        .map_err(|_| PasswordError::MalformedHash)?;
    if expected.is_empty() || expected.len() > 64 {
        return Err(PasswordError::MalformedHash);
    }
    let params = Params::new(m, t, p, Some(expected.len())).map_err(|_| PasswordError::MalformedHash)?;
    let mut actual = vec![0u8; expected.len()];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &salt, &mut actual)
        .map_err(|e| PasswordError::Argon2(e.to_string()))?;
    Ok(actual.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
}

impl PasswordHasher {
    /// A hasher running at most `permits` hashes at once.
    pub fn new(permits: usize) -> Result<Self, PasswordError> {
        let mut decoy_password = [0u8; 32];
        SystemRandom::new()
            .fill(&mut decoy_password)
            .map_err(|_| PasswordError::Random)?;
        let decoy = hash(&STANDARD_NO_PAD.encode(decoy_password))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            decoy: decoy.into(),
        })
    }

    async fn on_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::PoolClosed)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| PasswordError::PoolClosed)?
    }

    /// Hashes `password` on the pool.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.on_pool(move || hash(&password)).await
    }

    /// Verifies `password` against `stored`, or against the decoy when there is no stored hash
    /// (unknown user, or no password set) — then the answer is always false, after the same work.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, PasswordError> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.decoy.to_string());
        let matches = self.on_pool(move || verify(&password, &stored)).await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery staple").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery staple", &stored).unwrap());
        assert!(!verify("correct horse battery stapler", &stored).unwrap());
        assert_ne!(hash("same").unwrap(), hash("same").unwrap(), "salts differ");
    }

    #[test]
    fn malformed_hashes_are_errors_not_panics() {
        for stored in [
            "",
            "$argon2i$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=19$m=x$a$b",
            "$$$$$$",
        ] {
            assert_eq!(verify("x", stored), Err(PasswordError::MalformedHash), "{stored}");
        }
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies_but_costs_the_same_work() {
        let hasher = PasswordHasher::new(2).unwrap();
        let stored = hasher.hash("password-1".into()).await.unwrap();
        assert!(hasher.verify("password-1".into(), Some(stored)).await.unwrap());
        let started = std::time::Instant::now();
        assert!(!hasher.verify("password-1".into(), None).await.unwrap());
        // The decoy is a real argon2id hash, so this took real work (tens of milliseconds).
        assert!(started.elapsed() > std::time::Duration::from_millis(2));
    }
}
