//! Load generator for device-svc: throughput and latency of the device registry's RPCs over real
//! mTLS gRPC, against a registry seeded with a realistic population of devices.
//!
//! ```text
//! cargo bench -p device-svc --bench device_registry -- [--devices N] [--backend sqlite|postgres] [--seconds S]
//! ```
//!
//! Defaults: 1,000,000 devices, SQLite, 10 s per phase. With `--backend postgres` a fresh
//! database is created on the server at `PORTCULLIS_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust auth) and dropped at the end; SQLite
//! uses a file in a temp dir that is removed at the end. Quick check: `--devices 20000 --seconds 3`.
//!
//! What it does:
//! 1. starts device-svc in-process on `127.0.0.1:0` with real mTLS (a throwaway test PKI) and
//!    its default database connections (two per core), which runs the migrations;
//! 2. seeds N devices straight into the service's schema through SQL (500-row INSERTs, 20,000
//!    devices per transaction): `devices`, `device_search` (the terms store.rs makes),
//!    `device_users` (users spread over N/2 ids), `device_keys`; platforms 40% Windows, 30%
//!    macOS, 10% iOS, 10% Android, 5% Linux, 5% ChromeOS; 3% suspended, 2% deactivated (users
//!    removed, keys retired); 20% managed by certificate; created evenly over the last year, with
//!    time-ordered ids. Then `ANALYZE` (SQLite) or `VACUUM (ANALYZE)` (PostgreSQL, so autovacuum
//!    does not start mid-phase), and a restart of the service so every pooled connection plans
//!    with the fresh statistics;
//! 3. runs each phase with 16 client tasks (one mTLS channel each) for S seconds, timing every
//!    call: `ListDevices` walking pages (50, then from the first page again) by filter and by
//!    search, `CountDevices` (at most 200 calls), `RegisterDevice` of new devices and
//!    `VerifyDeviceAssertion` of 1,000 agents enrolled through the API, with every assertion
//!    signed before the timed windows (one with 16 callers, one with 64: four per channel); then,
//!    as a diagnostic, the store calls of a verification without gRPC;
//! 4. prints, per phase, requests/s and latency percentiles (first pages apart), the plans and
//!    single-connection times of the read queries, and a Markdown summary table for
//!    `docs/benchmarks.md`.
//!
//! This is a load generator that prints figures, not a criterion benchmark: client and server
//! share the machine, so the figures are for the whole round trip on this host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use test_support::bench::{
    Args, Backend, BenchDatabase, PhaseResult, Step, drive, load_average, nproc, parse_args as parse_args_with, report,
};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use device_svc::config::DeviceConfig;
use portcullis_proto::device::v1 as pb;
use portcullis_proto::device::v1::device_service_client::DeviceServiceClient;
use service_kit::config::Settings;
use service_kit::filter::{SqlValue, compile_filter};
use service_kit::identity::Role;
use service_kit::shutdown::Shutdown;
use service_kit::tls::TlsMaterial;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, Connection as _, Executor as _, Row as _};
use test_support::{TestPki, channel};
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Client tasks per phase.
const CONCURRENCY: usize = 16;
/// Database connections of the service under test: `PORTCULLIS_BENCH_DB_CONNECTIONS`, or the
/// service's own default (two per core).
fn db_connections() -> u32 {
    std::env::var("PORTCULLIS_BENCH_DB_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(device_svc::config::default_database_connections)
}
/// `VerifyDeviceAssertion` callers per mTLS channel in the two verification windows: one each
/// (16 calls in flight), then four each (64 in flight, as when several gateway replicas multiplex
/// many sign-ins over their channels), which shows the service's capacity rather than the round
/// trip of 16 callers.
const VERIFY_CALLERS_PER_CHANNEL: [usize; 2] = [1, 4];
/// `ListDevices` page size.
const PAGE_SIZE: i32 = 20;
/// Pages walked before starting again from the first page.
const PAGES_PER_WALK: usize = 50;
/// Rows per seeding INSERT.
const SEED_BATCH: usize = 500;
/// Devices per seeding transaction.
const SEED_TX_DEVICES: usize = 20_000;
/// Most calls in each `CountDevices` phase (they scan, so fewer iterations).
const COUNT_BUDGET: usize = 200;
/// Devices enrolled for the assertion phase.
const VERIFY_DEVICES: usize = 1_000;
/// Assertions signed per second of the timed window: the highest rate the phase can show.
const VERIFY_MAX_RATE: usize = 15_000;
/// The audience assertions are made for.
const AUDIENCE: &str = "https://login.example.com";
/// Target: p99 of `ListDevices` by platform and status, in ms.
const LIST_P99_TARGET_MS: f64 = 20.0;
/// Target: `VerifyDeviceAssertion` calls per second.
const VERIFY_RATE_TARGET: f64 = 5_000.0;

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE: &str = concat!(
    "usage: cargo bench -p device-svc --bench device_registry -- ",
    "[--devices N] [--backend sqlite|postgres] [--seconds S]"
);

fn parse_args() -> Args {
    parse_args_with(
        "devices",
        Args {
            count: 1_000_000,
            backend: Backend::Sqlite,
            seconds: 10,
        },
        USAGE,
    )
}

// ---------------------------------------------------------------------------------------------
// Environment

fn now_micros() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()).unwrap()
}

/// RFC 3339 for a time in microseconds since the epoch.
fn rfc3339(micros: i64) -> String {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: 0,
    }
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// The service

struct Service {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), device_svc::RunError>>,
}

