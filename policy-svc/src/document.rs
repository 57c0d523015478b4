//! Policy as code: the whole configuration as one YAML or JSON document, resources named
//! rather than numbered (rules name zones and assurance policies, apps name their policy), so a
//! document moves between installations. Applying a document makes the configuration equal to
//! it; exporting and applying again changes nothing.

use std::collections::{BTreeMap, HashMap};

use portcullis_proto::device::v1::{DiskEncryptionType, Platform, ScreenLockType};
use portcullis_proto::policy::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::edit::new_id;
use crate::error::Error;
use crate::model::{
    Actions, App, AssurancePolicy, ClientType, Conditions, Configuration, Grace, Network, Policy, PolicyType, Rule,
    Zone, ZoneKind, short_name,
};
use crate::secrets;

/// How a document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

impl Format {
    /// From the API; unspecified means JSON when `text` starts with `{`, YAML otherwise.
    pub fn from_proto(value: i32, text: &str) -> Result<Self, Error> {
        match pb::DocumentFormat::try_from(value) {
            Ok(pb::DocumentFormat::Yaml) => Ok(Self::Yaml),
            Ok(pb::DocumentFormat::Json) => Ok(Self::Json),
            Ok(pb::DocumentFormat::Unspecified) if text.trim_start().starts_with('{') => Ok(Self::Json),
            Ok(pb::DocumentFormat::Unspecified) => Ok(Self::Yaml),
            Err(_) => Err(Error::field("format", "unknown value")),
        }
    }

    /// For the API.
    pub fn to_proto(self) -> pb::DocumentFormat {
        match self {
            Self::Yaml => pb::DocumentFormat::Yaml,
            Self::Json => pb::DocumentFormat::Json,
        }
    }
}

/// The document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Document {
    /// OIDC clients.
    pub apps: Vec<DocApp>,
    /// Network zones.
    pub network_zones: Vec<DocZone>,
    /// Device assurance policies.
    pub device_assurance_policies: Vec<DocAssurance>,
    /// Global session policies, the default among them.
    pub global_session_policies: Vec<DocPolicy>,
    /// App sign-in policies.
    pub access_policies: Vec<DocPolicy>,
}

/// An app; secrets are never in documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocApp {
    /// Unique name.
    pub name: String,
    /// OAuth client id (generated when absent).
    #[serde(default)]
    pub client_id: String,
    /// CONFIDENTIAL or PUBLIC.
    pub client_type: ClientType,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Allowed scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_scopes: Vec<String>,
    /// The access policy's name.
    pub access_policy: String,
}

/// A network zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocZone {
    /// Unique name.
    pub name: String,
    /// POLICY or BLOCK.
    pub kind: ZoneKind,
    /// Addresses.
    pub gateways: Vec<String>,
    /// Trusted proxies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxies: Vec<String>,
}

/// A device assurance policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocAssurance {
    /// Unique name.
    pub name: String,
    /// MACOS, WINDOWS, IOS, ANDROID, CHROMEOS, LINUX.
    pub platform: String,
    /// Minimum OS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_os_version: Option<String>,
    /// Any of these (FULL, USER, ALL_INTERNAL_VOLUMES, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disk_encryption_types: Vec<String>,
    /// Any of these (PASSCODE, BIOMETRIC).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub screen_lock_types: Vec<String>,
    /// Secure hardware required.
    #[serde(default)]
    pub secure_hardware_required: bool,
    /// Jailbroken or rooted devices fail.
    #[serde(default)]
    pub jailbreak_forbidden: bool,
    /// Grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<Grace>,
    /// Remediation text.
    #[serde(default)]
    pub remediation: String,
}

/// A policy with its rules, in order, the catch-all last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocPolicy {
    /// Unique per type.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Global session policies: 1 first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// Global session policies: group ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_ids: Vec<String>,
    /// The default global session policy.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// Rules in evaluation order.
    pub rules: Vec<DocRule>,
}

