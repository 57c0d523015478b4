//! SCEP pkiMessages (RFC 8894 §3): parsing the requests clients send, building the CertRep replies
//! and the certs-only messages the CA answers with.

mod algorithms;
pub(crate) mod attributes;
mod envelope;
mod signed;

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::revocation::{RevocationInfoChoice, RevocationInfoChoices};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use const_oid::db::{rfc5911, rfc8894};
use der::asn1::SetOfVec;
use der::{Decode, Encode, Sequence, Tagged};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::name::Name;
use x509_cert::spki::AlgorithmIdentifierOwned;

pub use algorithms::{RsaSigner, SignError};
pub use envelope::{EnvelopeError, OpenedEnvelope, open_envelope, seal_envelope};

use algorithms::random_bytes;
pub(crate) use envelope::{Envelope, seal};
pub(crate) use signed::{SignedMessage, VerifyError, build as build_signed};

/// The detail of every refusal caused by a message that could not be decrypted, whatever failed
/// (the RSA key transport, the CBC padding or the decrypted DER), so that the answer tells an
/// attacker nothing about which step failed (Bleichenbacher and padding oracles).
pub const UNDECRYPTABLE: &str = "the message could not be decrypted";

/// SCEP messageType (RFC 8894 §3.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `3`: the CA's reply to every request.
    CertRep,
    /// `17`: re-enrolment, signed with the certificate being renewed.
    RenewalReq,
    /// `19`: enrolment, signed with a self-signed certificate.
    PkcsReq,
    /// `20` (GetCertInitial): polls a pending enrolment.
    CertPoll,
    /// `21`: fetches an issued certificate by issuer and serial number.
    GetCert,
    /// `22`: fetches the CRL of an issuer.
    GetCrl,
}

impl MessageType {
    /// The decimal string the messageType attribute carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::CertRep => "3",
            Self::RenewalReq => "17",
            Self::PkcsReq => "19",
            Self::CertPoll => "20",
            Self::GetCert => "21",
            Self::GetCrl => "22",
        }
    }

    /// The message type a messageType attribute names, if it is one SCEP defines.
    pub fn from_code(code: &str) -> Option<Self> {
        [
            Self::CertRep,
            Self::RenewalReq,
            Self::PkcsReq,
            Self::CertPoll,
            Self::GetCert,
            Self::GetCrl,
        ]
        .into_iter()
        .find(|message_type| message_type.code() == code)
    }
}

/// SCEP pkiStatus (RFC 8894 §3.2.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PkiStatus {
    /// `0`: granted; the reply carries the certificates or CRL.
    Success,
    /// `2`: rejected; the reply carries a failInfo.
    Failure,
    /// `3`: waiting for manual approval; the client polls with CertPoll.
    Pending,
}

impl PkiStatus {
    /// The decimal string the pkiStatus attribute carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::Success => "0",
            Self::Failure => "2",
            Self::Pending => "3",
        }
    }

    /// The status a pkiStatus attribute names, if it is one SCEP defines.
    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Success, Self::Failure, Self::Pending]
            .into_iter()
            .find(|status| status.code() == code)
    }
}

/// SCEP failInfo (RFC 8894 §3.2.1.4): why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailInfo {
    /// `0`: unrecognized or unsupported algorithm.
    BadAlg,
    /// `1`: integrity check (signature, digest or decryption) failed.
    BadMessageCheck,
    /// `2`: transaction not permitted or supported.
    BadRequest,
    /// `3`: the signingTime attribute was not close enough to the CA's time.
    BadTime,
    /// `4`: no certificate could be identified matching the criteria.
    BadCertId,
}

impl FailInfo {
    /// The decimal string the failInfo attribute carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadAlg => "0",
            Self::BadMessageCheck => "1",
            Self::BadRequest => "2",
            Self::BadTime => "3",
            Self::BadCertId => "4",
        }
    }

    /// The reason a failInfo attribute names, if it is one SCEP defines.
    pub fn from_code(code: &str) -> Option<Self> {
        [
            Self::BadAlg,
            Self::BadMessageCheck,
            Self::BadRequest,
            Self::BadTime,
            Self::BadCertId,
        ]
        .into_iter()
        .find(|fail_info| fail_info.code() == code)
    }
}

