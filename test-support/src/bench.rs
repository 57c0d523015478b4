//! What the load generators share: the database a run uses (a SQLite file or a fresh
//! PostgreSQL database, dropped afterwards) and the machine facts they print.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row};

use crate::TempDir;

/// The PostgreSQL server load generators use unless `PORTCULLIS_BENCH_DATABASE_URL` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which database a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temp dir.
    Sqlite,
    /// A new database on a PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The number of processors, as `nproc` says.
pub fn nproc() -> String {
    std::process::Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into())
        })
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU time used so far by this process and by the whole machine, from `/proc` (Linux).
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    /// This process's user + system time, in clock ticks.
    process: u64,
    /// The machine's busy time (all but idle and iowait), summed over every CPU, in clock ticks.
    machine_busy: u64,
    /// The machine's total time, summed over every CPU, in clock ticks.
    machine_total: u64,
}

/// Where a window's CPU time went, in cores (1.0 = one CPU busy throughout).
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// This process (service and load generator, with all their threads).
    pub process: f64,
    /// Every other process on the machine (a database server, other work).
    pub others: f64,
    /// Left idle.
    pub idle: f64,
}

impl CpuTimes {
    /// Reads the counters now; `None` where `/proc` is missing.
    pub fn now() -> Option<Self> {
        // Both files count in USER_HZ ticks, which Linux fixes at 100 for user space.
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start at the state, field 3;
        // utime and stime are fields 14 and 15.
        let after_name = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let process = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let machine = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = machine
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let machine_total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
        Some(Self {
            process,
            machine_busy: machine_total - idle,
            machine_total,
        })
    }

    /// What was used between `earlier` and `self`, over `wall`.
    pub fn since(&self, earlier: &Self, wall: Duration) -> CpuUse {
        let seconds = wall.as_secs_f64().max(f64::MIN_POSITIVE);
        let cores = |ticks: u64| ticks as f64 / 100.0 / seconds;
        let process = cores(self.process.saturating_sub(earlier.process));
        let busy = cores(self.machine_busy.saturating_sub(earlier.machine_busy));
        let total = cores(self.machine_total.saturating_sub(earlier.machine_total));
        CpuUse {
            process,
            others: (busy - process).max(0.0),
            idle: (total - busy).max(0.0),
        }
    }
}

/// The database for one run: a SQLite file in a temp dir, or a new PostgreSQL database.
pub struct BenchDatabase {
    /// The URL to give the service.
    pub url: String,
    /// Which database.
    pub backend: Backend,
    /// For PostgreSQL: the server's admin URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl BenchDatabase {
    /// A fresh database; `file` names the SQLite file. PostgreSQL runs on the server at
    /// `PORTCULLIS_BENCH_DATABASE_URL` (default the local server, trust auth).
    pub async fn create(backend: Backend, file: &str) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = TempDir::new("bench");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join(file).display());
                Self {
                    url,
                    backend,
                    postgres: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("PORTCULLIS_BENCH_DATABASE_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
                let name = format!("pc_bench_{}", uuid::Uuid::now_v7().simple());
                let mut conn = AnyConnection::connect(&admin_url).await.expect("connect to PostgreSQL");
                conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
                conn.close().await.ok();
                let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
                let url = format!("{base}/{name}");
                Self {
                    url,
                    backend,
                    postgres: Some((admin_url, name)),
                    _dir: None,
                }
            }
        }
    }

    /// Bytes on disk.
    pub async fn size(&self, pool: &AnyPool) -> u64 {
        match self.backend {
            Backend::Sqlite => {
                let Some(dir) = &self._dir else { return 0 };
                std::fs::read_dir(dir.path())
                    .map(|entries| {
                        entries
                            .flatten()
                            .filter_map(|e| e.metadata().ok())
                            .map(|m| m.len())
                            .sum()
                    })
                    .unwrap_or(0)
            }
            Backend::Postgres => sqlx::query("SELECT pg_database_size(current_database())")
                .fetch_one(pool)
                .await
                .ok()
                .and_then(|row| row.try_get::<i64, _>(0).ok())
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
        }
    }

    /// Drops the PostgreSQL database; the SQLite temp dir goes with `self`.
    pub async fn remove(self) {
        if let Some((admin_url, name)) = &self.postgres {
            match AnyConnection::connect(admin_url).await {
                Ok(mut conn) => {
                    match conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await
                    {
                        Ok(_) => println!("dropped PostgreSQL database {name}"),
                        Err(e) => eprintln!("cannot drop database {name}: {e}"),
                    }
                    conn.close().await.ok();
                }
                Err(e) => eprintln!("cannot connect to drop database {name}: {e}"),
            }
        }
        if let Some(dir) = &self._dir {
            println!("removing SQLite files in {}", dir.path().display());
        }
    }
}

