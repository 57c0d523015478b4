//! SCEP over HTTP against a running pki-svc: GetCACaps, GetCACert, PKCSReq by POST and GET with
//! the static challenge, renewal, CertPoll, GetCert, GetCRL, revocation and the CRL.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::{Device, Harness, reason, serial_of, transaction_id};
use pki_svc::scep::message::{ContentCipher, DigestAlgorithm, FailInfo, MessageType, PkiStatus, RequestBody};
use portcullis_proto::pki::v1 as pb;
use x509_parser::prelude::FromDer;

fn issuer_and_serial(ca_der: &[u8], serial: &[u8]) -> RequestBody {
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).unwrap();
    RequestBody::IssuerAndSerial {
        issuer: ca.tbs_certificate.subject.as_raw().to_vec(),
        serial: serial.to_vec(),
    }
}

#[tokio::test]
async fn get_ca_caps_advertises_what_clients_look_for_and_get_ca_cert_is_the_device_ca() {
    let harness = Harness::start().await;
    harness.integration("jamf", "").await;
    let caps = harness.get("/scep/jamf?operation=GetCACaps").await;
    assert_eq!(caps.status, 200);
    let caps = String::from_utf8(caps.body).unwrap();
    for cap in [
        "POSTPKIOperation",
        "SHA-256",
        "SHA-512",
        "AES",
        "SCEPStandard",
        "Renewal",
    ] {
        assert!(caps.lines().any(|line| line == cap), "{cap} missing from {caps:?}");
    }
    let ca = harness.get("/scep/jamf?operation=GetCACert").await;
    assert_eq!(ca.status, 200);
    assert_eq!(ca.content_type, "application/x-x509-ca-cert");
    let (_, cert) = x509_parser::parse_x509_certificate(&ca.body).unwrap();
    assert!(cert.is_ca());
    assert_eq!(
        cert.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.1",
        "RSA"
    );
    // The same CA the API reports.
    let chains = harness
        .viewer()
        .await
        .get_ca_certificates(pb::GetCaCertificatesRequest {})
        .await
        .unwrap()
        .into_inner();
    let device = chains.device_ca.unwrap();
    let pem = x509_parser::pem::parse_x509_pem(device.certificates_pem[0].as_bytes())
        .unwrap()
        .1;
    assert_eq!(pem.contents, ca.body);
    assert!(device.crl_url.ends_with("/crl/device.crl"));
    // The service CA is a different CA.
    assert_ne!(
        chains.service_ca.unwrap().certificates_pem[0],
        device.certificates_pem[0]
    );
}

#[tokio::test]
async fn unknown_integrations_and_operations_are_http_errors() {
    let harness = Harness::start().await;
    harness.integration("jamf", "").await;
    assert_eq!(harness.get("/scep/nobody?operation=GetCACaps").await.status, 404);
    assert_eq!(harness.get("/scep/jamf?operation=Dance").await.status, 400);
    assert_eq!(harness.get("/scep/jamf").await.status, 400);
    assert_eq!(harness.get("/scep/jamf?operation=PKIOperation").await.status, 400);
    assert_eq!(
        harness
            .get("/scep/jamf?operation=PKIOperation&message=%%%")
            .await
            .status,
        400
    );
    let garbage = harness
        .post("/scep/jamf?operation=PKIOperation", b"not a pkiMessage".to_vec())
        .await;
    assert_eq!(garbage.status, 400);
    assert!(String::from_utf8_lossy(&garbage.body).contains("pkiMessage"));
}

