//! Whether a whole configuration may be stored: names unique, references resolvable, every
//! policy with exactly one catch-all rule at the end, rules of the right shape for their policy,
//! redirect URIs exact and absolute, and everything compiling (addresses, versions, expressions).

use std::collections::HashSet;

use crate::compiled::Compiled;
use crate::error::Error;
use crate::expression::Expression;
use crate::model::{Actions, ClientType, Configuration, MAX_RULES_PER_POLICY, Network, PolicyType};

/// Checks `config`; the first problem found is the error.
pub fn configuration(config: &Configuration) -> Result<(), Error> {
    unique("app", config.apps.values().map(|a| a.name.as_str()))?;
    unique("app client id", config.apps.values().map(|a| a.client_id.as_str()))?;
    unique("network zone", config.zones.values().map(|z| z.name.as_str()))?;
    unique(
        "device assurance policy",
        config.assurance.values().map(|p| p.name.as_str()),
    )?;
    unique(
        "policy",
        config.policies.values().map(|p| match p.policy_type {
            PolicyType::GlobalSession => format!("global session policy {}", p.name),
            PolicyType::Access => format!("access policy {}", p.name),
        }),
    )?;

    for app in config.apps.values() {
        if app.name.trim().is_empty() {
            return Err(Error::field("app.name", "must not be empty"));
        }
        if app.client_id.is_empty() || app.client_id.len() > 128 || !app.client_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::field(
                "app.client_id",
                "must be 1 to 128 visible ASCII characters",
            ));
        }
        if app.redirect_uris.is_empty() {
            return Err(Error::field(
                "app.redirect_uris",
                "at least one redirect URI is required",
            ));
        }
        for uri in &app.redirect_uris {
            redirect_uri("app.redirect_uris", uri)?;
        }
        for uri in &app.post_logout_redirect_uris {
            redirect_uri("app.post_logout_redirect_uris", uri)?;
        }
        for scope in &app.allowed_scopes {
            if scope.is_empty() || !scope.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
                return Err(Error::field(
                    "app.allowed_scopes",
                    format!("{scope:?} is not a scope token"),
                ));
            }
        }
        match (app.client_type, &app.secret_hash) {
            (ClientType::Confidential, None) => {
                return Err(Error::Corrupt(format!("app {:?} has no secret", app.name)));
            }
            (ClientType::Public, Some(_)) => {
                return Err(Error::Corrupt(format!("public app {:?} has a secret", app.name)));
            }
            _ => {}
        }
        match config.policies.get(&app.access_policy_id) {
            Some(policy) if policy.policy_type == PolicyType::Access => {}
            Some(_) => {
                return Err(Error::field(
                    "app.access_policy_id",
                    "names a global session policy; an app needs an access policy",
                ));
            }
            None => {
                return Err(Error::field(
                    "app.access_policy_id",
                    format!("no access policy has id {:?}", app.access_policy_id),
                ));
            }
        }
    }

    for zone in config.zones.values() {
        if zone.name.trim().is_empty() {
            return Err(Error::field("zone.name", "must not be empty"));
        }
        if zone.gateways.is_empty() {
            return Err(Error::field(
                "zone.gateways",
                "at least one address or range is required",
            ));
        }
    }
    for policy in config.assurance.values() {
        if policy.name.trim().is_empty() {
            return Err(Error::field("policy.name", "must not be empty"));
        }
    }

    let defaults = config
        .policies
        .values()
        .filter(|p| p.policy_type == PolicyType::GlobalSession && p.is_default)
        .count();
    if defaults != 1 {
        return Err(Error::Corrupt(format!("{defaults} default global session policies")));
    }
    for policy in config.policies.values() {
        if policy.name.trim().is_empty() {
            return Err(Error::field("policy.name", "must not be empty"));
        }
        if policy.rules.len() > MAX_RULES_PER_POLICY {
            return Err(Error::TooManyRules(MAX_RULES_PER_POLICY));
        }
        if policy.policy_type == PolicyType::Access && policy.is_default {
            return Err(Error::Corrupt(format!(
                "access policy {:?} marked default",
                policy.name
            )));
        }
        let catch_alls = policy.rules.iter().filter(|r| r.catch_all).count();
        if catch_alls != 1 || !policy.rules.last().is_some_and(|r| r.catch_all) {
            return Err(Error::Corrupt(format!(
                "policy {:?} must end with one catch-all rule",
                policy.name
            )));
        }
        unique("rule", policy.rules.iter().map(|r| r.name.as_str()))?;
        for rule in &policy.rules {
            if rule.name.trim().is_empty() {
                return Err(Error::field("rule.name", "must not be empty"));
            }
            if rule.catch_all && (rule.conditions != Default::default() || !rule.active) {
                return Err(Error::BuiltIn(format!(
                    "the catch-all rule of {:?} matches everything and stays active",
                    policy.name
                )));
            }
            match (&rule.actions, policy.policy_type) {
                (Actions::Access(_), PolicyType::Access) | (Actions::Session(_), PolicyType::GlobalSession) => {}
                (Actions::Access(_), PolicyType::GlobalSession) => {
                    return Err(Error::field(
                        "rule.session_actions",
                        "a global session rule needs session actions",
                    ));
                }
                (Actions::Session(_), PolicyType::Access) => {
                    return Err(Error::field(
                        "rule.access_actions",
                        "an access rule needs access actions",
                    ));
                }
            }
            if let Actions::Session(actions) = &rule.actions
                && (actions.session_idle_timeout_secs == 0 || actions.session_max_lifetime_secs == 0)
            {
                return Err(Error::field(
                    "rule.session_actions",
                    "session idle timeout and maximum lifetime must be set",
                ));
            }
            let conditions = &rule.conditions;
            if policy.policy_type == PolicyType::GlobalSession
                && (conditions.platform.is_some()
                    || conditions.device.is_some()
                    || conditions.risk.is_some()
                    || conditions.expression.is_some())
            {
                return Err(Error::field(
                    "rule.conditions",
                    "global session rules take people and network conditions only",
                ));
            }
            if let Some(Network::ZonesIn(ids) | Network::ZonesNotIn(ids)) = &conditions.network {
                if ids.is_empty() {
                    return Err(Error::field(
                        "rule.conditions.network.zone_ids",
                        "name at least one zone",
                    ));
                }
                for id in ids {
                    match config.zones.get(id) {
                        Some(zone) if zone.kind == crate::model::ZoneKind::Policy => {}
                        Some(_) => {
                            return Err(Error::field(
                                "rule.conditions.network.zone_ids",
                                format!("{id:?} is a block zone; block zones deny by themselves"),
                            ));
                        }
                        None => {
                            return Err(Error::field(
                                "rule.conditions.network.zone_ids",
                                format!("no network zone has id {id:?}"),
                            ));
                        }
                    }
                }
            }
            if let Some(device) = &conditions.device {
                for id in &device.assurance {
                    if !config.assurance.contains_key(id) {
                        return Err(Error::field(
                            "rule.conditions.device.assurance_policy_ids",
                            format!("no device assurance policy has id {id:?}"),
                        ));
                    }
                }
            }
            if let Some(platforms) = &conditions.platform {
                for m in platforms {
                    if let Some(os) = m.os
                        && crate::model::PlatformKind::of(os) != Some(m.kind)
                    {
                        return Err(Error::field(
                            "rule.conditions.platform",
                            format!("{} is not a {:?} platform", os.as_str_name(), m.kind),
                        ));
                    }
                }
            }
            if let Some(source) = &conditions.expression {
                expression("rule.conditions.expression", source)?;
            }
        }
    }
    Compiled::build(0, std::sync::Arc::new(config.clone()))
        .map_err(|e| Error::field("configuration", e.to_string()))?;
    Ok(())
}

