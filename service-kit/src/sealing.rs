//! Secrets at rest that must be read back (TOTP seeds, CA private keys): AES-256-GCM with a key
//! from configuration, each sealed value bound to its owner through associated data.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The configured key is not 32 bytes of base64.
    #[error("the encryption key must be 32 bytes, base64 encoded")]
    BadKey,
    /// The stored value does not decrypt with the configured key (wrong key, or altered data).
    #[error("the stored secret does not decrypt with the configured key")]
    Undecryptable,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

/// Encrypts and decrypts secrets at rest.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer from the base64 of a 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, SealError> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| SealError::BadKey)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// `nonce || ciphertext || tag`. `owner` (a user id, a CA name) is bound as associated data,
    /// so a sealed value copied onto another owner's row does not open.
    pub fn seal(&self, secret: &[u8], owner: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut sealed = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The secret sealed by [`Sealer::seal`] for `owner`.
    pub fn open(&self, sealed: &[u8], owner: &str) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Undecryptable);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Undecryptable)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut body)
            .map_err(|_| SealError::Undecryptable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_owner() {
        let key = STANDARD.encode([7u8; 32]);
        let cipher = Sealer::from_base64(&key).unwrap();
        let sealed = cipher.seal(b"secret-bytes", "user-1").unwrap();
        assert_ne!(
            &sealed[NONCE_LEN..NONCE_LEN + 10],
            b"secret-bytes",
            "the secret is not stored in the clear"
        );
        assert_eq!(cipher.open(&sealed, "user-1").unwrap(), b"secret-bytes");
        assert_eq!(cipher.open(&sealed, "user-2"), Err(SealError::Undecryptable));
        let other = Sealer::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert_eq!(other.open(&sealed, "user-1"), Err(SealError::Undecryptable));
        assert_eq!(cipher.open(&sealed[..5], "user-1"), Err(SealError::Undecryptable));
        assert!(Sealer::from_base64("short").is_err());
    }
}
