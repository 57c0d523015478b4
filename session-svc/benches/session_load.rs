//! Load generator for session-svc: throughput and latency of session validation, session
//! creation, the revocation feed and password verification over real mTLS gRPC, against a store
//! seeded with a realistic population of live sessions.
//!
//! ```text
//! cargo bench -p session-svc --bench session_load -- [--sessions N] [--backend postgres|sqlite] [--seconds S]
//! ```
//!
//! Defaults: 1,000,000 sessions, PostgreSQL, 10 s per phase. With PostgreSQL a fresh database is
//! created on the server at `PORTCULLIS_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust auth) and dropped at the end; SQLite uses
//! a file in a temp dir that is removed at the end. Quick check: `--sessions 20000 --seconds 3`.
//! `PORTCULLIS_BENCH_DB_CONNECTIONS` sets the service's database connections (default: the
//! service's own default).
//!
//! What it does:
//! 1. starts session-svc in-process on `127.0.0.1:0` with real mTLS (a throwaway test PKI),
//!    which runs the migrations;
//! 2. seeds N live sessions straight into `sessions` through SQL (500-row INSERTs, 20,000 rows per
//!    transaction): synthetic users (N/2 ids), 60% on a device (half of those FastPass), created
//!    over the last 20 hours with the service's defaults (2 h idle, 24 h lifetime), tokens made
//!    deterministically from the row number and stored as `tokens::secret_hash`; a sample of up to
//!    100,000 tokens is kept in memory. The sampled sessions' last activity is then set to now (so
//!    the timed validations measure the read path; the idle refresh writes at most once a minute
//!    per session, and the phase reports how many it made), then `ANALYZE` (SQLite) or
//!    `VACUUM (ANALYZE)` (PostgreSQL), and the service is restarted so every pooled connection
//!    plans with the fresh statistics;
//! 3. runs each phase with 16 client tasks (one mTLS channel each) for S seconds, timing every
//!    call: `ValidateSession` of sampled tokens (gateway certificate), first while most are
//!    validated for the first time (cold cache), then, after every sampled session has been
//!    validated once, the same draw again (the steady state of a gateway whose users' sessions
//!    are the sample), with two diagnostics beside
//!    it (a malformed token, refused before any database access: gRPC + mTLS alone; and the
//!    store lookup without gRPC); `CreateSession` for users made through `CreateUser`;
//!    revocation latency: one `WatchRevocations` watcher (from now) while 300 distinct seeded
//!    sessions are revoked one by one a few ms apart, timed from each `RevokeSession` response to
//!    the matching revocation reaching the watcher; `VerifyPassword` with the service's argon2id
//!    parameters, with 16 callers and with as many callers as the hashing pool has permits;
//! 4. prints, per phase, requests/s and latency percentiles, and a Markdown summary table with
//!    the issue's targets met or missed.
//!
//! This is a load generator that prints figures, not a criterion benchmark: client and server
//! share the machine, so the figures are for the whole round trip on this host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use test_support::bench::{
    Args, Backend, BenchDatabase, Latencies, PhaseResult, Step, drive, load_average, nproc,
    parse_args as parse_args_with, percentile_ms, report, usage_error,
};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_proto::session::v1 as pb;
use portcullis_proto::session::v1::directory_service_client::DirectoryServiceClient;
use portcullis_proto::session::v1::session_service_client::SessionServiceClient;
use service_kit::config::Settings;
use service_kit::identity::Role;
use service_kit::shutdown::Shutdown;
use service_kit::tls::TlsMaterial;
use session_svc::config::SessionConfig;
use session_svc::tokens::secret_hash;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, Executor as _, Row as _};
use test_support::{TestPki, channel};
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Client tasks per phase.
const CONCURRENCY: usize = 16;
/// Database connections of the service under test: `PORTCULLIS_BENCH_DB_CONNECTIONS`, or the
/// service's own default.
fn db_connections() -> u32 {
    std::env::var("PORTCULLIS_BENCH_DB_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(session_svc::config::DEFAULT_DATABASE_CONNECTIONS)
}
/// The service's `password_hash_concurrency` (its default).
const HASH_PERMITS: usize = 2;
/// Rows per seeding INSERT.
const SEED_BATCH: usize = 500;
/// Sessions per seeding transaction.
const SEED_TX_ROWS: usize = 20_000;
/// Tokens kept in memory to validate.
const SAMPLE: usize = 100_000;
/// Users created through `CreateUser` for `CreateSession`.
const API_USERS: usize = 300;
/// Of those, users given a password for `VerifyPassword`.
const PASSWORD_USERS: usize = 32;
/// Sessions revoked one by one while a watcher follows the feed.
const REVOCATIONS: usize = 300;
/// Pause between two revocations.
const REVOKE_GAP: Duration = Duration::from_millis(5);
/// A 32-byte TOTP key, base64 (TOTP is not exercised).
const TOTP_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Target: `ValidateSession` calls per second.
const VALIDATE_RATE_TARGET: f64 = 20_000.0;
/// Target: p99 of `ValidateSession`, in ms.
const VALIDATE_P99_TARGET_MS: f64 = 5.0;
/// Target: p99 from a `RevokeSession` response to the watcher receiving it, in ms.
const REVOCATION_P99_TARGET_MS: f64 = 100.0;

const MINUTE_US: i64 = 60 * 1_000_000;
const HOUR_US: i64 = 60 * MINUTE_US;
/// The service's defaults for a session: two hours idle, a day at most.
const IDLE_US: i64 = 2 * HOUR_US;
const LIFETIME_US: i64 = 24 * HOUR_US;

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE: &str = concat!(
    "usage: cargo bench -p session-svc --bench session_load -- ",
    "[--sessions N] [--backend postgres|sqlite] [--seconds S]"
);

fn parse_args() -> Args {
    let args = parse_args_with(
        "sessions",
        Args {
            count: 1_000_000,
            backend: Backend::Postgres,
            seconds: 10,
        },
        USAGE,
    );
    if args.count < 2 * REVOCATIONS || args.seconds == 0 {
        usage_error(
            USAGE,
            &format!("--sessions must be at least {} and --seconds positive", 2 * REVOCATIONS),
        );
    }
    args
}

// ---------------------------------------------------------------------------------------------
// Environment

fn now_micros() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The service

struct Service {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), session_svc::RunError>>,
}

