//! The harness device-svc's integration tests share: device-svc on ephemeral ports over real
//! mTLS, clients for each kind of caller, and real gRPC receivers for the outbox.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use device_svc::config::DeviceConfig;
use portcullis_proto::device::v1 as pb;
use portcullis_proto::device::v1::device_service_client::DeviceServiceClient;
use portcullis_proto::pki::v1 as pki;
use portcullis_proto::pki::v1::pki_service_server::{PkiService, PkiServiceServer};
use portcullis_proto::session::v1 as session;
use portcullis_proto::session::v1::session_service_server::{SessionService, SessionServiceServer};
use service_kit::config::Settings;
use service_kit::identity::Role;
use service_kit::shutdown::Shutdown;
use service_kit::tls::TlsMaterial;
use test_support::{TestDatabase, TestPki, channel};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

/// A running device-svc.
pub struct DeviceSvc {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), device_svc::RunError>>,
}

/// What a test needs: PKI, database, and device-svc (restartable over the same database).
pub struct Harness {
    pub pki: TestPki,
    pub db: TestDatabase,
    pub svc: Option<DeviceSvc>,
    pub session_url: Option<String>,
    pub pki_url: Option<String>,
}

impl Harness {
    /// device-svc with no outbox receivers.
    pub async fn start() -> Self {
        Self::start_with_receivers(None, None).await
    }

    /// device-svc sending revocations to the given URLs.
    pub async fn start_with_receivers(session_url: Option<String>, pki_url: Option<String>) -> Self {
        let pki = TestPki::new();
        let db = TestDatabase::new().await;
        let mut harness = Self {
            pki,
            db,
            svc: None,
            session_url,
            pki_url,
        };
        harness.start_svc().await;
        harness
    }

    pub fn config(&self) -> DeviceConfig {
        let files = self.pki.service_files("device-svc");
        let mut settings = Settings::default();
        settings
            .set("tls_ca", files.ca.display().to_string())
            .set("tls_cert", files.cert.display().to_string())
            .set("tls_key", files.key.display().to_string())
            .set("database_url", self.db.url.clone())
            // The smallest pool a one-core machine gets by default: the batching readers and the
            // replay ledger must share it without starving each other or other calls.
            .set("database_max_connections", "2")
            .set("page_token_secret", "test-page-token-secret");
        if let Some(url) = &self.session_url {
            settings.set("session_svc_url", url.clone());
        }
        if let Some(url) = &self.pki_url {
            settings.set("pki_svc_url", url.clone());
        }
        DeviceConfig::from_settings(&settings).unwrap()
    }

    /// Starts device-svc (again) and waits until it answers.
    pub async fn start_svc(&mut self) {
        assert!(self.svc.is_none(), "already running");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin_listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(device_svc::serve_on(
            self.config(),
            listener,
            admin_listener,
            shutdown.clone(),
        ));
        self.svc = Some(DeviceSvc {
            addr,
            admin_addr,
            shutdown,
            task,
        });
        // Ready when a call gets through (migrations run before serving).
        let client = self.operator(Role::Viewer).await;
        for _ in 0..200 {
            let mut c = client.clone();
            if c.count_devices(pb::CountDevicesRequest::default()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("device-svc did not become ready");
    }

    /// Stops device-svc and waits for it to finish.
    pub async fn stop_svc(&mut self) {
        let svc = self.svc.take().expect("running");
        svc.shutdown.trigger();
        svc.task.await.unwrap().unwrap();
    }

    pub fn addr(&self) -> SocketAddr {
        self.svc.as_ref().expect("running").addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.svc.as_ref().expect("running").admin_addr
    }

    /// A client presenting `tls`.
    pub async fn client_with(&self, tls: &TlsMaterial) -> DeviceServiceClient<Channel> {
        DeviceServiceClient::new(channel(self.addr(), tls).await.unwrap())
    }

    /// A client for an operator with `role`.
    pub async fn operator(&self, role: Role) -> DeviceServiceClient<Channel> {
        self.client_with(&self.pki.operator(&format!("test-{}", role.as_str()), role))
            .await
    }

    /// A client for service `name` (`gateway`, …).
    pub async fn service(&self, name: &str) -> DeviceServiceClient<Channel> {
        self.client_with(&self.pki.service(name)).await
    }

    pub async fn admin(&self) -> DeviceServiceClient<Channel> {
        self.operator(Role::Admin).await
    }

    pub async fn viewer(&self) -> DeviceServiceClient<Channel> {
        self.operator(Role::Viewer).await
    }

    pub async fn gateway(&self) -> DeviceServiceClient<Channel> {
        self.service("gateway").await
    }

    /// Enrolls `user`'s agent `agent` with `key` through the gateway; returns the device id.
    pub async fn enroll(&self, user: &str, agent: &str, key: &AgentKey) -> String {
        self.gateway()
            .await
            .register_device(enrollment(user, agent, key))
            .await
            .unwrap()
            .into_inner()
            .device
            .unwrap()
            .id
    }
}

/// A P-256 device key held by a test agent.
pub struct AgentKey {
    pub kid: String,
    pub pair: aws_lc_rs::signature::EcdsaKeyPair,
}

impl AgentKey {
    pub fn generate(kid: &str) -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        Self {
            kid: kid.to_owned(),
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        }
    }

    /// The public key as a proto `DeviceKey`.
    pub fn public(&self, purpose: pb::KeyPurpose) -> pb::DeviceKey {
        use aws_lc_rs::signature::KeyPair;
        use base64::Engine;
        let point = self.pair.public_key().as_ref();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        pb::DeviceKey {
            kid: self.kid.clone(),
            purpose: purpose.into(),
            hardware_protected: true,
            kty: "EC".into(),
            crv: "P-256".into(),
            x: b64.encode(&point[1..33]),
            y: b64.encode(&point[33..65]),
            user_id: String::new(),
        }
    }

    /// A compact ES256 JWT with `header` and `claims` (JSON values).
    pub fn sign(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!(
            "{}.{}",
            b64.encode(serde_json::to_vec(header).unwrap()),
            b64.encode(serde_json::to_vec(claims).unwrap())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = self.pair.sign(&rng, signing_input.as_bytes()).unwrap();
        format!("{signing_input}.{}", b64.encode(signature.as_ref()))
    }

    /// A valid FastPass response for `user_id`.
    pub fn assertion(&self, user_id: &str, audience: &str, nonce: &str, jti: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        self.sign(
            &serde_json::json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}),
            &serde_json::json!({
                "sub": user_id, "aud": audience, "nonce": nonce, "jti": jti,
                "iat": now, "exp": now + 60,
                "signals": {"osVersion": "14.4", "diskEncryptionType": "FULL", "screenLockType": "BIOMETRIC"}
            }),
        )
    }
}

