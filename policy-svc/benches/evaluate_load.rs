//! Load generator for `Evaluate`: how many sign-in decisions policy-svc makes per second over real
//! mTLS gRPC, each one recorded as a decision event, with the gateway's calls multiplexed over a
//! few HTTP/2 channels.
//!
//! ```text
//! cargo bench -p policy-svc --bench evaluate_load -- [--users N] [--backend sqlite|postgres] [--seconds S]
//! ```
//!
//! Defaults: 10,000 users, SQLite, 10 s per window. With `--backend postgres` a fresh database is
//! made on the server at `PORTCULLIS_BENCH_DATABASE_URL` (default the local server, trust auth)
//! and dropped at the end. `PORTCULLIS_BENCH_SHAPES` sets the windows as `channels x in-flight`
//! pairs (default `1x64,2x64,2x128,4x128,4x256,8x512`); `PORTCULLIS_BENCH_DB_CONNECTIONS` sets
//! the service's database connections (default: the service's own).
//!
//! What it does:
//! 1. starts policy-svc in-process on `127.0.0.1:0` with real mTLS (a throwaway test PKI) and
//!    applies, through `ApplyConfiguration` as an admin, a configuration with four network zones
//!    (one behind trusted proxies, one a block zone), five device assurance policies (one with a
//!    grace period), a contractors' global session policy beside the default, an 11-rule sign-in
//!    policy (people, platforms, device and assurance, zones, risk and two expressions, then the
//!    catch-all) for the main app and two smaller policies for two more apps;
//! 2. builds one sign-in context per user (groups, department, a device of some platform and OS
//!    version or none, an address in some zone or behind the proxies, risk, factors) and
//!    evaluates each once, untimed: a device's first sign-in reads its assurance failures, and a
//!    failing device records its first failure. It prints which rule decided how many;
//! 3. runs one window per shape, drawing contexts in turn, after 3 s of the same load untimed (so
//!    the decision log's queue is as the load leaves it, not empty), and prints decisions/s,
//!    latency percentiles, the decision events written meanwhile and where the CPU went;
//! 4. waits for the decision log to drain, then checks that the events recorded equal the
//!    decisions answered;
//! 5. times the parts apart: a bare gRPC round trip (`ValidateExpression`), `decide` alone on one
//!    thread, and the decision log's INSERT alone in batches of 2,000 and of 100;
//! 6. prints a Markdown table of every window and the verdict against the target.
//!
//! Client and service share the runtime and the machine's cores, so the figures are for the
//! whole round trip on this host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use policy_svc::config::PolicyConfig;
use portcullis_proto::device::v1::{DiskEncryptionType, Platform, ScreenLockType};
use portcullis_proto::policy::v1 as pb;
use portcullis_proto::policy::v1::policy_service_client::PolicyServiceClient;
use service_kit::identity::Role;
use service_kit::shutdown::Shutdown;
use service_kit::tls::TlsMaterial;
use sqlx::Row;
use test_support::bench::{
    Args, Backend, BenchDatabase, CpuTimes, CpuUse, PhaseResult, Step, drive, parse_args, report, run, usage_error,
    verdict,
};
use test_support::{TestPki, channel, wait_until_ready};
use tokio::net::TcpListener;
use tonic::transport::Channel;

const USAGE: &str = concat!(
    "usage: cargo bench -p policy-svc --bench evaluate_load -- ",
    "[--users N] [--backend sqlite|postgres] [--seconds S]\n",
    "environment: PORTCULLIS_BENCH_SHAPES=1x64,4x256 (channels x calls in flight), ",
    "PORTCULLIS_BENCH_DB_CONNECTIONS=N"
);
/// Target: decisions per second, client and service on the same two cores.
const RATE_TARGET: f64 = 20_000.0;
/// Windows tried unless `PORTCULLIS_BENCH_SHAPES` says otherwise: (channels, calls in flight).
const DEFAULT_SHAPES: &str = "1x64,2x64,2x128,4x128,4x256,8x512";
/// Seconds of untimed load before each window.
const LEAD_IN_SECONDS: u64 = 3;
/// How long to wait for the decision log to write everything answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

