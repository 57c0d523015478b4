//! The configuration policy-svc keeps: apps, network zones, device assurance policies, and
//! global session and access policies with their rules. One [`Configuration`] value is the whole
//! of it; every change is made to a copy, validated whole, then stored.

use std::collections::BTreeMap;

use portcullis_proto::device::v1::{DiskEncryptionType, Platform, ScreenLockType};
use serde::{Deserialize, Serialize};

/// Rules a policy may hold, the catch-all included (Okta's limit).
pub const MAX_RULES_PER_POLICY: usize = 100;

/// Every resource, by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Configuration {
    /// OIDC clients.
    pub apps: BTreeMap<String, App>,
    /// Network zones.
    pub zones: BTreeMap<String, Zone>,
    /// Device assurance policies.
    pub assurance: BTreeMap<String, AssurancePolicy>,
    /// Global session and access policies, each with its rules.
    pub policies: BTreeMap<String, Policy>,
}

/// Whether an OIDC client can keep a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientType {
    /// Has a secret.
    Confidential,
    /// No secret; PKCE required.
    Public,
}

/// An OIDC client.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// Id.
    pub id: String,
    /// Unique display name.
    pub name: String,
    /// OAuth client id, unique.
    pub client_id: String,
    /// Confidential or public.
    pub client_type: ClientType,
    /// Exact-match redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Allowed scopes.
    pub allowed_scopes: Vec<String>,
    /// The access policy in force for this app.
    pub access_policy_id: String,
    /// Hash of the client secret (confidential clients).
    pub secret_hash: Option<String>,
    /// Unix micros.
    pub create_time: i64,
    /// Unix micros.
    pub update_time: i64,
    /// Unix micros; confidential clients.
    pub secret_rotate_time: Option<i64>,
}

/// What a zone is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ZoneKind {
    /// Named by rules.
    Policy,
    /// Denied outright.
    Block,
}

/// A network zone as stored: addresses as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Policy or block zone.
    pub kind: ZoneKind,
    /// CIDRs, addresses or ranges requests come from.
    pub gateways: Vec<String>,
    /// Trusted proxies.
    pub proxies: Vec<String>,
    /// Unix micros.
    pub create_time: i64,
    /// Unix micros.
    pub update_time: i64,
}

/// A grace period for failing devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grace {
    /// Until this time (unix micros).
    UntilMicros(i64),
    /// For this many seconds after the device first failed.
    ForSeconds(u64),
}

/// A device assurance policy as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AssurancePolicy {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The platform it applies to.
    pub platform: Platform,
    /// Dotted minimum version, if any.
    pub minimum_os_version: Option<String>,
    /// Any of these.
    pub disk_encryption_types: Vec<DiskEncryptionType>,
    /// Any of these.
    pub screen_lock_types: Vec<ScreenLockType>,
    /// Secure hardware (TPM, Secure Enclave) required.
    pub secure_hardware_required: bool,
    /// Jailbroken or rooted devices fail.
    pub jailbreak_forbidden: bool,
    /// Grace period for failing devices.
    pub grace: Option<Grace>,
    /// What to tell a person whose device fails.
    pub remediation: String,
    /// Unix micros.
    pub create_time: i64,
    /// Unix micros.
    pub update_time: i64,
}

/// Which decision a policy takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyType {
    /// The global session policy.
    GlobalSession,
    /// An app sign-in policy.
    Access,
}

/// A policy and its rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Id.
    pub id: String,
    /// Unique per type.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Global session or access.
    pub policy_type: PolicyType,
    /// Global session policies: 1 first.
    pub priority: i32,
    /// Global session policies: the groups it applies to (empty: everyone).
    pub group_ids: Vec<String>,
    /// The built-in default global session policy.
    pub is_default: bool,
    /// In evaluation order, the catch-all last.
    pub rules: Vec<Rule>,
    /// Unix micros.
    pub create_time: i64,
    /// Unix micros.
    pub update_time: i64,
}

impl Policy {
    /// Puts the rules in evaluation order: by priority, the catch-all last, then renumbers them
    /// 1, 2, 3… so priorities stay dense as rules come and go.
    pub fn order_rules(&mut self) {
        self.rules.sort_by_key(|rule| (rule.catch_all, rule.priority));
        for (index, rule) in self.rules.iter_mut().enumerate() {
            rule.priority = i32::try_from(index + 1).unwrap_or(i32::MAX);
        }
    }
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Id.
    pub id: String,
    /// Unique within its policy.
    pub name: String,
    /// 1 first.
    pub priority: i32,
    /// Inactive rules are skipped.
    pub active: bool,
    /// Matches everything; last; cannot be deleted.
    pub catch_all: bool,
    /// All must match.
    pub conditions: Conditions,
    /// What happens when it matches.
    pub actions: Actions,
}

/// A rule's conditions; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    /// Users and groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub people: Option<People>,
    /// Network zones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Desktop or mobile, and the OS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Vec<PlatformMatch>>,
    /// Registered, managed, assurance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceCondition>,
    /// Risk levels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<Vec<RiskLevel>>,
    /// An expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// Users and groups; excludes win.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct People {
    /// Users included (with the groups; empty with empty groups: everyone).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include_users: Vec<String>,
    /// Users excluded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_users: Vec<String>,
    /// Groups included.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include_groups: Vec<String>,
    /// Groups excluded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_groups: Vec<String>,
}

