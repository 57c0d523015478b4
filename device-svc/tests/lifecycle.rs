//! Enrollment and the device lifecycle over real mTLS: every transition, its idempotency, its
//! refusals and its events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{AgentKey, Harness, enrollment, reason};
use portcullis_proto::device::v1 as pb;
use tonic::Code;

async fn events(harness: &Harness, device_id: &str) -> Vec<String> {
    let mut viewer = harness.viewer().await;
    let response = viewer
        .list_device_events(pb::ListDeviceEventsRequest {
            filter: format!("device_id = \"{device_id}\""),
            page_size: 200,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    response.events.into_iter().map(|e| e.event_type).collect()
}

fn status(device: &pb::Device) -> pb::DeviceStatus {
    pb::DeviceStatus::try_from(device.status).unwrap()
}

#[tokio::test]
async fn enrolling_creates_an_active_device_and_a_second_user_joins_it() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let alice_key = AgentKey::generate("alice-pop");
    let first = gateway
        .register_device(enrollment("alice", "agent-1", &alice_key))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    let device = first.device.unwrap();
    assert_eq!(status(&device), pb::DeviceStatus::Active);
    assert_eq!(device.keys.len(), 1);
    assert_eq!(device.keys[0].user_id, "alice");

    let bob_key = AgentKey::generate("bob-pop");
    let second = gateway
        .register_device(enrollment("bob", "agent-1", &bob_key))
        .await
        .unwrap()
        .into_inner();
    assert!(!second.created, "same app instance id joins the existing device");
    assert_eq!(second.device.as_ref().unwrap().id, device.id);

    let users = harness
        .viewer()
        .await
        .list_device_users(pb::ListDeviceUsersRequest {
            device_id: device.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    let mut ids: Vec<_> = users.iter().map(|u| u.user_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);

    let alice_devices = harness
        .viewer()
        .await
        .list_user_devices(pb::ListUserDevicesRequest {
            user_id: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(alice_devices.len(), 1);
    assert_eq!(alice_devices[0].id, device.id);

    assert_eq!(
        events(&harness, &device.id).await,
        ["device.enrollment.create", "device.user.add", "device.user.add"]
    );
}

#[tokio::test]
async fn the_full_lifecycle_runs_and_each_step_is_an_event() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k1");
    let device = harness
        .gateway()
        .await
        .register_device(enrollment("alice", "agent-1", &key))
        .await
        .unwrap()
        .into_inner();
    let id = device.device.unwrap().id;
    let mut admin = harness.admin().await;

    let d = admin
        .suspend_device(pb::SuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&d), pb::DeviceStatus::Suspended);
    let d = admin
        .unsuspend_device(pb::UnsuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&d), pb::DeviceStatus::Active);
    assert_eq!(d.users.len(), 1, "unsuspending keeps the users");
    assert_eq!(d.keys.len(), 1, "unsuspending keeps the keys");

    let d = admin
        .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&d), pb::DeviceStatus::Deactivated);
    assert!(d.users.is_empty(), "deactivation removes user links");
    assert!(d.keys.is_empty(), "deactivation removes keys");

    let d = admin
        .activate_device(pb::ActivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&d), pb::DeviceStatus::Active);
    assert!(
        d.keys.is_empty(),
        "activation does not bring keys back: the user enrolls again"
    );

    admin
        .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    admin
        .delete_device(pb::DeleteDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let gone = admin
        .get_device(pb::GetDeviceRequest { device_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(reason(&gone), "DEVICE_NOT_FOUND");

    assert_eq!(
        events(&harness, &id).await,
        [
            "device.enrollment.create",
            "device.user.add",
            "device.lifecycle.suspend",
            "device.lifecycle.unsuspend",
            "device.lifecycle.deactivate",
            "device.lifecycle.activate",
            "device.lifecycle.deactivate",
            "device.lifecycle.delete",
        ]
    );
}

#[tokio::test]
async fn transitions_to_the_current_status_change_nothing_and_record_nothing() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k1");
    let id = harness
        .gateway()
        .await
        .register_device(enrollment("alice", "a1", &key))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
        .id;
    let mut admin = harness.admin().await;
    let first = admin
        .suspend_device(pb::SuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let again = admin
        .suspend_device(pb::SuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&again), pb::DeviceStatus::Suspended);
    assert_eq!(first.update_time, again.update_time);
    admin
        .unsuspend_device(pb::UnsuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    admin
        .unsuspend_device(pb::UnsuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    admin
        .activate_device(pb::ActivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    admin
        .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    admin
        .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    assert_eq!(
        events(&harness, &id).await,
        [
            "device.enrollment.create",
            "device.user.add",
            "device.lifecycle.suspend",
            "device.lifecycle.unsuspend",
            "device.lifecycle.deactivate",
        ]
    );
}

#[tokio::test]
async fn illegal_transitions_fail_with_illegal_device_status() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k1");
    let id = harness
        .gateway()
        .await
        .register_device(enrollment("alice", "a1", &key))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
        .id;
    let mut admin = harness.admin().await;

    // ACTIVE: cannot be deleted.
    let err = admin
        .delete_device(pb::DeleteDeviceRequest { device_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "ILLEGAL_DEVICE_STATUS")
    );

    // SUSPENDED: cannot be activated or deleted.
    admin
        .suspend_device(pb::SuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let err = admin
        .activate_device(pb::ActivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "ILLEGAL_DEVICE_STATUS")
    );
    let err = admin
        .delete_device(pb::DeleteDeviceRequest { device_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "ILLEGAL_DEVICE_STATUS");

    // DEACTIVATED: cannot be suspended or unsuspended.
    admin
        .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let err = admin
        .suspend_device(pb::SuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "ILLEGAL_DEVICE_STATUS")
    );
    let err = admin
        .unsuspend_device(pb::UnsuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "ILLEGAL_DEVICE_STATUS");

    // Unknown ids are NOT_FOUND, not a precondition failure.
    let err = admin
        .suspend_device(pb::SuspendDeviceRequest {
            device_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::NotFound, "DEVICE_NOT_FOUND")
    );
}

#[tokio::test]
async fn a_suspended_or_deactivated_device_cannot_enroll_another_account() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let id = gateway
        .register_device(enrollment("alice", "a1", &AgentKey::generate("k1")))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
        .id;
    let mut admin = harness.admin().await;
    admin
        .suspend_device(pb::SuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let err = gateway
        .register_device(enrollment("bob", "a1", &AgentKey::generate("k2")))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "ILLEGAL_DEVICE_STATUS")
    );

    admin
        .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let err = gateway
        .register_device(enrollment("bob", "a1", &AgentKey::generate("k3")))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "ILLEGAL_DEVICE_STATUS");

    // Nothing of bob's was stored.
    let users = harness
        .viewer()
        .await
        .list_device_users(pb::ListDeviceUsersRequest { device_id: id })
        .await
        .unwrap();
    assert!(users.into_inner().users.is_empty());
}

