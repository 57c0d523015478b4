//! The requester side of SCEP: builds pkiMessages exactly as a client sends them and opens the
//! CA's CertRep. Used by tests and the load generator, never by the server.

use aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::ContentInfo;
use cms::revocation::RevocationInfoChoice;
use cms::signed_data::SignedData;
use const_oid::db::{rfc5911, rfc8894};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use super::message::{
    self, BuildError, ContentCipher, CsrOutline, DigestAlgorithm, Envelope, EnvelopeError, FailInfo, IssuerAndSubject,
    MessageType, PkiStatus, RequestBody, RsaSigner, SignedMessage, VerifyError, attributes,
};

/// The identity that signs a request.
pub struct Requester<'a> {
    /// The signer's certificate, DER: self-signed for PKCSReq, the certificate being renewed for
    /// RenewalReq. The CA encrypts its reply to this certificate's key.
    pub certificate_der: &'a [u8],
    /// The signer's private key.
    pub key: &'a dyn RsaSigner,
}

/// The per-transaction fields of a request.
#[derive(Clone, Copy, Debug)]
pub struct Transaction<'a> {
    /// The transactionID; RFC 8894 suggests a hash of the requester's public key.
    pub transaction_id: &'a str,
    /// The senderNonce; RFC 8894 asks for 16 random bytes.
    pub sender_nonce: &'a [u8],
    /// The digest of the SignerInfo.
    pub digest: DigestAlgorithm,
}

/// Why a request cannot be built or a CertRep cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An argument is not what it should be (not DER, a body that does not fit the message type).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Encrypting or signing failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The CertRep is not a well-formed SCEP reply.
    #[error("malformed CertRep: {0}")]
    Malformed(String),
    /// The CertRep is not validly signed by the CA certificate.
    #[error("the CertRep does not verify: {0}")]
    BadSignature(String),
    /// The CertRep's pkcsPKIEnvelope cannot be opened with the requester's key.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// A CertRep, verified and decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRepReply {
    /// The pkiStatus.
    pub status: PkiStatus,
    /// The failInfo, present when the CA sent one (it should only on failure).
    pub fail_info: Option<FailInfo>,
    /// The transactionID the CA echoed.
    pub transaction_id: String,
    /// The CA's fresh senderNonce.
    pub sender_nonce: Vec<u8>,
    /// The recipientNonce: the request's senderNonce, echoed.
    pub recipient_nonce: Vec<u8>,
    /// The digest the CA signed with.
    pub digest: DigestAlgorithm,
    /// The cipher of the reply's pkcsPKIEnvelope, on success.
    pub cipher: Option<ContentCipher>,
    /// The certificates returned on success, DER.
    pub certificates: Vec<Vec<u8>>,
    /// The CRLs returned on success, DER.
    pub crls: Vec<Vec<u8>>,
}

/// The certificates and CRLs of a degenerate certs-only SignedData.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertsOnly {
    /// The certificates, DER.
    pub certificates: Vec<Vec<u8>>,
    /// The CRLs, DER.
    pub crls: Vec<Vec<u8>>,
}

/// Builds a request pkiMessage (DER): `body` encrypted to the CA certificate with `cipher`, then
/// signed by the requester with the SCEP attributes.
pub fn build_request(
    message_type: MessageType,
    body: &RequestBody,
    requester: &Requester<'_>,
    transaction: &Transaction<'_>,
    ca_certificate_der: &[u8],
    cipher: ContentCipher,
) -> Result<Vec<u8>, ClientError> {
    let content = encode_body(message_type, body)?;
    let ca = Certificate::from_der(ca_certificate_der)
        .map_err(|error| ClientError::InvalidInput(format!("CA certificate: {error}")))?;
    let envelope = message::seal(&content, &ca, cipher)?;
    sign_request(message_type, &envelope, requester, transaction)
}

