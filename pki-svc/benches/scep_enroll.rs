//! Load generator for pki-svc's SCEP server: PKCSReq enrollments per second over plain HTTP/1.1,
//! against the ceiling the machine's RSA-2048 private-key speed sets.
//!
//! ```text
//! cargo bench -p pki-svc --bench scep_enroll -- [--backend sqlite|postgres] [--seconds S] [--keys N]
//! ```
//!
//! Defaults: SQLite, 10 s per phase, a pool of 64 device keys. With `--backend postgres` a fresh
//! database is created on the server at `PORTCULLIS_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust auth) and dropped at the end; SQLite uses
//! a file in a temp dir that is removed at the end. `PORTCULLIS_BENCH_DB_CONNECTIONS` sets the
//! service's database connections (default: the service's own default).
//!
//! What it does:
//! 1. runs `openssl speed -seconds 3 rsa2048` while the machine is quiet and takes its sign/s:
//!    RSA-2048 private-key operations per second on one core. The machine's ceiling is that ×
//!    nproc. An enrollment costs the server three private-key operations (decrypting the
//!    request's content key, signing the certificate, signing the CertRep; the reply's envelope
//!    is encrypted with the device's public key), so the enrollment ceiling is a third of it, and
//!    the target is half of that. It also times aws-lc-rs, which the server signs and decrypts
//!    with, on one thread;
//! 2. generates the device keys (RSA-2048), each with the self-signed certificate that signs its
//!    requests;
//! 3. starts pki-svc in-process on `127.0.0.1:0` (mTLS gRPC, admin, plain HTTP for SCEP), as its
//!    tests do, and creates a static-challenge integration through the API with an operator
//!    certificate; then makes each key's CSR with the challenge;
//! 4. builds, on every core and before any timed window, one PKCSReq per enrollment a phase could
//!    make (the enrollment ceiling × S × 1.25, from the faster of openssl and aws-lc-rs), each
//!    with a fresh transactionID (a repeated transaction is answered with the certificate already
//!    issued, without signing) and the keys taken from the pool in turn, so the client's RSA
//!    signing never competes with the server;
//! 5. times one enrollment's server-side steps on one thread, with the server's own functions
//!    (no HTTP, no database);
//! 6. drives POST `/scep/<integration>?operation=PKIOperation` over HTTP/1.1 keep-alive
//!    (hyper-util's client, a connection per caller) with 8 and then 32 callers for S seconds
//!    each. The client checks each reply by its outer SignedData alone (pkiStatus SUCCESS, the
//!    transactionID echoed), which costs it no RSA; every 64th reply is kept and, after the
//!    window, verified against the CA certificate and decrypted with the device's key
//!    (`open_cert_rep`), and must hold a certificate for that key;
//! 7. diagnostics: `ScepServer::pki_operation` (what the HTTP handler calls) from 8 tasks without
//!    HTTP; an enrollment's four store calls alone, then its certificate INSERT alone; and a
//!    probe sending GetCACaps (no RSA) every 10 ms, alone and then during the 32-caller phase, to
//!    show how long a cheap request waits while enrollments run RSA on the runtime's workers.
//!    Each phase also reports the CPU this process, the rest of the machine (PostgreSQL's server
//!    processes, other work) and nobody used, from `/proc`;
//! 8. prints enrollments/s and latency percentiles per phase, the RSA figures, the ceiling, the
//!    share of it reached and the verdict, and a Markdown table for `docs/benchmarks.md`.
//!
//! This is a load generator that prints figures, not a criterion benchmark: client and server
//! share the machine, so the figures are for the whole round trip on this host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::RsaKeyPair;
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use const_oid::ObjectIdentifier;
use const_oid::db::rfc8894;
use der::Decode;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pki_svc::authority::Authorities;
use pki_svc::config::PkiConfig;
use pki_svc::device_ca::{CsrPolicy, DeviceCa};
use pki_svc::scep::client::{Requester, Transaction, build_request, open_cert_rep};
use pki_svc::scep::enroll::ScepServer;
use pki_svc::scep::message::{
    ContentCipher, DigestAlgorithm, MessageType, Outcome, PkiStatus, RequestBody, RsaSigner, build_cert_rep,
    parse_pki_message,
};
use pki_svc::store::{CertificateRecord, Store, StoredStatus};
use portcullis_proto::pki::v1 as pb;
use portcullis_proto::pki::v1::pki_service_client::PkiServiceClient;
use rcgen::{Attribute, CertificateParams, DistinguishedName, DnType, KeyPair};
use service_kit::identity::Role;
use test_support::bench::{
    Args, Backend, BenchDatabase, CpuTimes, CpuUse, Latencies, PhaseResult, Step, drive, load_average, nproc,
    parse_args as parse_args_with, print_table, report, verdict,
};
use test_support::{RunningService, TestPki, channel, wait_until_ready};

