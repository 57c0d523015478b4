//! The harness policy-svc's integration tests share: policy-svc on ephemeral ports over real
//! mTLS, a second replica on the same database when a test asks, and clients for each caller.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use policy_svc::config::PolicyConfig;
use portcullis_proto::policy::v1 as pb;
use portcullis_proto::policy::v1::policy_service_client::PolicyServiceClient;
use service_kit::config::Settings;
use service_kit::identity::Role;
use service_kit::tls::TlsMaterial;
use test_support::{RunningService, TestDatabase, TestPki, base_settings, channel, wait_until_ready};
use tonic::transport::Channel;

/// PKI, database and policy-svc replicas.
pub struct Harness {
    pub pki: TestPki,
    pub db: TestDatabase,
    pub replicas: Vec<RunningService>,
}

pub type Client = PolicyServiceClient<Channel>;

impl Harness {
    pub async fn start() -> Self {
        let mut harness = Self {
            pki: TestPki::new(),
            db: TestDatabase::new().await,
            replicas: Vec::new(),
        };
        harness.start_replica().await;
        harness
    }

    pub fn settings(&self) -> Settings {
        let mut settings = base_settings(&self.pki, "policy-svc", &self.db);
        settings.set("database_max_connections", "4");
        settings
    }

    /// Starts one more replica on the same database; returns its index.
    pub async fn start_replica(&mut self) -> usize {
        let config = PolicyConfig::from_settings(&self.settings()).unwrap();
        let replica =
            RunningService::start(|grpc, admin, shutdown| policy_svc::serve_on(config, grpc, admin, shutdown)).await;
        let viewer = PolicyServiceClient::new(channel(replica.addr, &self.operator_tls(Role::Viewer)).await.unwrap());
        wait_until_ready(|| {
            let mut viewer = viewer.clone();
            async move { viewer.list_policies(pb::ListPoliciesRequest::default()).await }
        })
        .await;
        self.replicas.push(replica);
        self.replicas.len() - 1
    }

    pub fn operator_tls(&self, role: Role) -> TlsMaterial {
        self.pki.operator(&format!("test-{}", role.as_str()), role)
    }

    pub async fn client_of(&self, replica: usize, tls: &TlsMaterial) -> Client {
        PolicyServiceClient::new(channel(self.replicas[replica].addr, tls).await.unwrap())
    }

    pub async fn admin(&self) -> Client {
        self.client_of(0, &self.operator_tls(Role::Admin)).await
    }

    pub async fn viewer(&self) -> Client {
        self.client_of(0, &self.operator_tls(Role::Viewer)).await
    }

    pub async fn gateway(&self) -> Client {
        self.client_of(0, &self.pki.service("gateway")).await
    }

    pub async fn stop(self) {
        for replica in self.replicas {
            replica.stop().await;
        }
    }
}