#[tokio::test]
async fn a_device_with_the_static_challenge_is_issued_a_client_certificate_by_post_and_by_get() {
    let harness = Harness::start().await;
    let challenge = harness
        .integration("jamf", r"CN=managementAttestation [0-9A-F-]+")
        .await;
    let ca = harness.ca_der("jamf").await;

    // POST.
    let device = Device::new();
    let tx = transaction_id();
    let message = device.pkcs_req(&ca, "managementAttestation 5E1C0A52-1A2B", &challenge, &tx);
    let reply = harness.pki_operation("jamf", &device, message).await;
    assert_eq!(reply.status, PkiStatus::Success, "{:?}", reply.fail_info);
    assert_eq!(reply.transaction_id, tx);
    let issued = &reply.certificates[0];
    let (_, cert) = x509_parser::parse_x509_certificate(issued).unwrap();
    assert_eq!(cert.subject().to_string(), "CN=managementAttestation 5E1C0A52-1A2B");
    assert_eq!(
        cert.issuer().as_raw(),
        x509_parser::parse_x509_certificate(&ca).unwrap().1.subject().as_raw()
    );
    assert!(cert.extended_key_usage().unwrap().unwrap().value.client_auth);
    assert!(!cert.is_ca());
    assert_eq!(cert.raw_serial().len(), 16, "a random 128-bit serial");
    let crl_dp = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::CRLDistributionPoints(points) => Some(format!("{points:?}")),
            _ => None,
        })
        .unwrap();
    assert!(crl_dp.contains("/crl/device.crl"), "{crl_dp}");
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(
        (365 * 86400..=365 * 86400 + 600).contains(&lifetime),
        "one year by default: {lifetime}"
    );
    // Its key is the device's.
    assert_eq!(
        cert.public_key().raw,
        x509_parser::parse_x509_certificate(&device.signer_der)
            .unwrap()
            .1
            .public_key()
            .raw
    );

    // GET, with the message in standard base64, URL-encoded.
    let device = Device::new();
    let ca_der = ca.clone();
    let message = device.pkcs_req(&ca_der, "managementAttestation 00FF", &challenge, &transaction_id());
    let encoded = base64::engine::general_purpose::STANDARD.encode(&message);
    let query: String = encoded
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_owned(),
            '/' => "%2F".to_owned(),
            '=' => "%3D".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let reply = harness
        .get(&format!("/scep/jamf?operation=PKIOperation&message={query}"))
        .await;
    assert_eq!(reply.status, 200);
    let reply = pki_svc::scep::client::open_cert_rep(&reply.body, &device.decrypting_key(), &ca).unwrap();
    assert_eq!(reply.status, PkiStatus::Success);

    // Both are in the inventory.
    let listed = harness
        .viewer()
        .await
        .list_certificates(pb::ListCertificatesRequest {
            filter: "integration = \"jamf\"".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.certificates.len(), 2);
    assert_eq!(listed.certificates[0].serial_number, serial_of(issued));
    assert_eq!(listed.certificates[0].status, pb::CertificateStatus::Valid as i32);
    assert_eq!(listed.certificates[0].subject, "CN=managementAttestation 5E1C0A52-1A2B");
}

#[tokio::test]
async fn a_wrong_missing_or_rotated_challenge_is_refused_with_bad_request() {
    let harness = Harness::start().await;
    let challenge = harness.integration("intune", "").await;
    let ca = harness.ca_der("intune").await;
    for wrong in ["", "not-the-challenge-at-all"] {
        let device = Device::new();
        let reply = harness
            .pki_operation("intune", &device, device.pkcs_req(&ca, "d1", wrong, &transaction_id()))
            .await;
        assert_eq!(reply.status, PkiStatus::Failure);
        assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));
        assert!(reply.certificates.is_empty());
    }
    // Rotation: the old challenge stops working at once, the new one works.
    let rotated = harness
        .operator()
        .await
        .rotate_scep_secret(pb::RotateScepSecretRequest {
            name: "intune".into(),
            secret: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    assert_ne!(rotated, challenge);
    let device = Device::new();
    let reply = harness
        .pki_operation(
            "intune",
            &device,
            device.pkcs_req(&ca, "d2", &challenge, &transaction_id()),
        )
        .await;
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));
    let reply = harness
        .pki_operation(
            "intune",
            &device,
            device.pkcs_req(&ca, "d2", &rotated, &transaction_id()),
        )
        .await;
    assert_eq!(reply.status, PkiStatus::Success);
    // Another integration's challenge is no good here.
    let other = harness.integration("workspace-one", "").await;
    let device = Device::new();
    let reply = harness
        .pki_operation("intune", &device, device.pkcs_req(&ca, "d3", &other, &transaction_id()))
        .await;
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));
    // Nothing refused was recorded.
    assert_eq!(harness.certificates().await.len(), 1);
}

