//! One sign-in policy written twice, as a Portcullis access policy and as a Cedar policy set,
//! with the same sign-in as a request to each, so `benches/policy_vs_cedar.rs` can time both
//! engines deciding it.
//!
//! Rule `i` (1-based) of `n` allows a person in group `g-i` whose profile says department
//! `dept-i`, on a registered, managed macOS desktop running macOS newer than 13. Portcullis tries
//! the rules in order and the first that matches decides; a catch-all rule denies the rest.
//! Cedar has no order: every `permit` is evaluated, and with none satisfied the answer is its
//! default deny.

use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request};
use policy_svc::compiled::Compiled;
use policy_svc::context::SignIn;
use policy_svc::document::{self, Format};
use policy_svc::model::Configuration;
use portcullis_proto::device::v1::{DiskEncryptionType, Platform, ScreenLockType};
use portcullis_proto::policy::v1 as pb;

/// The time every decision is made at (unix micros); fixed so runs compare.
pub const NOW: i64 = 1_767_225_600_000_000;

/// Groups the person is in besides the one that names them in a rule: a directory gives most
/// people a few, and both engines look through them.
const OTHER_GROUPS: [&str; 3] = ["g-everyone", "g-staff", "g-vpn-users"];

/// Why a policy or request could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// Portcullis refused the configuration or the sign-in.
    Portcullis(String),
    /// Cedar refused the policies, entities or request.
    Cedar(String),
}

impl std::error::Error for BuildError {}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Portcullis(why) => write!(f, "portcullis: {why}"),
            Self::Cedar(why) => write!(f, "cedar: {why}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Portcullis

/// The policy-as-code document: the app, the default global session policy, and the app's
/// access policy with `rules` rules and the catch-all.
pub fn portcullis_document(rules: usize) -> String {
    let mut yaml = String::from(
        r#"
apps:
  - name: Portal
    client_id: portal
    client_type: PUBLIC
    redirect_uris: [https://portal.example.com/callback]
    access_policy: Portal access
global_session_policies:
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
  - name: Portal access
    rules:
"#,
    );
    for i in 1..=rules {
        yaml.push_str(&format!(
            r#"      - name: rule {i}
        conditions:
          people:
            include_groups: [g-{i}]
          platform:
            - kind: DESKTOP
              os: MACOS
          device:
            registered: true
            managed: true
          expression: "device.profile.osVersion.versionGreaterThan('13') && user.profile.department == 'dept-{i}'"
        actions:
          access: {{access: ALLOW, factor_mode: ONE_FACTOR}}
"#
        ));
    }
    yaml.push_str(
        r#"      - name: Catch-all Rule
        catch_all: true
        actions:
          access: {access: DENY, factor_mode: TWO_FACTOR}
"#,
    );
    yaml
}

/// The access policy with `rules` rules, compiled as the service compiles what it puts in
/// force. The service's own validation refuses more than 100 rules in one policy (Okta's
/// limit); this builds past it on purpose, to see how the engine scales.
pub fn portcullis_policy(rules: usize) -> Result<Compiled, BuildError> {
    let bad = |e: &dyn std::fmt::Display| BuildError::Portcullis(e.to_string());
    let mut config = Configuration::default();
    let parsed = document::parse(&portcullis_document(rules), Format::Yaml).map_err(|e| bad(&e))?;
    document::apply(&mut config, parsed, NOW).map_err(|e| bad(&e))?;
    Compiled::build(1, Arc::new(config)).map_err(|e| bad(&e))
}

/// The sign-in that rule `rule` matches (and no earlier rule does); `rule` 0 matches none.
pub fn portcullis_sign_in(rule: usize) -> Result<SignIn, BuildError> {
    let mut groups: Vec<pb::GroupRef> = OTHER_GROUPS
        .iter()
        .map(|g| pb::GroupRef {
            id: (*g).to_owned(),
            name: (*g).to_owned(),
        })
        .collect();
    groups.push(pb::GroupRef {
        id: format!("g-{rule}"),
        name: format!("Group {rule}"),
    });
    let context = pb::SignInContext {
        client_id: "portal".to_owned(),
        user: Some(pb::UserContext {
            id: "u-ann".to_owned(),
            status: "ACTIVE".to_owned(),
            groups,
            profile: [("department".to_owned(), format!("dept-{rule}"))]
                .into_iter()
                .collect(),
        }),
        device: Some(pb::DeviceContext {
            id: "d-ann".to_owned(),
            registered: true,
            managed: true,
            management_source: 0,
            status: "ACTIVE".to_owned(),
            platform: Platform::Macos as i32,
            os_version: "14.2.1".to_owned(),
            disk_encryption: DiskEncryptionType::AllInternalVolumes as i32,
            screen_lock: ScreenLockType::Biometric as i32,
            secure_hardware: Some(true),
            jailbroken: Some(false),
            profile: Default::default(),
            signals: Default::default(),
        }),
        network: Some(pb::NetworkContext {
            client_address: "192.0.2.10".to_owned(),
            forwarded_for: Vec::new(),
        }),
        risk_level: pb::RiskLevel::Low as i32,
        factors: vec![pb::ProvenFactor {
            r#type: pb::FactorType::Fastpass as i32,
            phishing_resistant: true,
            hardware_protected: true,
            device_bound: true,
            user_presence: true,
            user_verification: false,
            verify_time: Some(prost_timestamp(NOW - 5_000_000)),
        }],
        session_last_activity_time: None,
        behaviors: Vec::new(),
    };
    policy_svc::convert::sign_in_from_proto(Some(context), NOW).map_err(|e| BuildError::Portcullis(e.to_string()))
}

fn prost_timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
    }
}