/// The digest a pkiMessage's SignerInfo uses for its messageDigest and signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-1: still sent by older clients; verified, but never used to sign (see [`build_cert_rep`]).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

/// The symmetric cipher of a pkcsPKIEnvelope's content (RFC 8894 §3.5.2 GetCACaps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentCipher {
    /// Single DES in CBC mode: only decrypted, for old clients; replies use AES-256-CBC instead.
    DesCbc,
    /// Triple DES (EDE3) in CBC mode.
    TripleDesCbc,
    /// AES-128 in CBC mode.
    Aes128Cbc,
    /// AES-192 in CBC mode.
    Aes192Cbc,
    /// AES-256 in CBC mode.
    Aes256Cbc,
}

/// The CA (or RA) identity that requests are encrypted to and that signs CertReps.
pub struct CaKeys {
    certificate_der: Vec<u8>,
    certificate: Certificate,
    signing_key: RsaKeyPair,
    decrypting_key: Pkcs1PrivateDecryptingKey,
}

/// Why a CA certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The certificate is not a DER X.509 certificate.
    #[error("the CA certificate is not a DER X.509 certificate: {0}")]
    Certificate(String),
    /// The key is not an RSA private key (PKCS#8 or PKCS#1 DER) of 2048 to 8192 bits.
    #[error("the CA key is not a PKCS#8 or PKCS#1 RSA private key of 2048 to 8192 bits: {0}")]
    PrivateKey(String),
    /// The key does not belong to the certificate.
    #[error("the CA key does not match the CA certificate's public key")]
    Mismatch,
}

impl CaKeys {
    /// Loads the CA certificate (DER) and its RSA private key (PKCS#8 DER, or a PKCS#1
    /// `RSA PRIVATE KEY` DER), checking that they belong together.
    pub fn from_der(certificate_der: Vec<u8>, private_key_der: &[u8]) -> Result<Self, KeyError> {
        let certificate =
            Certificate::from_der(&certificate_der).map_err(|error| KeyError::Certificate(error.to_string()))?;
        let signing_key = RsaKeyPair::from_pkcs8(private_key_der)
            .or_else(|_| RsaKeyPair::from_der(private_key_der))
            .map_err(|error| KeyError::PrivateKey(error.to_string()))?;
        let public_key_in_certificate = certificate
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        if signing_key.public_key().as_ref() != public_key_in_certificate {
            return Err(KeyError::Mismatch);
        }
        // aws-lc-rs keeps signing and decrypting keys apart; both come from the same PKCS#8 form.
        let pkcs8 = signing_key
            .as_der()
            .map_err(|error| KeyError::PrivateKey(error.to_string()))?;
        let decrypting_key = PrivateDecryptingKey::from_pkcs8(pkcs8.as_ref())
            .map_err(|error| KeyError::PrivateKey(error.to_string()))
            .and_then(|key| {
                Pkcs1PrivateDecryptingKey::new(key).map_err(|error| KeyError::PrivateKey(error.to_string()))
            })?;
        Ok(Self {
            certificate_der,
            certificate,
            signing_key,
            decrypting_key,
        })
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }
}

impl fmt::Debug for CaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaKeys")
            .field("subject", &self.certificate.tbs_certificate.subject.to_string())
            .finish_non_exhaustive()
    }
}

/// What a CertRep must echo, known once the outer SignedData of a request is parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    /// The request's transactionID.
    pub transaction_id: String,
    /// The request's senderNonce, echoed as the reply's recipientNonce.
    pub sender_nonce: Vec<u8>,
    /// DER of the certificate that signed the request; a successful reply is encrypted to its key.
    pub requester_certificate: Vec<u8>,
    /// The request's digest, which the CertRep echoes, except that [`build_cert_rep`] answers
    /// SHA-1 with SHA-256: aws-lc-rs does not sign with SHA-1 (clients verify with the digest the
    /// CertRep names).
    pub digest: DigestAlgorithm,
    /// The request's content cipher, or AES-256-CBC if the request used DES-CBC or was never
    /// decrypted.
    pub cipher: ContentCipher,
}