#[tokio::test]
async fn the_csr_policy_refuses_weak_keys_and_subjects_outside_the_pattern() {
    let harness = Harness::start().await;
    let challenge = harness
        .integration("jamf", r"CN=managementAttestation [0-9A-F-]+")
        .await;
    let ca = harness.ca_der("jamf").await;
    let device = Device::new();
    let reply = harness
        .pki_operation(
            "jamf",
            &device,
            device.pkcs_req(&ca, "someone else", &challenge, &transaction_id()),
        )
        .await;
    assert_eq!(reply.status, PkiStatus::Failure);
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));
    // A prefix of the pattern is not enough: the whole subject must match.
    let reply = harness
        .pki_operation(
            "jamf",
            &device,
            device.pkcs_req(&ca, "managementAttestation 00AA evil", &challenge, &transaction_id()),
        )
        .await;
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));
}

#[tokio::test]
async fn a_request_signed_by_another_key_than_the_csr_is_refused() {
    let harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let ca = harness.ca_der("jamf").await;
    let device = Device::new();
    let intruder = Device::new();
    // The intruder's self-signed certificate and key sign a CSR for the device's key.
    let message = intruder.message(
        MessageType::PkcsReq,
        &RequestBody::Csr(device.csr("d", &challenge)),
        &intruder.signer_der,
        &ca,
        (ContentCipher::Aes128Cbc, DigestAlgorithm::Sha256),
        &transaction_id(),
    );
    let reply = harness.pki_operation("jamf", &intruder, message).await;
    assert_eq!(reply.status, PkiStatus::Failure);
    assert_eq!(reply.fail_info, Some(FailInfo::BadMessageCheck));
}

#[tokio::test]
async fn every_cipher_and_digest_real_clients_send_enrolls() {
    let harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let ca = harness.ca_der("jamf").await;
    for cipher in [
        ContentCipher::TripleDesCbc,
        ContentCipher::Aes128Cbc,
        ContentCipher::Aes192Cbc,
        ContentCipher::Aes256Cbc,
    ] {
        for digest in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let device = Device::new();
            let message = device.message(
                MessageType::PkcsReq,
                &RequestBody::Csr(device.csr("d", &challenge)),
                &device.signer_der,
                &ca,
                (cipher, digest),
                &transaction_id(),
            );
            let reply = harness.pki_operation("jamf", &device, message).await;
            assert_eq!(
                reply.status,
                PkiStatus::Success,
                "{cipher:?} {digest:?}: {:?}",
                reply.fail_info
            );
            assert_eq!(reply.certificates.len(), 1);
        }
    }
}

