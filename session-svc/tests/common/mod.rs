//! The harness session-svc's integration tests share: session-svc on ephemeral ports over real
//! mTLS, restartable over the same database, and clients for each kind of caller.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use portcullis_proto::session::v1 as pb;
use portcullis_proto::session::v1::directory_service_client::DirectoryServiceClient;
use portcullis_proto::session::v1::session_service_client::SessionServiceClient;
use service_kit::config::Settings;
use service_kit::identity::Role;
use service_kit::tls::TlsMaterial;
use session_svc::config::SessionConfig;
use test_support::{RunningService, TestDatabase, TestPki, base_settings, channel, wait_until_ready};
use tonic::Status;
use tonic::transport::Channel;

/// A 32-byte TOTP key, base64.
pub const TOTP_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// PKI, database and session-svc.
pub struct Harness {
    pub pki: TestPki,
    pub db: TestDatabase,
    pub svc: Option<RunningService>,
    /// Extra settings (`lockout_threshold`, …) applied on every start.
    pub overrides: Vec<(&'static str, String)>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// session-svc with some settings changed, e.g. `[("lockout_threshold", "3")]`.
    pub async fn start_with(overrides: &[(&'static str, &str)]) -> Self {
        let mut harness = Self {
            pki: TestPki::new(),
            db: TestDatabase::new().await,
            svc: None,
            overrides: overrides.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        };
        harness.start_svc().await;
        harness
    }

    pub fn settings(&self) -> Settings {
        let mut settings = base_settings(&self.pki, "session-svc", &self.db);
        settings
            .set("totp_encryption_key", TOTP_KEY)
            .set("database_max_connections", "4");
        for (key, value) in &self.overrides {
            settings.set(key, value.clone());
        }
        settings
    }

    pub async fn start_svc(&mut self) {
        assert!(self.svc.is_none(), "already running");
        let config = SessionConfig::from_settings(&self.settings()).unwrap();
        self.svc = Some(
            RunningService::start(|grpc, admin, shutdown| session_svc::serve_on(config, grpc, admin, shutdown)).await,
        );
        let viewer = self.directory(&self.pki.operator("ready", Role::Viewer)).await;
        wait_until_ready(|| {
            let mut viewer = viewer.clone();
            async move { viewer.list_groups(pb::ListGroupsRequest::default()).await }
        })
        .await;
    }

    pub async fn stop_svc(&mut self) {
        self.svc.take().expect("running").stop().await;
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.svc.as_ref().expect("running").addr
    }

    pub async fn channel(&self, tls: &TlsMaterial) -> Channel {
        channel(self.addr(), tls).await.unwrap()
    }

    pub async fn directory(&self, tls: &TlsMaterial) -> DirectoryServiceClient<Channel> {
        DirectoryServiceClient::new(self.channel(tls).await)
    }

    pub async fn sessions(&self, tls: &TlsMaterial) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.channel(tls).await)
    }

    pub fn operator_tls(&self, role: Role) -> TlsMaterial {
        self.pki.operator(&format!("test-{}", role.as_str()), role)
    }

    /// DirectoryService as an admin operator.
    pub async fn admin_directory(&self) -> DirectoryServiceClient<Channel> {
        self.directory(&self.operator_tls(Role::Admin)).await
    }

    /// DirectoryService as the gateway.
    pub async fn gateway_directory(&self) -> DirectoryServiceClient<Channel> {
        self.directory(&self.pki.service("gateway")).await
    }

    /// SessionService as the gateway.
    pub async fn gateway_sessions(&self) -> SessionServiceClient<Channel> {
        self.sessions(&self.pki.service("gateway")).await
    }

    /// SessionService as an operator.
    pub async fn operator_sessions(&self) -> SessionServiceClient<Channel> {
        self.sessions(&self.operator_tls(Role::Operator)).await
    }

    /// SessionService as device-svc.
    pub async fn device_svc_sessions(&self) -> SessionServiceClient<Channel> {
        self.sessions(&self.pki.service("device-svc")).await
    }

    /// Creates a user with `login` through the admin.
    pub async fn user(&self, login: &str) -> pb::User {
        self.admin_directory()
            .await
            .create_user(pb::CreateUserRequest {
                login: login.into(),
                email: format!("{login}@example.com"),
                display_name: login.into(),
                profile: Default::default(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// A session for `user_id` through the gateway.
    pub async fn session(&self, user_id: &str, device_id: &str, fastpass: bool) -> pb::CreateSessionResponse {
        self.gateway_sessions()
            .await
            .create_session(pb::CreateSessionRequest {
                user_id: user_id.into(),
                device_id: device_id.into(),
                amr: if fastpass {
                    vec!["hwk".into(), "user".into(), "mfa".into()]
                } else {
                    vec!["pwd".into()]
                },
                device_authenticator: fastpass,
                idle_timeout: None,
                max_lifetime: None,
                client_ip: "192.0.2.1".into(),
                user_agent: "test".into(),
            })
            .await
            .unwrap()
            .into_inner()
    }
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

/// The field a status's `BadRequest` names, or "".
pub fn bad_field(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}
