//! micromdm's recorded PKCSReq sent over HTTP to a pki-svc that imported the vector's CA as its
//! device CA, then damaged copies of it and of our own requests: every answer is a signed CertRep
//! or an HTTP 400, never a 500, and the server serves on afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfos};
use common::{Device, Harness, HttpReply, transaction_id, with_signed_data};
use der::Decode;
use der::asn1::OctetString;
use pki_svc::scep::client::{CertRepReply, open_cert_rep};
use pki_svc::scep::message::{CaKeys, DigestAlgorithm, FailInfo, PkiStatus, RequestBody, parse_pki_message};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use test_support::TempDir;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

const VECTOR: &[u8] = include_bytes!("vectors/micromdm/PKCSReq.der");
const VECTOR_TRANSACTION_ID: &str = "A13090761A30F66664F85D37433D2065E1112BA1";
const VECTOR_SENDER_NONCE: [u8; 8] = [0xae, 0x7f, 0xe8, 0x81, 0x6c, 0xc6, 0xbe, 0xdd];
const PKI_OPERATION: &str = "/scep/micromdm?operation=PKIOperation";

fn vector_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/micromdm")
        .join(name)
}

/// pki-svc with the vector's CA and key as its device CA, and an integration named `micromdm`;
/// returns the harness and the integration's challenge.
async fn vector_harness() -> (Harness, String) {
    let cert = vector_file("ca.pem").display().to_string();
    let key = vector_file("ca.key").display().to_string();
    let harness = Harness::start_with(&[("device_ca_cert", &cert), ("device_ca_key", &key)]).await;
    let challenge = harness.integration("micromdm", "").await;
    (harness, challenge)
}

/// Verifies a CertRep against the device CA and reads its attributes. Failure and pending
/// replies carry nothing encrypted, so any key will do for the (unused) decryption; one key is
/// made once, as RSA key generation is slow.
fn read_failure(ca: &[u8], reply: &HttpReply) -> CertRepReply {
    static ANY_KEY: LazyLock<Device> = LazyLock::new(Device::new);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.content_type, "application/x-pki-message");
    open_cert_rep(&reply.body, &ANY_KEY.decrypting_key(), ca).unwrap()
}

/// The vector with bit `bit` of its signature's byte `index` flipped.
fn with_signature_bit_flipped(index: usize, bit: u8) -> Vec<u8> {
    with_signed_data(VECTOR, |signed_data| {
        let mut signer = signed_data.signer_infos.0.get(0).unwrap().clone();
        let mut signature = signer.signature.as_bytes().to_vec();
        signature[index] ^= 1 << bit;
        signer.signature = OctetString::new(signature).unwrap();
        signed_data.signer_infos = SignerInfos(vec![signer].try_into().unwrap());
    })
}

fn signature_len() -> usize {
    let signed_data: SignedData = ContentInfo::from_der(VECTOR).unwrap().content.decode_as().unwrap();
    signed_data.signer_infos.0.get(0).unwrap().signature.as_bytes().len()
}

/// An RSA CA that is not the device CA.
fn another_ca() -> Vec<u8> {
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "Some other CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().der().to_vec()
}

