//! The directory over real mTLS: users (create, read, list, update, lifecycle, delete), groups and
//! memberships, field validation, unknown ids and who may call what.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{Harness, bad_field, reason};
use portcullis_proto::session::v1 as pb;
use portcullis_proto::session::v1::directory_service_client::DirectoryServiceClient;
use service_kit::identity::Role;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Directory = DirectoryServiceClient<Channel>;

fn create_request(login: &str, email: &str, display_name: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        login: login.into(),
        email: email.into(),
        display_name: display_name.into(),
        profile: HashMap::new(),
    }
}

async fn create(directory: &mut Directory, login: &str, email: &str, display_name: &str) -> pb::User {
    directory
        .create_user(create_request(login, email, display_name))
        .await
        .unwrap()
        .into_inner()
}

fn status(user: &pb::User) -> pb::UserStatus {
    pb::UserStatus::try_from(user.status).unwrap()
}

fn assert_refused(status: &Status, code: Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status), expected_reason, "{status:?}");
}

fn assert_invalid(status: &Status, field: &str) {
    assert_refused(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(bad_field(status), field, "{status:?}");
}

fn micros(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    let t = timestamp.expect("timestamp present");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

/// Microseconds since the epoch as RFC 3339 in UTC, with microseconds.
fn rfc3339(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

#[test]
fn rfc3339_formatting_of_the_tests_is_right() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(rfc3339(1_714_521_600_000_000 + 250_000), "2024-05-01T00:00:00.250000Z");
    assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
}

async fn viewer(harness: &Harness) -> Directory {
    harness.directory(&harness.operator_tls(Role::Viewer)).await
}

async fn operator(harness: &Harness) -> Directory {
    harness.directory(&harness.operator_tls(Role::Operator)).await
}

/// The event types recorded about `user_id`, oldest first.
async fn event_types(harness: &Harness, user_id: &str) -> Vec<String> {
    harness
        .sessions(&harness.operator_tls(Role::Viewer))
        .await
        .list_events(pb::ListEventsRequest {
            filter: format!("user_id = \"{user_id}\""),
            page_size: 200,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn list_page(
    directory: &mut Directory,
    filter: &str,
    search: &str,
    page_size: i32,
    token: &str,
) -> pb::ListUsersResponse {
    directory
        .list_users(pb::ListUsersRequest {
            page_size,
            page_token: token.into(),
            filter: filter.into(),
            search: search.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The logins a filter and search match, over every page, sorted.
async fn logins(directory: &mut Directory, filter: &str, search: &str) -> Vec<String> {
    let mut logins = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_page(directory, filter, search, 200, &token).await;
        logins.extend(page.users.into_iter().map(|u| u.login));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    logins.sort();
    logins
}

/// The ids of every user over pages of `page_size`, and the size of each page.
async fn walk(directory: &mut Directory, page_size: i32) -> (Vec<String>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_page(directory, "", "", page_size, &token).await;
        sizes.push(page.users.len());
        ids.extend(page.users.into_iter().map(|u| u.id));
        if page.next_page_token.is_empty() {
            return (ids, sizes);
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn a_created_user_is_active_and_is_found_by_id_or_by_login_in_any_case() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    let before = model_now();
    let created = admin
        .create_user(pb::CreateUserRequest {
            login: "Alice.Liddell".into(),
            email: "alice@example.com".into(),
            display_name: "Alice Liddell".into(),
            profile: HashMap::from([
                ("costCenter".to_owned(), "42".to_owned()),
                ("department".to_owned(), "Wonderland".to_owned()),
            ]),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!created.id.is_empty());
    assert_eq!(created.login, "Alice.Liddell", "the login is kept as entered");
    assert_eq!(created.email, "alice@example.com");
    assert_eq!(created.display_name, "Alice Liddell");
    assert_eq!(created.profile.get("costCenter").map(String::as_str), Some("42"));
    assert_eq!(created.profile.len(), 2);
    assert_eq!(status(&created), pb::UserStatus::Active);
    assert!(micros(created.create_time.as_ref()) >= before);
    assert!(created.last_login_time.is_none(), "never signed in");
    assert!(created.locked_until_time.is_none());
    assert!(!created.has_password);
    assert!(!created.has_totp);

    let mut viewer = viewer(&harness).await;
    let by_id = viewer
        .get_user(pb::GetUserRequest {
            user_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id, created);
    for login in ["Alice.Liddell", "alice.liddell", "ALICE.LIDDELL"] {
        let by_login = viewer
            .get_user(pb::GetUserRequest {
                login: login.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_login.id, created.id, "{login}");
    }
    let by_gateway = harness
        .gateway_directory()
        .await
        .get_user(pb::GetUserRequest {
            user_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_gateway.id, created.id);
    assert_eq!(event_types(&harness, &created.id).await, ["user.lifecycle.create"]);
}

fn model_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_micros()).unwrap()
}

#[tokio::test]
async fn logins_are_unique_without_regard_to_case() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    create(&mut admin, "Bob", "bob@example.com", "Bob").await;
    for login in ["Bob", "bob", "BOB"] {
        let err = admin
            .create_user(create_request(login, "other@example.com", "Other"))
            .await
            .unwrap_err();
        assert_refused(&err, Code::AlreadyExists, "LOGIN_TAKEN");
    }
    assert_eq!(logins(&mut viewer(&harness).await, "", "").await, ["Bob"]);
}

#[tokio::test]
async fn an_update_changes_only_the_fields_its_mask_names() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    let user = create(&mut admin, "carol", "carol@example.com", "Carol").await;
    let update = |mask: &[&str], email: &str, display_name: &str, profile: &[(&str, &str)]| pb::UpdateUserRequest {
        user_id: user.id.clone(),
        email: email.into(),
        display_name: display_name.into(),
        profile: profile
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        update_mask: mask.iter().map(|p| (*p).to_owned()).collect(),
    };

    let changed = admin
        .update_user(update(
            &["profile"],
            "ignored@example.com",
            "Ignored",
            &[("team", "blue")],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.profile, HashMap::from([("team".to_owned(), "blue".to_owned())]));
    assert_eq!(changed.email, "carol@example.com", "email is not in the mask");
    assert_eq!(changed.display_name, "Carol", "display_name is not in the mask");
    assert!(micros(changed.update_time.as_ref()) >= micros(user.update_time.as_ref()));

    let changed = admin
        .update_user(update(&["display_name"], "", "Carol Danvers", &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.display_name, "Carol Danvers");
    assert_eq!(changed.email, "carol@example.com");
    assert_eq!(
        changed.profile.get("team").map(String::as_str),
        Some("blue"),
        "profile is not in the mask"
    );

    let changed = admin
        .update_user(update(&[], "carol@corp.example", "C. Danvers", &[("floor", "3")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.email, "carol@corp.example", "an empty mask changes all three");
    assert_eq!(changed.display_name, "C. Danvers");
    assert_eq!(changed.profile, HashMap::from([("floor".to_owned(), "3".to_owned())]));
    assert_eq!(changed.login, "carol", "the login never changes");

    let err = admin.update_user(update(&["login"], "", "", &[])).await.unwrap_err();
    assert_invalid(&err, "update_mask");
    let err = admin
        .update_user(update(&["email"], "not-an-email", "", &[]))
        .await
        .unwrap_err();
    assert_invalid(&err, "email");

    let stored = viewer(&harness)
        .await
        .get_user(pb::GetUserRequest {
            user_id: user.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored, changed, "refused updates change nothing");
    assert_eq!(
        event_types(&harness, &user.id).await,
        [
            "user.lifecycle.create",
            "user.account.update_profile",
            "user.account.update_profile",
            "user.account.update_profile"
        ]
    );
}

#[tokio::test]
async fn users_are_listed_by_status_and_times_and_searched_by_prefix() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    let alice = create(&mut admin, "alice", "alice@example.com", "Alice Adams").await;
    let bob = create(&mut admin, "bob", "robert@corp.example", "Bob Brown").await;
    let carol = create(&mut admin, "c_100%", "carol@example.com", "Carol Clark").await;
    let between = model_now();
    let dave = create(&mut admin, "dave", "dave@example.com", "Dave Dunn").await;
    let mut operator = operator(&harness).await;
    operator
        .suspend_user(pb::SuspendUserRequest {
            user_id: bob.id.clone(),
        })
        .await
        .unwrap();
    operator
        .deactivate_user(pb::DeactivateUserRequest {
            user_id: carol.id.clone(),
        })
        .await
        .unwrap();
    admin
        .set_password(pb::SetPasswordRequest {
            user_id: dave.id.clone(),
            password: "correct horse battery".into(),
        })
        .await
        .unwrap();
    let before_login = model_now();
    let signed_in = harness
        .gateway_directory()
        .await
        .verify_password(pb::VerifyPasswordRequest {
            login: "dave".into(),
            password: "correct horse battery".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(micros(signed_in.last_login_time.as_ref()) >= before_login);

    let mut viewer = viewer(&harness).await;
    assert_eq!(logins(&mut viewer, "", "").await, ["alice", "bob", "c_100%", "dave"]);
    assert_eq!(logins(&mut viewer, "status = ACTIVE", "").await, ["alice", "dave"]);
    assert_eq!(logins(&mut viewer, "status = \"suspended\"", "").await, ["bob"]);
    assert_eq!(logins(&mut viewer, "status = DEPROVISIONED", "").await, ["c_100%"]);
    assert_eq!(logins(&mut viewer, "status != ACTIVE", "").await, ["bob", "c_100%"]);
    let after = format!("create_time > \"{}\"", rfc3339(between));
    assert_eq!(logins(&mut viewer, &after, "").await, ["dave"]);
    let before = format!("create_time <= \"{}\"", rfc3339(between));
    assert_eq!(logins(&mut viewer, &before, "").await, ["alice", "bob", "c_100%"]);
    let logged_in = format!("last_login_time >= \"{}\"", rfc3339(before_login));
    assert_eq!(logins(&mut viewer, &logged_in, "").await, ["dave"]);
    assert_eq!(
        logins(&mut viewer, "last_login_time > \"1970-01-01T00:00:00Z\"", "").await,
        ["dave"],
        "users who never signed in match no last_login_time comparison"
    );
    assert_eq!(
        logins(&mut viewer, "status = ACTIVE OR status = SUSPENDED", "").await,
        ["alice", "bob", "dave"]
    );

    // Search: a prefix of the login, the email or the display name, without regard to case.
    assert_eq!(logins(&mut viewer, "", "ali").await, ["alice"], "login prefix");
    assert_eq!(logins(&mut viewer, "", "ALI").await, ["alice"], "any case");
    assert_eq!(logins(&mut viewer, "", "rob").await, ["bob"], "email prefix");
    assert_eq!(
        logins(&mut viewer, "", "carol cl").await,
        ["c_100%"],
        "display name prefix"
    );
    assert_eq!(logins(&mut viewer, "", "d").await, ["dave"]);
    assert!(
        logins(&mut viewer, "", "lice").await.is_empty(),
        "a prefix, not a substring"
    );
    assert!(logins(&mut viewer, "", "example.com").await.is_empty());
    assert_eq!(
        logins(&mut viewer, "", "c_").await,
        ["c_100%"],
        "wildcards match themselves"
    );
    assert!(logins(&mut viewer, "", "_").await.is_empty(), "_ is not a wildcard");
    assert!(logins(&mut viewer, "", "%").await.is_empty(), "% is not a wildcard");
    assert_eq!(logins(&mut viewer, "", "c_100%").await, ["c_100%"]);
    assert_eq!(
        logins(&mut viewer, "status = ACTIVE", "a").await,
        ["alice"],
        "filter and search combine"
    );
    assert!(logins(&mut viewer, "status = SUSPENDED", "a").await.is_empty());
    assert_eq!(alice.login, "alice");
}

#[tokio::test]
async fn users_are_listed_twenty_at_a_time_by_default_and_at_most_two_hundred() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    for n in 0..205 {
        create(
            &mut admin,
            &format!("user{n:03}"),
            &format!("user{n:03}@example.com"),
            "",
        )
        .await;
    }
    let mut viewer = viewer(&harness).await;
    let (all, sizes) = walk(&mut viewer, 0).await;
    assert_eq!(sizes, [20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 5]);
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 205, "every user exactly once");

    for requested in [200, 201, 500, i32::MAX] {
        let (ids, sizes) = walk(&mut viewer, requested).await;
        assert_eq!(sizes, [200, 5], "page_size {requested}");
        assert_eq!(ids, all);
    }
    let (ids, sizes) = walk(&mut viewer, 41).await;
    assert_eq!(sizes, [41, 41, 41, 41, 41]);
    assert_eq!(ids, all);
    let exact = list_page(&mut viewer, "", "", 205, "").await;
    assert_eq!(exact.users.len(), 200, "205 is served as 200");
}

#[tokio::test]
async fn page_tokens_are_opaque_bound_to_their_query_and_tamper_evident() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    for n in 0..5 {
        create(&mut admin, &format!("tok{n}"), &format!("tok{n}@example.com"), "").await;
    }
    let mut viewer = viewer(&harness).await;
    let first = list_page(&mut viewer, "status = ACTIVE", "", 2, "").await;
    assert_eq!(first.users.len(), 2);
    let token = first.next_page_token.clone();
    assert!(!token.is_empty());
    assert!(
        !token.contains(&first.users[1].id),
        "the token does not show the cursor"
    );
    let second = list_page(&mut viewer, "status = ACTIVE", "", 2, &token).await;
    assert_eq!(second.users.len(), 2);
    assert_ne!(second.users[0].id, first.users[1].id);

    let request = |filter: &str, search: &str, token: &str| pb::ListUsersRequest {
        page_size: 2,
        page_token: token.into(),
        filter: filter.into(),
        search: search.into(),
    };
    let err = viewer.list_users(request("", "", &token)).await.unwrap_err();
    assert_invalid(&err, "page_token");
    let err = viewer
        .list_users(request("status = ACTIVE", "tok", &token))
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
    let mut tampered = token.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let err = viewer
        .list_users(request("status = ACTIVE", "", &tampered))
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
    let err = viewer
        .list_users(request("status = ACTIVE", "", "not a token"))
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
}

#[tokio::test]
async fn the_lifecycle_moves_between_statuses_and_refuses_illegal_steps() {
    let harness = Harness::start().await;
    let user = harness.user("dana").await;
    let id = || user.id.clone();
    let mut operator = operator(&harness).await;
    let mut admin = harness.admin_directory().await;
    let illegal = |status: &Status| assert_refused(status, Code::FailedPrecondition, "ILLEGAL_USER_STATUS");

    let u = operator
        .suspend_user(pb::SuspendUserRequest { user_id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&u), pb::UserStatus::Suspended);
    let u = operator
        .suspend_user(pb::SuspendUserRequest { user_id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status(&u),
        pb::UserStatus::Suspended,
        "suspending again changes nothing"
    );
    illegal(
        &operator
            .activate_user(pb::ActivateUserRequest { user_id: id() })
            .await
            .unwrap_err(),
    );
    illegal(
        &admin
            .delete_user(pb::DeleteUserRequest { user_id: id() })
            .await
            .unwrap_err(),
    );
    let u = operator
        .unsuspend_user(pb::UnsuspendUserRequest { user_id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&u), pb::UserStatus::Active);
    illegal(
        &admin
            .delete_user(pb::DeleteUserRequest { user_id: id() })
            .await
            .unwrap_err(),
    );

    let u = operator
        .deactivate_user(pb::DeactivateUserRequest { user_id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&u), pb::UserStatus::Deprovisioned);
    illegal(
        &operator
            .suspend_user(pb::SuspendUserRequest { user_id: id() })
            .await
            .unwrap_err(),
    );
    illegal(
        &operator
            .unsuspend_user(pb::UnsuspendUserRequest { user_id: id() })
            .await
            .unwrap_err(),
    );
    let u = operator
        .activate_user(pb::ActivateUserRequest { user_id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&u), pb::UserStatus::Active);

    operator
        .suspend_user(pb::SuspendUserRequest { user_id: id() })
        .await
        .unwrap();
    let u = operator
        .deactivate_user(pb::DeactivateUserRequest { user_id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status(&u),
        pb::UserStatus::Deprovisioned,
        "a suspended user can be deactivated"
    );
    let u = operator
        .deactivate_user(pb::DeactivateUserRequest { user_id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status(&u),
        pb::UserStatus::Deprovisioned,
        "deactivating again changes nothing"
    );

    admin
        .delete_user(pb::DeleteUserRequest { user_id: id() })
        .await
        .unwrap();
    let err = viewer(&harness)
        .await
        .get_user(pb::GetUserRequest {
            user_id: id(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refused(&err, Code::NotFound, "USER_NOT_FOUND");
    let err = admin
        .delete_user(pb::DeleteUserRequest { user_id: id() })
        .await
        .unwrap_err();
    assert_refused(&err, Code::NotFound, "USER_NOT_FOUND");

    assert_eq!(
        event_types(&harness, &user.id).await,
        [
            "user.lifecycle.create",
            "user.lifecycle.suspend",
            "user.lifecycle.unsuspend",
            "user.lifecycle.deactivate",
            "user.lifecycle.activate",
            "user.lifecycle.suspend",
            "user.lifecycle.deactivate",
            "user.lifecycle.delete",
        ]
    );
    let again = harness.user("dana").await;
    assert_ne!(again.id, user.id, "a deleted user's login is free again");
}

#[tokio::test]
async fn deactivating_a_user_ends_all_of_their_sessions_and_only_theirs() {
    let harness = Harness::start().await;
    let erin = harness.user("erin").await;
    let frank = harness.user("frank").await;
    let fastpass = harness.session(&erin.id, "device-1", true).await;
    let password = harness.session(&erin.id, "", false).await;
    let other = harness.session(&frank.id, "device-2", true).await;

    let mut sessions = harness.operator_sessions().await;
    let live = |user_id: &str, include_ended: bool| pb::ListSessionsRequest {
        user_id: user_id.into(),
        include_ended,
        ..Default::default()
    };
    assert_eq!(
        sessions
            .list_sessions(live(&erin.id, false))
            .await
            .unwrap()
            .into_inner()
            .sessions
            .len(),
        2
    );

    let u = operator(&harness)
        .await
        .deactivate_user(pb::DeactivateUserRequest {
            user_id: erin.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&u), pb::UserStatus::Deprovisioned);

    assert!(
        sessions
            .list_sessions(live(&erin.id, false))
            .await
            .unwrap()
            .into_inner()
            .sessions
            .is_empty()
    );
    let ended = sessions
        .list_sessions(live(&erin.id, true))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(ended.len(), 2);
    let mut gateway = harness.gateway_sessions().await;
    for created in [&fastpass, &password] {
        let id = created.session.as_ref().unwrap().id.clone();
        let session = gateway
            .get_session(pb::GetSessionRequest { session_id: id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(session.status, pb::SessionStatus::Revoked as i32);
        assert_eq!(session.revocation_reason, pb::RevocationReason::UserDeactivated as i32);
        assert!(session.revoke_time.is_some());
        let err = gateway
            .validate_session(pb::ValidateSessionRequest {
                token: created.token.clone(),
            })
            .await
            .unwrap_err();
        assert_refused(&err, Code::Unauthenticated, "SESSION_REVOKED");
    }

    let untouched = gateway
        .validate_session(pb::ValidateSessionRequest {
            token: other.token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        untouched.status,
        pb::SessionStatus::Active as i32,
        "another user's session lives on"
    );

    let err = gateway
        .create_session(pb::CreateSessionRequest {
            user_id: erin.id.clone(),
            amr: vec!["pwd".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refused(&err, Code::PermissionDenied, "USER_NOT_ACTIVE");
    let events = event_types(&harness, &erin.id).await;
    assert_eq!(
        events.iter().filter(|e| *e == "user.session.end").count(),
        2,
        "{events:?}"
    );
}

#[tokio::test]
async fn group_names_are_unique_without_regard_to_case() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    let group = admin
        .create_group(pb::CreateGroupRequest {
            name: "Engineering".into(),
            description: "Builds things".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!group.id.is_empty());
    assert_eq!(group.name, "Engineering");
    assert_eq!(group.description, "Builds things");
    assert!(group.create_time.is_some());
    for name in ["Engineering", "engineering", "ENGINEERING"] {
        let err = admin
            .create_group(pb::CreateGroupRequest {
                name: name.into(),
                description: String::new(),
            })
            .await
            .unwrap_err();
        assert_refused(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
    }
    let mut viewer = viewer(&harness).await;
    let read = viewer
        .get_group(pb::GetGroupRequest {
            group_id: group.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, group);
    let listed = viewer
        .list_groups(pb::ListGroupsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.groups, std::slice::from_ref(&group));
    assert!(listed.next_page_token.is_empty());

    admin
        .delete_group(pb::DeleteGroupRequest {
            group_id: group.id.clone(),
        })
        .await
        .unwrap();
    let err = viewer
        .get_group(pb::GetGroupRequest {
            group_id: group.id.clone(),
        })
        .await
        .unwrap_err();
    assert_refused(&err, Code::NotFound, "GROUP_NOT_FOUND");
    let again = admin
        .create_group(pb::CreateGroupRequest {
            name: "engineering".into(),
            description: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(again.id, group.id, "a deleted group's name is free again");
}

async fn group(admin: &mut Directory, name: &str) -> pb::Group {
    admin
        .create_group(pb::CreateGroupRequest {
            name: name.into(),
            description: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn membership(group: &pb::Group, user: &pb::User) -> (String, String) {
    (group.id.clone(), user.id.clone())
}

async fn add(admin: &mut Directory, (group_id, user_id): (String, String)) -> Result<(), Status> {
    admin
        .add_group_member(pb::AddGroupMemberRequest { group_id, user_id })
        .await
        .map(|_| ())
}

async fn remove(admin: &mut Directory, (group_id, user_id): (String, String)) -> Result<(), Status> {
    admin
        .remove_group_member(pb::RemoveGroupMemberRequest { group_id, user_id })
        .await
        .map(|_| ())
}

async fn group_names(directory: &mut Directory, user_id: &str) -> Vec<String> {
    directory
        .list_user_groups(pb::ListUserGroupsRequest {
            user_id: user_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect()
}

async fn member_logins(directory: &mut Directory, group_id: &str) -> Vec<String> {
    let page = directory
        .list_group_members(pb::ListGroupMembersRequest {
            group_id: group_id.into(),
            page_size: 200,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.next_page_token.is_empty());
    page.users.into_iter().map(|u| u.login).collect()
}

#[tokio::test]
async fn adding_a_member_is_idempotent_and_removing_a_non_member_is_not_found() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    let gina = harness.user("gina").await;
    let hank = harness.user("hank").await;
    let sales = group(&mut admin, "Sales").await;
    let admins = group(&mut admin, "Admins").await;

    add(&mut admin, membership(&sales, &gina)).await.unwrap();
    add(&mut admin, membership(&sales, &gina)).await.unwrap();
    add(&mut admin, membership(&admins, &gina)).await.unwrap();
    let mut viewer = viewer(&harness).await;
    assert_eq!(
        group_names(&mut viewer, &gina.id).await,
        ["Admins", "Sales"],
        "by name, once each"
    );
    assert_eq!(
        group_names(&mut harness.gateway_directory().await, &gina.id).await,
        ["Admins", "Sales"],
        "the gateway reads groups for policy"
    );
    assert!(group_names(&mut viewer, &hank.id).await.is_empty());
    assert_eq!(member_logins(&mut viewer, &sales.id).await, ["gina"]);

    remove(&mut admin, membership(&sales, &gina)).await.unwrap();
    assert_eq!(group_names(&mut viewer, &gina.id).await, ["Admins"]);
    assert!(member_logins(&mut viewer, &sales.id).await.is_empty());
    let err = remove(&mut admin, membership(&sales, &gina)).await.unwrap_err();
    assert_refused(&err, Code::NotFound, "MEMBERSHIP_NOT_FOUND");
    let err = remove(&mut admin, membership(&admins, &hank)).await.unwrap_err();
    assert_refused(&err, Code::NotFound, "MEMBERSHIP_NOT_FOUND");

    let events = event_types(&harness, &gina.id).await;
    assert_eq!(
        events,
        [
            "user.lifecycle.create",
            "group.user_membership.add",
            "group.user_membership.add",
            "group.user_membership.remove"
        ],
        "adding again records nothing"
    );
}

#[tokio::test]
async fn a_groups_members_are_listed_a_page_at_a_time() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    let team = group(&mut admin, "Team").await;
    let other = group(&mut admin, "Other").await;
    let mut expected = Vec::new();
    for n in 0..25 {
        let user = create(
            &mut admin,
            &format!("member{n:02}"),
            &format!("member{n:02}@example.com"),
            "",
        )
        .await;
        add(&mut admin, membership(&team, &user)).await.unwrap();
        expected.push(user.login);
    }
    let outsider = create(&mut admin, "outsider", "outsider@example.com", "").await;
    add(&mut admin, membership(&other, &outsider)).await.unwrap();

    let mut viewer = viewer(&harness).await;
    let page = |page_size: i32, page_token: &str| pb::ListGroupMembersRequest {
        group_id: team.id.clone(),
        page_size,
        page_token: page_token.into(),
    };
    for (page_size, expected_sizes) in [(0, vec![20, 5]), (10, vec![10, 10, 5]), (25, vec![25]), (500, vec![25])] {
        let mut sizes = Vec::new();
        let mut listed = Vec::new();
        let mut token = String::new();
        loop {
            let response = viewer
                .list_group_members(page(page_size, &token))
                .await
                .unwrap()
                .into_inner();
            sizes.push(response.users.len());
            listed.extend(response.users.into_iter().map(|u| u.login));
            if response.next_page_token.is_empty() {
                break;
            }
            token = response.next_page_token;
        }
        assert_eq!(sizes, expected_sizes, "page_size {page_size}");
        listed.sort();
        assert_eq!(listed, expected, "page_size {page_size}");
    }

    let first = viewer.list_group_members(page(10, "")).await.unwrap().into_inner();
    let err = viewer
        .list_group_members(pb::ListGroupMembersRequest {
            group_id: other.id.clone(),
            page_size: 10,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
    let err = viewer.list_group_members(page(-1, "")).await.unwrap_err();
    assert_invalid(&err, "page_size");
}

#[tokio::test]
async fn deleting_a_group_or_a_user_removes_their_memberships() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    let ivy = harness.user("ivy").await;
    let jack = harness.user("jack").await;
    let red = group(&mut admin, "Red").await;
    let blue = group(&mut admin, "Blue").await;
    for m in [
        membership(&red, &ivy),
        membership(&blue, &ivy),
        membership(&blue, &jack),
    ] {
        add(&mut admin, m).await.unwrap();
    }
    admin
        .delete_group(pb::DeleteGroupRequest {
            group_id: red.id.clone(),
        })
        .await
        .unwrap();
    let mut viewer = viewer(&harness).await;
    assert_eq!(group_names(&mut viewer, &ivy.id).await, ["Blue"]);

    operator(&harness)
        .await
        .deactivate_user(pb::DeactivateUserRequest {
            user_id: ivy.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        member_logins(&mut viewer, &blue.id).await,
        ["ivy", "jack"],
        "a deactivated user stays a member"
    );
    admin
        .delete_user(pb::DeleteUserRequest {
            user_id: ivy.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(member_logins(&mut viewer, &blue.id).await, ["jack"]);
}

#[tokio::test]
async fn every_invalid_field_is_named_in_a_bad_request() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    let user = harness.user("kim").await;

    let invalid_users = [
        (create_request("has space", "a@example.com", ""), "login"),
        (create_request("", "a@example.com", ""), "login"),
        (create_request(&"l".repeat(101), "a@example.com", ""), "login"),
        (create_request("ok", "not-an-email", ""), "email"),
        (create_request("ok", "a@example", ""), "email"),
        (create_request("ok", "", ""), "email"),
        (create_request("ok", "a@example.com", &"d".repeat(256)), "display_name"),
        (create_request("ok", "a@example.com", "bell\u{7}"), "display_name"),
        (
            pb::CreateUserRequest {
                profile: HashMap::from([("1st".to_owned(), "x".to_owned())]),
                ..create_request("ok", "a@example.com", "")
            },
            "profile.1st",
        ),
        (
            pb::CreateUserRequest {
                profile: HashMap::from([("cost-center".to_owned(), "x".to_owned())]),
                ..create_request("ok", "a@example.com", "")
            },
            "profile.cost-center",
        ),
    ];
    for (request, field) in invalid_users {
        let err = admin.create_user(request).await.unwrap_err();
        assert_invalid(&err, field);
    }
    let display_name_at_limit = admin
        .create_user(create_request("ok", "ok@example.com", &"d".repeat(255)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(display_name_at_limit.display_name.chars().count(), 255);

    let err = admin
        .set_password(pb::SetPasswordRequest {
            user_id: user.id.clone(),
            password: "seven77".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "password");
    let err = admin
        .update_user(pb::UpdateUserRequest {
            user_id: user.id.clone(),
            profile: HashMap::from([("1st".to_owned(), "x".to_owned())]),
            update_mask: vec!["profile".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "profile.1st");

    let mut viewer = viewer(&harness).await;
    let list = |page_size: i32, filter: &str| pb::ListUsersRequest {
        page_size,
        filter: filter.into(),
        ..Default::default()
    };
    assert_invalid(&viewer.list_users(list(-1, "")).await.unwrap_err(), "page_size");
    for filter in [
        "status = PENDING",
        "login = kim",
        "status =",
        "create_time > yesterday",
        "(status = ACTIVE",
        "status = ACTIVE AND",
    ] {
        let err = viewer.list_users(list(0, filter)).await.unwrap_err();
        assert_invalid(&err, "filter");
    }
    let err = viewer
        .list_groups(pb::ListGroupsRequest {
            page_size: -5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_size");
    for request in [
        pb::GetUserRequest::default(),
        pb::GetUserRequest {
            user_id: user.id.clone(),
            login: "kim".into(),
        },
    ] {
        let err = viewer.get_user(request).await.unwrap_err();
        assert_invalid(&err, "user_id");
    }
    let err = admin
        .create_group(pb::CreateGroupRequest {
            name: String::new(),
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "name");
    let err = admin
        .create_group(pb::CreateGroupRequest {
            name: "x".into(),
            description: "d".repeat(1025),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "description");
    let err = admin
        .add_group_member(pb::AddGroupMemberRequest {
            group_id: String::new(),
            user_id: user.id.clone(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "group_id");

    assert_eq!(
        logins(&mut viewer, "", "").await,
        ["kim", "ok"],
        "no refused request created anything"
    );
}

#[tokio::test]
async fn unknown_ids_are_not_found_with_the_specific_reason() {
    let harness = Harness::start().await;
    let mut admin = harness.admin_directory().await;
    let mut operator = operator(&harness).await;
    let mut viewer = viewer(&harness).await;
    let known_user = harness.user("lee").await;
    let known_group = group(&mut admin, "Known").await;
    let missing = "0190f1c2d3e4f5a6b7c8d9e0f1a2b3c4".to_owned();
    let user_not_found = |result: Result<(), Status>, what: &str| {
        let err = result.expect_err(what);
        assert_eq!(err.code(), Code::NotFound, "{what}: {err:?}");
        assert_eq!(reason(&err), "USER_NOT_FOUND", "{what}: {err:?}");
    };
    let group_not_found = |result: Result<(), Status>, what: &str| {
        let err = result.expect_err(what);
        assert_eq!(err.code(), Code::NotFound, "{what}: {err:?}");
        assert_eq!(reason(&err), "GROUP_NOT_FOUND", "{what}: {err:?}");
    };
    let id = || missing.clone();

    user_not_found(
        viewer
            .get_user(pb::GetUserRequest {
                user_id: id(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        "GetUser by id",
    );
    user_not_found(
        viewer
            .get_user(pb::GetUserRequest {
                login: "nobody".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        "GetUser by login",
    );
    user_not_found(
        admin
            .update_user(pb::UpdateUserRequest {
                user_id: id(),
                email: "a@example.com".into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        "UpdateUser",
    );
    user_not_found(
        operator
            .suspend_user(pb::SuspendUserRequest { user_id: id() })
            .await
            .map(|_| ()),
        "SuspendUser",
    );
    user_not_found(
        operator
            .unsuspend_user(pb::UnsuspendUserRequest { user_id: id() })
            .await
            .map(|_| ()),
        "UnsuspendUser",
    );
    user_not_found(
        operator
            .deactivate_user(pb::DeactivateUserRequest { user_id: id() })
            .await
            .map(|_| ()),
        "DeactivateUser",
    );
    user_not_found(
        operator
            .activate_user(pb::ActivateUserRequest { user_id: id() })
            .await
            .map(|_| ()),
        "ActivateUser",
    );
    user_not_found(
        admin
            .delete_user(pb::DeleteUserRequest { user_id: id() })
            .await
            .map(|_| ()),
        "DeleteUser",
    );
    user_not_found(
        viewer
            .list_user_groups(pb::ListUserGroupsRequest { user_id: id() })
            .await
            .map(|_| ()),
        "ListUserGroups",
    );
    user_not_found(
        admin
            .set_password(pb::SetPasswordRequest {
                user_id: id(),
                password: "long enough".into(),
            })
            .await
            .map(|_| ()),
        "SetPassword",
    );
    user_not_found(
        admin
            .enroll_totp(pb::EnrollTotpRequest { user_id: id() })
            .await
            .map(|_| ()),
        "EnrollTotp",
    );
    user_not_found(
        add(&mut admin, (known_group.id.clone(), id())).await,
        "AddGroupMember with an unknown user",
    );

    group_not_found(
        viewer
            .get_group(pb::GetGroupRequest { group_id: id() })
            .await
            .map(|_| ()),
        "GetGroup",
    );
    group_not_found(
        admin
            .delete_group(pb::DeleteGroupRequest { group_id: id() })
            .await
            .map(|_| ()),
        "DeleteGroup",
    );
    group_not_found(
        viewer
            .list_group_members(pb::ListGroupMembersRequest {
                group_id: id(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        "ListGroupMembers",
    );
    group_not_found(
        add(&mut admin, (id(), known_user.id.clone())).await,
        "AddGroupMember with an unknown group",
    );
}

#[tokio::test]
async fn viewers_read_but_only_admins_create_users_and_manage_groups() {
    let harness = Harness::start().await;
    let user = harness.user("mia").await;
    let denied = |status: Status| assert_refused(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    let mut viewer = viewer(&harness).await;
    let mut operator = operator(&harness).await;
    let mut gateway = harness.gateway_directory().await;
    let mut device_svc = harness.directory(&harness.pki.service("device-svc")).await;

    denied(
        viewer
            .create_user(create_request("nope", "nope@example.com", ""))
            .await
            .unwrap_err(),
    );
    denied(
        operator
            .create_user(create_request("nope", "nope@example.com", ""))
            .await
            .unwrap_err(),
    );
    denied(
        gateway
            .create_user(create_request("nope", "nope@example.com", ""))
            .await
            .unwrap_err(),
    );
    denied(
        device_svc
            .create_user(create_request("nope", "nope@example.com", ""))
            .await
            .unwrap_err(),
    );
    denied(
        viewer
            .suspend_user(pb::SuspendUserRequest {
                user_id: user.id.clone(),
            })
            .await
            .unwrap_err(),
    );
    denied(
        operator
            .delete_user(pb::DeleteUserRequest {
                user_id: user.id.clone(),
            })
            .await
            .unwrap_err(),
    );
    denied(
        operator
            .create_group(pb::CreateGroupRequest {
                name: "g".into(),
                description: String::new(),
            })
            .await
            .unwrap_err(),
    );
    denied(
        operator
            .set_password(pb::SetPasswordRequest {
                user_id: user.id.clone(),
                password: "long enough".into(),
            })
            .await
            .unwrap_err(),
    );
    denied(gateway.list_users(pb::ListUsersRequest::default()).await.unwrap_err());

    assert_eq!(logins(&mut viewer, "", "").await, ["mia"], "viewers list users");
    let u = operator
        .suspend_user(pb::SuspendUserRequest {
            user_id: user.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&u), pb::UserStatus::Suspended, "operators run the lifecycle");
}

#[tokio::test]
async fn removing_a_member_names_what_is_missing() {
    let harness = Harness::start().await;
    let alice = harness.user("alice").await;
    let mut admin = harness.admin_directory().await;
    let group = admin
        .create_group(pb::CreateGroupRequest {
            name: "Engineering".into(),
            description: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let remove = |group_id: &str, user_id: &str| pb::RemoveGroupMemberRequest {
        group_id: group_id.into(),
        user_id: user_id.into(),
    };
    let err = admin
        .remove_group_member(remove("no-such-group", &alice.id))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "GROUP_NOT_FOUND");
    let err = admin
        .remove_group_member(remove(&group.id, "no-such-user"))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "USER_NOT_FOUND");
    let err = admin
        .remove_group_member(remove(&group.id, &alice.id))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "MEMBERSHIP_NOT_FOUND");
}
