//! The edits operators make, each applied to a copy of the configuration inside
//! [`Store::change`](crate::store::Store::change): creating, replacing and deleting apps, zones,
//! assurance policies, policies and rules, with the rules Okta keeps (a catch-all rule per
//! policy that cannot go, nothing deleted while something names it).

use crate::error::Error;
use crate::model::{
    Access, AccessActions, Actions, App, AssurancePolicy, Conditions, Configuration, FactorMode, MAX_RULES_PER_POLICY,
    Network, Policy, PolicyType, PrimaryFactor, Rule, SessionActions, Zone,
};

/// A new resource id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The name of the catch-all rule every policy ends with.
pub const CATCH_ALL_RULE: &str = "Catch-all Rule";

/// The built-in global session policy's name.
pub const DEFAULT_GLOBAL_POLICY: &str = "Default Policy";

/// What the catch-all rule of a new access policy does unless told: deny.
pub fn default_catch_all_access() -> AccessActions {
    AccessActions {
        access: Access::Deny,
        factor_mode: FactorMode::TwoFactor,
        constraints: Vec::new(),
        reauthenticate_in_secs: None,
        inactivity_period_secs: None,
    }
}

/// What the catch-all rule of a new global session policy does unless told: allow, the app
/// policy choosing the factors, two-hour idle timeout, one-day lifetime.
pub fn default_catch_all_session() -> SessionActions {
    SessionActions {
        access: Access::Allow,
        primary_factor: PrimaryFactor::AnyAppPolicyFactor,
        mfa_required: false,
        session_idle_timeout_secs: 2 * 3600,
        session_max_lifetime_secs: 24 * 3600,
    }
}

fn catch_all_rule(actions: Actions) -> Rule {
    Rule {
        id: new_id(),
        name: CATCH_ALL_RULE.to_owned(),
        priority: 1,
        active: true,
        catch_all: true,
        conditions: Conditions::default(),
        actions,
    }
}

/// Adds the default global session policy when there is none (a new database).
pub fn ensure_default_global_policy(config: &mut Configuration, now: i64) {
    if config
        .policies
        .values()
        .any(|p| p.policy_type == PolicyType::GlobalSession && p.is_default)
    {
        return;
    }
    let policy = Policy {
        id: new_id(),
        name: DEFAULT_GLOBAL_POLICY.to_owned(),
        description: "Applies to everyone no other global session policy applies to.".to_owned(),
        policy_type: PolicyType::GlobalSession,
        priority: i32::MAX,
        group_ids: Vec::new(),
        is_default: true,
        rules: vec![catch_all_rule(Actions::Session(default_catch_all_session()))],
        create_time: now,
        update_time: now,
    };
    config.policies.insert(policy.id.clone(), policy);
}

/// Adds an app.
pub fn create_app(config: &mut Configuration, app: App) -> Result<App, Error> {
    if config.apps.values().any(|a| a.client_id == app.client_id) {
        return Err(Error::AlreadyExists {
            kind: "app client id",
            name: app.client_id,
        });
    }
    config.apps.insert(app.id.clone(), app.clone());
    Ok(app)
}

/// Replaces an app's settings, keeping its id, client id, type, secret and creation time.
pub fn update_app(config: &mut Configuration, update: App, now: i64) -> Result<App, Error> {
    let app = config.apps.get_mut(&update.id).ok_or_else(|| Error::NotFound {
        kind: "app",
        id: update.id.clone(),
    })?;
    let App {
        id: _,
        name,
        client_id: _,
        client_type: _,
        redirect_uris,
        post_logout_redirect_uris,
        allowed_scopes,
        access_policy_id,
        secret_hash: _,
        create_time: _,
        update_time: _,
        secret_rotate_time: _,
    } = update;
    let unchanged = app.name == name
        && app.redirect_uris == redirect_uris
        && app.post_logout_redirect_uris == post_logout_redirect_uris
        && app.allowed_scopes == allowed_scopes
        && app.access_policy_id == access_policy_id;
    if !unchanged {
        app.name = name;
        app.redirect_uris = redirect_uris;
        app.post_logout_redirect_uris = post_logout_redirect_uris;
        app.allowed_scopes = allowed_scopes;
        app.access_policy_id = access_policy_id;
        app.update_time = now;
    }
    Ok(app.clone())
}

/// Removes an app.
pub fn delete_app(config: &mut Configuration, id: &str) -> Result<(), Error> {
    config.apps.remove(id).map(|_| ()).ok_or_else(|| Error::NotFound {
        kind: "app",
        id: id.to_owned(),
    })
}

/// Adds a zone.
pub fn create_zone(config: &mut Configuration, zone: Zone) -> Zone {
    config.zones.insert(zone.id.clone(), zone.clone());
    zone
}

