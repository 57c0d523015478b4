//! The pkcsPKIEnvelope (RFC 8894 §3.2.2): a CMS EnvelopedData whose content key is transported
//! to an RSA recipient with PKCS#1 v1.5.

use aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{OctetString, OctetStringRef, SetOfVec};
use der::{Any, Decode, Encode};
use x509_cert::Certificate;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::algorithms::{decrypt_content_key, encrypt_content_key, random_vec};
use super::signed::{is_issuer_and_serial_of, is_key_identifier_of};
use super::{BuildError, CaKeys, ContentCipher, UNDECRYPTABLE};

/// The decrypted content of a pkcsPKIEnvelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedEnvelope {
    /// The cipher the content was encrypted with.
    pub cipher: ContentCipher,
    /// The decrypted content.
    pub content: Vec<u8>,
}

/// Why a pkcsPKIEnvelope cannot be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a DER ContentInfo holding an EnvelopedData with encrypted content.
    #[error("the pkcsPKIEnvelope is malformed: {0}")]
    Malformed(String),
    /// The content cipher or key transport is not one SCEP uses.
    #[error("unsupported algorithm in the pkcsPKIEnvelope: {0}")]
    UnsupportedAlgorithm(String),
    /// No key-transport recipient names the certificate of the key at hand.
    #[error("the message is not encrypted to this certificate")]
    WrongRecipient,
    /// The key transport, the CBC padding or the decrypted structure was wrong; which one is
    /// deliberately not told.
    #[error("{UNDECRYPTABLE}")]
    Undecryptable,
}

/// An EnvelopedData whose encrypted content is `[0] EXPLICIT OCTET STRING` rather than CMS's
/// `[0] IMPLICIT OCTET STRING`, as Go's pkcs7 package writes it. SCEP envelopes carry no
/// originator info or unprotected attributes, so neither is accepted here.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct ExplicitlyTaggedEnvelopedData {
    version: CmsVersion,
    recip_infos: RecipientInfos,
    encrypted_content: ExplicitlyTaggedEncryptedContentInfo,
}

#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct ExplicitlyTaggedEncryptedContentInfo {
    content_type: der::asn1::ObjectIdentifier,
    content_enc_alg: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    encrypted_content: Option<OctetString>,
}

