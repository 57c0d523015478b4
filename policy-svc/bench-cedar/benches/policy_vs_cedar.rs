//! Portcullis's decision engine and Cedar's authorizer deciding the same policy for the same
//! sign-in, in process, at 10, 100 and 1,000 rules: one criterion group per size, then a table of
//! mean time per decision, decisions per second and Portcullis's throughput over Cedar's.
//!
//! ```text
//! cd policy-svc/bench-cedar && cargo bench [-- --measurement-time 3]
//! ```
//!
//! The request matches the last rule before the catch-all, the worst case for Portcullis's first
//! match; Portcullis is also timed with a request the first rule matches. Cedar evaluates every
//! policy whichever matches, so one Cedar request stands for both. Before timing, each size checks
//! that both engines allow the request by the same rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use cedar_policy::Authorizer;
use criterion::{Criterion, Throughput};
use policy_svc_bench_cedar::{
    cedar_decide, cedar_policies, cedar_request, portcullis_decide, portcullis_policy, portcullis_sign_in,
    portcullis_verdict,
};

/// Rule counts compared.
const SIZES: [usize; 3] = [10, 100, 1_000];
/// Target: Portcullis decides at least this many times as many sign-ins per second as Cedar.
const RATIO_TARGET: f64 = 5.0;

/// The benchmark ids within each group, and how the summary names them.
const PORTCULLIS_LAST: &str = "portcullis_last_rule";
const PORTCULLIS_FIRST: &str = "portcullis_rule_1";
const CEDAR: &str = "cedar";

fn group_name(rules: usize) -> String {
    format!("rules_{rules}")
}

fn compare(c: &mut Criterion, rules: usize) {
    let compiled = portcullis_policy(rules).unwrap();
    let last = portcullis_sign_in(rules).unwrap();
    let first = portcullis_sign_in(1).unwrap();
    let policies = cedar_policies(rules).unwrap();
    let (request, entities) = cedar_request(rules).unwrap();
    let authorizer = Authorizer::new();

    // The same answer, for the same reason, before anything is timed.
    let expected = format!("rule {rules}");
    let (portcullis_allows, portcullis_rule) = portcullis_verdict(&portcullis_decide(&compiled, &last));
    let (cedar_allows, cedar_rules) = cedar_decide(&authorizer, &request, &policies, &entities);
    assert!(
        portcullis_allows && portcullis_rule == expected,
        "portcullis: {portcullis_rule}"
    );
    assert!(
        cedar_allows && cedar_rules == [expected.clone()],
        "cedar: {cedar_rules:?}"
    );
    assert_eq!(
        portcullis_verdict(&portcullis_decide(&compiled, &first)),
        (true, "rule 1".to_owned())
    );
    println!("{rules} rules: both engines allow the request by {expected:?}");

    let mut group = c.benchmark_group(group_name(rules));
    group.throughput(Throughput::Elements(1));
    group.bench_function(PORTCULLIS_LAST, |b| {
        b.iter(|| portcullis_decide(black_box(&compiled), black_box(&last)))
    });
    group.bench_function(PORTCULLIS_FIRST, |b| {
        b.iter(|| portcullis_decide(black_box(&compiled), black_box(&first)))
    });
    group.bench_function(CEDAR, |b| {
        b.iter(|| authorizer.is_authorized(black_box(&request), black_box(&policies), black_box(&entities)))
    });
    group.finish();
}

/// Where criterion writes its estimates: `CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else `target/criterion` beside this crate (where `cargo bench` runs it).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => PathBuf::from(target).join("criterion"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("criterion"),
    }
}

/// Criterion's estimate of the time per iteration, in ns, if this run measured it: the slope of
/// total time over iterations (what criterion prints as `time`), else the mean of the samples.
fn mean_ns(group: &str, id: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir().join(group).join(id).join("new").join("estimates.json");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    if !fresh {
        return None;
    }
    let estimates: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    estimates["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| estimates["mean"]["point_estimate"].as_f64())
}

fn summary(since: SystemTime) {
    let time = |ns: Option<f64>| ns.map_or_else(|| "—".to_owned(), |ns| format!("{:.2}", ns / 1000.0));
    let rate = |ns: Option<f64>| ns.map_or_else(|| "—".to_owned(), |ns| format!("{:.0}", 1e9 / ns));
    println!();
    println!(
        "| rules | Portcullis µs (last rule) | Portcullis decisions/s | Portcullis µs (rule 1) | Cedar µs | Cedar decisions/s | Portcullis ÷ Cedar throughput | target ≥ {RATIO_TARGET}× |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");
    for rules in SIZES {
        let group = group_name(rules);
        let last = mean_ns(&group, PORTCULLIS_LAST, since);
        let first = mean_ns(&group, PORTCULLIS_FIRST, since);
        let cedar = mean_ns(&group, CEDAR, since);
        let ratio = last.zip(cedar).map(|(p, c)| c / p);
        println!(
            "| {rules} | {} | {} | {} | {} | {} | {} | {} |",
            time(last),
            rate(last),
            time(first),
            time(cedar),
            rate(cedar),
            ratio.map_or_else(|| "—".to_owned(), |r| format!("{r:.1}×")),
            ratio.map_or("not measured", |r| if r >= RATIO_TARGET { "met" } else { "MISSED" })
        );
    }
    println!("(time per decision as criterion estimates it; the ratio compares the last-rule request)");
}

fn main() {
    let since = SystemTime::now() - Duration::from_secs(1);
    let mut c = Criterion::default().configure_from_args();
    for rules in SIZES {
        compare(&mut c, rules);
    }
    c.final_summary();
    summary(since);
}