/// A load generator's command line: how many records to seed, which database, seconds per phase.
#[derive(Debug, Clone, Copy)]
pub struct Args {
    /// Records to seed (`--devices`, `--sessions`, …).
    pub count: usize,
    /// `--backend sqlite|postgres`.
    pub backend: Backend,
    /// `--seconds`: length of each phase.
    pub seconds: u64,
}

/// Prints `message` and `usage` and exits with 2.
pub fn usage_error(usage: &str, message: &str) -> ! {
    eprintln!("{message}\n{usage}");
    std::process::exit(2)
}

/// Parses `--<count_flag> N`, `--backend`, `--seconds` (also as `--flag=value`) over `defaults`.
pub fn parse_args(count_flag: &str, defaults: Args, usage: &str) -> Args {
    let mut args = defaults;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .unwrap_or_else(|| usage_error(usage, &format!("{flag} needs a value")))
        };
        match flag.as_str() {
            flag if flag.strip_prefix("--") == Some(count_flag) => {
                args.count = value()
                    .replace(['_', ','], "")
                    .parse()
                    .unwrap_or_else(|_| usage_error(usage, &format!("--{count_flag} takes a number")))
            }
            "--seconds" => {
                args.seconds = value()
                    .parse()
                    .unwrap_or_else(|_| usage_error(usage, "--seconds takes a number"));
            }
            "--backend" => {
                args.backend = match value().as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" | "postgresql" => Backend::Postgres,
                    other => usage_error(usage, &format!("unknown backend {other:?}")),
                }
            }
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0)
            }
            other => usage_error(usage, &format!("unknown argument {other:?}")),
        }
    }
    if args.count == 0 || args.seconds == 0 {
        usage_error(usage, &format!("--{count_flag} and --seconds must be positive"));
    }
    args
}

// ---------------------------------------------------------------------------------------------
// Load phases

/// The outcome of one call.
pub enum Step {
    /// Succeeded; `true` marks calls also reported apart (first pages).
    Ok(bool),
    /// Failed with this message.
    Err(String),
    /// Nothing left to send: the task stops (not timed).
    Stop,
}

/// Call latencies of a phase, in µs.
#[derive(Debug, Default)]
pub struct Latencies {
    /// Every successful call.
    pub all: Vec<u64>,
    /// The successful calls marked to be reported apart.
    pub marked: Vec<u64>,
    /// Failed calls.
    pub errors: usize,
    /// The first failure's message.
    pub first_error: Option<String>,
}

/// Percentile `p` (0..=100) of sorted µs values, in ms.
pub fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// What a phase measured.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// The phase.
    pub name: String,
    /// Failed calls.
    pub errors: usize,
    /// Successful calls per second.
    pub rate: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// Slowest call, ms.
    pub max: f64,
}

/// Prints a phase's figures (and those of its marked calls, under `marked_label`).
pub fn report(name: &str, mut lat: Latencies, wall: Duration, marked_label: Option<&str>) -> PhaseResult {
    lat.all.sort_unstable();
    let count = lat.all.len();
    let result = PhaseResult {
        name: name.to_owned(),
        errors: lat.errors,
        rate: count as f64 / wall.as_secs_f64(),
        p50: percentile_ms(&lat.all, 50.0),
        p90: percentile_ms(&lat.all, 90.0),
        p99: percentile_ms(&lat.all, 99.0),
        max: percentile_ms(&lat.all, 100.0),
    };
    println!(
        "{name}: {count} ok, {} errors in {:.1} s: {:.0} req/s; p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        result.errors,
        wall.as_secs_f64(),
        result.rate,
        result.p50,
        result.p90,
        result.p99,
        result.max
    );
    if let Some(label) = marked_label
        && !lat.marked.is_empty()
    {
        lat.marked.sort_unstable();
        println!(
            "    {label}: {} calls; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            lat.marked.len(),
            percentile_ms(&lat.marked, 50.0),
            percentile_ms(&lat.marked, 99.0),
            percentile_ms(&lat.marked, 100.0)
        );
    }
    if let Some(error) = &lat.first_error {
        println!("    first error: {error}");
    }
    result
}

