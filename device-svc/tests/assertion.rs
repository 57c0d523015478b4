//! VerifyDeviceAssertion over gRPC: a FastPass response JWT against the device's keys and status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{AgentKey, Harness, enrollment, reason};
use portcullis_proto::device::v1 as pb;
use tonic::Code;

const AUDIENCE: &str = "https://login.example.com";

fn verify_request(assertion: String, nonce: &str) -> pb::VerifyDeviceAssertionRequest {
    pb::VerifyDeviceAssertionRequest {
        assertion,
        audience: AUDIENCE.into(),
        nonce: nonce.into(),
    }
}

async fn enrolled(harness: &Harness, key: &AgentKey) -> String {
    harness.enroll("alice", "agent-1", key).await
}

#[tokio::test]
async fn a_valid_assertion_returns_the_device_user_key_and_signals() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("alice-pop");
    let device_id = enrolled(&harness, &key).await;
    let response = harness
        .gateway()
        .await
        .verify_device_assertion(verify_request(key.assertion("alice", AUDIENCE, "n-1", "jti-1"), "n-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.device.unwrap().id, device_id);
    assert_eq!(response.user_id, "alice");
    assert_eq!(response.kid, "alice-pop");
    assert_eq!(response.key_purpose, pb::KeyPurpose::ProofOfPossession as i32);
    assert!(response.hardware_protected);
    let signals = response.signals.unwrap();
    assert_eq!(signals.os_version, "14.4");
    assert_eq!(signals.disk_encryption_type, pb::DiskEncryptionType::Full as i32);
}

#[tokio::test]
async fn a_reused_jti_is_refused() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k");
    enrolled(&harness, &key).await;
    let mut gateway = harness.gateway().await;
    let token = key.assertion("alice", AUDIENCE, "n", "same-jti");
    gateway
        .verify_device_assertion(verify_request(token.clone(), "n"))
        .await
        .unwrap();
    let err = gateway
        .verify_device_assertion(verify_request(token, "n"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::Unauthenticated, "ASSERTION_REPLAYED")
    );
}

#[tokio::test]
async fn wrong_nonce_audience_signer_or_user_is_refused() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k");
    enrolled(&harness, &key).await;
    let mut gateway = harness.gateway().await;

    let err = gateway
        .verify_device_assertion(verify_request(
            key.assertion("alice", AUDIENCE, "n", "j1"),
            "other-nonce",
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INVALID_DEVICE_ASSERTION");

    let err = gateway
        .verify_device_assertion(verify_request(
            key.assertion("alice", "https://evil.example", "n", "j2"),
            "n",
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INVALID_DEVICE_ASSERTION");

    // Signed by another key that claims the enrolled kid.
    let impostor = AgentKey {
        kid: "k".into(),
        ..AgentKey::generate("k")
    };
    let err = gateway
        .verify_device_assertion(verify_request(impostor.assertion("alice", AUDIENCE, "n", "j3"), "n"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::Unauthenticated, "INVALID_DEVICE_ASSERTION")
    );

    // alice's key speaking for bob.
    let err = gateway
        .verify_device_assertion(verify_request(key.assertion("bob", AUDIENCE, "n", "j4"), "n"))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INVALID_DEVICE_ASSERTION");

    // A key nobody enrolled.
    let stranger = AgentKey::generate("stranger");
    let err = gateway
        .verify_device_assertion(verify_request(stranger.assertion("alice", AUDIENCE, "n", "j5"), "n"))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "UNKNOWN_DEVICE_KEY");
}

#[tokio::test]
async fn algorithms_other_than_es256_are_refused() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k");
    enrolled(&harness, &key).await;
    let mut gateway = harness.gateway().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        serde_json::json!({"sub": "alice", "aud": AUDIENCE, "nonce": "n", "jti": "j", "iat": now, "exp": now + 60});
    for alg in ["none", "HS256", "RS256", "ES384"] {
        let token = key.sign(&serde_json::json!({"alg": alg, "kid": "k"}), &claims);
        let err = gateway
            .verify_device_assertion(verify_request(token, "n"))
            .await
            .unwrap_err();
        assert_eq!(reason(&err), "INVALID_DEVICE_ASSERTION", "alg {alg}");
    }
    // An unsigned token ("alg": "none" with an empty signature).
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","kid":"k"}"#),
        b64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let err = gateway
        .verify_device_assertion(verify_request(unsigned, "n"))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INVALID_DEVICE_ASSERTION");
}

#[tokio::test]
async fn expired_and_future_assertions_are_refused() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k");
    enrolled(&harness, &key).await;
    let mut gateway = harness.gateway().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = serde_json::json!({"alg": "ES256", "kid": "k"});
    let claims = |iat: i64, exp: i64, jti: &str| serde_json::json!({"sub": "alice", "aud": AUDIENCE, "nonce": "n", "jti": jti, "iat": iat, "exp": exp});
    for (iat, exp, jti) in [
        (now - 600, now - 120, "expired"),
        (now + 600, now + 660, "future"),
        (now, now + 3600, "long"),
    ] {
        let err = gateway
            .verify_device_assertion(verify_request(key.sign(&header, &claims(iat, exp, jti)), "n"))
            .await
            .unwrap_err();
        assert_eq!(reason(&err), "INVALID_DEVICE_ASSERTION", "{jti}");
    }
}

