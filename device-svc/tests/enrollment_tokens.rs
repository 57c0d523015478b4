//! Enrollment tokens over real mTLS: an operator hands one out, the gateway enrolls an agent with
//! it for the token's user, and it works once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{AgentKey, Harness, enrollment, reason};
use portcullis_proto::device::v1 as pb;
use service_kit::identity::Role;
use tonic::Code;

async fn token_for(harness: &Harness, user_id: &str) -> pb::CreateEnrollmentTokenResponse {
    harness
        .operator(Role::Operator)
        .await
        .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
            user_id: user_id.into(),
            ttl: None,
        })
        .await
        .unwrap()
        .into_inner()
}

/// An enrollment that names no user and carries `token`.
fn with_token(token: &str, agent: &str, key: &AgentKey) -> pb::RegisterDeviceRequest {
    pb::RegisterDeviceRequest {
        user_id: String::new(),
        enrollment_token: token.into(),
        ..enrollment("ignored", agent, key)
    }
}

#[tokio::test]
async fn an_enrollment_token_enrolls_its_user_once() {
    let harness = Harness::start().await;
    let created = token_for(&harness, "carol").await;
    assert_eq!(created.token.len(), 43);
    assert_eq!(created.user_id, "carol");
    let expires = created.expire_time.unwrap().seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now + 24 * 3600 - expires).abs() < 60, "a day by default");

    let mut gateway = harness.gateway().await;
    let key = AgentKey::generate("carol-pop");
    let enrolled = gateway
        .register_device(with_token(&created.token, "agent-c", &key))
        .await
        .unwrap()
        .into_inner();
    let device = enrolled.device.unwrap();
    assert_eq!(device.keys[0].user_id, "carol", "the token says who enrolls");

    let again = gateway
        .register_device(with_token(
            &created.token,
            "agent-d",
            &AgentKey::generate("carol-pop-2"),
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::Unauthenticated);
    assert_eq!(reason(&again), "INVALID_ENROLLMENT_TOKEN");
    let mut harness = harness;
    harness.stop_svc().await;
}

#[tokio::test]
async fn a_refused_enrollment_leaves_its_token_usable() {
    let harness = Harness::start().await;
    let created = token_for(&harness, "dave").await;
    let mut gateway = harness.gateway().await;
    let key = AgentKey::generate("dave-pop");
    let mut no_keys = with_token(&created.token, "agent-e", &key);
    no_keys.keys.clear();
    let refused = gateway.register_device(no_keys).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    let enrolled = gateway
        .register_device(with_token(&created.token, "agent-e", &key))
        .await
        .unwrap()
        .into_inner();
    assert!(enrolled.created);
    let mut harness = harness;
    harness.stop_svc().await;
}

#[tokio::test]
async fn unknown_malformed_and_other_users_tokens_are_refused() {
    let harness = Harness::start().await;
    let created = token_for(&harness, "erin").await;
    let mut gateway = harness.gateway().await;
    let key = AgentKey::generate("erin-pop");
    let unknown = "A".repeat(43);
    for token in [unknown.as_str(), "not-a-token"] {
        let refused = gateway
            .register_device(with_token(token, "agent-f", &key))
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "INVALID_ENROLLMENT_TOKEN", "{token}");
    }
    let mut for_someone_else = with_token(&created.token, "agent-f", &key);
    for_someone_else.user_id = "mallory".into();
    let refused = gateway.register_device(for_someone_else).await.unwrap_err();
    assert_eq!(reason(&refused), "INVALID_ENROLLMENT_TOKEN");
    // Still usable by its own user.
    gateway
        .register_device(with_token(&created.token, "agent-f", &key))
        .await
        .unwrap();
    let mut harness = harness;
    harness.stop_svc().await;
}

#[tokio::test]
async fn only_operators_hand_out_tokens_and_lifetimes_are_bounded() {
    let harness = Harness::start().await;
    let request = |seconds| pb::CreateEnrollmentTokenRequest {
        user_id: "frank".into(),
        ttl: Some(prost_types::Duration { seconds, nanos: 0 }),
    };
    let denied = harness
        .viewer()
        .await
        .create_enrollment_token(request(3600))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = harness
        .gateway()
        .await
        .create_enrollment_token(request(3600))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut operator = harness.operator(Role::Operator).await;
    for seconds in [30, 31 * 24 * 3600] {
        let refused = operator.create_enrollment_token(request(seconds)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{seconds} s");
    }
    let refused = operator
        .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
            user_id: String::new(),
            ttl: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let hour = operator
        .create_enrollment_token(request(3600))
        .await
        .unwrap()
        .into_inner();
    assert!(hour.expire_time.is_some());
    let mut harness = harness;
    harness.stop_svc().await;
}