/// Runs one task per state until `seconds` pass, `budget` calls are made, or every task stops,
/// timing each call.
pub async fn drive<S, F, Fut>(seconds: u64, budget: Option<usize>, states: Vec<S>, call: F) -> (Latencies, Duration)
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = (S, Step)> + Send,
{
    let began = Instant::now();
    let deadline = began + Duration::from_secs(seconds);
    let issued = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(states.len());
    for state in states {
        let call = call.clone();
        let issued = issued.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies {
                all: Vec::with_capacity(1 << 14),
                ..Default::default()
            };
            let mut state = state;
            while Instant::now() < deadline {
                if budget.is_some_and(|b| issued.fetch_add(1, Ordering::Relaxed) >= b) {
                    break;
                }
                let t = Instant::now();
                let (next, step) = call(state).await;
                let micros = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                state = next;
                match step {
                    Step::Ok(marked) => {
                        lat.all.push(micros);
                        if marked {
                            lat.marked.push(micros);
                        }
                    }
                    Step::Err(message) => {
                        lat.errors += 1;
                        lat.first_error.get_or_insert(message);
                    }
                    Step::Stop => break,
                }
            }
            lat
        }));
    }
    let mut total = Latencies::default();
    for task in tasks {
        let lat = task.await.unwrap();
        total.all.extend(lat.all);
        total.marked.extend(lat.marked);
        total.errors += lat.errors;
        if total.first_error.is_none() {
            total.first_error = lat.first_error;
        }
    }
    (total, began.elapsed())
}

/// Prints the phases as the Markdown table `docs/benchmarks.md` takes.
pub fn print_table(backend: &str, n: usize, results: &[PhaseResult]) {
    println!("| backend | N | phase | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---|---:|---:|---:|");
    for r in results {
        let errors = if r.errors > 0 {
            format!(" ({} errors)", r.errors)
        } else {
            String::new()
        };
        println!(
            "| {backend} | {n} | {}{errors} | {:.0} | {:.2} | {:.2} |",
            r.name.replace('|', "\\|"),
            r.rate,
            r.p50,
            r.p99
        );
    }
}

/// Runs a load generator: prints what it is about to do, makes a throwaway PKI and database
/// (`sqlite_file` names the SQLite file), runs `bench` in a task so that a panic still reaches
/// the clean-up, removes the database, and returns the phases (or exits 1 if `bench` failed).
pub async fn run<F, Fut>(program: &str, noun: &str, args: Args, sqlite_file: &str, bench: F) -> Vec<PhaseResult>
where
    F: FnOnce(Args, Arc<crate::TestPki>, Arc<BenchDatabase>) -> Fut,
    Fut: Future<Output = Vec<PhaseResult>> + Send + 'static,
{
    println!(
        "{program}: backend {}, {} {noun}, {} s per phase; nproc {}; load average {}",
        args.backend.name(),
        args.count,
        args.seconds,
        nproc(),
        load_average()
    );
    sqlx::any::install_default_drivers();
    let pki = Arc::new(crate::TestPki::new());
    let db = Arc::new(BenchDatabase::create(args.backend, sqlite_file).await);
    let outcome = tokio::spawn(bench(args, pki.clone(), db.clone())).await;
    match Arc::try_unwrap(db) {
        Ok(db) => db.remove().await,
        Err(_) => eprintln!("the database is still in use and was not removed"),
    }
    drop(pki);
    match outcome {
        Ok(results) => results,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1)
        }
    }
}

/// How a target came out, for the line a load generator ends with.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