/// Where the request comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Network {
    /// Anywhere.
    Anywhere,
    /// In any of these zones (ids).
    ZonesIn(Vec<String>),
    /// In none of these zones (ids).
    ZonesNotIn(Vec<String>),
}

/// Desktop or mobile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlatformKind {
    /// macOS, Windows, ChromeOS, Linux.
    Desktop,
    /// iOS, Android.
    Mobile,
}

impl PlatformKind {
    /// The kind of a device platform.
    pub fn of(platform: Platform) -> Option<Self> {
        match platform {
            Platform::Macos | Platform::Windows | Platform::Chromeos | Platform::Linux => Some(Self::Desktop),
            Platform::Ios | Platform::Android => Some(Self::Mobile),
            Platform::Unspecified => None,
        }
    }
}

/// A kind and optionally one OS of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformMatch {
    /// Desktop or mobile.
    pub kind: PlatformKind,
    /// One OS, or any.
    #[serde(default, with = "platform_name", skip_serializing_if = "Option::is_none")]
    pub os: Option<Platform>,
}

/// What is known about the device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceCondition {
    /// Must (not) be registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<bool>,
    /// Must (not) be managed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed: Option<bool>,
    /// Any of these assurance policies (ids).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assurance: Vec<String>,
}

/// A sign-in's risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskLevel {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

impl RiskLevel {
    /// As `security.risk.level` reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        }
    }
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Actions {
    /// An access rule's actions.
    Access(AccessActions),
    /// A global session rule's actions.
    Session(SessionActions),
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Access {
    /// Allow (subject to the factor requirements).
    Allow,
    /// Deny.
    Deny,
}

/// One factor or two kinds of factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FactorMode {
    /// Any one factor.
    OneFactor,
    /// Two different kinds.
    TwoFactor,
}

/// The kind of a factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FactorClass {
    /// Knows.
    Knowledge,
    /// Has.
    Possession,
    /// Is.
    Inherence,
}

impl FactorClass {
    /// Lower-case name, for sentences.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Knowledge => "knowledge",
            Self::Possession => "possession",
            Self::Inherence => "inherence",
        }
    }
}

/// A factor the gateway verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FactorType {
    /// Password.
    Password,
    /// TOTP code.
    Totp,
    /// The device agent's signed answer.
    Fastpass,
    /// A FIDO2 security key.
    SecurityKey,
}

impl FactorType {
    /// The class a factor of this type proves.
    pub fn class(self) -> FactorClass {
        match self {
            Self::Password => FactorClass::Knowledge,
            Self::Totp | Self::Fastpass | Self::SecurityKey => FactorClass::Possession,
        }
    }
}

/// A requirement on one proven factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorConstraint {
    /// The class.
    pub class: FactorClass,
    /// Acceptable types (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<FactorType>,
    /// Phishing-resistant.
    #[serde(default, skip_serializing_if = "is_false")]
    pub phishing_resistant: bool,
    /// Hardware-protected key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hardware_protected: bool,
    /// Bound to the device.
    #[serde(default, skip_serializing_if = "is_false")]
    pub device_bound: bool,
    /// User presence.
    #[serde(default, skip_serializing_if = "is_false")]
    pub user_presence: bool,
    /// User verification (biometric or PIN).
    #[serde(default, skip_serializing_if = "is_false")]
    pub user_verification: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// An access rule's actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessActions {
    /// Allow or deny.
    pub access: Access,
    /// One factor or two.
    pub factor_mode: FactorMode,
    /// Each met by some proven factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<FactorConstraint>,
    /// Factors older than this do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reauthenticate_in_secs: Option<u64>,
    /// A session idle longer than this proves again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactivity_period_secs: Option<u64>,
}

/// The primary factor of a global session rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PrimaryFactor {
    /// Password first.
    Password,
    /// Whatever the app policy accepts.
    AnyAppPolicyFactor,
}

/// A global session rule's actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionActions {
    /// Allow or deny.
    pub access: Access,
    /// Password first, or anything the app policy accepts.
    pub primary_factor: PrimaryFactor,
    /// Two kinds of factor whatever the app policy says.
    #[serde(default)]
    pub mfa_required: bool,
    /// Idle timeout.
    pub session_idle_timeout_secs: u64,
    /// Maximum lifetime.
    pub session_max_lifetime_secs: u64,
}

/// Serializes an optional device platform by its short name (`MACOS`).
pub mod platform_name {
    use portcullis_proto::device::v1::Platform;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes.
    pub fn serialize<S: Serializer>(value: &Option<Platform>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(platform) => serializer.serialize_str(super::short_name(platform.as_str_name(), "PLATFORM_")),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Platform>, D::Error> {
        let name: Option<String> = Option::deserialize(deserializer)?;
        name.map(|name| {
            Platform::from_str_name(&format!("PLATFORM_{}", name.to_ascii_uppercase()))
                .filter(|p| *p != Platform::Unspecified)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown platform {name:?}")))
        })
        .transpose()
    }
}

/// A proto enum name without its type prefix (`PLATFORM_MACOS` → `MACOS`).
pub fn short_name<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}