#[tokio::test]
async fn a_retried_transaction_gets_the_same_certificate_and_cert_poll_finds_it() {
    let harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let ca = harness.ca_der("jamf").await;
    let device = Device::new();
    let tx = transaction_id();
    let first = harness
        .pki_operation("jamf", &device, device.pkcs_req(&ca, "d", &challenge, &tx))
        .await;
    let again = harness
        .pki_operation("jamf", &device, device.pkcs_req(&ca, "d", &challenge, &tx))
        .await;
    assert_eq!(first.certificates, again.certificates);
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca).unwrap();
    let poll = device.message(
        MessageType::CertPoll,
        &RequestBody::IssuerAndSubject {
            issuer: ca_cert.subject().as_raw().to_vec(),
            subject: x509_parser::x509::X509Name::from_der(&[0x30, 0x00])
                .map(|_| vec![0x30, 0x00])
                .unwrap(),
        },
        &device.signer_der,
        &ca,
        (ContentCipher::Aes128Cbc, DigestAlgorithm::Sha256),
        &tx,
    );
    let polled = harness.pki_operation("jamf", &device, poll).await;
    assert_eq!(polled.status, PkiStatus::Success);
    assert_eq!(polled.certificates, first.certificates);
    // A poll for a transaction nobody started.
    let poll = device.message(
        MessageType::CertPoll,
        &RequestBody::IssuerAndSubject {
            issuer: ca_cert.subject().as_raw().to_vec(),
            subject: vec![0x30, 0x00],
        },
        &device.signer_der,
        &ca,
        (ContentCipher::Aes128Cbc, DigestAlgorithm::Sha256),
        "never-started",
    );
    let polled = harness.pki_operation("jamf", &device, poll).await;
    assert_eq!(polled.fail_info, Some(FailInfo::BadCertId));
    // Only one certificate was issued for the retried transaction.
    assert_eq!(harness.certificates().await.len(), 1);
}

#[tokio::test]
async fn renewal_signed_by_the_current_certificate_needs_no_challenge() {
    let harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let ca = harness.ca_der("jamf").await;
    let device = Device::new();
    let first = harness
        .pki_operation(
            "jamf",
            &device,
            device.pkcs_req(&ca, "d", &challenge, &transaction_id()),
        )
        .await;
    let current = first.certificates[0].clone();
    // A new key, signed with the current certificate and its key; no challenge.
    let renewed_key = Device::new();
    let csr = renewed_key.csr("d", "");
    let message = device.message(
        MessageType::RenewalReq,
        &RequestBody::Csr(csr),
        &current,
        &ca,
        (ContentCipher::Aes256Cbc, DigestAlgorithm::Sha512),
        &transaction_id(),
    );
    let reply = harness.pki_operation("jamf", &device, message).await;
    assert_eq!(reply.status, PkiStatus::Success, "{:?}", reply.fail_info);
    let renewed = harness
        .viewer()
        .await
        .get_certificate(pb::GetCertificateRequest {
            serial_number: serial_of(&reply.certificates[0]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renewed.renewed_serial_number, serial_of(&current));

    // A renewal signed by a self-signed certificate is refused, and so is one signed by a
    // revoked certificate.
    let stranger = Device::new();
    let message = stranger.message(
        MessageType::RenewalReq,
        &RequestBody::Csr(stranger.csr("d", "")),
        &stranger.signer_der,
        &ca,
        (ContentCipher::Aes256Cbc, DigestAlgorithm::Sha256),
        &transaction_id(),
    );
    let reply = harness.pki_operation("jamf", &stranger, message).await;
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));
    harness
        .operator()
        .await
        .revoke_certificate(pb::RevokeCertificateRequest {
            serial_number: serial_of(&current),
            reason: pb::CertificateRevocationReason::KeyCompromise.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let message = device.message(
        MessageType::RenewalReq,
        &RequestBody::Csr(Device::new().csr("d", "")),
        &current,
        &ca,
        (ContentCipher::Aes256Cbc, DigestAlgorithm::Sha256),
        &transaction_id(),
    );
    let reply = harness.pki_operation("jamf", &device, message).await;
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));
}