impl Service {
    /// Starts device-svc on `127.0.0.1:0`.
    async fn start(pki: &TestPki, database_url: &str) -> Self {
        let files = pki.service_files("device-svc");
        let mut settings = Settings::default();
        settings
            .set("tls_ca", files.ca.display().to_string())
            .set("tls_cert", files.cert.display().to_string())
            .set("tls_key", files.key.display().to_string())
            .set("database_url", database_url)
            .set("database_max_connections", db_connections().to_string())
            .set("request_timeout_ms", "60000")
            .set("page_token_secret", "bench-page-token-secret");
        let config = DeviceConfig::from_settings(&settings).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(device_svc::serve_on(config, listener, admin_listener, shutdown.clone()));
        let service = Self { addr, shutdown, task };
        // Ready when a call gets through (migrations run before serving).
        let tls = pki.operator("bench-ready", Role::Viewer);
        for _ in 0..800 {
            if let Ok(channel) = channel(addr, &tls).await {
                let request = pb::ListDevicesRequest {
                    page_size: 1,
                    ..Default::default()
                };
                if DeviceServiceClient::new(channel).list_devices(request).await.is_ok() {
                    return service;
                }
            }
            assert!(!service.task.is_finished(), "device-svc stopped while starting");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("device-svc did not become ready");
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap();
    }
}

/// `count` clients over `PORTCULLIS_BENCH_CHANNELS` mTLS connections (default one each),
/// shared round-robin: HTTP/2 multiplexes their calls, as a gateway's few channels would.
async fn clients(addr: SocketAddr, tls: &TlsMaterial, count: usize) -> Vec<DeviceServiceClient<Channel>> {
    let channels: usize = std::env::var("PORTCULLIS_BENCH_CHANNELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(count);
    let mut connections = Vec::with_capacity(channels);
    for _ in 0..channels.min(count) {
        connections.push(channel(addr, tls).await.unwrap());
    }
    (0..count)
        .map(|i| DeviceServiceClient::new(connections[i % connections.len()].clone()))
        .collect()
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

const ALNUM: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// `len` upper-case alphanumerics drawn from `seed`.
fn alnum(seed: u64, len: usize) -> String {
    let mut s = String::with_capacity(len);
    let mut x = seed;
    for k in 0..len {
        if k % 10 == 9 {
            x = mix(x, 7);
        }
        s.push(char::from(ALNUM[usize::try_from(x % ALNUM.len() as u64).unwrap()]));
        x /= ALNUM.len() as u64;
    }
    s
}

fn digits(seed: u64, len: usize) -> String {
    let mut s = String::with_capacity(len);
    let mut x = seed;
    for k in 0..len {
        if k % 16 == 15 {
            x = mix(x, 11);
        }
        s.push(char::from(b'0' + u8::try_from(x % 10).unwrap()));
        x /= 10;
    }
    s
}

const FIRST_NAMES: &[&str] = &[
    "olivia", "liam", "emma", "noah", "amelia", "oliver", "sophia", "elijah", "mia", "james", "ava", "lucas",
    "isabella", "mateo", "harper", "ethan", "aria", "levi", "chloe", "kai", "nora", "leo", "zoe", "hugo", "ines",
    "yuki", "priya", "arjun", "fatima", "omar", "lena", "jonas", "sara", "david", "anna", "marco",
];

/// Platforms by share of the fleet: 40% Windows, 30% macOS, 10% iOS, 10% Android, 5% Linux,
/// 5% ChromeOS.
fn platform_for(roll: u64) -> pb::Platform {
    match roll % 100 {
        0..40 => pb::Platform::Windows,
        40..70 => pb::Platform::Macos,
        70..80 => pb::Platform::Ios,
        80..90 => pb::Platform::Android,
        90..95 => pb::Platform::Linux,
        _ => pb::Platform::Chromeos,
    }
}

fn platform_name(platform: pb::Platform) -> &'static str {
    match platform {
        pb::Platform::Windows => "WINDOWS",
        pb::Platform::Macos => "MACOS",
        pb::Platform::Ios => "IOS",
        pb::Platform::Android => "ANDROID",
        pb::Platform::Linux => "LINUX",
        pb::Platform::Chromeos => "CHROMEOS",
        pb::Platform::Unspecified => "UNSPECIFIED",
    }
}

/// A plausible profile for a device of `platform`, drawn from `seed`.
fn profile_for(platform: pb::Platform, seed: u64, owner: &str) -> pb::DeviceProfile {
    let pick = |salt: u64, n: usize| usize::try_from(mix(seed, salt) % n as u64).unwrap();
    let r = |salt| mix(seed, salt);
    let mut p = pb::DeviceProfile {
        platform: platform.into(),
        secure_hardware_present: r(1) % 10 != 0,
        disk_encryption_type: if r(2) % 12 == 0 {
            pb::DiskEncryptionType::None
        } else {
            pb::DiskEncryptionType::Full
        }
        .into(),
        screen_lock_type: match r(3) % 10 {
            0 => pb::ScreenLockType::None,
            1..5 => pb::ScreenLockType::Passcode,
            _ => pb::ScreenLockType::Biometric,
        }
        .into(),
        integrity_jailbreak: r(4) % 500 == 0,
        ..Default::default()
    };
    let (manufacturer, model, name) = match platform {
        pb::Platform::Windows => {
            let models = [
                ("Dell Inc.", "Latitude 7440", "Latitude"),
                ("Dell Inc.", "XPS 13 9340", "XPS"),
                ("LENOVO", "21HD003AUS", "ThinkPad T14"),
                ("HP", "HP EliteBook 840 G10", "EliteBook"),
                ("Microsoft Corporation", "Surface Laptop 5", "Surface Laptop"),
            ];
            let m = pick(5, models.len());
            p.serial_number = match m {
                0 | 1 => alnum(r(6), 7),
                2 => format!("PF{}", alnum(r(6), 6)),
                3 => format!("5CG{}", alnum(r(6), 7)),
                _ => digits(r(6), 12),
            };
            p.os_version = format!(
                "10.0.{}.{}",
                [19045, 22621, 22631, 26100][pick(7, 4)],
                1000 + r(8) % 3000
            );
            p.sid = format!(
                "S-1-5-21-{}-{}-{}-{}",
                1_000_000_000 + r(9) % 3_000_000_000,
                1_000_000_000 + r(10) % 3_000_000_000,
                1_000_000_000 + r(11) % 3_000_000_000,
                1000 + r(12) % 100_000
            );
            p.tpm_public_key_hash = URL_SAFE_NO_PAD.encode(r(13).to_be_bytes().repeat(4));
            models[m]
        }
        pb::Platform::Macos => {
            let models = [
                ("Apple Inc.", "MacBookPro18,3", "MacBook Pro"),
                ("Apple Inc.", "Mac14,2", "MacBook Air"),
                ("Apple Inc.", "Mac14,9", "MacBook Pro"),
                ("Apple Inc.", "Mac13,1", "Mac Studio"),
            ];
            // Half the fleet predates randomized serials and starts with "C02".
            p.serial_number = if r(6) % 2 == 0 {
                format!("C02{}", alnum(r(14), 9))
            } else {
                alnum(r(14), 10)
            };
            p.os_version = ["13.6.7", "14.4.1", "14.5", "15.1"][pick(7, 4)].to_owned();
            p.udid = format!(
                "{}-{}-{}-{}-{}",
                alnum(r(15), 8),
                alnum(r(16), 4),
                alnum(r(17), 4),
                alnum(r(18), 4),
                alnum(r(19), 12)
            );
            models[pick(5, models.len())]
        }
        pb::Platform::Ios => {
            let models = [
                ("Apple Inc.", "iPhone15,2", "iPhone"),
                ("Apple Inc.", "iPad13,18", "iPad"),
            ];
            p.serial_number = alnum(r(6), 10);
            p.os_version = ["17.4.1", "17.5", "18.1"][pick(7, 3)].to_owned();
            p.udid = format!("00008110-{}", alnum(r(15), 16));
            p.imei = format!("35{}", digits(r(20), 13));
            models[pick(5, models.len())]
        }
        pb::Platform::Android => {
            let models = [("samsung", "SM-S918B", "Galaxy S23"), ("Google", "Pixel 8", "Pixel")];
            p.serial_number = format!("R5C{}", alnum(r(6), 8));
            p.os_version = ["13", "14", "15"][pick(7, 3)].to_owned();
            p.imei = format!("35{}", digits(r(20), 13));
            models[pick(5, models.len())]
        }
        pb::Platform::Linux => {
            let models = [
                ("Dell Inc.", "Precision 5680", "Precision"),
                ("LENOVO", "21FV001XUS", "ThinkPad X1"),
            ];
            p.serial_number = alnum(r(6), 7);
            p.os_version = ["Ubuntu 22.04", "Ubuntu 24.04", "Fedora 40"][pick(7, 3)].to_owned();
            models[pick(5, models.len())]
        }
        pb::Platform::Chromeos | pb::Platform::Unspecified => {
            let models = [
                ("Google", "Chromebook Plus", "Chromebook"),
                ("Acer", "Chromebook Spin 714", "Chromebook"),
            ];
            p.serial_number = format!("NXK{}", alnum(r(6), 9));
            p.os_version = format!("{}.0.{}.0", 120 + r(7) % 10, 15_000 + r(8) % 1000);
            models[pick(5, models.len())]
        }
    };
    p.manufacturer = manufacturer.to_owned();
    p.model = model.to_owned();
    p.display_name = format!("{owner}'s {name}");
    p
}

/// What store.rs `search_terms` makes of a profile: each identifier lower-cased, and each word
/// of the display name.
fn search_terms(p: &pb::DeviceProfile) -> Vec<String> {
    let mut terms: Vec<String> = [&p.display_name, &p.serial_number, &p.imei, &p.meid, &p.udid, &p.sid]
        .into_iter()
        .filter(|v| !v.is_empty())
        .map(|v| v.to_lowercase())
        .collect();
    terms.extend(p.display_name.split_whitespace().map(str::to_lowercase));
    terms.sort();
    terms.dedup();
    terms
}

/// A value for a seeding INSERT.
enum Val {
    Text(String),
    Int(i64),
    OptInt(Option<i64>),
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

impl From<bool> for Val {
    fn from(b: bool) -> Self {
        Val::Int(i64::from(b))
    }
}

impl From<Option<i64>> for Val {
    fn from(n: Option<i64>) -> Self {
        Val::OptInt(n)
    }
}

const DEVICE_COLUMNS: &[&str] = &[
    "id",
    "status",
    "created_at",
    "updated_at",
    "last_seen_at",
    "display_name",
    "platform",
    "manufacturer",
    "model",
    "os_version",
    "serial_number",
    "udid",
    "sid",
    "imei",
    "meid",
    "tpm_public_key_hash",
    "secure_hardware_present",
    "disk_encryption_type",
    "screen_lock_type",
    "integrity_jailbreak",
    "managed",
    "management_source",
    "app_instance_id",
    "signals",
];
const SEARCH_COLUMNS: &[&str] = &["term", "device_id"];
const USER_COLUMNS: &[&str] = &["device_id", "user_id", "created_at"];
const KEY_COLUMNS: &[&str] = &[
    "kid",
    "device_id",
    "user_id",
    "purpose",
    "hardware_protected",
    "x",
    "y",
    "created_at",
    "removed_at",
];

/// Rows waiting to be inserted into one table.
struct Batch {
    table: &'static str,
    columns: &'static [&'static str],
    backend: Backend,
    rows: Vec<Vec<Val>>,
    inserted: usize,
}

impl Batch {
    fn new(table: &'static str, columns: &'static [&'static str], backend: Backend) -> Self {
        Self {
            table,
            columns,
            backend,
            rows: Vec::with_capacity(SEED_BATCH * 2),
            inserted: 0,
        }
    }

    fn push(&mut self, row: Vec<Val>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// Inserts full batches of [`SEED_BATCH`] rows, or everything when `all`.
    async fn flush(&mut self, conn: &mut AnyConnection, all: bool) {
        while self.rows.len() >= SEED_BATCH || (all && !self.rows.is_empty()) {
            let take = self.rows.len().min(SEED_BATCH);
            let rows: Vec<Vec<Val>> = self.rows.drain(..take).collect();
            let width = self.columns.len();
            let mut sql = format!("INSERT INTO {} ({}) VALUES ", self.table, self.columns.join(", "));
            for r in 0..rows.len() {
                sql.push_str(if r == 0 { "(" } else { ", (" });
                for c in 0..width {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    match self.backend {
                        // Anonymous: SQLite looks `$n` names up by walking a list, once per bound
                        // value, which makes a 12,000-value statement quadratic.
                        Backend::Sqlite => sql.push('?'),
                        Backend::Postgres => {
                            sql.push('$');
                            sql.push_str(&(r * width + c + 1).to_string());
                        }
                    }
                }
                sql.push(')');
            }
            let mut query = sqlx::query(&sql);
            for value in rows.iter().flatten() {
                query = match value {
                    Val::Text(s) => query.bind(s.as_str()),
                    Val::Int(n) => query.bind(*n),
                    Val::OptInt(n) => query.bind(*n),
                };
            }
            query
                .execute(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("insert into {}: {e}", self.table));
            self.inserted += rows.len();
        }
    }
}

/// The time-ordered id of a device created at `created_at` (µs): uuid v7 style, 32 hex digits.
fn device_id(created_at: i64, counter: usize) -> String {
    format!("{:012x}{:020x}", created_at / 1000, counter)
}

struct SeedReport {
    devices: usize,
    rows: usize,
    insert: Duration,
    analyze: Duration,
    bytes: u64,
}

/// Seeds `n` devices created over the last year into the service's schema.
async fn seed(db: &BenchDatabase, n: usize, now: i64, serial_samples: &mut Vec<String>) -> SeedReport {
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
    let year = 365 * MICROS_PER_DAY;
    let start = now - year;
    let users = (n / 2).max(1) as u64;
    // Seeded keys share one valid P-256 public key; their kids differ.
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = key.public_key().as_ref();
    let (x, y) = (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    );
    let sample_every = (n / 64).max(1);

    let mut devices = Batch::new("devices", DEVICE_COLUMNS, backend);
    let mut search = Batch::new("device_search", SEARCH_COLUMNS, backend);
    let mut device_users = Batch::new("device_users", USER_COLUMNS, backend);
    let mut keys = Batch::new("device_keys", KEY_COLUMNS, backend);
    let began = Instant::now();
    let mut next_report = n / 10;
    for tx_start in (0..n).step_by(SEED_TX_DEVICES) {
        let mut tx = pool.begin().await.unwrap();
        for i in tx_start..(tx_start + SEED_TX_DEVICES).min(n) {
            let seed = i as u64;
            // Evenly spread over the year, so ids (time-ordered) follow created_at.
            let created_at = start + i64::try_from(i as u128 * year as u128 / n as u128).unwrap();
            let id = device_id(created_at, i);
            let platform = platform_for(mix(seed, 100));
            let user_id = format!("user-{:07}", mix(seed, 101) % users);
            let owner = FIRST_NAMES[usize::try_from(mix(seed, 102) % FIRST_NAMES.len() as u64).unwrap()];
            let profile = profile_for(platform, mix(seed, 103), owner);
            let status = match mix(seed, 104) % 100 {
                0..3 => "SUSPENDED",
                3..5 => "DEACTIVATED",
                _ => "ACTIVE",
            };
            let managed = mix(seed, 105) % 100 < 20;
            // Most devices were seen in the last month; a few never reported after enrolling.
            let last_seen_at = if mix(seed, 106).is_multiple_of(100) {
                None
            } else {
                let since = (now - created_at).max(1);
                Some(
                    now - i64::try_from(mix(seed, 107) % u64::try_from(since.min(30 * MICROS_PER_DAY)).unwrap())
                        .unwrap(),
                )
            };
            if i % sample_every == 0 && serial_samples.len() < 64 {
                serial_samples.push(profile.serial_number.clone());
            }
            for term in search_terms(&profile) {
                search.push(vec![term.into(), id.as_str().into()]);
            }
            // Deactivation forgets users and retires keys (lifecycle.rs), so seed it that way.
            let deactivated = status == "DEACTIVATED";
            if !deactivated {
                device_users.push(vec![id.as_str().into(), user_id.as_str().into(), created_at.into()]);
            }
            keys.push(vec![
                format!("{id}-pop").into(),
                id.as_str().into(),
                user_id.as_str().into(),
                "PROOF_OF_POSSESSION".into(),
                profile.secure_hardware_present.into(),
                x.as_str().into(),
                y.as_str().into(),
                created_at.into(),
                deactivated.then_some(created_at).into(),
            ]);
            let pb::DeviceProfile {
                display_name,
                manufacturer,
                model,
                os_version,
                serial_number,
                udid,
                sid,
                imei,
                meid,
                tpm_public_key_hash,
                secure_hardware_present,
                disk_encryption_type,
                screen_lock_type,
                integrity_jailbreak,
                ..
            } = profile;
            devices.push(vec![
                id.into(),
                status.into(),
                created_at.into(),
                last_seen_at.unwrap_or(created_at).into(),
                last_seen_at.into(),
                display_name.into(),
                platform_name(platform).into(),
                manufacturer.into(),
                model.into(),
                os_version.into(),
                serial_number.into(),
                udid.into(),
                sid.into(),
                imei.into(),
                meid.into(),
                tpm_public_key_hash.into(),
                secure_hardware_present.into(),
                pb::DiskEncryptionType::try_from(disk_encryption_type)
                    .unwrap()
                    .as_str_name()
                    .into(),
                pb::ScreenLockType::try_from(screen_lock_type)
                    .unwrap()
                    .as_str_name()
                    .into(),
                integrity_jailbreak.into(),
                managed.into(),
                if managed { "CERTIFICATE" } else { "NONE" }.into(),
                format!("agent-{:016x}-{i:08x}", mix(seed, 108)).into(),
                "{}".into(),
            ]);
            if devices.rows.len() >= SEED_BATCH {
                // Parents first: PostgreSQL checks the foreign keys statement by statement.
                devices.flush(&mut tx, false).await;
                search.flush(&mut tx, false).await;
                device_users.flush(&mut tx, false).await;
                keys.flush(&mut tx, false).await;
            }
        }
        devices.flush(&mut tx, true).await;
        search.flush(&mut tx, true).await;
        device_users.flush(&mut tx, true).await;
        keys.flush(&mut tx, true).await;
        tx.commit().await.unwrap();
        if devices.inserted >= next_report && devices.inserted < n {
            let secs = began.elapsed().as_secs_f64();
            println!(
                "  seeded {:>9} devices in {secs:6.1} s ({:.0} devices/s)",
                devices.inserted,
                devices.inserted as f64 / secs
            );
            next_report += n / 10;
        }
    }
    let insert = began.elapsed();
    let rows = devices.inserted + search.inserted + device_users.inserted + keys.inserted;
    println!(
        "  rows: devices {}, device_search {}, device_users {}, device_keys {}",
        devices.inserted, search.inserted, device_users.inserted, keys.inserted
    );
    let began = Instant::now();
    match backend {
        Backend::Sqlite => {
            pool.execute("ANALYZE").await.unwrap();
            pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
        }
        Backend::Postgres => {
            // VACUUM as well as ANALYZE: it sets the visibility map (index-only scans) and keeps
            // autovacuum from starting on the fresh rows in the middle of a timed phase.
            for table in ["devices", "device_search", "device_users", "device_keys"] {
                pool.execute(format!("VACUUM (ANALYZE) {table}").as_str())
                    .await
                    .unwrap();
            }
        }
    }
    let analyze = began.elapsed();
    let bytes = db.size(&pool).await;
    pool.close().await;
    SeedReport {
        devices: devices.inserted,
        rows,
        insert,
        analyze,
        bytes,
    }
}

// ---------------------------------------------------------------------------------------------
// Load phases

/// A client walking `ListDevices` pages: from the first page, at most [`PAGES_PER_WALK`] pages,
/// then again from the first page (with the next search text, if any).
struct Walker {
    client: DeviceServiceClient<Channel>,
    filter: Arc<str>,
    searches: Arc<[String]>,
    search_index: usize,
    token: String,
    pages: usize,
}

impl Walker {
    fn restart(&mut self) {
        self.token.clear();
        self.pages = 0;
        self.search_index += 1;
    }
}

async fn list_phase(
    name: &str,
    seconds: u64,
    clients: &[DeviceServiceClient<Channel>],
    filter: &str,
    searches: &[String],
) -> PhaseResult {
    match searches {
        [] => println!("  filter: {filter}"),
        [only] => println!("  search: {only:?}"),
        [first, ..] => println!("  search: {} serial-number prefixes such as {first:?}", searches.len()),
    }
    let filter: Arc<str> = filter.into();
    let searches: Arc<[String]> = if searches.is_empty() {
        vec![String::new()].into()
    } else {
        searches.into()
    };
    let states = clients
        .iter()
        .enumerate()
        .map(|(i, client)| Walker {
            client: client.clone(),
            filter: filter.clone(),
            searches: searches.clone(),
            search_index: i * 7,
            token: String::new(),
            pages: 0,
        })
        .collect();
    let (lat, wall) = drive(seconds, None, states, |mut w: Walker| async move {
        let first = w.token.is_empty();
        let request = pb::ListDevicesRequest {
            page_size: PAGE_SIZE,
            page_token: w.token.clone(),
            filter: w.filter.to_string(),
            search: w.searches[w.search_index % w.searches.len()].clone(),
            expand: pb::DeviceExpand::Unspecified.into(),
        };
        match w.client.list_devices(request).await {
            Ok(response) => {
                let next = response.into_inner().next_page_token;
                w.pages += 1;
                if next.is_empty() || w.pages >= PAGES_PER_WALK {
                    w.restart();
                } else {
                    w.token = next;
                }
                (w, Step::Ok(first))
            }
            Err(status) => {
                w.restart();
                (w, Step::Err(format!("{:?}: {}", status.code(), status.message())))
            }
        }
    })
    .await;
    report(name, lat, wall, Some("first pages"))
}

async fn count_phase(name: &str, seconds: u64, clients: &[DeviceServiceClient<Channel>], filter: &str) -> PhaseResult {
    let filter: Arc<str> = filter.into();
    let states = clients.iter().map(|c| (c.clone(), filter.clone())).collect();
    let (lat, wall) = drive(seconds, Some(COUNT_BUDGET), states, |(mut client, filter)| async move {
        let request = pb::CountDevicesRequest {
            filter: filter.to_string(),
            search: String::new(),
        };
        let step = match client.count_devices(request).await {
            Ok(_) => Step::Ok(false),
            Err(status) => Step::Err(format!("{:?}: {}", status.code(), status.message())),
        };
        ((client, filter), step)
    })
    .await;
    report(name, lat, wall, None)
}

/// A P-256 key held by a simulated agent.
struct AgentKey {
    kid: String,
    pair: EcdsaKeyPair,
}

impl AgentKey {
    fn generate(kid: String) -> Self {
        Self {
            kid,
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        }
    }

    fn public(&self) -> pb::DeviceKey {
        let point = self.pair.public_key().as_ref();
        pb::DeviceKey {
            kid: self.kid.clone(),
            purpose: pb::KeyPurpose::ProofOfPossession.into(),
            hardware_protected: true,
            kty: "EC".into(),
            crv: "P-256".into(),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..65]),
            user_id: String::new(),
        }
    }

    /// A FastPass response JWT (compact ES256 JWS) for `user_id`.
    fn assertion(&self, user_id: &str, nonce: &str, jti: &str, now: i64) -> String {
        let header = serde_json::json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let claims = serde_json::json!({
            "sub": user_id, "aud": AUDIENCE, "nonce": nonce, "jti": jti,
            "iat": now, "exp": now + 240,
            "signals": {"osVersion": "14.4.1", "diskEncryptionType": "FULL", "screenLockType": "BIOMETRIC"}
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = self.pair.sign(&rng, signing_input.as_bytes()).unwrap();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// A registration of a new device by `user_id` with `key`.
fn registration(user_id: String, app_instance_id: String, key: pb::DeviceKey, seed: u64) -> pb::RegisterDeviceRequest {
    let platform = platform_for(mix(seed, 200));
    let owner = FIRST_NAMES[usize::try_from(mix(seed, 201) % FIRST_NAMES.len() as u64).unwrap()];
    pb::RegisterDeviceRequest {
        user_id,
        app_instance_id,
        profile: Some(profile_for(platform, mix(seed, 202), owner)),
        keys: vec![key],
        signals: None,
        enrollment_token: String::new(),
    }
}

struct Registrar {
    client: DeviceServiceClient<Channel>,
    task: usize,
    sent: usize,
    run: Arc<str>,
    key: Arc<pb::DeviceKey>,
    users: u64,
}

async fn register_phase(seconds: u64, clients: &[DeviceServiceClient<Channel>], users: u64) -> PhaseResult {
    let run: Arc<str> = uuid::Uuid::now_v7().simple().to_string()[20..].into();
    // One public key for every registration (distinct kids): key generation stays off the clock.
    let key = Arc::new(AgentKey::generate(String::new()).public());
    let states = clients
        .iter()
        .enumerate()
        .map(|(task, client)| Registrar {
            client: client.clone(),
            task,
            sent: 0,
            run: run.clone(),
            key: key.clone(),
            users,
        })
        .collect();
    let (lat, wall) = drive(seconds, None, states, |mut r: Registrar| async move {
        let seed = ((r.task as u64) << 32) | r.sent as u64;
        let agent = format!("bench-{}-{}-{}", r.run, r.task, r.sent);
        let key = pb::DeviceKey {
            kid: format!("{agent}-pop"),
            ..(*r.key).clone()
        };
        let user = format!("user-{:07}", mix(seed, 203) % r.users);
        r.sent += 1;
        let step = match r.client.register_device(registration(user, agent, key, seed)).await {
            Ok(response) if response.get_ref().created => Step::Ok(false),
            Ok(_) => Step::Err("the device already existed".into()),
            Err(status) => Step::Err(format!("{:?}: {}", status.code(), status.message())),
        };
        (r, step)
    })
    .await;
    report("RegisterDevice (new device)", lat, wall, None)
}

struct Verifier {
    client: DeviceServiceClient<Channel>,
    requests: Arc<Vec<pb::VerifyDeviceAssertionRequest>>,
    next: Arc<AtomicUsize>,
}

/// `VerifyDeviceAssertion` over gRPC with 16 and 64 callers, then (diagnostic) the store calls the RPC makes,
/// straight on the database: how much of a verification is storage.
async fn verify_phase(seconds: u64, clients: &[DeviceServiceClient<Channel>], database_url: &str) -> Vec<PhaseResult> {
    // Enroll the agents first, through the API.
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let began = Instant::now();
    let agents: Vec<(String, AgentKey)> = (0..VERIFY_DEVICES)
        .map(|i| {
            (
                format!("verify-user-{i:05}"),
                AgentKey::generate(format!("verify-{run}-{i}-pop")),
            )
        })
        .collect();
    let agents = Arc::new(agents);
    let mut tasks = Vec::new();
    for (t, client) in clients.iter().enumerate() {
        let (mut client, agents, run) = (client.clone(), agents.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..agents.len()).step_by(CONCURRENCY) {
                let (user, key) = &agents[i];
                let request = registration(user.clone(), format!("verify-{run}-{i}"), key.public(), i as u64);
                client.register_device(request).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    println!(
        "  enrolled {VERIFY_DEVICES} agents through RegisterDevice in {:.1} s",
        began.elapsed().as_secs_f64()
    );

    // Sign every assertion before the window, on all cores, so signing does not compete with it.
    let total = VERIFY_MAX_RATE * usize::try_from(seconds).unwrap() * VERIFY_CALLERS_PER_CHANNEL.len();
    let began = Instant::now();
    let now = now_micros() / 1_000_000;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let requests: Vec<pb::VerifyDeviceAssertionRequest> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let agents = &agents;
                    let run = &run;
                    scope.spawn(move || {
                        (t..total)
                            .step_by(threads)
                            .map(|k| {
                                let (user, key) = &agents[k % agents.len()];
                                let nonce = format!("nonce-{k}");
                                pb::VerifyDeviceAssertionRequest {
                                    assertion: key.assertion(user, &nonce, &format!("{run}-{k}"), now),
                                    audience: AUDIENCE.into(),
                                    nonce,
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        })
    });
    println!(
        "  signed {} assertions in {:.1} s (before the timed window)",
        requests.len(),
        began.elapsed().as_secs_f64()
    );

    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let mut results = Vec::new();
    for per_channel in VERIFY_CALLERS_PER_CHANNEL {
        let states = clients
            .iter()
            .cycle()
            .take(clients.len() * per_channel)
            .map(|c| Verifier {
                client: c.clone(),
                requests: requests.clone(),
                next: next.clone(),
            })
            .collect::<Vec<_>>();
        let name = format!("VerifyDeviceAssertion, {} callers", states.len());
        let (lat, wall) = drive(seconds, None, states, |mut v: Verifier| async move {
            let i = v.next.fetch_add(1, Ordering::Relaxed);
            let Some(request) = v.requests.get(i).cloned() else {
                return (v, Step::Stop);
            };
            let step = match v.client.verify_device_assertion(request).await {
                Ok(_) => Step::Ok(false),
                Err(status) => Step::Err(format!("{:?}: {}", status.code(), status.message())),
            };
            (v, step)
        })
        .await;
        if next.load(Ordering::Relaxed) >= requests.len() {
            println!("  note: all pre-signed assertions were used before the window ended");
        }
        results.push(report(&name, lat, wall, None));
    }

    // The store calls of one verification (key_and_device, then the replay ledger's claim),
    // without gRPC, TLS, JSON or ECDSA, through a second pool of the service's size.
    let database = service_kit::db::connect(database_url, db_connections(), device_svc::MIGRATIONS)
        .await
        .unwrap();
    let ledger = device_svc::replay::ReplayLedger::start(database.clone());
    let store = device_svc::store::Store::new(database);
    let lookups = device_svc::key_lookup::KeyLookups::start(store.clone());
    let kids: Arc<Vec<String>> = Arc::new(agents.iter().map(|(_, key)| key.kid.clone()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let expires = now_micros() / 1_000_000 + 300;
    let states = (0..clients.len())
        .map(|_| (lookups.clone(), ledger.clone(), kids.clone(), next.clone(), run.clone()))
        .collect();
    let (lat, wall) = drive(
        seconds,
        None,
        states,
        move |(lookups, ledger, kids, next, run)| async move {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let step = async {
                lookups
                    .key_and_device(&kids[k % kids.len()])
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "unknown key".to_owned())?;
                if !ledger
                    .claim(&format!("store-{run}-{k}"), expires)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err("replayed".to_owned());
                }
                Ok::<_, String>(())
            }
            .await;
            let step = match step {
                Ok(()) => Step::Ok(false),
                Err(e) => Step::Err(e),
            };
            ((lookups, ledger, kids, next, run), step)
        },
    )
    .await;
    let direct = report("diag: Verify's store calls only (no gRPC/TLS/ECDSA)", lat, wall, None);
    store.pool().close().await;
    results.push(direct);
    results
}

// ---------------------------------------------------------------------------------------------
// Query plans

/// The statement store.rs runs for a first `ListDevices` page (or `CountDevices`) with this
/// filter and search, and its values.
fn store_query(filter: &str, search: &str, count: bool) -> (String, Vec<SqlValue>) {
    let mut condition = compile_filter(filter, device_svc::api::DEVICE_FIELDS, 1).unwrap();
    if !search.is_empty() {
        let extra = device_svc::store::search_condition(search, condition.values.len() + 1);
        condition.sql = if condition.sql.is_empty() {
            extra.sql
        } else {
            format!("{} AND {}", condition.sql, extra.sql)
        };
        condition.values.extend(extra.values);
    }
    let where_clause = if condition.sql.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", condition.sql)
    };
    let sql = if count {
        format!("SELECT COUNT(*) FROM devices{where_clause}")
    } else {
        format!(
            "SELECT * FROM devices{where_clause} ORDER BY id LIMIT {}",
            PAGE_SIZE + 1
        )
    };
    (sql, condition.values)
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    values: &'q [SqlValue],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for value in values {
        query = match value {
            SqlValue::Text(s) => query.bind(s.as_str()),
            SqlValue::Int(n) => query.bind(*n),
        };
    }
    query
}

/// Prints the plan of each read query and how long it takes straight on the database.
async fn explain(db: &BenchDatabase, queries: &[(&str, String, String, bool)]) {
    let pool = AnyPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    for (label, filter, search, count) in queries {
        let (sql, values) = store_query(filter, search, *count);
        // A new connection per query: the first run shows a cold connection (its own page cache
        // empty, as in a busy pool), the best of three a warm one.
        let mut conn = AnyConnection::connect(&db.url).await.unwrap();
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            bind_all(sqlx::query(&sql), &values).fetch_all(&mut conn).await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        conn.close().await.ok();
        println!(
            "\n{label}: straight on the database {:.2} ms on a new connection, {:.2} ms best of 3",
            times[0],
            times.iter().copied().fold(f64::INFINITY, f64::min)
        );
        println!("  {sql}");
        let shown: Vec<String> = values
            .iter()
            .map(|v| match v {
                SqlValue::Text(s) => format!("{s:?}"),
                SqlValue::Int(n) => n.to_string(),
            })
            .collect();
        println!("  values: [{}]", shown.join(", "));
        match db.backend {
            Backend::Sqlite => {
                let plan = format!("EXPLAIN QUERY PLAN {sql}");
                for row in bind_all(sqlx::query(&plan), &values).fetch_all(&pool).await.unwrap() {
                    let detail: String = row.try_get("detail").unwrap();
                    let parent: i64 = row.try_get("parent").unwrap();
                    println!("  {}{detail}", if parent == 0 { "" } else { "  " });
                }
            }
            Backend::Postgres => {
                let plan = format!("EXPLAIN (ANALYZE, BUFFERS) {sql}");
                for row in bind_all(sqlx::query(&plan), &values).fetch_all(&pool).await.unwrap() {
                    let line: String = row.try_get(0).unwrap();
                    println!("  {line}");
                }
            }
        }
    }
    pool.close().await;
}

// ---------------------------------------------------------------------------------------------

async fn bench(args: Args, pki: Arc<TestPki>, db: Arc<BenchDatabase>) -> Vec<PhaseResult> {
    let run_began = Instant::now();
    let service = Service::start(&pki, &db.url).await;
    println!(
        "device-svc migrated and serving on {} ({} database connections)",
        service.addr,
        db_connections()
    );

    println!(
        "\nseeding {} devices ({}-row INSERTs, {} devices per transaction)",
        args.count, SEED_BATCH, SEED_TX_DEVICES
    );
    let now = now_micros();
    let mut serials = Vec::new();
    let seeded = seed(&db, args.count, now, &mut serials).await;
    let insert_secs = seeded.insert.as_secs_f64();
    println!(
        "seeded {} devices, {} rows in {insert_secs:.1} s: {:.0} rows/s, {:.0} devices/s; {} {:.1} s; database {:.0} MiB",
        seeded.devices,
        seeded.rows,
        seeded.rows as f64 / insert_secs,
        seeded.devices as f64 / insert_secs,
        if db.backend == Backend::Sqlite {
            "ANALYZE"
        } else {
            "VACUUM (ANALYZE)"
        },
        seeded.analyze.as_secs_f64(),
        seeded.bytes as f64 / (1024.0 * 1024.0),
    );
    // Restart so that every pooled connection plans with the new statistics.
    service.stop().await;
    let service = Service::start(&pki, &db.url).await;
    println!(
        "device-svc restarted on {}; load average {}",
        service.addr,
        load_average()
    );

    let viewer_tls = pki.operator("bench-viewer", Role::Viewer);
    let gateway_tls = pki.service("gateway");
    let viewers = clients(service.addr, &viewer_tls, CONCURRENCY).await;
    let gateways = clients(service.addr, &gateway_tls, CONCURRENCY).await;
    let s = args.seconds;
    let mut results = Vec::new();

    let by_platform = r#"platform = "WINDOWS" AND status = "ACTIVE""#.to_owned();
    let six_months_ago = rfc3339(now - 182 * MICROS_PER_DAY);
    let managed_recent = format!(r#"managed = true AND create_time > "{six_months_ago}""#);
    let selective: Vec<String> = serials.iter().map(|s| s.chars().take(6).collect()).collect();
    let broad = vec!["C02".to_owned()];

    println!("\n== phases: {CONCURRENCY} client tasks, one mTLS channel each, {s} s each ==");
    results.push(list_phase(&format!("ListDevices {by_platform}"), s, &viewers, &by_platform, &[]).await);
    results.push(
        list_phase(
            "ListDevices managed = true AND create_time > <6 months ago>",
            s,
            &viewers,
            &managed_recent,
            &[],
        )
        .await,
    );
    results.push(list_phase("ListDevices search=<6-char serial prefix>", s, &viewers, "", &selective).await);
    results.push(list_phase("ListDevices search=\"C02\" (broad prefix)", s, &viewers, "", &broad).await);
    results.push(
        count_phase(
            r#"CountDevices platform = "WINDOWS""#,
            s,
            &viewers,
            r#"platform = "WINDOWS""#,
        )
        .await,
    );
    results.push(count_phase("CountDevices (no filter)", s, &viewers, "").await);
    // Plans of the read queries on the seeded registry, before the write phases add to it.
    println!("\n== query plans (first page / count), on a separate connection ==");
    explain(
        &db,
        &[
            (
                "ListDevices by platform and status",
                by_platform.clone(),
                String::new(),
                false,
            ),
            (
                "ListDevices managed and recent",
                managed_recent.clone(),
                String::new(),
                false,
            ),
            (
                "ListDevices search selective",
                String::new(),
                selective.first().cloned().unwrap_or_default(),
                false,
            ),
            ("ListDevices search broad", String::new(), "C02".into(), false),
            (
                "CountDevices platform",
                r#"platform = "WINDOWS""#.into(),
                String::new(),
                true,
            ),
            ("CountDevices all", String::new(), String::new(), true),
        ],
    )
    .await;

    results.push(register_phase(s, &gateways, (args.count / 2).max(1) as u64).await);
    results.extend(verify_phase(s, &gateways, &db.url).await);

    drop((viewers, gateways));
    service.stop().await;
    println!(
        "\nwhole run: {:.0} s; load average {}",
        run_began.elapsed().as_secs_f64(),
        load_average()
    );

    let backend = db.backend.name();
    let n = args.count;
    println!("\n## device-svc, {backend}, {n} devices (nproc {})\n", nproc());
    println!(
        "Seeding: {} devices / {} rows in {insert_secs:.1} s ({:.0} rows/s), then {} in {:.1} s.\n",
        seeded.devices,
        seeded.rows,
        seeded.rows as f64 / insert_secs,
        if db.backend == Backend::Sqlite {
            "ANALYZE"
        } else {
            "VACUUM (ANALYZE)"
        },
        seeded.analyze.as_secs_f64()
    );
    test_support::bench::print_table(backend, n, &results);
    results
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let results = test_support::bench::run("device_registry", "devices", parse_args(), "devices.db", bench).await;
    let list_p99 = results.first().map_or(f64::NAN, |r| r.p99);
    let verify_rate = results
        .iter()
        .filter(|r| r.name.starts_with("VerifyDeviceAssertion"))
        .map(|r| r.rate)
        .fold(f64::NAN, f64::max);
    println!(
        "\ntargets: ListDevices p99 {list_p99:.2} ms (target <= {LIST_P99_TARGET_MS} ms): {}; \
         VerifyDeviceAssertion {verify_rate:.0}/s (target >= {VERIFY_RATE_TARGET}/s): {}",
        test_support::bench::verdict(list_p99 <= LIST_P99_TARGET_MS),
        test_support::bench::verdict(verify_rate >= VERIFY_RATE_TARGET)
    );
}