type Client = PolicyServiceClient<Channel>;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args(
        "users",
        Args {
            count: 10_000,
            backend: Backend::Sqlite,
            seconds: 10,
        },
        USAGE,
    );
    let shapes = shapes();
    let measured: Arc<Mutex<Measured>> = Arc::default();
    let into = measured.clone();
    run(
        "evaluate_load",
        "users",
        args,
        "policy-bench.db",
        move |args, pki, db| async move { bench(args, shapes, pki, db, into).await },
    )
    .await;
    let Measured {
        windows,
        answered,
        recorded,
    } = std::mem::take(&mut *measured.lock().unwrap());
    println!();
    println!(
        "| backend | phase | per second | p50 ms | p90 ms | p99 ms | CPU cores: bench process / others / idle | core-µs each (all processes) |"
    );
    println!("|---|---|---:|---:|---:|---:|---|---:|");
    // The first pass is left out: it also reads, and records, every device's first failures.
    for Window { result, cpu, .. } in windows.iter().skip(1) {
        let errors = if result.errors > 0 {
            format!(" ({} errors)", result.errors)
        } else {
            String::new()
        };
        let (cpu_text, per_call) = match cpu {
            Some(cpu) => (
                format!("{:.2} / {:.2} / {:.2}", cpu.process, cpu.others, cpu.idle),
                format!("{:.0}", (cpu.process + cpu.others) * 1e6 / result.rate),
            ),
            None => ("—".to_owned(), "—".to_owned()),
        };
        println!(
            "| {} | {}{errors} | {:.0} | {:.3} | {:.3} | {:.3} | {cpu_text} | {per_call} |",
            args.backend.name(),
            result.name,
            result.rate,
            result.p50,
            result.p90,
            result.p99
        );
    }
    let best = windows
        .iter()
        .filter(|w| w.shape.is_some() && w.result.errors == 0)
        .max_by(|a, b| a.result.rate.total_cmp(&b.result.rate));
    match best {
        Some(best) => {
            let (channels, in_flight) = best.shape.unwrap_or_default();
            println!(
                "target: Evaluate >= {RATE_TARGET:.0} decisions/s on {} cores: best {:.0}/s ({channels} channels, {in_flight} in flight, p99 {:.2} ms), {}",
                test_support::bench::nproc(),
                best.result.rate,
                best.result.p99,
                verdict(best.result.rate >= RATE_TARGET)
            );
        }
        None => println!("target: Evaluate >= {RATE_TARGET:.0} decisions/s: no window without errors, MISSED"),
    }
    println!(
        "decision events: {recorded} recorded for {answered} decisions answered: {}",
        if recorded == answered {
            "every decision recorded"
        } else {
            "MISMATCH"
        }
    );
    println!("load average at the end: {}", test_support::bench::load_average());
    if recorded != answered {
        std::process::exit(1);
    }
}

