//! Bad input gets INVALID_ARGUMENT naming the field (or the right precondition error), never a
//! panic, and nothing already stored is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{AgentKey, Harness, bad_field, enrollment, reason};
use portcullis_proto::device::v1 as pb;
use tonic::Code;

/// A valid enrollment changed by `change`.
fn altered(change: impl FnOnce(&mut pb::RegisterDeviceRequest)) -> pb::RegisterDeviceRequest {
    let mut request = enrollment("alice", "agent-x", &AgentKey::generate("kx"));
    change(&mut request);
    request
}

fn profile(request: &mut pb::RegisterDeviceRequest) -> &mut pb::DeviceProfile {
    request.profile.as_mut().unwrap()
}

#[tokio::test]
async fn every_invalid_enrollment_field_is_named_in_the_error() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let other_key = AgentKey::generate("other");
    let cases: Vec<(&str, pb::RegisterDeviceRequest)> = vec![
        ("user_id", altered(|r| r.user_id.clear())),
        ("user_id", altered(|r| r.user_id = " alice".into())),
        ("user_id", altered(|r| r.user_id = "u".repeat(256))),
        ("app_instance_id", altered(|r| r.app_instance_id.clear())),
        ("profile", altered(|r| r.profile = None)),
        ("profile.display_name", altered(|r| profile(r).display_name.clear())),
        (
            "profile.display_name",
            altered(|r| profile(r).display_name = "d".repeat(256)),
        ),
        (
            "profile.display_name",
            altered(|r| profile(r).display_name = "tab\there".into()),
        ),
        (
            "profile.platform",
            altered(|r| profile(r).platform = pb::Platform::Unspecified.into()),
        ),
        ("profile.platform", altered(|r| profile(r).platform = 99)),
        (
            "profile.manufacturer",
            altered(|r| profile(r).manufacturer = "m".repeat(128)),
        ),
        ("profile.model", altered(|r| profile(r).model = "m".repeat(128))),
        (
            "profile.os_version",
            altered(|r| profile(r).os_version = "1".repeat(128)),
        ),
        (
            "profile.serial_number",
            altered(|r| profile(r).serial_number = "s".repeat(128)),
        ),
        ("profile.udid", altered(|r| profile(r).udid = "u".repeat(48))),
        ("profile.sid", altered(|r| profile(r).sid = "s".repeat(257))),
        ("profile.imei", altered(|r| profile(r).imei = "1234567890123".into())),
        (
            "profile.imei",
            altered(|r| profile(r).imei = "123456789012345678".into()),
        ),
        ("profile.imei", altered(|r| profile(r).imei = "12345678901234x".into())),
        ("profile.meid", altered(|r| profile(r).meid = "m".repeat(15))),
        (
            "profile.tpm_public_key_hash",
            altered(|r| profile(r).tpm_public_key_hash = "h".repeat(256)),
        ),
        (
            "profile.disk_encryption_type",
            altered(|r| profile(r).disk_encryption_type = 42),
        ),
        (
            "profile.screen_lock_type",
            altered(|r| profile(r).screen_lock_type = -1),
        ),
        ("keys", altered(|r| r.keys.clear())),
        (
            "keys",
            altered(|r| {
                r.keys = (0..5)
                    .map(|i| AgentKey::generate(&format!("k{i}")).public(pb::KeyPurpose::ProofOfPossession))
                    .collect()
            }),
        ),
        ("keys", altered(|r| r.keys.push(r.keys[0].clone()))),
        (
            "keys",
            altered(|r| r.keys[0].purpose = pb::KeyPurpose::UserVerification.into()),
        ),
        ("keys[0].kid", altered(|r| r.keys[0].kid.clear())),
        ("keys[0].kid", altered(|r| r.keys[0].kid = "has space".into())),
        ("keys[0].purpose", altered(|r| r.keys[0].purpose = 0)),
        ("keys[0].kty", altered(|r| r.keys[0].kty = "RSA".into())),
        ("keys[0].crv", altered(|r| r.keys[0].crv = "P-384".into())),
        ("keys[0].x", altered(|r| r.keys[0].x = "not base64!".into())),
        (
            "keys[0].x",
            altered(|r| r.keys[0].y = other_key.public(pb::KeyPurpose::ProofOfPossession).y),
        ),
        ("keys[0].user_id", altered(|r| r.keys[0].user_id = "mallory".into())),
        (
            "signals.zta.overall",
            altered(|r| {
                r.signals = Some(pb::DeviceSignals {
                    zta: Some(pb::ZeroTrustAssessmentSignals {
                        overall: 500,
                        os: 1,
                        sensor_config: 1,
                    }),
                    ..Default::default()
                })
            }),
        ),
    ];
    for (field, request) in cases {
        let err = gateway.register_device(request).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(reason(&err), "INVALID_ARGUMENT", "{field}");
        assert_eq!(bad_field(&err), field, "{}", err.message());
    }
    // None of those stored anything.
    let count = harness
        .viewer()
        .await
        .count_devices(pb::CountDevicesRequest::default())
        .await
        .unwrap();
    assert_eq!(count.into_inner().count, 0);
}