/// The DER content a request's pkcsPKIEnvelope carries: the CSR, IssuerAndSubject or
/// IssuerAndSerialNumber.
pub fn encode_body(message_type: MessageType, body: &RequestBody) -> Result<Vec<u8>, ClientError> {
    let invalid = |what: &str, error: der::Error| ClientError::InvalidInput(format!("{what}: {error}"));
    match (message_type, body) {
        (MessageType::PkcsReq | MessageType::RenewalReq, RequestBody::Csr(csr)) => {
            if !CsrOutline::fits(csr) {
                return Err(ClientError::InvalidInput(
                    "the CSR is not a DER CertificationRequest".into(),
                ));
            }
            Ok(csr.clone())
        }
        (MessageType::CertPoll, RequestBody::IssuerAndSubject { issuer, subject }) => {
            let issuer_and_subject = IssuerAndSubject {
                issuer: Name::from_der(issuer).map_err(|error| invalid("issuer", error))?,
                subject: Name::from_der(subject).map_err(|error| invalid("subject", error))?,
            };
            issuer_and_subject
                .to_der()
                .map_err(|error| invalid("IssuerAndSubject", error))
        }
        (MessageType::GetCert | MessageType::GetCrl, RequestBody::IssuerAndSerial { issuer, serial }) => {
            let issuer_and_serial = IssuerAndSerialNumber {
                issuer: Name::from_der(issuer).map_err(|error| invalid("issuer", error))?,
                serial_number: SerialNumber::new(serial).map_err(|error| invalid("serial", error))?,
            };
            issuer_and_serial
                .to_der()
                .map_err(|error| invalid("IssuerAndSerialNumber", error))
        }
        _ => Err(ClientError::InvalidInput(format!(
            "a {message_type:?} does not carry this body"
        ))),
    }
}

/// Signs an already built pkcsPKIEnvelope (DER ContentInfo) into a request pkiMessage. Tests use it
/// to send envelopes made elsewhere (by OpenSSL, or deliberately damaged).
pub fn sign_request(
    message_type: MessageType,
    envelope_der: &[u8],
    requester: &Requester<'_>,
    transaction: &Transaction<'_>,
) -> Result<Vec<u8>, ClientError> {
    sign_request_at(
        message_type,
        envelope_der,
        requester,
        transaction,
        std::time::SystemTime::now(),
    )
}

/// [`sign_request`] with the signingTime a device whose clock is at `signed_at` would put in.
pub fn sign_request_at(
    message_type: MessageType,
    envelope_der: &[u8],
    requester: &Requester<'_>,
    transaction: &Transaction<'_>,
    signed_at: std::time::SystemTime,
) -> Result<Vec<u8>, ClientError> {
    if message_type == MessageType::CertRep {
        return Err(ClientError::InvalidInput("a CertRep is not a request".into()));
    }
    let certificate = Certificate::from_der(requester.certificate_der)
        .map_err(|error| ClientError::InvalidInput(format!("requester certificate: {error}")))?;
    let encoding = |error: der::Error| ClientError::Build(error.into());
    let scep_attributes = vec![
        attributes::printable(rfc8894::ID_MESSAGE_TYPE, message_type.code()).map_err(encoding)?,
        attributes::printable(rfc8894::ID_TRANSACTION_ID, transaction.transaction_id).map_err(encoding)?,
        attributes::octets(rfc8894::ID_SENDER_NONCE, transaction.sender_nonce).map_err(encoding)?,
    ];
    Ok(message::build_signed(
        Some(envelope_der),
        transaction.digest,
        scep_attributes,
        &certificate,
        requester.key,
        signed_at,
    )?)
}