/// Concurrent HTTP callers in the timed phases, one keep-alive connection each.
const CALLERS: [usize; 2] = [8, 32];
/// Tasks calling the SCEP server directly in the diagnostic phase.
const DIRECT_TASKS: usize = 8;
/// RSA private-key operations the server makes per enrollment: decrypt the request's content key,
/// sign the certificate, sign the CertRep.
const PRIVATE_OPS_PER_ENROLLMENT: f64 = 3.0;
/// Target: this share of the enrollment ceiling.
const TARGET_SHARE: f64 = 0.5;
/// Requests built per phase, as a multiple of what the enrollment ceiling allows in the window.
const HEADROOM: f64 = 1.25;
/// Every this many replies, one is kept to be verified and decrypted after the window.
const SAMPLE_EVERY: usize = 64;
/// Requests timed one step at a time on one thread.
const BREAKDOWN_REQUESTS: usize = 200;
/// Pause between two GetCACaps of the probe.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long the probe runs alone before the phases.
const PROBE_ALONE: Duration = Duration::from_secs(3);
/// Enrollments sent one by one (and opened in full) before the first phase.
const WARM_UP: usize = 16;
/// The integration the devices enroll through.
const INTEGRATION: &str = "bench";
/// Its subject pattern: an MDM integration names the subjects it may ask for.
const SUBJECT_PATTERN: &str = r"CN=bench device [0-9]+";
/// A 32-byte CA encryption key, base64.
const CA_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The challengePassword attribute (PKCS#9).
const CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113549, 1, 9, 7];

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE: &str = concat!(
    "usage: cargo bench -p pki-svc --bench scep_enroll -- ",
    "[--backend sqlite|postgres] [--seconds S] [--keys N]"
);

fn parse_args() -> Args {
    parse_args_with(
        "keys",
        Args {
            count: 64,
            backend: Backend::Sqlite,
            seconds: 10,
        },
        USAGE,
    )
}

/// Database connections of the service under test: `PORTCULLIS_BENCH_DB_CONNECTIONS`, or the
/// service's own default.
fn db_connections() -> u32 {
    std::env::var("PORTCULLIS_BENCH_DB_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(service_kit::db::default_max_connections)
}

fn cores() -> usize {
    nproc().parse().unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------
// RSA speed

/// RSA-2048 private-key operations per second on one core, as `openssl speed` measures them.
fn openssl_rsa2048_signs_per_second() -> f64 {
    let output = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "3", "rsa2048"])
        .output()
        .expect("the openssl command");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "openssl speed failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    openssl_sign_rate(&stdout).unwrap_or_else(|| panic!("no `rsa 2048 bits` sign/s in openssl's output:\n{stdout}"))
}

/// The sign/s column of the `rsa 2048 bits` row. Its position comes from the header, because
/// newer OpenSSL releases add encrypt and decrypt columns.
fn openssl_sign_rate(output: &str) -> Option<f64> {
    let mut column = None;
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(index) = words.iter().position(|word| *word == "sign/s") {
            column = Some(index);
        } else if let ["rsa", "2048", "bits", values @ ..] = words.as_slice() {
            return values.get(column?)?.parse().ok();
        }
    }
    None
}

/// Calls of `op` per second on this thread over `window`.
fn rate(window: Duration, mut op: impl FnMut()) -> f64 {
    let began = Instant::now();
    let mut calls = 0u64;
    while began.elapsed() < window {
        op();
        calls += 1;
    }
    calls as f64 / began.elapsed().as_secs_f64()
}

/// aws-lc-rs's RSA-2048 PKCS#1 v1.5 signatures (SHA-256) and decryptions per second on one thread:
/// the server's two kinds of private-key operation.
fn aws_lc_rates(device: &DeviceKey) -> (f64, f64) {
    let signs = rate(Duration::from_secs(1), || {
        device
            .signing
            .sign_pkcs1(DigestAlgorithm::Sha256, b"signed attributes")
            .unwrap();
    });
    let public = Pkcs1PublicEncryptingKey::new(device.decrypting.public_key()).unwrap();
    let mut ciphertext = vec![0; public.ciphertext_size()];
    public.encrypt(&[7; 32], &mut ciphertext).unwrap();
    let key = Pkcs1PrivateDecryptingKey::new(device.decrypting.clone()).unwrap();
    let mut plaintext = vec![0; key.min_output_size()];
    let decrypts = rate(Duration::from_secs(1), || {
        key.decrypt(&ciphertext, &mut plaintext).unwrap();
    });
    (signs, decrypts)
}

/// The machine's RSA figures and the ceiling they set.
#[derive(Debug, Clone, Copy)]
struct Ceiling {
    /// `openssl speed` sign/s on one core.
    openssl_per_core: f64,
    /// nproc.
    cores: usize,
}

impl Ceiling {
    /// Private-key operations per second on every core.
    fn private_ops(self) -> f64 {
        self.openssl_per_core * self.cores as f64
    }

    /// Enrollments per second if the server did nothing but its three private-key operations.
    fn enrollments(self) -> f64 {
        self.private_ops() / PRIVATE_OPS_PER_ENROLLMENT
    }
}

// ---------------------------------------------------------------------------------------------
// Devices and their requests

