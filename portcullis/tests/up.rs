//! `portcullis up` as a user runs it: the built binary on free ports and a temporary data dir,
//! driven over real mTLS with the certificates it wrote, stopped with SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_proto::device::v1 as pb;
use portcullis_proto::device::v1::device_service_client::DeviceServiceClient;
use test_support::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The banner's last line.
const READY_LINE: &str = "Press Ctrl-C to stop.";
/// First start makes a CA, certificates and a database; debug builds on a busy machine are slow.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `portcullis up`, killed on drop if a test fails before stopping it.
struct Up {
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    banner: String,
}

impl Up {
    /// Starts `portcullis up` and waits for its banner.
    fn start(data_dir: &Path, port_base: u16) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["up", "--data-dir"])
            .arg(data_dir)
            .args(["--port-base", &port_base.to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("portcullis starts");
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut all = collected.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut up = Up {
            child: Some(child),
            stderr,
            banner: String::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    up.banner.push_str(&line);
                    up.banner.push('\n');
                    if line == READY_LINE {
                        return up;
                    }
                }
                Err(e) => panic!("no banner ({e:?}); stdout:\n{}\nstderr:\n{}", up.banner, up.stderr()),
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "portcullis did not stop within {STOP_TIMEOUT:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A base port with the ten ports above it free right now.
fn free_port_base() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id();
    for attempt in 0..200u32 {
        let base = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(7_919)) % 40_000) as u16;
        let all_free = (1..=10).all(|offset| TcpListener::bind(("127.0.0.1", base + offset)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free port range found");
}

/// An mTLS channel to `port` presenting the certificate `stem` from the data dir's `pki/`.
async fn channel(data_dir: &Path, port: u16, stem: &str) -> Channel {
    let pki = data_dir.join("pki");
    let read = |name: String| std::fs::read_to_string(pki.join(name)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("service-ca.pem".into())))
        .identity(Identity::from_pem(
            read(format!("{stem}.pem")),
            read(format!("{stem}.key")),
        ))
        .domain_name("localhost");
    Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

async fn device_client(data_dir: &Path, port: u16, stem: &str) -> DeviceServiceClient<Channel> {
    DeviceServiceClient::new(channel(data_dir, port, stem).await)
}

/// An enrollment as the gateway forwards it, with a fresh P-256 proof-of-possession key.
fn enrollment() -> pb::RegisterDeviceRequest {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = pair.public_key().as_ref();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    pb::RegisterDeviceRequest {
        user_id: "alice".into(),
        app_instance_id: "agent-1".into(),
        profile: Some(pb::DeviceProfile {
            display_name: "Alice's laptop".into(),
            platform: pb::Platform::Linux.into(),
            ..Default::default()
        }),
        keys: vec![pb::DeviceKey {
            kid: "pop-1".into(),
            purpose: pb::KeyPurpose::ProofOfPossession.into(),
            hardware_protected: false,
            kty: "EC".into(),
            crv: "P-256".into(),
            x: b64.encode(&point[1..33]),
            y: b64.encode(&point[33..65]),
            user_id: String::new(),
        }],
        signals: None,
        enrollment_token: String::new(),
    }
}

/// `GET path` on the plaintext admin port: the status line and the body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_device_svc_over_mtls_and_keeps_its_data_across_a_restart() {
    let temp = TempDir::new("up");
    let data_dir: PathBuf = temp.path().join("data");
    let base = free_port_base();
    let grpc = base + 1;
    let admin = SocketAddr::from(([127, 0, 0, 1], base + 2));

    let up = Up::start(&data_dir, base);
    let data_dir = std::fs::canonicalize(&data_dir).unwrap();
    let ca = data_dir.join("pki/service-ca.pem");
    assert!(
        up.banner.contains(&format!(
            "grpcurl -cacert {} -cert {} -key {} localhost:{grpc} list",
            ca.display(),
            data_dir.join("pki/operator-admin.pem").display(),
            data_dir.join("pki/operator-admin.key").display()
        )),
        "{}",
        up.banner
    );
    let protoset = data_dir.join("grpc-health.protoset");
    assert!(up.banner.contains(&format!(
        "grpcurl -plaintext -protoset {} localhost:{} grpc.health.v1.Health/Check",
        protoset.display(),
        base + 2
    )));
    assert!(
        std::fs::metadata(&protoset).unwrap().len() > 0,
        "the health protoset is written"
    );
    assert!(data_dir.join("device-svc.db").exists());
    for stem in [
        "device-svc",
        "session-svc",
        "pki-svc",
        "policy-svc",
        "gateway",
        "operator-viewer",
    ] {
        assert!(data_dir.join(format!("pki/{stem}.pem")).exists(), "{stem}");
    }
    // pki-svc issued the identities it did not need to run itself: for 30 days, where the
    // bootstrap's are valid for a year.
    let lifetime_days = |stem: &str| {
        let pem = std::fs::read(data_dir.join(format!("pki/{stem}.pem"))).unwrap();
        let der = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400
    };
    assert_eq!(lifetime_days("device-svc"), 30);
    assert_eq!(lifetime_days("operator-viewer"), 30);
    assert_eq!(lifetime_days("pki-svc"), 365);
    assert!(up.banner.contains("SCEP URL:"), "{}", up.banner);

    // The admin answers; the gateway enrolls a device.
    let mut as_admin = device_client(&data_dir, grpc, "operator-admin").await;
    let before = as_admin
        .count_devices(pb::CountDevicesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.count, 0);
    let mut as_gateway = device_client(&data_dir, grpc, "gateway").await;
    let registered = as_gateway.register_device(enrollment()).await.unwrap().into_inner();
    let device_id = registered.device.unwrap().id;

    // The viewer reads but may not change anything.
    let mut as_viewer = device_client(&data_dir, grpc, "operator-viewer").await;
    let refused = as_viewer
        .suspend_device(pb::SuspendDeviceRequest {
            device_id: device_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // The admin port: health over plaintext gRPC, and metrics.
    let admin_channel = Endpoint::from_shared(format!("http://{admin}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = HealthClient::new(admin_channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: device_svc::SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    let metrics = http_get(admin, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("grpc_server_handled"), "{metrics}");

    let ca_before = std::fs::read(&ca).unwrap();
    let secret_before = std::fs::read(data_dir.join("page-token-secret")).unwrap();
    let status = up.terminate();
    assert!(status.success(), "{status:?}");

    // Same data dir: same CA and secret, and the device is still there.
    let up = Up::start(&data_dir, base);
    assert_eq!(std::fs::read(&ca).unwrap(), ca_before, "the CA was regenerated");
    assert_eq!(
        std::fs::read(data_dir.join("page-token-secret")).unwrap(),
        secret_before
    );
    let mut as_admin = device_client(&data_dir, grpc, "operator-admin").await;
    let listed = as_admin
        .list_devices(pb::ListDevicesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed.devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [device_id.as_str()]);
    let status = up.terminate();
    assert!(status.success(), "{status:?}");
}

// Multi-threaded, so the clients' connections answer the server's goodbye while the test
// thread waits for the process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_decides_sign_ins_with_its_default_policy_and_keeps_an_operators_edit_across_a_restart() {
    use portcullis_proto::policy::v1 as policy;
    use portcullis_proto::policy::v1::policy_service_client::PolicyServiceClient;

    let temp = TempDir::new("up-policy");
    let data_dir: PathBuf = temp.path().join("data");
    let base = free_port_base();
    let policy_port = base + 7;
    let up = Up::start(&data_dir, base);
    assert!(up.banner.contains("PolicyService/Simulate"), "{}", up.banner);
    let data_dir = std::fs::canonicalize(&data_dir).unwrap();
    let sign_in = |managed: bool, factors: Vec<policy::ProvenFactor>| policy::EvaluateRequest {
        context: Some(policy::SignInContext {
            client_id: "portcullis-local-test".into(),
            user: Some(policy::UserContext {
                id: "alice".into(),
                ..Default::default()
            }),
            device: Some(policy::DeviceContext {
                id: "laptop".into(),
                registered: true,
                managed,
                status: "ACTIVE".into(),
                platform: pb::Platform::Macos as i32,
                ..Default::default()
            }),
            network: Some(policy::NetworkContext {
                client_address: "203.0.113.7".into(),
                forwarded_for: Vec::new(),
            }),
            factors,
            ..Default::default()
        }),
    };
    let fastpass = policy::ProvenFactor {
        r#type: policy::FactorType::Fastpass as i32,
        phishing_resistant: true,
        device_bound: true,
        verify_time: Some(service_kit::clock::timestamp(service_kit::clock::now_micros())),
        ..Default::default()
    };
    let mut gateway = PolicyServiceClient::new(channel(&data_dir, policy_port, "gateway").await);
    let managed = gateway
        .evaluate(sign_in(true, vec![fastpass]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(managed.outcome, policy::Outcome::Allow as i32, "{managed:?}");
    let unmanaged = gateway.evaluate(sign_in(false, Vec::new())).await.unwrap().into_inner();
    assert_eq!(unmanaged.outcome, policy::Outcome::Challenge as i32, "{unmanaged:?}");
    assert_eq!(
        unmanaged.matched[1].rule_name,
        "Everyone else proves a password and TOTP"
    );

    // An operator's edit survives a restart: the default is applied only to an empty configuration.
    let mut admin = PolicyServiceClient::new(channel(&data_dir, policy_port, "operator-admin").await);
    let mut app = admin
        .lookup_app(policy::LookupAppRequest {
            client_id: "portcullis-local-test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    app.name = "Renamed by the operator".into();
    admin
        .update_app(policy::UpdateAppRequest { app: Some(app) })
        .await
        .unwrap();
    assert!(up.terminate().success());
    let up = Up::start(&data_dir, base);
    let mut viewer = PolicyServiceClient::new(channel(&data_dir, policy_port, "operator-viewer").await);
    let apps = viewer
        .list_apps(policy::ListAppsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .apps;
    let names: Vec<_> = apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["Renamed by the operator"]);
    assert!(up.terminate().success());
}

#[test]
fn up_says_which_port_is_taken_and_fails_without_panicking() {
    let temp = TempDir::new("up-taken");
    let base = free_port_base();
    let _taken = TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["up", "--data-dir"])
        .arg(temp.path().join("data"))
        .args(["--port-base", &base.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("device-svc cannot listen on 127.0.0.1:{}", base + 1)),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn up_refuses_a_data_dir_that_is_a_file() {
    let temp = TempDir::new("up-file");
    let file = temp.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["up", "--data-dir"])
        .arg(&file)
        .args(["--port-base", &free_port_base().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not a directory"), "{stderr}");
}

#[test]
fn an_unknown_argument_prints_the_usage_and_exits_with_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["up", "--verbose"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("unknown argument `--verbose`"), "{stderr}");
    assert!(stderr.contains("Usage: portcullis up"), "{stderr}");
}
