//! The revocation feed gateways follow: every revocation once, in order, resumable from a cursor
//! with no gap and no duplicate, across reconnects and restarts of session-svc.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Harness, bad_field, reason};
use portcullis_proto::session::v1 as pb;
use portcullis_proto::session::v1::session_service_client::SessionServiceClient;
use service_kit::identity::Role;
use tokio::time::{Instant, sleep, timeout};
use tonic::Code;
use tonic::Streaming;
use tonic::transport::Channel;

type Client = SessionServiceClient<Channel>;

/// The longest a revocation may take to reach a watcher.
const ARRIVAL: Duration = Duration::from_secs(2);

async fn watch(client: &mut Client, cursor: &str, from_now: bool) -> Streaming<pb::Revocation> {
    client
        .watch_revocations(pb::WatchRevocationsRequest {
            cursor: cursor.into(),
            from_now,
        })
        .await
        .unwrap()
        .into_inner()
}

/// The next revocation, or a failure after [`ARRIVAL`].
async fn next(stream: &mut Streaming<pb::Revocation>) -> pb::Revocation {
    timeout(ARRIVAL, stream.message())
        .await
        .expect("a revocation arrives within 2 s")
        .unwrap()
        .expect("the stream stays open")
}

async fn take(stream: &mut Streaming<pb::Revocation>, n: usize) -> Vec<pb::Revocation> {
    let mut received = Vec::with_capacity(n);
    for _ in 0..n {
        received.push(next(stream).await);
    }
    received
}

async fn nothing_more(stream: &mut Streaming<pb::Revocation>) {
    if let Ok(extra) = timeout(Duration::from_millis(300), stream.message()).await {
        panic!("unexpected revocation: {extra:?}");
    }
}

/// The feed position a cursor stands for. Cursors are opaque to clients; the test reads them as
/// the decimal positions the service issues, to check their order.
fn position(revocation: &pb::Revocation) -> i64 {
    revocation.cursor.parse().expect("a decimal cursor")
}

fn assert_increasing(revocations: &[pb::Revocation]) {
    for pair in revocations.windows(2) {
        assert!(
            position(&pair[0]) < position(&pair[1]),
            "cursors out of order: {} then {}",
            pair[0].cursor,
            pair[1].cursor
        );
    }
}

fn session_ids(revocations: &[pb::Revocation]) -> Vec<String> {
    revocations.iter().map(|r| r.session_id.clone()).collect()
}

/// `n` password sessions of `user_id`.
async fn sessions(harness: &Harness, user_id: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(harness.session(user_id, "", false).await.session.unwrap().id);
    }
    ids
}

async fn revoke(client: &mut Client, session_id: &str) {
    client
        .revoke_session(pb::RevokeSessionRequest {
            session_id: session_id.into(),
            reason: pb::RevocationReason::Admin.into(),
        })
        .await
        .unwrap();
}

async fn revoke_all(client: &mut Client, session_ids: &[String]) {
    for id in session_ids {
        revoke(client, id).await;
    }
}

