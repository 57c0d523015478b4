//! Load generator for `VerifyManagementAttestation`: how many management attestations pki-svc
//! decides per second over real mTLS gRPC, against an inventory of N certificates.
//!
//! ```text
//! cargo bench -p pki-svc --bench attestation -- [--certificates N] [--backend sqlite|postgres] [--seconds S]
//! ```
//!
//! Defaults: 100,000 certificates, SQLite, 10 s per phase. With `--backend postgres` a fresh
//! database is made on the server at `PORTCULLIS_BENCH_DATABASE_URL` (default the local server)
//! and dropped at the end.
//!
//! What it does:
//! 1. starts pki-svc in-process on `127.0.0.1:0` (mTLS gRPC, admin, plain HTTP for SCEP) with a
//!    throwaway test PKI, and seeds N inventory rows through the store, as SCEP would leave them;
//! 2. enrolls 64 RSA-2048 devices through SCEP over HTTP, and signs 40 nonces per device with
//!    its key before the timed windows (the signing is the device's work, not the server's);
//! 3. binds each certificate with one untimed attestation, then times attestations as the
//!    gateway makes them: 16 gRPC channels, with 16 and then 64 calls in flight; then mobile
//!    management hints (HMAC-SHA256) against three mobile integrations;
//! 4. prints requests/s and latency percentiles per phase, and a Markdown table for
//!    `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::RsaKeyPair;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use pki_svc::config::PkiConfig;
use pki_svc::scep::client::{Requester, Transaction, build_request, open_cert_rep};
use pki_svc::scep::message::{ContentCipher, DigestAlgorithm, MessageType, PkiStatus, RequestBody};
use pki_svc::store::{CertificateRecord, Store, StoredStatus, now_micros};
use portcullis_proto::device::v1::Platform;
use portcullis_proto::pki::v1 as pb;
use portcullis_proto::pki::v1::pki_service_client::PkiServiceClient;
use rcgen::{Attribute, CertificateParams, DistinguishedName, DnType, KeyPair};
use service_kit::identity::Role;
use service_kit::shutdown::Shutdown;
use test_support::bench::{
    Args, Backend, BenchDatabase, PhaseResult, Step, drive, parse_args, print_table, report, run, verdict,
};
use test_support::{TestPki, channel};
use tokio::net::TcpListener;
use tonic::transport::Channel;

const USAGE: &str = concat!(
    "usage: cargo bench -p pki-svc --bench attestation -- ",
    "[--certificates N] [--backend sqlite|postgres] [--seconds S]"
);
/// Devices enrolled through SCEP for the timed phases.
const DEVICES: usize = 64;
/// Nonces each device signs before the timed windows.
const NONCES_PER_DEVICE: usize = 40;
/// gRPC channels, as a few gateway replicas would hold.
const CHANNELS: usize = 16;
/// Calls in flight in the two certificate windows.
const IN_FLIGHT: [usize; 2] = [16, 64];
/// Target: attestations per second.
const RATE_TARGET: f64 = 5_000.0;

#[tokio::main]
async fn main() {
    let args = parse_args(
        "certificates",
        Args {
            count: 100_000,
            backend: Backend::Sqlite,
            seconds: 10,
        },
        USAGE,
    );
    let results = run(
        "attestation",
        "certificates",
        args,
        "pki-bench.db",
        |args, pki, db| async move { bench(args, pki, db).await },
    )
    .await;
    print_table(args.backend.name(), args.count, &results);
    let best = results
        .iter()
        .filter(|r| r.name.starts_with("certificate"))
        .map(|r| r.rate)
        .fold(0.0, f64::max);
    println!(
        "target: VerifyManagementAttestation >= {RATE_TARGET:.0}/s: {best:.0}/s, {}",
        verdict(best >= RATE_TARGET)
    );
}

struct Service {
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), pki_svc::RunError>>,
}