/// A request that passed every check: signed by the certificate it carries, encrypted to this CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiRequest {
    /// Which request this is; never [`MessageType::CertRep`].
    pub message_type: MessageType,
    /// What the reply must echo.
    pub reply_to: ReplyTo,
    /// The decrypted content of the pkcsPKIEnvelope.
    pub body: RequestBody,
    /// The signingTime attribute, when the requester put one in.
    pub signing_time: Option<std::time::SystemTime>,
}

/// The decrypted content of a request's pkcsPKIEnvelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// PKCSReq and RenewalReq: the PKCS#10 certification request, DER.
    Csr(Vec<u8>),
    /// CertPoll: the issuer and subject Names (DER) of the pending request.
    IssuerAndSubject {
        /// The issuer Name, DER.
        issuer: Vec<u8>,
        /// The subject Name, DER.
        subject: Vec<u8>,
    },
    /// GetCert and GetCRL: the issuer Name (DER) and the serial number of a certificate.
    IssuerAndSerial {
        /// The issuer Name, DER.
        issuer: Vec<u8>,
        /// The serial number, unsigned big-endian without leading zero bytes.
        serial: Vec<u8>,
    },
}

/// Why a request cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a pkiMessage that can be answered at all (not DER, not SignedData, not exactly one
    /// signer, no signer certificate, no transactionID, messageType or senderNonce): HTTP 400.
    #[error("not a SCEP pkiMessage: {0}")]
    Malformed(String),
    /// A pkiMessage to answer with a CertRep FAILURE carrying `fail_info`.
    #[error("SCEP request refused ({fail_info:?}): {detail}")]
    Refused {
        /// What the CertRep must echo.
        reply_to: ReplyTo,
        /// The failInfo to send.
        fail_info: FailInfo,
        /// Why, for the log; not for the client, which only gets `fail_info`.
        detail: String,
    },
}

/// The outline of a PKCS#10 CertificationRequest: enough to tell a CSR from the random bytes a
/// wrong content key decrypts to. Its version is not checked: real clients send 2 where PKCS#10
/// says 0 (micromdm's test request does), and the CSR's content is the issuer's business.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct CsrOutline {
    info: der::Any,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: der::asn1::BitString,
}

impl CsrOutline {
    /// Whether `der` is a DER CertificationRequest.
    pub(crate) fn fits(der: &[u8]) -> bool {
        Self::from_der(der).is_ok_and(|outline| outline.info.tag() == der::Tag::Sequence)
    }
}

/// CertPoll's content (RFC 8894 §3.3.3).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct IssuerAndSubject {
    pub(crate) issuer: Name,
    pub(crate) subject: Name,
}