/// Replaces a zone's settings.
pub fn update_zone(config: &mut Configuration, update: Zone, now: i64) -> Result<Zone, Error> {
    let zone = config.zones.get_mut(&update.id).ok_or_else(|| Error::NotFound {
        kind: "network zone",
        id: update.id.clone(),
    })?;
    if (&zone.name, zone.kind, &zone.gateways, &zone.proxies)
        != (&update.name, update.kind, &update.gateways, &update.proxies)
    {
        zone.name = update.name;
        zone.kind = update.kind;
        zone.gateways = update.gateways;
        zone.proxies = update.proxies;
        zone.update_time = now;
    }
    Ok(zone.clone())
}

/// Removes a zone no rule names.
pub fn delete_zone(config: &mut Configuration, id: &str) -> Result<(), Error> {
    let zone = config.zones.get(id).ok_or_else(|| Error::NotFound {
        kind: "network zone",
        id: id.to_owned(),
    })?;
    let users = rules_naming(config, |rule| match &rule.conditions.network {
        Some(Network::ZonesIn(ids) | Network::ZonesNotIn(ids)) => ids.iter().any(|z| z == id),
        _ => false,
    });
    if !users.is_empty() {
        return Err(Error::PolicyInUse {
            what: format!("network zone {:?}", zone.name),
            users: users.join(", "),
        });
    }
    config.zones.remove(id);
    Ok(())
}

/// Adds a device assurance policy.
pub fn create_assurance(config: &mut Configuration, policy: AssurancePolicy) -> AssurancePolicy {
    config.assurance.insert(policy.id.clone(), policy.clone());
    policy
}

/// Replaces a device assurance policy's settings.
pub fn update_assurance(
    config: &mut Configuration,
    mut update: AssurancePolicy,
    now: i64,
) -> Result<AssurancePolicy, Error> {
    let policy = config.assurance.get_mut(&update.id).ok_or_else(|| Error::NotFound {
        kind: "device assurance policy",
        id: update.id.clone(),
    })?;
    update.create_time = policy.create_time;
    update.update_time = policy.update_time;
    if *policy != update {
        update.update_time = now;
        *policy = update;
    }
    Ok(policy.clone())
}

/// Removes a device assurance policy no rule names.
pub fn delete_assurance(config: &mut Configuration, id: &str) -> Result<(), Error> {
    let policy = config.assurance.get(id).ok_or_else(|| Error::NotFound {
        kind: "device assurance policy",
        id: id.to_owned(),
    })?;
    let users = rules_naming(config, |rule| {
        rule.conditions
            .device
            .as_ref()
            .is_some_and(|d| d.assurance.iter().any(|a| a == id))
    });
    if !users.is_empty() {
        return Err(Error::PolicyInUse {
            what: format!("device assurance policy {:?}", policy.name),
            users: users.join(", "),
        });
    }
    config.assurance.remove(id);
    Ok(())
}

fn rules_naming(config: &Configuration, names: impl Fn(&Rule) -> bool) -> Vec<String> {
    config
        .policies
        .values()
        .flat_map(|p| {
            p.rules
                .iter()
                .filter(|r| names(r))
                .map(move |r| format!("rule {:?} of {:?}", r.name, p.name))
        })
        .collect()
}

/// Adds a policy with its catch-all rule.
pub fn create_policy(config: &mut Configuration, mut policy: Policy, catch_all: Actions) -> Policy {
    policy.rules = vec![catch_all_rule(catch_all)];
    policy.is_default = false;
    config.policies.insert(policy.id.clone(), policy.clone());
    policy
}

/// Replaces a policy's name, description, priority and groups.
pub fn update_policy(config: &mut Configuration, update: Policy, now: i64) -> Result<Policy, Error> {
    let policy = config.policies.get_mut(&update.id).ok_or_else(|| Error::NotFound {
        kind: "policy",
        id: update.id.clone(),
    })?;
    if policy.is_default && (update.priority != policy.priority || !update.group_ids.is_empty()) {
        return Err(Error::BuiltIn(
            "the default global session policy applies to everyone and is tried last".to_owned(),
        ));
    }
    if (&policy.name, &policy.description, policy.priority, &policy.group_ids)
        != (&update.name, &update.description, update.priority, &update.group_ids)
    {
        policy.name = update.name;
        policy.description = update.description;
        if !policy.is_default {
            policy.priority = update.priority;
        }
        policy.group_ids = update.group_ids;
        policy.update_time = now;
    }
    Ok(policy.clone())
}

