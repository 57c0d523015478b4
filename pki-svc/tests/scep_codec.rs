//! The SCEP pkiMessage codec against a real client's request (micromdm), against itself through
//! the client-side builder, against the `openssl` CLI, and against hostile input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;

use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::RsaKeyPair;
use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use cms::signed_data::SignedData;
use common::with_signed_data;
use const_oid::db::rfc5912;
use der::asn1::OctetString;
use der::{Any, Decode, Encode};
use pki_svc::scep::client::{self, CertRepReply, ClientError, Requester, Transaction};
use pki_svc::scep::message::{
    BuildError, CaKeys, ContentCipher, DigestAlgorithm, EnvelopeError, FailInfo, KeyError, MessageType, Outcome,
    ParseError, PkiRequest, PkiStatus, ReplyTo, RequestBody, RsaSigner, SignError, UNDECRYPTABLE, build_cert_rep,
    certs_only, open_envelope, parse_pki_message, seal_envelope,
};
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use test_support::TempDir;
use x509_cert::Certificate;
use x509_parser::certification_request::X509CertificationRequest;

// ---------------------------------------------------------------------------------------------
// Test identities

/// A certificate and its RSA key in every form the tests need.
struct Identity {
    certificate_der: Vec<u8>,
    key_pkcs8: Vec<u8>,
    params: CertificateParams,
    key_pair: KeyPair,
    signing_key: RsaKeyPair,
    decrypting_key: Pkcs1PrivateDecryptingKey,
}

impl Identity {
    fn self_signed(common_name: &str, is_ca: bool) -> Self {
        let key_pair = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let params = params(common_name, is_ca);
        let certificate = params.self_signed(&key_pair).unwrap();
        Self::new(certificate.der().to_vec(), params, key_pair)
    }

    fn issued_by(common_name: &str, issuer: &Identity) -> Self {
        let key_pair = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let params = params(common_name, false);
        let certificate = params.signed_by(&key_pair, &issuer.issuer()).unwrap();
        Self::new(certificate.der().to_vec(), params, key_pair)
    }

    fn new(certificate_der: Vec<u8>, params: CertificateParams, key_pair: KeyPair) -> Self {
        let key_pkcs8 = key_pair.serialize_der();
        let signing_key = RsaKeyPair::from_pkcs8(&key_pkcs8).unwrap();
        let decrypting_key = decrypting_key(&key_pkcs8);
        Self {
            certificate_der,
            key_pkcs8,
            params,
            key_pair,
            signing_key,
            decrypting_key,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key_pair)
    }

    fn ca_keys(&self) -> CaKeys {
        CaKeys::from_der(self.certificate_der.clone(), &self.key_pkcs8).unwrap()
    }

    fn requester(&self) -> Requester<'_> {
        Requester {
            certificate_der: &self.certificate_der,
            key: &self.signing_key,
        }
    }

    /// A PKCS#10 request for this identity's key.
    fn csr(&self) -> Vec<u8> {
        self.params.serialize_request(&self.key_pair).unwrap().der().to_vec()
    }

    /// A certificate for this identity's key, issued by `issuer`.
    fn certificate_from(&self, issuer: &Identity) -> Vec<u8> {
        let mut params = params("issued", false);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42]));
        params
            .signed_by(&self.key_pair, &issuer.issuer())
            .unwrap()
            .der()
            .to_vec()
    }

    fn subject_der(&self) -> Vec<u8> {
        Certificate::from_der(&self.certificate_der)
            .unwrap()
            .tbs_certificate
            .subject
            .to_der()
            .unwrap()
    }

    /// Writes the certificate and key as PEM files for the `openssl` CLI.
    fn write_pem(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let certificate = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(
            &certificate,
            pki_svc::device_ca::pem("CERTIFICATE", &self.certificate_der),
        )
        .unwrap();
        std::fs::write(&key, self.key_pair.serialize_pem()).unwrap();
        (certificate, key)
    }
}

fn params(common_name: &str, is_ca: bool) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    if is_ca {
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params
}

fn decrypting_key(pkcs8: &[u8]) -> Pkcs1PrivateDecryptingKey {
    Pkcs1PrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(pkcs8).unwrap()).unwrap()
}

fn pem_contents(pem: &[u8]) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem).unwrap().1.contents
}

/// Key generation is the slow part; the tests share these.
static CA: LazyLock<Identity> = LazyLock::new(|| Identity::self_signed("Portcullis Test SCEP CA", true));
static OTHER_CA: LazyLock<Identity> = LazyLock::new(|| Identity::self_signed("Some Other CA", true));
static DEVICE: LazyLock<Identity> = LazyLock::new(|| Identity::self_signed("device-0001", false));
/// A device holding a certificate from [`CA`], renewing it.
static ENROLLED_DEVICE: LazyLock<Identity> = LazyLock::new(|| Identity::issued_by("device-0002", &CA));
static CA_KEYS: LazyLock<CaKeys> = LazyLock::new(|| CA.ca_keys());

/// Signs with the `openssl` CLI: the only way to make SHA-1 signatures (aws-lc-rs has no SHA-1
/// RSA signing) and to sign with the 1024-bit keys older clients have.
struct OpenSslSigner {
    key: PathBuf,
}

impl RsaSigner for OpenSslSigner {
    fn sign_pkcs1(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let digest = match digest {
            DigestAlgorithm::Sha1 => "-sha1",
            DigestAlgorithm::Sha256 => "-sha256",
            DigestAlgorithm::Sha512 => "-sha512",
        };
        let output = openssl_with_input(
            &["dgst", digest, "-binary", "-sign", self.key.to_str().unwrap()],
            message,
        );
        Ok(output)
    }
}

