//! Client secrets of confidential apps: 256 random bits, shown once, stored as a SHA-256 hash
//! (a secret with that much entropy needs no slow hash; a slow one would only slow the token
//! endpoint).

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A new secret and the hash to store.
pub fn generate() -> Result<(String, String), aws_lc_rs::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&secret);
    Ok((secret, hash))
}

/// The stored form of `secret`.
pub fn hash(secret: &str) -> String {
    format!(
        "sha256:{}",
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, secret.as_bytes()))
    )
}

/// Whether `secret` matches `stored`, in constant time.
pub fn verify(secret: &str, stored: &str) -> bool {
    let candidate = hash(secret);
    candidate.len() == stored.len()
        && candidate
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A new public client id.
pub fn new_client_id() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut bytes = [0u8; 15];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(format!("pc_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_against_its_hash_and_nothing_else_does() {
        let (secret, stored) = generate().unwrap();
        assert!(verify(&secret, &stored));
        assert!(!verify(&format!("{secret}x"), &stored));
        assert!(!verify("", &stored));
        assert_ne!(secret, stored);
    }
}