impl Service {
    /// Starts session-svc on `127.0.0.1:0`.
    async fn start(pki: &TestPki, database_url: &str) -> Self {
        let files = pki.service_files("session-svc");
        let mut settings = Settings::default();
        settings
            .set("tls_ca", files.ca.display().to_string())
            .set("tls_cert", files.cert.display().to_string())
            .set("tls_key", files.key.display().to_string())
            .set("database_url", database_url)
            .set("database_max_connections", db_connections().to_string())
            .set("password_hash_concurrency", HASH_PERMITS.to_string())
            .set("request_timeout_ms", "60000")
            .set("totp_encryption_key", TOTP_KEY)
            .set("page_token_secret", "bench-page-token-secret");
        let config = SessionConfig::from_settings(&settings).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(session_svc::serve_on(
            config,
            listener,
            admin_listener,
            shutdown.clone(),
        ));
        let service = Self { addr, shutdown, task };
        // Ready when a call gets through (migrations run before serving).
        let tls = pki.operator("bench-ready", Role::Viewer);
        for _ in 0..800 {
            if let Ok(channel) = channel(addr, &tls).await {
                let request = pb::ListGroupsRequest {
                    page_size: 1,
                    ..Default::default()
                };
                if DirectoryServiceClient::new(channel).list_groups(request).await.is_ok() {
                    return service;
                }
            }
            assert!(!service.task.is_finished(), "session-svc stopped while starting");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("session-svc did not become ready");
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap();
    }
}

async fn channels(addr: SocketAddr, tls: &TlsMaterial, count: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(channel(addr, tls).await.unwrap());
    }
    channels
}

// ---------------------------------------------------------------------------------------------
// Seeding

/// A deterministic pseudo-random number for `(i, salt)` (SplitMix64).
fn mix(i: u64, salt: u64) -> u64 {
    let mut z = i
        .wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The token of seeded session `i`: 32 bytes from `i`, base64url, the shape `tokens` makes.
fn seeded_token(i: usize) -> String {
    let mut bytes = [0u8; 32];
    for (k, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(i as u64, 1000 + k as u64).to_be_bytes());
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The id of seeded session `i` created at `created_at` (µs): time-ordered, 32 hex digits like
/// the service's uuid v7 ids.
fn seeded_id(created_at: i64, i: usize) -> String {
    format!("{:012x}{:020x}", created_at / 1000, i)
}

/// A value for a seeding INSERT.
enum Val {
    Text(String),
    Int(i64),
}

impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::Text(s)
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::Text(s.to_owned())
    }
}