#[tokio::test]
async fn micromdms_request_is_decrypted_and_answered_with_a_signed_bad_time() {
    let (harness, _) = vector_harness().await;
    let ca = harness.ca_der("micromdm").await;

    // The CSR inside asks to certify an RSA key too short for the device CA's policy; but the
    // request was signed in 2016, so it is refused first for its signingTime (badTime).
    let pem = |name: &str| {
        x509_parser::pem::parse_x509_pem(&std::fs::read(vector_file(name)).unwrap())
            .unwrap()
            .1
            .contents
    };
    assert_eq!(ca, pem("ca.pem"), "GetCACert serves the imported CA");
    let vector_ca = CaKeys::from_der(pem("ca.pem"), &pem("ca.key")).unwrap();
    let RequestBody::Csr(csr) = parse_pki_message(VECTOR, &vector_ca).unwrap().body else {
        panic!("a PKCSReq carries a CSR")
    };
    let (_, csr) = X509CertificationRequest::from_der(&csr).unwrap();
    let Ok(PublicKey::RSA(key)) = csr.certification_request_info.subject_pki.parsed() else {
        panic!("an RSA key")
    };
    assert_eq!(key.key_size(), 1024);

    let reply = harness.post(PKI_OPERATION, VECTOR.to_vec()).await;
    let cert_rep = read_failure(&ca, &reply);
    assert_eq!(cert_rep.status, PkiStatus::Failure);
    assert_eq!(cert_rep.fail_info, Some(FailInfo::BadTime));
    assert_eq!(cert_rep.transaction_id, VECTOR_TRANSACTION_ID);
    assert_eq!(cert_rep.recipient_nonce, VECTOR_SENDER_NONCE);
    assert_eq!(cert_rep.sender_nonce.len(), 16);
    assert_eq!(
        cert_rep.digest,
        DigestAlgorithm::Sha256,
        "SHA-1 requests are answered with SHA-256"
    );
    assert!(cert_rep.certificates.is_empty());

    // OpenSSL verifies the CertRep's signature with the certificate it carries, the imported CA.
    // A failure carries no content: its signature covers the empty string.
    let dir = TempDir::new("scep-vector");
    let cert_rep_path = dir.path().join("certrep.der");
    std::fs::write(&cert_rep_path, &reply.body).unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let signers = dir.path().join("signers.pem");
    let verified = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-noverify",
            "-inform",
            "DER",
            "-binary",
            "-out",
            "/dev/null",
        ])
        .arg("-content")
        .arg(&empty)
        .arg("-in")
        .arg(&cert_rep_path)
        .arg("-signer")
        .arg(&signers)
        .output()
        .expect("the openssl command");
    assert!(
        verified.status.success(),
        "openssl cms -verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let signer = std::fs::read(&signers).unwrap();
    assert_eq!(x509_parser::pem::parse_x509_pem(&signer).unwrap().1.contents, ca);

    assert_eq!(harness.certificates().await.len(), 0, "nothing was issued");
}

#[tokio::test]
async fn a_truncated_micromdm_request_is_a_bad_request_at_every_length() {
    let (harness, _) = vector_harness().await;
    for len in 0..VECTOR.len() {
        let reply = harness.post(PKI_OPERATION, VECTOR[..len].to_vec()).await;
        assert_eq!(
            reply.status,
            400,
            "truncated to {len}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(String::from_utf8_lossy(&reply.body).contains("pkiMessage"));
    }
    // Still serving: the whole request gets its CertRep.
    let ca = harness.ca_der("micromdm").await;
    let reply = harness.post(PKI_OPERATION, VECTOR.to_vec()).await;
    assert_eq!(read_failure(&ca, &reply).fail_info, Some(FailInfo::BadTime));
}

#[tokio::test]
async fn a_flipped_bit_in_the_micromdm_signature_is_a_bad_message_check() {
    let (harness, _) = vector_harness().await;
    let ca = harness.ca_der("micromdm").await;
    let len = signature_len();
    assert_eq!(len, 256, "the signer's key is RSA 2048");
    for (index, bit) in [(0, 0), (1, 7), (10, 2), (len / 2, 5), (len - 2, 3), (len - 1, 0)] {
        let reply = harness
            .post(PKI_OPERATION, with_signature_bit_flipped(index, bit))
            .await;
        let cert_rep = read_failure(&ca, &reply);
        assert_eq!(cert_rep.status, PkiStatus::Failure, "byte {index} bit {bit}");
        assert_eq!(
            cert_rep.fail_info,
            Some(FailInfo::BadMessageCheck),
            "byte {index} bit {bit}"
        );
        assert_eq!(cert_rep.transaction_id, VECTOR_TRANSACTION_ID);
        assert_eq!(cert_rep.recipient_nonce, VECTOR_SENDER_NONCE);
    }
    assert_eq!(harness.certificates().await.len(), 0);
}

#[tokio::test]
async fn a_request_encrypted_to_another_ca_is_a_bad_message_check() {
    let (harness, challenge) = vector_harness().await;
    let ca = harness.ca_der("micromdm").await;
    let device = Device::new();
    let tx = transaction_id();
    // Everything right (challenge, signer, CSR) except the certificate it is encrypted to.
    let message = device.pkcs_req(&another_ca(), "managementAttestation 0001", &challenge, &tx);
    let reply = harness.pki_operation("micromdm", &device, message).await;
    assert_eq!(reply.status, PkiStatus::Failure);
    assert_eq!(reply.fail_info, Some(FailInfo::BadMessageCheck));
    assert_eq!(reply.transaction_id, tx);
    assert!(reply.certificates.is_empty());
    // The same request encrypted to the device CA gets past decryption (and reaches the CSR
    // policy), so it was the recipient that was refused.
    let message = device.pkcs_req(&ca, "managementAttestation 0001", "", &transaction_id());
    let reply = harness.pki_operation("micromdm", &device, message).await;
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest), "no challenge");
    assert_eq!(harness.certificates().await.len(), 0);
}

