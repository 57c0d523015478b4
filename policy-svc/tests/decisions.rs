//! Sign-in decisions through `Evaluate` and `Simulate`, table-driven over one configuration that
//! exercises rule order, every condition kind, include and exclude, the catch-all, assurance with
//! and without grace, zones through proxy chains, and global plus app policies combined.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, SIGN_IN_CONFIGURATION, apply, context, factor, managed_mac, reason};
use portcullis_proto::policy::v1 as pb;

/// One case: a context, and what must come of it.
struct Case {
    name: &'static str,
    context: pb::SignInContext,
    outcome: pb::Outcome,
    /// The access rule that decided (empty: none, the decision came earlier).
    rule: &'static str,
    reason_code: &'static str,
}

fn with_factors(mut context: pb::SignInContext, factors: &[pb::ProvenFactor]) -> pb::SignInContext {
    context.factors = factors.to_vec();
    context
}

fn with_device(mut context: pb::SignInContext, device: pb::DeviceContext) -> pb::SignInContext {
    context.device = Some(device);
    context
}

fn with_profile(mut context: pb::SignInContext, key: &str, value: &str) -> pb::SignInContext {
    context
        .user
        .as_mut()
        .unwrap()
        .profile
        .insert(key.to_owned(), value.to_owned());
    context
}

fn forwarded(mut context: pb::SignInContext, chain: &[&str]) -> pb::SignInContext {
    context.network.as_mut().unwrap().forwarded_for = chain.iter().map(|s| (*s).to_owned()).collect();
    context
}

/// `factor`, proven `seconds` ago.
fn aged(mut factor: pb::ProvenFactor, seconds: i64) -> pb::ProvenFactor {
    let now = service_kit::clock::now_micros();
    factor.verify_time = Some(service_kit::clock::timestamp(now - seconds * 1_000_000));
    factor
}

/// `context` continuing a session last active `seconds` ago.
fn idle(mut context: pb::SignInContext, seconds: i64) -> pb::SignInContext {
    let now = service_kit::clock::now_micros();
    context.session_last_activity_time = Some(service_kit::clock::timestamp(now - seconds * 1_000_000));
    context
}

fn fastpass() -> pb::ProvenFactor {
    factor(pb::FactorType::Fastpass, true)
}

