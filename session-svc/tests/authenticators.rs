//! Passwords (argon2id, decoy work for unknown users, lockout and its end) and TOTP (RFC 6238 with
//! replay protection, seeds sealed at rest) over real mTLS, as the gateway uses them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, bad_field, reason};
use portcullis_proto::session::v1 as pb;
use portcullis_proto::session::v1::directory_service_client::DirectoryServiceClient;
use service_kit::identity::Role;
use session_svc::totp::{code_at_step, step_at};
use sqlx::Row;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Directory = DirectoryServiceClient<Channel>;

const PASSWORD: &str = "correct horse battery staple";

fn assert_refused(status: &Status, code: Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status), expected_reason, "{status:?}");
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

fn now_micros() -> i64 {
    i64::try_from(unix_now().as_micros()).unwrap()
}

fn micros(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    let t = timestamp.expect("timestamp present");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

/// The current TOTP step, as the service computes it.
fn current_step() -> i64 {
    step_at(i64::try_from(unix_now().as_secs()).unwrap())
}

/// Waits, when the current 30 s step ends within 6 s, for the next one to begin, so that the codes
/// a test computes keep their place relative to the service's clock while the test runs.
async fn away_from_a_step_boundary() {
    let into_step = unix_now().as_millis() % 30_000;
    if into_step > 24_000 {
        tokio::time::sleep(Duration::from_millis(u64::try_from(30_000 - into_step).unwrap() + 100)).await;
    }
}

/// RFC 4648 base32 (upper case, no padding), as in `secret=`.
fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text:?}"),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(buffer >> bits).unwrap());
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn the_tests_base32_decoder_follows_rfc_4648() {
    for (encoded, decoded) in [
        ("", ""),
        ("MY", "f"),
        ("MZXQ", "fo"),
        ("MZXW6", "foo"),
        ("MZXW6YQ", "foob"),
        ("MZXW6YTB", "fooba"),
        ("MZXW6YTBOI", "foobar"),
    ] {
        assert_eq!(base32_decode(encoded), decoded.as_bytes(), "{encoded}");
    }
}

/// The seed in an `otpauth://` URI's `secret=` parameter.
fn seed_of(uri: &str) -> Vec<u8> {
    let (_, query) = uri.split_once('?').expect("a query");
    let secret = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("secret="))
        .expect("a secret parameter");
    base32_decode(secret)
}

async fn viewer_events(harness: &Harness, user_id: &str) -> Vec<pb::Event> {
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
}

