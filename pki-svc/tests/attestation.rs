//! VerifyManagementAttestation as the gateway calls it: certificates from the device CA (enrolled
//! through SCEP) and from an imported customer CA with its CRL, bindings, revocation, and mobile
//! management hints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_lc_rs::signature::{EcdsaKeyPair, RsaKeyPair};
use common::{Device, Harness, reason, serial_of, transaction_id};
use pki_svc::scep::message::PkiStatus;
use portcullis_proto::device::v1::Platform;
use portcullis_proto::pki::v1 as pb;
use portcullis_proto::pki::v1::pki_service_client::PkiServiceClient;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use tonic::transport::Channel;

const NONCE: &[u8] = b"sign-in nonce 6f1c2a";

/// An RSA signature over `message` (PKCS#1 v1.5, SHA-256) with `key`.
fn rsa_sign(key: &KeyPair, message: &[u8]) -> Vec<u8> {
    let pair = RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap();
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        message,
        &mut signature,
    )
    .unwrap();
    signature
}

/// An ECDSA P-256 signature (ASN.1) over `message` with `key`.
fn ecdsa_sign(key: &KeyPair, message: &[u8]) -> Vec<u8> {
    let pair = EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &key.serialize_der(),
    )
    .unwrap();
    pair.sign(&aws_lc_rs::rand::SystemRandom::new(), message)
        .unwrap()
        .as_ref()
        .to_vec()
}

fn desktop(device_id: &str, chain: Vec<Vec<u8>>, signature: Vec<u8>) -> pb::VerifyManagementAttestationRequest {
    pb::VerifyManagementAttestationRequest {
        device_id: device_id.into(),
        platform: Platform::Macos.into(),
        nonce: NONCE.to_vec(),
        certificate_chain: chain,
        signature,
        management_hint_proof: Vec::new(),
    }
}

async fn gateway(harness: &Harness) -> PkiServiceClient<Channel> {
    harness.client(&harness.pki.service("gateway")).await
}

async fn attest(
    harness: &Harness,
    request: pb::VerifyManagementAttestationRequest,
) -> pb::VerifyManagementAttestationResponse {
    gateway(harness)
        .await
        .verify_management_attestation(request)
        .await
        .unwrap()
        .into_inner()
}

/// Enrolls `device` through SCEP; returns its management certificate.
async fn enrolled(harness: &Harness, device: &Device) -> Vec<u8> {
    let challenge = harness.integration("jamf", "").await;
    let ca = harness.ca_der("jamf").await;
    let reply = harness
        .pki_operation(
            "jamf",
            device,
            device.pkcs_req(&ca, "managementAttestation 1234", &challenge, &transaction_id()),
        )
        .await;
    assert_eq!(reply.status, PkiStatus::Success);
    reply.certificates[0].clone()
}

