//! Sessions over real mTLS: creation with a one-time token stored only as a hash, validation
//! with idle refresh and expiry, listing, revocation one at a time and in bulk (idempotent per
//! key, as device-svc's outbox sends it), single-use authorization codes with PKCE, sign-in
//! events and the sweeper.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Harness, bad_field, reason};
use portcullis_proto::session::v1 as pb;
use service_kit::identity::Role;
use session_svc::model::now_micros;
use session_svc::store::{AuthorizationCode, Store};
use session_svc::tokens::{new_secret, secret_hash};
use sqlx::Row;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tonic::{Code, Status};

/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CLIENT: &str = "portal";
const REDIRECT: &str = "https://portal.example.com/callback";

fn seconds(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

fn millis(ms: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: 0,
        nanos: ms * 1_000_000,
    })
}

fn micros(time: &Option<prost_types::Timestamp>) -> i64 {
    let time = time.as_ref().expect("timestamp set");
    time.seconds * 1_000_000 + i64::from(time.nanos) / 1_000
}

fn status(session: &pb::Session) -> pb::SessionStatus {
    pb::SessionStatus::try_from(session.status).unwrap()
}

fn revocation_reason(session: &pb::Session) -> pb::RevocationReason {
    pb::RevocationReason::try_from(session.revocation_reason).unwrap()
}

/// A password-and-TOTP sign-in for `user_id`, optionally on a device.
fn request(user_id: &str, device_id: &str) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        user_id: user_id.into(),
        device_id: device_id.into(),
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
        device_authenticator: false,
        idle_timeout: None,
        max_lifetime: None,
        client_ip: "198.51.100.7".into(),
        user_agent: "Mozilla/5.0 (integration test)".into(),
    }
}