async fn event_types(harness: &Harness, user_id: &str) -> Vec<String> {
    viewer_events(harness, user_id)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn get_user(harness: &Harness, user_id: &str) -> pb::User {
    harness
        .directory(&harness.operator_tls(Role::Viewer))
        .await
        .get_user(pb::GetUserRequest {
            user_id: user_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn set_password(harness: &Harness, user_id: &str, password: &str) {
    harness
        .admin_directory()
        .await
        .set_password(pb::SetPasswordRequest {
            user_id: user_id.into(),
            password: password.into(),
        })
        .await
        .unwrap();
}

async fn verify_password(gateway: &mut Directory, login: &str, password: &str) -> Result<pb::User, Status> {
    gateway
        .verify_password(pb::VerifyPasswordRequest {
            login: login.into(),
            password: password.into(),
        })
        .await
        .map(|r| r.into_inner().user.expect("the user"))
}

async fn verify_totp(gateway: &mut Directory, user_id: &str, code: &str) -> Result<(), Status> {
    gateway
        .verify_totp(pb::VerifyTotpRequest {
            user_id: user_id.into(),
            code: code.into(),
        })
        .await
        .map(|_| ())
}

/// Enrolls TOTP for `user_id` as an admin; the URI and the seed in it.
async fn enroll(harness: &Harness, user_id: &str) -> (String, Vec<u8>) {
    let uri = harness
        .admin_directory()
        .await
        .enroll_totp(pb::EnrollTotpRequest {
            user_id: user_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .otpauth_uri;
    let seed = seed_of(&uri);
    (uri, seed)
}

/// A column of a user's row, read straight from the database.
async fn stored_column<T>(harness: &Harness, user_id: &str, column: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&harness.db.url).await.unwrap();
    let row = sqlx::query(&format!("SELECT {column} FROM users WHERE id = $1"))
        .bind(user_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let value = row.try_get::<T, _>(column).unwrap();
    pool.close().await;
    value
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

// ----- passwords -----

#[tokio::test]
async fn a_password_is_stored_only_as_an_argon2id_hash_and_never_returned() {
    let harness = Harness::start().await;
    let user = harness.user("alice").await;
    assert!(!user.has_password);
    set_password(&harness, &user.id, PASSWORD).await;
    let stored = get_user(&harness, &user.id).await;
    assert!(stored.has_password);
    assert!(!format!("{stored:?}").contains("argon2"), "no hash in the user");

    let hash: String = stored_column(&harness, &user.id, "password_hash").await;
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(!hash.contains(PASSWORD));

    let before = now_micros();
    let mut gateway = harness.gateway_directory().await;
    let signed_in = verify_password(&mut gateway, "alice", PASSWORD).await.unwrap();
    assert_eq!(signed_in.id, user.id);
    assert!(!format!("{signed_in:?}").contains("argon2"));
    let last_login = micros(signed_in.last_login_time.as_ref());
    assert!(last_login >= before, "a successful verify sets last_login_time");
    assert_eq!(
        micros(get_user(&harness, &user.id).await.last_login_time.as_ref()),
        last_login
    );
    let by_other_case = verify_password(&mut gateway, "ALICE", PASSWORD).await.unwrap();
    assert_eq!(by_other_case.id, user.id, "logins match without regard to case");

    set_password(&harness, &user.id, "a new password").await;
    let new_hash: String = stored_column(&harness, &user.id, "password_hash").await;
    assert_ne!(new_hash, hash);
    let err = verify_password(&mut gateway, "alice", PASSWORD).await.unwrap_err();
    assert_refused(&err, Code::Unauthenticated, "INVALID_CREDENTIALS");
    verify_password(&mut gateway, "alice", "a new password").await.unwrap();
    let events = event_types(&harness, &user.id).await;
    assert_eq!(
        events.iter().filter(|e| *e == "user.account.update_password").count(),
        2,
        "{events:?}"
    );
}

#[tokio::test]
async fn passwords_must_be_8_to_256_characters() {
    let harness = Harness::start().await;
    let user = harness.user("bob").await;
    let mut admin = harness.admin_directory().await;
    for password in ["", "seven77", "x".repeat(257).as_str()] {
        let err = admin
            .set_password(pb::SetPasswordRequest {
                user_id: user.id.clone(),
                password: password.into(),
            })
            .await
            .unwrap_err();
        assert_refused(&err, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(bad_field(&err), "password");
    }
    assert!(!get_user(&harness, &user.id).await.has_password);
    let mut gateway = harness.gateway_directory().await;
    for password in ["eight888", "ü".repeat(256).as_str()] {
        set_password(&harness, &user.id, password).await;
        verify_password(&mut gateway, "bob", password).await.unwrap();
    }
}

#[tokio::test]
async fn a_wrong_password_an_unknown_login_and_no_password_are_all_invalid_credentials() {
    let harness = Harness::start().await;
    let with_password = harness.user("carol").await;
    harness.user("dave").await;
    set_password(&harness, &with_password.id, PASSWORD).await;
    let mut gateway = harness.gateway_directory().await;
    for (login, password, what) in [
        ("carol", "wrong password", "a wrong password"),
        ("carol", "", "an empty password"),
        ("nobody", PASSWORD, "an unknown login"),
        ("dave", PASSWORD, "a user without a password"),
        ("dave", "", "a user without a password and an empty one"),
    ] {
        let err = verify_password(&mut gateway, login, password).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
        assert_eq!(reason(&err), "INVALID_CREDENTIALS", "{what}: {err:?}");
        assert_eq!(
            err.message(),
            "invalid login or password",
            "{what}: the answer does not say which"
        );
    }
    assert!(get_user(&harness, &with_password.id).await.last_login_time.is_none());
}

/// How long a failing verification of `login` takes.
async fn timed_failure(gateway: &mut Directory, login: &str) -> Duration {
    let started = Instant::now();
    let err = verify_password(gateway, login, "not the password").await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(reason(&err), "INVALID_CREDENTIALS", "{login}: {err:?}");
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn verifying_takes_about_as_long_whether_or_not_the_user_exists() {
    let harness = Harness::start_with(&[("lockout_threshold", "1000")]).await;
    let user = harness.user("erin").await;
    harness.user("frank").await;
    set_password(&harness, &user.id, PASSWORD).await;
    let mut gateway = harness.gateway_directory().await;
    verify_password(&mut gateway, "erin", PASSWORD).await.unwrap();

    let (mut known, mut unknown, mut no_password) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        known.push(timed_failure(&mut gateway, "erin").await);
        unknown.push(timed_failure(&mut gateway, "ghost").await);
        no_password.push(timed_failure(&mut gateway, "frank").await);
    }
    let (known, unknown, no_password) = (median(known), median(unknown), median(no_password));
    for (what, took) in [("known", known), ("unknown", unknown), ("no password", no_password)] {
        assert!(
            took >= Duration::from_millis(5),
            "{what}: {took:?} is too fast for argon2id"
        );
    }
    for (what, took) in [("unknown", unknown), ("no password", no_password)] {
        let (slower, faster) = if took > known { (took, known) } else { (known, took) };
        assert!(
            slower < faster * 5,
            "{what} took {took:?} against {known:?} for a known user's wrong password"
        );
    }
}

const LOCKOUT: &[(&str, &str)] = &[
    ("lockout_threshold", "3"),
    ("lockout_duration_secs", "1"),
    ("sweep_interval_ms", "200"),
];

#[tokio::test]
async fn three_failures_lock_the_account_until_the_lock_runs_out() {
    let harness = Harness::start_with(LOCKOUT).await;
    let user = harness.user("gina").await;
    set_password(&harness, &user.id, PASSWORD).await;
    let mut gateway = harness.gateway_directory().await;

    for attempt in 1..=2 {
        let err = verify_password(&mut gateway, "gina", "wrong password")
            .await
            .unwrap_err();
        assert_refused(&err, Code::Unauthenticated, "INVALID_CREDENTIALS");
        assert!(
            get_user(&harness, &user.id).await.locked_until_time.is_none(),
            "attempt {attempt}"
        );
    }
    let err = verify_password(&mut gateway, "gina", "wrong password")
        .await
        .unwrap_err();
    let locked_at = Instant::now();
    assert_refused(&err, Code::PermissionDenied, "LOCKED_OUT");
    let err = verify_password(&mut gateway, "gina", PASSWORD).await.unwrap_err();
    assert_refused(&err, Code::PermissionDenied, "LOCKED_OUT");
    let err = verify_password(&mut gateway, "GINA", "wrong password")
        .await
        .unwrap_err();
    assert_refused(&err, Code::PermissionDenied, "LOCKED_OUT");
    let locked = get_user(&harness, &user.id).await;
    assert!(
        micros(locked.locked_until_time.as_ref()) > now_micros(),
        "the lock shows until it ends"
    );

    let events = viewer_events(&harness, &user.id).await;
    let lock = events
        .iter()
        .find(|e| e.event_type == "user.account.lock")
        .expect("a lock event");
    assert_eq!(lock.details.get("failed_attempts").map(String::as_str), Some("3"));
    assert_eq!(lock.actor, "spiffe://portcullis.local/svc/gateway");

    // The correct password works again once the lock has run out (1 s), and not before.
    let signed_in = loop {
        match verify_password(&mut gateway, "gina", PASSWORD).await {
            Ok(user) => break user,
            Err(err) => {
                assert_refused(&err, Code::PermissionDenied, "LOCKED_OUT");
                assert!(locked_at.elapsed() < Duration::from_secs(5), "the lock did not end");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(
        locked_at.elapsed() >= Duration::from_millis(900),
        "the lock lasted its second"
    );
    assert!(signed_in.last_login_time.is_some());
    assert!(signed_in.locked_until_time.is_none());

    // The sweeper records the end of the lock.
    let unlocked_at = Instant::now();
    let types = loop {
        let types = event_types(&harness, &user.id).await;
        if types.iter().any(|t| t == "user.account.unlock") {
            break types;
        }
        assert!(
            unlocked_at.elapsed() < Duration::from_secs(5),
            "no unlock event: {types:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lock_position = types.iter().position(|t| t == "user.account.lock").unwrap();
    let unlock_position = types.iter().position(|t| t == "user.account.unlock").unwrap();
    assert!(lock_position < unlock_position, "{types:?}");
    assert_eq!(
        types.iter().filter(|t| *t == "user.account.lock").count(),
        1,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "user.account.unlock").count(),
        1,
        "{types:?}"
    );
    let unlock = viewer_events(&harness, &user.id)
        .await
        .into_iter()
        .find(|e| e.event_type == "user.account.unlock")
        .unwrap();
    assert_eq!(unlock.actor, "system");

    // Failures count from zero again after a lock.
    for _ in 1..=2 {
        let err = verify_password(&mut gateway, "gina", "wrong password")
            .await
            .unwrap_err();
        assert_refused(&err, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    verify_password(&mut gateway, "gina", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn a_correct_password_resets_the_count_of_consecutive_failures() {
    let harness = Harness::start_with(LOCKOUT).await;
    let user = harness.user("hank").await;
    set_password(&harness, &user.id, PASSWORD).await;
    let mut gateway = harness.gateway_directory().await;
    for round in 0..2 {
        for _ in 0..2 {
            let err = verify_password(&mut gateway, "hank", "wrong password")
                .await
                .unwrap_err();
            assert_refused(&err, Code::Unauthenticated, "INVALID_CREDENTIALS");
        }
        verify_password(&mut gateway, "hank", PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
    }
    assert!(
        !event_types(&harness, &user.id)
            .await
            .iter()
            .any(|t| t == "user.account.lock")
    );
}

#[tokio::test]
async fn suspended_and_deactivated_users_with_the_right_password_are_not_active() {
    let harness = Harness::start().await;
    let user = harness.user("ivy").await;
    set_password(&harness, &user.id, PASSWORD).await;
    let mut operator = harness.directory(&harness.operator_tls(Role::Operator)).await;
    let mut gateway = harness.gateway_directory().await;

    operator
        .suspend_user(pb::SuspendUserRequest {
            user_id: user.id.clone(),
        })
        .await
        .unwrap();
    let err = verify_password(&mut gateway, "ivy", PASSWORD).await.unwrap_err();
    assert_refused(&err, Code::PermissionDenied, "USER_NOT_ACTIVE");
    let err = verify_password(&mut gateway, "ivy", "wrong password")
        .await
        .unwrap_err();
    assert_refused(&err, Code::Unauthenticated, "INVALID_CREDENTIALS");

    operator
        .deactivate_user(pb::DeactivateUserRequest {
            user_id: user.id.clone(),
        })
        .await
        .unwrap();
    let err = verify_password(&mut gateway, "ivy", PASSWORD).await.unwrap_err();
    assert_refused(&err, Code::PermissionDenied, "USER_NOT_ACTIVE");
    assert!(
        get_user(&harness, &user.id).await.last_login_time.is_none(),
        "no refused sign-in counts"
    );

    operator
        .activate_user(pb::ActivateUserRequest {
            user_id: user.id.clone(),
        })
        .await
        .unwrap();
    let user = verify_password(&mut gateway, "ivy", PASSWORD).await.unwrap();
    assert!(user.last_login_time.is_some());
}

#[tokio::test]
async fn only_the_gateway_may_verify_passwords_and_totp_codes() {
    let harness = Harness::start().await;
    let user = harness.user("jack").await;
    set_password(&harness, &user.id, PASSWORD).await;
    let denied = |status: Status| assert_refused(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    for tls in [
        harness.operator_tls(Role::Admin),
        harness.operator_tls(Role::Operator),
        harness.operator_tls(Role::Viewer),
        harness.pki.service("device-svc"),
    ] {
        let mut directory = harness.directory(&tls).await;
        denied(verify_password(&mut directory, "jack", PASSWORD).await.unwrap_err());
        denied(verify_totp(&mut directory, &user.id, "123456").await.unwrap_err());
    }
    for role in [Role::Viewer, Role::Operator] {
        let mut directory = harness.directory(&harness.operator_tls(role)).await;
        denied(
            directory
                .enroll_totp(pb::EnrollTotpRequest {
                    user_id: user.id.clone(),
                })
                .await
                .unwrap_err(),
        );
    }
    assert!(!get_user(&harness, &user.id).await.has_totp);
    verify_password(&mut harness.gateway_directory().await, "jack", PASSWORD)
        .await
        .unwrap();
}

// ----- TOTP -----

#[tokio::test]
async fn enrollment_returns_the_otpauth_uri_and_a_current_code_verifies() {
    let harness = Harness::start().await;
    let user = harness.user("kim").await;
    let mut gateway = harness.gateway_directory().await;
    let err = verify_totp(&mut gateway, &user.id, "123456").await.unwrap_err();
    assert_refused(&err, Code::FailedPrecondition, "TOTP_NOT_ENROLLED");

    let (uri, seed) = enroll(&harness, &user.id).await;
    assert!(uri.starts_with("otpauth://totp/Portcullis:kim?secret="), "{uri}");
    for parameter in ["issuer=Portcullis", "algorithm=SHA1", "digits=6", "period=30"] {
        assert!(uri.split(['?', '&']).any(|p| p == parameter), "{parameter} in {uri}");
    }
    assert_eq!(seed.len(), 20, "a 160-bit seed");
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let stored = get_user(&harness, &user.id).await;
    assert!(stored.has_totp);
    assert!(
        !format!("{stored:?}").contains(&secret),
        "the secret is shown only once"
    );

    away_from_a_step_boundary().await;
    verify_totp(&mut gateway, &user.id, &code_at_step(&seed, current_step()))
        .await
        .unwrap();
    assert!(
        event_types(&harness, &user.id)
            .await
            .iter()
            .any(|t| t == "user.mfa.factor.activate")
    );

    // The gateway enrolls too (first sign-in), the seed being a fresh one.
    let uri = harness
        .gateway_directory()
        .await
        .enroll_totp(pb::EnrollTotpRequest {
            user_id: user.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .otpauth_uri;
    assert_ne!(seed_of(&uri), seed);
}

#[tokio::test]
async fn a_code_is_accepted_once_and_an_earlier_step_only_if_no_later_one_was_used() {
    let harness = Harness::start().await;
    let first = harness.user("lee").await;
    let second = harness.user("mia").await;
    let (_, first_seed) = enroll(&harness, &first.id).await;
    let (_, second_seed) = enroll(&harness, &second.id).await;
    let mut gateway = harness.gateway_directory().await;
    let replayed = |result: Result<(), Status>| {
        assert_refused(&result.unwrap_err(), Code::Unauthenticated, "TOTP_REPLAYED");
    };

    away_from_a_step_boundary().await;
    let step = current_step();
    // The previous step's code is accepted while no later step was used, then the current one.
    verify_totp(&mut gateway, &first.id, &code_at_step(&first_seed, step - 1))
        .await
        .unwrap();
    verify_totp(&mut gateway, &first.id, &code_at_step(&first_seed, step))
        .await
        .unwrap();
    replayed(verify_totp(&mut gateway, &first.id, &code_at_step(&first_seed, step)).await);
    replayed(verify_totp(&mut gateway, &first.id, &code_at_step(&first_seed, step - 1)).await);

    // Once the current step is used, the previous step's code is refused though never used.
    verify_totp(&mut gateway, &second.id, &code_at_step(&second_seed, step))
        .await
        .unwrap();
    replayed(verify_totp(&mut gateway, &second.id, &code_at_step(&second_seed, step - 1)).await);
    // One step ahead is within the drift accepted; after it, the current step is spent too.
    verify_totp(&mut gateway, &second.id, &code_at_step(&second_seed, step + 1))
        .await
        .unwrap();
    replayed(verify_totp(&mut gateway, &second.id, &code_at_step(&second_seed, step)).await);
    replayed(verify_totp(&mut gateway, &second.id, &code_at_step(&second_seed, step + 1)).await);
    assert_eq!(step, current_step(), "the test ran within one step");
}

#[tokio::test]
async fn wrong_codes_are_invalid_and_do_not_spend_the_step() {
    let harness = Harness::start().await;
    let user = harness.user("nina").await;
    let (_, seed) = enroll(&harness, &user.id).await;
    let mut gateway = harness.gateway_directory().await;

    away_from_a_step_boundary().await;
    let step = current_step();
    let near: Vec<String> = (step - 1..=step + 1).map(|s| code_at_step(&seed, s)).collect();
    let wrong = (0..)
        .map(|n| format!("{n:06}"))
        .find(|candidate| !near.contains(candidate))
        .unwrap();
    let too_old = code_at_step(&seed, step - 2);
    let too_new = code_at_step(&seed, step + 2);
    let mut bad = vec![
        wrong,
        "12345".to_owned(),
        "1234567".to_owned(),
        "abcdef".to_owned(),
        String::new(),
    ];
    bad.extend([too_old, too_new].into_iter().filter(|c| !near.contains(c)));
    for code in &bad {
        let err = verify_totp(&mut gateway, &user.id, code).await.unwrap_err();
        assert_refused(&err, Code::Unauthenticated, "INVALID_TOTP");
    }
    verify_totp(&mut gateway, &user.id, &code_at_step(&seed, step))
        .await
        .unwrap();

    let err = verify_totp(&mut gateway, "0190f1c2d3e4f5a6b7c8d9e0f1a2b3c4", "123456")
        .await
        .unwrap_err();
    assert_refused(&err, Code::NotFound, "USER_NOT_FOUND");
}

#[tokio::test]
async fn totp_seeds_are_encrypted_at_rest() {
    let harness = Harness::start().await;
    let user = harness.user("omar").await;
    let none: Option<Vec<u8>> = stored_column(&harness, &user.id, "totp_seed").await;
    assert!(none.is_none(), "nothing stored before enrollment");
    let (uri, seed) = enroll(&harness, &user.id).await;
    let sealed: Vec<u8> = stored_column(&harness, &user.id, "totp_seed").await;
    assert!(!contains(&sealed, &seed), "the raw seed is not stored");
    assert!(!contains(&sealed, &seed[..8]), "no part of the raw seed is stored");
    let secret = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
    assert!(!contains(&sealed, secret.as_bytes()), "nor its base32");
    assert_eq!(sealed.len(), 12 + seed.len() + 16, "AES-GCM: nonce, ciphertext, tag");

    // Enrolling again seals a new seed under a new nonce.
    let (_, new_seed) = enroll(&harness, &user.id).await;
    let resealed: Vec<u8> = stored_column(&harness, &user.id, "totp_seed").await;
    assert_ne!(resealed, sealed);
    assert!(!contains(&resealed, &new_seed));
}

#[tokio::test]
async fn enrolling_again_replaces_the_seed() {
    let harness = Harness::start().await;
    let user = harness.user("pia").await;
    let (_, old_seed) = enroll(&harness, &user.id).await;
    let mut gateway = harness.gateway_directory().await;
    away_from_a_step_boundary().await;
    let step = current_step();
    verify_totp(&mut gateway, &user.id, &code_at_step(&old_seed, step - 1))
        .await
        .unwrap();

    let (_, new_seed) = enroll(&harness, &user.id).await;
    assert_ne!(new_seed, old_seed);
    let old_code = code_at_step(&old_seed, step);
    if (step - 1..=step + 1).all(|s| code_at_step(&new_seed, s) != old_code) {
        let err = verify_totp(&mut gateway, &user.id, &old_code).await.unwrap_err();
        assert_refused(&err, Code::Unauthenticated, "INVALID_TOTP");
    }
    verify_totp(&mut gateway, &user.id, &code_at_step(&new_seed, step))
        .await
        .unwrap();
    let activations = event_types(&harness, &user.id)
        .await
        .into_iter()
        .filter(|t| t == "user.mfa.factor.activate")
        .count();
    assert_eq!(activations, 2);
}