impl From<i64> for Val {
    fn from(n: i64) -> Self {
        Val::Int(n)
    }
}

const SESSION_COLUMNS: &[&str] = &[
    "id",
    "token_hash",
    "user_id",
    "device_id",
    "amr",
    "device_authenticator",
    "created_at",
    "last_active_at",
    "idle_timeout_us",
    "expires_at",
    "revocation_reason",
    "client_ip",
    "user_agent",
];

/// `VALUES` placeholders for `rows` rows of `width` columns.
fn placeholders(backend: Backend, rows: usize, width: usize) -> String {
    let mut sql = String::new();
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                // Anonymous: SQLite looks `$n` names up by walking a list, once per bound value,
                // which makes a 6,500-value statement quadratic.
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(r * width + c + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

async fn insert_rows(conn: &mut AnyConnection, backend: Backend, rows: &[Vec<Val>]) {
    let sql = format!(
        "INSERT INTO sessions ({}) VALUES {}",
        SESSION_COLUMNS.join(", "),
        placeholders(backend, rows.len(), SESSION_COLUMNS.len())
    );
    let mut query = sqlx::query(&sql);
    for value in rows.iter().flatten() {
        query = match value {
            Val::Text(s) => query.bind(s.as_str()),
            Val::Int(n) => query.bind(*n),
        };
    }
    query.execute(&mut *conn).await.expect("insert into sessions");
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "PortcullisVerify/3.4 (macOS 14.5; MacBookPro18,3)",
];

/// A seeded session the benchmark knows the token of.
struct Sampled {
    token: String,
    id: String,
}

struct Seeded {
    rows: usize,
    /// Sessions whose tokens are kept, for `ValidateSession`.
    sample: Vec<Sampled>,
    /// Other live sessions, to revoke.
    to_revoke: Vec<String>,
    insert: Duration,
    analyze: Duration,
    bytes: u64,
}

/// Seeds `n` live sessions into `sessions`.
async fn seed(db: &BenchDatabase, n: usize) -> Seeded {
    let backend = db.backend;
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                match backend {
                    // The seeding connection only: bulk-load settings.
                    Backend::Sqlite => {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = OFF; \
                             PRAGMA cache_size = -524288; PRAGMA temp_store = MEMORY;",
                        )
                        .await?;
                    }
                    Backend::Postgres => {
                        conn.execute("SET synchronous_commit = off").await?;
                    }
                }
                Ok(())
            })
        })
        .connect(&db.url)
        .await
        .unwrap();
    let now = now_micros();
    // Sessions made over the last 20 hours (a day's lifetime: all still live), active within
    // the last hour (two hours idle: none idle-expired).
    let span = 20 * HOUR_US;
    let users = (n / 2).max(1) as u64;
    let devices = (n / 3).max(1) as u64;
    let stride = n.div_ceil(SAMPLE).max(1);
    let mut sample = Vec::with_capacity(n / stride + 1);
    let mut to_revoke = Vec::with_capacity(REVOCATIONS);
    let began = Instant::now();
    let mut inserted = 0;
    let mut next_report = n / 10;
    let mut rows: Vec<Vec<Val>> = Vec::with_capacity(SEED_BATCH);
    for tx_start in (0..n).step_by(SEED_TX_ROWS) {
        let mut tx = pool.begin().await.unwrap();
        for i in tx_start..(tx_start + SEED_TX_ROWS).min(n) {
            let seed = i as u64;
            let created_at = now - span + i64::try_from(i as u128 * span as u128 / n as u128).unwrap();
            let id = seeded_id(created_at, i);
            let token = seeded_token(i);
            let since = now - created_at;
            let last_active_at =
                now - i64::try_from(mix(seed, 1) % u64::try_from(since.min(HOUR_US)).unwrap().max(1)).unwrap();
            let (device_id, fastpass) = match mix(seed, 2) % 10 {
                0..3 => (format!("device-{:08}", mix(seed, 3) % devices), true),
                3..6 => (format!("device-{:08}", mix(seed, 3) % devices), false),
                _ => (String::new(), false),
            };
            let amr = if fastpass {
                "hwk user mfa"
            } else if mix(seed, 4).is_multiple_of(2) {
                "pwd otp mfa"
            } else {
                "pwd"
            };
            let ip = mix(seed, 5);
            rows.push(vec![
                id.as_str().into(),
                secret_hash(&token).into(),
                format!("user-{:08}", mix(seed, 6) % users).into(),
                device_id.into(),
                amr.into(),
                i64::from(fastpass).into(),
                created_at.into(),
                last_active_at.into(),
                IDLE_US.into(),
                (created_at + LIFETIME_US).into(),
                "".into(),
                format!("198.51.{}.{}", (ip >> 8) % 256, ip % 256).into(),
                USER_AGENTS[usize::try_from(mix(seed, 7) % USER_AGENTS.len() as u64).unwrap()].into(),
            ]);
            if i % stride == 0 {
                sample.push(Sampled { token, id });
            } else if i % stride == stride / 2 && to_revoke.len() < REVOCATIONS && mix(seed, 8).is_multiple_of(4) {
                to_revoke.push(id);
            }
            if rows.len() >= SEED_BATCH {
                insert_rows(&mut tx, backend, &rows).await;
                inserted += rows.len();
                rows.clear();
            }
        }
        if !rows.is_empty() {
            insert_rows(&mut tx, backend, &rows).await;
            inserted += rows.len();
            rows.clear();
        }
        tx.commit().await.unwrap();
        if inserted >= next_report && inserted < n {
            let secs = began.elapsed().as_secs_f64();
            println!(
                "  seeded {inserted:>9} sessions in {secs:6.1} s ({:.0} rows/s)",
                inserted as f64 / secs
            );
            next_report += n / 10;
        }
    }
    // Too few candidates on small runs (where every session is sampled): take the newest
    // sessions; they are revoked after the validation phase.
    if to_revoke.len() < REVOCATIONS {
        let extra: Vec<String> = sqlx::query("SELECT id FROM sessions ORDER BY id DESC LIMIT $1")
            .bind(i64::try_from(REVOCATIONS * 3).unwrap())
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String, _>("id").unwrap())
            .filter(|id| !to_revoke.contains(id))
            .collect();
        to_revoke.extend(extra.into_iter().take(REVOCATIONS - to_revoke.len()));
    }
    // The sampled sessions were just used, so validating them is a read (the idle refresh
    // writes at most once a minute per session).
    let stamp = now_micros();
    let mut tx = pool.begin().await.unwrap();
    for chunk in sample.chunks(SEED_BATCH) {
        let list = placeholders(backend, 1, chunk.len());
        let sql = match backend {
            Backend::Sqlite => format!("UPDATE sessions SET last_active_at = ? WHERE id IN {list}"),
            Backend::Postgres => format!(
                "UPDATE sessions SET last_active_at = $1 WHERE id IN ({})",
                (2..chunk.len() + 2)
                    .map(|k| format!("${k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut query = sqlx::query(&sql).bind(stamp);
        for s in chunk {
            query = query.bind(s.id.as_str());
        }
        query.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let insert = began.elapsed();
    let began = Instant::now();
    match backend {
        Backend::Sqlite => {
            pool.execute("ANALYZE").await.unwrap();
            pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
        }
        Backend::Postgres => {
            // VACUUM as well as ANALYZE: it sets the visibility map and keeps autovacuum from
            // starting on the fresh rows in the middle of a timed phase.
            pool.execute("VACUUM (ANALYZE) sessions").await.unwrap();
        }
    }
    let analyze = began.elapsed();
    let bytes = db.size(&pool).await;
    pool.close().await;
    Seeded {
        rows: inserted,
        sample,
        to_revoke,
        insert,
        analyze,
        bytes,
    }
}

// ---------------------------------------------------------------------------------------------
// Load phases

fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// `ValidateSession` for `seconds` from every gateway channel, each caller drawing sampled tokens
/// uniformly (a different draw for each `salt`).
async fn validate_drawn(
    seconds: u64,
    gateways: &[Channel],
    sample: &Arc<Vec<Sampled>>,
    salt: u64,
) -> (test_support::bench::Latencies, Duration) {
    let states = gateways
        .iter()
        .enumerate()
        .map(|(t, c)| (SessionServiceClient::new(c.clone()), sample.clone(), t as u64, 0u64))
        .collect();
    drive(seconds, None, states, move |(mut client, sample, task, n)| async move {
        let s = &sample[usize::try_from(mix(n, task + salt) % sample.len() as u64).unwrap()];
        let request = pb::ValidateSessionRequest { token: s.token.clone() };
        let step = match client.validate_session(request).await {
            Ok(response) if response.get_ref().id == s.id => Step::Ok(false),
            Ok(response) => Step::Err(format!("validated as {:?}", response.get_ref().id)),
            Err(status) => Step::Err(status_text(&status)),
        };
        ((client, sample, task, n + 1), step)
    })
    .await
}

/// `ValidateSession` of sampled tokens, then two diagnostics: a malformed token (refused before
/// the database: gRPC + mTLS alone) and the store's lookup without gRPC.
async fn validate_phase(
    seconds: u64,
    gateways: &[Channel],
    sample: &Arc<Vec<Sampled>>,
    db: &BenchDatabase,
) -> Vec<PhaseResult> {
    let phase_start = now_micros();
    let (lat, wall) = validate_drawn(seconds, gateways, sample, 77).await;
    let cold = report("ValidateSession, first validations (cold cache)", lat, wall, None);

    // The steady state of a gateway: the sampled sessions are the active ones, each validated
    // again and again. Validate every one once (untimed), then time the same uniform draw.
    let began = Instant::now();
    let mut warmers = Vec::new();
    for (t, channel) in gateways.iter().enumerate() {
        let (mut client, sample, stride) = (
            SessionServiceClient::new(channel.clone()),
            sample.clone(),
            gateways.len(),
        );
        warmers.push(tokio::spawn(async move {
            for s in sample.iter().skip(t).step_by(stride) {
                let request = pb::ValidateSessionRequest { token: s.token.clone() };
                client
                    .validate_session(request)
                    .await
                    .expect("a sampled session validates");
            }
        }));
    }
    for warmer in warmers {
        warmer.await.unwrap();
    }
    println!(
        "  validated all {} sampled sessions once in {:.1} s (untimed)",
        sample.len(),
        began.elapsed().as_secs_f64()
    );
    let (lat, wall) = validate_drawn(seconds, gateways, sample, 91).await;
    let warm = report(
        &format!("ValidateSession, {} active sessions (warm cache)", sample.len()),
        lat,
        wall,
        None,
    );
    // Idle refreshes the phase wrote.
    let pool = AnyPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    let touched: i64 = sqlx::query("SELECT COUNT(*) FROM sessions WHERE last_active_at >= $1")
        .bind(phase_start)
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    pool.close().await;
    println!("    idle refreshes written during the phase: {touched}");

    let states = gateways.iter().map(|c| SessionServiceClient::new(c.clone())).collect();
    let (lat, wall) = drive(seconds, None, states, |mut client| async move {
        let request = pb::ValidateSessionRequest {
            token: "not a token".into(),
        };
        let step = match client.validate_session(request).await {
            Err(status) if status.code() == tonic::Code::Unauthenticated => Step::Ok(false),
            Err(status) => Step::Err(status_text(&status)),
            Ok(_) => Step::Err("a malformed token validated".into()),
        };
        (client, step)
    })
    .await;
    let floor = report("diag: ValidateSession, malformed token (no database)", lat, wall, None);

    // The store's lookup, through a second pool of the service's size.
    let database = service_kit::db::connect(&db.url, db_connections(), session_svc::MIGRATIONS)
        .await
        .unwrap();
    let store = session_svc::store::Store::new(database);
    let states = (0..gateways.len())
        .map(|t| (store.clone(), sample.clone(), t as u64, 0u64))
        .collect();
    let (lat, wall) = drive(seconds, None, states, |(store, sample, task, n)| async move {
        let s = &sample[usize::try_from(mix(n, task + 177) % sample.len() as u64).unwrap()];
        let step = match store.session_by_token_hash(&secret_hash(&s.token)).await {
            Ok(Some(session)) if session.id == s.id => Step::Ok(false),
            Ok(_) => Step::Err("not found".into()),
            Err(e) => Step::Err(e.to_string()),
        };
        ((store, sample, task, n + 1), step)
    })
    .await;
    let direct = report("diag: session_by_token_hash only (no gRPC/TLS)", lat, wall, None);
    store.pool().close().await;
    vec![cold, warm, floor, direct]
}

/// Creates `count` users through `CreateUser` as an admin; returns `(id, login)`.
async fn create_users(admins: &[Channel], count: usize, run: &str) -> Vec<(String, String)> {
    let mut tasks = Vec::new();
    for (t, channel) in admins.iter().enumerate() {
        let mut client = DirectoryServiceClient::new(channel.clone());
        let run = run.to_owned();
        let step = admins.len();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for i in (t..count).step_by(step) {
                let login = format!("bench-{run}-{i:04}");
                let user = client
                    .create_user(pb::CreateUserRequest {
                        login: login.clone(),
                        email: format!("{login}@example.com"),
                        display_name: format!("Bench User {i}"),
                        profile: Default::default(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                made.push((i, user.id, login));
            }
            made
        }));
    }
    let mut users = Vec::new();
    for task in tasks {
        users.extend(task.await.unwrap());
    }
    users.sort();
    users.into_iter().map(|(_, id, login)| (id, login)).collect()
}

async fn create_phase(seconds: u64, gateways: &[Channel], users: &Arc<Vec<(String, String)>>) -> PhaseResult {
    let states = gateways
        .iter()
        .enumerate()
        .map(|(t, c)| (SessionServiceClient::new(c.clone()), users.clone(), t as u64, 0u64))
        .collect();
    let (lat, wall) = drive(seconds, None, states, |(mut client, users, task, n)| async move {
        let seed = (task << 40) | n;
        let (user_id, _) = &users[usize::try_from(mix(seed, 300) % users.len() as u64).unwrap()];
        let fastpass = mix(seed, 301).is_multiple_of(2);
        let request = pb::CreateSessionRequest {
            user_id: user_id.clone(),
            device_id: if fastpass {
                format!("device-bench-{:04}", mix(seed, 302) % 1000)
            } else {
                String::new()
            },
            amr: if fastpass {
                vec!["hwk".into(), "user".into(), "mfa".into()]
            } else {
                vec!["pwd".into()]
            },
            device_authenticator: fastpass,
            idle_timeout: None,
            max_lifetime: None,
            client_ip: "192.0.2.1".into(),
            user_agent: USER_AGENTS[0].into(),
        };
        let step = match client.create_session(request).await {
            Ok(response) if response.get_ref().token.len() == 43 => Step::Ok(false),
            Ok(_) => Step::Err("no token".into()),
            Err(status) => Step::Err(status_text(&status)),
        };
        ((client, users, task, n + 1), step)
    })
    .await;
    report("CreateSession", lat, wall, None)
}

/// Revokes `to_revoke` one by one while a watcher follows the feed from now; reports the time
/// from each `RevokeSession` response to the watcher receiving that revocation.
async fn revocation_phase(addr: SocketAddr, pki: &TestPki, to_revoke: &[String]) -> Vec<PhaseResult> {
    let gateway = pki.service("gateway");
    let mut watcher = SessionServiceClient::new(channel(addr, &gateway).await.unwrap());
    let mut stream = watcher
        .watch_revocations(pb::WatchRevocationsRequest {
            cursor: String::new(),
            from_now: true,
        })
        .await
        .unwrap()
        .into_inner();
    let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch = tokio::spawn(async move {
        while let Ok(Some(revocation)) = stream.message().await {
            let at = Instant::now();
            if arrived_tx.send((revocation.session_id, at)).is_err() {
                break;
            }
        }
    });
    let mut revoker = SessionServiceClient::new(
        channel(addr, &pki.operator("bench-operator", Role::Operator))
            .await
            .unwrap(),
    );
    let mut sent: HashMap<String, (Instant, Instant)> = HashMap::new();
    let mut call = Latencies::default();
    let began = Instant::now();
    for id in to_revoke {
        let t0 = Instant::now();
        let result = revoker
            .revoke_session(pb::RevokeSessionRequest {
                session_id: id.clone(),
                reason: pb::RevocationReason::Admin.into(),
            })
            .await;
        let t1 = Instant::now();
        match result {
            Ok(_) => {
                call.all.push(u64::try_from((t1 - t0).as_micros()).unwrap());
                sent.insert(id.clone(), (t0, t1));
            }
            Err(status) => {
                call.errors += 1;
                call.first_error.get_or_insert(status_text(&status));
            }
        }
        tokio::time::sleep(REVOKE_GAP).await;
    }
    let wall = began.elapsed();
    let mut arrivals: HashMap<String, Instant> = HashMap::new();
    let wait_until = tokio::time::Instant::now() + Duration::from_secs(5);
    while arrivals.len() < sent.len() {
        match tokio::time::timeout_at(wait_until, arrived_rx.recv()).await {
            Ok(Some((id, at))) => {
                arrivals.insert(id, at);
            }
            _ => break,
        }
    }
    watch.abort();
    let mut from_response = Latencies::default();
    let mut from_request = Vec::new();
    let mut early = 0;
    for (id, (t0, t1)) in &sent {
        match arrivals.get(id) {
            Some(at) => {
                if *at < *t1 {
                    early += 1;
                }
                from_response
                    .all
                    .push(u64::try_from(at.saturating_duration_since(*t1).as_micros()).unwrap());
                from_request.push(u64::try_from(at.saturating_duration_since(*t0).as_micros()).unwrap());
            }
            None => {
                from_response.errors += 1;
                from_response
                    .first_error
                    .get_or_insert(format!("revocation of {id} never reached the watcher"));
            }
        }
    }
    let revoke = report("RevokeSession (paced, one caller)", call, wall, None);
    println!(
        "    {} of {} revocations reached the watcher before the RevokeSession response (counted as 0 ms)",
        early,
        sent.len()
    );
    from_request.sort_unstable();
    println!(
        "    from RevokeSession request to watcher: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile_ms(&from_request, 50.0),
        percentile_ms(&from_request, 99.0),
        percentile_ms(&from_request, 100.0)
    );
    let mut latency = report("revocation latency (response -> watcher)", from_response, wall, None);
    // The rate is that of the revocations, not of anything the watcher does.
    latency.rate = revoke.rate;
    vec![revoke, latency]
}

async fn password_phase(
    seconds: u64,
    gateways: &[Channel],
    admin: &Channel,
    users: &[(String, String)],
) -> Vec<PhaseResult> {
    println!(
        "  argon2id m={} KiB, t={}, p={}; {HASH_PERMITS} hashes at once (password_hash_concurrency)",
        session_svc::password::MEMORY_KIB,
        session_svc::password::ITERATIONS,
        session_svc::password::PARALLELISM
    );
    let began = Instant::now();
    let mut admin = DirectoryServiceClient::new(admin.clone());
    let ids = &users[..PASSWORD_USERS.min(users.len())];
    let users: Vec<(String, String)> = users
        .iter()
        .take(PASSWORD_USERS)
        .map(|(id, login)| (login.clone(), format!("correct horse {id}")))
        .collect();
    for ((user_id, _), (_, password)) in ids.iter().zip(&users) {
        admin
            .set_password(pb::SetPasswordRequest {
                user_id: user_id.clone(),
                password: password.clone(),
            })
            .await
            .unwrap();
    }
    println!(
        "  set {} passwords through SetPassword in {:.1} s",
        users.len(),
        began.elapsed().as_secs_f64()
    );
    let users = Arc::new(users);
    let mut results = Vec::new();
    for callers in [gateways.len(), HASH_PERMITS] {
        let states = gateways[..callers]
            .iter()
            .enumerate()
            .map(|(t, c)| (DirectoryServiceClient::new(c.clone()), users.clone(), t))
            .collect();
        let (lat, wall) = drive(seconds, None, states, |(mut client, users, n)| async move {
            let (login, password) = &users[n % users.len()];
            let request = pb::VerifyPasswordRequest {
                login: login.clone(),
                password: password.clone(),
            };
            let step = match client.verify_password(request).await {
                Ok(_) => Step::Ok(false),
                Err(status) => Step::Err(status_text(&status)),
            };
            ((client, users, n + 1), step)
        })
        .await;
        results.push(report(&format!("VerifyPassword ({callers} callers)"), lat, wall, None));
    }
    results
}

// ---------------------------------------------------------------------------------------------

async fn bench(args: Args, pki: Arc<TestPki>, db: Arc<BenchDatabase>) -> Vec<PhaseResult> {
    let run_began = Instant::now();
    let service = Service::start(&pki, &db.url).await;
    println!(
        "session-svc migrated and serving on {} ({} database connections)",
        service.addr,
        db_connections()
    );

    println!(
        "\nseeding {} sessions ({SEED_BATCH}-row INSERTs, {SEED_TX_ROWS} rows per transaction)",
        args.count
    );
    let seeded = seed(&db, args.count).await;
    let insert_secs = seeded.insert.as_secs_f64();
    let analyze_name = if db.backend == Backend::Sqlite {
        "ANALYZE"
    } else {
        "VACUUM (ANALYZE)"
    };
    println!(
        "seeded {} sessions in {insert_secs:.1} s ({:.0} rows/s); {analyze_name} {:.1} s; database {:.0} MiB; \
         {} tokens sampled",
        seeded.rows,
        seeded.rows as f64 / insert_secs,
        seeded.analyze.as_secs_f64(),
        seeded.bytes as f64 / (1024.0 * 1024.0),
        seeded.sample.len()
    );
    // Restart so that every pooled connection plans with the new statistics.
    service.stop().await;
    let service = Service::start(&pki, &db.url).await;
    println!(
        "session-svc restarted on {}; load average {}",
        service.addr,
        load_average()
    );

    let gateway_tls = pki.service("gateway");
    let admin_tls = pki.operator("bench-admin", Role::Admin);
    let gateways = channels(service.addr, &gateway_tls, CONCURRENCY).await;
    let admins = channels(service.addr, &admin_tls, CONCURRENCY).await;
    let sample = Arc::new(seeded.sample);
    // The service knows a seeded token.
    {
        let first = &sample[0];
        let session = SessionServiceClient::new(gateways[0].clone())
            .validate_session(pb::ValidateSessionRequest {
                token: first.token.clone(),
            })
            .await
            .expect("a seeded token validates")
            .into_inner();
        assert_eq!(session.id, first.id);
    }
    let s = args.seconds;
    let mut results = Vec::new();

    println!("\n== phases: {CONCURRENCY} client tasks, one mTLS channel each, {s} s each ==");
    println!("  ValidateSession of {} sampled tokens, drawn at random", sample.len());
    results.extend(validate_phase(s, &gateways, &sample, &db).await);

    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let began = Instant::now();
    let users = Arc::new(create_users(&admins, API_USERS, &run).await);
    println!(
        "\n  created {} users through CreateUser in {:.1} s",
        users.len(),
        began.elapsed().as_secs_f64()
    );
    results.push(create_phase(s, &gateways, &users).await);

    println!(
        "\n  revoking {} seeded sessions one by one, {} ms apart, one watcher from now",
        seeded.to_revoke.len(),
        REVOKE_GAP.as_millis()
    );
    results.extend(revocation_phase(service.addr, &pki, &seeded.to_revoke).await);

    println!();
    results.extend(password_phase(s, &gateways, &admins[0], &users).await);

    drop((gateways, admins));
    service.stop().await;
    println!(
        "\nwhole run: {:.0} s; load average {}",
        run_began.elapsed().as_secs_f64(),
        load_average()
    );

    let backend = db.backend.name();
    let n = args.count;
    println!("\n## session-svc, {backend}, {n} sessions (nproc {})\n", nproc());
    println!(
        "Seeding: {} sessions in {insert_secs:.1} s ({:.0} rows/s), then {analyze_name} in {:.1} s.\n",
        seeded.rows,
        seeded.rows as f64 / insert_secs,
        seeded.analyze.as_secs_f64()
    );
    test_support::bench::print_table(backend, n, &results);
    results
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let results = test_support::bench::run("session_load", "sessions", parse_args(), "sessions.db", bench).await;
    let find = |name: &str| results.iter().find(|r| r.name == name);
    let revocation_p99 = find("revocation latency (response -> watcher)").map_or(f64::NAN, |r| r.p99);
    println!();
    for r in results.iter().filter(|r| r.name.starts_with("ValidateSession")) {
        println!(
            "target: {}: {:.0}/s (>= {VALIDATE_RATE_TARGET}/s): {}; p99 {:.2} ms (<= {VALIDATE_P99_TARGET_MS} ms): {}",
            r.name,
            r.rate,
            test_support::bench::verdict(r.rate >= VALIDATE_RATE_TARGET),
            r.p99,
            test_support::bench::verdict(r.p99 <= VALIDATE_P99_TARGET_MS)
        );
    }
    println!(
        "target: revocation latency p99 {revocation_p99:.2} ms (<= {REVOCATION_P99_TARGET_MS} ms): {}",
        test_support::bench::verdict(revocation_p99 <= REVOCATION_P99_TARGET_MS)
    );
}