/// A device key from the pool: signs requests, certifies itself, opens replies.
struct DeviceKey {
    key: KeyPair,
    signing: RsaKeyPair,
    decrypting: PrivateDecryptingKey,
    /// The self-signed certificate that signs its PKCSReqs, DER.
    signer_der: Vec<u8>,
    /// Its CSR with the integration's challenge, DER (made once the integration exists).
    csr_der: Vec<u8>,
}

impl DeviceKey {
    fn generate(index: usize) -> Self {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let pkcs8 = key.serialize_der();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&format!("SCEP SIGNER {index}"));
        let signer_der = params.self_signed(&key).unwrap().der().to_vec();
        Self {
            signing: RsaKeyPair::from_pkcs8(&pkcs8).unwrap(),
            decrypting: PrivateDecryptingKey::from_pkcs8(&pkcs8).unwrap(),
            key,
            signer_der,
            csr_der: Vec::new(),
        }
    }

    /// Sets the CSR for `CN=bench device <index>` with `challenge`.
    fn make_csr(&mut self, index: usize, challenge: &str) {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&format!("bench device {index}"));
        let attribute = Attribute {
            oid: CHALLENGE_PASSWORD,
            values: der_set_of_printable(challenge),
        };
        self.csr_der = params
            .serialize_request_with_attributes(&self.key, vec![attribute])
            .unwrap()
            .der()
            .to_vec();
    }

    fn opening_key(&self) -> Pkcs1PrivateDecryptingKey {
        Pkcs1PrivateDecryptingKey::new(self.decrypting.clone()).unwrap()
    }

    /// The DER SubjectPublicKeyInfo.
    fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.key)
    }
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    name
}

/// A SET OF one PrintableString, as the challengePassword attribute holds.
fn der_set_of_printable(text: &str) -> Vec<u8> {
    assert!(text.len() < 126, "short challenges only");
    let mut printable = vec![0x13, u8::try_from(text.len()).unwrap()];
    printable.extend_from_slice(text.as_bytes());
    let mut set = vec![0x31, u8::try_from(printable.len()).unwrap()];
    set.extend(printable);
    set
}

/// `count` keys, generated on every core.
fn generate_keys(count: usize) -> Vec<DeviceKey> {
    let threads = cores().min(count).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..count).step_by(threads).map(DeviceKey::generate).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// A PKCSReq ready to send.
struct Prepared {
    body: Bytes,
    transaction_id: String,
    /// Index of the key in the pool.
    device: usize,
}

