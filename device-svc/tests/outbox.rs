//! The outbox: suspend, deactivate and delete reach session-svc and pki-svc, even when the
//! receiver is down for a while and device-svc restarts in between.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{AgentKey, Harness, Receiver, enrollment};
use portcullis_proto::device::v1 as pb;
use portcullis_proto::session::v1 as session;

/// Waits until `done` holds, or fails after `limit`.
async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn enroll(harness: &Harness, n: usize) -> Vec<String> {
    let mut gateway = harness.gateway().await;
    let mut ids = Vec::new();
    for i in 0..n {
        let request = enrollment(
            &format!("user-{i}"),
            &format!("agent-{i}"),
            &AgentKey::generate(&format!("k{i}")),
        );
        ids.push(
            gateway
                .register_device(request)
                .await
                .unwrap()
                .into_inner()
                .device
                .unwrap()
                .id,
        );
    }
    ids
}

#[tokio::test]
async fn suspending_asks_session_svc_to_end_the_device_authenticator_sessions() {
    let receiver = Receiver::default();
    // The receiver's certificate must come from device-svc's CA, so start the harness first,
    // then point it at the receiver.
    let mut harness = Harness::start().await;
    let running = receiver
        .serve("127.0.0.1:0".parse().unwrap(), &harness.pki.service("session-svc"))
        .await;
    harness.stop_svc().await;
    harness.session_url = Some(format!("https://localhost:{}", running.addr.port()));
    harness.start_svc().await;

    let ids = enroll(&harness, 1).await;
    let mut suspend = tonic::Request::new(pb::SuspendDeviceRequest {
        device_id: ids[0].clone(),
    });
    suspend
        .metadata_mut()
        .insert("x-request-id", "req-suspend-42".parse().unwrap());
    harness.admin().await.suspend_device(suspend).await.unwrap();
    eventually(Duration::from_secs(10), "RevokeSessions", || {
        !receiver.received.lock().unwrap().revoke_sessions.is_empty()
    })
    .await;
    let received = receiver.received.lock().unwrap().revoke_sessions.clone();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.device_id, ids[0]);
    assert!(
        request.device_authenticator_only,
        "only FastPass sessions on that device end"
    );
    assert!(request.user_id.is_empty());
    assert_eq!(request.reason, session::RevocationReason::DeviceSuspended as i32);
    assert!(!request.idempotency_key.is_empty());
    assert_eq!(
        receiver.received.lock().unwrap().request_ids,
        ["req-suspend-42"],
        "the request id travels from the operator's call to session-svc"
    );
    running.stop().await;
}

#[tokio::test]
async fn nothing_is_lost_when_the_receiver_is_down_and_device_svc_restarts() {
    let receiver = Receiver::default();
    let mut harness = Harness::start().await;
    // Reserve an address for the receivers, then take them down before anything is sent.
    let tls = harness.pki.service("session-svc");
    let running = receiver.serve("127.0.0.1:0".parse().unwrap(), &tls).await;
    let addr = running.addr;
    running.stop().await;
    harness.stop_svc().await;
    harness.session_url = Some(format!("https://localhost:{}", addr.port()));
    harness.pki_url = Some(format!("https://localhost:{}", addr.port()));
    harness.start_svc().await;

    let ids = enroll(&harness, 4).await;
    let mut admin = harness.admin().await;
    admin
        .suspend_device(pb::SuspendDeviceRequest {
            device_id: ids[0].clone(),
        })
        .await
        .unwrap();
    admin
        .suspend_device(pb::SuspendDeviceRequest {
            device_id: ids[1].clone(),
        })
        .await
        .unwrap();
    admin
        .deactivate_device(pb::DeactivateDeviceRequest {
            device_id: ids[2].clone(),
        })
        .await
        .unwrap();
    admin
        .deactivate_device(pb::DeactivateDeviceRequest {
            device_id: ids[3].clone(),
        })
        .await
        .unwrap();
    admin
        .delete_device(pb::DeleteDeviceRequest {
            device_id: ids[3].clone(),
        })
        .await
        .unwrap();

    // Let delivery fail a few times, then restart device-svc while the receiver is still down.
    tokio::time::sleep(Duration::from_millis(800)).await;
    harness.stop_svc().await;
    assert!(receiver.received.lock().unwrap().revoke_sessions.is_empty());
    harness.start_svc().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The receiver comes back on the same address.
    let running = receiver.serve(addr, &tls).await;
    eventually(Duration::from_secs(60), "every effect", || {
        let r = receiver.received.lock().unwrap();
        r.revoke_sessions.len() >= 4 && !r.revoke_certificates.is_empty()
    })
    .await;
    // Give a duplicate, if any were to come, the chance to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let received = std::mem::take(&mut *receiver.received.lock().unwrap());
    let mut session_devices: Vec<_> = received.revoke_sessions.iter().map(|r| r.device_id.clone()).collect();
    session_devices.sort();
    let mut expected = vec![ids[0].clone(), ids[1].clone(), ids[2].clone(), ids[3].clone()];
    expected.sort();
    assert_eq!(
        session_devices, expected,
        "each suspend and deactivate ended that device's sessions once"
    );
    let keys: HashSet<_> = received
        .revoke_sessions
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(keys.len(), 4, "every effect carries its own idempotency key");
    assert_eq!(received.revoke_certificates.len(), 1);
    assert_eq!(received.revoke_certificates[0].bound_device_id, ids[3]);
    assert!(!received.revoke_certificates[0].idempotency_key.is_empty());
    running.stop().await;
}