async fn revoke_sessions_on(client: &mut Client, device_id: &str) -> i64 {
    client
        .revoke_sessions(pb::RevokeSessionsRequest {
            device_id: device_id.into(),
            reason: pb::RevocationReason::Admin.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .revoked_count
}

#[tokio::test]
async fn a_watcher_receives_revocations_in_order_with_increasing_cursors() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let on_device = harness.session(&alice.id, "device-1", true).await.session.unwrap();
    let signed_out = harness.session(&alice.id, "", false).await.session.unwrap();
    let last = harness.session(&alice.id, "device-2", false).await.session.unwrap();

    let mut gateway = harness.gateway_sessions().await;
    let mut viewer = harness.sessions(&harness.operator_tls(Role::Viewer)).await;
    let mut stream = watch(&mut gateway, "", true).await;
    let mut viewer_stream = watch(&mut viewer, "", true).await;

    let mut operator = harness.operator_sessions().await;
    let revoked = revoke_sessions_on(&mut operator, "device-1").await;
    assert_eq!(revoked, 1);
    gateway
        .revoke_session(pb::RevokeSessionRequest {
            session_id: signed_out.id.clone(),
            reason: pb::RevocationReason::UserSignedOut.into(),
        })
        .await
        .unwrap();
    let by_user = operator
        .revoke_sessions(pb::RevokeSessionsRequest {
            user_id: alice.id.clone(),
            reason: pb::RevocationReason::UserDeactivated.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_user.revoked_count, 1);

    let received = take(&mut stream, 3).await;
    assert_eq!(
        session_ids(&received),
        [on_device.id.clone(), signed_out.id.clone(), last.id.clone()]
    );
    let reasons: Vec<_> = received
        .iter()
        .map(|r| pb::RevocationReason::try_from(r.reason).unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            pb::RevocationReason::Admin,
            pb::RevocationReason::UserSignedOut,
            pb::RevocationReason::UserDeactivated
        ]
    );
    assert_eq!(received[0].device_id, "device-1");
    assert_eq!(received[2].device_id, "device-2");
    assert!(received[1].device_id.is_empty());
    for revocation in &received {
        assert_eq!(revocation.user_id, alice.id);
        assert!(!revocation.cursor.is_empty());
    }
    assert_increasing(&received);
    // The feed's revoke time is the session's.
    let session = gateway
        .get_session(pb::GetSessionRequest {
            session_id: signed_out.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(received[1].revoke_time, session.revoke_time);
    assert!(received[1].revoke_time.is_some());
    nothing_more(&mut stream).await;

    assert_eq!(
        take(&mut viewer_stream, 3).await,
        received,
        "every watcher sees the same feed"
    );

    let denied = harness
        .device_svc_sessions()
        .await
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn from_now_skips_older_revocations_and_an_empty_cursor_replays_from_the_oldest_kept() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let ids = sessions(&harness, &alice.id, 3).await;
    let mut operator = harness.operator_sessions().await;
    revoke_all(&mut operator, &ids[..2]).await;

    let mut gateway = harness.gateway_sessions().await;
    let mut from_now = watch(&mut gateway, "", true).await;
    let mut from_oldest = watch(&mut gateway, "", false).await;
    let replayed = take(&mut from_oldest, 2).await;
    assert_eq!(session_ids(&replayed), ids[..2]);

    revoke(&mut operator, &ids[2]).await;
    let new = next(&mut from_now).await;
    assert_eq!(new.session_id, ids[2]);
    nothing_more(&mut from_now).await;
    let mut all = replayed;
    all.push(next(&mut from_oldest).await);
    assert_eq!(session_ids(&all), ids);
    assert_eq!(all[2], new);
    assert_increasing(&all);
    nothing_more(&mut from_oldest).await;

    // A cursor resumes after its revocation, whether it was live or replayed.
    let mut resumed = watch(&mut gateway, &all[0].cursor, false).await;
    assert_eq!(take(&mut resumed, 2).await, all[1..]);
    nothing_more(&mut resumed).await;
}

#[tokio::test]
async fn a_watcher_that_reconnects_with_its_last_cursor_misses_nothing_and_sees_nothing_twice() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let ids = sessions(&harness, &alice.id, 7).await;
    let mut operator = harness.operator_sessions().await;
    let mut gateway = harness.gateway_sessions().await;

    let mut stream = watch(&mut gateway, "", true).await;
    revoke_all(&mut operator, &ids[..3]).await;
    let first = take(&mut stream, 3).await;
    assert_eq!(session_ids(&first), ids[..3]);
    let cursor = first[2].cursor.clone();
    drop(stream);

    // Revoked while no watcher is connected.
    revoke_all(&mut operator, &ids[3..]).await;

    let mut stream = watch(&mut gateway, &cursor, false).await;
    let missed = take(&mut stream, 4).await;
    assert_eq!(session_ids(&missed), ids[3..]);
    assert!(position(&missed[0]) > position(&first[2]));
    assert_increasing(&missed);
    nothing_more(&mut stream).await;
}

#[tokio::test]
async fn a_watcher_resumes_from_its_cursor_across_a_restart_of_session_svc() {
    let mut harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let ids = sessions(&harness, &alice.id, 5).await;
    let cursor = {
        let mut operator = harness.operator_sessions().await;
        let mut gateway = harness.gateway_sessions().await;
        let mut stream = watch(&mut gateway, "", true).await;
        revoke_all(&mut operator, &ids[..2]).await;
        let first = take(&mut stream, 2).await;
        assert_eq!(session_ids(&first), ids[..2]);
        // Missed by the watcher, which goes away before session-svc does.
        drop(stream);
        revoke_all(&mut operator, &ids[2..]).await;
        first[1].cursor.clone()
    };

    harness.stop_svc().await;
    harness.start_svc().await;

    let mut gateway = harness.gateway_sessions().await;
    let mut stream = watch(&mut gateway, &cursor, false).await;
    let missed = take(&mut stream, 3).await;
    assert_eq!(session_ids(&missed), ids[2..]);
    assert!(position(&missed[0]) > cursor.parse::<i64>().unwrap());
    assert_increasing(&missed);
    nothing_more(&mut stream).await;

    // And the restarted service keeps feeding it live.
    let later = harness.session(&alice.id, "", false).await.session.unwrap().id;
    revoke(&mut harness.operator_sessions().await, &later).await;
    let live = next(&mut stream).await;
    assert_eq!(live.session_id, later);
    assert!(position(&live) > position(&missed[2]));
}

#[tokio::test]
async fn a_garbage_cursor_is_invalid_and_one_older_than_the_kept_revocations_is_out_of_range() {
    let harness = Harness::start_with(&[("sweep_interval_ms", "200"), ("retention_hours", "1")]).await;
    let mut gateway = harness.gateway_sessions().await;
    for garbage in ["abc", "-1", "1.5", "12abc"] {
        let status = gateway
            .watch_revocations(pb::WatchRevocationsRequest {
                cursor: garbage.into(),
                from_now: false,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{garbage}: {status:?}");
        assert_eq!(bad_field(&status), "cursor", "{garbage}");
    }

    let alice = harness.user("alice").await;
    let ids = sessions(&harness, &alice.id, 3).await;
    revoke_all(&mut harness.operator_sessions().await, &ids).await;
    let all = take(&mut watch(&mut gateway, "", false).await, 3).await;
    assert_eq!(session_ids(&all), ids);

    // The first two fall out of the one-hour retention (backdated), and the sweeper prunes them.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&harness.db.url).await.unwrap();
    for id in &ids[..2] {
        sqlx::query("UPDATE revocations SET revoked_at = revoked_at - 7200000000 WHERE session_id = $1")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let result = gateway
            .watch_revocations(pb::WatchRevocationsRequest {
                cursor: all[0].cursor.clone(),
                from_now: false,
            })
            .await;
        match result {
            Err(status) => {
                assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
                assert_eq!(reason(&status), "CURSOR_EXPIRED");
                break;
            }
            Ok(_) => {
                assert!(Instant::now() < deadline, "the sweeper did not prune the feed");
                sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // The newest pruned cursor still resumes without a gap; an empty one starts at the oldest kept.
    let mut resumed = watch(&mut gateway, &all[1].cursor, false).await;
    assert_eq!(next(&mut resumed).await, all[2]);
    nothing_more(&mut resumed).await;
    let mut oldest = watch(&mut gateway, "", false).await;
    assert_eq!(next(&mut oldest).await, all[2]);
    nothing_more(&mut oldest).await;
}

#[tokio::test]
async fn a_revocation_reaches_a_watcher_promptly_after_revoke_sessions_returns() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let mut gateway = harness.gateway_sessions().await;
    let mut device_svc = harness.device_svc_sessions().await;
    let mut stream = watch(&mut gateway, "", true).await;
    let mut latencies = Vec::new();
    for i in 0..5 {
        let device_id = format!("device-{i}");
        let session = harness.session(&alice.id, &device_id, true).await.session.unwrap();
        let response = device_svc
            .revoke_sessions(pb::RevokeSessionsRequest {
                user_id: String::new(),
                device_id: device_id.clone(),
                device_authenticator_only: true,
                reason: pb::RevocationReason::DeviceSuspended.into(),
                idempotency_key: format!("outbox-{i}"),
            })
            .await
            .unwrap()
            .into_inner();
        let returned = Instant::now();
        assert_eq!(response.revoked_count, 1);
        let revocation = next(&mut stream).await;
        latencies.push(returned.elapsed().as_secs_f64() * 1_000.0);
        assert_eq!(revocation.session_id, session.id);
        assert_eq!(revocation.device_id, device_id);
        assert_eq!(revocation.reason, i32::from(pb::RevocationReason::DeviceSuspended));
    }
    let rendered: Vec<_> = latencies.iter().map(|ms| format!("{ms:.1}")).collect();
    println!(
        "revocation feed latency after RevokeSessions returned (ms): {}",
        rendered.join(", ")
    );
}

#[tokio::test]
async fn concurrent_revocations_each_appear_once_in_cursor_order() {
    const TASKS: usize = 4;
    const PER_TASK: usize = 10;
    const ONE_BY_ONE: usize = 7;
    let harness = Harness::start().await;
    let mut users = Vec::new();
    let mut owned = Vec::new();
    for t in 0..TASKS {
        let user = harness.user(&format!("user-{t}")).await;
        owned.push(sessions(&harness, &user.id, PER_TASK).await);
        users.push(user.id);
    }
    let mut gateway = harness.gateway_sessions().await;
    let mut stream = watch(&mut gateway, "", true).await;

    let mut tasks = Vec::new();
    for (user_id, ids) in users.iter().cloned().zip(owned.iter().cloned()) {
        let mut client = harness.operator_sessions().await;
        tasks.push(tokio::spawn(async move {
            // Some one at a time, the rest in one bulk call.
            revoke_all(&mut client, &ids[..ONE_BY_ONE]).await;
            let bulk = client
                .revoke_sessions(pb::RevokeSessionsRequest {
                    user_id,
                    reason: pb::RevocationReason::UserDeactivated.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(bulk.revoked_count, (PER_TASK - ONE_BY_ONE) as i64);
        }));
    }
    let received = take(&mut stream, TASKS * PER_TASK).await;
    for task in tasks {
        task.await.unwrap();
    }
    nothing_more(&mut stream).await;

    assert_increasing(&received);
    let unique: BTreeSet<_> = received.iter().map(|r| r.session_id.clone()).collect();
    assert_eq!(unique.len(), received.len(), "no revocation twice");
    let expected: BTreeSet<_> = owned.iter().flatten().cloned().collect();
    assert_eq!(unique, expected, "every revocation");
    // Each task's one-at-a-time revocations appear in the order it made them.
    for ids in &owned {
        let seen: Vec<_> = received
            .iter()
            .map(|r| &r.session_id)
            .filter(|id| ids[..ONE_BY_ONE].contains(*id))
            .collect();
        assert_eq!(seen, ids[..ONE_BY_ONE].iter().collect::<Vec<_>>());
    }
}
