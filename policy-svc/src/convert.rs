//! Conversions between the `portcullis.policy.v1` messages and the configuration model, with
//! every field destructured so a new proto field breaks the build until it is handled.

use std::collections::HashMap;
use std::net::IpAddr;

use portcullis_proto::device::v1::{DiskEncryptionType, Platform, ScreenLockType};
use portcullis_proto::policy::v1 as pb;
use service_kit::clock::timestamp;

use crate::assurance::DevicePosture;
use crate::context::{Device, ProvenFactor, SignIn, User};
use crate::decide::constraint_to_proto;
use crate::error::Error;
use crate::expression::{AttributeValue, Group};
use crate::model::{
    Access, AccessActions, Actions, App, AssurancePolicy, ClientType, Conditions, DeviceCondition, FactorClass,
    FactorConstraint, FactorMode, FactorType, Grace, Network, People, PlatformKind, PlatformMatch, Policy, PolicyType,
    PrimaryFactor, RiskLevel, Rule, SessionActions, Zone, ZoneKind, short_name,
};

/// Largest duration accepted anywhere (ten years), so arithmetic on it cannot overflow.
const MAX_SECONDS: i64 = 10 * 366 * 24 * 3600;

fn micros(ts: Option<prost_types::Timestamp>) -> Option<i64> {
    ts.map(|t| {
        t.seconds
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(t.nanos / 1000))
    })
}

fn duration_secs(field: &str, value: Option<prost_types::Duration>) -> Result<Option<u64>, Error> {
    match value {
        None => Ok(None),
        Some(d) if d.seconds <= 0 || d.seconds > MAX_SECONDS || d.nanos != 0 => Err(Error::field(
            field,
            "must be a whole number of seconds, more than zero and at most ten years",
        )),
        Some(d) => Ok(Some(d.seconds.unsigned_abs())),
    }
}

