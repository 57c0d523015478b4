//! Deciding a sign-in, the way Okta Identity Engine does: blocked network zones first, then the
//! global session policy (first policy whose groups include the person, first matching rule),
//! then the app's sign-in policy (first matching rule), then whether the factors proven so far
//! satisfy both. The same walk explains itself for `Simulate` when given a trace to fill.

use std::net::IpAddr;

use portcullis_proto::policy::v1 as pb;
use service_kit::clock::timestamp;

use crate::assurance::{self, AssuranceOutcome};
use crate::compiled::{Compiled, CompiledPolicy, CompiledRule};
use crate::context::{SignIn, SignInAttributes};
use crate::expression::Verdict;
use crate::model::{
    Access, AccessActions, Actions, Conditions, FactorClass, FactorConstraint, FactorMode, FactorType, Network, People,
    PolicyType, PrimaryFactor, SessionActions,
};
use crate::zones::ResolvedNetwork;

/// A decision, and what recording it needs.
#[derive(Debug)]
pub struct Outcome {
    /// The decision (its `event_id` is set by whoever records it).
    pub decision: pb::Decision,
    /// Assurance policies this device failed for the first time as far as the caller knew:
    /// their grace periods start now.
    pub first_failures: Vec<String>,
    /// The client address the zones saw.
    pub resolved: ResolvedNetwork,
}

/// How a condition, rule or policy came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Yes,
    No,
    Undefined,
}

impl Match {
    fn result(self) -> pb::MatchResult {
        match self {
            Match::Yes => pb::MatchResult::Match,
            Match::No => pb::MatchResult::NotMatch,
            Match::Undefined => pb::MatchResult::Undefined,
        }
    }
}

/// What a matching access rule's device condition left for the decision.
#[derive(Debug, Default)]
struct AssuranceNotes {
    remediation: Vec<String>,
    grace_until: Option<i64>,
    failed: bool,
}

/// One decision in progress.
struct Decider<'a> {
    compiled: &'a Compiled,
    sign_in: &'a SignIn,
    attributes: SignInAttributes<'a>,
    now: i64,
    failing_since: &'a dyn Fn(&str) -> Option<i64>,
    resolved: ResolvedNetwork,
    first_failures: Vec<String>,
    /// Remediation from assurance conditions that did not match, shown if the sign-in is denied.
    failed_assurance: AssuranceNotes,
    trace: Option<&'a mut Vec<pb::PolicyTrace>>,
}

/// Decides `sign_in` at `now` (unix micros). `failing_since` says when the device first failed
/// an assurance policy (by policy id), for grace periods counted from then. With `trace`, every
/// policy, rule and condition is written down with its result and reason.
pub fn decide(
    compiled: &Compiled,
    sign_in: &SignIn,
    now: i64,
    failing_since: &dyn Fn(&str) -> Option<i64>,
    trace: Option<&mut Vec<pb::PolicyTrace>>,
) -> Outcome {
    let forwarded: Vec<&str> = sign_in.forwarded_for.iter().map(String::as_str).collect();
    let resolved = compiled.zones.resolve(sign_in.peer, &forwarded);
    let mut decider = Decider {
        compiled,
        sign_in,
        attributes: SignInAttributes::new(sign_in),
        now,
        failing_since,
        resolved,
        first_failures: Vec::new(),
        failed_assurance: AssuranceNotes::default(),
        trace,
    };
    let decision = decider.run();
    Outcome {
        decision,
        first_failures: decider.first_failures,
        resolved: decider.resolved,
    }
}

fn deny(reason_code: &str, reason: String, matched: Vec<pb::MatchedRule>) -> pb::Decision {
    pb::Decision {
        outcome: pb::Outcome::Deny as i32,
        reason,
        reason_code: reason_code.to_owned(),
        matched,
        ..Default::default()
    }
}

fn matched(policy: &CompiledPolicy, rule: &CompiledRule) -> pb::MatchedRule {
    pb::MatchedRule {
        policy_type: match policy.policy_type {
            PolicyType::GlobalSession => pb::PolicyType::GlobalSession,
            PolicyType::Access => pb::PolicyType::Access,
        } as i32,
        policy_id: policy.id.clone(),
        policy_name: policy.name.clone(),
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
    }
}