/// Decides `sign_in` as `Evaluate` does (no trace, no assurance failures on record).
pub fn portcullis_decide(compiled: &Compiled, sign_in: &SignIn) -> pb::Decision {
    policy_svc::decide::decide(compiled, sign_in, NOW, &|_| None, None).decision
}

/// Whether Portcullis allows, and the access rule that decided.
pub fn portcullis_verdict(decision: &pb::Decision) -> (bool, String) {
    let rule = decision
        .matched
        .iter()
        .find(|m| m.policy_type == pb::PolicyType::Access as i32)
        .map(|m| m.rule_name.clone())
        .unwrap_or_default();
    (decision.outcome == pb::Outcome::Allow as i32, rule)
}

// ---------------------------------------------------------------------------------------------
// Cedar

/// `rules` permit policies with the conditions of Portcullis's rules, `@id("rule i")`.
///
/// Cedar compares numbers, strings and decimals but has no dotted-version comparison, so the
/// device carries its OS major version as a number (`osMajor > 13`) where Portcullis compares
/// the reported version string (`osVersion.versionGreaterThan('13')`).
pub fn cedar_policies(rules: usize) -> Result<PolicySet, BuildError> {
    let mut text = String::new();
    for i in 1..=rules {
        text.push_str(&format!(
            r#"@id("rule {i}")
permit (
    principal in Group::"g-{i}",
    action == Action::"signIn",
    resource == App::"portal"
) when {{
    context.device.registered &&
    context.device.managed &&
    context.device.kind == "DESKTOP" &&
    context.device.platform == "MACOS" &&
    context.device.osMajor > 13 &&
    principal.department == "dept-{i}"
}};
"#
        ));
    }
    PolicySet::from_str(&text).map_err(|e| BuildError::Cedar(e.to_string()))
}

/// The request and entities for the same sign-in as [`portcullis_sign_in`]`(rule)`: the person
/// with their department and groups, the app, and the device in the context.
pub fn cedar_request(rule: usize) -> Result<(Request, Entities), BuildError> {
    let bad = |e: &dyn std::fmt::Display| BuildError::Cedar(e.to_string());
    let mut parents: Vec<serde_json::Value> = OTHER_GROUPS
        .iter()
        .map(|g| serde_json::json!({"type": "Group", "id": g}))
        .collect();
    parents.push(serde_json::json!({"type": "Group", "id": format!("g-{rule}")}));
    let mut entities = vec![
        serde_json::json!({
            "uid": {"type": "User", "id": "u-ann"},
            "attrs": {"department": format!("dept-{rule}")},
            "parents": parents,
        }),
        serde_json::json!({"uid": {"type": "App", "id": "portal"}, "attrs": {}, "parents": []}),
    ];
    for group in OTHER_GROUPS
        .iter()
        .map(|g| (*g).to_owned())
        .chain([format!("g-{rule}")])
    {
        entities.push(serde_json::json!({"uid": {"type": "Group", "id": group}, "attrs": {}, "parents": []}));
    }
    let entities = Entities::from_json_value(serde_json::Value::Array(entities), None).map_err(|e| bad(&e))?;
    let context = Context::from_json_value(
        serde_json::json!({
            "device": {
                "registered": true,
                "managed": true,
                "kind": "DESKTOP",
                "platform": "MACOS",
                "osMajor": 14,
            }
        }),
        None,
    )
    .map_err(|e| bad(&e))?;
    let uid = |text: &str| EntityUid::from_str(text).map_err(|e| bad(&e));
    let request = Request::new(
        uid(r#"User::"u-ann""#)?,
        uid(r#"Action::"signIn""#)?,
        uid(r#"App::"portal""#)?,
        context,
        None,
    )
    .map_err(|e| bad(&e))?;
    Ok((request, entities))
}

/// Whether Cedar allows, and the policies that said so.
pub fn cedar_decide(
    authorizer: &Authorizer,
    request: &Request,
    policies: &PolicySet,
    entities: &Entities,
) -> (bool, Vec<String>) {
    let response = authorizer.is_authorized(request, policies, entities);
    let mut reasons: Vec<String> = response
        .diagnostics()
        .reason()
        .filter_map(|id| policies.policy(id).and_then(|p| p.annotation("id").map(str::to_owned)))
        .collect();
    reasons.sort();
    (response.decision() == Decision::Allow, reasons)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn both_engines_allow_the_matching_rule_and_deny_everyone_else() {
        let compiled = portcullis_policy(10).unwrap();
        let policies = cedar_policies(10).unwrap();
        let authorizer = Authorizer::new();
        for rule in [1, 5, 10] {
            let (allowed, by) = portcullis_verdict(&portcullis_decide(&compiled, &portcullis_sign_in(rule).unwrap()));
            assert!(allowed);
            assert_eq!(by, format!("rule {rule}"));
            let (request, entities) = cedar_request(rule).unwrap();
            assert_eq!(
                cedar_decide(&authorizer, &request, &policies, &entities),
                (true, vec![format!("rule {rule}")])
            );
        }
        let (allowed, by) = portcullis_verdict(&portcullis_decide(&compiled, &portcullis_sign_in(11).unwrap()));
        assert_eq!((allowed, by.as_str()), (false, "Catch-all Rule"));
        let (request, entities) = cedar_request(11).unwrap();
        assert!(!cedar_decide(&authorizer, &request, &policies, &entities).0);
    }
}
