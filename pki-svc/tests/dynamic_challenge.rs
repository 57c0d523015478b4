//! Dynamic-challenge integrations: the MDM fetches a one-time challenge with HTTP Basic (in the
//! body NDES uses) or over gRPC, and each challenge enrolls one device, once, within an hour.
//! Also the store's sweeps: unused certificates revoked, expired challenges forgotten.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::{Device, Harness, reason, transaction_id};
use pki_svc::scep::message::{FailInfo, PkiStatus};
use pki_svc::store::{CertificateRecord, Store, StoredStatus, now_micros};
use portcullis_proto::pki::v1 as pb;

async fn dynamic_integration(harness: &Harness, name: &str) -> String {
    harness
        .operator()
        .await
        .create_scep_integration(pb::CreateScepIntegrationRequest {
            name: name.into(),
            display_name: String::new(),
            challenge_type: pb::ScepChallengeType::Dynamic.into(),
            secret: String::new(),
            subject_pattern: String::new(),
            certificate_lifetime_seconds: 0,
            san_pattern: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The challenge in an NDES-style page, as MDMs extract it.
fn ndes_challenge(body: &str) -> String {
    let marker = "The enrollment challenge password is: <B> ";
    let start = body.find(marker).expect("NDES marker") + marker.len();
    let end = body[start..].find(" </B>").expect("closing tag") + start;
    body[start..end].to_owned()
}

async fn direct_store(harness: &Harness) -> Store {
    let db = service_kit::db::connect(&harness.db.url, 2, pki_svc::MIGRATIONS)
        .await
        .unwrap();
    Store::new(db)
}

#[tokio::test]
async fn an_mdm_fetches_a_one_time_challenge_with_basic_credentials_and_it_enrolls_once() {
    let harness = Harness::start().await;
    let password = dynamic_integration(&harness, "intune").await;
    let ca = harness.ca_der("intune").await;

    // The NDES page.
    let page = harness
        .get_with(
            "/scep/intune/challenge",
            &[("authorization", &basic("intune", &password))],
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    let body = String::from_utf8(page.body).unwrap();
    let challenge = ndes_challenge(&body);
    assert_eq!(challenge.len(), 32);
    assert!(body.contains("expire within 60 minutes"));

    let device = Device::new();
    let reply = harness
        .pki_operation(
            "intune",
            &device,
            device.pkcs_req(&ca, "d1", &challenge, &transaction_id()),
        )
        .await;
    assert_eq!(reply.status, PkiStatus::Success, "{:?}", reply.fail_info);
    // Used once: another device cannot use it again.
    let other = Device::new();
    let reply = harness
        .pki_operation(
            "intune",
            &other,
            other.pkcs_req(&ca, "d2", &challenge, &transaction_id()),
        )
        .await;
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));

    // Plain text on request.
    let plain = harness
        .get_with(
            "/scep/intune/challenge",
            &[("authorization", &basic("intune", &password)), ("accept", "text/plain")],
        )
        .await;
    assert_eq!(plain.status, 200);
    let challenge = String::from_utf8(plain.body).unwrap().trim().to_owned();
    assert_eq!(challenge.len(), 32);
    let reply = harness
        .pki_operation(
            "intune",
            &other,
            other.pkcs_req(&ca, "d2", &challenge, &transaction_id()),
        )
        .await;
    assert_eq!(reply.status, PkiStatus::Success);

    // The integration's Basic password is not itself a challenge.
    let third = Device::new();
    let reply = harness
        .pki_operation(
            "intune",
            &third,
            third.pkcs_req(&ca, "d3", &password, &transaction_id()),
        )
        .await;
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));
}