fn seconds(secs: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(secs).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

impl<'a> Decider<'a> {
    fn run(&mut self) -> pb::Decision {
        let compiled = self.compiled;
        if let Some(zone) = self.resolved.blocked_by.clone() {
            let name = compiled
                .config
                .zones
                .get(&zone)
                .map_or(zone.as_str(), |z| z.name.as_str())
                .to_owned();
            return deny(
                "NETWORK_ZONE_BLOCKED",
                format!("requests from network zone {name:?} are blocked"),
                Vec::new(),
            );
        }
        let Some(app) = compiled.app_by_client_id(&self.sign_in.client_id) else {
            return deny(
                "APP_NOT_FOUND",
                format!("no app has client id {:?}", self.sign_in.client_id),
                Vec::new(),
            );
        };

        // The global session policy.
        let Some((global_policy, global_rule)) = self.first_global_match() else {
            return deny(
                "NO_GLOBAL_SESSION_RULE",
                "no global session rule matched this sign-in".to_owned(),
                Vec::new(),
            );
        };
        let mut matched_rules = vec![matched(global_policy, global_rule)];
        let Actions::Session(session) = &global_rule.actions else {
            return deny(
                "INVALID_CONFIGURATION",
                "global session rule without session actions".into(),
                matched_rules,
            );
        };
        if session.access == Access::Deny {
            return deny(
                "GLOBAL_SESSION_DENY",
                format!("global session rule {:?} denies this sign-in", global_rule.name),
                matched_rules,
            );
        }

        // The app's sign-in policy.
        let Some(access_policy) = compiled.access.get(&app.access_policy_id) else {
            return deny(
                "APP_POLICY_MISSING",
                format!("app {:?} has no sign-in policy", app.name),
                matched_rules,
            );
        };
        let Some((access_rule, notes)) = self.first_access_match(access_policy) else {
            return self.denied_without_rule(matched_rules);
        };
        matched_rules.push(matched(access_policy, access_rule));
        let Actions::Access(actions) = &access_rule.actions else {
            return deny(
                "INVALID_CONFIGURATION",
                "access rule without access actions".into(),
                matched_rules,
            );
        };
        if actions.access == Access::Deny {
            let mut decision = deny(
                "RULE_DENY",
                format!("rule {:?} of {:?} denies access", access_rule.name, access_policy.name),
                matched_rules,
            );
            if self.failed_assurance.failed {
                decision.reason_code = "DEVICE_ASSURANCE_FAILED".to_owned();
                decision.reason = format!(
                    "the device does not meet the device assurance policy, and rule {:?} denies access",
                    access_rule.name
                );
                decision.remediation = std::mem::take(&mut self.failed_assurance.remediation);
            }
            return decision;
        }
        let requirements = self.missing_factors(session, actions);
        let mut decision = pb::Decision {
            matched: matched_rules,
            session_idle_timeout: Some(seconds(session.session_idle_timeout_secs)),
            session_max_lifetime: Some(seconds(session.session_max_lifetime_secs)),
            remediation: notes.remediation,
            grace_until: notes.grace_until.map(timestamp),
            ..Default::default()
        };
        if requirements.is_empty() {
            decision.outcome = pb::Outcome::Allow as i32;
            decision.reason_code = if decision.grace_until.is_some() {
                "ALLOWED_IN_GRACE_PERIOD"
            } else {
                "ALLOWED"
            }
            .to_owned();
            decision.reason = format!("rule {:?} of {:?} allows access", access_rule.name, access_policy.name);
        } else {
            decision.outcome = pb::Outcome::Challenge as i32;
            decision.reason_code = "FACTORS_REQUIRED".to_owned();
            decision.reason = format!(
                "rule {:?} of {:?} needs {}",
                access_rule.name,
                access_policy.name,
                requirements
                    .iter()
                    .map(|r| r.description.as_str())
                    .collect::<Vec<_>>()
                    .join(", or ")
            );
            decision.requirements = requirements;
        }
        decision
    }

    fn denied_without_rule(&mut self, matched_rules: Vec<pb::MatchedRule>) -> pb::Decision {
        let mut decision = deny(
            "NO_RULE_MATCHED",
            "no active rule of the app's sign-in policy matched".to_owned(),
            matched_rules,
        );
        if self.failed_assurance.failed {
            decision.reason_code = "DEVICE_ASSURANCE_FAILED".to_owned();
            decision.reason = "the device does not meet the device assurance policy".to_owned();
            decision.remediation = std::mem::take(&mut self.failed_assurance.remediation);
        }
        decision
    }

    fn first_global_match(&mut self) -> Option<(&'a CompiledPolicy, &'a CompiledRule)> {
        let compiled = self.compiled;
        let mut found = None;
        for policy in &compiled.global {
            let applies = policy.group_ids.is_empty() || policy.group_ids.iter().any(|g| self.sign_in.user.in_group(g));
            if found.is_some() || !applies {
                let reason = if applies {
                    "an earlier policy applied"
                } else {
                    "the person is in none of the policy's groups"
                };
                self.trace_policy(policy, if found.is_some() { None } else { Some(Match::No) }, reason);
                continue;
            }
            let mut rule_traces = Vec::new();
            let mut hit = None;
            for rule in &policy.rules {
                if hit.is_some() || !rule.active {
                    if self.tracing() {
                        rule_traces.push(skipped_rule(rule, hit.is_some()));
                    }
                    continue;
                }
                let mut conditions = Vec::new();
                let result = self.rule_matches(rule, &mut conditions, &mut AssuranceNotes::default());
                if self.tracing() {
                    rule_traces.push(rule_trace(rule, result, conditions));
                }
                if result == Match::Yes {
                    hit = Some(rule);
                }
            }
            self.push_policy_trace(policy, if hit.is_some() { Match::Yes } else { Match::No }, rule_traces);
            if let Some(rule) = hit {
                found = Some((policy, rule));
            }
        }
        found
    }

    fn first_access_match(&mut self, policy: &'a CompiledPolicy) -> Option<(&'a CompiledRule, AssuranceNotes)> {
        let mut rule_traces = Vec::new();
        let mut found = None;
        for rule in &policy.rules {
            if found.is_some() || !rule.active {
                if self.tracing() {
                    rule_traces.push(skipped_rule(rule, found.is_some()));
                }
                continue;
            }
            let mut conditions = Vec::new();
            let mut notes = AssuranceNotes::default();
            let result = self.rule_matches(rule, &mut conditions, &mut notes);
            if self.tracing() {
                rule_traces.push(rule_trace(rule, result, conditions));
            }
            if result == Match::Yes {
                found = Some((rule, notes));
            } else if notes.failed {
                self.failed_assurance.failed = true;
                for text in notes.remediation {
                    if !self.failed_assurance.remediation.contains(&text) {
                        self.failed_assurance.remediation.push(text);
                    }
                }
            }
        }
        self.push_policy_trace(
            policy,
            if found.is_some() { Match::Yes } else { Match::No },
            rule_traces,
        );
        found
    }

    fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    fn trace_policy(&mut self, policy: &CompiledPolicy, result: Option<Match>, reason: &str) {
        if let Some(trace) = self.trace.as_deref_mut() {
            trace.push(pb::PolicyTrace {
                policy_type: policy_type(policy.policy_type) as i32,
                policy_id: policy.id.clone(),
                policy_name: policy.name.clone(),
                result: result.map_or(pb::MatchResult::NotEvaluated, Match::result) as i32,
                reason: reason.to_owned(),
                conditions: Vec::new(),
                rules: policy.rules.iter().map(|r| skipped_rule(r, true)).collect(),
            });
        }
    }

    fn push_policy_trace(&mut self, policy: &CompiledPolicy, result: Match, rules: Vec<pb::RuleTrace>) {
        if let Some(trace) = self.trace.as_deref_mut() {
            let reason = match (result, policy.policy_type) {
                (Match::Yes, PolicyType::GlobalSession) => "the first global session policy that applies to the person",
                (Match::Yes, PolicyType::Access) => "the app's sign-in policy",
                _ => "no active rule matched",
            };
            trace.push(pb::PolicyTrace {
                policy_type: policy_type(policy.policy_type) as i32,
                policy_id: policy.id.clone(),
                policy_name: policy.name.clone(),
                result: result.result() as i32,
                reason: reason.to_owned(),
                conditions: Vec::new(),
                rules,
            });
        }
    }

    /// Every condition of `rule`, ANDed; stops at the first that does not match unless tracing.
    fn rule_matches(
        &mut self,
        rule: &CompiledRule,
        conditions: &mut Vec<pb::ConditionTrace>,
        notes: &mut AssuranceNotes,
    ) -> Match {
        let tracing = self.tracing();
        let Conditions {
            people,
            network,
            platform,
            device,
            risk,
            expression: _,
        } = &rule.conditions;
        let mut overall = Match::Yes;
        if let Some(people) = people {
            let (result, reason) = self.people_matches(people);
            if !record(tracing, conditions, &mut overall, "people", result, &|| {
                reason.to_owned()
            }) {
                return overall;
            }
        }
        if let Some(network) = network {
            let (result, reason) = self.network_matches(network);
            if !record(tracing, conditions, &mut overall, "network", result, &|| reason.clone()) {
                return overall;
            }
        }
        if let Some(platforms) = platform {
            let (result, reason) = match &self.sign_in.device {
                None => (
                    Match::Undefined,
                    "no device answered, so its platform is unknown".to_owned(),
                ),
                Some(device) => {
                    let platform = device.posture.platform;
                    let kind = crate::model::PlatformKind::of(platform);
                    let hit = platforms
                        .iter()
                        .any(|m| Some(m.kind) == kind && m.os.is_none_or(|os| os == platform));
                    (
                        if hit { Match::Yes } else { Match::No },
                        format!(
                            "the device's platform {} is {}in the rule's platforms",
                            crate::model::short_name(platform.as_str_name(), "PLATFORM_"),
                            if hit { "" } else { "not " }
                        ),
                    )
                }
            };
            if !record(tracing, conditions, &mut overall, "platform", result, &|| {
                reason.clone()
            }) {
                return overall;
            }
        }
        if let Some(condition) = device {
            let (result, reason) = self.device_matches(condition.registered, condition.managed);
            if !record(tracing, conditions, &mut overall, "device", result, &|| {
                reason.to_owned()
            }) {
                return overall;
            }
            if !condition.assurance.is_empty() {
                // Only a rule that fails on assurance alone so far explains a denial by it (and
                // Simulate, which looks at every condition, must decide as Evaluate does).
                let mut unused = AssuranceNotes::default();
                let notes = if overall == Match::Yes {
                    &mut *notes
                } else {
                    &mut unused
                };
                let (result, reason) = self.assurance_matches(&condition.assurance, notes);
                if !record(tracing, conditions, &mut overall, "device.assurance", result, &|| {
                    reason.clone()
                }) {
                    return overall;
                }
            }
        }
        if let Some(levels) = risk {
            let (result, reason) = match self.sign_in.risk {
                None => (Match::Undefined, "the sign-in's risk level is unknown".to_owned()),
                Some(level) => {
                    let hit = levels.contains(&level);
                    (
                        if hit { Match::Yes } else { Match::No },
                        format!(
                            "risk level {} is {}in the rule's levels",
                            level.as_str(),
                            if hit { "" } else { "not " }
                        ),
                    )
                }
            };
            if !record(tracing, conditions, &mut overall, "risk", result, &|| reason.clone()) {
                return overall;
            }
        }
        if let Some(expression) = &rule.expression {
            let verdict = expression.evaluate(&self.attributes, self.now.div_euclid(1000));
            let (result, reason): (Match, &dyn Fn() -> String) = match &verdict {
                Verdict::True => (Match::Yes, &|| format!("{} is true", expression.source())),
                Verdict::False => (Match::No, &|| format!("{} is false", expression.source())),
                Verdict::Undefined(why) => (Match::Undefined, &move || {
                    format!("{} is undefined: {why}", expression.source())
                }),
            };
            record(tracing, conditions, &mut overall, "expression", result, reason);
        }
        overall
    }

    fn people_matches(&self, people: &People) -> (Match, &'static str) {
        let user = &self.sign_in.user;
        let People {
            include_users,
            exclude_users,
            include_groups,
            exclude_groups,
        } = people;
        if exclude_users.contains(&user.id) {
            return (Match::No, "the person is excluded by the rule");
        }
        if exclude_groups.iter().any(|g| user.in_group(g)) {
            return (Match::No, "the person is in a group the rule excludes");
        }
        if include_users.is_empty() && include_groups.is_empty() {
            return (Match::Yes, "the rule applies to everyone");
        }
        if include_users.contains(&user.id) {
            return (Match::Yes, "the person is included by the rule");
        }
        if include_groups.iter().any(|g| user.in_group(g)) {
            return (Match::Yes, "the person is in a group the rule includes");
        }
        (Match::No, "the person is not among the people the rule includes")
    }

    fn network_matches(&self, network: &Network) -> (Match, String) {
        let zone_names = |ids: &[String]| {
            ids.iter()
                .map(|id| {
                    self.compiled
                        .config
                        .zones
                        .get(id)
                        .map_or(id.as_str(), |z| z.name.as_str())
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let address = || {
            self.resolved
                .address
                .map_or_else(|| "an unknown address".to_owned(), |a: IpAddr| a.to_string())
        };
        match network {
            Network::Anywhere => (Match::Yes, "the rule applies anywhere".to_owned()),
            Network::ZonesIn(ids) | Network::ZonesNotIn(ids) => {
                let inside = ids
                    .iter()
                    .map(|id| self.resolved.in_zone(id))
                    .try_fold(false, |any, this| this.map(|this| any || this));
                let wanted_inside = matches!(network, Network::ZonesIn(_));
                match inside {
                    None => (
                        Match::Undefined,
                        format!(
                            "the client address could not be determined ({})",
                            self.resolved.unknown_reason.map_or("unknown", |u| u.as_str())
                        ),
                    ),
                    Some(inside) => (
                        if inside == wanted_inside { Match::Yes } else { Match::No },
                        format!(
                            "{} is {}in zones [{}]",
                            address(),
                            if inside { "" } else { "not " },
                            zone_names(ids)
                        ),
                    ),
                }
            }
        }
    }

    fn device_matches(&self, registered: Option<bool>, managed: Option<bool>) -> (Match, &'static str) {
        // A suspended device is still registered but cannot count as managed (Okta's rule); a
        // deactivated one counts as neither until it enrolls again.
        let (is_registered, is_managed) = match &self.sign_in.device {
            Some(device) => {
                let registered = device.registered && device.status != "DEACTIVATED";
                let active = device.status.is_empty() || device.status == "ACTIVE";
                (registered, registered && active && device.managed)
            }
            None => (false, false),
        };
        if let Some(want) = registered
            && want != is_registered
        {
            return (
                Match::No,
                if want {
                    "the device is not registered"
                } else {
                    "the device is registered"
                },
            );
        }
        if let Some(want) = managed
            && want != is_managed
        {
            return (
                Match::No,
                if want {
                    "the device is not managed"
                } else {
                    "the device is managed"
                },
            );
        }
        (Match::Yes, "the device is as the rule requires")
    }

    fn assurance_matches(&mut self, ids: &[String], notes: &mut AssuranceNotes) -> (Match, String) {
        let Some(device) = &self.sign_in.device else {
            notes.failed = true;
            return (
                Match::No,
                "no device answered, so no device assurance policy can be met".to_owned(),
            );
        };
        let policies = self.compiled.assurance_policies(ids);
        let outcome = assurance::check_any(&policies, &device.posture, self.now, self.failing_since);
        match outcome {
            AssuranceOutcome::Satisfied { policy_id } => (
                Match::Yes,
                format!(
                    "the device meets device assurance policy {:?}",
                    self.assurance_name(&policy_id)
                ),
            ),
            AssuranceOutcome::InGrace {
                policy_id,
                until_micros,
                failures,
                remediation,
            } => {
                self.note_first_failure(&policy_id);
                notes.grace_until = Some(until_micros);
                notes.remediation.push(remediation);
                (
                    Match::Yes,
                    format!(
                        "the device fails device assurance policy {:?} ({}) but is within its grace period",
                        self.assurance_name(&policy_id),
                        failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                    ),
                )
            }
            AssuranceOutcome::Failed { failures, remediation } => {
                for (policy_id, _) in &failures {
                    self.note_first_failure(policy_id);
                }
                notes.failed = true;
                notes.remediation = remediation;
                (
                    Match::No,
                    failures
                        .iter()
                        .map(|(id, why)| {
                            format!(
                                "fails {:?}: {}",
                                self.assurance_name(id),
                                why.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" | "),
                )
            }
            AssuranceOutcome::NoPolicyForPlatform => {
                notes.failed = true;
                (
                    Match::No,
                    format!(
                        "no listed device assurance policy is for platform {}",
                        crate::model::short_name(device.posture.platform.as_str_name(), "PLATFORM_")
                    ),
                )
            }
        }
    }

    fn note_first_failure(&mut self, policy_id: &str) {
        if (self.failing_since)(policy_id).is_none() && !self.first_failures.iter().any(|p| p == policy_id) {
            self.first_failures.push(policy_id.to_owned());
        }
    }

    fn assurance_name<'s>(&'s self, id: &'s str) -> &'s str {
        self.compiled.config.assurance.get(id).map_or(id, |p| p.name.as_str())
    }

    /// What is still missing for both the global session rule and the access rule.
    fn missing_factors(&self, session: &SessionActions, actions: &AccessActions) -> Vec<pb::FactorRequirement> {
        let now = self.now;
        let stale_before = {
            let reauth = actions
                .reauthenticate_in_secs
                .map(|s| now.saturating_sub(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1_000_000)));
            let idle = actions.inactivity_period_secs.and_then(|s| {
                let last = self.sign_in.session_last_activity?;
                let limit = i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1_000_000);
                (now.saturating_sub(last) > limit).then_some(last.saturating_add(1))
            });
            reauth.max(idle).unwrap_or(i64::MIN)
        };
        let usable: Vec<_> = self
            .sign_in
            .factors
            .iter()
            .filter(|f| f.verify_time >= stale_before)
            .collect();
        let mut missing: Vec<FactorConstraint> = Vec::new();
        fn need(missing: &mut Vec<FactorConstraint>, constraint: FactorConstraint) {
            if !missing.contains(&constraint) {
                missing.push(constraint);
            }
        }
        let plain = |class: FactorClass, types: Vec<FactorType>| FactorConstraint {
            class,
            types,
            phishing_resistant: false,
            hardware_protected: false,
            device_bound: false,
            user_presence: false,
            user_verification: false,
        };
        if session.primary_factor == PrimaryFactor::Password
            && !usable.iter().any(|f| f.factor_type == FactorType::Password)
        {
            need(&mut missing, plain(FactorClass::Knowledge, vec![FactorType::Password]));
        }
        for constraint in &actions.constraints {
            if !usable.iter().any(|f| satisfies(f, constraint)) {
                need(&mut missing, constraint.clone());
            }
        }
        let classes = {
            let mut classes: Vec<FactorClass> = usable.iter().map(|f| f.factor_type.class()).collect();
            classes.sort();
            classes.dedup();
            classes
        };
        let two = session.mfa_required || actions.factor_mode == FactorMode::TwoFactor;
        if two && classes.len() < 2 && missing.iter().all(|c| classes.contains(&c.class)) {
            // One more factor of a kind not yet proven.
            for class in [FactorClass::Possession, FactorClass::Knowledge] {
                if !classes.contains(&class) {
                    need(&mut missing, plain(class, Vec::new()));
                }
            }
        }
        if usable.is_empty() && missing.is_empty() {
            need(&mut missing, plain(FactorClass::Possession, Vec::new()));
            need(&mut missing, plain(FactorClass::Knowledge, Vec::new()));
        }
        missing
            .into_iter()
            .map(|constraint| pb::FactorRequirement {
                description: describe(&constraint),
                constraint: Some(constraint_to_proto(&constraint)),
            })
            .collect()
    }
}

/// Writes a condition's result down when tracing and folds it into the rule's; says whether to
/// look at further conditions (always when tracing, else only while everything matched).
fn record(
    tracing: bool,
    conditions: &mut Vec<pb::ConditionTrace>,
    overall: &mut Match,
    name: &str,
    result: Match,
    reason: &dyn Fn() -> String,
) -> bool {
    if tracing {
        conditions.push(pb::ConditionTrace {
            condition: name.to_owned(),
            result: result.result() as i32,
            reason: reason(),
        });
    }
    *overall = match (*overall, result) {
        (_, Match::No) | (Match::No, _) => Match::No,
        (Match::Undefined, _) | (_, Match::Undefined) => Match::Undefined,
        _ => Match::Yes,
    };
    tracing || *overall == Match::Yes
}

/// Whether a proven factor meets a constraint.
fn satisfies(factor: &crate::context::ProvenFactor, constraint: &FactorConstraint) -> bool {
    factor.factor_type.class() == constraint.class
        && (constraint.types.is_empty() || constraint.types.contains(&factor.factor_type))
        && (!constraint.phishing_resistant || factor.phishing_resistant)
        && (!constraint.hardware_protected || factor.hardware_protected)
        && (!constraint.device_bound || factor.device_bound)
        && (!constraint.user_presence || factor.user_presence)
        && (!constraint.user_verification || factor.user_verification)
}

/// "one more factor: possession, phishing-resistant".
fn describe(constraint: &FactorConstraint) -> String {
    let mut parts = vec![constraint.class.as_str().to_owned()];
    if !constraint.types.is_empty() {
        parts.push(
            constraint
                .types
                .iter()
                .map(|t| match t {
                    FactorType::Password => "password",
                    FactorType::Totp => "TOTP",
                    FactorType::Fastpass => "FastPass",
                    FactorType::SecurityKey => "security key",
                })
                .collect::<Vec<_>>()
                .join(" or "),
        );
    }
    for (wanted, name) in [
        (constraint.phishing_resistant, "phishing-resistant"),
        (constraint.hardware_protected, "hardware-protected"),
        (constraint.device_bound, "device-bound"),
        (constraint.user_presence, "user presence"),
        (constraint.user_verification, "user verification"),
    ] {
        if wanted {
            parts.push(name.to_owned());
        }
    }
    format!("one more factor: {}", parts.join(", "))
}

/// A constraint as the API shows it.
pub fn constraint_to_proto(constraint: &FactorConstraint) -> pb::FactorConstraint {
    let FactorConstraint {
        class,
        types,
        phishing_resistant,
        hardware_protected,
        device_bound,
        user_presence,
        user_verification,
    } = constraint;
    pb::FactorConstraint {
        class: match class {
            FactorClass::Knowledge => pb::FactorClass::Knowledge,
            FactorClass::Possession => pb::FactorClass::Possession,
            FactorClass::Inherence => pb::FactorClass::Inherence,
        } as i32,
        types: types
            .iter()
            .map(|t| {
                (match t {
                    FactorType::Password => pb::FactorType::Password,
                    FactorType::Totp => pb::FactorType::Totp,
                    FactorType::Fastpass => pb::FactorType::Fastpass,
                    FactorType::SecurityKey => pb::FactorType::SecurityKey,
                }) as i32
            })
            .collect(),
        phishing_resistant: *phishing_resistant,
        hardware_protected: *hardware_protected,
        device_bound: *device_bound,
        user_presence: *user_presence,
        user_verification: *user_verification,
    }
}

fn policy_type(policy_type: PolicyType) -> pb::PolicyType {
    match policy_type {
        PolicyType::GlobalSession => pb::PolicyType::GlobalSession,
        PolicyType::Access => pb::PolicyType::Access,
    }
}

fn skipped_rule(rule: &CompiledRule, earlier_matched: bool) -> pb::RuleTrace {
    pb::RuleTrace {
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        priority: rule.priority,
        status: if rule.active {
            pb::RuleStatus::Active
        } else {
            pb::RuleStatus::Inactive
        } as i32,
        result: pb::MatchResult::NotEvaluated as i32,
        reason: if !rule.active {
            "the rule is inactive"
        } else if earlier_matched {
            "an earlier rule matched"
        } else {
            "not evaluated"
        }
        .to_owned(),
        conditions: Vec::new(),
    }
}

fn rule_trace(rule: &CompiledRule, result: Match, conditions: Vec<pb::ConditionTrace>) -> pb::RuleTrace {
    pb::RuleTrace {
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        priority: rule.priority,
        status: pb::RuleStatus::Active as i32,
        result: result.result() as i32,
        reason: match result {
            Match::Yes if rule.catch_all => "the catch-all rule matches every sign-in".to_owned(),
            Match::Yes => "every condition matched".to_owned(),
            Match::No => "a condition did not match".to_owned(),
            Match::Undefined => "a condition could not be decided, so the rule does not match".to_owned(),
        },
        conditions,
    }
}
