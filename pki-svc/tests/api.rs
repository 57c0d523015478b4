//! PkiService's operator-facing RPCs: service identities from the service CA, SCEP integrations,
//! the certificate inventory's filters and pages, and what each role may call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Device, Harness, reason, transaction_id};
use pki_svc::scep::message::PkiStatus;
use portcullis_proto::pki::v1 as pb;
use rcgen::{CertificateParams, KeyPair};
use service_kit::identity::Role;

fn parse_pem(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1.contents
}

#[tokio::test]
async fn admins_issue_service_and_operator_identities_from_the_service_ca_never_the_device_ca() {
    let harness = Harness::start().await;
    let issued = harness
        .admin()
        .await
        .issue_service_certificate(pb::IssueServiceCertificateRequest {
            kind: "svc".into(),
            name: "policy-svc".into(),
            dns_names: vec!["policy-svc.portcullis.svc".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(issued.private_key_pem.contains("PRIVATE KEY"));
    let der = parse_pem(&issued.certificate_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let sans = format!("{:?}", cert.subject_alternative_name().unwrap().unwrap().value);
    assert!(sans.contains("spiffe://portcullis.local/svc/policy-svc"), "{sans}");
    assert!(sans.contains("policy-svc.portcullis.svc"), "{sans}");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(
        (30 * 86400..=30 * 86400 + 3700).contains(&lifetime),
        "30 days by default: {lifetime}"
    );
    // Signed by the service CA, which the response names; not by the device CA.
    let service_ca = parse_pem(&issued.ca_certificate_pem);
    let (_, service_ca) = x509_parser::parse_x509_certificate(&service_ca).unwrap();
    cert.verify_signature(Some(service_ca.public_key())).unwrap();
    let device_ca = harness.get("/scep/x?operation=GetCACert").await;
    assert_eq!(device_ca.status, 404, "no integration yet");
    harness.integration("x", "").await;
    let device_ca = harness.ca_der("x").await;
    let (_, device_ca) = x509_parser::parse_x509_certificate(&device_ca).unwrap();
    assert!(cert.verify_signature(Some(device_ca.public_key())).is_err());
    assert_eq!(issued.serial_number, common::serial_of(&der));

    // An operator identity for a key the caller keeps, from a CSR.
    let key = KeyPair::generate().unwrap();
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let issued = harness
        .admin()
        .await
        .issue_service_certificate(pb::IssueServiceCertificateRequest {
            kind: "operator".into(),
            name: "ci".into(),
            role: "viewer".into(),
            csr_pem: csr,
            lifetime_seconds: 3600,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(issued.private_key_pem.is_empty());
    let der = parse_pem(&issued.certificate_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.public_key().raw,
        x509_parser::pem::parse_x509_pem(key.public_key_pem().as_bytes())
            .unwrap()
            .1
            .contents
            .as_slice()
    );
    assert!(cert.subject().to_string().contains("O=viewer"));
    // It works as a viewer identity against this very service.
    let tls =
        service_kit::tls::TlsMaterial::from_pem(issued.ca_certificate_pem, issued.certificate_pem, key.serialize_pem());
    let listed = harness
        .client(&tls)
        .await
        .list_scep_integrations(pb::ListScepIntegrationsRequest {})
        .await
        .unwrap();
    assert_eq!(listed.into_inner().integrations.len(), 1);
}

#[tokio::test]
async fn issuing_identities_checks_its_input_and_is_for_admins_only() {
    let harness = Harness::start().await;
    let bad = [
        pb::IssueServiceCertificateRequest {
            kind: "svc".into(),
            name: "Bad Name".into(),
            ..Default::default()
        },
        pb::IssueServiceCertificateRequest {
            kind: "robot".into(),
            name: "x".into(),
            ..Default::default()
        },
        pb::IssueServiceCertificateRequest {
            kind: "operator".into(),
            name: "x".into(),
            role: "root".into(),
            ..Default::default()
        },
        pb::IssueServiceCertificateRequest {
            kind: "svc".into(),
            name: "x".into(),
            lifetime_seconds: 400 * 86400,
            ..Default::default()
        },
        pb::IssueServiceCertificateRequest {
            kind: "svc".into(),
            name: "x".into(),
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into(),
            ..Default::default()
        },
    ];
    for request in bad {
        let status = harness
            .admin()
            .await
            .issue_service_certificate(request.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{request:?}");
        assert_eq!(reason(&status), "INVALID_ARGUMENT");
    }
    let status = harness
        .operator()
        .await
        .issue_service_certificate(pb::IssueServiceCertificateRequest {
            kind: "svc".into(),
            name: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn integrations_are_listed_without_secrets_validated_and_deleted() {
    let harness = Harness::start().await;
    let created = harness
        .operator()
        .await
        .create_scep_integration(pb::CreateScepIntegrationRequest {
            name: "jamf".into(),
            display_name: "Jamf Pro".into(),
            challenge_type: pb::ScepChallengeType::Static.into(),
            secret: "a challenge of our own".into(),
            subject_pattern: "CN=managementAttestation .+".into(),
            certificate_lifetime_seconds: 30 * 86400,
            san_pattern: "email:[^@]+@example\\.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.secret, "a challenge of our own");
    let integration = created.integration.unwrap();
    assert!(integration.url.ends_with("/scep/jamf"), "{}", integration.url);
    assert_eq!(integration.certificate_lifetime_seconds, 30 * 86400);

    let listed = harness
        .viewer()
        .await
        .list_scep_integrations(pb::ListScepIntegrationsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.integrations, vec![integration]);

    let duplicate = harness
        .operator()
        .await
        .create_scep_integration(pb::CreateScepIntegrationRequest {
            name: "jamf".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&duplicate), "SCEP_INTEGRATION_EXISTS");
    for bad in [
        pb::CreateScepIntegrationRequest {
            name: "Has Spaces".into(),
            ..Default::default()
        },
        pb::CreateScepIntegrationRequest {
            name: "short-secret".into(),
            secret: "short".into(),
            ..Default::default()
        },
        pb::CreateScepIntegrationRequest {
            name: "bad-pattern".into(),
            subject_pattern: "CN=(".into(),
            ..Default::default()
        },
        pb::CreateScepIntegrationRequest {
            name: "bad-san-pattern".into(),
            san_pattern: "URI:(".into(),
            ..Default::default()
        },
        pb::CreateScepIntegrationRequest {
            name: "too-short".into(),
            certificate_lifetime_seconds: 60,
            ..Default::default()
        },
    ] {
        let status = harness
            .operator()
            .await
            .create_scep_integration(bad.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad:?}");
    }
    let status = harness
        .viewer()
        .await
        .create_scep_integration(pb::CreateScepIntegrationRequest {
            name: "viewer".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    // Issued certificates outlive their integration in the inventory.
    let ca = harness.ca_der("jamf").await;
    let device = Device::new();
    let reply = harness
        .pki_operation(
            "jamf",
            &device,
            device.pkcs_req(
                &ca,
                "managementAttestation 1",
                "a challenge of our own",
                &transaction_id(),
            ),
        )
        .await;
    assert_eq!(reply.status, PkiStatus::Success);
    harness
        .operator()
        .await
        .delete_scep_integration(pb::DeleteScepIntegrationRequest { name: "jamf".into() })
        .await
        .unwrap();
    assert_eq!(harness.get("/scep/jamf?operation=GetCACaps").await.status, 404);
    let status = harness
        .operator()
        .await
        .delete_scep_integration(pb::DeleteScepIntegrationRequest { name: "jamf".into() })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "SCEP_INTEGRATION_NOT_FOUND");
    let certificates = harness.certificates().await;
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0].integration, "jamf");
}

#[tokio::test]
async fn the_inventory_filters_and_pages() {
    let harness = Harness::start().await;
    let jamf = harness.integration("jamf", "").await;
    let intune = harness.integration("intune", "").await;
    let ca = harness.ca_der("jamf").await;
    let mut serials = Vec::new();
    for (integration, challenge) in [("jamf", &jamf), ("jamf", &jamf), ("jamf", &jamf), ("intune", &intune)] {
        let device = Device::new();
        let reply = harness
            .pki_operation(
                integration,
                &device,
                device.pkcs_req(&ca, "d", challenge, &transaction_id()),
            )
            .await;
        serials.push(common::serial_of(&reply.certificates[0]));
    }
    harness
        .operator()
        .await
        .revoke_certificate(pb::RevokeCertificateRequest {
            serial_number: serials[1].clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let viewer = harness.viewer().await;
    let list = |filter: &str, page_size: i32, page_token: String| {
        let mut viewer = viewer.clone();
        let filter = filter.to_owned();
        async move {
            viewer
                .list_certificates(pb::ListCertificatesRequest {
                    page_size,
                    page_token,
                    filter,
                })
                .await
        }
    };
    let serials_of = |response: &pb::ListCertificatesResponse| -> Vec<String> {
        response.certificates.iter().map(|c| c.serial_number.clone()).collect()
    };
    let jamf_valid = list("integration = \"jamf\" AND status = \"VALID\"", 0, String::new())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serials_of(&jamf_valid), vec![serials[0].clone(), serials[2].clone()]);
    let revoked = list("status = \"REVOKED\"", 0, String::new())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serials_of(&revoked), vec![serials[1].clone()]);
    // Pages of two, in issue order.
    let first = list("", 2, String::new()).await.unwrap().into_inner();
    assert_eq!(serials_of(&first), serials[..2].to_vec());
    let second = list("", 2, first.next_page_token.clone()).await.unwrap().into_inner();
    assert_eq!(serials_of(&second), serials[2..].to_vec());
    assert!(second.next_page_token.is_empty());
    // A token for another filter, or garbage, is refused; so are unknown fields.
    let status = list("status = \"VALID\"", 2, first.next_page_token).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = list("colour = \"red\"", 0, String::new()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // Revocation input.
    let mut operator = harness.operator().await;
    for bad in [
        pb::RevokeCertificateRequest::default(),
        pb::RevokeCertificateRequest {
            serial_number: "zz".into(),
            ..Default::default()
        },
        pb::RevokeCertificateRequest {
            serial_number: serials[0].clone(),
            bound_device_id: "d".into(),
            ..Default::default()
        },
    ] {
        let status = operator.revoke_certificate(bad).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
    let status = operator
        .revoke_certificate(pb::RevokeCertificateRequest {
            serial_number: "0123".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "CERTIFICATE_NOT_FOUND");
    let status = harness
        .client(&harness.operator_tls(Role::Viewer))
        .await
        .revoke_certificate(pb::RevokeCertificateRequest {
            serial_number: serials[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
}
