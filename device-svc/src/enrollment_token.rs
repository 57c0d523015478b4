//! Enrollment tokens: single-use secrets an operator hands to a person (or a provisioning script)
//! so the agent can enroll for them without a browser sign-in. 256 random bits, shown once,
//! stored only as a SHA-256 hash.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// How long a token lasts when the request does not say.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Shortest lifetime a token may be given.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// Longest lifetime a token may be given.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A fresh token: 32 random bytes, base64url (43 characters).
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Unavailable("the system random source failed".to_owned()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored for a token: its SHA-256, hex. A fast hash suffices because the token has 256
/// bits of entropy.
pub fn token_hash(token: &str) -> String {
    digest(&SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `token` has the shape of one [`new_token`] makes; anything else is refused before a
/// database lookup.
pub fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The lifetime asked for, checked against the bounds; `None` gives the default.
pub fn ttl(requested: Option<prost_types::Duration>) -> Result<Duration> {
    let Some(requested) = requested else {
        return Ok(DEFAULT_TTL);
    };
    let out_of_bounds = || Error::field("ttl", "must be between 1 minute and 30 days");
    if requested.nanos != 0 && !(0..1_000_000_000).contains(&requested.nanos) {
        return Err(out_of_bounds());
    }
    let seconds = u64::try_from(requested.seconds).map_err(|_| out_of_bounds())?;
    let ttl = Duration::from_secs(seconds);
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(out_of_bounds());
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_well_formed_distinct_and_stored_only_as_a_hash() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(well_formed(&a) && well_formed(&b));
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(!token_hash(&a).contains(&a));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}!", &a[..42])));
    }

    #[test]
    fn lifetimes_default_to_a_day_and_stay_within_a_minute_and_thirty_days() {
        let d = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
        assert_eq!(ttl(None).unwrap(), DEFAULT_TTL);
        assert_eq!(ttl(d(60)).unwrap(), MIN_TTL);
        assert_eq!(ttl(d(30 * 24 * 3600)).unwrap(), MAX_TTL);
        assert!(ttl(d(59)).is_err());
        assert!(ttl(d(30 * 24 * 3600 + 1)).is_err());
        assert!(ttl(d(-5)).is_err());
    }
}