#[tokio::test]
async fn a_suspended_device_is_refused_with_device_suspended_and_a_deactivated_one_with_device_deactivated() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k");
    let id = enrolled(&harness, &key).await;
    let mut gateway = harness.gateway().await;
    let mut admin = harness.admin().await;

    admin
        .suspend_device(pb::SuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let err = gateway
        .verify_device_assertion(verify_request(key.assertion("alice", AUDIENCE, "n", "j1"), "n"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "DEVICE_SUSPENDED")
    );

    admin
        .unsuspend_device(pb::UnsuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    gateway
        .verify_device_assertion(verify_request(key.assertion("alice", AUDIENCE, "n", "j2"), "n"))
        .await
        .expect("unsuspending restores FastPass without user action");

    admin
        .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let err = gateway
        .verify_device_assertion(verify_request(key.assertion("alice", AUDIENCE, "n", "j3"), "n"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "DEVICE_DEACTIVATED")
    );

    // Reactivated, the old key no longer works until the user enrolls again.
    admin
        .activate_device(pb::ActivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let err = gateway
        .verify_device_assertion(verify_request(key.assertion("alice", AUDIENCE, "n", "j4"), "n"))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "UNKNOWN_DEVICE_KEY");
    gateway
        .register_device(enrollment("alice", "agent-1", &key))
        .await
        .unwrap();
    gateway
        .verify_device_assertion(verify_request(key.assertion("alice", AUDIENCE, "n", "j5"), "n"))
        .await
        .expect("after enrolling again the key works");
}

#[tokio::test]
async fn report_signals_updates_posture_and_last_seen() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k");
    let id = enrolled(&harness, &key).await;
    let before = harness
        .viewer()
        .await
        .get_device(pb::GetDeviceRequest { device_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let signals = pb::DeviceSignals {
        os_version: "10.0.22631".into(),
        wsc: Some(pb::WindowsSecurityCenterSignals {
            fire_wall: pb::WscHealth::Good.into(),
            auto_update_settings: pb::WscHealth::Good.into(),
            av_type: pb::WscHealth::Poor.into(),
            anti_spyware: pb::WscHealth::Good.into(),
        }),
        ..Default::default()
    };
    let after = harness
        .gateway()
        .await
        .report_signals(pb::ReportSignalsRequest {
            device_id: id.clone(),
            signals: Some(signals),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.signals.as_ref().unwrap().os_version, "10.0.22631");
    assert_eq!(after.signals.unwrap().wsc.unwrap().av_type, pb::WscHealth::Poor as i32);
    assert!(
        after.last_seen_time.unwrap().seconds * 1_000_000_000 + i64::from(after.last_seen_time.unwrap().nanos)
            > before.last_seen_time.unwrap().seconds * 1_000_000_000 + i64::from(before.last_seen_time.unwrap().nanos)
    );

    let err = harness
        .gateway()
        .await
        .report_signals(pb::ReportSignalsRequest {
            device_id: id,
            signals: Some(pb::DeviceSignals {
                zta: Some(pb::ZeroTrustAssessmentSignals {
                    overall: 101,
                    os: 50,
                    sensor_config: 50,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(common::bad_field(&err), "signals.zta.overall");
}

#[tokio::test]
async fn the_same_assertion_sent_many_times_at_once_is_accepted_exactly_once() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k");
    enrolled(&harness, &key).await;
    let token = key.assertion("alice", AUDIENCE, "n", "raced-jti");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let mut gateway = harness.gateway().await;
        let request = verify_request(token.clone(), "n");
        calls.spawn(async move { gateway.verify_device_assertion(request).await });
    }
    let results = calls.join_all().await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "one acceptance, the rest replays"
    );
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(reason(err), "ASSERTION_REPLAYED");
    }
}

#[tokio::test]
async fn verifications_of_many_devices_at_once_each_get_their_own_device_and_status() {
    // Concurrent lookups are answered in batches: each call must still get its own key's device,
    // a suspended device its refusal, and an unknown key its own.
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    let mut devices = Vec::new();
    for i in 0..6 {
        let user = format!("user-{i}");
        let key = AgentKey::generate(&format!("key-{i}"));
        let id = harness.enroll(&user, &format!("agent-{i}"), &key).await;
        devices.push((user, key, id));
    }
    let suspended = devices[2].2.clone();
    admin
        .suspend_device(pb::SuspendDeviceRequest {
            device_id: suspended.clone(),
        })
        .await
        .unwrap();
    let stranger = AgentKey::generate("never-enrolled");

    let mut calls = tokio::task::JoinSet::new();
    for round in 0..8 {
        for (i, (user, key, id)) in devices.iter().enumerate() {
            let mut gateway = harness.gateway().await;
            let request = verify_request(key.assertion(user, AUDIENCE, "n", &format!("j-{round}-{i}")), "n");
            let (user, id) = (user.clone(), id.clone());
            calls.spawn(async move { (Some((user, id)), gateway.verify_device_assertion(request).await) });
        }
        let mut gateway = harness.gateway().await;
        let request = verify_request(stranger.assertion("nobody", AUDIENCE, "n", &format!("s-{round}")), "n");
        calls.spawn(async move { (None, gateway.verify_device_assertion(request).await) });
    }
    let results = calls.join_all().await;
    assert_eq!(results.len(), 8 * 7);
    for (expected, result) in results {
        match (expected, result) {
            (None, Err(err)) => assert_eq!(reason(&err), "UNKNOWN_DEVICE_KEY"),
            (Some((_, id)), Err(err)) if id == suspended => assert_eq!(reason(&err), "DEVICE_SUSPENDED"),
            (Some((user, id)), Ok(response)) => {
                let response = response.into_inner();
                assert_eq!(response.device.unwrap().id, id);
                assert_eq!(response.user_id, user);
            }
            (expected, result) => panic!("{expected:?} answered {result:?}"),
        }
    }
}

#[tokio::test]
async fn a_key_whose_stored_record_is_corrupt_fails_alone_in_its_batch() {
    let harness = Harness::start().await;
    let good = AgentKey::generate("good-key");
    let bad = AgentKey::generate("bad-key");
    harness.enroll("alice", "agent-good", &good).await;
    harness.enroll("bob", "agent-bad", &bad).await;
    // A value device-svc never writes, so the key's record cannot be decoded.
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&harness.db.url)
        .await
        .unwrap();
    sqlx::query("UPDATE device_keys SET purpose = 'not-a-purpose' WHERE kid = 'bad-key'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (user, key) = if i % 2 == 0 { ("alice", &good) } else { ("bob", &bad) };
        let request = verify_request(key.assertion(user, AUDIENCE, "n", &format!("j-{i}")), "n");
        let mut gateway = harness.gateway().await;
        calls.spawn(async move { (user, gateway.verify_device_assertion(request).await) });
    }
    for (user, result) in calls.join_all().await {
        match user {
            "alice" => assert_eq!(result.unwrap().into_inner().user_id, "alice"),
            _ => assert_eq!(result.unwrap_err().code(), Code::Internal),
        }
    }
}