/// Parses an expression, turning a parse error into a field error with its position.
pub fn expression(field: &str, source: &str) -> Result<Expression, Error> {
    Expression::parse(source).map_err(|e| Error::InvalidExpression {
        field: field.to_owned(),
        line: e.line,
        column: e.column,
        reason: e.reason,
    })
}

fn unique<S: AsRef<str>>(kind: &'static str, names: impl Iterator<Item = S>) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name.as_ref().to_owned()) {
            return Err(Error::AlreadyExists {
                kind,
                name: name.as_ref().to_owned(),
            });
        }
    }
    Ok(())
}

/// A redirect URI compared exactly: absolute, no fragment, https or loopback http (RFC 8252),
/// or a private-use scheme for native apps.
fn redirect_uri(field: &str, uri: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::field(field, format!("{uri:?}: {why}")));
    let Some((scheme, rest)) = uri.split_once(':') else {
        return bad("must be an absolute URI");
    };
    if uri.contains('#') {
        return bad("must not have a fragment");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) || uri.len() > 2048 {
        return bad("must not contain spaces and must be at most 2048 characters");
    }
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return bad("has no valid scheme");
    }
    match scheme {
        "https" => {
            if !rest.starts_with("//") || rest.len() <= 2 {
                return bad("must name a host");
            }
        }
        "http" => {
            let host = rest.strip_prefix("//").unwrap_or("");
            let loopback = ["localhost", "127.0.0.1", "[::1]"]
                .iter()
                .any(|h| host == *h || host.starts_with(&format!("{h}:")) || host.starts_with(&format!("{h}/")));
            if !loopback {
                return bad("plain http is allowed only for loopback addresses");
            }
        }
        // Private-use schemes (com.example.app:/callback) for native apps, RFC 8252 §7.1.
        _ if scheme.contains('.') => {}
        _ => return bad("must be https, loopback http, or a private-use scheme"),
    }
    Ok(())
}