#[tokio::test]
async fn a_device_ca_certificate_attests_and_binds_to_the_first_device_it_attests_for() {
    let harness = Harness::start().await;
    let device = Device::new();
    let certificate = enrolled(&harness, &device).await;
    let serial = serial_of(&certificate);
    let signature = rsa_sign(&device.key, NONCE);

    let answer = attest(
        &harness,
        desktop("device-a", vec![certificate.clone()], signature.clone()),
    )
    .await;
    assert!(answer.managed, "{}", answer.reason);
    assert_eq!(answer.method, pb::AttestationMethod::Certificate as i32);
    assert_eq!(answer.certificate_serial_number, serial);
    assert_eq!(answer.issuer_ca, "device");
    assert_eq!(answer.reason, "");
    // Bound now, and the inventory says so.
    let record = harness
        .viewer()
        .await
        .get_certificate(pb::GetCertificateRequest {
            serial_number: serial.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.bound_device_id, "device-a");
    // The same device again: still managed.
    assert!(
        attest(
            &harness,
            desktop("device-a", vec![certificate.clone()], signature.clone())
        )
        .await
        .managed
    );
    // Another device presenting the same certificate (and a valid signature): not managed.
    let answer = attest(&harness, desktop("device-b", vec![certificate.clone()], signature)).await;
    assert!(!answer.managed);
    assert_eq!(answer.reason, "CERT_BOUND_TO_OTHER_DEVICE");
    assert_eq!(answer.certificate_serial_number, serial);

    // Deleting device-a (device-svc's effect) revokes what is bound to it; then it no longer
    // attests and the CRL lists it.
    let device_svc = harness.client(&harness.pki.service("device-svc")).await;
    let revoked = device_svc
        .clone()
        .revoke_certificate(pb::RevokeCertificateRequest {
            bound_device_id: "device-a".into(),
            reason: pb::CertificateRevocationReason::CessationOfOperation.into(),
            idempotency_key: "delete-device-a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.revoked_serial_numbers, vec![serial.clone()]);
    let answer = attest(
        &harness,
        desktop("device-a", vec![certificate], rsa_sign(&device.key, NONCE)),
    )
    .await;
    assert_eq!(answer.reason, "CERT_REVOKED");
    let crl = harness.get("/crl/device.crl").await;
    let (_, crl) = <x509_parser::revocation_list::CertificateRevocationList as x509_parser::prelude::FromDer<
        x509_parser::error::X509Error,
    >>::from_der(&crl.body)
    .unwrap();
    assert!(
        crl.iter_revoked_certificates()
            .any(|r| r.raw_serial().iter().map(|b| format!("{b:02x}")).collect::<String>() == serial)
    );
}

#[tokio::test]
async fn a_wrong_signature_a_missing_proof_or_an_unknown_ca_do_not_attest() {
    let harness = Harness::start().await;
    let device = Device::new();
    let certificate = enrolled(&harness, &device).await;
    // Signed over another nonce, or by another key.
    let answer = attest(
        &harness,
        desktop(
            "attacker",
            vec![certificate.clone()],
            rsa_sign(&device.key, b"another nonce"),
        ),
    )
    .await;
    assert_eq!(answer.reason, "BAD_SIGNATURE");
    let other = Device::new();
    let answer = attest(
        &harness,
        desktop("attacker", vec![certificate.clone()], rsa_sign(&other.key, NONCE)),
    )
    .await;
    assert_eq!(answer.reason, "BAD_SIGNATURE");
    // Nothing presented.
    assert_eq!(
        attest(&harness, desktop("attacker", vec![], vec![1])).await.reason,
        "NO_PROOF"
    );
    assert_eq!(
        attest(&harness, desktop("attacker", vec![certificate.clone()], vec![]))
            .await
            .reason,
        "NO_PROOF"
    );
    assert_eq!(
        attest(&harness, desktop("attacker", vec![b"junk".to_vec()], vec![1]))
            .await
            .reason,
        "INVALID_CERTIFICATE"
    );
    // A self-signed certificate, and one from a CA nobody imported.
    let stranger = CustomerCa::new("Stranger CA");
    let (leaf, key) = stranger.leaf_rsa("d", true, false);
    let answer = attest(&harness, desktop("attacker", vec![leaf], rsa_sign(&key, NONCE))).await;
    assert_eq!(answer.reason, "UNTRUSTED_ISSUER");
    assert_eq!(
        attest(
            &harness,
            desktop("attacker", vec![other.signer_der.clone()], rsa_sign(&other.key, NONCE))
        )
        .await
        .reason,
        "UNTRUSTED_ISSUER"
    );
    // None of these bound the certificate: its owner attests next.
    assert!(
        attest(
            &harness,
            desktop("owner", vec![certificate], rsa_sign(&device.key, NONCE))
        )
        .await
        .managed
    );
}

#[tokio::test]
async fn bad_requests_and_callers_other_than_the_gateway_are_refused() {
    let harness = Harness::start().await;
    let mut request = desktop("d", vec![], vec![]);
    request.platform = Platform::Unspecified.into();
    let status = gateway(&harness)
        .await
        .verify_management_attestation(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let mut request = desktop("d", vec![], vec![]);
    request.nonce.clear();
    let status = gateway(&harness)
        .await
        .verify_management_attestation(request)
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    let status = harness
        .viewer()
        .await
        .verify_management_attestation(desktop("d", vec![], vec![]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
}

/// A customer's own CA (AD CS, say), made with rcgen.
struct CustomerCa {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

impl CustomerCa {
    fn new(name: &str) -> Self {
        Self::valid_until(name, None)
    }

    /// A CA whose certificate ended a day ago.
    fn expired(name: &str) -> Self {
        Self::valid_until(name, Some(OffsetDateTime::now_utc() - Duration::days(1)))
    }

    fn valid_until(name: &str, not_after: Option<OffsetDateTime>) -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        if let Some(not_after) = not_after {
            params.not_before = not_after - Duration::days(365);
            params.not_after = not_after;
        }
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Self {
            issuer: Issuer::new(params, key),
            der,
        }
    }

    fn pem(&self) -> String {
        pki_svc::device_ca::pem("CERTIFICATE", &self.der)
    }

    fn leaf_params(common_name: &str, client_auth: bool, expired: bool) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&common::rand_bytes::<16>()));
        if client_auth {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        let now = OffsetDateTime::now_utc();
        if expired {
            params.not_before = now - Duration::days(30);
            params.not_after = now - Duration::days(1);
        } else {
            params.not_before = now - Duration::hours(1);
            params.not_after = now + Duration::days(30);
        }
        params
    }

    fn leaf_rsa(&self, common_name: &str, client_auth: bool, expired: bool) -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let der = Self::leaf_params(common_name, client_auth, expired)
            .signed_by(&key, &self.issuer)
            .unwrap()
            .der()
            .to_vec();
        (der, key)
    }

    fn leaf_ecdsa(&self, common_name: &str) -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = Self::leaf_params(common_name, true, false)
            .signed_by(&key, &self.issuer)
            .unwrap()
            .der()
            .to_vec();
        (der, key)
    }

    /// A CRL listing `revoked`, issued `age` ago.
    fn crl(&self, number: u64, revoked: &[&[u8]], age: Duration) -> Vec<u8> {
        let now = OffsetDateTime::now_utc() - age;
        CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(7),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|der| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(
                        x509_parser::parse_x509_certificate(der).unwrap().1.raw_serial(),
                    ),
                    revocation_time: now,
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .unwrap()
        .der()
        .to_vec()
    }
}

#[tokio::test]
async fn a_customer_ca_attests_only_with_a_current_crl_that_does_not_list_the_certificate() {
    let harness = Harness::start().await;
    let customer = CustomerCa::new("Acme Issuing CA");
    let admin = harness.admin().await;
    let imported = admin
        .clone()
        .import_trusted_ca(pb::ImportTrustedCaRequest {
            display_name: "Acme AD CS".into(),
            certificates_pem: customer.pem(),
            crl_url: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.subject, "CN=Acme Issuing CA");
    let (leaf, key) = customer.leaf_rsa("laptop-7", true, false);

    // No CRL yet: revocation unknown, so not managed (fail closed).
    let answer = attest(&harness, desktop("d1", vec![leaf.clone()], rsa_sign(&key, NONCE))).await;
    assert_eq!(answer.reason, "REVOCATION_UNKNOWN");
    assert_eq!(answer.issuer_ca, imported.id);

    // A CRL signed by another CA is refused.
    let forger = CustomerCa::new("Acme Issuing CA");
    let status = harness
        .operator()
        .await
        .upload_trusted_ca_crl(pb::UploadTrustedCaCrlRequest {
            id: imported.id.clone(),
            crl: forger.crl(1, &[], Duration::hours(1)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // An empty CRL: managed, and the certificate binds to d1.
    harness
        .operator()
        .await
        .upload_trusted_ca_crl(pb::UploadTrustedCaCrlRequest {
            id: imported.id.clone(),
            crl: customer.crl(1, &[], Duration::hours(1)),
        })
        .await
        .unwrap();
    let answer = attest(&harness, desktop("d1", vec![leaf.clone()], rsa_sign(&key, NONCE))).await;
    assert!(answer.managed, "{}", answer.reason);
    assert_eq!(answer.issuer_ca, imported.id);
    assert_eq!(answer.certificate_serial_number, serial_of(&leaf));
    let answer = attest(&harness, desktop("d2", vec![leaf.clone()], rsa_sign(&key, NONCE))).await;
    assert_eq!(answer.reason, "CERT_BOUND_TO_OTHER_DEVICE");

    // ECDSA keys attest too.
    let (ec_leaf, ec_key) = customer.leaf_ecdsa("laptop-8");
    let answer = attest(&harness, desktop("d3", vec![ec_leaf], ecdsa_sign(&ec_key, NONCE))).await;
    assert!(answer.managed, "{}", answer.reason);

    // Expired, and not for client authentication.
    let (expired, expired_key) = customer.leaf_rsa("old", true, true);
    let answer = attest(&harness, desktop("d4", vec![expired], rsa_sign(&expired_key, NONCE))).await;
    assert_eq!(answer.reason, "CERT_EXPIRED");
    let (server, server_key) = customer.leaf_rsa("server", false, false);
    let answer = attest(&harness, desktop("d5", vec![server], rsa_sign(&server_key, NONCE))).await;
    assert_eq!(answer.reason, "CERT_NOT_CLIENT_AUTH");

    // A newer CRL revoking the certificate: revoked from then on.
    let listed = harness
        .operator()
        .await
        .upload_trusted_ca_crl(pb::UploadTrustedCaCrlRequest {
            id: imported.id.clone(),
            crl: customer.crl(2, &[&leaf], Duration::minutes(1)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.crl_revoked_count, 1);
    let answer = attest(&harness, desktop("d1", vec![leaf.clone()], rsa_sign(&key, NONCE))).await;
    assert_eq!(answer.reason, "CERT_REVOKED");

    // Removing the CA: its certificates are untrusted.
    admin
        .clone()
        .remove_trusted_ca(pb::RemoveTrustedCaRequest {
            id: imported.id.clone(),
        })
        .await
        .unwrap();
    let (fresh, fresh_key) = customer.leaf_rsa("laptop-9", true, false);
    let answer = attest(&harness, desktop("d6", vec![fresh], rsa_sign(&fresh_key, NONCE))).await;
    assert_eq!(answer.reason, "UNTRUSTED_ISSUER");
    let listed = harness
        .viewer()
        .await
        .list_trusted_cas(pb::ListTrustedCasRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.trusted_cas.is_empty());
}

#[tokio::test]
async fn a_customer_crl_is_fetched_from_its_distribution_point() {
    let harness = Harness::start().await;
    let customer = CustomerCa::new("Fetched CA");
    let (leaf, key) = customer.leaf_rsa("laptop", true, false);
    let crl = customer.crl(1, &[&leaf], Duration::minutes(5));
    // A plain HTTP server publishing the CRL, as AD CS does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/acme.crl", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/acme.crl",
        axum::routing::get(move || {
            let crl = crl.clone();
            async move { crl }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let imported = harness
        .admin()
        .await
        .import_trusted_ca(pb::ImportTrustedCaRequest {
            display_name: "Fetched".into(),
            certificates_pem: customer.pem(),
            crl_url: url,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        imported.crl_next_update.is_some(),
        "fetched at import: {}",
        imported.crl_fetch_error
    );
    assert_eq!(imported.crl_revoked_count, 1);
    let answer = attest(&harness, desktop("d", vec![leaf], rsa_sign(&key, NONCE))).await;
    assert_eq!(answer.reason, "CERT_REVOKED");

    // An unreachable distribution point is reported, and fails closed.
    let other = CustomerCa::new("Offline CA");
    let offline = harness
        .admin()
        .await
        .import_trusted_ca(pb::ImportTrustedCaRequest {
            display_name: "Offline".into(),
            certificates_pem: other.pem(),
            crl_url: "http://127.0.0.1:9/none.crl".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!offline.crl_fetch_error.is_empty());
    let (leaf, key) = other.leaf_rsa("laptop", true, false);
    let answer = attest(&harness, desktop("d", vec![leaf], rsa_sign(&key, NONCE))).await;
    assert_eq!(answer.reason, "REVOCATION_UNKNOWN");
}

#[tokio::test]
async fn importing_refuses_what_is_not_a_ca_and_only_admins_may_import() {
    let harness = Harness::start().await;
    let customer = CustomerCa::new("Acme");
    let (leaf, _) = customer.leaf_rsa("not a CA", true, false);
    let status = harness
        .admin()
        .await
        .import_trusted_ca(pb::ImportTrustedCaRequest {
            display_name: "leaf".into(),
            certificates_pem: pki_svc::device_ca::pem("CERTIFICATE", &leaf),
            crl_url: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = harness
        .admin()
        .await
        .import_trusted_ca(pb::ImportTrustedCaRequest {
            display_name: "nothing".into(),
            certificates_pem: "not PEM".into(),
            crl_url: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = harness
        .operator()
        .await
        .import_trusted_ca(pb::ImportTrustedCaRequest {
            display_name: "Acme".into(),
            certificates_pem: customer.pem(),
            crl_url: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn a_mobile_management_hint_attests_with_the_current_secret_only() {
    let harness = Harness::start().await;
    let created = harness
        .operator()
        .await
        .create_mobile_integration(pb::CreateMobileIntegrationRequest {
            provider_name: "Intune".into(),
            enrollment_link: "https://portal.manage.microsoft.com".into(),
            management_secret: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let secret = created.management_secret.clone();
    assert!(secret.len() >= 8);
    let id = created.integration.unwrap().id;
    let hint = |secret: &str| {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        aws_lc_rs::hmac::sign(&key, NONCE).as_ref().to_vec()
    };
    let mobile = |proof: Vec<u8>| pb::VerifyManagementAttestationRequest {
        device_id: "phone".into(),
        platform: Platform::Ios.into(),
        nonce: NONCE.to_vec(),
        certificate_chain: vec![],
        signature: vec![],
        management_hint_proof: proof,
    };
    let answer = attest(&harness, mobile(hint(&secret))).await;
    assert!(answer.managed, "{}", answer.reason);
    assert_eq!(answer.method, pb::AttestationMethod::ManagementHint as i32);
    assert_eq!(answer.mobile_integration_id, id);
    assert_eq!(
        attest(&harness, mobile(hint("a guessed secret"))).await.reason,
        "UNKNOWN_MANAGEMENT_SECRET"
    );
    assert_eq!(attest(&harness, mobile(vec![])).await.reason, "NO_PROOF");

    // A secret of the operator's own; rotating replaces the old one at once.
    let rotated = harness
        .operator()
        .await
        .rotate_mobile_secret(pb::RotateMobileSecretRequest {
            id: id.clone(),
            management_secret: "our own secret".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.management_secret, "our own secret");
    assert_eq!(
        attest(&harness, mobile(hint(&secret))).await.reason,
        "UNKNOWN_MANAGEMENT_SECRET"
    );
    assert!(attest(&harness, mobile(hint("our own secret"))).await.managed);

    // Secrets outside 8 to 256 characters are refused.
    let status = harness
        .operator()
        .await
        .create_mobile_integration(pb::CreateMobileIntegrationRequest {
            provider_name: "Jamf".into(),
            enrollment_link: String::new(),
            management_secret: "short".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = harness
        .operator()
        .await
        .rotate_mobile_secret(pb::RotateMobileSecretRequest {
            id: "no-such-id".into(),
            management_secret: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "MOBILE_INTEGRATION_NOT_FOUND");
}

#[tokio::test]
async fn a_certificate_of_an_expired_customer_ca_does_not_attest() {
    let harness = Harness::start().await;
    let customer = CustomerCa::expired("Retired CA");
    let imported = harness
        .admin()
        .await
        .import_trusted_ca(pb::ImportTrustedCaRequest {
            display_name: "Retired".into(),
            certificates_pem: customer.pem(),
            crl_url: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    harness
        .operator()
        .await
        .upload_trusted_ca_crl(pb::UploadTrustedCaCrlRequest {
            id: imported.id.clone(),
            crl: customer.crl(1, &[], Duration::hours(1)),
        })
        .await
        .unwrap();
    // The leaf itself is within its own validity window.
    let (leaf, key) = customer.leaf_rsa("laptop", true, false);
    let answer = attest(&harness, desktop("d", vec![leaf], rsa_sign(&key, NONCE))).await;
    assert_eq!(answer.reason, "CERT_EXPIRED");
    assert_eq!(answer.issuer_ca, imported.id);
}