fn cases() -> Vec<Case> {
    use pb::FactorType::{Password, Totp};
    use pb::Outcome::{Allow, Challenge, Deny};
    let outside = "192.0.2.10";
    let office = "198.51.100.20";
    let eng = [("g-eng", "Engineering")];
    vec![
        Case {
            name: "an engineer on a compliant managed Mac signs in with FastPass alone",
            context: with_factors(
                with_device(context("portal", "u-ann", &eng, outside), managed_mac("d1", "14.2.1")),
                &[fastpass()],
            ),
            outcome: Allow,
            rule: "Engineers on managed Macs",
            reason_code: "ALLOWED",
        },
        Case {
            name: "the same engineer without FastPass is asked for a phishing-resistant possession factor",
            context: with_device(context("portal", "u-ann", &eng, outside), managed_mac("d1", "14.2.1")),
            outcome: Challenge,
            rule: "Engineers on managed Macs",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "an excluded user falls through to the next rule",
            context: with_factors(
                with_device(
                    context("portal", "u-mallory", &eng, outside),
                    managed_mac("d2", "14.2.1"),
                ),
                &[fastpass()],
            ),
            outcome: Challenge,
            rule: "Everyone else",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "a Mac below the assurance minimum falls through to the next rule",
            context: with_factors(
                with_device(context("portal", "u-ann", &eng, outside), managed_mac("d3", "13.6")),
                &[fastpass()],
            ),
            outcome: Challenge,
            rule: "Everyone else",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "a suspended device does not count as managed",
            context: with_factors(
                with_device(context("portal", "u-ann", &eng, outside), {
                    let mut device = managed_mac("d1", "14.2.1");
                    device.status = "SUSPENDED".to_owned();
                    device
                }),
                &[fastpass()],
            ),
            outcome: Challenge,
            rule: "Everyone else",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "password and TOTP satisfy the rule for everyone else",
            context: with_factors(
                context("portal", "u-bob", &[], outside),
                &[factor(Password, false), factor(Totp, false)],
            ),
            outcome: Allow,
            rule: "Everyone else",
            reason_code: "ALLOWED",
        },
        Case {
            name: "factors proven longer ago than the rule's re-authentication frequency do not count",
            context: with_factors(
                context("portal", "u-bob", &[], outside),
                &[
                    aged(factor(Password, false), 13 * 3600),
                    aged(factor(Totp, false), 13 * 3600),
                ],
            ),
            outcome: Challenge,
            rule: "Everyone else",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "a session idle longer than the rule's inactivity period must prove its factors again",
            context: idle(
                with_factors(
                    context("portal", "u-bob", &[], outside),
                    &[
                        aged(factor(Password, false), 2 * 3600),
                        aged(factor(Totp, false), 2 * 3600),
                    ],
                ),
                2 * 3600,
            ),
            outcome: Challenge,
            rule: "Everyone else",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "a session active within the inactivity period keeps its factors",
            context: idle(
                with_factors(
                    context("portal", "u-bob", &[], outside),
                    &[
                        aged(factor(Password, false), 2 * 3600),
                        aged(factor(Totp, false), 2 * 3600),
                    ],
                ),
                600,
            ),
            outcome: Allow,
            rule: "Everyone else",
            reason_code: "ALLOWED",
        },
        Case {
            name: "an engineer on a managed Windows PC is not on the Mac rule's platform",
            context: with_factors(
                with_device(context("portal", "u-ann", &eng, outside), {
                    let mut device = managed_mac("d-win", "10.0.22631");
                    device.platform = portcullis_proto::device::v1::Platform::Windows as i32;
                    device
                }),
                &[fastpass()],
            ),
            outcome: Challenge,
            rule: "Everyone else",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "the office network allows one factor",
            context: with_factors(context("portal", "u-bob", &[], office), &[factor(Password, false)]),
            outcome: Allow,
            rule: "Office network",
            reason_code: "ALLOWED",
        },
        Case {
            name: "the office network is recognised through a chain of trusted proxies",
            context: with_factors(
                forwarded(context("portal", "u-bob", &[], "10.0.0.1"), &["198.51.100.7, 10.0.0.2"]),
                &[factor(Password, false)],
            ),
            outcome: Allow,
            rule: "Office network",
            reason_code: "ALLOWED",
        },
        Case {
            name: "a forged X-Forwarded-For from an untrusted peer is ignored",
            context: with_factors(
                forwarded(context("portal", "u-bob", &[], outside), &["198.51.100.7"]),
                &[factor(Password, false)],
            ),
            outcome: Challenge,
            rule: "Everyone else",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "a blocked zone is denied before any policy",
            context: with_factors(
                context("portal", "u-bob", &[], "203.0.113.66"),
                &[factor(Password, false), factor(Totp, false)],
            ),
            outcome: Deny,
            rule: "",
            reason_code: "NETWORK_ZONE_BLOCKED",
        },
        Case {
            name: "a blocked address behind a trusted proxy is denied too",
            context: forwarded(context("portal", "u-bob", &[], "10.0.0.1"), &["203.0.113.66"]),
            outcome: Deny,
            rule: "",
            reason_code: "NETWORK_ZONE_BLOCKED",
        },
        Case {
            name: "high risk is denied by the first rule whatever else holds",
            context: {
                let mut c = with_factors(
                    with_device(context("portal", "u-ann", &eng, office), managed_mac("d1", "14.2.1")),
                    &[fastpass()],
                );
                c.risk_level = pb::RiskLevel::High as i32;
                c
            },
            outcome: Deny,
            rule: "Deny high risk",
            reason_code: "RULE_DENY",
        },
        Case {
            name: "an expression over the profile denies finance staff",
            context: with_factors(
                with_profile(context("portal", "u-fay", &[], office), "department", "Finance"),
                &[factor(Password, false)],
            ),
            outcome: Deny,
            rule: "Finance by expression",
            reason_code: "RULE_DENY",
        },
        Case {
            name: "the expression's group exception lets auditors through",
            context: with_factors(
                with_profile(
                    context("portal", "u-fay", &[("g-aud", "Auditors")], office),
                    "department",
                    "Finance",
                ),
                &[factor(Password, false)],
            ),
            outcome: Allow,
            rule: "Office network",
            reason_code: "ALLOWED",
        },
        Case {
            name: "a missing profile attribute never makes the expression match",
            context: with_factors(context("portal", "u-gus", &[], office), &[factor(Password, false)]),
            outcome: Allow,
            rule: "Office network",
            reason_code: "ALLOWED",
        },
        Case {
            name: "a contractor's global session policy demands a password and MFA even where the app asks one factor",
            context: with_factors(
                context("portal", "u-con", &[("g-contractors", "Contractors")], office),
                &[fastpass()],
            ),
            outcome: Challenge,
            rule: "Office network",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "a contractor with password and FastPass satisfies both policies",
            context: with_factors(
                context("portal", "u-con", &[("g-contractors", "Contractors")], office),
                &[factor(Password, false), fastpass()],
            ),
            outcome: Allow,
            rule: "Office network",
            reason_code: "ALLOWED",
        },
        Case {
            name: "a failing device in its grace period is allowed and told how to fix it",
            context: with_factors(
                with_device(
                    context("portal", "u-gia", &[("g-grace", "Grace")], outside),
                    managed_mac("d9", "14.5"),
                ),
                &[fastpass()],
            ),
            outcome: Allow,
            rule: "Grace for Macs",
            reason_code: "ALLOWED_IN_GRACE_PERIOD",
        },
        Case {
            name: "a device without an id gets no grace period, having no failure history to count from",
            context: with_factors(
                with_device(
                    context("portal", "u-gia", &[("g-grace", "Grace")], outside),
                    managed_mac("", "14.5"),
                ),
                &[fastpass()],
            ),
            outcome: Challenge,
            rule: "Everyone else",
            reason_code: "FACTORS_REQUIRED",
        },
        Case {
            name: "a device failing the vault's assurance policy is denied with its remediation",
            context: with_factors(
                with_device(context("vault", "u-ann", &eng, office), managed_mac("d3", "13.6")),
                &[fastpass()],
            ),
            outcome: Deny,
            rule: "Catch-all Rule",
            reason_code: "DEVICE_ASSURANCE_FAILED",
        },
        Case {
            name: "no device at all is denied by the vault's catch-all",
            context: with_factors(context("vault", "u-ann", &eng, office), &[factor(Password, false)]),
            outcome: Deny,
            rule: "Catch-all Rule",
            reason_code: "RULE_DENY",
        },
        Case {
            name: "an unknown app is denied",
            context: context("nobody", "u-ann", &eng, office),
            outcome: Deny,
            rule: "",
            reason_code: "APP_NOT_FOUND",
        },
    ]
}