/// A plausible enrollment request for `user_id` on agent `app_instance_id`.
pub fn enrollment(user_id: &str, app_instance_id: &str, key: &AgentKey) -> pb::RegisterDeviceRequest {
    pb::RegisterDeviceRequest {
        user_id: user_id.into(),
        app_instance_id: app_instance_id.into(),
        profile: Some(pb::DeviceProfile {
            display_name: format!("{user_id}'s MacBook Pro"),
            platform: pb::Platform::Macos.into(),
            manufacturer: "Apple".into(),
            model: "MacBookPro18,3".into(),
            os_version: "14.4.1".into(),
            serial_number: format!("C02{}", app_instance_id.to_uppercase()),
            udid: String::new(),
            sid: String::new(),
            imei: String::new(),
            meid: String::new(),
            tpm_public_key_hash: String::new(),
            secure_hardware_present: true,
            disk_encryption_type: pb::DiskEncryptionType::Full.into(),
            screen_lock_type: pb::ScreenLockType::Biometric.into(),
            integrity_jailbreak: false,
        }),
        keys: vec![key.public(pb::KeyPurpose::ProofOfPossession)],
        signals: None,
        enrollment_token: String::new(),
    }
}

/// The `ErrorInfo.reason` of a status, or "" when it has none.
pub fn reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// The field named by a status's `BadRequest`, or "".
pub fn bad_field(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

/// What a receiver got.
#[derive(Default)]
pub struct Received {
    pub revoke_sessions: Vec<session::RevokeSessionsRequest>,
    pub revoke_certificates: Vec<pki::RevokeCertificateRequest>,
    /// The `x-request-id` each call carried.
    pub request_ids: Vec<String>,
}

fn request_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A real mTLS gRPC server standing in for session-svc and pki-svc until they exist: it
/// implements the generated traits and records what it receives.
#[derive(Clone, Default)]
pub struct Receiver {
    pub received: Arc<Mutex<Received>>,
}

#[tonic::async_trait]
impl SessionService for Receiver {
    async fn revoke_sessions(
        &self,
        request: Request<session::RevokeSessionsRequest>,
    ) -> Result<Response<session::RevokeSessionsResponse>, Status> {
        let mut received = self.received.lock().unwrap();
        received.request_ids.push(request_id(&request));
        received.revoke_sessions.push(request.into_inner());
        Ok(Response::new(session::RevokeSessionsResponse { revoked_count: 1 }))
    }

    type WatchRevocationsStream = tokio_stream::Empty<Result<session::Revocation, Status>>;

    async fn watch_revocations(
        &self,
        _: Request<session::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    // The rest of SessionService is not what these tests are about.
    async fn create_session(
        &self,
        _: Request<session::CreateSessionRequest>,
    ) -> Result<Response<session::CreateSessionResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn validate_session(
        &self,
        _: Request<session::ValidateSessionRequest>,
    ) -> Result<Response<session::Session>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn get_session(&self, _: Request<session::GetSessionRequest>) -> Result<Response<session::Session>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn list_sessions(
        &self,
        _: Request<session::ListSessionsRequest>,
    ) -> Result<Response<session::ListSessionsResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn revoke_session(
        &self,
        _: Request<session::RevokeSessionRequest>,
    ) -> Result<Response<session::Session>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn issue_authorization_code(
        &self,
        _: Request<session::IssueAuthorizationCodeRequest>,
    ) -> Result<Response<session::IssueAuthorizationCodeResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn redeem_authorization_code(
        &self,
        _: Request<session::RedeemAuthorizationCodeRequest>,
    ) -> Result<Response<session::RedeemAuthorizationCodeResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn list_events(
        &self,
        _: Request<session::ListEventsRequest>,
    ) -> Result<Response<session::ListEventsResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }
}

#[tonic::async_trait]
impl PkiService for Receiver {
    async fn revoke_certificate(
        &self,
        request: Request<pki::RevokeCertificateRequest>,
    ) -> Result<Response<pki::RevokeCertificateResponse>, Status> {
        self.received
            .lock()
            .unwrap()
            .revoke_certificates
            .push(request.into_inner());
        Ok(Response::new(pki::RevokeCertificateResponse {
            revoked_serial_numbers: vec![],
        }))
    }

    async fn create_dynamic_challenge(
        &self,
        _: Request<pki::CreateDynamicChallengeRequest>,
    ) -> Result<Response<pki::CreateDynamicChallengeResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn import_trusted_ca(
        &self,
        _: Request<pki::ImportTrustedCaRequest>,
    ) -> Result<Response<pki::TrustedCa>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn list_trusted_cas(
        &self,
        _: Request<pki::ListTrustedCasRequest>,
    ) -> Result<Response<pki::ListTrustedCasResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn remove_trusted_ca(&self, _: Request<pki::RemoveTrustedCaRequest>) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn upload_trusted_ca_crl(
        &self,
        _: Request<pki::UploadTrustedCaCrlRequest>,
    ) -> Result<Response<pki::TrustedCa>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn create_mobile_integration(
        &self,
        _: Request<pki::CreateMobileIntegrationRequest>,
    ) -> Result<Response<pki::CreateMobileIntegrationResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn rotate_mobile_secret(
        &self,
        _: Request<pki::RotateMobileSecretRequest>,
    ) -> Result<Response<pki::CreateMobileIntegrationResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn verify_management_attestation(
        &self,
        _: Request<pki::VerifyManagementAttestationRequest>,
    ) -> Result<Response<pki::VerifyManagementAttestationResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn get_ca_certificates(
        &self,
        _: Request<pki::GetCaCertificatesRequest>,
    ) -> Result<Response<pki::GetCaCertificatesResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn issue_service_certificate(
        &self,
        _: Request<pki::IssueServiceCertificateRequest>,
    ) -> Result<Response<pki::IssueServiceCertificateResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn create_scep_integration(
        &self,
        _: Request<pki::CreateScepIntegrationRequest>,
    ) -> Result<Response<pki::CreateScepIntegrationResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn list_scep_integrations(
        &self,
        _: Request<pki::ListScepIntegrationsRequest>,
    ) -> Result<Response<pki::ListScepIntegrationsResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn rotate_scep_secret(
        &self,
        _: Request<pki::RotateScepSecretRequest>,
    ) -> Result<Response<pki::RotateScepSecretResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn delete_scep_integration(
        &self,
        _: Request<pki::DeleteScepIntegrationRequest>,
    ) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn list_certificates(
        &self,
        _: Request<pki::ListCertificatesRequest>,
    ) -> Result<Response<pki::ListCertificatesResponse>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }

    async fn get_certificate(
        &self,
        _: Request<pki::GetCertificateRequest>,
    ) -> Result<Response<pki::Certificate>, Status> {
        Err(Status::unimplemented("not part of this stand-in"))
    }
}

/// A running receiver.
pub struct RunningReceiver {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Serves on `addr` (use `127.0.0.1:0` first, then the same address to come back).
    pub async fn serve(&self, addr: SocketAddr, tls: &TlsMaterial) -> RunningReceiver {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Server::builder()
            .tls_config(tls.server_config())
            .unwrap()
            .add_service(SessionServiceServer::new(self.clone()))
            .add_service(PkiServiceServer::new(self.clone()));
        let task = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        RunningReceiver {
            addr,
            stop: Some(stop),
            task,
        }
    }
}

impl RunningReceiver {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}
