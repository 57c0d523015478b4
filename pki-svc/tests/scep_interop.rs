//! Enrollment by an independent SCEP client: micromdm's `scepclient` as Debian ships it (2.1.0,
//! which signs with SHA-1 and encrypts with single DES-CBC whatever GetCACaps offers), checked
//! with the `openssl` command: the issued certificate chains to GetCACert's CA, the inventory lists
//! it, its revocation reaches the CRL, and what the challenge and subject pattern refuse is not
//! issued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Harness, serial_of};
use portcullis_proto::pki::v1 as pb;
use test_support::TempDir;

/// The common name every enrollment here asks for, as the banner of `portcullis up` suggests.
const COMMON_NAME: &str = "managementAttestation 0001";

/// `.tools/scep/usr/bin/scepclient`, which `scripts/install-tools` unpacks.
fn scepclient() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/scep/usr/bin/scepclient");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/install-tools (it unpacks Debian's `scep` package) before these tests",
        path.display()
    );
    path
}

/// Runs scepclient against `url` with `challenge`, keeping its key and certificate in `dir` as
/// `device.key` and `device.pem`.
async fn enroll(url: String, challenge: String, dir: PathBuf) -> Output {
    enroll_as(url, challenge, dir, "device").await
}

/// Runs scepclient with key `{name}.key` and certificate `{name}.pem` in `dir`, where it also
/// keeps (and reuses) `csr.pem` and `self.pem`. The server runs on this test's runtime, so the
/// client waits on a blocking thread.
async fn enroll_as(url: String, challenge: String, dir: PathBuf, name: &str) -> Output {
    let client = scepclient();
    let key = dir.join(format!("{name}.key"));
    let certificate = dir.join(format!("{name}.pem"));
    tokio::task::spawn_blocking(move || {
        Command::new(client)
            .arg("-server-url")
            .arg(url)
            .arg("-challenge")
            .arg(challenge)
            .arg("-private-key")
            .arg(key)
            .arg("-certificate")
            .arg(certificate)
            .arg("-cn")
            .arg(COMMON_NAME)
            .output()
            .expect("scepclient runs")
    })
    .await
    .unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `openssl` with `args`; returns its output whatever its exit status.
fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command")
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The DER of the first PEM block in `text`.
fn pem_contents(text: &[u8]) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(text).unwrap().1.contents
}

#[tokio::test]
async fn scepclient_enrolls_with_the_static_challenge_and_its_revocation_reaches_the_crl() {
    let harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let url = format!("http://{}/scep/jamf", harness.http_addr);
    let dir = TempDir::new("scep-interop");
    let ca_der = harness.ca_der("jamf").await;
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, pki_svc::device_ca::pem("CERTIFICATE", &ca_der)).unwrap();

    let output = enroll(url, challenge, dir.path().to_owned()).await;
    assert!(output.status.success(), "scepclient failed: {}", describe(&output));
    let device_pem = dir.path().join("device.pem");
    let issued = pem_contents(&std::fs::read(&device_pem).unwrap());

    // A client certificate for the name asked for, issued by the device CA, for the key
    // scepclient made.
    let (_, cert) = x509_parser::parse_x509_certificate(&issued).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let common_names: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap())
        .collect();
    assert_eq!(common_names, [COMMON_NAME], "subject {}", cert.subject());
    assert!(cert.extended_key_usage().unwrap().unwrap().value.client_auth);
    assert!(!cert.is_ca());
    assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
    cert.verify_signature(Some(ca.public_key())).unwrap();
    let key_pem = std::fs::read(dir.path().join("device.key")).unwrap();
    let key = rcgen::KeyPair::from_pem(std::str::from_utf8(&key_pem).unwrap()).unwrap();
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );

    // OpenSSL agrees that it chains to the CA GetCACert serves, for client authentication.
    let verified = openssl(&[
        "verify",
        "-CAfile",
        path(&ca_pem),
        "-purpose",
        "sslclient",
        path(&device_pem),
    ]);
    assert!(verified.status.success(), "openssl verify: {}", describe(&verified));
    assert!(String::from_utf8_lossy(&verified.stdout).contains(": OK"));

    // The inventory lists it under its serial, valid, with the subject it carries.
    let serial = serial_of(&issued);
    let listed = harness.certificates().await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].serial_number, serial);
    assert_eq!(listed[0].integration, "jamf");
    assert_eq!(listed[0].status, pb::CertificateStatus::Valid as i32);
    assert!(
        listed[0].subject.contains(&format!("CN={COMMON_NAME}")),
        "{}",
        listed[0].subject
    );
    assert_eq!(pem_contents(listed[0].certificate_pem.as_bytes()), issued);

    // Revoked over gRPC, it is on the CRL served over HTTP, and OpenSSL refuses it from then on.
    let revoked = harness
        .operator()
        .await
        .revoke_certificate(pb::RevokeCertificateRequest {
            serial_number: serial.clone(),
            reason: pb::CertificateRevocationReason::KeyCompromise.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.revoked_serial_numbers, [serial.as_str()]);
    let crl = harness.get("/crl/device.crl").await;
    assert_eq!(crl.status, 200);
    let crl_der = dir.path().join("device.crl");
    std::fs::write(&crl_der, &crl.body).unwrap();
    let text = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        path(&crl_der),
        "-CAfile",
        path(&ca_pem),
        "-noout",
        "-text",
    ]);
    assert!(text.status.success(), "openssl crl: {}", describe(&text));
    let stdout = String::from_utf8_lossy(&text.stdout);
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        stdout.contains("verify OK") || stderr.contains("verify OK"),
        "the CRL is signed by the device CA: {}",
        describe(&text)
    );
    assert!(
        stdout.contains(&format!("Serial Number: {}", serial.to_uppercase())),
        "{serial} is not on the CRL:\n{stdout}"
    );
    assert!(stdout.contains("Key Compromise"), "{stdout}");
    let crl_pem = dir.path().join("device-crl.pem");
    std::fs::write(&crl_pem, pki_svc::device_ca::pem("X509 CRL", &crl.body)).unwrap();
    let refused = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        path(&crl_pem),
        "-CAfile",
        path(&ca_pem),
        path(&device_pem),
    ]);
    assert!(
        !refused.status.success(),
        "a revoked certificate verified: {}",
        describe(&refused)
    );
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("certificate revoked")
            || String::from_utf8_lossy(&refused.stderr).contains("certificate revoked"),
        "{}",
        describe(&refused)
    );
}