#[tokio::test]
async fn wrong_credentials_get_401_and_static_integrations_have_no_challenge_page() {
    let harness = Harness::start().await;
    let password = dynamic_integration(&harness, "ws1").await;
    for authorization in [
        basic("ws1", "wrong password"),
        basic("someone", &password),
        "Bearer abc".to_owned(),
        "Basic !!!".to_owned(),
    ] {
        let reply = harness
            .get_with("/scep/ws1/challenge", &[("authorization", &authorization)])
            .await;
        assert_eq!(reply.status, 401, "{authorization}");
    }
    let reply = harness.get("/scep/ws1/challenge").await;
    assert_eq!(reply.status, 401);
    assert!(reply.www_authenticate.starts_with("Basic realm="));
    harness.integration("jamf", "").await;
    assert_eq!(harness.get("/scep/jamf/challenge").await.status, 404);
    assert_eq!(harness.get("/scep/nobody/challenge").await.status, 404);
    // Rotating the Basic password locks the old one out.
    let rotated = harness
        .operator()
        .await
        .rotate_scep_secret(pb::RotateScepSecretRequest {
            name: "ws1".into(),
            secret: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let old = harness
        .get_with("/scep/ws1/challenge", &[("authorization", &basic("ws1", &password))])
        .await;
    assert_eq!(old.status, 401);
    let new = harness
        .get_with("/scep/ws1/challenge", &[("authorization", &basic("ws1", &rotated))])
        .await;
    assert_eq!(new.status, 200);
}

#[tokio::test]
async fn operators_make_challenges_over_grpc_and_an_expired_one_is_refused() {
    let harness = Harness::start().await;
    dynamic_integration(&harness, "intune").await;
    let ca = harness.ca_der("intune").await;
    let created = harness
        .operator()
        .await
        .create_dynamic_challenge(pb::CreateDynamicChallengeRequest {
            integration: "intune".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let expires = created.expire_time.unwrap().seconds;
    let now = now_micros() / 1_000_000;
    assert!((now + 3590..=now + 3610).contains(&expires), "60 minutes");
    let device = Device::new();
    let reply = harness
        .pki_operation(
            "intune",
            &device,
            device.pkcs_req(&ca, "d", &created.challenge, &transaction_id()),
        )
        .await;
    assert_eq!(reply.status, PkiStatus::Success);

    // An expired challenge, as if made over an hour ago.
    let store = direct_store(&harness).await;
    let (expired, stored) = pki_svc::challenge::dynamic().unwrap();
    store
        .insert_dynamic_challenge("intune", &stored, now_micros() - 1_000_000)
        .await
        .unwrap();
    let device = Device::new();
    let reply = harness
        .pki_operation(
            "intune",
            &device,
            device.pkcs_req(&ca, "d", &expired, &transaction_id()),
        )
        .await;
    assert_eq!(reply.fail_info, Some(FailInfo::BadRequest));
    // Swept once expired.
    assert_eq!(store.delete_expired_challenges(now_micros()).await.unwrap(), 1);

    // Static integrations have no dynamic challenges; viewers cannot make them.
    harness.integration("jamf", "").await;
    let status = harness
        .operator()
        .await
        .create_dynamic_challenge(pb::CreateDynamicChallengeRequest {
            integration: "jamf".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    let status = harness
        .viewer()
        .await
        .create_dynamic_challenge(pb::CreateDynamicChallengeRequest {
            integration: "intune".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn certificates_unused_past_the_cutoff_are_revoked_and_used_ones_are_kept() {
    let harness = Harness::start().await;
    let store = direct_store(&harness).await;
    let day = 24 * 3600 * 1_000_000_i64;
    let now = now_micros();
    let record = |serial: &str, issued_at: i64, last_used_at: Option<i64>| CertificateRecord {
        id: uuid::Uuid::now_v7().to_string(),
        serial_number: serial.into(),
        issuer_ca: "device".into(),
        integration: "jamf".into(),
        transaction_id: serial.into(),
        subject: "CN=x".into(),
        sha256_fingerprint: String::new(),
        certificate_der: vec![],
        not_before: issued_at,
        not_after: now + 300 * day,
        issued_at,
        status: StoredStatus::Valid,
        revocation_reason: 0,
        revoked_at: None,
        bound_device_id: None,
        renewed_serial: String::new(),
        last_used_at,
    };
    store
        .insert_certificate(&record("aa01", now - 100 * day, None), None)
        .await
        .unwrap();
    store
        .insert_certificate(&record("aa02", now - 100 * day, Some(now - 95 * day)), None)
        .await
        .unwrap();
    store
        .insert_certificate(&record("aa03", now - 100 * day, Some(now - 10 * day)), None)
        .await
        .unwrap();
    store
        .insert_certificate(&record("aa04", now - 5 * day, None), None)
        .await
        .unwrap();
    let mut revoked = store.revoke_unused("device", now - 90 * day).await.unwrap();
    revoked.sort();
    assert_eq!(revoked, vec!["aa01".to_owned(), "aa02".to_owned()]);
    let kept = store.certificate("aa03").await.unwrap().unwrap();
    assert_eq!(kept.status, StoredStatus::Valid);
    let gone = store.certificate("aa01").await.unwrap().unwrap();
    assert_eq!(gone.status, StoredStatus::Revoked);
    assert_eq!(gone.revocation_reason, 5, "cessation of operation");
}