async fn start(pki: &TestPki, database_url: &str) -> Service {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
    let mut settings = test_support::service_settings(pki, "pki-svc", database_url);
    settings
        .set("ca_encryption_key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .set("public_url", format!("http://{http_addr}"))
        .set("request_timeout_ms", "60000");
    let config = PkiConfig::from_settings(&settings).unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(pki_svc::serve_on(
        config,
        pki_svc::PkiListeners { grpc, admin, http },
        shutdown.clone(),
    ));
    let tls = pki.operator("bench-ready", Role::Viewer);
    for _ in 0..800 {
        if let Ok(channel) = channel(grpc_addr, &tls).await
            && PkiServiceClient::new(channel)
                .list_scep_integrations(pb::ListScepIntegrationsRequest {})
                .await
                .is_ok()
        {
            return Service {
                grpc: grpc_addr,
                http: http_addr,
                shutdown,
                task,
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("pki-svc did not become ready");
}

/// Seeds `count` inventory rows in batches of one transaction each.
async fn seed(database_url: &str, count: usize) {
    let db = service_kit::db::connect(database_url, 4, pki_svc::MIGRATIONS)
        .await
        .unwrap();
    let store = Store::new(db);
    let now = now_micros();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|worker| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (worker..count).step_by(4) {
                    let serial = format!("5eed{i:028x}");
                    store
                        .insert_certificate(
                            &CertificateRecord {
                                id: uuid::Uuid::now_v7().to_string(),
                                serial_number: serial.clone(),
                                issuer_ca: "device".into(),
                                integration: "seed".into(),
                                transaction_id: serial,
                                subject: format!("CN=managementAttestation {i:08X}"),
                                sha256_fingerprint: String::new(),
                                certificate_der: vec![0x30, 0x00],
                                not_before: now,
                                not_after: now + 365 * 86_400_000_000,
                                issued_at: now,
                                status: StoredStatus::Valid,
                                revocation_reason: 0,
                                revoked_at: None,
                                bound_device_id: Some(format!("seeded-device-{i}")),
                                renewed_serial: String::new(),
                                last_used_at: Some(now),
                            },
                            None,
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    println!(
        "seeded {count} certificates in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// An enrolled device: its management certificate and nonces it signed.
struct Device {
    id: String,
    certificate: Vec<u8>,
    signed: Vec<(Vec<u8>, Vec<u8>)>,
}

async fn enroll(service: &Service, integration: &str, challenge: &str, index: usize) -> Device {
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let pkcs8 = key.serialize_der();
    let signer = RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "SCEP SIGNER");
    params.distinguished_name = name;
    let self_signed = params.self_signed(&key).unwrap().der().to_vec();
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("managementAttestation {index:04}"));
    params.distinguished_name = name;
    let mut password = vec![0x13, u8::try_from(challenge.len()).unwrap()];
    password.extend_from_slice(challenge.as_bytes());
    let mut values = vec![0x31, u8::try_from(password.len()).unwrap()];
    values.extend(password);
    let csr = params
        .serialize_request_with_attributes(
            &key,
            vec![Attribute {
                oid: &[1, 2, 840, 113549, 1, 9, 7],
                values,
            }],
        )
        .unwrap()
        .der()
        .to_vec();
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    let base = format!("http://{}/scep/{integration}", service.http);
    let ca = client
        .get(format!("{base}?operation=GetCACert").parse().unwrap())
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    let transaction_id = format!("bench-{index}");
    let message = build_request(
        MessageType::PkcsReq,
        &RequestBody::Csr(csr),
        &Requester {
            certificate_der: &self_signed,
            key: &signer,
        },
        &Transaction {
            transaction_id: &transaction_id,
            sender_nonce: &[7; 16],
            digest: DigestAlgorithm::Sha256,
        },
        &ca,
        ContentCipher::Aes256Cbc,
    )
    .unwrap();
    let request = hyper::Request::post(format!("{base}?operation=PKIOperation"))
        .header("content-type", "application/x-pki-message")
        .body(Full::new(Bytes::from(message)))
        .unwrap();
    let reply = client
        .request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let decrypting = Pkcs1PrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&pkcs8).unwrap()).unwrap();
    let reply = open_cert_rep(&reply, &decrypting, &ca).unwrap();
    assert_eq!(reply.status, PkiStatus::Success);
    let signed = (0..NONCES_PER_DEVICE)
        .map(|n| {
            let nonce = format!("nonce {index} {n} {}", uuid::Uuid::now_v7()).into_bytes();
            let mut signature = vec![0; signer.public_modulus_len()];
            signer
                .sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    &nonce,
                    &mut signature,
                )
                .unwrap();
            (nonce, signature)
        })
        .collect();
    Device {
        id: format!("bench-device-{index}"),
        certificate: reply.certificates[0].clone(),
        signed,
    }
}

async fn clients(
    service: &Service,
    tls: &service_kit::tls::TlsMaterial,
    count: usize,
) -> Vec<PkiServiceClient<Channel>> {
    let mut channels = Vec::with_capacity(CHANNELS);
    for _ in 0..CHANNELS {
        channels.push(channel(service.grpc, tls).await.unwrap());
    }
    (0..count)
        .map(|i| PkiServiceClient::new(channels[i % CHANNELS].clone()))
        .collect()
}

fn certificate_request(device: &Device, n: usize) -> pb::VerifyManagementAttestationRequest {
    let (nonce, signature) = &device.signed[n % device.signed.len()];
    pb::VerifyManagementAttestationRequest {
        device_id: device.id.clone(),
        platform: Platform::Windows.into(),
        nonce: nonce.clone(),
        certificate_chain: vec![device.certificate.clone()],
        signature: signature.clone(),
        management_hint_proof: Vec::new(),
    }
}

async fn bench(args: Args, pki: Arc<TestPki>, db: Arc<BenchDatabase>) -> Vec<PhaseResult> {
    seed(&db.url, args.count).await;
    let service = start(&pki, &db.url).await;
    let operator = pki.operator("bench-operator", Role::Operator);
    let mut admin = PkiServiceClient::new(channel(service.grpc, &operator).await.unwrap());
    let challenge = admin
        .create_scep_integration(pb::CreateScepIntegrationRequest {
            name: "bench".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let started = std::time::Instant::now();
    let mut devices = Vec::with_capacity(DEVICES);
    for index in 0..DEVICES {
        devices.push(enroll(&service, "bench", &challenge, index).await);
    }
    println!(
        "enrolled {DEVICES} devices through SCEP in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let devices = Arc::new(devices);
    let gateway = pki.service("gateway");
    // Bind every certificate (the first attestation writes); the timed calls then read.
    let mut binder = clients(&service, &gateway, 1).await.remove(0);
    for device in devices.iter() {
        let answer = binder
            .verify_management_attestation(certificate_request(device, 0))
            .await
            .unwrap()
            .into_inner();
        assert!(answer.managed, "{}", answer.reason);
    }

    let mut results = Vec::new();
    for in_flight in IN_FLIGHT {
        let states: Vec<_> = clients(&service, &gateway, in_flight)
            .await
            .into_iter()
            .enumerate()
            .map(|(i, client)| (client, i * 7919))
            .collect();
        let devices = devices.clone();
        let (lat, wall) = drive(
            args.seconds,
            None,
            states,
            move |(mut client, n): (PkiServiceClient<Channel>, usize)| {
                let devices = devices.clone();
                async move {
                    let device = &devices[n % devices.len()];
                    let step = match client
                        .verify_management_attestation(certificate_request(device, n / devices.len()))
                        .await
                    {
                        Ok(answer) if answer.get_ref().managed => Step::Ok(false),
                        Ok(answer) => Step::Err(answer.into_inner().reason),
                        Err(status) => Step::Err(status.to_string()),
                    };
                    ((client, n + 1), step)
                }
            },
        )
        .await;
        results.push(report(
            &format!("certificate (RSA-2048), {in_flight} in flight"),
            lat,
            wall,
            None,
        ));
    }

    // Mobile management hints.
    let mut secrets = Vec::new();
    for provider in ["Intune", "Workspace ONE", "Jamf"] {
        let created = admin
            .create_mobile_integration(pb::CreateMobileIntegrationRequest {
                provider_name: provider.into(),
                enrollment_link: String::new(),
                management_secret: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        secrets.push(created.management_secret);
    }
    let hints: Arc<Vec<pb::VerifyManagementAttestationRequest>> = Arc::new(
        (0..1000)
            .map(|n| {
                let nonce = format!("mobile nonce {n}").into_bytes();
                let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secrets[n % 3].as_bytes());
                pb::VerifyManagementAttestationRequest {
                    device_id: format!("phone-{n}"),
                    platform: Platform::Ios.into(),
                    management_hint_proof: aws_lc_rs::hmac::sign(&key, &nonce).as_ref().to_vec(),
                    nonce,
                    ..Default::default()
                }
            })
            .collect(),
    );
    let states: Vec<_> = clients(&service, &gateway, 64)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, client)| (client, i * 13))
        .collect();
    let (lat, wall) = drive(
        args.seconds,
        None,
        states,
        move |(mut client, n): (PkiServiceClient<Channel>, usize)| {
            let hints = hints.clone();
            async move {
                let step = match client
                    .verify_management_attestation(hints[n % hints.len()].clone())
                    .await
                {
                    Ok(answer) if answer.get_ref().managed => Step::Ok(false),
                    Ok(answer) => Step::Err(answer.into_inner().reason),
                    Err(status) => Step::Err(status.to_string()),
                };
                ((client, n + 1), step)
            }
        },
    )
    .await;
    results.push(report("mobile management hint, 64 in flight", lat, wall, None));

    service.shutdown.trigger();
    service.task.await.unwrap().unwrap();
    results
}
