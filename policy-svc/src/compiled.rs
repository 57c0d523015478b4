//! The configuration made ready for decisions: expressions parsed, zones indexed, assurance
//! policies typed, policies in evaluation order. Built once per configuration version and
//! swapped in whole, so no decision ever sees half of a change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::assurance::{AssurancePolicy as CheckedAssurance, GracePeriod};
use crate::expression::Expression;
use crate::model::{Actions, App, AssurancePolicy, Conditions, Configuration, Grace, PolicyType};
use crate::zones::{AddressSet, NetworkZone, ZoneIndex, ZoneKind};

/// Why a configuration cannot be put in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {reason}")]
pub struct CompileError {
    /// `kind "name"` of the offending resource.
    pub resource: String,
    /// What is wrong.
    pub reason: String,
}

/// A rule ready to evaluate.
#[derive(Debug)]
pub struct CompiledRule {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// 1 first.
    pub priority: i32,
    /// Inactive rules are skipped.
    pub active: bool,
    /// The catch-all.
    pub catch_all: bool,
    /// Conditions as configured.
    pub conditions: Conditions,
    /// The parsed expression condition.
    pub expression: Option<Expression>,
    /// Actions.
    pub actions: Actions,
}

/// A policy ready to evaluate.
#[derive(Debug)]
pub struct CompiledPolicy {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Type.
    pub policy_type: PolicyType,
    /// Global session policies: the groups it applies to.
    pub group_ids: Vec<String>,
    /// Evaluation order.
    pub rules: Vec<CompiledRule>,
}

/// One configuration version, ready for decisions.
#[derive(Debug)]
pub struct Compiled {
    /// The configuration version this was built from.
    pub version: i64,
    /// The configuration itself, for reads.
    pub config: Arc<Configuration>,
    apps_by_client_id: HashMap<String, String>,
    /// Zones, indexed.
    pub zones: ZoneIndex,
    /// Assurance policies by id.
    pub assurance: HashMap<String, CheckedAssurance>,
    /// Global session policies in priority order, the default last.
    pub global: Vec<CompiledPolicy>,
    /// Access policies by id.
    pub access: HashMap<String, CompiledPolicy>,
    /// Whether some assurance policy's grace is counted from a device's first failure (only
    /// then do decisions need the device's failure history).
    pub grace_from_first_failure: bool,
}

impl Compiled {
    /// Compiles `config`; fails on the first resource that cannot be put in force.
    pub fn build(version: i64, config: Arc<Configuration>) -> Result<Self, CompileError> {
        let apps_by_client_id = config
            .apps
            .values()
            .map(|a| (a.client_id.clone(), a.id.clone()))
            .collect();
        let mut zones = Vec::with_capacity(config.zones.len());
        for zone in config.zones.values() {
            let error = |e: crate::zones::ZoneError| CompileError {
                resource: format!("network zone {:?}", zone.name),
                reason: e.to_string(),
            };
            zones.push(NetworkZone {
                id: zone.id.clone(),
                name: zone.name.clone(),
                kind: match zone.kind {
                    crate::model::ZoneKind::Policy => ZoneKind::Policy,
                    crate::model::ZoneKind::Block => ZoneKind::Block,
                },
                gateways: AddressSet::parse(&zone.gateways).map_err(error)?,
                proxies: AddressSet::parse(&zone.proxies).map_err(error)?,
            });
        }
        let mut assurance = HashMap::with_capacity(config.assurance.len());
        for policy in config.assurance.values() {
            let checked = checked_assurance(policy);
            checked.validate().map_err(|e| CompileError {
                resource: format!("device assurance policy {:?}", policy.name),
                reason: e.to_string(),
            })?;
            assurance.insert(policy.id.clone(), checked);
        }
        let mut global = Vec::new();
        let mut access = HashMap::new();
        for policy in config.policies.values() {
            let mut rules = Vec::with_capacity(policy.rules.len());
            for rule in &policy.rules {
                let expression = match &rule.conditions.expression {
                    Some(source) => Some(Expression::parse(source).map_err(|e| CompileError {
                        resource: format!("rule {:?} of policy {:?}", rule.name, policy.name),
                        reason: format!("expression: {e}"),
                    })?),
                    None => None,
                };
                rules.push(CompiledRule {
                    id: rule.id.clone(),
                    name: rule.name.clone(),
                    priority: rule.priority,
                    active: rule.active,
                    catch_all: rule.catch_all,
                    conditions: rule.conditions.clone(),
                    expression,
                    actions: rule.actions.clone(),
                });
            }
            let compiled = CompiledPolicy {
                id: policy.id.clone(),
                name: policy.name.clone(),
                policy_type: policy.policy_type,
                group_ids: policy.group_ids.clone(),
                rules,
            };
            match policy.policy_type {
                PolicyType::GlobalSession => global.push((policy.is_default, policy.priority, compiled)),
                PolicyType::Access => {
                    access.insert(policy.id.clone(), compiled);
                }
            }
        }
        global.sort_by(|a, b| (a.0, a.1, &a.2.name).cmp(&(b.0, b.1, &b.2.name)));
        let grace_from_first_failure = config
            .assurance
            .values()
            .any(|p| matches!(p.grace, Some(Grace::ForSeconds(_))));
        Ok(Self {
            version,
            grace_from_first_failure,
            apps_by_client_id,
            zones: ZoneIndex::new(zones),
            assurance,
            global: global.into_iter().map(|(_, _, p)| p).collect(),
            access,
            config,
        })
    }

    /// The app with this OAuth client id.
    pub fn app_by_client_id(&self, client_id: &str) -> Option<&App> {
        self.apps_by_client_id
            .get(client_id)
            .and_then(|id| self.config.apps.get(id))
    }

    /// The assurance policies with these ids (unknown ids are skipped; validation keeps them
    /// from being saved).
    pub fn assurance_policies<'a>(&'a self, ids: &[String]) -> Vec<&'a CheckedAssurance> {
        ids.iter().filter_map(|id| self.assurance.get(id)).collect()
    }
}

/// The compiled configuration in force, replaced whole when a newer version is loaded.
#[derive(Debug, Clone)]
pub struct InForce {
    current: Arc<RwLock<Arc<Compiled>>>,
}

impl InForce {
    /// Starts with `compiled`.
    pub fn new(compiled: Compiled) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(compiled))),
        }
    }

    /// The configuration in force now. Holding it keeps a decision on one version throughout.
    pub fn get(&self) -> Arc<Compiled> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            // A writer only swaps an Arc, so a poisoned lock still holds a whole value.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `compiled` in force unless a version at least as new already is.
    pub fn replace(&self, compiled: Compiled) {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if compiled.version > guard.version {
            *guard = Arc::new(compiled);
        }
    }
}

/// A stored assurance policy in the form its checks take.
pub fn checked_assurance(policy: &AssurancePolicy) -> CheckedAssurance {
    CheckedAssurance {
        id: policy.id.clone(),
        name: policy.name.clone(),
        platform: policy.platform,
        minimum_os_version: policy.minimum_os_version.clone(),
        disk_encryption_types: policy.disk_encryption_types.clone(),
        screen_lock_types: policy.screen_lock_types.clone(),
        secure_hardware_required: policy.secure_hardware_required,
        jailbreak_forbidden: policy.jailbreak_forbidden,
        grace: policy.grace.map(|g| match g {
            Grace::UntilMicros(t) => GracePeriod::Until(t),
            Grace::ForSeconds(s) => GracePeriod::For(std::time::Duration::from_secs(s)),
        }),
        remediation: policy.remediation.clone(),
    }
}
