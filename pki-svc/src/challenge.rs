//! SCEP challenges. Static ones (and dynamic integrations' HTTP Basic passwords) are generated or
//! given, shown once, stored as a salted SHA-256 and compared in constant time. Dynamic ones are
//! random, stored as their SHA-256, and work once within an hour.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Shortest challenge accepted from an operator.
pub const MIN_GIVEN_LEN: usize = 16;
/// Longest challenge accepted.
pub const MAX_LEN: usize = 256;
/// Random bytes in a generated challenge: 128 bits, as 32 hex digits. Hex, because clients put
/// the challenge in a PrintableString, which has no room for base64's `_` or `/`.
const GENERATED_BYTES: usize = 16;
const SALT_BYTES: usize = 16;

/// A challenge and what is stored of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedChallenge {
    /// Random salt.
    pub salt: Vec<u8>,
    /// SHA-256(salt || challenge).
    pub hash: Vec<u8>,
}

/// Why a challenge could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// A given challenge is too short, too long or not printable ASCII.
    #[error("must be {MIN_GIVEN_LEN} to {MAX_LEN} printable ASCII characters")]
    Invalid,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

/// `given`, checked, or a fresh random challenge when it is empty.
pub fn choose(given: &str) -> Result<String, ChallengeError> {
    if given.is_empty() {
        let mut bytes = [0u8; GENERATED_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| ChallengeError::Random)?;
        return Ok(bytes.iter().map(|b| format!("{b:02X}")).collect());
    }
    let printable = given.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !printable || given.len() < MIN_GIVEN_LEN || given.len() > MAX_LEN {
        return Err(ChallengeError::Invalid);
    }
    Ok(given.to_owned())
}

/// How long a dynamic challenge works.
pub const DYNAMIC_CHALLENGE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// A fresh one-time challenge, and the hex SHA-256 it is stored as.
pub fn dynamic() -> Result<(String, String), ChallengeError> {
    let challenge = choose("")?;
    let stored = stored_dynamic(&challenge);
    Ok((challenge, stored))
}

/// The hex SHA-256 a dynamic challenge is stored and looked up as. The challenge has 128 random
/// bits, so it needs no salt.
pub fn stored_dynamic(challenge: &str) -> String {
    aws_lc_rs::digest::digest(&SHA256, challenge.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Makes and records a one-time challenge for dynamic integration `integration`; returns it and
/// when it expires (microseconds).
pub async fn create_dynamic(store: &crate::store::Store, integration: &str) -> crate::error::Result<(String, i64)> {
    let (challenge, stored) = dynamic().map_err(|e| crate::error::Error::Signing(e.to_string()))?;
    let lifetime = i64::try_from(DYNAMIC_CHALLENGE_LIFETIME.as_micros()).unwrap_or(i64::MAX);
    let expires_at = crate::store::now_micros() + lifetime;
    store.insert_dynamic_challenge(integration, &stored, expires_at).await?;
    Ok((challenge, expires_at))
}

/// Salts and hashes `challenge`.
pub fn hash(challenge: &str) -> Result<HashedChallenge, ChallengeError> {
    let mut salt = vec![0u8; SALT_BYTES];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| ChallengeError::Random)?;
    let hash = digest(&salt, challenge);
    Ok(HashedChallenge { salt, hash })
}

/// Whether `presented` is the challenge stored as `salt`/`hash`, in time independent of where
/// they differ.
pub fn matches(presented: &str, salt: &[u8], hash: &[u8]) -> bool {
    verify_slices_are_equal(&digest(salt, presented), hash).is_ok()
}

fn digest(salt: &[u8], challenge: &str) -> Vec<u8> {
    let mut context = Context::new(&SHA256);
    context.update(salt);
    context.update(challenge.as_bytes());
    context.finish().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_generated_challenge_is_long_random_and_matches_only_itself() {
        let first = choose("").unwrap();
        let second = choose("").unwrap();
        assert_eq!(first.len(), 32);
        assert_ne!(first, second);
        let stored = hash(&first).unwrap();
        assert!(matches(&first, &stored.salt, &stored.hash));
        assert!(!matches(&second, &stored.salt, &stored.hash));
        assert!(!matches("", &stored.salt, &stored.hash));
        // The same challenge hashes differently each time: salted.
        assert_ne!(hash(&first).unwrap().hash, stored.hash);
    }

    #[test]
    fn a_given_challenge_must_be_long_enough_and_printable() {
        assert_eq!(choose("short"), Err(ChallengeError::Invalid));
        assert_eq!(choose(&"x".repeat(257)), Err(ChallengeError::Invalid));
        assert_eq!(choose("sixteen chars\u{7f}ok"), Err(ChallengeError::Invalid));
        assert_eq!(choose("correct horse battery").unwrap(), "correct horse battery");
    }
}
