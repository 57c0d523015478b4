//! The harness pki-svc's integration tests share: pki-svc on ephemeral ports (mTLS gRPC, admin,
//! plain HTTP for SCEP), clients for each kind of caller, and a device that speaks SCEP.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::RsaKeyPair;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use pki_svc::config::PkiConfig;
use pki_svc::scep::client::{CertRepReply, Requester, Transaction, build_request, open_cert_rep};
use pki_svc::scep::message::{ContentCipher, DigestAlgorithm, MessageType, RequestBody, RsaSigner, SignError};
use portcullis_proto::pki::v1 as pb;
use portcullis_proto::pki::v1::pki_service_client::PkiServiceClient;
use rcgen::{Attribute, CertificateParams, DistinguishedName, DnType, KeyPair};
use service_kit::config::Settings;
use service_kit::identity::Role;
use service_kit::tls::TlsMaterial;
use test_support::{RunningService, TestDatabase, TestPki, base_settings, channel, wait_until_ready};
use tonic::Status;
use tonic::transport::Channel;

/// A 32-byte CA encryption key, base64.
pub const CA_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// PKI, database and pki-svc.
pub struct Harness {
    pub pki: TestPki,
    pub db: TestDatabase,
    pub svc: Option<RunningService>,
    pub http_addr: SocketAddr,
    /// Extra settings applied on every start.
    pub overrides: Vec<(&'static str, String)>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub www_authenticate: String,
    pub body: Vec<u8>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub async fn start_with(overrides: &[(&'static str, &str)]) -> Self {
        let mut harness = Self {
            pki: TestPki::new(),
            db: TestDatabase::new().await,
            svc: None,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            overrides: overrides.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        };
        harness.start_svc().await;
        harness
    }

    pub fn settings(&self) -> Settings {
        let mut settings = base_settings(&self.pki, "pki-svc", &self.db);
        let dir = self.pki.dir.path();
        settings
            .set("ca_encryption_key", CA_KEY)
            .set("service_ca_cert", dir.join("service-ca.pem").display().to_string())
            .set("service_ca_key", dir.join("service-ca.key").display().to_string())
            .set("database_max_connections", "4");
        for (key, value) in &self.overrides {
            settings.set(key, value.clone());
        }
        settings
    }

    pub async fn start_svc(&mut self) {
        assert!(self.svc.is_none(), "already running");
        // Reuse the HTTP port across restarts: issued certificates name it in their CRL URL.
        let http = tokio::net::TcpListener::bind(self.http_addr).await.unwrap();
        self.http_addr = http.local_addr().unwrap();
        let mut settings = self.settings();
        settings.set("public_url", format!("http://{}", self.http_addr));
        let config = PkiConfig::from_settings(&settings).unwrap();
        self.svc = Some(
            RunningService::start(|grpc, admin, shutdown| {
                pki_svc::serve_on(config, pki_svc::PkiListeners { grpc, admin, http }, shutdown)
            })
            .await,
        );
        let viewer = self.client(&self.operator_tls(Role::Viewer)).await;
        wait_until_ready(|| {
            let mut viewer = viewer.clone();
            async move {
                viewer
                    .list_scep_integrations(pb::ListScepIntegrationsRequest::default())
                    .await
            }
        })
        .await;
    }

    pub async fn stop_svc(&mut self) {
        self.svc.take().expect("running").stop().await;
    }

    pub async fn client(&self, tls: &TlsMaterial) -> PkiServiceClient<Channel> {
        let addr = self.svc.as_ref().expect("running").addr;
        PkiServiceClient::new(channel(addr, tls).await.unwrap())
    }

    pub fn operator_tls(&self, role: Role) -> TlsMaterial {
        self.pki.operator(&format!("test-{}", role.as_str()), role)
    }

    pub async fn admin(&self) -> PkiServiceClient<Channel> {
        self.client(&self.operator_tls(Role::Admin)).await
    }

    pub async fn operator(&self) -> PkiServiceClient<Channel> {
        self.client(&self.operator_tls(Role::Operator)).await
    }

    pub async fn viewer(&self) -> PkiServiceClient<Channel> {
        self.client(&self.operator_tls(Role::Viewer)).await
    }

    /// Creates a static-challenge integration; returns its challenge.
    pub async fn integration(&self, name: &str, subject_pattern: &str) -> String {
        self.operator()
            .await
            .create_scep_integration(pb::CreateScepIntegrationRequest {
                name: name.into(),
                display_name: format!("{name} MDM"),
                challenge_type: pb::ScepChallengeType::Static.into(),
                secret: String::new(),
                subject_pattern: subject_pattern.into(),
                certificate_lifetime_seconds: 0,
                san_pattern: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .secret
    }

    /// The device CA certificate, DER, as GetCACert serves it.
    pub async fn ca_der(&self, integration: &str) -> Vec<u8> {
        let reply = self.get(&format!("/scep/{integration}?operation=GetCACert")).await;
        assert_eq!(reply.status, 200);
        reply.body
    }

    pub async fn get(&self, path_and_query: &str) -> HttpReply {
        self.http(hyper::Method::GET, path_and_query, &[], Vec::new()).await
    }

    /// A GET with extra headers.
    pub async fn get_with(&self, path_and_query: &str, headers: &[(&str, &str)]) -> HttpReply {
        self.http(hyper::Method::GET, path_and_query, headers, Vec::new()).await
    }

    pub async fn post(&self, path_and_query: &str, body: Vec<u8>) -> HttpReply {
        let headers = [("content-type", "application/x-pki-message")];
        self.http(hyper::Method::POST, path_and_query, &headers, body).await
    }

    async fn http(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> HttpReply {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path_and_query}", self.http_addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        HttpReply {
            status,
            content_type,
            www_authenticate,
            body,
        }
    }

    /// The whole inventory, in issue order.
    pub async fn certificates(&self) -> Vec<pb::Certificate> {
        self.viewer()
            .await
            .list_certificates(pb::ListCertificatesRequest {
                page_size: 200,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .certificates
    }

    /// Sends `message` by POST to `integration` and opens the CertRep with `device`'s key.
    pub async fn pki_operation(&self, integration: &str, device: &Device, message: Vec<u8>) -> CertRepReply {
        let ca = self.ca_der(integration).await;
        let reply = self
            .post(&format!("/scep/{integration}?operation=PKIOperation"), message)
            .await;
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.content_type, "application/x-pki-message");
        open_cert_rep(&reply.body, &device.decrypting_key(), &ca).unwrap()
    }
}

/// A device enrolling through SCEP: an RSA key, the self-signed certificate that signs its
/// requests, and whatever certificate it was issued.
pub struct Device {
    pub key: KeyPair,
    pub signer_der: Vec<u8>,
}

impl Device {
    pub fn new() -> Self {
        Self::with_key(KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap())
    }

    pub fn with_key(key: KeyPair) -> Self {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "SCEP SIGNER");
        params.distinguished_name = name;
        let signer_der = params.self_signed(&key).unwrap().der().to_vec();
        Self { key, signer_der }
    }

    pub fn signing_key(&self) -> DeviceSigner {
        DeviceSigner {
            key: RsaKeyPair::from_pkcs8(&self.key.serialize_der()).unwrap(),
            key_pem: self.key.serialize_pem(),
        }
    }

    pub fn decrypting_key(&self) -> Pkcs1PrivateDecryptingKey {
        Pkcs1PrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&self.key.serialize_der()).unwrap()).unwrap()
    }

    /// A CSR for `common_name` carrying `challenge` (none when empty).
    pub fn csr(&self, common_name: &str, challenge: &str) -> Vec<u8> {
        self.csr_with_sans(common_name, challenge, Vec::new())
    }

    /// A CSR for `common_name` carrying `challenge` and asking for `sans`.
    pub fn csr_with_sans(&self, common_name: &str, challenge: &str, sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        let mut attributes = Vec::new();
        if !challenge.is_empty() {
            attributes.push(Attribute {
                oid: &[1, 2, 840, 113549, 1, 9, 7],
                values: der_set_of_printable(challenge),
            });
        }
        params
            .serialize_request_with_attributes(&self.key, attributes)
            .unwrap()
            .der()
            .to_vec()
    }

    /// A pkiMessage of `message_type` carrying `body`, signed with `signer_der` (this device's
    /// self-signed certificate unless renewing).
    pub fn message(
        &self,
        message_type: MessageType,
        body: &RequestBody,
        signer_der: &[u8],
        ca_der: &[u8],
        (cipher, digest): (ContentCipher, DigestAlgorithm),
        transaction_id: &str,
    ) -> Vec<u8> {
        let key = self.signing_key();
        let nonce: [u8; 16] = rand_bytes();
        build_request(
            message_type,
            body,
            &Requester {
                certificate_der: signer_der,
                key: &key,
            },
            &Transaction {
                transaction_id,
                sender_nonce: &nonce,
                digest,
            },
            ca_der,
            cipher,
        )
        .unwrap()
    }

    /// A PKCSReq for `common_name` with `challenge`, AES-256 and SHA-256.
    pub fn pkcs_req(&self, ca_der: &[u8], common_name: &str, challenge: &str, transaction_id: &str) -> Vec<u8> {
        self.message(
            MessageType::PkcsReq,
            &RequestBody::Csr(self.csr(common_name, challenge)),
            &self.signer_der,
            ca_der,
            (ContentCipher::Aes256Cbc, DigestAlgorithm::Sha256),
            transaction_id,
        )
    }
}

/// Signs as a device does: SHA-256 and SHA-512 with aws-lc-rs, SHA-1 (which aws-lc-rs only
/// verifies) with the `openssl` command, as old clients still do.
pub struct DeviceSigner {
    key: RsaKeyPair,
    key_pem: String,
}

impl RsaSigner for DeviceSigner {
    fn sign_pkcs1(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, SignError> {
        if digest != DigestAlgorithm::Sha1 {
            return self.key.sign_pkcs1(digest, message);
        }
        let dir = test_support::TempDir::new("sha1-signer");
        let key = dir.path().join("key.pem");
        let input = dir.path().join("message");
        std::fs::write(&key, &self.key_pem).unwrap();
        std::fs::write(&input, message).unwrap();
        let output = std::process::Command::new("openssl")
            .args(["dgst", "-sha1", "-sign"])
            .arg(&key)
            .arg(&input)
            .output()
            .expect("the openssl command");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        Ok(output.stdout)
    }
}

fn der_set_of_printable(text: &str) -> Vec<u8> {
    assert!(text.len() < 126, "short challenges only");
    let mut printable = vec![0x13, u8::try_from(text.len()).unwrap()];
    printable.extend_from_slice(text.as_bytes());
    let mut set = vec![0x31, u8::try_from(printable.len()).unwrap()];
    set.extend(printable);
    set
}

pub fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
}

/// A fresh transaction id.
pub fn transaction_id() -> String {
    rand_bytes::<12>().iter().map(|b| format!("{b:02X}")).collect()
}

/// Lower-case hex serial of a DER certificate.
pub fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a pkiMessage, lets `change` alter its SignedData and encodes it again.
pub fn with_signed_data(der: &[u8], change: impl FnOnce(&mut cms::signed_data::SignedData)) -> Vec<u8> {
    use der::{Any, Decode, Encode};
    let content_info = cms::content_info::ContentInfo::from_der(der).unwrap();
    let mut signed_data: cms::signed_data::SignedData = content_info.content.decode_as().unwrap();
    change(&mut signed_data);
    cms::content_info::ContentInfo {
        content_type: content_info.content_type,
        content: Any::encode_from(&signed_data).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// The `ErrorInfo.reason` of a status, or "".
pub fn reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}