/// `PORTCULLIS_BENCH_SHAPES`, or the default windows.
fn shapes() -> Vec<(usize, usize)> {
    let text = std::env::var("PORTCULLIS_BENCH_SHAPES")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SHAPES.to_owned());
    text.split(',')
        .map(|pair| {
            let parsed = pair
                .trim()
                .split_once('x')
                .and_then(|(c, n)| Some((c.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)))
                .filter(|(c, n)| *c > 0 && *n > 0);
            parsed.unwrap_or_else(|| usage_error(USAGE, &format!("bad shape {pair:?} in PORTCULLIS_BENCH_SHAPES")))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The configuration under load

/// Zones, assurance policies, global session policies and three apps' sign-in policies, as an
/// operator might keep them in a repository. The portal's policy is the one most sign-ins meet.
const CONFIGURATION: &str = r#"
apps:
  - name: Portal
    client_id: portal
    client_type: PUBLIC
    redirect_uris: [https://portal.example.com/callback]
    access_policy: Portal access
  - name: Vault
    client_id: vault
    client_type: CONFIDENTIAL
    redirect_uris: [https://vault.example.com/oidc/callback]
    access_policy: Vault access
  - name: Wiki
    client_id: wiki
    client_type: PUBLIC
    redirect_uris: [https://wiki.example.com/callback]
    access_policy: Wiki access
network_zones:
  - name: Office
    kind: POLICY
    gateways: [198.51.100.0/24]
    proxies: [10.0.0.1, 10.0.0.2]
  - name: Branch
    kind: POLICY
    gateways: [203.0.113.128/25]
  - name: VPN
    kind: POLICY
    gateways: [100.64.0.0/10]
  - name: Blocked
    kind: BLOCK
    gateways: [203.0.113.66, 203.0.113.67]
device_assurance_policies:
  - name: macOS 14
    platform: MACOS
    minimum_os_version: "14.0"
    disk_encryption_types: [ALL_INTERNAL_VOLUMES]
    remediation: Update macOS to 14 or later in System Settings.
  - name: macOS 15 with grace
    platform: MACOS
    minimum_os_version: "15.0"
    grace:
      for_seconds: 86400
    remediation: Update macOS to 15 within a day.
  - name: Windows 11
    platform: WINDOWS
    minimum_os_version: "10.0.22000"
    disk_encryption_types: [ALL_INTERNAL_VOLUMES]
    secure_hardware_required: true
    remediation: Upgrade to Windows 11 and turn on BitLocker.
  - name: iOS 17
    platform: IOS
    minimum_os_version: "17.0"
    jailbreak_forbidden: true
    remediation: Update iOS to 17 or later.
  - name: Android 14
    platform: ANDROID
    minimum_os_version: "14"
    jailbreak_forbidden: true
    remediation: Update Android to 14 or later.
global_session_policies:
  - name: Contractors
    priority: 1
    group_ids: [g-contractors]
    rules:
      - name: Contractors need MFA
        actions:
          session:
            access: ALLOW
            primary_factor: PASSWORD
            mfa_required: true
            session_idle_timeout_secs: 900
            session_max_lifetime_secs: 3600
      - name: Catch-all Rule
        catch_all: true
        actions:
          session:
            access: DENY
            primary_factor: PASSWORD
            session_idle_timeout_secs: 900
            session_max_lifetime_secs: 3600
  - name: Default Policy
    default: true
    rules:
      - name: Catch-all Rule
        catch_all: true
        actions:
          session:
            access: ALLOW
            primary_factor: ANY_APP_POLICY_FACTOR
            session_idle_timeout_secs: 7200
            session_max_lifetime_secs: 86400
access_policies:
  - name: Vault access
    rules:
      - name: Compliant Macs only
        conditions:
          device:
            managed: true
            assurance: [macOS 14]
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: Catch-all Rule
        catch_all: true
        actions:
          access: {access: DENY, factor_mode: TWO_FACTOR}
  - name: Wiki access
    rules:
      - name: Staff anywhere
        conditions:
          people:
            include_groups: [g-everyone]
            exclude_groups: [g-contractors]
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: Catch-all Rule
        catch_all: true
        actions:
          access: {access: DENY, factor_mode: TWO_FACTOR}
  - name: Portal access
    rules:
      - name: Deny high risk
        conditions:
          risk: [HIGH]
        actions:
          access: {access: DENY, factor_mode: ONE_FACTOR}
      - name: Finance by expression
        conditions:
          expression: "user.profile.department == 'Finance' && !user.isMemberOf({'group.profile.name': 'Auditors'})"
        actions:
          access: {access: DENY, factor_mode: ONE_FACTOR}
      - name: Engineers on managed Macs
        conditions:
          people:
            include_groups: [g-eng]
            exclude_users: [u-13]
          platform:
            - kind: DESKTOP
              os: MACOS
          device:
            registered: true
            managed: true
            assurance: [macOS 14]
        actions:
          access:
            access: ALLOW
            factor_mode: ONE_FACTOR
            constraints:
              - class: POSSESSION
                types: [FASTPASS]
                phishing_resistant: true
                device_bound: true
      - name: Engineers on managed Windows
        conditions:
          people:
            include_groups: [g-eng]
          platform:
            - kind: DESKTOP
              os: WINDOWS
          device:
            managed: true
            assurance: [Windows 11]
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: Grace for Macs
        conditions:
          people:
            include_groups: [g-grace]
          device:
            assurance: [macOS 15 with grace]
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: Phones with a current OS
        conditions:
          platform:
            - kind: MOBILE
          device:
            registered: true
            assurance: [iOS 17, Android 14]
        actions:
          access: {access: ALLOW, factor_mode: TWO_FACTOR}
      - name: Sales at the branch
        conditions:
          people:
            include_groups: [g-sales]
          network:
            zones_in: [Branch]
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: Support on current managed devices
        conditions:
          expression: "user.profile.department == 'Support' && device.managed == true && device.profile.osVersion.versionGreaterThan('14')"
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: VPN
        conditions:
          network:
            zones_in: [VPN]
        actions:
          access: {access: ALLOW, factor_mode: TWO_FACTOR}
      - name: Office network
        conditions:
          network:
            zones_in: [Office]
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: Everyone else
        conditions:
          network:
            zones_not_in: [Office]
        actions:
          access:
            access: ALLOW
            factor_mode: TWO_FACTOR
            constraints:
              - class: KNOWLEDGE
                types: [PASSWORD]
              - class: POSSESSION
                types: [TOTP]
      - name: Catch-all Rule
        catch_all: true
        actions:
          access: {access: DENY, factor_mode: TWO_FACTOR}
"#;

// ---------------------------------------------------------------------------------------------
// Sign-in contexts

/// A small deterministic generator (SplitMix64), so every run draws the same population.
struct Draw(u64);

impl Draw {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A whole percentage, 0..100.
    fn percent(&mut self) -> u64 {
        self.next() % 100
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.next() % items.len() as u64).unwrap()]
    }
}

fn proven(kind: pb::FactorType, phishing_resistant: bool, now: i64) -> pb::ProvenFactor {
    pb::ProvenFactor {
        r#type: kind as i32,
        phishing_resistant,
        hardware_protected: phishing_resistant,
        device_bound: phishing_resistant,
        user_presence: phishing_resistant,
        user_verification: false,
        verify_time: Some(service_kit::clock::timestamp(now - 30_000_000)),
    }
}

/// User `k`'s sign-in: who they are, their device, where they are and what they proved.
fn sign_in(k: usize, now: i64) -> pb::SignInContext {
    let mut draw = Draw::new(k as u64);
    let department = match draw.percent() {
        0..30 => "Engineering",
        30..50 => "Sales",
        50..58 => "Finance",
        58..70 => "Support",
        70..85 => "Marketing",
        _ => "Operations",
    };
    let mut groups = vec![("g-everyone", "Everyone")];
    match department {
        "Engineering" => groups.push(("g-eng", "Engineering")),
        "Sales" => groups.push(("g-sales", "Sales")),
        "Finance" if draw.percent() < 25 => groups.push(("g-aud", "Auditors")),
        _ => {}
    }
    if draw.percent() < 5 {
        groups.push(("g-contractors", "Contractors"));
    }
    if draw.percent() < 8 {
        groups.push(("g-grace", "Grace"));
    }
    let device = (draw.percent() < 75).then(|| {
        let (platform, version, disk) = match draw.percent() {
            0..35 => (
                Platform::Macos,
                draw.pick(&["13.6.1", "14.2.1", "14.5", "15.1", "15.3.2"]),
                DiskEncryptionType::AllInternalVolumes,
            ),
            35..70 => (
                Platform::Windows,
                draw.pick(&["10.0.19045", "10.0.22631", "10.0.26100"]),
                DiskEncryptionType::AllInternalVolumes,
            ),
            70..85 => (
                Platform::Ios,
                draw.pick(&["16.7.8", "17.4", "18.1"]),
                DiskEncryptionType::Full,
            ),
            85..95 => (
                Platform::Android,
                draw.pick(&["13", "14", "15"]),
                DiskEncryptionType::Full,
            ),
            _ => (Platform::Linux, "6.8", DiskEncryptionType::None),
        };
        pb::DeviceContext {
            id: format!("d-{k}"),
            registered: draw.percent() < 95,
            managed: draw.percent() < 70,
            management_source: 0,
            status: "ACTIVE".to_owned(),
            platform: platform as i32,
            os_version: version.to_owned(),
            disk_encryption: disk as i32,
            screen_lock: ScreenLockType::Biometric as i32,
            secure_hardware: Some(draw.percent() < 80),
            jailbroken: Some(draw.percent() < 2),
            profile: Default::default(),
            signals: Default::default(),
        }
    });
    let host = draw.next() % 250 + 1;
    let (address, forwarded_for) = match draw.percent() {
        0..20 => (format!("198.51.100.{host}"), Vec::new()),
        20..30 => ("10.0.0.1".to_owned(), vec![format!("198.51.100.{host}, 10.0.0.2")]),
        30..40 => (format!("203.0.113.{}", 128 + host % 127), Vec::new()),
        40..50 => (
            format!("100.{}.{}.{host}", 64 + host % 64, draw.next() % 256),
            Vec::new(),
        ),
        50..51 => ("203.0.113.66".to_owned(), Vec::new()),
        _ => (format!("192.0.2.{host}"), Vec::new()),
    };
    let risk = match draw.percent() {
        0..85 => pb::RiskLevel::Low,
        85..97 => pb::RiskLevel::Medium,
        _ => pb::RiskLevel::High,
    };
    let mut factors = Vec::new();
    if draw.percent() < 70 {
        factors.push(proven(pb::FactorType::Password, false, now));
    }
    if device.is_some() && draw.percent() < 60 {
        factors.push(proven(pb::FactorType::Fastpass, true, now));
    }
    if draw.percent() < 30 {
        factors.push(proven(pb::FactorType::Totp, false, now));
    }
    let client_id = match draw.percent() {
        0..10 => "vault",
        10..15 => "wiki",
        _ => "portal",
    };
    pb::SignInContext {
        client_id: client_id.to_owned(),
        user: Some(pb::UserContext {
            id: format!("u-{k}"),
            status: "ACTIVE".to_owned(),
            groups: groups
                .into_iter()
                .map(|(id, name)| pb::GroupRef {
                    id: id.to_owned(),
                    name: name.to_owned(),
                })
                .collect(),
            profile: [
                ("department".to_owned(), department.to_owned()),
                ("login".to_owned(), format!("user{k}@example.com")),
            ]
            .into_iter()
            .collect(),
        }),
        device,
        network: Some(pb::NetworkContext {
            client_address: address,
            forwarded_for,
        }),
        risk_level: risk as i32,
        factors,
        session_last_activity_time: None,
        behaviors: Vec::new(),
    }
}

/// What decided: the access rule, or the reason code when no access rule was reached.
fn decided_by(decision: &pb::Decision) -> String {
    let app_rule = decision
        .matched
        .iter()
        .find(|m| m.policy_type == pb::PolicyType::Access as i32)
        .map(|m| format!("{} / {}", m.policy_name, m.rule_name));
    let outcome = pb::Outcome::try_from(decision.outcome).map_or("?", |o| match o {
        pb::Outcome::Allow => "ALLOW",
        pb::Outcome::Deny => "DENY",
        pb::Outcome::Challenge => "CHALLENGE",
        pb::Outcome::Unspecified => "UNSPECIFIED",
    });
    format!(
        "{} → {outcome} ({})",
        app_rule.unwrap_or_else(|| "(no app rule)".to_owned()),
        decision.reason_code
    )
}

// ---------------------------------------------------------------------------------------------
// The service

struct Service {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), policy_svc::RunError>>,
}

async fn start(pki: &TestPki, database_url: &str) -> Service {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let mut settings = test_support::service_settings(pki, "policy-svc", database_url);
    if let Ok(connections) = std::env::var("PORTCULLIS_BENCH_DB_CONNECTIONS") {
        settings.set("database_max_connections", connections);
    }
    let config = PolicyConfig::from_settings(&settings).unwrap();
    println!(
        "policy-svc: {} database connections, concurrency limit {}",
        config.database_max_connections, config.server.concurrency_limit
    );
    let shutdown = Shutdown::new();
    let task = tokio::spawn(policy_svc::serve_on(config, grpc, admin, shutdown.clone()));
    let viewer = PolicyServiceClient::new(
        channel(addr, &pki.operator("bench-viewer", Role::Viewer))
            .await
            .unwrap(),
    );
    wait_until_ready(|| {
        let mut viewer = viewer.clone();
        async move { viewer.list_policies(pb::ListPoliciesRequest::default()).await }
    })
    .await;
    Service { addr, shutdown, task }
}

/// `count` clients sharing `channels` mTLS connections round-robin, as a gateway's replicas
/// multiplex their sign-ins over the few channels they hold.
async fn clients(addr: SocketAddr, tls: &TlsMaterial, channels: usize, count: usize) -> Vec<Client> {
    let mut connections = Vec::with_capacity(channels);
    for _ in 0..channels {
        connections.push(channel(addr, tls).await.unwrap());
    }
    (0..count)
        .map(|i| PolicyServiceClient::new(connections[i % connections.len()].clone()))
        .collect()
}

/// Decision events in the database now.
async fn events(pool: &sqlx::AnyPool) -> u64 {
    let row = sqlx::query("SELECT COUNT(*) FROM decision_events")
        .fetch_one(pool)
        .await
        .unwrap();
    u64::try_from(row.get::<i64, _>(0)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The run

/// One measured window, or the untimed first pass (`shape` None).
struct Window {
    shape: Option<(usize, usize)>,
    result: PhaseResult,
    cpu: Option<CpuUse>,
}

/// What a run hands back to `main` for the summary.
#[derive(Default)]
struct Measured {
    windows: Vec<Window>,
    /// Decisions answered, in every window and the first pass.
    answered: u64,
    /// Decision events in the database once the log has drained.
    recorded: u64,
}

async fn bench(
    args: Args,
    shapes: Vec<(usize, usize)>,
    pki: Arc<TestPki>,
    db: Arc<BenchDatabase>,
    measured: Arc<Mutex<Measured>>,
) -> Vec<PhaseResult> {
    let service = start(&pki, &db.url).await;
    let mut admin = PolicyServiceClient::new(
        channel(service.addr, &pki.operator("bench-admin", Role::Admin))
            .await
            .unwrap(),
    );
    let applied = admin
        .apply_configuration(pb::ApplyConfigurationRequest {
            document: CONFIGURATION.to_owned(),
            format: pb::DocumentFormat::Yaml as i32,
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner();
    println!("applied the configuration: {} changes", applied.changes.len());
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();

    let now = service_kit::clock::now_micros();
    let contexts: Arc<Vec<pb::SignInContext>> = Arc::new((0..args.count).map(|k| sign_in(k, now)).collect());
    let gateway = pki.service("gateway");
    let mut answered: u64 = 0;

    // Every context once, untimed: first sign-ins of each device, and what decides what.
    let decided: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let states = clients(service.addr, &gateway, 2, 64).await;
    let first_pass = {
        let (contexts, decided, next) = (contexts.clone(), decided.clone(), next.clone());
        move |mut client: Client| {
            let (contexts, decided, next) = (contexts.clone(), decided.clone(), next.clone());
            async move {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(context) = contexts.get(i) else {
                    return (client, Step::Stop);
                };
                let step = match client
                    .evaluate(pb::EvaluateRequest {
                        context: Some(context.clone()),
                    })
                    .await
                {
                    Ok(response) => {
                        *decided
                            .lock()
                            .unwrap()
                            .entry(decided_by(response.get_ref()))
                            .or_default() += 1;
                        Step::Ok(false)
                    }
                    Err(status) => Step::Err(status.to_string()),
                };
                (client, step)
            }
        }
    };
    let (lat, wall) = drive(600, None, states, first_pass).await;
    answered += lat.all.len() as u64;
    let first = report(
        &format!(
            "first pass: each of {} users' sign-ins once, 2 channels, 64 in flight",
            args.count
        ),
        lat,
        wall,
        None,
    );
    println!("    what decided ({} rules and codes):", decided.lock().unwrap().len());
    for (what, count) in decided.lock().unwrap().iter() {
        println!("    {count:>7}  {what}");
    }
    let mut windows = vec![Window {
        shape: None,
        result: first,
        cpu: None,
    }];

    for (channels, in_flight) in shapes {
        let states: Vec<(Client, usize)> = clients(service.addr, &gateway, channels, in_flight)
            .await
            .into_iter()
            .enumerate()
            .map(|(i, client)| (client, i * 7919))
            .collect();
        let contexts = contexts.clone();
        let call = move |(mut client, n): (Client, usize)| {
            let contexts = contexts.clone();
            async move {
                let context = contexts[n % contexts.len()].clone();
                let step = match client.evaluate(pb::EvaluateRequest { context: Some(context) }).await {
                    Ok(_) => Step::Ok(false),
                    Err(status) => Step::Err(status.to_string()),
                };
                ((client, n + 1), step)
            }
        };
        // The same load untimed first, so the window starts with the decision log's queue as the
        // load leaves it (its 16,384 places would otherwise absorb the first seconds' writes).
        let lead_in = clients(service.addr, &gateway, channels, in_flight)
            .await
            .into_iter()
            .enumerate()
            .map(|(i, client)| (client, i * 104_729))
            .collect();
        let (lat, _) = drive(LEAD_IN_SECONDS, None, lead_in, call.clone()).await;
        answered += lat.all.len() as u64;
        let events_before = events(&pool).await;
        let cpu_before = CpuTimes::now();
        let (lat, wall) = drive(args.seconds, None, states, call).await;
        let cpu = cpu_before
            .zip(CpuTimes::now())
            .map(|(before, after)| after.since(&before, wall));
        let events_after = events(&pool).await;
        answered += lat.all.len() as u64;
        let result = report(
            &format!("Evaluate, {channels} channels, {in_flight} in flight"),
            lat,
            wall,
            None,
        );
        if let Some(cpu) = cpu {
            println!(
                "    CPU: this process {:.2} cores ({:.0} core-µs per decision), other processes {:.2}, idle {:.2}",
                cpu.process,
                cpu.process * 1e6 / result.rate,
                cpu.others,
                cpu.idle
            );
        }
        println!(
            "    decision events written during the window: {} ({:.0}/s); load average {}",
            events_after - events_before,
            (events_after - events_before) as f64 / wall.as_secs_f64(),
            test_support::bench::load_average()
        );
        windows.push(Window {
            shape: Some((channels, in_flight)),
            result,
            cpu,
        });
    }

    // Every answered decision must end up recorded: the log writes in batches behind the answers.
    let began = Instant::now();
    let mut recorded = events(&pool).await;
    while recorded < answered && began.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        recorded = events(&pool).await;
    }
    println!(
        "decisions answered: {answered}; decision events recorded: {recorded} ({}, after {:.1} s of draining)",
        if recorded == answered { "equal" } else { "NOT EQUAL" },
        began.elapsed().as_secs_f64()
    );
    pool.close().await;

    // Diagnostics: the parts of a decision apart.
    let best = windows
        .iter()
        .filter_map(|w| w.shape.map(|shape| (shape, w.result.rate)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or((2, 64), |(shape, _)| shape);
    windows.push(bare_grpc(&service, &pki, best, args.seconds).await);
    windows.push(decide_alone(&contexts, args.seconds.min(3)));
    for batch in [2_000, 100] {
        windows.push(log_alone(&db.url, batch, args.seconds.min(5)).await);
    }

    service.shutdown.trigger();
    service.task.await.unwrap().unwrap();
    let results = windows.iter().map(|w| w.result.clone()).collect();
    *measured.lock().unwrap() = Measured {
        windows,
        answered,
        recorded,
    };
    results
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

/// Runs `drive` as a reported window, with the CPU time each side used.
async fn measured<S, F, Fut>(name: &str, seconds: u64, states: Vec<S>, call: F) -> Window
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (S, Step)> + Send,
{
    let before = CpuTimes::now();
    let (lat, wall) = drive(seconds, None, states, call).await;
    let cpu = before
        .zip(CpuTimes::now())
        .map(|(before, after)| after.since(&before, wall));
    let result = report(name, lat, wall, None);
    print_cpu(cpu, result.rate, "call");
    Window {
        shape: None,
        result,
        cpu,
    }
}

fn print_cpu(cpu: Option<CpuUse>, rate: f64, per: &str) {
    if let Some(cpu) = cpu {
        println!(
            "    CPU: this process {:.2} cores ({:.1} core-µs per {per}), other processes {:.2}, idle {:.2}",
            cpu.process,
            cpu.process * 1e6 / rate,
            cpu.others,
            cpu.idle
        );
    }
}

/// (diagnostic) `ValidateExpression` of a short expression: the same mTLS, HTTP/2 and gRPC layers
/// as `Evaluate`, no database and next to no work: the transport's own ceiling on this machine.
async fn bare_grpc(service: &Service, pki: &TestPki, (channels, in_flight): (usize, usize), seconds: u64) -> Window {
    let viewer = pki.operator("bench-diagnostic", Role::Viewer);
    let states = clients(service.addr, &viewer, channels, in_flight).await;
    let call = |mut client: Client| async move {
        let step = match client
            .validate_expression(pb::ValidateExpressionRequest {
                expression: "user.profile.department == 'Support'".to_owned(),
            })
            .await
        {
            Ok(answer) if answer.get_ref().valid => Step::Ok(false),
            Ok(_) => Step::Err("invalid".to_owned()),
            Err(status) => Step::Err(status.to_string()),
        };
        (client, step)
    };
    measured(
        &format!("(diagnostic) ValidateExpression, gRPC + mTLS only, {channels} channels, {in_flight} in flight"),
        seconds,
        states,
        call,
    )
    .await
}

/// (diagnostic) `decide` alone on one thread, over the same contexts converted beforehand and
/// the same configuration compiled in process.
fn decide_alone(contexts: &[pb::SignInContext], seconds: u64) -> Window {
    use policy_svc::document::{self, Format};
    let now = service_kit::clock::now_micros();
    let mut config = policy_svc::model::Configuration::default();
    document::apply(&mut config, document::parse(CONFIGURATION, Format::Yaml).unwrap(), now).unwrap();
    let compiled = policy_svc::compiled::Compiled::build(1, Arc::new(config)).unwrap();
    let sign_ins: Vec<_> = contexts
        .iter()
        .map(|c| policy_svc::convert::sign_in_from_proto(Some(c.clone()), now).unwrap())
        .collect();
    let convert_began = Instant::now();
    for context in contexts {
        std::hint::black_box(policy_svc::convert::sign_in_from_proto(Some(context.clone()), now).unwrap());
    }
    let convert_micros = convert_began.elapsed().as_secs_f64() * 1e6 / contexts.len() as f64;
    let mut all = Vec::new();
    let began = Instant::now();
    let deadline = began + Duration::from_secs(seconds);
    'run: loop {
        for sign_in in &sign_ins {
            let t = Instant::now();
            std::hint::black_box(policy_svc::decide::decide(&compiled, sign_in, now, &|_| None, None));
            all.push(u64::try_from(t.elapsed().as_nanos()).unwrap());
            if t >= deadline {
                break 'run;
            }
        }
    }
    let wall = began.elapsed();
    let count = all.len();
    let total: u64 = all.iter().sum();
    all.sort_unstable();
    let name = "(diagnostic) decide alone, one thread, no gRPC";
    println!(
        "{name}: {count} decisions in {:.1} s: {:.0}/s; mean {:.2} µs, p50 {:.2} µs, p99 {:.2} µs; \
         converting a context from protobuf (with its clone) {convert_micros:.2} µs",
        wall.as_secs_f64(),
        count as f64 / wall.as_secs_f64(),
        total as f64 / count as f64 / 1000.0,
        all[count / 2] as f64 / 1000.0,
        all[count * 99 / 100] as f64 / 1000.0,
    );
    Window {
        shape: None,
        result: PhaseResult {
            name: name.to_owned(),
            errors: 0,
            rate: count as f64 / wall.as_secs_f64(),
            p50: all[count / 2] as f64 / 1e6,
            p90: all[count * 9 / 10] as f64 / 1e6,
            p99: all[count * 99 / 100] as f64 / 1e6,
            max: all[count - 1] as f64 / 1e6,
        },
        cpu: None,
    }
}

/// (diagnostic) The decision log's write alone: `Store::insert_decisions` on a connection of its
/// own, batch after batch of `batch` records like the ones `Evaluate` queues (the writer takes up
/// to 2,000 at a time; the store splits them into 500-row INSERTs in one transaction).
async fn log_alone(url: &str, batch: usize, seconds: u64) -> Window {
    let database = service_kit::db::connect(url, 1, policy_svc::MIGRATIONS).await.unwrap();
    let store = policy_svc::store::Store::new(database);
    let mut conn = store.database().pool.acquire().await.unwrap();
    let now = service_kit::clock::now_micros();
    let template: Vec<policy_svc::store::DecisionRecord> = (0..batch)
        .map(|i| policy_svc::store::DecisionRecord {
            id: String::new(),
            time: now,
            client_id: "portal".to_owned(),
            user_id: format!("u-{}", i * 7 % 10_000),
            device_id: format!("d-{}", i * 7 % 10_000),
            client_address: format!("192.0.2.{}", i % 250),
            outcome: "CHALLENGE".to_owned(),
            reason_code: "FACTORS_REQUIRED".to_owned(),
            reason: "rule \"Everyone else\" of \"Portal access\" needs one more factor: possession, TOTP".to_owned(),
            matched: format!(
                "[[\"{0}\",\"Default Policy\",\"{0}\",\"Catch-all Rule\"],[\"{0}\",\"Portal access\",\"{0}\",\"Everyone else\"]]",
                uuid::Uuid::now_v7()
            ),
            request_id: uuid::Uuid::now_v7().to_string(),
        })
        .collect();
    let mut all = Vec::new();
    let before = CpuTimes::now();
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(seconds) {
        let mut records = template.clone();
        for record in &mut records {
            record.id = uuid::Uuid::now_v7().to_string();
        }
        let t = Instant::now();
        store.insert_decisions(&mut conn, &records).await.unwrap();
        all.push(u64::try_from(t.elapsed().as_micros()).unwrap());
    }
    let wall = began.elapsed();
    let cpu = before
        .zip(CpuTimes::now())
        .map(|(before, after)| after.since(&before, wall));
    let mut lat = test_support::bench::Latencies::default();
    let batches = all.len();
    lat.all = all;
    let name = format!("(diagnostic) decision log INSERT alone, batches of {batch}");
    let mut result = report(&name, lat, wall, None);
    result.rate *= batch as f64;
    println!(
        "    {} records in {batches} batches: {:.0} records/s",
        batches * batch,
        result.rate
    );
    print_cpu(cpu, result.rate, "record");
    drop(conn);
    store.database().pool.close().await;
    Window {
        shape: None,
        result,
        cpu,
    }
}