/// A rule; zones and assurance policies by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocRule {
    /// Unique within its policy.
    pub name: String,
    /// Inactive rules are kept but skipped.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub active: bool,
    /// The catch-all (last).
    #[serde(default, skip_serializing_if = "is_false")]
    pub catch_all: bool,
    /// Conditions.
    #[serde(default, skip_serializing_if = "is_default_conditions")]
    pub conditions: Conditions,
    /// Actions.
    pub actions: Actions,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !v
}
fn is_true(v: &bool) -> bool {
    *v
}
fn yes() -> bool {
    true
}
fn is_default_conditions(c: &Conditions) -> bool {
    *c == Conditions::default()
}

/// Parses a document.
pub fn parse(text: &str, format: Format) -> Result<Document, Error> {
    if text.len() > 4 * 1024 * 1024 {
        return Err(Error::InvalidDocument("larger than 4 MiB".to_owned()));
    }
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| Error::InvalidDocument(e.to_string())),
        // Enums as one-key maps (`zones_in: [Office]`), as in JSON, rather than YAML tags.
        Format::Yaml => {
            serde_norway::with::singleton_map_recursive::deserialize(serde_norway::Deserializer::from_str(text))
                .map_err(|e| Error::InvalidDocument(e.to_string()))
        }
    }
}

/// Writes `config` as a document.
pub fn export(config: &Configuration, format: Format) -> Result<String, Error> {
    let document = to_document(config);
    match format {
        Format::Json => serde_json::to_string_pretty(&document).map_err(|e| Error::Corrupt(e.to_string())),
        Format::Yaml => {
            let mut out = Vec::new();
            let mut serializer = serde_norway::Serializer::new(&mut out);
            serde_norway::with::singleton_map_recursive::serialize(&document, &mut serializer)
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            String::from_utf8(out).map_err(|e| Error::Corrupt(e.to_string()))
        }
    }
}

fn platform_name(platform: Platform) -> String {
    short_name(platform.as_str_name(), "PLATFORM_").to_owned()
}

fn rename_references(
    conditions: &Conditions,
    rename: &dyn Fn(&str, bool) -> Option<String>,
) -> Result<Conditions, String> {
    let mut out = conditions.clone();
    let map = |ids: &Vec<String>, zone: bool| -> Result<Vec<String>, String> {
        ids.iter()
            .map(|id| {
                rename(id, zone).ok_or_else(|| {
                    format!(
                        "unknown {} {id:?}",
                        if zone {
                            "network zone"
                        } else {
                            "device assurance policy"
                        }
                    )
                })
            })
            .collect()
    };
    if let Some(Network::ZonesIn(ids) | Network::ZonesNotIn(ids)) = &mut out.network {
        *ids = map(ids, true)?;
    }
    if let Some(device) = &mut out.device {
        device.assurance = map(&device.assurance, false)?;
    }
    Ok(out)
}