#[tokio::test]
async fn every_case_decides_as_the_policies_say() {
    let harness = Harness::start().await;
    apply(&mut harness.admin().await, SIGN_IN_CONFIGURATION).await;
    let mut gateway = harness.gateway().await;
    let mut failures = Vec::new();
    for case in cases() {
        let decision = gateway
            .evaluate(pb::EvaluateRequest {
                context: Some(case.context.clone()),
            })
            .await
            .unwrap()
            .into_inner();
        let access_rule = decision
            .matched
            .iter()
            .find(|m| m.policy_type == pb::PolicyType::Access as i32)
            .map(|m| m.rule_name.as_str())
            .unwrap_or("");
        if decision.outcome != case.outcome as i32
            || access_rule != case.rule
            || decision.reason_code != case.reason_code
        {
            failures.push(format!(
                "{}: got {:?} by {access_rule:?} ({}: {}), want {:?} by {:?} ({})",
                case.name,
                pb::Outcome::try_from(decision.outcome),
                decision.reason_code,
                decision.reason,
                case.outcome,
                case.rule,
                case.reason_code
            ));
        }
        assert!(
            !decision.event_id.is_empty(),
            "{}: every decision is recorded",
            case.name
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    harness.stop().await;
}

#[tokio::test]
async fn a_challenge_says_what_would_satisfy_the_rule() {
    let harness = Harness::start().await;
    apply(&mut harness.admin().await, SIGN_IN_CONFIGURATION).await;
    let mut gateway = harness.gateway().await;
    let decision = gateway
        .evaluate(pb::EvaluateRequest {
            context: Some(with_device(
                context("portal", "u-ann", &[("g-eng", "Engineering")], "192.0.2.10"),
                managed_mac("d1", "14.2.1"),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision.outcome, pb::Outcome::Challenge as i32);
    let descriptions: Vec<_> = decision.requirements.iter().map(|r| r.description.as_str()).collect();
    assert_eq!(
        descriptions,
        ["one more factor: possession, FastPass, phishing-resistant, device-bound"]
    );
    let constraint = decision.requirements[0].constraint.as_ref().unwrap();
    assert!(constraint.phishing_resistant && constraint.device_bound);

    // Password only, outside the office: TOTP is what is missing.
    let decision = gateway
        .evaluate(pb::EvaluateRequest {
            context: Some(with_factors(
                context("portal", "u-bob", &[], "192.0.2.10"),
                &[factor(pb::FactorType::Password, false)],
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let descriptions: Vec<_> = decision.requirements.iter().map(|r| r.description.as_str()).collect();
    assert_eq!(descriptions, ["one more factor: possession, TOTP"]);
    harness.stop().await;
}

#[tokio::test]
async fn an_allowed_sign_in_carries_the_session_lifetime_of_its_global_session_rule() {
    let harness = Harness::start().await;
    apply(&mut harness.admin().await, SIGN_IN_CONFIGURATION).await;
    let mut gateway = harness.gateway().await;
    let contractor = gateway
        .evaluate(pb::EvaluateRequest {
            context: Some(with_factors(
                context("portal", "u-con", &[("g-contractors", "Contractors")], "198.51.100.20"),
                &[factor(pb::FactorType::Password, false), fastpass()],
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(contractor.outcome, pb::Outcome::Allow as i32);
    assert_eq!(contractor.session_idle_timeout.unwrap().seconds, 900);
    assert_eq!(contractor.session_max_lifetime.unwrap().seconds, 3600);
    assert_eq!(contractor.matched[0].policy_name, "Contractors");
    assert_eq!(contractor.matched[0].rule_name, "Contractors need MFA");
    harness.stop().await;
}

#[tokio::test]
async fn a_denied_device_hears_the_remediation_of_the_assurance_policy_it_fails() {
    let harness = Harness::start().await;
    apply(&mut harness.admin().await, SIGN_IN_CONFIGURATION).await;
    let decision = harness
        .gateway()
        .await
        .evaluate(pb::EvaluateRequest {
            context: Some(with_factors(
                with_device(
                    context("vault", "u-ann", &[], "198.51.100.20"),
                    managed_mac("d3", "13.6"),
                ),
                &[fastpass()],
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision.outcome, pb::Outcome::Deny as i32);
    assert_eq!(
        decision.remediation,
        ["Update macOS to 14 or later in System Settings."]
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_grace_period_counted_in_days_starts_when_the_device_first_fails() {
    let harness = Harness::start().await;
    apply(&mut harness.admin().await, SIGN_IN_CONFIGURATION).await;
    let mut gateway = harness.gateway().await;
    let request = || pb::EvaluateRequest {
        context: Some(with_factors(
            with_device(
                context("portal", "u-gia", &[("g-grace", "Grace")], "192.0.2.10"),
                managed_mac("d-grace", "14.5"),
            ),
            &[fastpass()],
        )),
    };
    let first = gateway.evaluate(request()).await.unwrap().into_inner();
    let second = gateway.evaluate(request()).await.unwrap().into_inner();
    assert_eq!(first.reason_code, "ALLOWED_IN_GRACE_PERIOD");
    assert_eq!(first.remediation, ["Update macOS to 15 within a day."]);
    let until = first.grace_until.unwrap();
    // A day from the first failure, and the second decision keeps that deadline.
    let now = service_kit::clock::now_micros() / 1_000_000;
    assert!((until.seconds - now - 86_400).abs() < 30, "{until:?}");
    assert_eq!(second.grace_until, first.grace_until);
    harness.stop().await;
}

#[tokio::test]
async fn simulate_explains_every_policy_rule_and_condition_including_expressions() {
    let harness = Harness::start().await;
    apply(&mut harness.admin().await, SIGN_IN_CONFIGURATION).await;
    let response = harness
        .viewer()
        .await
        .simulate(pb::SimulateRequest {
            context: Some(with_factors(
                with_profile(
                    context("portal", "u-fay", &[], "198.51.100.20"),
                    "department",
                    "Finance",
                ),
                &[factor(pb::FactorType::Password, false)],
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.decision.unwrap().outcome, pb::Outcome::Deny as i32);
    assert_eq!(response.resolved_client_address, "198.51.100.20");
    let portal = response
        .policies
        .iter()
        .find(|p| p.policy_name == "Portal access")
        .expect("the app's policy is explained");
    let rule = |name: &str| portal.rules.iter().find(|r| r.rule_name == name).unwrap();
    assert_eq!(rule("Deny high risk").result, pb::MatchResult::NotMatch as i32);
    let finance = rule("Finance by expression");
    assert_eq!(finance.result, pb::MatchResult::Match as i32);
    assert_eq!(finance.conditions[0].condition, "expression");
    assert!(
        finance.conditions[0].reason.contains("is true"),
        "{}",
        finance.conditions[0].reason
    );
    assert_eq!(rule("Office network").result, pb::MatchResult::NotEvaluated as i32);
    // Contractors' global policy does not apply; the default does.
    let contractors = response
        .policies
        .iter()
        .find(|p| p.policy_name == "Contractors")
        .unwrap();
    assert_eq!(contractors.result, pb::MatchResult::NotMatch as i32);

    // Without the attribute, the expression is UNDEFINED with the reason, and the rule does not match.
    let response = harness
        .viewer()
        .await
        .simulate(pb::SimulateRequest {
            context: Some(context("portal", "u-gus", &[], "198.51.100.20")),
        })
        .await
        .unwrap()
        .into_inner();
    let portal = response
        .policies
        .iter()
        .find(|p| p.policy_name == "Portal access")
        .unwrap();
    let finance = portal
        .rules
        .iter()
        .find(|r| r.rule_name == "Finance by expression")
        .unwrap();
    assert_eq!(finance.result, pb::MatchResult::Undefined as i32);
    assert_eq!(finance.conditions[0].result, pb::MatchResult::Undefined as i32);
    assert!(
        finance.conditions[0].reason.contains("user.profile.department"),
        "{}",
        finance.conditions[0].reason
    );
    harness.stop().await;
}

#[tokio::test]
async fn every_decision_is_recorded_as_an_evaluate_sign_on_event() {
    let harness = Harness::start().await;
    apply(&mut harness.admin().await, SIGN_IN_CONFIGURATION).await;
    let mut gateway = harness.gateway().await;
    let mut ids = Vec::new();
    for user in ["u-1", "u-2", "u-1"] {
        let decision = gateway
            .evaluate(pb::EvaluateRequest {
                context: Some(context("portal", user, &[], "198.51.100.20")),
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(decision.event_id);
    }
    let mut viewer = harness.viewer().await;
    // Written in batches, shortly after.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = viewer
            .list_decision_events(pb::ListDecisionEventsRequest {
                page_size: 10,
                page_token: String::new(),
                filter: "user_id = \"u-1\"".to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        if events.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, ids[2], "newest first");
    assert_eq!(events[1].id, ids[0]);
    assert_eq!(events[0].r#type, "policy.evaluate_sign_on");
    assert_eq!(events[0].outcome, pb::Outcome::Challenge as i32);
    assert_eq!(events[0].matched.len(), 2);
    let bad = viewer
        .list_decision_events(pb::ListDecisionEventsRequest {
            filter: "color = \"red\"".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad), "INVALID_FILTER");
    harness.stop().await;
}

#[tokio::test]
async fn bad_contexts_are_refused_with_the_field_named() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let mut no_address = context("portal", "u-1", &[], "not an address");
    let status = gateway
        .evaluate(pb::EvaluateRequest {
            context: Some(no_address.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("context.network.client_address"),
        "{}",
        status.message()
    );
    no_address.network = None;
    let status = gateway
        .evaluate(pb::EvaluateRequest {
            context: Some(no_address),
        })
        .await
        .unwrap_err();
    assert!(status.message().contains("context.network"), "{}", status.message());
    let status = gateway
        .evaluate(pb::EvaluateRequest { context: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let mut future = factor(pb::FactorType::Password, false);
    future.verify_time = Some(service_kit::clock::timestamp(
        service_kit::clock::now_micros() + 3_600_000_000,
    ));
    let status = gateway
        .evaluate(pb::EvaluateRequest {
            context: Some(with_factors(context("portal", "u-1", &[], "192.0.2.1"), &[future])),
        })
        .await
        .unwrap_err();
    assert!(
        status.message().contains("context.factors.verify_time"),
        "{}",
        status.message()
    );
    harness.stop().await;
}