/// Parses a SCEP request, verifies its signature and decrypts its pkcsPKIEnvelope with the CA key.
pub fn parse_pki_message(der: &[u8], ca: &CaKeys) -> Result<PkiRequest, ParseError> {
    let message = SignedMessage::decode(der).map_err(ParseError::Malformed)?;
    let attributes = message.signed_attributes().map_err(ParseError::Malformed)?;
    let transaction_id = attributes
        .string(rfc8894::ID_TRANSACTION_ID)
        .ok_or_else(|| ParseError::Malformed("no transactionID".into()))?;
    let message_type_code = attributes
        .string(rfc8894::ID_MESSAGE_TYPE)
        .ok_or_else(|| ParseError::Malformed("no messageType".into()))?;
    let sender_nonce = attributes
        .octets(rfc8894::ID_SENDER_NONCE)
        .ok_or_else(|| ParseError::Malformed("no senderNonce".into()))?;
    let signer_certificate = message
        .signer_certificate()
        .ok_or_else(|| ParseError::Malformed("the signer's certificate is not in the message".into()))?;
    let requester_certificate = signer_certificate
        .to_der()
        .map_err(|error| ParseError::Malformed(format!("the signer's certificate cannot be encoded: {error}")))?;
    let mut reply_to = ReplyTo {
        transaction_id,
        sender_nonce,
        requester_certificate,
        digest: message.digest_algorithm().unwrap_or(DigestAlgorithm::Sha256),
        cipher: ContentCipher::Aes256Cbc,
    };

    let content = match message.verify(signer_certificate) {
        Ok(content) => content,
        Err(VerifyError::UnsupportedAlgorithm(detail)) => return Err(refuse(reply_to, FailInfo::BadAlg, detail)),
        Err(VerifyError::BadMessageCheck(detail)) => return Err(refuse(reply_to, FailInfo::BadMessageCheck, detail)),
    };
    let signing_time = attributes
        .value(rfc5911::ID_SIGNING_TIME)
        .and_then(|value| value.to_der().ok())
        .and_then(|der| x509_cert::time::Time::from_der(&der).ok())
        .map(|time| time.to_system_time());
    let message_type = match MessageType::from_code(&message_type_code) {
        Some(MessageType::CertRep) | None => {
            let detail = format!("messageType {message_type_code:?} is not a request");
            return Err(refuse(reply_to, FailInfo::BadRequest, detail));
        }
        Some(message_type) => message_type,
    };

    let envelope = match Envelope::decode(&content) {
        Ok(envelope) => envelope,
        Err(error) => {
            let fail_info = envelope_fail_info(&error);
            return Err(refuse(reply_to, fail_info, error.to_string()));
        }
    };
    // The cipher is public (it is in the AlgorithmIdentifier), so every refusal after this point
    // carries the same ReplyTo whichever decryption step fails.
    reply_to.cipher = reply_cipher(envelope.cipher());
    let plaintext = match envelope.open(Some(&ca.certificate), &ca.decrypting_key) {
        Ok(plaintext) => plaintext,
        Err(error) => {
            let fail_info = envelope_fail_info(&error);
            return Err(refuse(reply_to, fail_info, error.to_string()));
        }
    };
    let Some(body) = decode_body(message_type, plaintext) else {
        return Err(refuse(reply_to, FailInfo::BadMessageCheck, UNDECRYPTABLE.into()));
    };
    Ok(PkiRequest {
        message_type,
        reply_to,
        body,
        signing_time,
    })
}

fn refuse(reply_to: ReplyTo, fail_info: FailInfo, detail: String) -> ParseError {
    ParseError::Refused {
        reply_to,
        fail_info,
        detail,
    }
}

fn envelope_fail_info(error: &EnvelopeError) -> FailInfo {
    match error {
        EnvelopeError::Malformed(_) => FailInfo::BadRequest,
        EnvelopeError::UnsupportedAlgorithm(_) => FailInfo::BadAlg,
        EnvelopeError::WrongRecipient | EnvelopeError::Undecryptable => FailInfo::BadMessageCheck,
    }
}

/// Replies echo the request's cipher, but never single DES.
fn reply_cipher(request_cipher: ContentCipher) -> ContentCipher {
    match request_cipher {
        ContentCipher::DesCbc => ContentCipher::Aes256Cbc,
        cipher => cipher,
    }
}

/// Checks that the decrypted content is the DER structure the message type carries. `None`
/// whatever is wrong: a random key (implicit rejection) lands here, so it must look like any other
/// decryption failure.
fn decode_body(message_type: MessageType, plaintext: Vec<u8>) -> Option<RequestBody> {
    match message_type {
        MessageType::PkcsReq | MessageType::RenewalReq => {
            CsrOutline::fits(&plaintext).then_some(RequestBody::Csr(plaintext))
        }
        MessageType::CertPoll => {
            let issuer_and_subject = IssuerAndSubject::from_der(&plaintext).ok()?;
            Some(RequestBody::IssuerAndSubject {
                issuer: issuer_and_subject.issuer.to_der().ok()?,
                subject: issuer_and_subject.subject.to_der().ok()?,
            })
        }
        MessageType::GetCert | MessageType::GetCrl => {
            let issuer_and_serial = IssuerAndSerialNumber::from_der(&plaintext).ok()?;
            Some(RequestBody::IssuerAndSerial {
                issuer: issuer_and_serial.issuer.to_der().ok()?,
                serial: unsigned_serial(issuer_and_serial.serial_number.as_bytes()),
            })
        }
        MessageType::CertRep => None,
    }
}