#[tokio::test]
async fn random_bytes_and_bit_flips_anywhere_are_answered_without_a_server_error() {
    let (harness, _) = vector_harness().await;
    let ca = harness.ca_der("micromdm").await;
    // Not DER at all, or DER of the wrong thing.
    for garbage in [
        Vec::new(),
        vec![0u8; 1],
        vec![0x30, 0x80],
        vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        b"-----BEGIN PKCS7-----".to_vec(),
        Device::new().signer_der,
        ca.clone(),
    ] {
        let reply = harness.post(PKI_OPERATION, garbage.clone()).await;
        assert_eq!(reply.status, 400, "{garbage:02x?}");
    }
    for round in 0..64u16 {
        let len = 1 + usize::from(round) * 37;
        let mut random = vec![0u8; len];
        aws_lc_rs::rand::fill(&mut random).unwrap();
        let reply = harness.post(PKI_OPERATION, random).await;
        assert_eq!(reply.status, 400, "{len} random bytes");
    }
    // A flipped bit anywhere in the real request: a CertRep (the damage was signed over, or in a
    // part nothing signs) or a 400 (the structure broke). Never a 500.
    let (mut rejected, mut answered) = (0, 0);
    for index in (0..VECTOR.len()).step_by(3) {
        let mut damaged = VECTOR.to_vec();
        damaged[index] ^= 0x10;
        let reply = harness.post(PKI_OPERATION, damaged).await;
        match reply.status {
            400 => rejected += 1,
            200 => {
                let cert_rep = read_failure(&ca, &reply);
                assert_eq!(cert_rep.status, PkiStatus::Failure, "byte {index}");
                answered += 1;
            }
            status => panic!("byte {index}: HTTP {status}: {}", String::from_utf8_lossy(&reply.body)),
        }
    }
    assert!(rejected > 0 && answered > 0, "rejected {rejected}, answered {answered}");
    assert_eq!(harness.certificates().await.len(), 0);
    // Still serving.
    let caps = harness.get("/scep/micromdm?operation=GetCACaps").await;
    assert_eq!(caps.status, 200);
    let reply = harness.post(PKI_OPERATION, VECTOR.to_vec()).await;
    assert_eq!(read_failure(&ca, &reply).fail_info, Some(FailInfo::BadTime));
}

// The vector's CA expired on 2026-05-29: a fresh request with the right challenge is answered
// with a clear failure, and nothing is issued or recorded.
#[tokio::test]
async fn an_expired_device_ca_refuses_to_issue_and_records_nothing() {
    let (harness, challenge) = vector_harness().await;
    let ca = harness.ca_der("micromdm").await;
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca).unwrap();
    assert!(!ca_cert.validity().is_valid(), "the vector's CA has expired");
    let device = Device::new();
    let message = device.pkcs_req(&ca, "managementAttestation 0001", &challenge, &transaction_id());
    let reply = harness.pki_operation("micromdm", &device, message).await;
    assert_eq!(
        reply.status,
        PkiStatus::Failure,
        "issued {} certificate(s)",
        reply.certificates.len()
    );
    assert_eq!(harness.certificates().await.len(), 0);
}