#[tokio::test]
async fn revocation_reaches_the_crl_served_over_http_and_get_crl() {
    let harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let ca = harness.ca_der("jamf").await;
    let device = Device::new();
    let issued = harness
        .pki_operation(
            "jamf",
            &device,
            device.pkcs_req(&ca, "d", &challenge, &transaction_id()),
        )
        .await
        .certificates
        .remove(0);
    let serial = serial_of(&issued);

    let crl = harness.get("/crl/device.crl").await;
    assert_eq!(crl.status, 200);
    assert_eq!(crl.content_type, "application/pkix-crl");
    let listed = |der: &[u8]| -> Vec<String> {
        let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).unwrap();
        crl.iter_revoked_certificates()
            .map(|r| r.raw_serial().iter().map(|b| format!("{b:02x}")).collect())
            .collect()
    };
    assert!(listed(&crl.body).is_empty());
    // Signed by the device CA.
    let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crl.body).unwrap();
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca).unwrap();
    parsed.verify_signature(ca_cert.public_key()).unwrap();

    let revoked = harness
        .operator()
        .await
        .revoke_certificate(pb::RevokeCertificateRequest {
            serial_number: serial.to_uppercase(),
            reason: pb::CertificateRevocationReason::KeyCompromise.into(),
            idempotency_key: "revoke-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.revoked_serial_numbers, vec![serial.clone()]);
    let crl = harness.get("/crl/device.crl").await;
    assert_eq!(listed(&crl.body), vec![serial.clone()]);
    let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crl.body).unwrap();
    let entry = parsed.iter_revoked_certificates().next().unwrap();
    assert_eq!(entry.reason_code().map(|(_, r)| r.0), Some(1), "keyCompromise");

    // GetCRL over SCEP returns the same list.
    let raw_serial = x509_parser::parse_x509_certificate(&issued)
        .unwrap()
        .1
        .raw_serial()
        .to_vec();
    let message = device.message(
        MessageType::GetCrl,
        &issuer_and_serial(&ca, &raw_serial),
        &device.signer_der,
        &ca,
        (ContentCipher::Aes128Cbc, DigestAlgorithm::Sha256),
        &transaction_id(),
    );
    let reply = harness.pki_operation("jamf", &device, message).await;
    assert_eq!(reply.status, PkiStatus::Success);
    assert_eq!(listed(&reply.crls[0]), vec![serial.clone()]);

    // GetCert returns the certificate itself.
    let message = device.message(
        MessageType::GetCert,
        &issuer_and_serial(&ca, &raw_serial),
        &device.signer_der,
        &ca,
        (ContentCipher::Aes128Cbc, DigestAlgorithm::Sha256),
        &transaction_id(),
    );
    let reply = harness.pki_operation("jamf", &device, message).await;
    assert_eq!(reply.certificates, vec![issued.clone()]);

    // The certificate reads as revoked; repeating the call changes nothing.
    let again = harness
        .operator()
        .await
        .revoke_certificate(pb::RevokeCertificateRequest {
            serial_number: serial.clone(),
            reason: pb::CertificateRevocationReason::Superseded.into(),
            idempotency_key: "revoke-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.revoked_serial_numbers, vec![serial.clone()]);
    let got = harness
        .viewer()
        .await
        .get_certificate(pb::GetCertificateRequest {
            serial_number: serial.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status, pb::CertificateStatus::Revoked as i32);
    assert_eq!(
        got.revocation_reason,
        pb::CertificateRevocationReason::KeyCompromise as i32
    );
    let missing = harness
        .viewer()
        .await
        .get_certificate(pb::GetCertificateRequest {
            serial_number: "00ff".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&missing), "CERTIFICATE_NOT_FOUND");
}

#[tokio::test]
async fn the_device_ca_survives_a_restart_and_keeps_issuing_under_the_same_name() {
    let mut harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let before = harness.ca_der("jamf").await;
    harness.stop_svc().await;
    harness.start_svc().await;
    assert_eq!(harness.ca_der("jamf").await, before);
    let device = Device::new();
    let reply = harness
        .pki_operation(
            "jamf",
            &device,
            device.pkcs_req(&before, "d", &challenge, &transaction_id()),
        )
        .await;
    assert_eq!(reply.status, PkiStatus::Success);
}

#[tokio::test]
async fn a_request_signed_far_from_the_servers_clock_is_refused_with_bad_time() {
    use pki_svc::scep::client::{Requester, Transaction, encode_body, sign_request_at};
    let harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let ca = harness.ca_der("jamf").await;
    let device = Device::new();
    let body = RequestBody::Csr(device.csr("d", &challenge));
    let content = encode_body(MessageType::PkcsReq, &body).unwrap();
    let envelope = pki_svc::scep::message::seal_envelope(&content, &ca, ContentCipher::Aes256Cbc).unwrap();
    let key = device.signing_key();
    let sign_at = |at: std::time::SystemTime| {
        sign_request_at(
            MessageType::PkcsReq,
            &envelope,
            &Requester {
                certificate_der: &device.signer_der,
                key: &key,
            },
            &Transaction {
                transaction_id: &transaction_id(),
                sender_nonce: &[1; 16],
                digest: DigestAlgorithm::Sha256,
            },
            at,
        )
        .unwrap()
    };
    let two_days = std::time::Duration::from_secs(2 * 86400);
    for skewed in [
        std::time::SystemTime::now() - two_days,
        std::time::SystemTime::now() + two_days,
    ] {
        let reply = harness.pki_operation("jamf", &device, sign_at(skewed)).await;
        assert_eq!(reply.status, PkiStatus::Failure);
        assert_eq!(reply.fail_info, Some(FailInfo::BadTime));
    }
    // An hour off is within the allowed skew.
    let reply = harness
        .pki_operation(
            "jamf",
            &device,
            sign_at(std::time::SystemTime::now() - std::time::Duration::from_secs(3600)),
        )
        .await;
    assert_eq!(reply.status, PkiStatus::Success, "{:?}", reply.fail_info);
}

#[tokio::test]
async fn subject_alternative_names_must_match_the_integrations_san_pattern() {
    let harness = Harness::start().await;
    let challenge = harness
        .operator()
        .await
        .create_scep_integration(pb::CreateScepIntegrationRequest {
            name: "intune".into(),
            san_pattern: r"email:[^@]+@example\.com".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let ca = harness.ca_der("intune").await;
    let enroll = |sans: Vec<rcgen::SanType>| {
        let device = Device::new();
        let message = device.message(
            MessageType::PkcsReq,
            &RequestBody::Csr(device.csr_with_sans("d", &challenge, sans)),
            &device.signer_der,
            &ca,
            (ContentCipher::Aes256Cbc, DigestAlgorithm::Sha256),
            &transaction_id(),
        );
        (device, message)
    };
    let email = |address: &str| rcgen::SanType::Rfc822Name(address.try_into().unwrap());
    let (device, message) = enroll(vec![email("alice@example.com")]);
    let reply = harness.pki_operation("intune", &device, message).await;
    assert_eq!(reply.status, PkiStatus::Success, "{:?}", reply.fail_info);
    let (_, cert) = x509_parser::parse_x509_certificate(&reply.certificates[0]).unwrap();
    let sans = format!("{:?}", cert.subject_alternative_name().unwrap().unwrap().value);
    assert!(sans.contains("alice@example.com"), "{sans}");
    for refused in [
        vec![email("mallory@evil.test")],
        vec![
            email("alice@example.com"),
            rcgen::SanType::DnsName("login.example.com".try_into().unwrap()),
        ],
        vec![rcgen::SanType::URI(
            "spiffe://portcullis.local/svc/gateway".try_into().unwrap(),
        )],
    ] {
        let (device, message) = enroll(refused.clone());
        let reply = harness.pki_operation("intune", &device, message).await;
        assert_eq!(reply.fail_info, Some(FailInfo::BadRequest), "{refused:?}");
    }
    // Without a SAN pattern, any SAN is copied.
    let open = harness.integration("open", "").await;
    let device = Device::new();
    let message = device.message(
        MessageType::PkcsReq,
        &RequestBody::Csr(device.csr_with_sans(
            "d",
            &open,
            vec![rcgen::SanType::DnsName("laptop.example.net".try_into().unwrap())],
        )),
        &device.signer_der,
        &ca,
        (ContentCipher::Aes256Cbc, DigestAlgorithm::Sha256),
        &transaction_id(),
    );
    let reply = harness.pki_operation("open", &device, message).await;
    assert_eq!(reply.status, PkiStatus::Success);
}