fn duration(secs: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(secs).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

fn enum_value<T: TryFrom<i32>>(field: &str, value: i32) -> Result<T, Error> {
    T::try_from(value).map_err(|_| Error::field(field, format!("unknown value {value}")))
}

/// An app for the API (never its secret hash).
pub fn app_to_proto(app: &App) -> pb::App {
    let App {
        id,
        name,
        client_id,
        client_type,
        redirect_uris,
        post_logout_redirect_uris,
        allowed_scopes,
        access_policy_id,
        secret_hash: _,
        create_time,
        update_time,
        secret_rotate_time,
    } = app;
    pb::App {
        id: id.clone(),
        name: name.clone(),
        client_id: client_id.clone(),
        client_type: match client_type {
            ClientType::Confidential => pb::ClientType::Confidential,
            ClientType::Public => pb::ClientType::Public,
        } as i32,
        redirect_uris: redirect_uris.clone(),
        post_logout_redirect_uris: post_logout_redirect_uris.clone(),
        allowed_scopes: allowed_scopes.clone(),
        access_policy_id: access_policy_id.clone(),
        create_time: Some(timestamp(*create_time)),
        update_time: Some(timestamp(*update_time)),
        secret_rotate_time: secret_rotate_time.map(timestamp),
    }
}

/// An app from the API; ids, times and the secret are the caller's to fill.
pub fn app_from_proto(app: Option<pb::App>) -> Result<App, Error> {
    let pb::App {
        id,
        name,
        client_id,
        client_type,
        redirect_uris,
        post_logout_redirect_uris,
        allowed_scopes,
        access_policy_id,
        create_time: _,
        update_time: _,
        secret_rotate_time: _,
    } = app.ok_or_else(|| Error::field("app", "is required"))?;
    let client_type = match enum_value::<pb::ClientType>("app.client_type", client_type)? {
        pb::ClientType::Confidential => ClientType::Confidential,
        pb::ClientType::Public => ClientType::Public,
        pb::ClientType::Unspecified => {
            return Err(Error::field("app.client_type", "CONFIDENTIAL or PUBLIC is required"));
        }
    };
    Ok(App {
        id,
        name: name.trim().to_owned(),
        client_id,
        client_type,
        redirect_uris,
        post_logout_redirect_uris,
        allowed_scopes,
        access_policy_id,
        secret_hash: None,
        create_time: 0,
        update_time: 0,
        secret_rotate_time: None,
    })
}

/// A zone for the API.
pub fn zone_to_proto(zone: &Zone) -> pb::NetworkZone {
    let Zone {
        id,
        name,
        kind,
        gateways,
        proxies,
        create_time,
        update_time,
    } = zone;
    pb::NetworkZone {
        id: id.clone(),
        name: name.clone(),
        kind: match kind {
            ZoneKind::Policy => pb::NetworkZoneKind::Policy,
            ZoneKind::Block => pb::NetworkZoneKind::Block,
        } as i32,
        gateways: gateways.clone(),
        proxies: proxies.clone(),
        create_time: Some(timestamp(*create_time)),
        update_time: Some(timestamp(*update_time)),
    }
}

/// A zone from the API.
pub fn zone_from_proto(zone: Option<pb::NetworkZone>) -> Result<Zone, Error> {
    let pb::NetworkZone {
        id,
        name,
        kind,
        gateways,
        proxies,
        create_time: _,
        update_time: _,
    } = zone.ok_or_else(|| Error::field("zone", "is required"))?;
    let kind = match enum_value::<pb::NetworkZoneKind>("zone.kind", kind)? {
        pb::NetworkZoneKind::Policy | pb::NetworkZoneKind::Unspecified => ZoneKind::Policy,
        pb::NetworkZoneKind::Block => ZoneKind::Block,
    };
    let gateways = normalize_addresses("zone.gateways", gateways)?;
    let proxies = normalize_addresses("zone.proxies", proxies)?;
    Ok(Zone {
        id,
        name: name.trim().to_owned(),
        kind,
        gateways,
        proxies,
        create_time: 0,
        update_time: 0,
    })
}

fn normalize_addresses(field: &str, list: Vec<String>) -> Result<Vec<String>, Error> {
    let list: Vec<String> = list.into_iter().map(|s| s.trim().to_owned()).collect();
    crate::zones::AddressSet::parse(&list).map_err(|e| Error::field(field, e.to_string()))?;
    Ok(list)
}

/// An assurance policy for the API.
pub fn assurance_to_proto(policy: &AssurancePolicy) -> pb::DeviceAssurancePolicy {
    let AssurancePolicy {
        id,
        name,
        platform,
        minimum_os_version,
        disk_encryption_types,
        screen_lock_types,
        secure_hardware_required,
        jailbreak_forbidden,
        grace,
        remediation,
        create_time,
        update_time,
    } = policy;
    pb::DeviceAssurancePolicy {
        id: id.clone(),
        name: name.clone(),
        platform: *platform as i32,
        minimum_os_version: minimum_os_version.clone().unwrap_or_default(),
        disk_encryption_types: disk_encryption_types.iter().map(|t| *t as i32).collect(),
        screen_lock_types: screen_lock_types.iter().map(|t| *t as i32).collect(),
        secure_hardware_required: *secure_hardware_required,
        jailbreak_forbidden: *jailbreak_forbidden,
        grace_period: grace.map(|g| match g {
            Grace::UntilMicros(t) => pb::device_assurance_policy::GracePeriod::GraceUntil(timestamp(t)),
            Grace::ForSeconds(s) => pb::device_assurance_policy::GracePeriod::GraceDuration(duration(s)),
        }),
        remediation: remediation.clone(),
        create_time: Some(timestamp(*create_time)),
        update_time: Some(timestamp(*update_time)),
    }
}

/// An assurance policy from the API.
pub fn assurance_from_proto(policy: Option<pb::DeviceAssurancePolicy>) -> Result<AssurancePolicy, Error> {
    let pb::DeviceAssurancePolicy {
        id,
        name,
        platform,
        minimum_os_version,
        disk_encryption_types,
        screen_lock_types,
        secure_hardware_required,
        jailbreak_forbidden,
        grace_period,
        remediation,
        create_time: _,
        update_time: _,
    } = policy.ok_or_else(|| Error::field("policy", "is required"))?;
    let platform: Platform = enum_value("policy.platform", platform)?;
    if platform == Platform::Unspecified {
        return Err(Error::field("policy.platform", "is required"));
    }
    let disk_encryption_types = disk_encryption_types
        .into_iter()
        .map(|t| enum_value::<DiskEncryptionType>("policy.disk_encryption_types", t))
        .collect::<Result<Vec<_>, _>>()?;
    let screen_lock_types = screen_lock_types
        .into_iter()
        .map(|t| enum_value::<ScreenLockType>("policy.screen_lock_types", t))
        .collect::<Result<Vec<_>, _>>()?;
    let grace = match grace_period {
        None => None,
        Some(pb::device_assurance_policy::GracePeriod::GraceUntil(t)) => micros(Some(t)).map(Grace::UntilMicros),
        Some(pb::device_assurance_policy::GracePeriod::GraceDuration(d)) => {
            duration_secs("policy.grace_duration", Some(d))?.map(Grace::ForSeconds)
        }
    };
    let minimum_os_version = Some(minimum_os_version.trim().to_owned()).filter(|v| !v.is_empty());
    let policy = AssurancePolicy {
        id,
        name: name.trim().to_owned(),
        platform,
        minimum_os_version,
        disk_encryption_types,
        screen_lock_types,
        secure_hardware_required,
        jailbreak_forbidden,
        grace,
        remediation,
        create_time: 0,
        update_time: 0,
    };
    let mut checked = crate::compiled::checked_assurance(&policy);
    if checked.id.is_empty() {
        // Not assigned until created; everything else is checked now.
        checked.id = "new".to_owned();
    }
    checked.validate().map_err(|e| Error::field("policy", e.to_string()))?;
    Ok(policy)
}

fn policy_type_to_proto(policy_type: PolicyType) -> pb::PolicyType {
    match policy_type {
        PolicyType::GlobalSession => pb::PolicyType::GlobalSession,
        PolicyType::Access => pb::PolicyType::Access,
    }
}

/// A policy type from the API; `None` for unspecified.
pub fn policy_type_from_proto(value: i32) -> Result<Option<PolicyType>, Error> {
    Ok(match enum_value::<pb::PolicyType>("type", value)? {
        pb::PolicyType::Unspecified => None,
        pb::PolicyType::GlobalSession => Some(PolicyType::GlobalSession),
        pb::PolicyType::Access => Some(PolicyType::Access),
    })
}

/// A policy for the API, with its rules.
pub fn policy_to_proto(policy: &Policy) -> pb::Policy {
    let Policy {
        id,
        name,
        description,
        policy_type,
        priority,
        group_ids,
        is_default,
        rules,
        create_time,
        update_time,
    } = policy;
    pb::Policy {
        id: id.clone(),
        name: name.clone(),
        description: description.clone(),
        r#type: policy_type_to_proto(*policy_type) as i32,
        priority: *priority,
        group_ids: group_ids.clone(),
        rules: rules.iter().map(|r| rule_to_proto(id, r)).collect(),
        default: *is_default,
        create_time: Some(timestamp(*create_time)),
        update_time: Some(timestamp(*update_time)),
    }
}

/// A policy from the API (without rules).
pub fn policy_from_proto(policy: Option<pb::Policy>) -> Result<Policy, Error> {
    let pb::Policy {
        id,
        name,
        description,
        r#type,
        priority,
        group_ids,
        rules: _,
        default: _,
        create_time: _,
        update_time: _,
    } = policy.ok_or_else(|| Error::field("policy", "is required"))?;
    let policy_type = policy_type_from_proto(r#type)?
        .ok_or_else(|| Error::field("policy.type", "GLOBAL_SESSION or ACCESS is required"))?;
    if policy_type == PolicyType::GlobalSession && priority <= 0 {
        return Err(Error::field(
            "policy.priority",
            "global session policies need a priority of 1 or more",
        ));
    }
    Ok(Policy {
        id,
        name: name.trim().to_owned(),
        description,
        policy_type,
        priority: if policy_type == PolicyType::Access { 0 } else { priority },
        group_ids,
        is_default: false,
        rules: Vec::new(),
        create_time: 0,
        update_time: 0,
    })
}

/// A rule for the API.
pub fn rule_to_proto(policy_id: &str, rule: &Rule) -> pb::Rule {
    let Rule {
        id,
        name,
        priority,
        active,
        catch_all,
        conditions,
        actions,
    } = rule;
    let (access_actions, session_actions) = match actions {
        Actions::Access(a) => (Some(access_actions_to_proto(a)), None),
        Actions::Session(s) => (None, Some(session_actions_to_proto(s))),
    };
    pb::Rule {
        id: id.clone(),
        policy_id: policy_id.to_owned(),
        name: name.clone(),
        priority: *priority,
        status: if *active {
            pb::RuleStatus::Active
        } else {
            pb::RuleStatus::Inactive
        } as i32,
        catch_all: *catch_all,
        conditions: Some(conditions_to_proto(conditions)),
        access_actions,
        session_actions,
    }
}

/// A rule from the API, for a policy of `policy_type`.
pub fn rule_from_proto(rule: Option<pb::Rule>, policy_type: PolicyType) -> Result<(String, Rule), Error> {
    let pb::Rule {
        id,
        policy_id,
        name,
        priority,
        status,
        catch_all: _,
        conditions,
        access_actions,
        session_actions,
    } = rule.ok_or_else(|| Error::field("rule", "is required"))?;
    let active = match enum_value::<pb::RuleStatus>("rule.status", status)? {
        pb::RuleStatus::Active | pb::RuleStatus::Unspecified => true,
        pb::RuleStatus::Inactive => false,
    };
    let actions = match (policy_type, access_actions, session_actions) {
        (PolicyType::Access, Some(a), None) => Actions::Access(access_actions_from_proto(a)?),
        (PolicyType::GlobalSession, None, Some(s)) => Actions::Session(session_actions_from_proto(s)?),
        (PolicyType::Access, _, _) => {
            return Err(Error::field(
                "rule.access_actions",
                "an access rule needs access actions and no session actions",
            ));
        }
        (PolicyType::GlobalSession, _, _) => {
            return Err(Error::field(
                "rule.session_actions",
                "a global session rule needs session actions and no access actions",
            ));
        }
    };
    Ok((
        policy_id,
        Rule {
            id,
            name: name.trim().to_owned(),
            priority,
            active,
            catch_all: false,
            conditions: conditions_from_proto(conditions.unwrap_or_default())?,
            actions,
        },
    ))
}

fn conditions_to_proto(conditions: &Conditions) -> pb::RuleConditions {
    let Conditions {
        people,
        network,
        platform,
        device,
        risk,
        expression,
    } = conditions;
    pb::RuleConditions {
        people: people.as_ref().map(|p| pb::PeopleCondition {
            include_user_ids: p.include_users.clone(),
            exclude_user_ids: p.exclude_users.clone(),
            include_group_ids: p.include_groups.clone(),
            exclude_group_ids: p.exclude_groups.clone(),
        }),
        network: network.as_ref().map(|n| match n {
            Network::Anywhere => pb::NetworkCondition {
                connection: pb::NetworkConnection::Anywhere as i32,
                zone_ids: Vec::new(),
            },
            Network::ZonesIn(ids) => pb::NetworkCondition {
                connection: pb::NetworkConnection::ZonesIn as i32,
                zone_ids: ids.clone(),
            },
            Network::ZonesNotIn(ids) => pb::NetworkCondition {
                connection: pb::NetworkConnection::ZonesNotIn as i32,
                zone_ids: ids.clone(),
            },
        }),
        platform: platform.as_ref().map(|list| pb::PlatformCondition {
            include: list
                .iter()
                .map(|m| pb::PlatformMatch {
                    kind: match m.kind {
                        PlatformKind::Desktop => pb::PlatformKind::Desktop,
                        PlatformKind::Mobile => pb::PlatformKind::Mobile,
                    } as i32,
                    os: m.os.map_or(0, |os| os as i32),
                })
                .collect(),
        }),
        device: device.as_ref().map(|d| pb::DeviceCondition {
            registered: d.registered,
            managed: d.managed,
            assurance_policy_ids: d.assurance.clone(),
        }),
        risk: risk.as_ref().map(|levels| pb::RiskCondition {
            levels: levels.iter().map(|l| risk_to_proto(*l) as i32).collect(),
        }),
        expression: expression.clone().unwrap_or_default(),
    }
}

fn conditions_from_proto(conditions: pb::RuleConditions) -> Result<Conditions, Error> {
    let pb::RuleConditions {
        people,
        network,
        platform,
        device,
        risk,
        expression,
    } = conditions;
    let people = people.map(|p| People {
        include_users: p.include_user_ids,
        exclude_users: p.exclude_user_ids,
        include_groups: p.include_group_ids,
        exclude_groups: p.exclude_group_ids,
    });
    let network = match network {
        None => None,
        Some(n) => Some(
            match enum_value::<pb::NetworkConnection>("rule.conditions.network.connection", n.connection)? {
                pb::NetworkConnection::Anywhere | pb::NetworkConnection::Unspecified => Network::Anywhere,
                pb::NetworkConnection::ZonesIn => Network::ZonesIn(n.zone_ids),
                pb::NetworkConnection::ZonesNotIn => Network::ZonesNotIn(n.zone_ids),
            },
        ),
    };
    let platform = match platform {
        None => None,
        Some(p) => Some(
            p.include
                .into_iter()
                .map(|m| {
                    let kind = match enum_value::<pb::PlatformKind>("rule.conditions.platform.kind", m.kind)? {
                        pb::PlatformKind::Desktop => PlatformKind::Desktop,
                        pb::PlatformKind::Mobile => PlatformKind::Mobile,
                        pb::PlatformKind::Unspecified => {
                            return Err(Error::field(
                                "rule.conditions.platform.kind",
                                "DESKTOP or MOBILE is required",
                            ));
                        }
                    };
                    let os: Platform = enum_value("rule.conditions.platform.os", m.os)?;
                    Ok(PlatformMatch {
                        kind,
                        os: (os != Platform::Unspecified).then_some(os),
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?,
        ),
    };
    let device = device.map(|d| DeviceCondition {
        registered: d.registered,
        managed: d.managed,
        assurance: d.assurance_policy_ids,
    });
    let risk = match risk {
        None => None,
        Some(r) => Some(
            r.levels
                .into_iter()
                .map(|l| {
                    risk_from_proto(enum_value("rule.conditions.risk.levels", l)?)
                        .ok_or_else(|| Error::field("rule.conditions.risk.levels", "LOW, MEDIUM or HIGH"))
                })
                .collect::<Result<Vec<_>, Error>>()?,
        ),
    };
    let expression = Some(expression.trim().to_owned()).filter(|e| !e.is_empty());
    if let Some(source) = &expression {
        crate::validate::expression("rule.conditions.expression", source)?;
    }
    Ok(Conditions {
        people,
        network,
        platform,
        device,
        risk,
        expression,
    })
}

fn risk_to_proto(level: RiskLevel) -> pb::RiskLevel {
    match level {
        RiskLevel::Low => pb::RiskLevel::Low,
        RiskLevel::Medium => pb::RiskLevel::Medium,
        RiskLevel::High => pb::RiskLevel::High,
    }
}

fn risk_from_proto(level: pb::RiskLevel) -> Option<RiskLevel> {
    match level {
        pb::RiskLevel::Low => Some(RiskLevel::Low),
        pb::RiskLevel::Medium => Some(RiskLevel::Medium),
        pb::RiskLevel::High => Some(RiskLevel::High),
        pb::RiskLevel::Unspecified => None,
    }
}

fn access_from_proto(field: &str, value: i32) -> Result<Access, Error> {
    match enum_value::<pb::Access>(field, value)? {
        pb::Access::Allow => Ok(Access::Allow),
        pb::Access::Deny => Ok(Access::Deny),
        pb::Access::Unspecified => Err(Error::field(field, "ALLOW or DENY is required")),
    }
}

fn access_to_proto(access: Access) -> pb::Access {
    match access {
        Access::Allow => pb::Access::Allow,
        Access::Deny => pb::Access::Deny,
    }
}

/// Access actions for the API.
pub fn access_actions_to_proto(actions: &AccessActions) -> pb::AccessActions {
    let AccessActions {
        access,
        factor_mode,
        constraints,
        reauthenticate_in_secs,
        inactivity_period_secs,
    } = actions;
    pb::AccessActions {
        access: access_to_proto(*access) as i32,
        factor_mode: match factor_mode {
            FactorMode::OneFactor => pb::FactorMode::OneFactor,
            FactorMode::TwoFactor => pb::FactorMode::TwoFactor,
        } as i32,
        constraints: constraints.iter().map(constraint_to_proto).collect(),
        reauthenticate_in: reauthenticate_in_secs.map(duration),
        inactivity_period: inactivity_period_secs.map(duration),
    }
}

/// Access actions from the API.
pub fn access_actions_from_proto(actions: pb::AccessActions) -> Result<AccessActions, Error> {
    let pb::AccessActions {
        access,
        factor_mode,
        constraints,
        reauthenticate_in,
        inactivity_period,
    } = actions;
    let factor_mode = match enum_value::<pb::FactorMode>("access_actions.factor_mode", factor_mode)? {
        pb::FactorMode::OneFactor => FactorMode::OneFactor,
        pb::FactorMode::TwoFactor | pb::FactorMode::Unspecified => FactorMode::TwoFactor,
    };
    Ok(AccessActions {
        access: access_from_proto("access_actions.access", access)?,
        factor_mode,
        constraints: constraints
            .into_iter()
            .map(constraint_from_proto)
            .collect::<Result<Vec<_>, Error>>()?,
        reauthenticate_in_secs: duration_secs("access_actions.reauthenticate_in", reauthenticate_in)?,
        inactivity_period_secs: duration_secs("access_actions.inactivity_period", inactivity_period)?,
    })
}

fn constraint_from_proto(constraint: pb::FactorConstraint) -> Result<FactorConstraint, Error> {
    let pb::FactorConstraint {
        class,
        types,
        phishing_resistant,
        hardware_protected,
        device_bound,
        user_presence,
        user_verification,
    } = constraint;
    let class = match enum_value::<pb::FactorClass>("constraints.class", class)? {
        pb::FactorClass::Knowledge => FactorClass::Knowledge,
        pb::FactorClass::Possession => FactorClass::Possession,
        pb::FactorClass::Inherence => FactorClass::Inherence,
        pb::FactorClass::Unspecified => {
            return Err(Error::field(
                "constraints.class",
                "KNOWLEDGE, POSSESSION or INHERENCE is required",
            ));
        }
    };
    let types = types
        .into_iter()
        .map(|t| {
            factor_type_from_proto(enum_value("constraints.types", t)?)
                .filter(|t| t.class() == class)
                .ok_or_else(|| {
                    Error::field(
                        "constraints.types",
                        "each type must be a factor of the constraint's class",
                    )
                })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(FactorConstraint {
        class,
        types,
        phishing_resistant,
        hardware_protected,
        device_bound,
        user_presence,
        user_verification,
    })
}

fn factor_type_from_proto(value: pb::FactorType) -> Option<FactorType> {
    match value {
        pb::FactorType::Password => Some(FactorType::Password),
        pb::FactorType::Totp => Some(FactorType::Totp),
        pb::FactorType::Fastpass => Some(FactorType::Fastpass),
        pb::FactorType::SecurityKey => Some(FactorType::SecurityKey),
        pb::FactorType::Unspecified => None,
    }
}

/// Session actions for the API.
pub fn session_actions_to_proto(actions: &SessionActions) -> pb::SessionActions {
    let SessionActions {
        access,
        primary_factor,
        mfa_required,
        session_idle_timeout_secs,
        session_max_lifetime_secs,
    } = actions;
    pb::SessionActions {
        access: access_to_proto(*access) as i32,
        primary_factor: match primary_factor {
            PrimaryFactor::Password => pb::PrimaryFactor::Password,
            PrimaryFactor::AnyAppPolicyFactor => pb::PrimaryFactor::AnyAppPolicyFactor,
        } as i32,
        mfa_required: *mfa_required,
        session_idle_timeout: Some(duration(*session_idle_timeout_secs)),
        session_max_lifetime: Some(duration(*session_max_lifetime_secs)),
    }
}

/// Session actions from the API.
pub fn session_actions_from_proto(actions: pb::SessionActions) -> Result<SessionActions, Error> {
    let pb::SessionActions {
        access,
        primary_factor,
        mfa_required,
        session_idle_timeout,
        session_max_lifetime,
    } = actions;
    let primary_factor = match enum_value::<pb::PrimaryFactor>("session_actions.primary_factor", primary_factor)? {
        pb::PrimaryFactor::Password | pb::PrimaryFactor::Unspecified => PrimaryFactor::Password,
        pb::PrimaryFactor::AnyAppPolicyFactor => PrimaryFactor::AnyAppPolicyFactor,
    };
    let idle = duration_secs("session_actions.session_idle_timeout", session_idle_timeout)?.unwrap_or(2 * 3600);
    let lifetime = duration_secs("session_actions.session_max_lifetime", session_max_lifetime)?.unwrap_or(24 * 3600);
    if idle > lifetime {
        return Err(Error::field(
            "session_actions.session_idle_timeout",
            "must not be longer than the maximum lifetime",
        ));
    }
    Ok(SessionActions {
        access: access_from_proto("session_actions.access", access)?,
        primary_factor,
        mfa_required,
        session_idle_timeout_secs: idle,
        session_max_lifetime_secs: lifetime,
    })
}

fn strings(map: HashMap<String, String>) -> HashMap<String, AttributeValue> {
    map.into_iter().map(|(k, v)| (k, AttributeValue::String(v))).collect()
}

/// How far in the future a factor's verification time may lie (clock skew between replicas).
const CLOCK_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

/// The sign-in context from the API, as of `now` (unix micros).
pub fn sign_in_from_proto(context: Option<pb::SignInContext>, now: i64) -> Result<SignIn, Error> {
    let pb::SignInContext {
        client_id,
        user,
        device,
        network,
        risk_level,
        factors,
        session_last_activity_time,
        behaviors,
    } = context.ok_or_else(|| Error::field("context", "is required"))?;
    if client_id.is_empty() {
        return Err(Error::field("context.client_id", "is required"));
    }
    let pb::UserContext {
        id: user_id,
        status,
        groups,
        profile,
    } = user.ok_or_else(|| Error::field("context.user", "is required"))?;
    if user_id.is_empty() {
        return Err(Error::field("context.user.id", "is required"));
    }
    let pb::NetworkContext {
        client_address,
        forwarded_for,
    } = network.ok_or_else(|| Error::field("context.network", "is required"))?;
    let peer: IpAddr = client_address
        .trim()
        .parse()
        .map_err(|_| Error::field("context.network.client_address", "must be an IPv4 or IPv6 address"))?;
    let device = device.map(device_from_proto).transpose()?;
    let risk = risk_from_proto(enum_value("context.risk_level", risk_level)?);
    let factors = factors
        .into_iter()
        .map(|f| {
            let pb::ProvenFactor {
                r#type,
                phishing_resistant,
                hardware_protected,
                device_bound,
                user_presence,
                user_verification,
                verify_time,
            } = f;
            let verify_time =
                micros(verify_time).ok_or_else(|| Error::field("context.factors.verify_time", "is required"))?;
            if verify_time > now.saturating_add(CLOCK_SKEW_MICROS) {
                return Err(Error::field("context.factors.verify_time", "lies in the future"));
            }
            Ok(ProvenFactor {
                factor_type: factor_type_from_proto(enum_value("context.factors.type", r#type)?)
                    .ok_or_else(|| Error::field("context.factors.type", "is required"))?,
                phishing_resistant,
                hardware_protected,
                device_bound,
                user_presence,
                user_verification,
                verify_time,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(SignIn {
        client_id,
        user: User {
            id: user_id,
            status,
            groups: groups.into_iter().map(|g| Group { id: g.id, name: g.name }).collect(),
            profile: strings(profile),
        },
        device,
        peer,
        forwarded_for,
        risk,
        factors,
        session_last_activity: micros(session_last_activity_time),
        behaviors: behaviors.into_iter().map(AttributeValue::String).collect(),
    })
}

fn device_from_proto(device: pb::DeviceContext) -> Result<Device, Error> {
    let pb::DeviceContext {
        id,
        registered,
        managed,
        management_source: _,
        status,
        platform,
        os_version,
        disk_encryption,
        screen_lock,
        secure_hardware,
        jailbroken,
        profile,
        signals,
    } = device;
    let platform: Platform = enum_value("context.device.platform", platform)?;
    Ok(Device {
        id,
        registered,
        managed,
        status,
        platform_name: AttributeValue::String(short_name(platform.as_str_name(), "PLATFORM_").to_owned()),
        os_version: AttributeValue::String(os_version.clone()),
        posture: DevicePosture {
            platform,
            os_version,
            disk_encryption: enum_value("context.device.disk_encryption", disk_encryption)?,
            screen_lock: enum_value("context.device.screen_lock", screen_lock)?,
            secure_hardware,
            jailbroken,
        },
        profile: strings(profile),
        signals: strings(signals),
    })
}