#[tokio::test]
async fn after_activation_the_user_enrolls_again_and_after_deletion_enrolling_makes_a_new_device() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let key = AgentKey::generate("k1");
    let id = gateway
        .register_device(enrollment("alice", "a1", &key))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
        .id;
    let mut admin = harness.admin().await;
    admin
        .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    admin
        .activate_device(pb::ActivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();

    // Enrolling again on the reactivated device reuses it.
    let again = gateway
        .register_device(enrollment("alice", "a1", &key))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.device.as_ref().unwrap().id, id);
    assert_eq!(again.device.unwrap().keys.len(), 1);

    admin
        .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    admin
        .delete_device(pb::DeleteDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let fresh = gateway
        .register_device(enrollment("alice", "a1", &key))
        .await
        .unwrap()
        .into_inner();
    assert!(fresh.created);
    assert_ne!(
        fresh.device.unwrap().id,
        id,
        "a deleted device comes back with a new id"
    );
}

#[tokio::test]
async fn removing_a_user_unlinks_them_and_drops_their_keys_only() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let id = gateway
        .register_device(enrollment("alice", "a1", &AgentKey::generate("alice-k")))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
        .id;
    gateway
        .register_device(enrollment("bob", "a1", &AgentKey::generate("bob-k")))
        .await
        .unwrap();
    let mut admin = harness.admin().await;
    admin
        .remove_device_user(pb::RemoveDeviceUserRequest {
            device_id: id.clone(),
            user_id: "bob".into(),
        })
        .await
        .unwrap();
    let device = admin
        .get_device(pb::GetDeviceRequest { device_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        device.users.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(),
        ["alice"]
    );
    assert_eq!(
        device.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["alice-k"]
    );
    let err = admin
        .remove_device_user(pb::RemoveDeviceUserRequest {
            device_id: id.clone(),
            user_id: "bob".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::NotFound, "DEVICE_USER_NOT_FOUND")
    );
    assert_eq!(
        events(&harness, &id).await.last().map(String::as_str),
        Some("device.user.remove")
    );
}

#[tokio::test]
async fn events_record_the_caller_identity() {
    let harness = Harness::start().await;
    let id = harness
        .gateway()
        .await
        .register_device(enrollment("alice", "a1", &AgentKey::generate("k")))
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
        .id;
    harness
        .admin()
        .await
        .suspend_device(pb::SuspendDeviceRequest { device_id: id.clone() })
        .await
        .unwrap();
    let events = harness
        .viewer()
        .await
        .list_device_events(pb::ListDeviceEventsRequest {
            filter: format!("device_id = \"{id}\""),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events[0].actor, "spiffe://portcullis.local/svc/gateway");
    assert_eq!(
        events.last().unwrap().actor,
        "spiffe://portcullis.local/operator/test-admin"
    );
    assert!(events.iter().all(|e| e.create_time.is_some()));
}