#[tokio::test]
async fn scepclient_with_a_wrong_challenge_fails_and_nothing_is_issued() {
    let harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let url = format!("http://{}/scep/jamf", harness.http_addr);
    let dir = TempDir::new("scep-interop-wrong");

    let output = enroll(url, format!("{challenge}-wrong"), dir.path().to_owned()).await;
    assert!(!output.status.success(), "scepclient enrolled: {}", describe(&output));
    // scepclient reports the CA's failInfo.
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("failInfo: badRequest"),
        "{}",
        describe(&output)
    );
    let written = std::fs::read(dir.path().join("device.pem")).unwrap_or_default();
    assert!(
        x509_parser::pem::parse_x509_pem(&written).is_err(),
        "scepclient wrote a certificate"
    );
    assert!(harness.certificates().await.is_empty());
}

#[tokio::test]
async fn an_integrations_subject_pattern_must_match_the_whole_subject_scepclient_sends() {
    let harness = Harness::start().await;
    // scepclient puts C, O and OU in the subject besides the CN it is given.
    let strict = harness.integration("strict", "CN=managementAttestation [0-9]+").await;
    let loose = harness
        .integration("loose", ".*CN=managementAttestation [0-9]+.*")
        .await;

    let dir = TempDir::new("scep-interop-strict");
    let url = format!("http://{}/scep/strict", harness.http_addr);
    let output = enroll(url, strict, dir.path().to_owned()).await;
    assert!(!output.status.success(), "scepclient enrolled: {}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("failInfo: badRequest"),
        "{}",
        describe(&output)
    );
    assert!(harness.certificates().await.is_empty());

    let dir = TempDir::new("scep-interop-loose");
    let url = format!("http://{}/scep/loose", harness.http_addr);
    let output = enroll(url, loose, dir.path().to_owned()).await;
    assert!(output.status.success(), "scepclient failed: {}", describe(&output));
    let listed = harness.certificates().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].integration, "loose");
}

// scepclient keeps the CSR it made in `csr.pem` beside the key and sends it again on the next run
// from that directory, even with another key: that request carries the first run's CSR and
// transaction ID (a hash of the CSR's key) but is signed by a key that is not the CSR's. pki-svc
// takes it for a retry and answers with the first run's certificate before any of the checks a new
// request gets (the CSR's signature, the challenge, the signer holding the CSR's key).
#[tokio::test]
async fn a_retried_transaction_signed_by_another_key_gets_nothing() {
    let harness = Harness::start().await;
    let challenge = harness.integration("jamf", "").await;
    let url = format!("http://{}/scep/jamf", harness.http_addr);
    let dir = TempDir::new("scep-interop-reused-csr");
    let first = enroll_as(url.clone(), challenge, dir.path().to_owned(), "first").await;
    assert!(first.status.success(), "scepclient failed: {}", describe(&first));

    let second = enroll_as(url, "no challenge needed".into(), dir.path().to_owned(), "second").await;
    assert!(
        !second.status.success(),
        "the second key was handed the first key's certificate: {}",
        describe(&second)
    );
    assert!(!dir.path().join("second.pem").exists());
    assert_eq!(harness.certificates().await.len(), 1);
}