#[tokio::test]
async fn a_key_id_enrolled_on_one_device_cannot_be_claimed_by_another() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let key = AgentKey::generate("shared-kid");
    let first = gateway
        .register_device(enrollment("alice", "agent-1", &key))
        .await
        .unwrap()
        .into_inner();
    let err = gateway
        .register_device(enrollment("bob", "agent-2", &key))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::AlreadyExists, "KEY_ALREADY_ENROLLED")
    );
    // The first device keeps its key, and the refused enrollment left no device behind.
    let device = harness
        .viewer()
        .await
        .get_device(pb::GetDeviceRequest {
            device_id: first.device.unwrap().id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(device.keys[0].user_id, "alice");
    let count = harness
        .viewer()
        .await
        .count_devices(pb::CountDevicesRequest::default())
        .await
        .unwrap();
    assert_eq!(count.into_inner().count, 1);
}

#[tokio::test]
async fn malformed_ids_and_assertions_are_invalid_arguments_or_unauthenticated_never_internal() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    for id in ["", " x", &"x".repeat(300), "nul\0"] {
        let err = admin
            .get_device(pb::GetDeviceRequest { device_id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), bad_field(&err).as_str()),
            (Code::InvalidArgument, "device_id"),
            "{id:?}"
        );
        let err = admin
            .suspend_device(pb::SuspendDeviceRequest { device_id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id:?}");
    }
    let mut gateway = harness.gateway().await;
    let err = gateway
        .verify_device_assertion(pb::VerifyDeviceAssertionRequest {
            assertion: "a.b.c".into(),
            audience: String::new(),
            nonce: "n".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_field(&err), "audience");
    let err = gateway
        .verify_device_assertion(pb::VerifyDeviceAssertionRequest {
            assertion: "a.b.c".into(),
            audience: "https://x".into(),
            nonce: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_field(&err), "nonce");
    for garbage in ["", "a.b.c", "....", "eyJ.eyJ.sig", &"x".repeat(20_000), "é.é.é"] {
        let err = gateway
            .verify_device_assertion(pb::VerifyDeviceAssertionRequest {
                assertion: garbage.into(),
                audience: "https://x".into(),
                nonce: "n".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::Unauthenticated,
            "{:?}",
            &garbage[..garbage.len().min(20)]
        );
        assert_eq!(reason(&err), "INVALID_DEVICE_ASSERTION");
    }
    let err = gateway
        .report_signals(pb::ReportSignalsRequest {
            device_id: "nope".into(),
            signals: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_field(&err), "signals");
    let err = gateway
        .report_signals(pb::ReportSignalsRequest {
            device_id: "nope".into(),
            signals: Some(Default::default()),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::NotFound, "DEVICE_NOT_FOUND")
    );
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let huge = pb::VerifyDeviceAssertionRequest {
        assertion: "x".repeat(5 * 1024 * 1024),
        audience: "https://x".into(),
        nonce: "n".into(),
    };
    let err = gateway.verify_device_assertion(huge).await.unwrap_err();
    // tonic answers a message over the decoding limit with OUT_OF_RANGE.
    assert_eq!(err.code(), Code::OutOfRange);
    // The service is unharmed.
    harness
        .viewer()
        .await
        .count_devices(pb::CountDevicesRequest::default())
        .await
        .unwrap();
}