/// A DER INTEGER's content octets as an unsigned big-endian number (the sign octet dropped).
fn unsigned_serial(integer: &[u8]) -> Vec<u8> {
    match integer.split_first() {
        Some((0, rest)) if !rest.is_empty() => rest.to_vec(),
        _ => integer.to_vec(),
    }
}

/// What the CA answers a request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Issued (PKCSReq, RenewalReq, CertPoll, GetCert) or found (GetCRL).
    Success {
        /// Certificates to return, DER: the issued certificate, optionally with its chain.
        certificates: Vec<Vec<u8>>,
        /// CRLs to return, DER (GetCRL).
        crls: Vec<Vec<u8>>,
    },
    /// Waiting for approval; the client polls.
    Pending,
    /// Refused, for this reason.
    Failure(FailInfo),
}

/// Why a reply cannot be built. These are server-side faults (bad stored certificates, a
/// requester key that cannot be encrypted to), not faults of the request.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A certificate or CRL to send is not DER.
    #[error("invalid certificate or CRL: {0}")]
    InvalidInput(String),
    /// The recipient's key cannot be encrypted to: not RSA, or outside 2048 to 8192 bits.
    #[error("cannot encrypt to the recipient's key: {0}")]
    UnsupportedRecipientKey(String),
    /// Single DES is only accepted from old clients, never sent.
    #[error("DES-CBC is never used to encrypt")]
    WeakCipher,
    /// The RSA signature failed.
    #[error(transparent)]
    Signing(#[from] SignError),
    /// A structure could not be DER encoded.
    #[error("DER encoding failed: {0}")]
    Encoding(String),
    /// The system random number generator failed.
    #[error("the random number generator failed")]
    Random,
}

impl From<der::Error> for BuildError {
    fn from(error: der::Error) -> Self {
        Self::Encoding(error.to_string())
    }
}

/// Builds the signed CertRep answering a request (RFC 8894 §3.3.2): pkiStatus, failInfo on
/// failure, fresh senderNonce, the request's nonce as recipientNonce and its transactionID; on
/// success the certificates and CRLs in a certs-only SignedData encrypted to the requester.
pub fn build_cert_rep(ca: &CaKeys, reply_to: &ReplyTo, outcome: &Outcome) -> Result<Vec<u8>, BuildError> {
    let (status, fail_info, content) = match outcome {
        Outcome::Success { certificates, crls } => {
            let degenerate = certs_and_crls_only(certificates, crls)?;
            let requester = Certificate::from_der(&reply_to.requester_certificate)
                .map_err(|error| BuildError::InvalidInput(format!("requester certificate: {error}")))?;
            let envelope = seal(&degenerate, &requester, reply_cipher(reply_to.cipher))?;
            (PkiStatus::Success, None, Some(envelope))
        }
        Outcome::Pending => (PkiStatus::Pending, None, None),
        Outcome::Failure(fail_info) => (PkiStatus::Failure, Some(*fail_info), None),
    };
    let mut scep_attributes = vec![
        attributes::printable(rfc8894::ID_MESSAGE_TYPE, MessageType::CertRep.code())?,
        attributes::printable(rfc8894::ID_PKI_STATUS, status.code())?,
        attributes::printable(rfc8894::ID_TRANSACTION_ID, &reply_to.transaction_id)?,
        attributes::octets(rfc8894::ID_SENDER_NONCE, &random_bytes::<16>()?)?,
        attributes::octets(rfc8894::ID_RECIPIENT_NONCE, &reply_to.sender_nonce)?,
    ];
    if let Some(fail_info) = fail_info {
        scep_attributes.push(attributes::printable(rfc8894::ID_FAIL_INFO, fail_info.code())?);
    }
    build_signed(
        content.as_deref(),
        reply_to.digest.for_signing(),
        scep_attributes,
        &ca.certificate,
        &ca.signing_key,
        std::time::SystemTime::now(),
    )
}

