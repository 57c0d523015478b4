//! The algorithms of SCEP messages: digests and RSA PKCS#1 v1.5 signatures and key transport
//! (aws-lc-rs), CBC content ciphers (RustCrypto).

use aes::{Aes128, Aes192, Aes256};
use aws_lc_rs::digest;
use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::{self, RsaKeyPair, UnparsedPublicKey};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipher, BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5911, rfc5912};
use des::{Des, TdesEde3};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use super::{BuildError, ContentCipher, DigestAlgorithm};

/// desCBC (OIW), absent from the const-oid database.
const DES_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.7");

impl DigestAlgorithm {
    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => rfc5912::ID_SHA_1,
            Self::Sha256 => rfc5912::ID_SHA_256,
            Self::Sha512 => rfc5912::ID_SHA_512,
        }
    }

    pub(crate) fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|digest| digest.oid() == *oid)
    }

    /// The `shaXWithRSAEncryption` signature algorithm with this digest.
    pub(crate) fn rsa_signature_oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => rfc5912::SHA_1_WITH_RSA_ENCRYPTION,
            Self::Sha256 => rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            Self::Sha512 => rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
        }
    }

    /// The digest a signature made for a message with this digest uses: aws-lc-rs cannot sign with
    /// SHA-1, so SHA-1 becomes SHA-256.
    pub(crate) fn for_signing(self) -> Self {
        match self {
            Self::Sha1 => Self::Sha256,
            digest => digest,
        }
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }

    /// Verification parameters accepting the 1024-bit keys of older clients.
    fn rsa_verification(self) -> &'static signature::RsaParameters {
        match self {
            Self::Sha1 => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            Self::Sha512 => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        }
    }
}

/// Verifies an RSA PKCS#1 v1.5 signature by the key in `public_key`.
pub(crate) fn verify_rsa(
    digest: DigestAlgorithm,
    public_key: &SubjectPublicKeyInfoOwned,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let Some(key) = public_key.subject_public_key.as_bytes() else {
        return false;
    };
    UnparsedPublicKey::new(digest.rsa_verification(), key)
        .verify(message, signature)
        .is_ok()
}

/// Whether a SubjectPublicKeyInfo holds an RSA key.
pub(crate) fn is_rsa(public_key: &SubjectPublicKeyInfoOwned) -> bool {
    public_key.algorithm.oid == rfc5912::RSA_ENCRYPTION
}