/// Applies a YAML configuration document as the admin and returns the response.
pub async fn apply(client: &mut Client, yaml: &str) -> pb::ApplyConfigurationResponse {
    client
        .apply_configuration(pb::ApplyConfigurationRequest {
            document: yaml.to_owned(),
            format: pb::DocumentFormat::Yaml as i32,
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner()
}

/// The `ErrorInfo` reason of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// A sign-in context: `client_id`, a user in `groups`, from `address`.
pub fn context(client_id: &str, user: &str, groups: &[(&str, &str)], address: &str) -> pb::SignInContext {
    pb::SignInContext {
        client_id: client_id.to_owned(),
        user: Some(pb::UserContext {
            id: user.to_owned(),
            status: "ACTIVE".to_owned(),
            groups: groups
                .iter()
                .map(|(id, name)| pb::GroupRef {
                    id: (*id).to_owned(),
                    name: (*name).to_owned(),
                })
                .collect(),
            profile: Default::default(),
        }),
        device: None,
        network: Some(pb::NetworkContext {
            client_address: address.to_owned(),
            forwarded_for: Vec::new(),
        }),
        risk_level: pb::RiskLevel::Low as i32,
        factors: Vec::new(),
        session_last_activity_time: None,
        behaviors: Vec::new(),
    }
}

/// A factor of `kind` proven now.
pub fn factor(kind: pb::FactorType, phishing_resistant: bool) -> pb::ProvenFactor {
    pb::ProvenFactor {
        r#type: kind as i32,
        phishing_resistant,
        hardware_protected: phishing_resistant,
        device_bound: phishing_resistant,
        user_presence: false,
        user_verification: false,
        verify_time: Some(service_kit::clock::timestamp(service_kit::clock::now_micros())),
    }
}

/// A managed, registered macOS device.
pub fn managed_mac(id: &str, os_version: &str) -> pb::DeviceContext {
    pb::DeviceContext {
        id: id.to_owned(),
        registered: true,
        managed: true,
        management_source: 0,
        status: "ACTIVE".to_owned(),
        platform: portcullis_proto::device::v1::Platform::Macos as i32,
        os_version: os_version.to_owned(),
        disk_encryption: portcullis_proto::device::v1::DiskEncryptionType::AllInternalVolumes as i32,
        screen_lock: portcullis_proto::device::v1::ScreenLockType::Biometric as i32,
        secure_hardware: Some(true),
        jailbroken: Some(false),
        profile: Default::default(),
        signals: Default::default(),
    }
}

/// A configuration exercising every condition kind: zones behind a trusted proxy and a block
/// zone, a macOS assurance policy with a grace period, a stricter global session policy for
/// contractors, and an access policy whose rules are tried in order.
pub const SIGN_IN_CONFIGURATION: &str = r#"
apps:
  - name: Portal
    client_id: portal
    client_type: PUBLIC
    redirect_uris: [https://portal.example.com/callback]
    access_policy: Portal access
  - name: Vault
    client_id: vault
    client_type: CONFIDENTIAL
    redirect_uris: [https://vault.example.com/oidc/callback]
    access_policy: Vault access
network_zones:
  - name: Office
    kind: POLICY
    gateways: [198.51.100.0/24]
    proxies: [10.0.0.1, 10.0.0.2]
  - name: Blocked
    kind: BLOCK
    gateways: [203.0.113.66]
device_assurance_policies:
  - name: macOS 14
    platform: MACOS
    minimum_os_version: "14.0"
    disk_encryption_types: [ALL_INTERNAL_VOLUMES]
    remediation: Update macOS to 14 or later in System Settings.
  - name: macOS 15 with grace
    platform: MACOS
    minimum_os_version: "15.0"
    grace:
      for_seconds: 86400
    remediation: Update macOS to 15 within a day.
global_session_policies:
  - name: Contractors
    priority: 1
    group_ids: [g-contractors]
    rules:
      - name: Contractors need MFA
        actions:
          session:
            access: ALLOW
            primary_factor: PASSWORD
            mfa_required: true
            session_idle_timeout_secs: 900
            session_max_lifetime_secs: 3600
      - name: Catch-all Rule
        catch_all: true
        actions:
          session:
            access: DENY
            primary_factor: PASSWORD
            session_idle_timeout_secs: 900
            session_max_lifetime_secs: 3600
  - name: Default Policy
    default: true
    rules:
      - name: Catch-all Rule
        catch_all: true
        actions:
          session:
            access: ALLOW
            primary_factor: ANY_APP_POLICY_FACTOR
            session_idle_timeout_secs: 7200
            session_max_lifetime_secs: 86400
access_policies:
  - name: Vault access
    rules:
      - name: Compliant Macs only
        conditions:
          device:
            managed: true
            assurance: [macOS 14]
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: Catch-all Rule
        catch_all: true
        actions:
          access: {access: DENY, factor_mode: TWO_FACTOR}
  - name: Portal access
    rules:
      - name: Disabled allow-all
        active: false
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: Deny high risk
        conditions:
          risk: [HIGH]
        actions:
          access: {access: DENY, factor_mode: ONE_FACTOR}
      - name: Finance by expression
        conditions:
          expression: "user.profile.department == 'Finance' && !user.isMemberOf({'group.profile.name': 'Auditors'})"
        actions:
          access: {access: DENY, factor_mode: ONE_FACTOR}
      - name: Engineers on managed Macs
        conditions:
          people:
            include_groups: [g-eng]
            exclude_users: [u-mallory]
          platform:
            - kind: DESKTOP
              os: MACOS
          device:
            registered: true
            managed: true
            assurance: [macOS 14]
        actions:
          access:
            access: ALLOW
            factor_mode: ONE_FACTOR
            constraints:
              - class: POSSESSION
                types: [FASTPASS]
                phishing_resistant: true
                device_bound: true
      - name: Grace for Macs
        conditions:
          people:
            include_groups: [g-grace]
          device:
            assurance: [macOS 15 with grace]
        actions:
          access:
            access: ALLOW
            factor_mode: ONE_FACTOR
      - name: Office network
        conditions:
          network:
            zones_in: [Office]
        actions:
          access: {access: ALLOW, factor_mode: ONE_FACTOR}
      - name: Everyone else
        conditions:
          network:
            zones_not_in: [Office]
        actions:
          access:
            access: ALLOW
            factor_mode: TWO_FACTOR
            constraints:
              - class: KNOWLEDGE
                types: [PASSWORD]
              - class: POSSESSION
                types: [TOTP]
            reauthenticate_in_secs: 43200
            inactivity_period_secs: 3600
      - name: Catch-all Rule
        catch_all: true
        actions:
          access: {access: DENY, factor_mode: TWO_FACTOR}
"#;