// ---------------------------------------------------------------------------------------------
// openssl CLI

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI runs")
}

fn openssl_ok(args: &[&str]) -> Vec<u8> {
    let output = openssl(args);
    assert!(
        output.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn openssl_with_input(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Requests

const CIPHERS: [ContentCipher; 4] = [
    ContentCipher::TripleDesCbc,
    ContentCipher::Aes128Cbc,
    ContentCipher::Aes192Cbc,
    ContentCipher::Aes256Cbc,
];
const DIGESTS: [DigestAlgorithm; 3] = [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256, DigestAlgorithm::Sha512];
const REQUESTS: [MessageType; 5] = [
    MessageType::PkcsReq,
    MessageType::RenewalReq,
    MessageType::CertPoll,
    MessageType::GetCert,
    MessageType::GetCrl,
];
const NONCE: [u8; 16] = *b"0123456789abcdef";
/// A serial whose top bit is set, so its DER INTEGER carries a leading zero byte.
const SERIAL: [u8; 3] = [0x8f, 0x01, 0x02];

/// The identity that signs a request of this type: self-signed to enroll, CA-issued to renew.
fn signer_for(message_type: MessageType) -> &'static Identity {
    match message_type {
        MessageType::RenewalReq => &ENROLLED_DEVICE,
        _ => &DEVICE,
    }
}

fn body_for(message_type: MessageType) -> RequestBody {
    let signer = signer_for(message_type);
    match message_type {
        MessageType::PkcsReq | MessageType::RenewalReq => RequestBody::Csr(signer.csr()),
        MessageType::CertPoll => RequestBody::IssuerAndSubject {
            issuer: CA.subject_der(),
            subject: signer.subject_der(),
        },
        MessageType::GetCert | MessageType::GetCrl => RequestBody::IssuerAndSerial {
            issuer: CA.subject_der(),
            serial: SERIAL.to_vec(),
        },
        MessageType::CertRep => unreachable!("not a request"),
    }
}

/// SHA-1 signatures come from the openssl CLI, the others from aws-lc-rs.
fn request(
    message_type: MessageType,
    body: &RequestBody,
    digest: DigestAlgorithm,
    cipher: ContentCipher,
    ca_certificate: &[u8],
) -> Vec<u8> {
    let signer = signer_for(message_type);
    let transaction = Transaction {
        transaction_id: "txn-0001",
        sender_nonce: &NONCE,
        digest,
    };
    if digest == DigestAlgorithm::Sha1 {
        let dir = TempDir::new("scep-sha1");
        let (_, key) = signer.write_pem(dir.path(), "signer");
        let openssl_signer = OpenSslSigner { key };
        let requester = Requester {
            certificate_der: &signer.certificate_der,
            key: &openssl_signer,
        };
        client::build_request(message_type, body, &requester, &transaction, ca_certificate, cipher).unwrap()
    } else {
        client::build_request(
            message_type,
            body,
            &signer.requester(),
            &transaction,
            ca_certificate,
            cipher,
        )
        .unwrap()
    }
}

fn pkcs_req(cipher: ContentCipher) -> Vec<u8> {
    request(
        MessageType::PkcsReq,
        &body_for(MessageType::PkcsReq),
        DigestAlgorithm::Sha256,
        cipher,
        &CA.certificate_der,
    )
}

fn sign_envelope(envelope: &[u8]) -> Vec<u8> {
    let transaction = Transaction {
        transaction_id: "txn-0001",
        sender_nonce: &NONCE,
        digest: DigestAlgorithm::Sha256,
    };
    client::sign_request(MessageType::PkcsReq, envelope, &DEVICE.requester(), &transaction).unwrap()
}

fn refused(result: Result<PkiRequest, ParseError>) -> (ReplyTo, FailInfo, String) {
    match result {
        Err(ParseError::Refused {
            reply_to,
            fail_info,
            detail,
        }) => (reply_to, fail_info, detail),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The certificates and CRLs a successful reply to `message_type` returns.
fn success_for(message_type: MessageType) -> Outcome {
    let signer = signer_for(message_type);
    match message_type {
        MessageType::GetCrl => Outcome::Success {
            certificates: vec![],
            crls: vec![crl()],
        },
        _ => Outcome::Success {
            certificates: vec![signer.certificate_from(&CA), CA.certificate_der.clone()],
            crls: vec![],
        },
    }
}

fn crl() -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc();
    let params = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(7),
        crl_number: rcgen::SerialNumber::from(7u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(&SERIAL),
            revocation_time: now,
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params.signed_by(&CA.issuer()).unwrap().der().to_vec()
}

fn sorted(mut items: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    items.sort();
    items
}

// ---------------------------------------------------------------------------------------------
// A real client's request

const VECTOR: &[u8] = include_bytes!("vectors/micromdm/PKCSReq.der");
const VECTOR_CA_PEM: &[u8] = include_bytes!("vectors/micromdm/ca.pem");
const VECTOR_CA_KEY_PEM: &[u8] = include_bytes!("vectors/micromdm/ca.key");
const VECTOR_DEVICE_SUBJECT: &str = "CN=com.apple.security.scep.063D7953-1338-4BF0-8F99-913382996224";

fn vector_ca() -> CaKeys {
    CaKeys::from_der(pem_contents(VECTOR_CA_PEM), &pem_contents(VECTOR_CA_KEY_PEM)).unwrap()
}

#[test]
fn a_micromdm_pkcsreq_yields_the_devices_csr() {
    let request = parse_pki_message(VECTOR, &vector_ca()).unwrap();

    assert_eq!(request.message_type, MessageType::PkcsReq);
    assert_eq!(
        request.reply_to.transaction_id,
        "A13090761A30F66664F85D37433D2065E1112BA1"
    );
    assert_eq!(
        request.reply_to.sender_nonce,
        [0xae, 0x7f, 0xe8, 0x81, 0x6c, 0xc6, 0xbe, 0xdd]
    );
    assert_eq!(request.reply_to.digest, DigestAlgorithm::Sha1);
    assert_eq!(request.reply_to.cipher, ContentCipher::TripleDesCbc);
    let (_, signer) = x509_parser::parse_x509_certificate(&request.reply_to.requester_certificate).unwrap();
    assert_eq!(signer.subject().to_string(), "CN=MDM SCEP SIGNER, C=US");
    let RequestBody::Csr(csr) = &request.body else {
        panic!("a PKCSReq carries a CSR: {:?}", request.body)
    };
    let (rest, csr) = <X509CertificationRequest<'_> as x509_parser::prelude::FromDer<'_, _>>::from_der(csr).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        csr.certification_request_info.subject.to_string(),
        VECTOR_DEVICE_SUBJECT
    );
    csr.verify_signature().unwrap();
}

#[test]
fn a_cert_rep_for_the_micromdm_request_verifies_with_openssl_and_is_encrypted_to_the_device() {
    let ca = vector_ca();
    let request = parse_pki_message(VECTOR, &ca).unwrap();
    let RequestBody::Csr(csr) = &request.body else {
        panic!("a PKCSReq carries a CSR")
    };
    // Issue the device's certificate with the vector's CA key, as the server would.
    let (_, csr) = <X509CertificationRequest<'_> as x509_parser::prelude::FromDer<'_, _>>::from_der(csr).unwrap();
    let device_key = rcgen::SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw).unwrap();
    let ca_key = KeyPair::from_pem(std::str::from_utf8(VECTOR_CA_KEY_PEM).unwrap()).unwrap();
    let ca_issuer = Issuer::from_ca_cert_pem(std::str::from_utf8(VECTOR_CA_PEM).unwrap(), &ca_key).unwrap();
    let issued = params("063D7953-1338-4BF0-8F99-913382996224", false)
        .signed_by(&device_key, &ca_issuer)
        .unwrap()
        .der()
        .to_vec();

    let outcome = Outcome::Success {
        certificates: vec![issued.clone()],
        crls: vec![],
    };
    let cert_rep = build_cert_rep(&ca, &request.reply_to, &outcome).unwrap();

    let dir = TempDir::new("scep-micromdm-certrep");
    let cert_rep_path = dir.path().join("certrep.der");
    let envelope_path = dir.path().join("envelope.der");
    std::fs::write(&cert_rep_path, &cert_rep).unwrap();
    openssl_ok(&[
        "cms",
        "-verify",
        "-noverify",
        "-inform",
        "DER",
        "-in",
        path(&cert_rep_path),
        "-binary",
        "-out",
        path(&envelope_path),
    ]);
    // SHA-1 requests are answered with SHA-256.
    let signed_data: SignedData = ContentInfo::from_der(&cert_rep).unwrap().content.decode_as().unwrap();
    let signer = signed_data.signer_infos.0.get(0).unwrap();
    assert_eq!(signer.digest_alg.oid, rfc5912::ID_SHA_256);
    let digest_algorithms: Vec<_> = signed_data
        .digest_algorithms
        .iter()
        .map(|algorithm| algorithm.oid)
        .collect();
    assert_eq!(digest_algorithms, [rfc5912::ID_SHA_256]);

    // A pending reply (which needs no device key to read) echoes the transaction and nonce.
    let pending = build_cert_rep(&ca, &request.reply_to, &Outcome::Pending).unwrap();
    let reply = client::open_cert_rep(&pending, &DEVICE.decrypting_key, ca.certificate_der()).unwrap();
    assert_eq!(reply.status, PkiStatus::Pending);
    assert_eq!(reply.transaction_id, "A13090761A30F66664F85D37433D2065E1112BA1");
    assert_eq!(reply.recipient_nonce, request.reply_to.sender_nonce);

    // The reply is a 3DES envelope addressed to the certificate that signed the request.
    let envelope = std::fs::read(&envelope_path).unwrap();
    let enveloped: EnvelopedData = ContentInfo::from_der(&envelope).unwrap().content.decode_as().unwrap();
    assert_eq!(
        enveloped.encrypted_content.content_enc_alg.oid,
        const_oid::db::rfc5911::DES_EDE_3_CBC
    );
    let device = Certificate::from_der(&request.reply_to.requester_certificate).unwrap();
    let [RecipientInfo::Ktri(recipient)] = enveloped.recip_infos.0.as_slice() else {
        panic!("one recipient")
    };
    let RecipientIdentifier::IssuerAndSerialNumber(rid) = &recipient.rid else {
        panic!("issuer and serial")
    };
    assert_eq!(rid.issuer, device.tbs_certificate.issuer);
    assert_eq!(rid.serial_number, device.tbs_certificate.serial_number);
}

#[test]
fn a_truncated_micromdm_request_is_malformed_at_every_length() {
    let ca = vector_ca();
    for len in 0..VECTOR.len() {
        let result = parse_pki_message(&VECTOR[..len], &ca);
        assert!(
            matches!(result, Err(ParseError::Malformed(_))),
            "truncated to {len}: {result:?}"
        );
    }
}

#[test]
fn a_bit_flip_anywhere_in_the_micromdm_request_never_panics_and_is_mostly_refused() {
    let ca = vector_ca();
    let (mut malformed, mut refused, mut accepted) = (0, 0, 0);
    for index in 0..VECTOR.len() {
        let mut damaged = VECTOR.to_vec();
        damaged[index] ^= 0x01;
        match parse_pki_message(&damaged, &ca) {
            Err(ParseError::Malformed(_)) => malformed += 1,
            Err(ParseError::Refused { .. }) => refused += 1,
            // A flip in what no signature covers (the signer certificate's own signature, say)
            // leaves a valid request.
            Ok(request) => {
                assert_eq!(request.message_type, MessageType::PkcsReq);
                accepted += 1;
            }
        }
    }
    assert!(
        malformed > 0 && refused > 0,
        "malformed {malformed}, refused {refused}, accepted {accepted}"
    );
    assert!(
        accepted < VECTOR.len() / 4,
        "accepted {accepted} of {} damaged requests",
        VECTOR.len()
    );
}

#[test]
fn a_flipped_bit_in_the_micromdm_signature_is_a_bad_message_check() {
    let damaged = with_signed_data(VECTOR, |signed_data| {
        let mut signer = signed_data.signer_infos.0.get(0).unwrap().clone();
        let mut signature = signer.signature.as_bytes().to_vec();
        signature[10] ^= 0x04;
        signer.signature = OctetString::new(signature).unwrap();
        signed_data.signer_infos = cms::signed_data::SignerInfos(vec![signer].try_into().unwrap());
    });
    let (reply_to, fail_info, detail) = refused(parse_pki_message(&damaged, &vector_ca()));
    assert_eq!(fail_info, FailInfo::BadMessageCheck);
    assert_eq!(detail, "the signature does not verify");
    assert_eq!(reply_to.transaction_id, "A13090761A30F66664F85D37433D2065E1112BA1");
}

// ---------------------------------------------------------------------------------------------
// Round trips through the client

#[test]
fn every_request_type_cipher_and_digest_round_trips_to_every_outcome() {
    for message_type in REQUESTS {
        let body = body_for(message_type);
        let signer = signer_for(message_type);
        for digest in DIGESTS {
            for cipher in CIPHERS {
                let context = format!("{message_type:?} {digest:?} {cipher:?}");
                let der = request(message_type, &body, digest, cipher, &CA.certificate_der);

                let parsed = parse_pki_message(&der, &CA_KEYS).unwrap_or_else(|error| panic!("{context}: {error}"));
                assert_eq!(parsed.message_type, message_type, "{context}");
                assert_eq!(parsed.body, body, "{context}");
                let expected_reply_to = ReplyTo {
                    transaction_id: "txn-0001".into(),
                    sender_nonce: NONCE.to_vec(),
                    requester_certificate: signer.certificate_der.clone(),
                    digest,
                    cipher,
                };
                assert_eq!(parsed.reply_to, expected_reply_to, "{context}");

                for outcome in [
                    success_for(message_type),
                    Outcome::Pending,
                    Outcome::Failure(FailInfo::BadCertId),
                ] {
                    let cert_rep = build_cert_rep(&CA_KEYS, &parsed.reply_to, &outcome).unwrap();
                    let reply = client::open_cert_rep(&cert_rep, &signer.decrypting_key, &CA.certificate_der)
                        .unwrap_or_else(|error| panic!("{context} {outcome:?}: {error}"));
                    assert_reply_answers(&reply, &outcome, digest, cipher, &context);
                }
            }
        }
    }
}

fn assert_reply_answers(
    reply: &CertRepReply,
    outcome: &Outcome,
    request_digest: DigestAlgorithm,
    request_cipher: ContentCipher,
    context: &str,
) {
    assert_eq!(reply.transaction_id, "txn-0001", "{context}");
    assert_eq!(reply.recipient_nonce, NONCE, "{context}");
    assert_eq!(reply.sender_nonce.len(), 16, "{context}");
    assert_ne!(reply.sender_nonce, NONCE, "{context}");
    let expected_digest = match request_digest {
        DigestAlgorithm::Sha1 => DigestAlgorithm::Sha256,
        digest => digest,
    };
    assert_eq!(reply.digest, expected_digest, "{context}");
    match outcome {
        Outcome::Success { certificates, crls } => {
            assert_eq!(reply.status, PkiStatus::Success, "{context}");
            assert_eq!(reply.fail_info, None, "{context}");
            assert_eq!(reply.cipher, Some(request_cipher), "{context}");
            assert_eq!(
                sorted(reply.certificates.clone()),
                sorted(certificates.clone()),
                "{context}"
            );
            assert_eq!(reply.crls, *crls, "{context}");
        }
        Outcome::Pending => {
            assert_eq!(reply.status, PkiStatus::Pending, "{context}");
            assert_eq!(reply.fail_info, None, "{context}");
            assert_eq!(reply.cipher, None, "{context}");
            assert!(reply.certificates.is_empty() && reply.crls.is_empty(), "{context}");
        }
        Outcome::Failure(fail_info) => {
            assert_eq!(reply.status, PkiStatus::Failure, "{context}");
            assert_eq!(reply.fail_info, Some(*fail_info), "{context}");
            assert_eq!(reply.cipher, None, "{context}");
            assert!(reply.certificates.is_empty() && reply.crls.is_empty(), "{context}");
        }
    }
}

#[test]
fn every_fail_info_reaches_the_client() {
    let parsed = parse_pki_message(&pkcs_req(ContentCipher::Aes128Cbc), &CA_KEYS).unwrap();
    for fail_info in [
        FailInfo::BadAlg,
        FailInfo::BadMessageCheck,
        FailInfo::BadRequest,
        FailInfo::BadTime,
        FailInfo::BadCertId,
    ] {
        let cert_rep = build_cert_rep(&CA_KEYS, &parsed.reply_to, &Outcome::Failure(fail_info)).unwrap();
        let reply = client::open_cert_rep(&cert_rep, &DEVICE.decrypting_key, &CA.certificate_der).unwrap();
        assert_eq!((reply.status, reply.fail_info), (PkiStatus::Failure, Some(fail_info)));
    }
}

#[test]
fn a_single_des_request_is_decrypted_but_answered_with_aes_256() {
    let der = pkcs_req(ContentCipher::DesCbc);
    let parsed = parse_pki_message(&der, &CA_KEYS).unwrap();
    assert_eq!(parsed.reply_to.cipher, ContentCipher::Aes256Cbc);
    assert_eq!(parsed.body, body_for(MessageType::PkcsReq));

    let cert_rep = build_cert_rep(&CA_KEYS, &parsed.reply_to, &success_for(MessageType::PkcsReq)).unwrap();
    let reply = client::open_cert_rep(&cert_rep, &DEVICE.decrypting_key, &CA.certificate_der).unwrap();
    assert_eq!(reply.cipher, Some(ContentCipher::Aes256Cbc));
    assert!(matches!(
        seal_envelope(b"x", &DEVICE.certificate_der, ContentCipher::DesCbc),
        Err(BuildError::WeakCipher)
    ));
}

#[test]
fn a_request_signed_by_a_1024_bit_key_verifies_but_cannot_be_sent_certificates() {
    let dir = TempDir::new("scep-rsa1024");
    let key = dir.path().join("old.key");
    let certificate = dir.path().join("old.der");
    openssl_ok(&["genrsa", "-out", path(&key), "1024"]);
    openssl_ok(&[
        "req",
        "-new",
        "-x509",
        "-key",
        path(&key),
        "-subj",
        "/CN=old-client",
        "-days",
        "1",
        "-outform",
        "DER",
        "-out",
        path(&certificate),
    ]);
    let certificate_der = std::fs::read(&certificate).unwrap();
    let signer = OpenSslSigner { key };
    let requester = Requester {
        certificate_der: &certificate_der,
        key: &signer,
    };
    for digest in DIGESTS {
        let transaction = Transaction {
            transaction_id: "old-1",
            sender_nonce: &NONCE,
            digest,
        };
        let body = body_for(MessageType::PkcsReq);
        let der = client::build_request(
            MessageType::PkcsReq,
            &body,
            &requester,
            &transaction,
            &CA.certificate_der,
            ContentCipher::TripleDesCbc,
        )
        .unwrap();
        let parsed = parse_pki_message(&der, &CA_KEYS).unwrap();
        assert_eq!(parsed.reply_to.requester_certificate, certificate_der);

        // aws-lc-rs only encrypts to keys of 2048 bits or more: such a client can be told
        // pending or failure, not sent a certificate.
        let result = build_cert_rep(&CA_KEYS, &parsed.reply_to, &success_for(MessageType::PkcsReq));
        assert!(
            matches!(result, Err(BuildError::UnsupportedRecipientKey(_))),
            "{result:?}"
        );
        assert!(build_cert_rep(&CA_KEYS, &parsed.reply_to, &Outcome::Failure(FailInfo::BadAlg)).is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-checks with OpenSSL

#[test]
fn cert_reps_verify_with_openssl_and_the_issued_certificate_decrypts_with_openssl() {
    let dir = TempDir::new("scep-openssl-certrep");
    let (device_pem, device_key) = DEVICE.write_pem(dir.path(), "device");
    for cipher in CIPHERS {
        let parsed = parse_pki_message(&pkcs_req(cipher), &CA_KEYS).unwrap();
        let issued = DEVICE.certificate_from(&CA);
        let outcome = Outcome::Success {
            certificates: vec![issued.clone()],
            crls: vec![],
        };
        let cert_rep_path = dir.path().join("certrep.der");
        let envelope_path = dir.path().join("envelope.der");
        let degenerate_path = dir.path().join("degenerate.der");
        std::fs::write(
            &cert_rep_path,
            build_cert_rep(&CA_KEYS, &parsed.reply_to, &outcome).unwrap(),
        )
        .unwrap();

        openssl_ok(&[
            "cms",
            "-verify",
            "-noverify",
            "-inform",
            "DER",
            "-in",
            path(&cert_rep_path),
            "-binary",
            "-out",
            path(&envelope_path),
        ]);
        openssl_ok(&[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            path(&envelope_path),
            "-recip",
            path(&device_pem),
            "-inkey",
            path(&device_key),
            "-binary",
            "-out",
            path(&degenerate_path),
        ]);
        let certificates = openssl_ok(&["pkcs7", "-inform", "DER", "-in", path(&degenerate_path), "-print_certs"]);
        assert_eq!(pem_contents(&certificates), issued, "{cipher:?}");
    }
}

#[test]
fn pending_and_failure_cert_reps_verify_with_openssl_over_empty_content() {
    let dir = TempDir::new("scep-openssl-failure");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let parsed = parse_pki_message(&pkcs_req(ContentCipher::Aes256Cbc), &CA_KEYS).unwrap();
    for outcome in [Outcome::Pending, Outcome::Failure(FailInfo::BadRequest)] {
        let cert_rep_path = dir.path().join("certrep.der");
        std::fs::write(
            &cert_rep_path,
            build_cert_rep(&CA_KEYS, &parsed.reply_to, &outcome).unwrap(),
        )
        .unwrap();
        openssl_ok(&[
            "cms",
            "-verify",
            "-noverify",
            "-inform",
            "DER",
            "-in",
            path(&cert_rep_path),
            "-binary",
            "-content",
            path(&empty),
        ]);
        // A tampered signature must fail the same check, or the check above proves nothing.
        let tampered = with_signed_data(&std::fs::read(&cert_rep_path).unwrap(), |signed_data| {
            let mut signer = signed_data.signer_infos.0.get(0).unwrap().clone();
            let mut signature = signer.signature.as_bytes().to_vec();
            signature[0] ^= 0x80;
            signer.signature = OctetString::new(signature).unwrap();
            signed_data.signer_infos = cms::signed_data::SignerInfos(vec![signer].try_into().unwrap());
        });
        std::fs::write(&cert_rep_path, tampered).unwrap();
        let output = openssl(&[
            "cms",
            "-verify",
            "-noverify",
            "-inform",
            "DER",
            "-in",
            path(&cert_rep_path),
            "-binary",
            "-content",
            path(&empty),
        ]);
        assert!(
            !output.status.success(),
            "openssl accepted a tampered CertRep for {outcome:?}"
        );
    }
}

#[test]
fn envelopes_made_by_openssl_are_decrypted() {
    let dir = TempDir::new("scep-openssl-envelope");
    let (ca_pem, _) = CA.write_pem(dir.path(), "ca");
    let csr = DEVICE.csr();
    let csr_path = dir.path().join("csr.der");
    std::fs::write(&csr_path, &csr).unwrap();
    let ciphers = [
        ("-des3", ContentCipher::TripleDesCbc),
        ("-aes128", ContentCipher::Aes128Cbc),
        ("-aes192", ContentCipher::Aes192Cbc),
        ("-aes256", ContentCipher::Aes256Cbc),
    ];
    for (flag, cipher) in ciphers {
        let envelope = openssl_ok(&[
            "cms",
            "-encrypt",
            "-binary",
            "-outform",
            "DER",
            "-in",
            path(&csr_path),
            flag,
            path(&ca_pem),
        ]);
        let opened = open_envelope(&envelope, &CA_KEYS).unwrap();
        assert_eq!((opened.cipher, &opened.content), (cipher, &csr), "{flag}");

        // And the same envelope inside a signed PKCSReq.
        let parsed = parse_pki_message(&sign_envelope(&envelope), &CA_KEYS).unwrap();
        assert_eq!(parsed.body, RequestBody::Csr(csr.clone()), "{flag}");
        assert_eq!(parsed.reply_to.cipher, cipher, "{flag}");
    }
}

#[test]
fn envelopes_we_seal_are_decrypted_by_openssl() {
    let dir = TempDir::new("scep-openssl-open");
    let (ca_pem, ca_key) = CA.write_pem(dir.path(), "ca");
    let envelope_path = dir.path().join("envelope.der");
    for cipher in CIPHERS {
        let content = format!("content for {cipher:?}").into_bytes();
        std::fs::write(
            &envelope_path,
            seal_envelope(&content, &CA.certificate_der, cipher).unwrap(),
        )
        .unwrap();
        let decrypted = openssl_ok(&[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            path(&envelope_path),
            "-recip",
            path(&ca_pem),
            "-inkey",
            path(&ca_key),
            "-binary",
        ]);
        assert_eq!(decrypted, content, "{cipher:?}");
    }
}

#[test]
fn certs_only_lists_the_chain_for_openssl() {
    let dir = TempDir::new("scep-certs-only");
    let chain = vec![CA.certificate_der.clone(), OTHER_CA.certificate_der.clone()];
    let der = certs_only(&chain).unwrap();
    let der_path = dir.path().join("chain.p7b");
    std::fs::write(&der_path, &der).unwrap();
    let printed = String::from_utf8(openssl_ok(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        path(&der_path),
        "-print_certs",
    ]))
    .unwrap();
    assert!(
        printed.contains("Portcullis Test SCEP CA") && printed.contains("Some Other CA"),
        "{printed}"
    );
    assert_eq!(
        sorted(client::parse_certs_only(&der).unwrap().certificates),
        sorted(chain)
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken requests

#[test]
fn empty_and_random_input_is_malformed() {
    assert!(matches!(
        parse_pki_message(&[], &CA_KEYS),
        Err(ParseError::Malformed(_))
    ));
    for len in [1, 2, 16, 300, 4096] {
        let mut noise = vec![0; len];
        aws_lc_rs::rand::fill(&mut noise).unwrap();
        let result = parse_pki_message(&noise, &CA_KEYS);
        assert!(
            matches!(result, Err(ParseError::Malformed(_))),
            "{len} random bytes: {result:?}"
        );
        // The same noise under a plausible SEQUENCE header.
        let mut framed = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
        framed.extend_from_slice(&noise);
        let result = parse_pki_message(&framed, &CA_KEYS);
        assert!(
            matches!(result, Err(ParseError::Malformed(_))),
            "framed noise: {result:?}"
        );
    }
}

#[test]
fn a_truncated_request_never_parses() {
    let der = pkcs_req(ContentCipher::Aes128Cbc);
    for len in 0..der.len() {
        let result = parse_pki_message(&der[..len], &CA_KEYS);
        assert!(
            matches!(result, Err(ParseError::Malformed(_))),
            "truncated to {len}: {result:?}"
        );
    }
}

#[test]
fn a_flipped_signature_bit_is_a_bad_message_check() {
    let der = with_signed_data(&pkcs_req(ContentCipher::Aes128Cbc), |signed_data| {
        let mut signer = signed_data.signer_infos.0.get(0).unwrap().clone();
        let mut signature = signer.signature.as_bytes().to_vec();
        let last = signature.len() - 1;
        signature[last] ^= 0x01;
        signer.signature = OctetString::new(signature).unwrap();
        signed_data.signer_infos = cms::signed_data::SignerInfos(vec![signer].try_into().unwrap());
    });
    let (reply_to, fail_info, detail) = refused(parse_pki_message(&der, &CA_KEYS));
    assert_eq!(
        (fail_info, detail.as_str()),
        (FailInfo::BadMessageCheck, "the signature does not verify")
    );
    assert_eq!(reply_to.transaction_id, "txn-0001");
    assert_eq!(reply_to.sender_nonce, NONCE);

    // The refusal still produces a CertRep the client can read.
    let cert_rep = build_cert_rep(&CA_KEYS, &reply_to, &Outcome::Failure(fail_info)).unwrap();
    let reply = client::open_cert_rep(&cert_rep, &DEVICE.decrypting_key, &CA.certificate_der).unwrap();
    assert_eq!(reply.fail_info, Some(FailInfo::BadMessageCheck));
}

#[test]
fn content_that_does_not_match_the_message_digest_is_a_bad_message_check() {
    let der = with_signed_data(&pkcs_req(ContentCipher::Aes128Cbc), |signed_data| {
        let econtent = signed_data.encap_content_info.econtent.as_ref().unwrap();
        let mut content = econtent.decode_as::<OctetString>().unwrap().into_bytes();
        let last = content.len() - 1;
        content[last] ^= 0x01;
        signed_data.encap_content_info.econtent = Some(Any::encode_from(&OctetString::new(content).unwrap()).unwrap());
    });
    let (_, fail_info, detail) = refused(parse_pki_message(&der, &CA_KEYS));
    assert_eq!(fail_info, FailInfo::BadMessageCheck);
    assert!(detail.contains("messageDigest"), "{detail}");
}

#[test]
fn an_unsupported_digest_is_a_bad_alg() {
    let der = with_signed_data(&pkcs_req(ContentCipher::Aes128Cbc), |signed_data| {
        let mut signer = signed_data.signer_infos.0.get(0).unwrap().clone();
        signer.digest_alg.oid = rfc5912::ID_SHA_384;
        signed_data.signer_infos = cms::signed_data::SignerInfos(vec![signer].try_into().unwrap());
    });
    let (reply_to, fail_info, _) = refused(parse_pki_message(&der, &CA_KEYS));
    assert_eq!(fail_info, FailInfo::BadAlg);
    assert_eq!(reply_to.digest, DigestAlgorithm::Sha256);
}

#[test]
fn an_unsupported_content_cipher_is_a_bad_alg() {
    let envelope = seal_envelope(&DEVICE.csr(), &CA.certificate_der, ContentCipher::Aes128Cbc).unwrap();
    let envelope = with_enveloped_data(&envelope, |enveloped| {
        // id-aes128-GCM
        enveloped.encrypted_content.content_enc_alg.oid =
            const_oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.6");
    });
    let (_, fail_info, _) = refused(parse_pki_message(&sign_envelope(&envelope), &CA_KEYS));
    assert_eq!(fail_info, FailInfo::BadAlg);
}

#[test]
fn a_request_encrypted_to_another_ca_is_a_bad_message_check() {
    let der = request(
        MessageType::PkcsReq,
        &body_for(MessageType::PkcsReq),
        DigestAlgorithm::Sha256,
        ContentCipher::Aes256Cbc,
        &OTHER_CA.certificate_der,
    );
    let (_, fail_info, detail) = refused(parse_pki_message(&der, &CA_KEYS));
    assert_eq!(fail_info, FailInfo::BadMessageCheck);
    assert_eq!(detail, EnvelopeError::WrongRecipient.to_string());
}

/// Decodes a pkcsPKIEnvelope, lets `change` alter it and encodes it again.
fn with_enveloped_data(der: &[u8], change: impl FnOnce(&mut EnvelopedData)) -> Vec<u8> {
    let content_info = ContentInfo::from_der(der).unwrap();
    let mut enveloped: EnvelopedData = content_info.content.decode_as().unwrap();
    change(&mut enveloped);
    ContentInfo {
        content_type: content_info.content_type,
        content: Any::encode_from(&enveloped).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn with_encrypted_key(der: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    with_enveloped_data(der, |enveloped| {
        let Some(RecipientInfo::Ktri(recipient)) = enveloped.recip_infos.0.get(0).cloned() else {
            panic!("one key transport recipient")
        };
        let mut recipient = recipient;
        let mut key = recipient.enc_key.as_bytes().to_vec();
        change(&mut key);
        recipient.enc_key = OctetString::new(key).unwrap();
        enveloped.recip_infos =
            cms::enveloped_data::RecipientInfos(vec![RecipientInfo::Ktri(recipient)].try_into().unwrap());
    })
}

#[test]
fn every_decryption_failure_is_refused_identically() {
    let envelope = seal_envelope(&DEVICE.csr(), &CA.certificate_der, ContentCipher::Aes256Cbc).unwrap();
    let bad_padding = with_enveloped_data(&envelope, |enveloped| {
        let mut ciphertext = enveloped
            .encrypted_content
            .encrypted_content
            .take()
            .unwrap()
            .into_bytes();
        let last = ciphertext.len() - 1;
        ciphertext[last] ^= 0x5a;
        enveloped.encrypted_content.encrypted_content = Some(OctetString::new(ciphertext).unwrap());
    });
    let broken_envelopes = [
        (
            "corrupted encrypted key",
            with_encrypted_key(&envelope, |key| key[5] ^= 0x10),
        ),
        (
            "truncated encrypted key",
            with_encrypted_key(&envelope, |key| key.truncate(100)),
        ),
        ("empty encrypted key", with_encrypted_key(&envelope, Vec::clear)),
        ("bad CBC padding", bad_padding),
    ];
    let expected = ParseError::Refused {
        reply_to: ReplyTo {
            transaction_id: "txn-0001".into(),
            sender_nonce: NONCE.to_vec(),
            requester_certificate: DEVICE.certificate_der.clone(),
            digest: DigestAlgorithm::Sha256,
            cipher: ContentCipher::Aes256Cbc,
        },
        fail_info: FailInfo::BadMessageCheck,
        detail: UNDECRYPTABLE.into(),
    };
    for (what, envelope) in broken_envelopes {
        assert_eq!(
            parse_pki_message(&sign_envelope(&envelope), &CA_KEYS),
            Err(expected.clone()),
            "{what}"
        );
        // Alone, the envelope mostly fails to decrypt; but a wrong content key (or a damaged
        // last block) still yields valid padding about once in 256 tries, and then garbage:
        // never the content, and never another error.
        match open_envelope(&envelope, &CA_KEYS) {
            Err(error) => assert_eq!(error, EnvelopeError::Undecryptable, "{what}"),
            Ok(opened) => assert_ne!(opened.content, DEVICE.csr(), "{what}"),
        }
    }

    // An envelope that decrypts, but not to a CSR, is refused in the very same words: with a
    // random content key (implicit rejection) this is where a forged envelope fails.
    let not_a_csr = seal_envelope(
        b"not a certification request",
        &CA.certificate_der,
        ContentCipher::Aes256Cbc,
    )
    .unwrap();
    assert!(open_envelope(&not_a_csr, &CA_KEYS).is_ok());
    assert_eq!(parse_pki_message(&sign_envelope(&not_a_csr), &CA_KEYS), Err(expected));
}

#[test]
fn a_cert_rep_is_not_a_request() {
    let parsed = parse_pki_message(&pkcs_req(ContentCipher::Aes128Cbc), &CA_KEYS).unwrap();
    let cert_rep = build_cert_rep(&CA_KEYS, &parsed.reply_to, &Outcome::Pending).unwrap();
    let (_, fail_info, _) = refused(parse_pki_message(&cert_rep, &CA_KEYS));
    assert_eq!(fail_info, FailInfo::BadRequest);
}

#[test]
fn a_request_without_its_signer_certificate_or_with_two_signers_is_malformed() {
    let der = pkcs_req(ContentCipher::Aes128Cbc);
    let without_certificate = with_signed_data(&der, |signed_data| signed_data.certificates = None);
    assert!(matches!(
        parse_pki_message(&without_certificate, &CA_KEYS),
        Err(ParseError::Malformed(_))
    ));

    let two_signers = with_signed_data(&der, |signed_data| {
        let signer = signed_data.signer_infos.0.get(0).unwrap().clone();
        let mut second = signer.clone();
        second.signature = OctetString::new(vec![1, 2, 3]).unwrap();
        signed_data.signer_infos = cms::signed_data::SignerInfos(vec![signer, second].try_into().unwrap());
    });
    assert!(matches!(
        parse_pki_message(&two_signers, &CA_KEYS),
        Err(ParseError::Malformed(_))
    ));
}

#[test]
fn a_cert_rep_signed_by_another_ca_is_rejected_by_the_client() {
    let parsed = parse_pki_message(&pkcs_req(ContentCipher::Aes128Cbc), &CA_KEYS).unwrap();
    let impostor = OTHER_CA.ca_keys();
    let cert_rep = build_cert_rep(&impostor, &parsed.reply_to, &Outcome::Pending).unwrap();
    let result = client::open_cert_rep(&cert_rep, &DEVICE.decrypting_key, &CA.certificate_der);
    assert!(matches!(result, Err(ClientError::BadSignature(_))), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// CA keys

#[test]
fn ca_keys_load_from_pkcs1_and_refuse_a_key_of_another_certificate() {
    let dir = TempDir::new("scep-ca-keys");
    let (_, key) = CA.write_pem(dir.path(), "ca");
    let pkcs1 = openssl_ok(&["rsa", "-in", path(&key), "-traditional", "-outform", "DER"]);
    let ca = CaKeys::from_der(CA.certificate_der.clone(), &pkcs1).unwrap();
    assert_eq!(ca.certificate_der(), CA.certificate_der);
    // The PKCS#1-loaded key decrypts what is sent to the CA.
    let parsed = parse_pki_message(&pkcs_req(ContentCipher::Aes192Cbc), &ca).unwrap();
    assert_eq!(parsed.body, body_for(MessageType::PkcsReq));

    let mismatch = CaKeys::from_der(CA.certificate_der.clone(), &OTHER_CA.key_pkcs8);
    assert!(matches!(mismatch, Err(KeyError::Mismatch)), "{mismatch:?}");
    assert!(matches!(
        CaKeys::from_der(vec![1, 2, 3], &CA.key_pkcs8),
        Err(KeyError::Certificate(_))
    ));
    assert!(matches!(
        CaKeys::from_der(CA.certificate_der.clone(), b"key"),
        Err(KeyError::PrivateKey(_))
    ));
}