/// Removes a policy no app uses; the default global session policy stays.
pub fn delete_policy(config: &mut Configuration, id: &str) -> Result<(), Error> {
    let policy = config.policies.get(id).ok_or_else(|| Error::NotFound {
        kind: "policy",
        id: id.to_owned(),
    })?;
    if policy.is_default {
        return Err(Error::BuiltIn(
            "the default global session policy cannot be deleted".to_owned(),
        ));
    }
    let users: Vec<String> = config
        .apps
        .values()
        .filter(|a| a.access_policy_id == id)
        .map(|a| format!("app {:?}", a.name))
        .collect();
    if !users.is_empty() {
        return Err(Error::PolicyInUse {
            what: format!("policy {:?}", policy.name),
            users: users.join(", "),
        });
    }
    config.policies.remove(id);
    Ok(())
}

/// Adds a rule before the catch-all, at its priority (or last before the catch-all).
pub fn create_rule(config: &mut Configuration, policy_id: &str, mut rule: Rule, now: i64) -> Result<Rule, Error> {
    let policy = config.policies.get_mut(policy_id).ok_or_else(|| Error::NotFound {
        kind: "policy",
        id: policy_id.to_owned(),
    })?;
    if policy.rules.len() >= MAX_RULES_PER_POLICY {
        return Err(Error::TooManyRules(MAX_RULES_PER_POLICY));
    }
    rule.catch_all = false;
    let last = i32::try_from(policy.rules.len()).unwrap_or(i32::MAX);
    // Ties go before the rule already at that priority, so "priority 1" means "first".
    rule.priority = if rule.priority <= 0 {
        last
    } else {
        rule.priority.min(last)
    };
    for existing in policy
        .rules
        .iter_mut()
        .filter(|r| !r.catch_all && r.priority >= rule.priority)
    {
        existing.priority += 1;
    }
    let id = rule.id.clone();
    policy.rules.push(rule);
    policy.order_rules();
    policy.update_time = now;
    find_rule(policy, &id)
}

/// Replaces a rule; the catch-all rule's conditions, status and place stay as they are.
pub fn update_rule(config: &mut Configuration, policy_id: &str, mut update: Rule, now: i64) -> Result<Rule, Error> {
    let policy = config.policies.get_mut(policy_id).ok_or_else(|| Error::NotFound {
        kind: "policy",
        id: policy_id.to_owned(),
    })?;
    let index = policy
        .rules
        .iter()
        .position(|r| r.id == update.id)
        .ok_or_else(|| Error::NotFound {
            kind: "rule",
            id: update.id.clone(),
        })?;
    let current = &policy.rules[index];
    if current.catch_all {
        if update.conditions != Conditions::default() || !update.active {
            return Err(Error::BuiltIn(
                "the catch-all rule matches everything and stays active; only its actions change".to_owned(),
            ));
        }
        update.name = current.name.clone();
        update.catch_all = true;
        update.priority = current.priority;
    } else {
        update.catch_all = false;
        let old_priority = current.priority;
        let new_priority = if update.priority <= 0 {
            old_priority
        } else {
            update.priority
        };
        // Moving a rule shifts those between its old and new place by one.
        for other in policy.rules.iter_mut().filter(|r| !r.catch_all && r.id != update.id) {
            if new_priority < old_priority && other.priority >= new_priority && other.priority < old_priority {
                other.priority += 1;
            } else if new_priority > old_priority && other.priority <= new_priority && other.priority > old_priority {
                other.priority -= 1;
            }
        }
        update.priority = new_priority;
    }
    let id = update.id.clone();
    if policy.rules.get(index) != Some(&update) {
        policy.rules[index] = update;
        policy.order_rules();
        policy.update_time = now;
    }
    find_rule(policy, &id)
}

/// Removes a rule other than the catch-all.
pub fn delete_rule(config: &mut Configuration, policy_id: &str, rule_id: &str, now: i64) -> Result<(), Error> {
    let policy = config.policies.get_mut(policy_id).ok_or_else(|| Error::NotFound {
        kind: "policy",
        id: policy_id.to_owned(),
    })?;
    let rule = policy
        .rules
        .iter()
        .find(|r| r.id == rule_id)
        .ok_or_else(|| Error::NotFound {
            kind: "rule",
            id: rule_id.to_owned(),
        })?;
    if rule.catch_all {
        return Err(Error::BuiltIn(format!(
            "the catch-all rule of {:?} cannot be deleted",
            policy.name
        )));
    }
    policy.rules.retain(|r| r.id != rule_id);
    policy.order_rules();
    policy.update_time = now;
    Ok(())
}

fn find_rule(policy: &Policy, id: &str) -> Result<Rule, Error> {
    policy
        .rules
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .ok_or_else(|| Error::NotFound {
            kind: "rule",
            id: id.to_owned(),
        })
}