/// A decoded pkcsPKIEnvelope, not yet decrypted.
pub(crate) struct Envelope {
    recipients: RecipientInfos,
    cipher: ContentCipher,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Envelope {
    /// Decodes a ContentInfo holding an EnvelopedData.
    pub(crate) fn decode(der: &[u8]) -> Result<Self, EnvelopeError> {
        let malformed = |detail: &str| EnvelopeError::Malformed(detail.to_owned());
        let content_info = ContentInfo::from_der(der).map_err(|_| malformed("not a DER ContentInfo"))?;
        if content_info.content_type != rfc5911::ID_ENVELOPED_DATA {
            return Err(EnvelopeError::Malformed(format!(
                "content type {} is not envelopedData",
                content_info.content_type
            )));
        }
        let (recipients, algorithm, ciphertext) = match content_info.content.decode_as::<EnvelopedData>() {
            Ok(enveloped) => (
                enveloped.recip_infos,
                enveloped.encrypted_content.content_enc_alg,
                enveloped
                    .encrypted_content
                    .encrypted_content
                    .map(OctetString::into_bytes),
            ),
            // Go's pkcs7 package (micromdm's scepclient, and servers built on it) wraps the
            // encrypted content in an explicit [0] instead of tagging it implicitly.
            Err(_) => {
                let enveloped: ExplicitlyTaggedEnvelopedData = content_info
                    .content
                    .decode_as()
                    .map_err(|_| malformed("not a DER EnvelopedData"))?;
                (
                    enveloped.recip_infos,
                    enveloped.encrypted_content.content_enc_alg,
                    enveloped
                        .encrypted_content
                        .encrypted_content
                        .map(OctetString::into_bytes),
                )
            }
        };
        let cipher = ContentCipher::from_oid(&algorithm.oid)
            .ok_or_else(|| EnvelopeError::UnsupportedAlgorithm(format!("content cipher {}", algorithm.oid)))?;
        let iv = algorithm
            .parameters
            .as_ref()
            .and_then(|parameters| parameters.decode_as::<OctetStringRef<'_>>().ok())
            .map(|iv| iv.as_bytes().to_vec())
            .filter(|iv| iv.len() == cipher.iv_len())
            .ok_or_else(|| malformed("the content cipher has no valid IV"))?;
        let ciphertext = ciphertext.ok_or_else(|| malformed("no encrypted content"))?;
        Ok(Self {
            recipients,
            cipher,
            iv,
            ciphertext,
        })
    }

    /// The content cipher.
    pub(crate) fn cipher(&self) -> ContentCipher {
        self.cipher
    }

    /// Decrypts the content with `private_key`, using the key-transport recipient that names
    /// `recipient` (or the first one, if `recipient` is `None`).
    pub(crate) fn open(
        &self,
        recipient: Option<&Certificate>,
        private_key: &Pkcs1PrivateDecryptingKey,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let key_transport = self
            .recipients
            .0
            .iter()
            .filter_map(|info| match info {
                RecipientInfo::Ktri(key_transport) => Some(key_transport),
                _ => None,
            })
            .find(|key_transport| recipient.is_none_or(|certificate| names(&key_transport.rid, certificate)))
            .ok_or(EnvelopeError::WrongRecipient)?;
        if key_transport.key_enc_alg.oid != rfc5912::RSA_ENCRYPTION {
            return Err(EnvelopeError::UnsupportedAlgorithm(format!(
                "key transport {}",
                key_transport.key_enc_alg.oid
            )));
        }
        let content_key = decrypt_content_key(private_key, key_transport.enc_key.as_bytes(), self.cipher.key_len())
            .ok_or(EnvelopeError::Undecryptable)?;
        self.cipher
            .decrypt(&content_key, &self.iv, &self.ciphertext)
            .ok_or(EnvelopeError::Undecryptable)
    }
}

fn names(recipient: &RecipientIdentifier, certificate: &Certificate) -> bool {
    match recipient {
        RecipientIdentifier::IssuerAndSerialNumber(issuer_and_serial) => {
            is_issuer_and_serial_of(issuer_and_serial, certificate)
        }
        RecipientIdentifier::SubjectKeyIdentifier(key_identifier) => is_key_identifier_of(key_identifier, certificate),
    }
}

/// Decrypts a pkcsPKIEnvelope (a DER ContentInfo holding an EnvelopedData) addressed to the CA.
/// Every decryption failure is the same [`EnvelopeError::Undecryptable`].
pub fn open_envelope(der: &[u8], ca: &CaKeys) -> Result<OpenedEnvelope, EnvelopeError> {
    let envelope = Envelope::decode(der)?;
    let content = envelope.open(Some(&ca.certificate), &ca.decrypting_key)?;
    Ok(OpenedEnvelope {
        cipher: envelope.cipher,
        content,
    })
}

/// Encrypts `content` to the RSA key of `recipient_certificate_der` (DER) as a pkcsPKIEnvelope.
/// Refuses single DES.
pub fn seal_envelope(
    content: &[u8],
    recipient_certificate_der: &[u8],
    cipher: ContentCipher,
) -> Result<Vec<u8>, BuildError> {
    if cipher == ContentCipher::DesCbc {
        return Err(BuildError::WeakCipher);
    }
    let recipient = Certificate::from_der(recipient_certificate_der)
        .map_err(|error| BuildError::InvalidInput(format!("recipient certificate: {error}")))?;
    seal(content, &recipient, cipher)
}

/// Encrypts `content` to `recipient`'s RSA key with any cipher, single DES included (the client
/// side imitates old clients with it).
pub(crate) fn seal(content: &[u8], recipient: &Certificate, cipher: ContentCipher) -> Result<Vec<u8>, BuildError> {
    let mut content_key = random_vec(cipher.key_len())?;
    if matches!(cipher, ContentCipher::DesCbc | ContentCipher::TripleDesCbc) {
        set_odd_parity(&mut content_key);
    }
    let iv = random_vec(cipher.iv_len())?;
    let ciphertext = cipher
        .encrypt(&content_key, &iv, content)
        .ok_or_else(|| BuildError::Encoding("content key or IV of the wrong length".into()))?;
    let encrypted_key = encrypt_content_key(&recipient.tbs_certificate.subject_public_key_info, &content_key)?;
    let key_transport = KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: recipient.tbs_certificate.issuer.clone(),
            serial_number: recipient.tbs_certificate.serial_number.clone(),
        }),
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        enc_key: OctetString::new(encrypted_key)?,
    };
    let enveloped = EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(SetOfVec::try_from(vec![RecipientInfo::Ktri(key_transport)])?),
        encrypted_content: EncryptedContentInfo {
            content_type: rfc5911::ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: cipher.oid(),
                parameters: Some(Any::encode_from(&OctetString::new(iv)?)?),
            },
            encrypted_content: Some(OctetString::new(ciphertext)?),
        },
        unprotected_attrs: None,
    };
    let content_info = ContentInfo {
        content_type: rfc5911::ID_ENVELOPED_DATA,
        content: Any::encode_from(&enveloped)?,
    };
    Ok(content_info.to_der()?)
}

/// DES keys carry odd parity in each byte's low bit; strict implementations check it.
fn set_odd_parity(key: &mut [u8]) {
    for byte in key {
        let high_bits = *byte & 0xfe;
        *byte = high_bits | u8::from(high_bits.count_ones() % 2 == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_keys_get_odd_parity() {
        let mut key = [0x00, 0x01, 0xfe, 0xff, 0x10, 0x11];
        set_odd_parity(&mut key);
        assert_eq!(key, [0x01, 0x01, 0xfe, 0xfe, 0x10, 0x10]);
        assert!(key.iter().all(|byte| byte.count_ones() % 2 == 1));
    }
}