/// The degenerate certs-only SignedData (RFC 8894 §3.4) GetCACert answers with when it returns a
/// chain or an RA certificate (`application/x-x509-ca-ra-cert`).
pub fn certs_only(certificates: &[Vec<u8>]) -> Result<Vec<u8>, BuildError> {
    certs_and_crls_only(certificates, &[])
}

/// A ContentInfo holding a SignedData with no content and no signers, only certificates and CRLs.
pub(crate) fn certs_and_crls_only(certificates: &[Vec<u8>], crls: &[Vec<u8>]) -> Result<Vec<u8>, BuildError> {
    let mut certificate_set = SetOfVec::new();
    for der in certificates {
        let certificate =
            Certificate::from_der(der).map_err(|error| BuildError::InvalidInput(format!("certificate: {error}")))?;
        insert_once(
            &mut certificate_set,
            cms::cert::CertificateChoices::Certificate(certificate),
        )?;
    }
    let mut crl_set = SetOfVec::new();
    for der in crls {
        let crl = CertificateList::from_der(der).map_err(|error| BuildError::InvalidInput(format!("CRL: {error}")))?;
        insert_once(&mut crl_set, RevocationInfoChoice::Crl(crl))?;
    }
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: rfc5911::ID_DATA,
            econtent: None,
        },
        certificates: (!certificate_set.is_empty()).then_some(CertificateSet(certificate_set)),
        crls: (!crl_set.is_empty()).then_some(RevocationInfoChoices(crl_set)),
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let content_info = ContentInfo {
        content_type: rfc5911::ID_SIGNED_DATA,
        content: der::Any::encode_from(&signed_data)?,
    };
    Ok(content_info.to_der()?)
}

/// Adds to a DER SET OF, where a duplicate is an error; sending a certificate twice is pointless,
/// so it is dropped instead.
fn insert_once<T: der::DerOrd + Eq>(set: &mut SetOfVec<T>, item: T) -> Result<(), BuildError> {
    if !set.iter().any(|present| *present == item) {
        set.insert(item)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_names_its_value() {
        for message_type in [
            MessageType::CertRep,
            MessageType::RenewalReq,
            MessageType::PkcsReq,
            MessageType::CertPoll,
            MessageType::GetCert,
            MessageType::GetCrl,
        ] {
            assert_eq!(MessageType::from_code(message_type.code()), Some(message_type));
        }
        assert_eq!(MessageType::PkcsReq.code(), "19");
        assert_eq!(MessageType::CertPoll.code(), "20");
        assert_eq!(MessageType::from_code("18"), None);
        for status in [PkiStatus::Success, PkiStatus::Failure, PkiStatus::Pending] {
            assert_eq!(PkiStatus::from_code(status.code()), Some(status));
        }
        assert_eq!(PkiStatus::from_code("1"), None);
        for fail_info in [
            FailInfo::BadAlg,
            FailInfo::BadMessageCheck,
            FailInfo::BadRequest,
            FailInfo::BadTime,
            FailInfo::BadCertId,
        ] {
            assert_eq!(FailInfo::from_code(fail_info.code()), Some(fail_info));
        }
        assert_eq!(FailInfo::from_code("5"), None);
    }

    #[test]
    fn a_serial_loses_only_its_sign_octet() {
        assert_eq!(unsigned_serial(&[0x00, 0x8f, 0x01]), [0x8f, 0x01]);
        assert_eq!(unsigned_serial(&[0x01, 0x00]), [0x01, 0x00]);
        assert_eq!(unsigned_serial(&[0x00]), [0x00]);
        assert_eq!(unsigned_serial(&[]), Vec::<u8>::new());
    }

    #[test]
    fn replies_never_use_single_des() {
        assert_eq!(reply_cipher(ContentCipher::DesCbc), ContentCipher::Aes256Cbc);
        assert_eq!(reply_cipher(ContentCipher::TripleDesCbc), ContentCipher::TripleDesCbc);
    }

    #[test]
    fn only_a_certification_request_fits_the_csr_outline() {
        assert!(!CsrOutline::fits(b""));
        assert!(!CsrOutline::fits(&[0x30, 0x00]));
        assert!(!CsrOutline::fits(b"random bytes that a wrong key decrypts to"));
    }
}