/// An RSA private key that signs CMS signed attributes with PKCS#1 v1.5 padding.
pub trait RsaSigner {
    /// Hashes `message` with `digest` and signs the hash.
    fn sign_pkcs1(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The signer cannot sign with this digest (aws-lc-rs has no SHA-1 RSA signing).
    #[error("signing with {0:?} is not supported")]
    UnsupportedDigest(DigestAlgorithm),
    /// The signing operation failed.
    #[error("signing failed: {0}")]
    Failed(String),
}

impl RsaSigner for RsaKeyPair {
    fn sign_pkcs1(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let encoding = match digest {
            DigestAlgorithm::Sha1 => return Err(SignError::UnsupportedDigest(digest)),
            DigestAlgorithm::Sha256 => &signature::RSA_PKCS1_SHA256,
            DigestAlgorithm::Sha512 => &signature::RSA_PKCS1_SHA512,
        };
        let mut signature = vec![0; self.public_modulus_len()];
        self.sign(encoding, &aws_lc_rs::rand::SystemRandom::new(), message, &mut signature)
            .map_err(|error| SignError::Failed(error.to_string()))?;
        Ok(signature)
    }
}

/// Encrypts a content-encryption key to the RSA key in `public_key` (PKCS#1 v1.5 key transport).
pub(crate) fn encrypt_content_key(public_key: &SubjectPublicKeyInfoOwned, key: &[u8]) -> Result<Vec<u8>, BuildError> {
    let unsupported = |detail: String| BuildError::UnsupportedRecipientKey(detail);
    if !is_rsa(public_key) {
        return Err(unsupported(format!(
            "key algorithm {} is not RSA",
            public_key.algorithm.oid
        )));
    }
    let der = der::Encode::to_der(public_key)?;
    let public_key = PublicEncryptingKey::from_der(&der)
        .map_err(|error| unsupported(error.to_string()))
        .and_then(|key| Pkcs1PublicEncryptingKey::new(key).map_err(|error| unsupported(error.to_string())))?;
    let mut ciphertext = vec![0; public_key.ciphertext_size()];
    let written = public_key
        .encrypt(key, &mut ciphertext)
        .map_err(|error| unsupported(error.to_string()))?
        .len();
    ciphertext.truncate(written);
    Ok(ciphertext)
}

/// Decrypts a content-encryption key of `key_len` bytes with implicit rejection (RFC 3218 §2.3.2):
/// when the RSA decryption fails or yields a key of another length, a random key takes its place,
/// so the failure only shows later, as the same "could not be decrypted" as a bad CBC padding or a
/// bad decrypted structure. `None` only if the system random generator fails.
pub(crate) fn decrypt_content_key(
    private_key: &Pkcs1PrivateDecryptingKey,
    encrypted_key: &[u8],
    key_len: usize,
) -> Option<Vec<u8>> {
    let mut key = random_vec(key_len).ok()?;
    let mut buffer = vec![0; private_key.min_output_size()];
    let (decrypted_ok, decrypted): (u8, &[u8]) = match private_key.decrypt(encrypted_key, &mut buffer) {
        Ok(plaintext) => (1, plaintext),
        Err(_) => (0, &[]),
    };
    // Select without branching on the outcome: keep = 0xff when the decrypted key is usable.
    let usable = decrypted_ok & u8::from(decrypted.len() == key_len);
    let keep = 0u8.wrapping_sub(usable);
    for (index, byte) in key.iter_mut().enumerate() {
        let candidate = decrypted.get(index).copied().unwrap_or(0);
        *byte = (candidate & keep) | (*byte & !keep);
    }
    Some(key)
}

impl ContentCipher {
    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            Self::DesCbc => DES_CBC,
            Self::TripleDesCbc => rfc5911::DES_EDE_3_CBC,
            Self::Aes128Cbc => rfc5911::ID_AES_128_CBC,
            Self::Aes192Cbc => rfc5911::ID_AES_192_CBC,
            Self::Aes256Cbc => rfc5911::ID_AES_256_CBC,
        }
    }

    pub(crate) fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        [
            Self::DesCbc,
            Self::TripleDesCbc,
            Self::Aes128Cbc,
            Self::Aes192Cbc,
            Self::Aes256Cbc,
        ]
        .into_iter()
        .find(|cipher| cipher.oid() == *oid)
    }

    pub(crate) fn key_len(self) -> usize {
        match self {
            Self::DesCbc => 8,
            Self::TripleDesCbc => 24,
            Self::Aes128Cbc => 16,
            Self::Aes192Cbc => 24,
            Self::Aes256Cbc => 32,
        }
    }

    pub(crate) fn iv_len(self) -> usize {
        match self {
            Self::DesCbc | Self::TripleDesCbc => 8,
            Self::Aes128Cbc | Self::Aes192Cbc | Self::Aes256Cbc => 16,
        }
    }

    /// CBC encryption with PKCS#7 padding; `None` if the key or IV has the wrong length.
    pub(crate) fn encrypt(self, key: &[u8], iv: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::DesCbc => cbc_encrypt::<Des>(key, iv, plaintext),
            Self::TripleDesCbc => cbc_encrypt::<TdesEde3>(key, iv, plaintext),
            Self::Aes128Cbc => cbc_encrypt::<Aes128>(key, iv, plaintext),
            Self::Aes192Cbc => cbc_encrypt::<Aes192>(key, iv, plaintext),
            Self::Aes256Cbc => cbc_encrypt::<Aes256>(key, iv, plaintext),
        }
    }

    /// CBC decryption removing PKCS#7 padding; `None` for a bad padding or a wrong key or IV length.
    pub(crate) fn decrypt(self, key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::DesCbc => cbc_decrypt::<Des>(key, iv, ciphertext),
            Self::TripleDesCbc => cbc_decrypt::<TdesEde3>(key, iv, ciphertext),
            Self::Aes128Cbc => cbc_decrypt::<Aes128>(key, iv, ciphertext),
            Self::Aes192Cbc => cbc_decrypt::<Aes192>(key, iv, ciphertext),
            Self::Aes256Cbc => cbc_decrypt::<Aes256>(key, iv, ciphertext),
        }
    }
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Option<Vec<u8>>
where
    C: BlockCipher + BlockEncryptMut + KeyInit,
{
    let encryptor = cbc::Encryptor::<C>::new_from_slices(key, iv).ok()?;
    Some(encryptor.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>>
where
    C: BlockCipher + BlockDecryptMut + KeyInit,
{
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
    decryptor.decrypt_padded_vec_mut::<Pkcs7>(ciphertext).ok()
}

/// `N` bytes from the system random generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], BuildError> {
    let mut bytes = [0; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| BuildError::Random)?;
    Ok(bytes)
}

/// `len` bytes from the system random generator.
pub(crate) fn random_vec(len: usize) -> Result<Vec<u8>, BuildError> {
    let mut bytes = vec![0; len];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| BuildError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};

    use super::*;

    fn key() -> (Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey) {
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let public = Pkcs1PublicEncryptingKey::new(private.public_key()).unwrap();
        (Pkcs1PrivateDecryptingKey::new(private).unwrap(), public)
    }

    #[test]
    fn a_transported_key_of_the_right_length_is_recovered() {
        let (private, public) = key();
        let mut ciphertext = vec![0; public.ciphertext_size()];
        let ciphertext = public.encrypt(&[7; 24], &mut ciphertext).unwrap().to_vec();
        assert_eq!(decrypt_content_key(&private, &ciphertext, 24).unwrap(), [7; 24]);
    }

    #[test]
    fn a_failed_key_transport_yields_a_random_key_of_the_expected_length() {
        let (private, public) = key();
        let garbage = vec![0x55; private.key_size_bytes()];
        let first = decrypt_content_key(&private, &garbage, 32).unwrap();
        let second = decrypt_content_key(&private, &garbage, 32).unwrap();
        assert_eq!((first.len(), second.len()), (32, 32));
        assert_ne!(first, second);

        // A valid transport of a key of another length is no better than garbage.
        let mut ciphertext = vec![0; public.ciphertext_size()];
        let ciphertext = public.encrypt(&[7; 16], &mut ciphertext).unwrap().to_vec();
        let recovered = decrypt_content_key(&private, &ciphertext, 32).unwrap();
        assert_eq!(recovered.len(), 32);
        assert_ne!(recovered.get(..16), Some(&[7; 16][..]));
    }

    #[test]
    fn every_cipher_round_trips_and_rejects_a_wrong_key() {
        for cipher in [
            ContentCipher::DesCbc,
            ContentCipher::TripleDesCbc,
            ContentCipher::Aes128Cbc,
            ContentCipher::Aes192Cbc,
            ContentCipher::Aes256Cbc,
        ] {
            assert_eq!(ContentCipher::from_oid(&cipher.oid()), Some(cipher));
            let key = random_vec(cipher.key_len()).unwrap();
            let iv = random_vec(cipher.iv_len()).unwrap();
            let ciphertext = cipher.encrypt(&key, &iv, b"a certification request").unwrap();
            assert_eq!(ciphertext.len() % cipher.iv_len(), 0);
            assert_eq!(
                cipher.decrypt(&key, &iv, &ciphertext).unwrap(),
                b"a certification request"
            );
            assert_eq!(cipher.encrypt(&key[1..], &iv, b"x"), None);
            assert_eq!(cipher.decrypt(&key, &iv, &ciphertext[1..]), None);
        }
    }

    #[test]
    fn sha1_is_verified_but_signed_as_sha256() {
        assert_eq!(DigestAlgorithm::Sha1.for_signing(), DigestAlgorithm::Sha256);
        assert_eq!(DigestAlgorithm::Sha512.for_signing(), DigestAlgorithm::Sha512);
        assert_eq!(DigestAlgorithm::Sha1.digest(b"").len(), 20);
        assert_eq!(DigestAlgorithm::from_oid(&rfc5912::ID_SHA_384), None);
    }
}