async fn create(harness: &Harness, request: pb::CreateSessionRequest) -> Result<pb::CreateSessionResponse, Status> {
    harness
        .gateway_sessions()
        .await
        .create_session(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn validate(harness: &Harness, token: &str) -> Result<pb::Session, Status> {
    harness
        .gateway_sessions()
        .await
        .validate_session(pb::ValidateSessionRequest { token: token.into() })
        .await
        .map(tonic::Response::into_inner)
}

async fn get(harness: &Harness, session_id: &str) -> pb::Session {
    harness
        .gateway_sessions()
        .await
        .get_session(pb::GetSessionRequest {
            session_id: session_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn status_of(harness: &Harness, session_id: &str) -> pb::SessionStatus {
    status(&get(harness, session_id).await)
}

async fn revoke(harness: &Harness, session_id: &str, reason: pb::RevocationReason) -> pb::Session {
    harness
        .operator_sessions()
        .await
        .revoke_session(pb::RevokeSessionRequest {
            session_id: session_id.into(),
            reason: reason.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn events(harness: &Harness, filter: String) -> Vec<pb::Event> {
    harness
        .sessions(&harness.operator_tls(Role::Viewer))
        .await
        .list_events(pb::ListEventsRequest {
            page_size: 100,
            page_token: String::new(),
            filter,
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

async fn session_events(harness: &Harness, session_id: &str) -> Vec<pb::Event> {
    events(harness, format!("session_id = \"{session_id}\"")).await
}

/// Every page of a listing, with the page sizes seen.
async fn list_all(harness: &Harness, mut request: pb::ListSessionsRequest) -> (Vec<pb::Session>, Vec<usize>) {
    let mut viewer = harness.sessions(&harness.operator_tls(Role::Viewer)).await;
    let mut sessions = Vec::new();
    let mut pages = Vec::new();
    loop {
        let page = viewer.list_sessions(request.clone()).await.unwrap().into_inner();
        pages.push(page.sessions.len());
        sessions.extend(page.sessions);
        if page.next_page_token.is_empty() {
            return (sessions, pages);
        }
        assert!(pages.len() < 20, "the listing does not end");
        request.page_token = page.next_page_token;
    }
}

fn ids(sessions: &[pb::Session]) -> BTreeSet<String> {
    sessions.iter().map(|s| s.id.clone()).collect()
}

async fn pool(harness: &Harness) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&harness.db.url).await.unwrap()
}

async fn store(harness: &Harness) -> Store {
    Store::new(
        service_kit::db::connect(&harness.db.url, 2, session_svc::MIGRATIONS)
            .await
            .unwrap(),
    )
}

fn issue_request(session_id: &str) -> pb::IssueAuthorizationCodeRequest {
    pb::IssueAuthorizationCodeRequest {
        session_id: session_id.into(),
        client_id: CLIENT.into(),
        redirect_uri: REDIRECT.into(),
        code_challenge: CHALLENGE.into(),
        code_challenge_method: "S256".into(),
        nonce: "n-0S6_WzA2Mj".into(),
        scopes: vec!["openid".into(), "profile".into()],
    }
}

fn redeem_request(code: &str) -> pb::RedeemAuthorizationCodeRequest {
    pb::RedeemAuthorizationCodeRequest {
        code: code.into(),
        client_id: CLIENT.into(),
        redirect_uri: REDIRECT.into(),
        code_verifier: VERIFIER.into(),
    }
}

async fn issue(harness: &Harness, session_id: &str) -> pb::IssueAuthorizationCodeResponse {
    harness
        .gateway_sessions()
        .await
        .issue_authorization_code(issue_request(session_id))
        .await
        .unwrap()
        .into_inner()
}

async fn redeem(
    harness: &Harness,
    request: pb::RedeemAuthorizationCodeRequest,
) -> Result<pb::RedeemAuthorizationCodeResponse, Status> {
    harness
        .gateway_sessions()
        .await
        .redeem_authorization_code(request)
        .await
        .map(tonic::Response::into_inner)
}

fn assert_refused(result: Result<impl std::fmt::Debug, Status>, code: Code, expected_reason: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(&status), expected_reason, "{status:?}");
}

fn assert_bad_field(result: Result<impl std::fmt::Debug, Status>, field: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_field(&status), field, "{status:?}");
}

#[tokio::test]
async fn creating_a_session_returns_a_fresh_token_once_and_stores_only_its_hash() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let created = create(
        &harness,
        pb::CreateSessionRequest {
            amr: vec!["hwk".into(), "user".into(), "mfa".into()],
            device_authenticator: true,
            idle_timeout: seconds(15 * 60),
            max_lifetime: seconds(8 * 3600),
            ..request(&alice.id, "device-1")
        },
    )
    .await
    .unwrap();
    let token = created.token.clone();
    assert_eq!(token.len(), 43, "256 bits, base64url without padding");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let session = created.session.unwrap();
    assert_eq!(session.user_id, alice.id);
    assert_eq!(session.device_id, "device-1");
    assert_eq!(session.amr, ["hwk", "user", "mfa"]);
    assert!(session.device_authenticator);
    assert_eq!(status(&session), pb::SessionStatus::Active);
    assert_eq!(session.client_ip, "198.51.100.7");
    assert_eq!(session.user_agent, "Mozilla/5.0 (integration test)");
    assert_eq!(
        micros(&session.expire_time) - micros(&session.create_time),
        8 * 3600 * 1_000_000
    );
    assert_eq!(
        micros(&session.idle_expire_time) - micros(&session.last_active_time),
        15 * 60 * 1_000_000
    );
    assert!(session.revoke_time.is_none());
    assert_eq!(revocation_reason(&session), pb::RevocationReason::Unspecified);
    assert_eq!(
        get(&harness, &session.id).await,
        session,
        "GetSession shows the same session"
    );

    let other = create(&harness, request(&alice.id, "")).await.unwrap();
    assert_ne!(other.token, token);
    assert_ne!(other.session.as_ref().unwrap().id, session.id);
    assert!(other.session.unwrap().device_id.is_empty());

    let pool = pool(&harness).await;
    let stored: String = sqlx::query("SELECT token_hash FROM sessions WHERE id = $1")
        .bind(&session.id)
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get("token_hash")
        .unwrap();
    assert_eq!(stored, secret_hash(&token));
    let tokens = [token, other.token];
    let mut checked = 0;
    for table in ["sessions", "events"] {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(!rows.is_empty());
        for row in &rows {
            for column in 0..row.len() {
                // Text columns only; the others cannot hold a token.
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(column) {
                    checked += 1;
                    for token in &tokens {
                        assert!(!text.contains(token.as_str()), "{table} column {column} holds a token");
                    }
                }
            }
        }
    }
    assert!(checked > 20, "the text columns were read");
}

#[tokio::test]
async fn creating_a_session_is_refused_for_inactive_or_unknown_users_bad_input_and_other_callers() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;

    assert_refused(
        create(&harness, request("no-such-user", "")).await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );

    let mut operator = harness.directory(&harness.operator_tls(Role::Operator)).await;
    let suspended = harness.user("sam").await;
    operator
        .suspend_user(pb::SuspendUserRequest {
            user_id: suspended.id.clone(),
        })
        .await
        .unwrap();
    assert_refused(
        create(&harness, request(&suspended.id, "")).await,
        Code::PermissionDenied,
        "USER_NOT_ACTIVE",
    );

    // Deactivating ends the user's sessions and refuses new ones.
    let leaver = harness.user("dora").await;
    let before = create(&harness, request(&leaver.id, "")).await.unwrap();
    operator
        .deactivate_user(pb::DeactivateUserRequest {
            user_id: leaver.id.clone(),
        })
        .await
        .unwrap();
    let ended = get(&harness, &before.session.unwrap().id).await;
    assert_eq!(status(&ended), pb::SessionStatus::Revoked);
    assert_eq!(revocation_reason(&ended), pb::RevocationReason::UserDeactivated);
    assert_refused(
        create(&harness, request(&leaver.id, "")).await,
        Code::PermissionDenied,
        "USER_NOT_ACTIVE",
    );

    let id = &alice.id;
    let bad: Vec<(pb::CreateSessionRequest, &str)> = vec![
        (
            pb::CreateSessionRequest {
                amr: vec!["password".into()],
                ..request(id, "")
            },
            "amr",
        ),
        (
            pb::CreateSessionRequest {
                amr: vec![],
                ..request(id, "")
            },
            "amr",
        ),
        (
            pb::CreateSessionRequest {
                idle_timeout: seconds(0),
                ..request(id, "")
            },
            "idle_timeout",
        ),
        (
            pb::CreateSessionRequest {
                idle_timeout: millis(999),
                ..request(id, "")
            },
            "idle_timeout",
        ),
        (
            pb::CreateSessionRequest {
                idle_timeout: seconds(31 * 86_400),
                ..request(id, "")
            },
            "idle_timeout",
        ),
        (
            pb::CreateSessionRequest {
                max_lifetime: seconds(-1),
                ..request(id, "")
            },
            "max_lifetime",
        ),
        (
            pb::CreateSessionRequest {
                max_lifetime: seconds(91 * 86_400),
                ..request(id, "")
            },
            "max_lifetime",
        ),
        (
            pb::CreateSessionRequest {
                idle_timeout: seconds(10),
                max_lifetime: seconds(5),
                ..request(id, "")
            },
            "max_lifetime",
        ),
        (
            pb::CreateSessionRequest {
                device_authenticator: true,
                ..request(id, "")
            },
            "device_id",
        ),
        (request("", ""), "user_id"),
    ];
    for (wrong, field) in bad {
        assert_bad_field(create(&harness, wrong).await, field);
    }

    // The shortest allowed durations are one second.
    let shortest = create(
        &harness,
        pb::CreateSessionRequest {
            idle_timeout: seconds(1),
            max_lifetime: seconds(1),
            ..request(id, "")
        },
    )
    .await
    .unwrap()
    .session
    .unwrap();
    assert_eq!(micros(&shortest.expire_time) - micros(&shortest.create_time), 1_000_000);

    for tls in [harness.operator_tls(Role::Admin), harness.pki.service("device-svc")] {
        let denied = harness
            .sessions(&tls)
            .await
            .create_session(request(id, ""))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    }
}

#[tokio::test]
async fn validating_refreshes_the_idle_time_so_a_used_session_outlives_its_idle_timeout() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let start = Instant::now();
    let created = create(
        &harness,
        pb::CreateSessionRequest {
            idle_timeout: seconds(2),
            max_lifetime: seconds(60),
            ..request(&alice.id, "device-1")
        },
    )
    .await
    .unwrap();
    let session = created.session.unwrap();

    sleep_until(start + Duration::from_millis(1_000)).await;
    let first = validate(&harness, &created.token).await.unwrap();
    assert_eq!(first.id, session.id);
    assert_eq!(status(&first), pb::SessionStatus::Active);
    assert!(micros(&first.last_active_time) >= micros(&session.create_time) + 900_000);
    assert!(micros(&first.idle_expire_time) > micros(&session.idle_expire_time));

    // Past the original idle expiry: alive because the first validation refreshed it.
    sleep_until(start + Duration::from_millis(2_200)).await;
    let second = validate(&harness, &created.token).await.unwrap();
    assert_eq!(status(&second), pb::SessionStatus::Active);
    assert_eq!(
        second.expire_time, session.expire_time,
        "the maximum lifetime never moves"
    );
    assert_eq!(status(&get(&harness, &session.id).await), pb::SessionStatus::Active);
}

#[tokio::test]
async fn an_idle_session_expires_and_revoked_or_unknown_tokens_are_refused() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let idle = create(
        &harness,
        pb::CreateSessionRequest {
            idle_timeout: seconds(1),
            max_lifetime: seconds(60),
            ..request(&alice.id, "")
        },
    )
    .await
    .unwrap();
    let start = Instant::now();

    let signed_out = create(&harness, request(&alice.id, "")).await.unwrap();
    harness
        .gateway_sessions()
        .await
        .revoke_session(pb::RevokeSessionRequest {
            session_id: signed_out.session.as_ref().unwrap().id.clone(),
            reason: pb::RevocationReason::UserSignedOut.into(),
        })
        .await
        .unwrap();
    assert_refused(
        validate(&harness, &signed_out.token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    for garbage in [
        String::new(),
        "garbage".to_owned(),
        format!("{}!", &new_secret().unwrap()[..42]),
        new_secret().unwrap(),
    ] {
        assert_refused(
            validate(&harness, &garbage).await,
            Code::Unauthenticated,
            "INVALID_SESSION",
        );
    }

    sleep_until(start + Duration::from_millis(1_300)).await;
    assert_refused(
        validate(&harness, &idle.token).await,
        Code::Unauthenticated,
        "SESSION_EXPIRED",
    );
    let expired = get(&harness, &idle.session.unwrap().id).await;
    assert_eq!(status(&expired), pb::SessionStatus::Expired);
    assert!(expired.revoke_time.is_none());
}

#[tokio::test]
async fn sessions_are_listed_by_user_or_device_a_page_at_a_time() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let bob = harness.user("bob").await;
    let mut alices = Vec::new();
    for device in ["device-a", "device-a", "device-a", "device-b", "device-b"] {
        alices.push(
            create(&harness, request(&alice.id, device))
                .await
                .unwrap()
                .session
                .unwrap(),
        );
    }
    let bobs = create(&harness, request(&bob.id, "device-a"))
        .await
        .unwrap()
        .session
        .unwrap();

    let by_alice = pb::ListSessionsRequest {
        user_id: alice.id.clone(),
        page_size: 2,
        ..Default::default()
    };
    let (listed, pages) = list_all(&harness, by_alice.clone()).await;
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(ids(&listed), ids(&alices));
    assert_eq!(listed.len(), alices.len(), "no session twice");

    let (on_a, _) = list_all(
        &harness,
        pb::ListSessionsRequest {
            device_id: "device-a".into(),
            page_size: 3,
            ..Default::default()
        },
    )
    .await;
    let mut expected = ids(&alices[..3]);
    expected.insert(bobs.id.clone());
    assert_eq!(ids(&on_a), expected);

    let revoked = revoke(&harness, &alices[0].id, pb::RevocationReason::Admin).await;
    let (live, _) = list_all(&harness, by_alice.clone()).await;
    assert_eq!(ids(&live), ids(&alices[1..]));
    let (all, _) = list_all(
        &harness,
        pb::ListSessionsRequest {
            include_ended: true,
            ..by_alice.clone()
        },
    )
    .await;
    assert_eq!(ids(&all), ids(&alices));
    let shown = all.iter().find(|s| s.id == revoked.id).unwrap();
    assert_eq!(status(shown), pb::SessionStatus::Revoked);

    let mut viewer = harness.sessions(&harness.operator_tls(Role::Viewer)).await;
    for wrong in [
        pb::ListSessionsRequest::default(),
        pb::ListSessionsRequest {
            user_id: alice.id.clone(),
            device_id: "device-a".into(),
            ..Default::default()
        },
    ] {
        assert_bad_field(viewer.list_sessions(wrong).await, "user_id");
    }
    let first = viewer.list_sessions(by_alice.clone()).await.unwrap().into_inner();
    assert_bad_field(
        viewer
            .list_sessions(pb::ListSessionsRequest {
                user_id: bob.id.clone(),
                page_token: first.next_page_token,
                ..by_alice.clone()
            })
            .await,
        "page_token",
    );
    let denied = harness
        .gateway_sessions()
        .await
        .list_sessions(by_alice)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn listing_live_sessions_pages_past_idle_expired_ones() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let idle = create(
        &harness,
        pb::CreateSessionRequest {
            idle_timeout: seconds(1),
            max_lifetime: seconds(60),
            ..request(&alice.id, "")
        },
    )
    .await
    .unwrap()
    .session
    .unwrap();
    let start = Instant::now();
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(create(&harness, request(&alice.id, "")).await.unwrap().session.unwrap());
    }
    sleep_until(start + Duration::from_millis(1_200)).await;

    let (listed, _) = list_all(
        &harness,
        pb::ListSessionsRequest {
            user_id: alice.id.clone(),
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&listed), ids(&live), "every live session, and only those");
    let (all, _) = list_all(
        &harness,
        pb::ListSessionsRequest {
            user_id: alice.id.clone(),
            include_ended: true,
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.len(), 4);
    let expired = all.iter().find(|s| s.id == idle.id).unwrap();
    assert_eq!(status(expired), pb::SessionStatus::Expired);
}

#[tokio::test]
async fn revoking_a_session_is_idempotent_and_open_to_operators_and_the_gateway() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let created = create(&harness, request(&alice.id, "device-1")).await.unwrap();
    let id = created.session.unwrap().id;

    let first = harness
        .gateway_sessions()
        .await
        .revoke_session(pb::RevokeSessionRequest {
            session_id: id.clone(),
            reason: pb::RevocationReason::UserSignedOut.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&first), pb::SessionStatus::Revoked);
    assert_eq!(revocation_reason(&first), pb::RevocationReason::UserSignedOut);
    assert!(first.revoke_time.is_some());

    let again = revoke(&harness, &id, pb::RevocationReason::Admin).await;
    assert_eq!(again, first, "ending an ended session changes nothing");
    let ends: Vec<_> = session_events(&harness, &id)
        .await
        .into_iter()
        .filter(|e| e.event_type == "user.session.end")
        .collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].details.get("reason").unwrap(), "USER_SIGNED_OUT");

    let other = create(&harness, request(&alice.id, "")).await.unwrap().session.unwrap();
    let unspecified = revoke(&harness, &other.id, pb::RevocationReason::Unspecified).await;
    assert_eq!(revocation_reason(&unspecified), pb::RevocationReason::Admin);

    let unknown = harness
        .operator_sessions()
        .await
        .revoke_session(pb::RevokeSessionRequest {
            session_id: "no-such-session".into(),
            reason: pb::RevocationReason::Admin.into(),
        })
        .await;
    assert_refused(unknown, Code::NotFound, "SESSION_NOT_FOUND");

    let live = create(&harness, request(&alice.id, "")).await.unwrap().session.unwrap();
    for tls in [harness.operator_tls(Role::Viewer), harness.pki.service("device-svc")] {
        let denied = harness
            .sessions(&tls)
            .await
            .revoke_session(pb::RevokeSessionRequest {
                session_id: live.id.clone(),
                reason: pb::RevocationReason::Admin.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    assert_eq!(status_of(&harness, &live.id).await, pb::SessionStatus::Active);
}

#[tokio::test]
async fn device_svc_ends_exactly_the_fastpass_sessions_on_a_suspended_device_once_per_key() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let bob = harness.user("bob").await;
    let alice_fastpass = harness.session(&alice.id, "device-1", true).await;
    let bob_fastpass = harness.session(&bob.id, "device-1", true).await;
    let alice_password = harness.session(&alice.id, "device-1", false).await;
    let elsewhere = harness.session(&alice.id, "device-2", true).await;

    // Exactly what device-svc's outbox sends when a device is suspended.
    let outbox_request = pb::RevokeSessionsRequest {
        user_id: String::new(),
        device_id: "device-1".into(),
        device_authenticator_only: true,
        reason: pb::RevocationReason::DeviceSuspended.into(),
        idempotency_key: "0192f3a4-outbox-entry".into(),
    };
    let mut device_svc = harness.device_svc_sessions().await;
    let first = device_svc
        .revoke_sessions(outbox_request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.revoked_count, 2);

    for ended in [&alice_fastpass, &bob_fastpass] {
        let session = get(&harness, &ended.session.as_ref().unwrap().id).await;
        assert_eq!(status(&session), pb::SessionStatus::Revoked);
        assert_eq!(revocation_reason(&session), pb::RevocationReason::DeviceSuspended);
        assert_refused(
            validate(&harness, &ended.token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    for alive in [&alice_password, &elsewhere] {
        validate(&harness, &alive.token).await.unwrap();
    }
    let end = session_events(&harness, &alice_fastpass.session.as_ref().unwrap().id)
        .await
        .into_iter()
        .find(|e| e.event_type == "user.session.end")
        .unwrap();
    assert_eq!(end.details.get("reason").unwrap(), "DEVICE_SUSPENDED");
    assert!(end.actor.ends_with("/device-svc"), "{}", end.actor);

    // A retry with the same key ends nothing new, even a FastPass session started since.
    let later = harness.session(&alice.id, "device-1", true).await;
    let retry = device_svc
        .revoke_sessions(outbox_request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.revoked_count, 2, "the first call's count");
    validate(&harness, &later.token).await.unwrap();

    let next = device_svc
        .revoke_sessions(pb::RevokeSessionsRequest {
            idempotency_key: "0192f3a5-outbox-entry".into(),
            ..outbox_request
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.revoked_count, 1);
    assert_eq!(
        status_of(&harness, &later.session.unwrap().id).await,
        pb::SessionStatus::Revoked
    );
    validate(&harness, &alice_password.token).await.unwrap();
    validate(&harness, &elsewhere.token).await.unwrap();
}

#[tokio::test]
async fn revoking_by_user_ends_their_sessions_everywhere_or_on_one_device() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let bob = harness.user("bob").await;
    let on_one = harness.session(&alice.id, "device-1", true).await;
    let on_two = harness.session(&alice.id, "device-2", false).await;
    let nowhere = harness.session(&alice.id, "", false).await;
    let bobs = harness.session(&bob.id, "device-1", false).await;
    let mut operator = harness.operator_sessions().await;

    let one_device = operator
        .revoke_sessions(pb::RevokeSessionsRequest {
            user_id: alice.id.clone(),
            device_id: "device-1".into(),
            reason: pb::RevocationReason::Admin.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one_device.revoked_count, 1);
    assert_eq!(
        status_of(&harness, &on_one.session.as_ref().unwrap().id).await,
        pb::SessionStatus::Revoked
    );
    validate(&harness, &on_two.token).await.unwrap();

    let everywhere = pb::RevokeSessionsRequest {
        user_id: alice.id.clone(),
        reason: pb::RevocationReason::UserDeactivated.into(),
        idempotency_key: "offboard-alice".into(),
        ..Default::default()
    };
    let all = operator.revoke_sessions(everywhere.clone()).await.unwrap().into_inner();
    assert_eq!(all.revoked_count, 2);
    for ended in [&on_two, &nowhere] {
        assert_refused(
            validate(&harness, &ended.token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    validate(&harness, &bobs.token).await.unwrap();
    let again = operator.revoke_sessions(everywhere).await.unwrap().into_inner();
    assert_eq!(again.revoked_count, 2);

    assert_bad_field(
        operator
            .revoke_sessions(pb::RevokeSessionsRequest {
                reason: pb::RevocationReason::Admin.into(),
                ..Default::default()
            })
            .await,
        "user_id",
    );
    assert_bad_field(
        operator
            .revoke_sessions(pb::RevokeSessionsRequest {
                user_id: bob.id.clone(),
                device_authenticator_only: true,
                ..Default::default()
            })
            .await,
        "device_id",
    );
    let denied = harness
        .gateway_sessions()
        .await
        .revoke_sessions(pb::RevokeSessionsRequest {
            user_id: bob.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    validate(&harness, &bobs.token).await.unwrap();
}

#[tokio::test]
async fn an_authorization_code_is_redeemed_once_and_reuse_revokes_its_session() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let created = harness.session(&alice.id, "device-1", true).await;
    let session_id = created.session.as_ref().unwrap().id.clone();

    let before = now_micros();
    let issued = issue(&harness, &session_id).await;
    assert_eq!(issued.code.len(), 43);
    let lifetime = micros(&issued.expire_time) - before;
    assert!((55_000_000..=61_000_000).contains(&lifetime), "{lifetime} µs");
    let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM authorization_codes WHERE code_hash = $1")
        .bind(secret_hash(&issued.code))
        .fetch_one(&pool(&harness).await)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(stored, 1, "stored by its hash");

    let redeemed = redeem(&harness, redeem_request(&issued.code)).await.unwrap();
    assert_eq!(redeemed.session.unwrap().id, session_id);
    assert_eq!(redeemed.nonce, "n-0S6_WzA2Mj");
    assert_eq!(redeemed.scopes, ["openid", "profile"]);

    assert_refused(
        redeem(&harness, redeem_request(&issued.code)).await,
        Code::InvalidArgument,
        "INVALID_GRANT",
    );
    let session = get(&harness, &session_id).await;
    assert_eq!(status(&session), pb::SessionStatus::Revoked);
    assert_eq!(
        revocation_reason(&session),
        pb::RevocationReason::AuthorizationCodeReused
    );
    assert_refused(
        validate(&harness, &created.token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    let end = session_events(&harness, &session_id)
        .await
        .into_iter()
        .find(|e| e.event_type == "user.session.end")
        .unwrap();
    assert_eq!(end.details.get("reason").unwrap(), "AUTHORIZATION_CODE_REUSED");

    let mut watcher = harness.gateway_sessions().await;
    let mut feed = watcher
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let revocation = timeout(Duration::from_secs(2), feed.message())
        .await
        .expect("the feed reports the revocation")
        .unwrap()
        .unwrap();
    assert_eq!(revocation.session_id, session_id);
    assert_eq!(revocation.user_id, alice.id);
    assert_eq!(revocation.device_id, "device-1");
    assert_eq!(
        revocation.reason,
        i32::from(pb::RevocationReason::AuthorizationCodeReused)
    );
    assert!(
        timeout(Duration::from_millis(300), feed.message()).await.is_err(),
        "revoked once"
    );

    // Redeeming a third time fails the same way; a revoked session gets no new code.
    assert_refused(
        redeem(&harness, redeem_request(&issued.code)).await,
        Code::InvalidArgument,
        "INVALID_GRANT",
    );
    assert_refused(
        harness
            .gateway_sessions()
            .await
            .issue_authorization_code(issue_request(&session_id))
            .await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
}

#[tokio::test]
async fn a_code_is_refused_for_another_client_redirect_or_verifier_and_after_it_expires() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let session_id = harness.session(&alice.id, "", false).await.session.unwrap().id;

    let wrong: Vec<fn(&mut pb::RedeemAuthorizationCodeRequest)> = vec![
        |r| r.client_id = "other-client".into(),
        |r| r.redirect_uri = "https://portal.example.com/callback/".into(),
        |r| r.code_verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj".into(),
    ];
    for change in wrong {
        let code = issue(&harness, &session_id).await.code;
        let mut request = redeem_request(&code);
        change(&mut request);
        assert_refused(redeem(&harness, request).await, Code::InvalidArgument, "INVALID_GRANT");
        // A mismatched request does not spend the code: whoever holds a stolen code but not the
        // verifier can neither use it nor end the session by trying.
        redeem(&harness, redeem_request(&code))
            .await
            .expect("the rightful redemption still works");
    }
    assert_refused(
        redeem(&harness, redeem_request(&new_secret().unwrap())).await,
        Code::InvalidArgument,
        "INVALID_GRANT",
    );
    assert_eq!(status_of(&harness, &session_id).await, pb::SessionStatus::Active);

    let mut gateway = harness.gateway_sessions().await;
    assert_bad_field(
        gateway
            .issue_authorization_code(pb::IssueAuthorizationCodeRequest {
                code_challenge_method: "plain".into(),
                ..issue_request(&session_id)
            })
            .await,
        "code_challenge_method",
    );
    assert_bad_field(
        gateway
            .issue_authorization_code(pb::IssueAuthorizationCodeRequest {
                code_challenge: "short".into(),
                ..issue_request(&session_id)
            })
            .await,
        "code_challenge",
    );
    let code = issue(&harness, &session_id).await.code;
    assert_bad_field(
        redeem(
            &harness,
            pb::RedeemAuthorizationCodeRequest {
                code_verifier: "short".into(),
                ..redeem_request(&code)
            },
        )
        .await,
        "code_verifier",
    );

    let store = store(&harness).await;
    let expired = new_secret().unwrap();
    store
        .insert_code(
            &secret_hash(&expired),
            &AuthorizationCode {
                session_id: session_id.clone(),
                client_id: CLIENT.into(),
                redirect_uri: REDIRECT.into(),
                code_challenge: CHALLENGE.into(),
                code_challenge_method: "S256".into(),
                nonce: "n".into(),
                scopes: vec!["openid".into()],
                expires_at: now_micros() - 1_000_000,
            },
        )
        .await
        .unwrap();
    assert_refused(
        redeem(&harness, redeem_request(&expired)).await,
        Code::InvalidArgument,
        "INVALID_GRANT",
    );
    assert_eq!(status_of(&harness, &session_id).await, pb::SessionStatus::Active);

    let denied = harness
        .operator_sessions()
        .await
        .issue_authorization_code(issue_request(&session_id))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn sign_in_events_record_session_start_mfa_and_end_with_its_reason() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let fastpass = harness.session(&alice.id, "device-1", true).await.session.unwrap();
    let password = harness.session(&alice.id, "", false).await.session.unwrap();

    let started = session_events(&harness, &fastpass.id).await;
    let types: Vec<_> = started.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["user.session.start", "user.authentication.auth_via_mfa"]);
    let start = &started[0];
    assert_eq!(start.user_id, alice.id);
    assert_eq!(start.details.get("amr").unwrap(), "hwk user mfa");
    assert_eq!(start.details.get("device_id").unwrap(), "device-1");
    assert!(start.actor.ends_with("/gateway"), "{}", start.actor);
    assert!(start.create_time.is_some());

    let types: Vec<_> = session_events(&harness, &password.id)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["user.session.start"], "no MFA event without mfa in amr");

    revoke(&harness, &fastpass.id, pb::RevocationReason::Admin).await;
    let ended = events(
        &harness,
        format!("event_type = \"user.session.end\" AND user_id = \"{}\"", alice.id),
    )
    .await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].session_id, fastpass.id);
    assert_eq!(ended[0].details.get("reason").unwrap(), "ADMIN");
    assert!(ended[0].actor.contains("/operator/"), "{}", ended[0].actor);

    let denied = harness
        .gateway_sessions()
        .await
        .list_events(pb::ListEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_sweeper_removes_codes_a_minute_past_expiry_and_sessions_ended_before_retention() {
    let harness = Harness::start_with(&[("sweep_interval_ms", "200"), ("retention_hours", "1")]).await;
    let alice = harness.user("alice").await;
    let session_id = harness.session(&alice.id, "", false).await.session.unwrap().id;
    let store = store(&harness).await;
    let pool = pool(&harness).await;
    let code = |expires_at| AuthorizationCode {
        session_id: session_id.clone(),
        client_id: CLIENT.into(),
        redirect_uri: REDIRECT.into(),
        code_challenge: CHALLENGE.into(),
        code_challenge_method: "S256".into(),
        nonce: String::new(),
        scopes: vec![],
        expires_at,
    };
    let long_expired = secret_hash(&new_secret().unwrap());
    let just_expired = secret_hash(&new_secret().unwrap());
    store
        .insert_code(&long_expired, &code(now_micros() - 120_000_000))
        .await
        .unwrap();
    store
        .insert_code(&just_expired, &code(now_micros() - 10_000_000))
        .await
        .unwrap();
    let live = secret_hash(&issue(&harness, &session_id).await.code);

    // A session revoked two hours ago (backdated) goes; one revoked just now stays.
    let old = harness.session(&alice.id, "", false).await.session.unwrap().id;
    let recent = harness.session(&alice.id, "", false).await.session.unwrap().id;
    revoke(&harness, &old, pb::RevocationReason::Admin).await;
    revoke(&harness, &recent, pb::RevocationReason::Admin).await;
    sqlx::query("UPDATE sessions SET revoked_at = revoked_at - 7200000000 WHERE id = $1")
        .bind(&old)
        .execute(&pool)
        .await
        .unwrap();

    let codes = |hash: String| {
        let pool = pool.clone();
        async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM authorization_codes WHERE code_hash = $1")
                .bind(hash)
                .fetch_one(&pool)
                .await
                .unwrap();
            row.try_get::<i64, _>("n").unwrap()
        }
    };
    let sessions = |id: String| {
        let pool = pool.clone();
        async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            row.try_get::<i64, _>("n").unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    sleep(Duration::from_millis(500)).await;
    while codes(long_expired.clone()).await != 0 || sessions(old.clone()).await != 0 {
        assert!(Instant::now() < deadline, "the sweeper did not remove the expired rows");
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(codes(just_expired).await, 1, "kept until a minute past expiry");
    assert_eq!(codes(live).await, 1);
    assert_eq!(sessions(recent.clone()).await, 1);
    assert_eq!(sessions(session_id.clone()).await, 1);
    assert_eq!(status_of(&harness, &session_id).await, pb::SessionStatus::Active);
}

#[tokio::test]
async fn sessions_already_ended_by_their_idle_timeout_are_not_revoked_again() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let idle = create(
        &harness,
        pb::CreateSessionRequest {
            idle_timeout: seconds(1),
            ..request(&alice.id, "d1")
        },
    )
    .await
    .unwrap()
    .session
    .unwrap();
    sleep(Duration::from_millis(1_200)).await;
    let revoked = harness
        .operator_sessions()
        .await
        .revoke_sessions(pb::RevokeSessionsRequest {
            user_id: alice.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .revoked_count;
    assert_eq!(revoked, 0, "nothing live was ended");
    assert_eq!(status_of(&harness, &idle.id).await, pb::SessionStatus::Expired);
}

#[tokio::test]
async fn a_session_revoked_through_another_replica_stops_validating_here_within_the_feed_interval() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let created = harness.session(&alice.id, "d1", true).await;
    // A second replica over the same database.
    let config = session_svc::config::SessionConfig::from_settings(&harness.settings()).unwrap();
    let other = test_support::RunningService::start(|grpc, admin, shutdown| {
        session_svc::serve_on(config, grpc, admin, shutdown)
    })
    .await;
    let mut other_gateway = pb::session_service_client::SessionServiceClient::new(
        test_support::channel(other.addr, &harness.pki.service("gateway"))
            .await
            .unwrap(),
    );
    test_support::wait_until_ready(|| {
        let mut client = other_gateway.clone();
        let token = created.token.clone();
        async move { client.validate_session(pb::ValidateSessionRequest { token }).await }
    })
    .await;
    // Validated (and so cached) on the other replica; revoked on this one.
    revoke(
        &harness,
        &created.session.as_ref().unwrap().id,
        pb::RevocationReason::Admin,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let result = other_gateway
            .validate_session(pb::ValidateSessionRequest {
                token: created.token.clone(),
            })
            .await;
        match result {
            Err(status) if reason(&status) == "SESSION_REVOKED" => break,
            _ if Instant::now() < deadline => sleep(Duration::from_millis(20)).await,
            other => panic!("still valid on the other replica after 2 s: {other:?}"),
        }
    }
    other.stop().await;
}