/// Verifies a CertRep with the key of `ca_certificate_der` (the CA or RA certificate that signs
/// replies) and, on success, decrypts the certificates and CRLs with the requester's key.
pub fn open_cert_rep(
    der: &[u8],
    requester_key: &Pkcs1PrivateDecryptingKey,
    ca_certificate_der: &[u8],
) -> Result<CertRepReply, ClientError> {
    let ca = Certificate::from_der(ca_certificate_der)
        .map_err(|error| ClientError::InvalidInput(format!("CA certificate: {error}")))?;
    let message = SignedMessage::decode(der).map_err(ClientError::Malformed)?;
    let content = message.verify(&ca).map_err(|error| match error {
        VerifyError::UnsupportedAlgorithm(detail) | VerifyError::BadMessageCheck(detail) => {
            ClientError::BadSignature(detail)
        }
    })?;
    let attributes = message.signed_attributes().map_err(ClientError::Malformed)?;
    let missing = |what: &str| ClientError::Malformed(format!("no valid {what}"));
    let message_type = attributes
        .string(rfc8894::ID_MESSAGE_TYPE)
        .ok_or_else(|| missing("messageType"))?;
    if MessageType::from_code(&message_type) != Some(MessageType::CertRep) {
        return Err(ClientError::Malformed(format!(
            "messageType {message_type:?} is not CertRep"
        )));
    }
    let status = attributes
        .string(rfc8894::ID_PKI_STATUS)
        .and_then(|code| PkiStatus::from_code(&code))
        .ok_or_else(|| missing("pkiStatus"))?;
    let fail_info = match attributes.string(rfc8894::ID_FAIL_INFO) {
        Some(code) => Some(FailInfo::from_code(&code).ok_or_else(|| missing("failInfo"))?),
        None => None,
    };
    let mut reply = CertRepReply {
        status,
        fail_info,
        transaction_id: attributes
            .string(rfc8894::ID_TRANSACTION_ID)
            .ok_or_else(|| missing("transactionID"))?,
        sender_nonce: attributes
            .octets(rfc8894::ID_SENDER_NONCE)
            .ok_or_else(|| missing("senderNonce"))?,
        recipient_nonce: attributes
            .octets(rfc8894::ID_RECIPIENT_NONCE)
            .ok_or_else(|| missing("recipientNonce"))?,
        digest: message.digest_algorithm().ok_or_else(|| missing("digest algorithm"))?,
        cipher: None,
        certificates: Vec::new(),
        crls: Vec::new(),
    };
    if status == PkiStatus::Success {
        let envelope = Envelope::decode(&content)?;
        let degenerate = envelope.open(None, requester_key)?;
        let certs_only = parse_certs_only(&degenerate)?;
        reply.cipher = Some(envelope.cipher());
        reply.certificates = certs_only.certificates;
        reply.crls = certs_only.crls;
    }
    Ok(reply)
}

/// Reads a degenerate certs-only SignedData (DER ContentInfo), as in a successful CertRep or a
/// GetCACert reply with a chain.
pub fn parse_certs_only(der: &[u8]) -> Result<CertsOnly, ClientError> {
    let malformed = |what: &str, error: der::Error| ClientError::Malformed(format!("{what}: {error}"));
    let content_info = ContentInfo::from_der(der).map_err(|error| malformed("certs-only ContentInfo", error))?;
    if content_info.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(ClientError::Malformed(format!(
            "certs-only content type {} is not signedData",
            content_info.content_type
        )));
    }
    let signed_data: SignedData = content_info
        .content
        .decode_as()
        .map_err(|error| malformed("certs-only SignedData", error))?;
    let mut certs_only = CertsOnly::default();
    for choice in signed_data.certificates.iter().flat_map(|set| set.0.iter()) {
        if let CertificateChoices::Certificate(certificate) = choice {
            certs_only
                .certificates
                .push(certificate.to_der().map_err(|error| malformed("certificate", error))?);
        }
    }
    for choice in signed_data.crls.iter().flat_map(|set| set.0.iter()) {
        if let RevocationInfoChoice::Crl(crl) = choice {
            certs_only
                .crls
                .push(crl.to_der().map_err(|error| malformed("CRL", error))?);
        }
    }
    Ok(certs_only)
}