/// The document describing `config`, every list in name order (rules in evaluation order).
pub fn to_document(config: &Configuration) -> Document {
    let name_of = |id: &str, zone: bool| -> Option<String> {
        if zone {
            config.zones.get(id).map(|z| z.name.clone())
        } else {
            config.assurance.get(id).map(|a| a.name.clone())
        }
    };
    let mut document = Document {
        apps: config
            .apps
            .values()
            .map(|app| DocApp {
                name: app.name.clone(),
                client_id: app.client_id.clone(),
                client_type: app.client_type,
                redirect_uris: app.redirect_uris.clone(),
                post_logout_redirect_uris: app.post_logout_redirect_uris.clone(),
                allowed_scopes: app.allowed_scopes.clone(),
                access_policy: config
                    .policies
                    .get(&app.access_policy_id)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        network_zones: config
            .zones
            .values()
            .map(|z| DocZone {
                name: z.name.clone(),
                kind: z.kind,
                gateways: z.gateways.clone(),
                proxies: z.proxies.clone(),
            })
            .collect(),
        device_assurance_policies: config
            .assurance
            .values()
            .map(|p| DocAssurance {
                name: p.name.clone(),
                platform: platform_name(p.platform),
                minimum_os_version: p.minimum_os_version.clone(),
                disk_encryption_types: p
                    .disk_encryption_types
                    .iter()
                    .map(|t| short_name(t.as_str_name(), "DISK_ENCRYPTION_TYPE_").to_owned())
                    .collect(),
                screen_lock_types: p
                    .screen_lock_types
                    .iter()
                    .map(|t| short_name(t.as_str_name(), "SCREEN_LOCK_TYPE_").to_owned())
                    .collect(),
                secure_hardware_required: p.secure_hardware_required,
                jailbreak_forbidden: p.jailbreak_forbidden,
                grace: p.grace,
                remediation: p.remediation.clone(),
            })
            .collect(),
        global_session_policies: Vec::new(),
        access_policies: Vec::new(),
    };
    for policy in config.policies.values() {
        let doc = DocPolicy {
            name: policy.name.clone(),
            description: policy.description.clone(),
            priority: if policy.is_default || policy.policy_type == PolicyType::Access {
                0
            } else {
                policy.priority
            },
            group_ids: policy.group_ids.clone(),
            default: policy.is_default,
            rules: policy
                .rules
                .iter()
                .map(|r| DocRule {
                    name: r.name.clone(),
                    active: r.active,
                    catch_all: r.catch_all,
                    // Stored references always resolve (validation keeps it so).
                    conditions: rename_references(&r.conditions, &name_of).unwrap_or_else(|_| r.conditions.clone()),
                    actions: r.actions.clone(),
                })
                .collect(),
        };
        match policy.policy_type {
            PolicyType::GlobalSession => document.global_session_policies.push(doc),
            PolicyType::Access => document.access_policies.push(doc),
        }
    }
    document.apps.sort_by(|a, b| a.name.cmp(&b.name));
    document.network_zones.sort_by(|a, b| a.name.cmp(&b.name));
    document.device_assurance_policies.sort_by(|a, b| a.name.cmp(&b.name));
    document
        .global_session_policies
        .sort_by(|a, b| (a.default, a.priority, &a.name).cmp(&(b.default, b.priority, &b.name)));
    document.access_policies.sort_by(|a, b| a.name.cmp(&b.name));
    document
}

/// Makes `config` equal to `desired`: resources matched by name keep their ids; the rest are
/// created or deleted. Returns what changed and the secrets of confidential apps it created.
pub fn apply(
    config: &mut Configuration,
    desired: Document,
    now: i64,
) -> Result<(Vec<pb::ConfigurationChange>, Vec<pb::CreatedSecret>), Error> {
    let before = to_document(config);
    let old = config.clone();
    let mut created_secrets = Vec::new();
    let bad = |what: String| Error::InvalidDocument(what);

    // Zones.
    let zone_ids = ids_by_name(old.zones.values().map(|z| (z.name.as_str(), z.id.as_str())));
    config.zones.clear();
    for doc in &desired.network_zones {
        let (id, create_time) = keep(&zone_ids, &doc.name, |id| old.zones.get(id).map(|z| z.create_time), now);
        let zone = Zone {
            id: id.clone(),
            name: doc.name.clone(),
            kind: doc.kind,
            gateways: doc.gateways.clone(),
            proxies: doc.proxies.clone(),
            create_time,
            update_time: now,
        };
        insert_keeping_time(
            &mut config.zones,
            &old.zones,
            zone,
            |z| &mut z.update_time,
            "network zone",
        )?;
    }

    // Assurance policies.
    let assurance_ids = ids_by_name(old.assurance.values().map(|p| (p.name.as_str(), p.id.as_str())));
    config.assurance.clear();
    for doc in &desired.device_assurance_policies {
        let (id, create_time) = keep(
            &assurance_ids,
            &doc.name,
            |id| old.assurance.get(id).map(|p| p.create_time),
            now,
        );
        let platform = Platform::from_str_name(&format!("PLATFORM_{}", doc.platform.to_ascii_uppercase()))
            .filter(|p| *p != Platform::Unspecified)
            .ok_or_else(|| {
                bad(format!(
                    "device assurance policy {:?}: unknown platform {:?}",
                    doc.name, doc.platform
                ))
            })?;
        let disk = doc
            .disk_encryption_types
            .iter()
            .map(|t| {
                DiskEncryptionType::from_str_name(&format!("DISK_ENCRYPTION_TYPE_{}", t.to_ascii_uppercase()))
                    .ok_or_else(|| {
                        bad(format!(
                            "device assurance policy {:?}: unknown disk encryption type {t:?}",
                            doc.name
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lock = doc
            .screen_lock_types
            .iter()
            .map(|t| {
                ScreenLockType::from_str_name(&format!("SCREEN_LOCK_TYPE_{}", t.to_ascii_uppercase())).ok_or_else(
                    || {
                        bad(format!(
                            "device assurance policy {:?}: unknown screen lock type {t:?}",
                            doc.name
                        ))
                    },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let policy = AssurancePolicy {
            id,
            name: doc.name.clone(),
            platform,
            minimum_os_version: doc.minimum_os_version.clone(),
            disk_encryption_types: disk,
            screen_lock_types: lock,
            secure_hardware_required: doc.secure_hardware_required,
            jailbreak_forbidden: doc.jailbreak_forbidden,
            grace: doc.grace,
            remediation: doc.remediation.clone(),
            create_time,
            update_time: now,
        };
        insert_keeping_time(
            &mut config.assurance,
            &old.assurance,
            policy,
            |p| &mut p.update_time,
            "device assurance policy",
        )?;
    }

    // Policies and rules; references by name become ids of the resources just placed.
    let zone_by_name: HashMap<&str, &str> = config
        .zones
        .values()
        .map(|z| (z.name.as_str(), z.id.as_str()))
        .collect();
    let assurance_by_name: HashMap<&str, &str> = config
        .assurance
        .values()
        .map(|p| (p.name.as_str(), p.id.as_str()))
        .collect();
    let to_id = |name: &str, zone: bool| -> Option<String> {
        if zone {
            zone_by_name.get(name).map(|s| (*s).to_owned())
        } else {
            assurance_by_name.get(name).map(|s| (*s).to_owned())
        }
    };
    let policy_ids = ids_by_name(old.policies.values().map(|p| (p.name.as_str(), p.id.as_str())));
    let mut policies = BTreeMap::new();
    if desired.global_session_policies.iter().filter(|p| p.default).count() != 1 {
        return Err(bad(
            "exactly one global session policy must be `default: true`".to_owned()
        ));
    }
    for (policy_type, docs) in [
        (PolicyType::GlobalSession, &desired.global_session_policies),
        (PolicyType::Access, &desired.access_policies),
    ] {
        for doc in docs {
            let existing = policy_ids
                .get(doc.name.as_str())
                .and_then(|id| old.policies.get(*id))
                .filter(|p| p.policy_type == policy_type);
            let id = existing.map_or_else(new_id, |p| p.id.clone());
            let rule_ids: HashMap<&str, &str> = existing
                .map(|p| p.rules.iter().map(|r| (r.name.as_str(), r.id.as_str())).collect())
                .unwrap_or_default();
            let mut rules = Vec::with_capacity(doc.rules.len());
            for (index, rule) in doc.rules.iter().enumerate() {
                let conditions = rename_references(&rule.conditions, &to_id)
                    .map_err(|e| bad(format!("rule {:?} of {:?}: {e}", rule.name, doc.name)))?;
                if let Some(source) = &conditions.expression {
                    crate::validate::expression(&format!("rule {:?} of {:?}", rule.name, doc.name), source)?;
                }
                rules.push(Rule {
                    id: rule_ids
                        .get(rule.name.as_str())
                        .map_or_else(new_id, |s| (*s).to_owned()),
                    name: rule.name.clone(),
                    priority: i32::try_from(index + 1).unwrap_or(i32::MAX),
                    active: rule.active,
                    catch_all: rule.catch_all,
                    conditions,
                    actions: rule.actions.clone(),
                });
            }
            let mut policy = Policy {
                id: id.clone(),
                name: doc.name.clone(),
                description: doc.description.clone(),
                policy_type,
                priority: if doc.default {
                    i32::MAX
                } else if policy_type == PolicyType::Access {
                    0
                } else {
                    doc.priority
                },
                group_ids: doc.group_ids.clone(),
                is_default: doc.default && policy_type == PolicyType::GlobalSession,
                rules,
                create_time: existing.map_or(now, |p| p.create_time),
                update_time: now,
            };
            if let Some(old_policy) = existing {
                let mut same = policy.clone();
                same.update_time = old_policy.update_time;
                if same == *old_policy {
                    policy = same;
                }
            }
            if policies.insert(id, policy).is_some() {
                return Err(bad(format!("policy {:?} appears twice", doc.name)));
            }
        }
    }
    config.policies = policies;

    // Apps.
    let policy_by_name: HashMap<&str, &str> = config
        .policies
        .values()
        .filter(|p| p.policy_type == PolicyType::Access)
        .map(|p| (p.name.as_str(), p.id.as_str()))
        .collect();
    let app_ids = ids_by_name(old.apps.values().map(|a| (a.name.as_str(), a.id.as_str())));
    config.apps.clear();
    for doc in &desired.apps {
        let existing = app_ids.get(doc.name.as_str()).and_then(|id| old.apps.get(*id));
        let access_policy_id = policy_by_name
            .get(doc.access_policy.as_str())
            .map(|s| (*s).to_owned())
            .ok_or_else(|| {
                bad(format!(
                    "app {:?}: no access policy is named {:?}",
                    doc.name, doc.access_policy
                ))
            })?;
        let client_id = match (&doc.client_id, existing) {
            (c, _) if !c.is_empty() => c.clone(),
            (_, Some(app)) => app.client_id.clone(),
            _ => secrets::new_client_id().map_err(|_| Error::Corrupt("no randomness".into()))?,
        };
        let mut app = App {
            id: existing.map_or_else(new_id, |a| a.id.clone()),
            name: doc.name.clone(),
            client_id,
            client_type: doc.client_type,
            redirect_uris: doc.redirect_uris.clone(),
            post_logout_redirect_uris: doc.post_logout_redirect_uris.clone(),
            allowed_scopes: doc.allowed_scopes.clone(),
            access_policy_id,
            secret_hash: None,
            create_time: existing.map_or(now, |a| a.create_time),
            update_time: now,
            secret_rotate_time: None,
        };
        if app.client_type == ClientType::Confidential {
            match existing.filter(|a| a.client_type == ClientType::Confidential) {
                Some(old_app) => {
                    app.secret_hash = old_app.secret_hash.clone();
                    app.secret_rotate_time = old_app.secret_rotate_time;
                }
                None => {
                    let (secret, hash) = secrets::generate().map_err(|_| Error::Corrupt("no randomness".into()))?;
                    app.secret_hash = Some(hash);
                    app.secret_rotate_time = Some(now);
                    created_secrets.push(pb::CreatedSecret {
                        app_name: app.name.clone(),
                        client_id: app.client_id.clone(),
                        client_secret: secret,
                    });
                }
            }
        }
        insert_keeping_time(&mut config.apps, &old.apps, app, |a| &mut a.update_time, "app")?;
    }

    let after = to_document(config);
    Ok((differences(&before, &after), created_secrets))
}

fn ids_by_name<'a>(items: impl Iterator<Item = (&'a str, &'a str)>) -> HashMap<&'a str, &'a str> {
    items.collect()
}

fn keep(ids: &HashMap<&str, &str>, name: &str, create_time: impl Fn(&str) -> Option<i64>, now: i64) -> (String, i64) {
    match ids.get(name) {
        Some(id) => ((*id).to_owned(), create_time(id).unwrap_or(now)),
        None => (new_id(), now),
    }
}

/// Inserts `value`, keeping the stored update time when nothing else differs, so applying the
/// same document twice writes nothing.
fn insert_keeping_time<T: Clone + PartialEq + HasId>(
    into: &mut BTreeMap<String, T>,
    old: &BTreeMap<String, T>,
    mut value: T,
    update_time: impl Fn(&mut T) -> &mut i64,
    kind: &str,
) -> Result<(), Error> {
    if let Some(previous) = old.get(value.id()) {
        let mut same = value.clone();
        *update_time(&mut same) = *update_time(&mut previous.clone());
        if same == *previous {
            value = same;
        }
    }
    let id = value.id().to_owned();
    if into.insert(id, value).is_some() {
        return Err(Error::InvalidDocument(format!("a {kind} appears twice")));
    }
    Ok(())
}

/// Resources with an id.
trait HasId {
    fn id(&self) -> &str;
}
impl HasId for App {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for Zone {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for AssurancePolicy {
    fn id(&self) -> &str {
        &self.id
    }
}

fn differences(before: &Document, after: &Document) -> Vec<pb::ConfigurationChange> {
    let mut changes = Vec::new();
    diff_list(&mut changes, "app", &before.apps, &after.apps, |a| a.name.clone());
    diff_list(
        &mut changes,
        "network_zone",
        &before.network_zones,
        &after.network_zones,
        |z| z.name.clone(),
    );
    diff_list(
        &mut changes,
        "device_assurance_policy",
        &before.device_assurance_policies,
        &after.device_assurance_policies,
        |p| p.name.clone(),
    );
    diff_list(
        &mut changes,
        "global_session_policy",
        &before.global_session_policies,
        &after.global_session_policies,
        |p| p.name.clone(),
    );
    diff_list(
        &mut changes,
        "access_policy",
        &before.access_policies,
        &after.access_policies,
        |p| p.name.clone(),
    );
    changes
}

fn diff_list<T: Serialize + PartialEq>(
    changes: &mut Vec<pb::ConfigurationChange>,
    kind: &str,
    before: &[T],
    after: &[T],
    name: impl Fn(&T) -> String,
) {
    let old: BTreeMap<String, &T> = before.iter().map(|t| (name(t), t)).collect();
    let new: BTreeMap<String, &T> = after.iter().map(|t| (name(t), t)).collect();
    for (n, value) in &old {
        if !new.contains_key(n) {
            changes.push(change(
                kind,
                n,
                pb::ChangeAction::Delete,
                field_lines(Some(*value), None),
            ));
        }
    }
    for (n, value) in &new {
        match old.get(n) {
            None => changes.push(change(
                kind,
                n,
                pb::ChangeAction::Create,
                field_lines(None, Some(*value)),
            )),
            Some(previous) if previous != value => changes.push(change(
                kind,
                n,
                pb::ChangeAction::Update,
                field_lines(Some(*previous), Some(*value)),
            )),
            Some(_) => {}
        }
    }
}

fn change(kind: &str, name: &str, action: pb::ChangeAction, details: Vec<String>) -> pb::ConfigurationChange {
    pb::ConfigurationChange {
        kind: kind.to_owned(),
        name: name.to_owned(),
        action: action as i32,
        details,
    }
}

/// `field: old -> new` for each top-level field that differs.
fn field_lines<T: Serialize>(before: Option<&T>, after: Option<&T>) -> Vec<String> {
    let fields = |v: Option<&T>| -> serde_json::Map<String, serde_json::Value> {
        v.and_then(|v| serde_json::to_value(v).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    };
    let (old, new) = (fields(before), fields(after));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or_else(|| "(none)".to_owned(), ToString::to_string);
            format!("{k}: {} -> {}", show(old.get(k)), show(new.get(k)))
        })
        .collect()
}
