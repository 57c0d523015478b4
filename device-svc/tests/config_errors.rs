//! A bad configuration stops device-svc before any port is bound, with a message naming the
//! setting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn run_with(env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_device-svc"));
    command.env_clear();
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const BASE: &[(&str, &str)] = &[
    ("PORTCULLIS_TLS_CA", "/nonexistent/ca.pem"),
    ("PORTCULLIS_TLS_CERT", "/nonexistent/c.pem"),
    ("PORTCULLIS_TLS_KEY", "/nonexistent/c.key"),
    ("PORTCULLIS_DATABASE_URL", "sqlite:///nonexistent/x.db"),
];

#[test]
fn a_bad_value_exits_non_zero_naming_the_setting() {
    let mut env = BASE.to_vec();
    env.push(("PORTCULLIS_LISTEN", "not-an-address"));
    let (code, stderr) = run_with(&env);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("`listen`") && stderr.contains("PORTCULLIS_LISTEN"),
        "{stderr}"
    );
}

#[test]
fn a_missing_setting_exits_non_zero_naming_it() {
    let (code, stderr) = run_with(&BASE[..3]);
    assert_eq!(code, 2);
    assert!(stderr.contains("database_url"), "{stderr}");
}

#[test]
fn unreadable_certificates_stop_the_start_before_listening() {
    // The error names the certificate file: the certificates are read before anything listens.
    let mut env = BASE.to_vec();
    env.push(("PORTCULLIS_LISTEN", "127.0.0.1:0"));
    env.push(("PORTCULLIS_ADMIN_LISTEN", "127.0.0.1:0"));
    let (code, stderr) = run_with(&env);
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
}
