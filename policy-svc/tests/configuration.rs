//! Managing the configuration: apps and their secrets, zones, assurance policies, policies and
//! rules through the API; policy as code (export, apply, dry run, atomicity); and replicas on
//! one database seeing each other's changes within a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, SIGN_IN_CONFIGURATION, apply, context, reason};
use portcullis_proto::device::v1::Platform;
use portcullis_proto::policy::v1 as pb;

fn access_policy(name: &str) -> pb::CreatePolicyRequest {
    pb::CreatePolicyRequest {
        policy: Some(pb::Policy {
            name: name.to_owned(),
            r#type: pb::PolicyType::Access as i32,
            ..Default::default()
        }),
        catch_all_access_actions: None,
        catch_all_session_actions: None,
    }
}

fn allow_rule(name: &str, priority: i32) -> pb::Rule {
    pb::Rule {
        name: name.to_owned(),
        priority,
        conditions: Some(pb::RuleConditions::default()),
        access_actions: Some(pb::AccessActions {
            access: pb::Access::Allow as i32,
            factor_mode: pb::FactorMode::OneFactor as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn app(name: &str, client_type: pb::ClientType, policy_id: &str) -> pb::App {
    pb::App {
        name: name.to_owned(),
        client_type: client_type as i32,
        redirect_uris: vec!["https://app.example.com/callback".to_owned()],
        access_policy_id: policy_id.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_new_policy_ends_with_a_catch_all_rule_that_cannot_be_deleted_and_rules_keep_their_order() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    let policy = admin.create_policy(access_policy("Apps")).await.unwrap().into_inner();
    assert_eq!(policy.rules.len(), 1);
    let catch_all = policy.rules[0].clone();
    assert!(catch_all.catch_all);
    assert_eq!(
        catch_all.access_actions.as_ref().unwrap().access,
        pb::Access::Deny as i32,
        "a new policy denies until told otherwise"
    );

    for (name, priority) in [("B", 0), ("C", 0), ("A", 1)] {
        admin
            .create_rule(pb::CreateRuleRequest {
                policy_id: policy.id.clone(),
                rule: Some(allow_rule(name, priority)),
            })
            .await
            .unwrap();
    }
    let rules = admin
        .get_policy(pb::GetPolicyRequest { id: policy.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .rules;
    let order: Vec<_> = rules.iter().map(|r| (r.name.as_str(), r.priority)).collect();
    assert_eq!(order, [("A", 1), ("B", 2), ("C", 3), ("Catch-all Rule", 4)]);

    let refused = admin
        .delete_rule(pb::DeleteRuleRequest {
            policy_id: policy.id.clone(),
            id: catch_all.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&refused), "BUILT_IN");

    // Moving C first shifts the others down.
    let mut c = rules.iter().find(|r| r.name == "C").unwrap().clone();
    c.priority = 1;
    admin
        .update_rule(pb::UpdateRuleRequest { rule: Some(c) })
        .await
        .unwrap();
    let order: Vec<_> = admin
        .get_policy(pb::GetPolicyRequest { id: policy.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .rules
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(order, ["C", "A", "B", "Catch-all Rule"]);
    harness.stop().await;
}

#[tokio::test]
async fn a_policy_holds_at_most_one_hundred_rules() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    let policy = admin.create_policy(access_policy("Big")).await.unwrap().into_inner();
    for n in 0..99 {
        admin
            .create_rule(pb::CreateRuleRequest {
                policy_id: policy.id.clone(),
                rule: Some(allow_rule(&format!("rule {n}"), 0)),
            })
            .await
            .unwrap();
    }
    let refused = admin
        .create_rule(pb::CreateRuleRequest {
            policy_id: policy.id.clone(),
            rule: Some(allow_rule("one too many", 0)),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "TOO_MANY_RULES");
    harness.stop().await;
}

#[tokio::test]
async fn a_confidential_app_secret_is_shown_once_stored_hashed_and_verified_for_the_gateway() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    let policy = admin.create_policy(access_policy("Apps")).await.unwrap().into_inner();
    let created = admin
        .create_app(pb::CreateAppRequest {
            app: Some(app("Wiki", pb::ClientType::Confidential, &policy.id)),
        })
        .await
        .unwrap()
        .into_inner();
    let secret = created.client_secret.clone();
    let client_id = created.app.unwrap().client_id;
    assert!(secret.len() >= 43, "256 bits");
    let mut gateway = harness.gateway().await;
    let verify = |secret: String| pb::VerifyClientSecretRequest {
        client_id: client_id.clone(),
        client_secret: secret,
    };
    assert!(
        gateway
            .verify_client_secret(verify(secret.clone()))
            .await
            .unwrap()
            .into_inner()
            .valid
    );
    assert!(
        !gateway
            .verify_client_secret(verify("guess".into()))
            .await
            .unwrap()
            .into_inner()
            .valid
    );
    let looked_up = gateway
        .lookup_app(pb::LookupAppRequest {
            client_id: client_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(looked_up.name, "Wiki");
    // The export never carries it.
    let exported = harness
        .viewer()
        .await
        .export_configuration(pb::ExportConfigurationRequest::default())
        .await
        .unwrap()
        .into_inner()
        .document;
    assert!(!exported.contains(&secret));

    let rotated = admin
        .rotate_app_secret(pb::RotateAppSecretRequest {
            id: looked_up.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !gateway
            .verify_client_secret(verify(secret))
            .await
            .unwrap()
            .into_inner()
            .valid
    );
    assert!(
        gateway
            .verify_client_secret(verify(rotated.client_secret))
            .await
            .unwrap()
            .into_inner()
            .valid
    );

    let public = admin
        .create_app(pb::CreateAppRequest {
            app: Some(app("SPA", pb::ClientType::Public, &policy.id)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(public.client_secret.is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn bad_apps_are_refused_with_the_field_named() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    let policy = admin.create_policy(access_policy("Apps")).await.unwrap().into_inner();
    for (uri, why) in [
        ("http://evil.example.com/cb", "loopback"),
        ("https://app.example.com/cb#frag", "fragment"),
        ("/relative", "absolute"),
    ] {
        let mut bad = app("Bad", pb::ClientType::Public, &policy.id);
        bad.redirect_uris = vec![uri.to_owned()];
        let status = admin
            .create_app(pb::CreateAppRequest { app: Some(bad) })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{uri}");
        assert!(status.message().contains(why), "{uri}: {}", status.message());
    }
    let status = admin
        .create_app(pb::CreateAppRequest {
            app: Some(app("No policy", pb::ClientType::Public, "missing")),
        })
        .await
        .unwrap_err();
    assert!(
        status.message().contains("app.access_policy_id"),
        "{}",
        status.message()
    );
    admin
        .create_app(pb::CreateAppRequest {
            app: Some(app("Twice", pb::ClientType::Public, &policy.id)),
        })
        .await
        .unwrap();
    let status = admin
        .create_app(pb::CreateAppRequest {
            app: Some(app("Twice", pb::ClientType::Public, &policy.id)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    harness.stop().await;
}

#[tokio::test]
async fn what_a_rule_or_app_names_cannot_be_deleted() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    apply(&mut admin, SIGN_IN_CONFIGURATION).await;
    let assurance = admin
        .list_device_assurance_policies(pb::ListDeviceAssurancePoliciesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .policies;
    let in_use = assurance.iter().find(|p| p.name == "macOS 14").unwrap();
    let refused = admin
        .delete_device_assurance_policy(pb::DeleteDeviceAssurancePolicyRequest { id: in_use.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&refused), "POLICY_IN_USE");
    assert!(
        refused.message().contains("Engineers on managed Macs"),
        "{}",
        refused.message()
    );

    let zones = admin
        .list_network_zones(pb::ListNetworkZonesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .zones;
    let office = zones.iter().find(|z| z.name == "Office").unwrap();
    let refused = admin
        .delete_network_zone(pb::DeleteNetworkZoneRequest { id: office.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "POLICY_IN_USE");

    let policies = admin
        .list_policies(pb::ListPoliciesRequest {
            r#type: pb::PolicyType::Access as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .policies;
    let portal = policies.iter().find(|p| p.name == "Portal access").unwrap();
    let refused = admin
        .delete_policy(pb::DeletePolicyRequest { id: portal.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "POLICY_IN_USE");

    // A blocked zone nobody names can go.
    let blocked = zones.iter().find(|z| z.name == "Blocked").unwrap();
    admin
        .delete_network_zone(pb::DeleteNetworkZoneRequest { id: blocked.id.clone() })
        .await
        .unwrap();
    harness.stop().await;
}

#[tokio::test]
async fn assurance_policies_and_zones_are_checked_when_saved() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    let status = admin
        .create_network_zone(pb::CreateNetworkZoneRequest {
            zone: Some(pb::NetworkZone {
                name: "Typo".into(),
                kind: pb::NetworkZoneKind::Policy as i32,
                gateways: vec!["10.0.0.0/33".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert!(status.message().contains("zone.gateways"), "{}", status.message());
    let status = admin
        .create_device_assurance_policy(pb::CreateDeviceAssurancePolicyRequest {
            policy: Some(pb::DeviceAssurancePolicy {
                name: "Bad version".into(),
                platform: Platform::Macos as i32,
                minimum_os_version: "latest".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let created = admin
        .create_device_assurance_policy(pb::CreateDeviceAssurancePolicyRequest {
            policy: Some(pb::DeviceAssurancePolicy {
                name: "Windows 11".into(),
                platform: Platform::Windows as i32,
                minimum_os_version: "10.0.22631.2861".into(),
                grace_period: Some(pb::device_assurance_policy::GracePeriod::GraceDuration(
                    prost_types::Duration {
                        seconds: 7 * 86_400,
                        nanos: 0,
                    },
                )),
                remediation: "Run Windows Update.".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.minimum_os_version, "10.0.22631.2861");
    harness.stop().await;
}

#[tokio::test]
async fn an_expression_is_checked_when_saved_and_validate_expression_says_where_it_is_wrong() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    let policy = admin.create_policy(access_policy("Expr")).await.unwrap().into_inner();
    let mut rule = allow_rule("Broken", 0);
    rule.conditions.as_mut().unwrap().expression = "user.profile.department ==\n  'Finance' &&".to_owned();
    let status = admin
        .create_rule(pb::CreateRuleRequest {
            policy_id: policy.id.clone(),
            rule: Some(rule),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_EXPRESSION");

    let mut viewer = harness.viewer().await;
    let answer = viewer
        .validate_expression(pb::ValidateExpressionRequest {
            expression: "user.profile.department ==\n  'Finance' &&".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.valid);
    let error = answer.error.unwrap();
    assert_eq!(error.line, 2, "{error:?}");
    assert!(!error.reason.is_empty());
    let answer = viewer
        .validate_expression(pb::ValidateExpressionRequest {
            expression: "device.provider.oktaVerify.version.versionGreaterThan('1.2')".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.valid, "{:?}", answer.error);
    harness.stop().await;
}

#[tokio::test]
async fn exporting_and_applying_again_changes_nothing_and_dry_run_shows_the_diff() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    let first = apply(&mut admin, SIGN_IN_CONFIGURATION).await;
    assert!(first.applied);
    assert_eq!(
        first.created_secrets.len(),
        1,
        "the confidential Vault app's secret, once"
    );
    assert_eq!(first.created_secrets[0].app_name, "Vault");

    for format in [pb::DocumentFormat::Yaml, pb::DocumentFormat::Json] {
        let exported = admin
            .export_configuration(pb::ExportConfigurationRequest { format: format as i32 })
            .await
            .unwrap()
            .into_inner()
            .document;
        let again = admin
            .apply_configuration(pb::ApplyConfigurationRequest {
                document: exported,
                format: 0,
                dry_run: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(again.changes.is_empty(), "{format:?}: {:?}", again.changes);
        assert!(!again.applied);
        assert!(again.created_secrets.is_empty());
    }

    // Applying the original document again also changes nothing (the Vault secret stays).
    assert!(apply(&mut admin, SIGN_IN_CONFIGURATION).await.changes.is_empty());

    // A dry run of an edit lists the change and changes nothing.
    let edited = SIGN_IN_CONFIGURATION.replace("minimum_os_version: \"14.0\"", "minimum_os_version: \"14.4\"");
    let dry = admin
        .apply_configuration(pb::ApplyConfigurationRequest {
            document: edited.clone(),
            format: pb::DocumentFormat::Yaml as i32,
            dry_run: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!dry.applied);
    assert_eq!(dry.changes.len(), 1, "{:?}", dry.changes);
    assert_eq!(dry.changes[0].kind, "device_assurance_policy");
    assert_eq!(dry.changes[0].name, "macOS 14");
    assert_eq!(dry.changes[0].action, pb::ChangeAction::Update as i32);
    assert_eq!(dry.changes[0].details, ["minimum_os_version: \"14.0\" -> \"14.4\""]);
    let exported = admin
        .export_configuration(pb::ExportConfigurationRequest::default())
        .await
        .unwrap()
        .into_inner()
        .document;
    assert!(
        exported.contains("'14.0'") || exported.contains("\"14.0\""),
        "{exported}"
    );
    let applied = apply(&mut admin, &edited).await;
    assert!(applied.applied);
    assert_eq!(applied.changes.len(), 1);
    harness.stop().await;
}

#[tokio::test]
async fn a_document_that_is_wrong_anywhere_changes_nothing() {
    let harness = Harness::start().await;
    let mut admin = harness.admin().await;
    apply(&mut admin, SIGN_IN_CONFIGURATION).await;
    let before = admin
        .export_configuration(pb::ExportConfigurationRequest::default())
        .await
        .unwrap()
        .into_inner()
        .document;
    // A valid new zone, and a rule naming a zone that does not exist.
    let broken = SIGN_IN_CONFIGURATION
        .replace(
            "network_zones:\n",
            "network_zones:\n  - name: Lab\n    kind: POLICY\n    gateways: [192.0.2.0/24]\n",
        )
        .replace("zones_in: [Office]", "zones_in: [Nowhere]");
    let refused = admin
        .apply_configuration(pb::ApplyConfigurationRequest {
            document: broken,
            format: pb::DocumentFormat::Yaml as i32,
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("Nowhere"), "{}", refused.message());
    let unparsable = admin
        .apply_configuration(pb::ApplyConfigurationRequest {
            document: "apps: [".to_owned(),
            format: pb::DocumentFormat::Yaml as i32,
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&unparsable), "INVALID_DOCUMENT");
    let after = admin
        .export_configuration(pb::ExportConfigurationRequest::default())
        .await
        .unwrap()
        .into_inner()
        .document;
    assert_eq!(before, after);
    harness.stop().await;
}

#[tokio::test]
async fn viewers_read_and_simulate_but_cannot_change_or_evaluate() {
    let harness = Harness::start().await;
    let mut viewer = harness.viewer().await;
    viewer.list_policies(pb::ListPoliciesRequest::default()).await.unwrap();
    let refused = viewer.create_policy(access_policy("Nope")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let refused = viewer
        .evaluate(pb::EvaluateRequest {
            context: Some(context("portal", "u", &[], "192.0.2.1")),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let refused = harness
        .gateway()
        .await
        .create_policy(access_policy("Nope"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    harness.stop().await;
}

#[tokio::test]
async fn a_change_on_one_replica_is_in_force_on_another_within_a_second() {
    let mut harness = Harness::start().await;
    let second = harness.start_replica().await;
    let mut admin = harness.admin().await;
    apply(&mut admin, SIGN_IN_CONFIGURATION).await;
    let mut other = harness.client_of(second, &harness.pki.service("gateway")).await;
    let office_sign_in = || pb::EvaluateRequest {
        context: Some(common::context("portal", "u-bob", &[], "198.51.100.20")),
    };
    // Wait for the first change to arrive, then time a second one.
    let deadline = Instant::now() + Duration::from_secs(2);
    while other.evaluate(office_sign_in()).await.unwrap().into_inner().reason_code == "APP_NOT_FOUND" {
        assert!(Instant::now() < deadline, "the second replica never saw the app");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let blocked =
        SIGN_IN_CONFIGURATION.replace("gateways: [203.0.113.66]", "gateways: [203.0.113.66, 198.51.100.0/24]");
    let started = Instant::now();
    apply(&mut admin, &blocked).await;
    loop {
        let decision = other.evaluate(office_sign_in()).await.unwrap().into_inner();
        if decision.reason_code == "NETWORK_ZONE_BLOCKED" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the change was not in force on the other replica within a second"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    harness.stop().await;
}
