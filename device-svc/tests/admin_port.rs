//! The plaintext admin port (gRPC health and Prometheus metrics, nothing else), health on the
//! mTLS port, and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Harness;
use portcullis_proto::device::v1 as pb;
use portcullis_proto::device::v1::device_service_client::DeviceServiceClient;
use service_kit::identity::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const DEVICE_SERVICE: &str = "portcullis.device.v1.DeviceService";

async fn plaintext(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> Result<ServingStatus, tonic::Status> {
    let response = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(response.status).unwrap())
}

/// A plain HTTP/1.1 GET: (status code, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status_line = head.lines().next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let code = status_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    (code, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// The value of the sample whose line starts with `name{` and contains every label in `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn the_admin_port_reports_serving_over_plaintext() {
    let harness = Harness::start().await;
    let mut health = HealthClient::new(plaintext(harness.admin_addr()).await);
    assert_eq!(check(&mut health, "").await.unwrap(), ServingStatus::Serving);
    assert_eq!(
        check(&mut health, DEVICE_SERVICE).await.unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        check(&mut health, "portcullis.nothing.v1.Nothing")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn any_authenticated_caller_may_check_health_on_the_mtls_port() {
    let harness = Harness::start().await;
    // policy-svc may call no DeviceService RPC, but health is open to every authenticated caller.
    for tls in [
        harness.pki.service("policy-svc"),
        harness.pki.operator("test-viewer", Role::Viewer),
    ] {
        let mut health = HealthClient::new(test_support::channel(harness.addr(), &tls).await.unwrap());
        assert_eq!(check(&mut health, "").await.unwrap(), ServingStatus::Serving);
        assert_eq!(
            check(&mut health, DEVICE_SERVICE).await.unwrap(),
            ServingStatus::Serving
        );
    }
}

#[tokio::test]
async fn the_mtls_port_does_not_answer_health_over_plaintext() {
    let harness = Harness::start().await;
    let result = match Endpoint::from_shared(format!("http://{}", harness.addr()))
        .unwrap()
        .connect()
        .await
    {
        Ok(channel) => HealthClient::new(channel)
            .check(HealthCheckRequest { service: String::new() })
            .await
            .map(drop),
        Err(_) => return,
    };
    assert!(result.is_err(), "the mTLS port answered a plaintext health check");
}

#[tokio::test]
async fn metrics_count_calls_by_method_and_code_and_time_them() {
    let harness = Harness::start().await;
    let count_ok = [
        "method=\"/portcullis.device.v1.DeviceService/CountDevices\"",
        "code=\"OK\"",
    ];
    let (status, before) = http_get(harness.admin_addr(), "/metrics").await;
    assert_eq!(status, 200, "{before}");
    // The harness's readiness probe already made at least one CountDevices call.
    let ok_before = sample(&before, "grpc_server_handled_total", &count_ok).unwrap_or(0.0);

    let mut viewer = harness.viewer().await;
    for _ in 0..3 {
        viewer.count_devices(pb::CountDevicesRequest::default()).await.unwrap();
    }
    let denied = viewer
        .register_device(pb::RegisterDeviceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let invalid = viewer.get_device(pb::GetDeviceRequest::default()).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);

    let (status, after) = http_get(harness.admin_addr(), "/metrics").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        sample(&after, "grpc_server_handled_total", &count_ok),
        Some(ok_before + 3.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "grpc_server_handled_total",
            &[
                "method=\"/portcullis.device.v1.DeviceService/RegisterDevice\"",
                "code=\"PERMISSION_DENIED\""
            ]
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "grpc_server_handled_total",
            &[
                "method=\"/portcullis.device.v1.DeviceService/GetDevice\"",
                "code=\"INVALID_ARGUMENT\""
            ]
        ),
        Some(1.0),
        "{after}"
    );
    let count_method = "method=\"/portcullis.device.v1.DeviceService/CountDevices\"";
    assert!(
        sample(
            &after,
            "grpc_server_handling_seconds_bucket",
            &[count_method, "le=\"+Inf\""]
        )
        .unwrap()
            >= 4.0
    );
    assert!(
        sample(
            &after,
            "grpc_server_handling_seconds_bucket",
            &[count_method, "le=\"0.0001\""]
        )
        .is_some()
    );
    assert!(sample(&after, "grpc_server_handling_seconds_count", &[count_method]).unwrap() >= 4.0);
    assert!(sample(&after, "grpc_server_handling_seconds_sum", &[count_method]).unwrap() > 0.0);
    assert!(
        sample(
            &after,
            "grpc_server_handling_seconds_count",
            &["method=\"/portcullis.device.v1.DeviceService/RegisterDevice\""]
        ) == Some(1.0),
        "denied calls are timed too: {after}"
    );
}

#[tokio::test]
async fn the_admin_port_serves_nothing_else() {
    let harness = Harness::start().await;
    let status = DeviceServiceClient::new(plaintext(harness.admin_addr()).await)
        .count_devices(pb::CountDevicesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    let (status, _) = http_get(harness.admin_addr(), "/anything-else").await;
    assert_eq!(status, 404);
    let (status, _) = http_get(harness.admin_addr(), "/metrics/extra").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn stopping_the_service_closes_both_ports() {
    let mut harness = Harness::start().await;
    let addr = harness.addr();
    let admin_addr = harness.admin_addr();
    // A client that stays connected across the shutdown must not hold it up.
    let mut held = harness.viewer().await;
    held.count_devices(pb::CountDevicesRequest::default()).await.unwrap();

    tokio::time::timeout(Duration::from_secs(15), harness.stop_svc())
        .await
        .expect("device-svc stops promptly");

    assert!(
        held.count_devices(pb::CountDevicesRequest::default()).await.is_err(),
        "served after stopping"
    );
    let tls = harness.pki.operator("late", Role::Viewer);
    assert!(
        test_support::channel(addr, &tls).await.is_err(),
        "the mTLS port still accepts connections"
    );
    assert!(
        TcpStream::connect(admin_addr).await.is_err(),
        "the admin port still accepts connections"
    );
}

#[tokio::test]
async fn the_service_comes_back_after_a_restart() {
    let mut harness = Harness::start().await;
    tokio::time::timeout(Duration::from_secs(15), harness.stop_svc())
        .await
        .expect("device-svc stops promptly");
    harness.start_svc().await;
    let mut health = HealthClient::new(plaintext(harness.admin_addr()).await);
    assert_eq!(
        check(&mut health, DEVICE_SERVICE).await.unwrap(),
        ServingStatus::Serving
    );
    let count = harness
        .viewer()
        .await
        .count_devices(pb::CountDevicesRequest::default())
        .await
        .unwrap();
    assert_eq!(count.into_inner().count, 0);
}