/// `count` requests, keys taken from the pool in turn, built on every core.
fn prepare(devices: &[DeviceKey], ca_der: &[u8], run: &str, count: usize) -> Vec<Prepared> {
    let threads = cores().max(1);
    let chunk = count.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let from = (t * chunk).min(count);
                let to = ((t + 1) * chunk).min(count);
                scope.spawn(move || {
                    (from..to)
                        .map(|i| prepare_one(devices, ca_der, run, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

fn prepare_one(devices: &[DeviceKey], ca_der: &[u8], run: &str, i: usize) -> Prepared {
    let device = i % devices.len();
    let key = &devices[device];
    let transaction_id = format!("{run}-{i:08}");
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce).unwrap();
    let body = build_request(
        MessageType::PkcsReq,
        &RequestBody::Csr(key.csr_der.clone()),
        &Requester {
            certificate_der: &key.signer_der,
            key: &key.signing,
        },
        &Transaction {
            transaction_id: &transaction_id,
            sender_nonce: &nonce,
            digest: DigestAlgorithm::Sha256,
        },
        ca_der,
        ContentCipher::Aes256Cbc,
    )
    .unwrap();
    Prepared {
        body: Bytes::from(body),
        transaction_id,
        device,
    }
}

/// A phase's requests, handed out one by one to its callers.
struct Queue {
    requests: Vec<Prepared>,
    next: AtomicUsize,
    /// Every this many replies, one is kept.
    sample_every: usize,
    /// Replies kept for opening after the window: (reply, request index).
    samples: Mutex<Vec<(Bytes, usize)>>,
}

impl Queue {
    fn new(requests: Vec<Prepared>, sample_every: usize) -> Arc<Self> {
        Arc::new(Self {
            requests,
            next: AtomicUsize::new(0),
            sample_every,
            samples: Mutex::new(Vec::new()),
        })
    }

    /// The next request and its index, or `None` when all are taken.
    fn take(&self) -> Option<(usize, &Prepared)> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        self.requests.get(index).map(|request| (index, request))
    }

    fn keep_if_sampled(&self, index: usize, reply: Bytes) {
        if index.is_multiple_of(self.sample_every) {
            self.samples.lock().unwrap().push((reply, index));
        }
    }

    fn exhausted(&self) -> bool {
        self.next.load(Ordering::Relaxed) >= self.requests.len()
    }

    /// Opens every kept reply as a device would (verify against the CA, decrypt with the device
    /// key) and checks it holds a certificate for that device's key. Returns how many.
    fn check_samples(&self, devices: &[DeviceKey], ca_der: &[u8]) -> usize {
        let samples = self.samples.lock().unwrap();
        for (reply, index) in samples.iter() {
            let request = &self.requests[*index];
            let device = &devices[request.device];
            let opened = open_cert_rep(reply, &device.opening_key(), ca_der)
                .unwrap_or_else(|e| panic!("sampled reply {index} does not open: {e}"));
            assert_eq!(opened.status, PkiStatus::Success, "{:?}", opened.fail_info);
            assert_eq!(opened.transaction_id, request.transaction_id);
            let certificate = opened.certificates.first().expect("a certificate");
            let (_, parsed) = x509_parser::parse_x509_certificate(certificate).unwrap();
            assert_eq!(parsed.public_key().raw, device.public_key_der().as_slice());
        }
        samples.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Replies, read without RSA

/// Checks a CertRep by its outer SignedData alone: pkiStatus SUCCESS and `transaction_id` echoed.
/// It neither verifies the CA's signature nor decrypts the certificate (each a public- or
/// private-key RSA operation on the client); the sampled replies get both after the window.
fn check_outer(der: &[u8], transaction_id: &str) -> Result<(), String> {
    let content_info = ContentInfo::from_der(der).map_err(|e| format!("not a ContentInfo: {e}"))?;
    let signed: SignedData = content_info
        .content
        .decode_as()
        .map_err(|e| format!("not a SignedData: {e}"))?;
    let signer = signed.signer_infos.0.iter().next().ok_or("no signer")?;
    let attributes = signer.signed_attrs.as_ref().ok_or("no signed attributes")?;
    let text = |oid: ObjectIdentifier| {
        attributes
            .iter()
            .find(|attribute| attribute.oid == oid)
            .and_then(|attribute| attribute.values.iter().next())
            .map(|value| String::from_utf8_lossy(value.value()).into_owned())
    };
    let status = text(rfc8894::ID_PKI_STATUS).ok_or("no pkiStatus")?;
    if status != PkiStatus::Success.code() {
        let fail_info = text(rfc8894::ID_FAIL_INFO).unwrap_or_default();
        return Err(format!("pkiStatus {status}, failInfo {fail_info}"));
    }
    match text(rfc8894::ID_TRANSACTION_ID) {
        Some(echoed) if echoed == transaction_id => Ok(()),
        other => Err(format!("transactionID {other:?} instead of {transaction_id}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The service

/// pki-svc in-process, and what the phases need of it.
struct Service {
    svc: RunningService,
    http_addr: SocketAddr,
    config: PkiConfig,
}

impl Service {
    /// Starts pki-svc on `127.0.0.1:0` as its tests do, and waits until the API answers.
    async fn start(pki: &TestPki, database_url: &str) -> Self {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http.local_addr().unwrap();
        let mut settings = test_support::service_settings(pki, "pki-svc", database_url);
        settings
            .set("database_max_connections", db_connections().to_string())
            .set("request_timeout_ms", "60000")
            .set("ca_encryption_key", CA_KEY)
            .set("public_url", format!("http://{http_addr}"));
        let config = PkiConfig::from_settings(&settings).unwrap();
        let serving = config.clone();
        let svc = RunningService::start(|grpc, admin, shutdown| {
            pki_svc::serve_on(serving, pki_svc::PkiListeners { grpc, admin, http }, shutdown)
        })
        .await;
        let viewer = PkiServiceClient::new(
            channel(svc.addr, &pki.operator("bench-viewer", Role::Viewer))
                .await
                .unwrap(),
        );
        wait_until_ready(|| {
            let mut viewer = viewer.clone();
            async move {
                viewer
                    .list_scep_integrations(pb::ListScepIntegrationsRequest::default())
                    .await
            }
        })
        .await;
        Self { svc, http_addr, config }
    }

    /// Creates the static-challenge integration through the API; returns its challenge.
    async fn create_integration(&self, pki: &TestPki) -> String {
        let tls = pki.operator("bench-operator", Role::Operator);
        PkiServiceClient::new(channel(self.svc.addr, &tls).await.unwrap())
            .create_scep_integration(pb::CreateScepIntegrationRequest {
                name: INTEGRATION.into(),
                display_name: "Load generator".into(),
                challenge_type: pb::ScepChallengeType::Static.into(),
                secret: String::new(),
                subject_pattern: SUBJECT_PATTERN.into(),
                certificate_lifetime_seconds: 0,
                san_pattern: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .secret
    }

    /// The device CA certificate, DER, from GetCACert.
    async fn ca_der(&self, client: &HttpClient) -> Vec<u8> {
        let uri = format!("http://{}/scep/{INTEGRATION}?operation=GetCACert", self.http_addr);
        let response = client.get(uri.parse().unwrap()).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    fn pki_operation_uri(&self) -> hyper::Uri {
        format!("http://{}/scep/{INTEGRATION}?operation=PKIOperation", self.http_addr)
            .parse()
            .unwrap()
    }

    /// A second `ScepServer` on its own pool over the same database and device CA (what the HTTP
    /// handler calls, for the phase without HTTP), and its CAs (for the step timings).
    async fn direct(&self) -> (ScepServer, Arc<Authorities>) {
        let database =
            service_kit::db::connect(&self.config.server.database_url, db_connections(), pki_svc::MIGRATIONS)
                .await
                .unwrap();
        let sealer = service_kit::sealing::Sealer::from_base64(&self.config.ca_encryption_key).unwrap();
        let authorities = Authorities::open(&self.config, Store::new(database), &sealer)
            .await
            .unwrap();
        (ScepServer::new(authorities.clone()), authorities)
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// An HTTP/1.1 client that keeps its connections open, with Nagle off as the service's gRPC
/// connections have it.
fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// POSTs one request and checks the reply's outer message.
async fn enroll_over_http(client: &HttpClient, uri: &hyper::Uri, queue: &Queue) -> Step {
    let Some((index, prepared)) = queue.take() else {
        return Step::Stop;
    };
    let request = hyper::Request::post(uri.clone())
        .header(hyper::header::CONTENT_TYPE, "application/x-pki-message")
        .body(Full::new(prepared.body.clone()))
        .unwrap();
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(e) => return Step::Err(format!("HTTP: {e}")),
    };
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Step::Err(format!("HTTP body: {e}")),
    };
    if status != hyper::StatusCode::OK {
        return Step::Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()));
    }
    match check_outer(&body, &prepared.transaction_id) {
        Ok(()) => {
            queue.keep_if_sampled(index, body);
            Step::Ok(false)
        }
        Err(e) => Step::Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Phases

/// GetCACaps one at a time, every [`PROBE_INTERVAL`], until told to stop: how long a request
/// that needs no RSA waits while enrollments keep the runtime's workers busy.
fn start_probe(service: &Service) -> (Arc<AtomicBool>, tokio::task::JoinHandle<(Latencies, Duration)>) {
    let client = http_client();
    let uri: hyper::Uri = format!("http://{}/scep/{INTEGRATION}?operation=GetCACaps", service.http_addr)
        .parse()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let began = Instant::now();
        let mut latencies = Latencies::default();
        while !stopped.load(Ordering::Relaxed) {
            let t = Instant::now();
            let outcome = match client.get(uri.clone()).await {
                Ok(response) if response.status() == hyper::StatusCode::OK => response
                    .into_body()
                    .collect()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Ok(response) => Err(format!("HTTP {}", response.status())),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => latencies
                    .all
                    .push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)),
                Err(e) => {
                    latencies.errors += 1;
                    latencies.first_error.get_or_insert(e);
                }
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
        (latencies, began.elapsed())
    });
    (stop, task)
}

async fn stop_probe(stop: &AtomicBool, probe: tokio::task::JoinHandle<(Latencies, Duration)>, name: &str) -> Measured {
    stop.store(true, Ordering::Relaxed);
    let (latencies, wall) = probe.await.unwrap();
    Measured {
        result: report(name, latencies, wall, None),
        cpu: None,
    }
}

/// A phase's figures and where the machine's CPU went meanwhile.
struct Measured {
    result: PhaseResult,
    cpu: Option<CpuUse>,
}

/// Runs `drive` and reports it as `name`, with the CPU time each side used.
async fn measure<S, F, Fut>(name: &str, seconds: u64, states: Vec<S>, call: F) -> Measured
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = (S, Step)> + Send,
{
    let before = CpuTimes::now();
    let (latencies, wall) = drive(seconds, None, states, call).await;
    let cpu = before
        .zip(CpuTimes::now())
        .map(|(before, after)| after.since(&before, wall));
    let result = report(name, latencies, wall, None);
    if let Some(cpu) = cpu {
        println!(
            "    CPU: this process {:.2} cores ({:.0} core-µs per call), other processes {:.2}, idle {:.2}",
            cpu.process,
            cpu.process * 1e6 / result.rate,
            cpu.others,
            cpu.idle
        );
    }
    Measured { result, cpu }
}

/// Enrollments over HTTP from `callers` concurrent callers.
async fn http_phase(service: &Service, callers: usize, seconds: u64, queue: &Arc<Queue>) -> Measured {
    let client = http_client();
    let uri = service.pki_operation_uri();
    let states = vec![(); callers];
    let call = {
        let queue = queue.clone();
        move |()| {
            let client = client.clone();
            let uri = uri.clone();
            let queue = queue.clone();
            async move { ((), enroll_over_http(&client, &uri, &queue).await) }
        }
    };
    measure(
        &format!("PKCSReq over HTTP/1.1, {callers} callers"),
        seconds,
        states,
        call,
    )
    .await
}

/// Enrollments through `ScepServer::pki_operation` from `tasks` tasks, without HTTP.
async fn direct_phase(server: &ScepServer, tasks: usize, seconds: u64, queue: &Arc<Queue>) -> Measured {
    let states = vec![(); tasks];
    let call = {
        let queue = queue.clone();
        let server = server.clone();
        move |()| {
            let queue = queue.clone();
            let server = server.clone();
            async move {
                let Some((index, prepared)) = queue.take() else {
                    return ((), Step::Stop);
                };
                let step = match server.pki_operation(INTEGRATION, prepared.body.to_vec()).await {
                    Ok(reply) => match check_outer(&reply, &prepared.transaction_id) {
                        Ok(()) => {
                            queue.keep_if_sampled(index, Bytes::from(reply));
                            Step::Ok(false)
                        }
                        Err(e) => Step::Err(e),
                    },
                    Err(e) => Step::Err(e.to_string()),
                };
                ((), step)
            }
        }
    };
    let name = format!("(diagnostic) ScepServer::pki_operation without HTTP, {tasks} tasks");
    measure(&name, seconds, states, call).await
}

/// Mean µs of each server-side step of an enrollment, timed one request at a time on one thread
/// with the server's own functions (no HTTP, no database), in the order `ScepServer` runs them.
fn breakdown(ca: &DeviceCa, requests: &[Prepared]) -> Vec<(&'static str, f64)> {
    const STEPS: [&str; 4] = [
        "parse_pki_message: verify the request's signature, RSA-decrypt its content key, AES",
        "check_csr: parse the CSR, verify its self-signature, match the subject",
        "DeviceCa::sign: build and RSA-sign the certificate",
        "build_cert_rep: encrypt to the device (public key), RSA-sign the CertRep",
    ];
    let mut spent = [Duration::ZERO; STEPS.len()];
    let lifetime = Duration::from_secs(365 * 86_400);
    // Compiled once per integration, as ScepServer keeps it.
    let pattern = regex::Regex::new(&format!("^(?:{SUBJECT_PATTERN})$")).unwrap();
    for prepared in requests {
        let t = Instant::now();
        let request = parse_pki_message(&prepared.body, ca.scep_keys()).unwrap();
        spent[0] += t.elapsed();
        let RequestBody::Csr(csr_der) = &request.body else {
            panic!("a PKCSReq carries a CSR")
        };
        let t = Instant::now();
        let policy = CsrPolicy {
            subject_pattern: Some(&pattern),
            san_pattern: None,
            lifetime,
        };
        let csr = ca.check_csr(csr_der, &policy).unwrap();
        spent[1] += t.elapsed();
        let t = Instant::now();
        let signed = ca.sign(&csr, lifetime).unwrap();
        spent[2] += t.elapsed();
        let t = Instant::now();
        let outcome = Outcome::Success {
            certificates: vec![signed.der],
            crls: Vec::new(),
        };
        build_cert_rep(ca.scep_keys(), &request.reply_to, &outcome).unwrap();
        spent[3] += t.elapsed();
    }
    let per_request = |d: &Duration| d.as_secs_f64() * 1e6 / requests.len() as f64;
    STEPS.into_iter().zip(spent.iter().map(per_request)).collect()
}

/// An enrollment's store call alone, from `tasks` tasks: the new certificate's row, inserted only
/// if the integration's secret is still the one checked (a static-challenge PKCSReq's only store
/// call once the integration is known); or, when not `with_reads`, the row unconditionally.
async fn store_phase(
    store: Store,
    tasks: usize,
    seconds: u64,
    certificate_der: Arc<Vec<u8>>,
    with_reads: bool,
) -> Measured {
    let next = Arc::new(AtomicUsize::new(0));
    let run = uuid::Uuid::now_v7().simple().to_string();
    let call = move |()| {
        let store = store.clone();
        let next = next.clone();
        let run = run.clone();
        let certificate_der = certificate_der.clone();
        async move {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let transaction_id = format!("store-{run}-{i:08}");
            let serial = format!("{run}{i:08x}");
            let step = async {
                let secret_rotated_at = if with_reads {
                    store.integration(INTEGRATION).await?.map(|i| i.secret_rotated_at)
                } else {
                    None
                };
                store
                    .insert_certificate(
                        &stored_certificate(&serial, &transaction_id, &certificate_der),
                        secret_rotated_at,
                    )
                    .await
            };
            match step.await {
                Ok(true) => ((), Step::Ok(false)),
                Ok(false) => (
                    (),
                    Step::Err(format!("transaction {transaction_id} already had a certificate")),
                ),
                Err(e) => ((), Step::Err(e.to_string())),
            }
        }
    };
    let name = if with_reads {
        format!("(diagnostic) an enrollment's store calls (read the integration, conditional INSERT), {tasks} tasks")
    } else {
        format!("(diagnostic) its certificate INSERT alone, {tasks} tasks")
    };
    measure(&name, seconds, vec![(); tasks], call).await
}

/// A certificate row as the server records one (the DER is a real issued certificate's).
fn stored_certificate(serial: &str, transaction_id: &str, certificate_der: &[u8]) -> CertificateRecord {
    let now = service_kit::clock::now_micros();
    CertificateRecord {
        id: uuid::Uuid::now_v7().to_string(),
        serial_number: serial.to_owned(),
        issuer_ca: pki_svc::device_ca::DEVICE_CA.to_owned(),
        integration: INTEGRATION.to_owned(),
        transaction_id: transaction_id.to_owned(),
        subject: "CN=bench device 0".to_owned(),
        sha256_fingerprint: pki_svc::scep::enroll::fingerprint(certificate_der),
        certificate_der: certificate_der.to_vec(),
        not_before: now,
        not_after: now + 365 * 86_400 * 1_000_000,
        issued_at: now,
        status: StoredStatus::Valid,
        revocation_reason: 0,
        revoked_at: None,
        bound_device_id: None,
        renewed_serial: String::new(),
        last_used_at: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The run

async fn bench(args: Args, pki: Arc<TestPki>, db: Arc<BenchDatabase>) -> Vec<PhaseResult> {
    let seconds = args.seconds;
    let cores = cores();

    println!("\nopenssl speed -seconds 3 rsa2048 (one core, before anything else runs) …");
    let openssl_per_core = tokio::task::spawn_blocking(openssl_rsa2048_signs_per_second)
        .await
        .unwrap();
    let ceiling = Ceiling {
        openssl_per_core,
        cores,
    };

    let began = Instant::now();
    let key_count = args.count;
    let mut devices = tokio::task::spawn_blocking(move || generate_keys(key_count))
        .await
        .unwrap();
    println!(
        "generated {} RSA-2048 device keys in {:.1} s",
        devices.len(),
        began.elapsed().as_secs_f64()
    );
    let (aws_lc_signs, aws_lc_decrypts) = aws_lc_rates(&devices[0]);
    println!(
        "RSA-2048 private-key operations per second on one core: openssl {openssl_per_core:.0} sign/s; \
         aws-lc-rs (the server's) {aws_lc_signs:.0} sign/s, {aws_lc_decrypts:.0} decrypt/s"
    );
    println!(
        "ceiling: {openssl_per_core:.0} × {cores} cores = {:.0} private-key operations/s; \
         / {PRIVATE_OPS_PER_ENROLLMENT} per enrollment = {:.0} enrollments/s; target ≥ {:.0}/s ({:.0}%)",
        ceiling.private_ops(),
        ceiling.enrollments(),
        ceiling.enrollments() * TARGET_SHARE,
        TARGET_SHARE * 100.0
    );

    let service = Service::start(&pki, &db.url).await;
    let challenge = service.create_integration(&pki).await;
    let client = http_client();
    let ca_der = service.ca_der(&client).await;
    println!(
        "pki-svc serving SCEP on http://{} ({} database connections); integration {INTEGRATION:?} created",
        service.http_addr,
        db_connections()
    );
    for (index, device) in devices.iter_mut().enumerate() {
        device.make_csr(index, &challenge);
    }
    let devices = Arc::new(devices);

    // Enough requests for each phase to run at the best private-key rate measured, with headroom.
    let best_per_core = openssl_per_core.max(aws_lc_signs).max(aws_lc_decrypts);
    let per_phase =
        ((best_per_core * cores as f64 / PRIVATE_OPS_PER_ENROLLMENT) * seconds as f64 * HEADROOM).ceil() as usize;
    let phases = CALLERS.len() + 1;
    let total = WARM_UP + BREAKDOWN_REQUESTS + per_phase * phases;
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let began = Instant::now();
    let mut prepared = {
        let devices = devices.clone();
        let ca_der = ca_der.clone();
        tokio::task::spawn_blocking(move || prepare(&devices, &ca_der, &run, total))
            .await
            .unwrap()
    };
    let bytes: usize = prepared.iter().map(|p| p.body.len()).sum();
    println!(
        "built {total} PKCSReqs ({per_phase} per phase, one transactionID each, {} keys in turn) in {:.1} s; \
         {:.1} KiB each",
        devices.len(),
        began.elapsed().as_secs_f64(),
        bytes as f64 / total as f64 / 1024.0
    );

    // Warm-up: a few enrollments one by one, each opened in full as a device would.
    let rest = prepared.split_off(WARM_UP);
    let warm_up = Queue::new(std::mem::replace(&mut prepared, rest), 1);
    let uri = service.pki_operation_uri();
    for _ in 0..WARM_UP {
        match enroll_over_http(&client, &uri, &warm_up).await {
            Step::Ok(_) => {}
            Step::Err(e) => panic!("warm-up enrollment failed: {e}"),
            Step::Stop => unreachable!(),
        }
    }
    let opened = warm_up.check_samples(&devices, &ca_der);
    println!("{opened} warm-up enrollments over HTTP, each verified and decrypted in full");
    let issued_der = {
        let samples = warm_up.samples.lock().unwrap();
        let (reply, index) = &samples[0];
        let device = &devices[warm_up.requests[*index].device];
        open_cert_rep(reply, &device.opening_key(), &ca_der)
            .unwrap()
            .certificates
            .remove(0)
    };

    let (direct, authorities) = service.direct().await;
    let rest = prepared.split_off(BREAKDOWN_REQUESTS);
    let timed = std::mem::replace(&mut prepared, rest);
    let ca = authorities.clone();
    let steps = tokio::task::spawn_blocking(move || breakdown(ca.device_ca(), &timed))
        .await
        .unwrap();
    let step_total: f64 = steps.iter().map(|(_, us)| us).sum();
    println!(
        "\none enrollment's server-side steps, {BREAKDOWN_REQUESTS} requests on one thread (no HTTP, no database):"
    );
    for (step, us) in &steps {
        println!("  {us:>7.0} µs  {step}");
    }
    println!(
        "  {step_total:>7.0} µs  in all: {:.0} enrollments/s per core, {:.0}/s on {cores} cores",
        1e6 / step_total,
        1e6 / step_total * cores as f64
    );

    let mut results = Vec::new();
    println!("\n== phases: {seconds} s each; load average {} ==", load_average());
    let (stop, probe) = start_probe(&service);
    tokio::time::sleep(PROBE_ALONE).await;
    let probe_alone = stop_probe(&stop, probe, "(diagnostic) GetCACaps every 10 ms, nothing else running").await;
    let probed = CALLERS[CALLERS.len() - 1];
    let mut probe_loaded = None;
    for callers in CALLERS {
        let rest = prepared.split_off(per_phase.min(prepared.len()));
        let queue = Queue::new(std::mem::replace(&mut prepared, rest), SAMPLE_EVERY);
        let probing = (callers == probed).then(|| start_probe(&service));
        let result = http_phase(&service, callers, seconds, &queue).await;
        if let Some((stop, probe)) = probing {
            let name = format!("(diagnostic) GetCACaps every 10 ms, during the {callers}-caller phase");
            probe_loaded = Some(stop_probe(&stop, probe, &name).await);
        }
        after_phase(&queue, &devices, &ca_der);
        results.push(result);
    }
    let queue = Queue::new(std::mem::take(&mut prepared), SAMPLE_EVERY);
    let result = direct_phase(&direct, DIRECT_TASKS, seconds, &queue).await;
    after_phase(&queue, &devices, &ca_der);
    results.push(result);
    let store = authorities.store().clone();
    let issued_der = Arc::new(issued_der);
    for with_reads in [true, false] {
        let store = store.clone();
        results.push(store_phase(store, DIRECT_TASKS, seconds, issued_der.clone(), with_reads).await);
    }
    results.push(probe_alone);
    results.extend(probe_loaded);

    println!(
        "\n== summary: backend {}, nproc {cores}, load average {} ==",
        db.backend.name(),
        load_average()
    );
    println!(
        "openssl speed rsa2048: {openssl_per_core:.0} sign/s per core; × {cores} = {:.0}/s; \
         enrollment ceiling {:.0}/s (3 private-key operations each); target ≥ {:.0}/s",
        ceiling.private_ops(),
        ceiling.enrollments(),
        ceiling.enrollments() * TARGET_SHARE
    );
    let table: Vec<PhaseResult> = results.iter().map(|m| m.result.clone()).collect();
    print_table(db.backend.name(), args.count, &table);
    for Measured { result, cpu } in &results {
        let share = result.rate / ceiling.enrollments();
        if result.name.starts_with("(diagnostic)") {
            print!(
                "{}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
                result.name, result.rate, result.p50, result.p99
            );
        } else {
            print!(
                "target: {}: {:.0} enrollments/s, p50 {:.2} ms, p99 {:.2} ms = {:.1}% of the ceiling {:.0}/s \
                 (>= {:.0}%): {}",
                result.name,
                result.rate,
                result.p50,
                result.p99,
                share * 100.0,
                ceiling.enrollments(),
                TARGET_SHARE * 100.0,
                verdict(share >= TARGET_SHARE && result.errors == 0)
            );
        }
        match cpu {
            Some(cpu) => println!(
                "; this process used {:.2} cores, {:.0} core-µs per call; other processes {:.2} cores; idle {:.2}",
                cpu.process,
                cpu.process * 1e6 / result.rate,
                cpu.others,
                cpu.idle
            ),
            None => println!(),
        }
    }
    println!(
        "(one enrollment's server-side steps alone take {step_total:.0} µs on one thread: {:.0}/s on {cores} cores)",
        1e6 / step_total * cores as f64
    );
    service.svc.stop().await;
    table
}

/// Reports whether the phase ran out of requests, and opens its sampled replies in full.
fn after_phase(queue: &Queue, devices: &[DeviceKey], ca_der: &[u8]) {
    if queue.exhausted() {
        println!(
            "    ran out of its {} prepared requests before the window ended",
            queue.requests.len()
        );
    }
    let began = Instant::now();
    let opened = queue.check_samples(devices, ca_der);
    println!(
        "    {opened} sampled replies (every {SAMPLE_EVERY}th) verified against the CA, decrypted, and hold a \
         certificate for their device's key ({:.1} s, after the window)",
        began.elapsed().as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    test_support::bench::run("scep_enroll", "device keys", parse_args(), "pki.db", bench).await;
}
