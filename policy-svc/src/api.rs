//! The `portcullis.policy.v1.PolicyService` gRPC service: conversions and calls.

use std::sync::Arc;

use portcullis_proto::policy::v1 as pb;
use portcullis_proto::policy::v1::policy_service_server::PolicyService;
use service_kit::clock::{now_micros, timestamp};
use service_kit::filter::{Field, FieldKind, compile_filter};
use service_kit::page_token::{PageTokens, page_size};
use tonic::{Request, Response, Status};

use crate::compiled::{Compiled, InForce};
use crate::convert::{self, app_to_proto, assurance_to_proto, policy_to_proto, rule_to_proto, zone_to_proto};
use crate::decide::decide;
use crate::decisions::{DecisionLog, EVENT_TYPE};
use crate::document;
use crate::edit;
use crate::error::Error;
use crate::grace::FailureClock;
use crate::model::{Actions, ClientType, Configuration, PolicyType};
use crate::secrets;
use crate::store::{DecisionRecord, Store};
use crate::validate;

/// The service.
#[derive(Debug, Clone)]
pub struct PolicyApi {
    store: Store,
    in_force: InForce,
    failures: FailureClock,
    log: DecisionLog,
    page_tokens: PageTokens,
}

type Reply<T> = Result<Response<T>, Status>;

const DECISION_FILTER_FIELDS: &[Field] = &[
    Field {
        name: "user_id",
        kind: FieldKind::Text { column: "user_id" },
    },
    Field {
        name: "device_id",
        kind: FieldKind::Text { column: "device_id" },
    },
    Field {
        name: "client_id",
        kind: FieldKind::Text { column: "client_id" },
    },
    Field {
        name: "outcome",
        kind: FieldKind::Enum {
            column: "outcome",
            values: &["ALLOW", "DENY", "CHALLENGE"],
        },
    },
];

impl PolicyApi {
    /// Serves from `in_force`, changing through `store`.
    pub fn new(
        store: Store,
        in_force: InForce,
        failures: FailureClock,
        log: DecisionLog,
        page_tokens: PageTokens,
    ) -> Self {
        Self {
            store,
            in_force,
            failures,
            log,
            page_tokens,
        }
    }

    /// Applies `change` to the stored configuration and puts the result in force here at once
    /// (other replicas follow within their poll interval).
    async fn change<T>(&self, change: impl FnOnce(&mut Configuration) -> Result<T, Error>) -> Result<T, Error> {
        let changed = self.store.change(change, validate::configuration).await?;
        if changed.written {
            let compiled = Compiled::build(changed.version, Arc::new(changed.config))
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            self.in_force.replace(compiled);
            self.failures.forget();
        }
        Ok(changed.value)
    }

    fn config(&self) -> Arc<Configuration> {
        self.in_force.get().config.clone()
    }

    /// The type of the policy with this id (rules take their shape from it).
    fn policy_type_of(&self, policy_id: &str) -> Result<PolicyType, Error> {
        self.config()
            .policies
            .get(policy_id)
            .map(|p| p.policy_type)
            .ok_or_else(|| Error::NotFound {
                kind: "policy",
                id: policy_id.to_owned(),
            })
    }

    fn page<T: Clone>(
        &self,
        scope: &str,
        items: impl Iterator<Item = (String, T)>,
        page_size_requested: i32,
        page_token: &str,
    ) -> Result<(Vec<T>, String), Error> {
        let limit = page_size(page_size_requested).map_err(|e| Error::field("page_size", e))?;
        let after = self
            .page_tokens
            .resume(scope, page_token)
            .map_err(|_| Error::InvalidPageToken)?;
        let mut rows: Vec<(String, T)> = items
            .filter(|(id, _)| after.as_deref().is_none_or(|a| id.as_str() > a))
            .take(limit + 1)
            .collect();
        let next = self.page_tokens.next_page(scope, &mut rows, limit, |(id, _)| id);
        Ok((rows.into_iter().map(|(_, t)| t).collect(), next))
    }

    async fn decide_and_explain(
        &self,
        context: Option<pb::SignInContext>,
        trace: Option<&mut Vec<pb::PolicyTrace>>,
    ) -> Result<(crate::decide::Outcome, crate::context::SignIn, i64), Error> {
        let now = now_micros();
        let sign_in = convert::sign_in_from_proto(context, now)?;
        let compiled = self.in_force.get();
        // Only grace periods counted from a first failure need the device's history.
        let failures = match &sign_in.device {
            Some(device) if compiled.grace_from_first_failure && !device.id.is_empty() => {
                Some(self.failures.failures(&device.id).await?)
            }
            _ => None,
        };
        // A device without an id has no history to count from: its grace is over (fail closed).
        let anonymous = sign_in.device.as_ref().is_some_and(|d| d.id.is_empty());
        let since = |policy: &str| {
            if anonymous {
                return Some(i64::MIN);
            }
            failures.as_ref().and_then(|f| f.get(policy).copied())
        };
        let outcome = decide(&compiled, &sign_in, now, &since, trace);
        Ok((outcome, sign_in, now))
    }
}

fn outcome_name(outcome: i32) -> &'static str {
    match pb::Outcome::try_from(outcome) {
        Ok(pb::Outcome::Allow) => "ALLOW",
        Ok(pb::Outcome::Deny) => "DENY",
        Ok(pb::Outcome::Challenge) => "CHALLENGE",
        _ => "UNSPECIFIED",
    }
}

#[tonic::async_trait]
impl PolicyService for PolicyApi {
    async fn create_app(&self, request: Request<pb::CreateAppRequest>) -> Reply<pb::CreateAppResponse> {
        let mut app = convert::app_from_proto(request.into_inner().app)?;
        let now = now_micros();
        app.id = edit::new_id();
        app.create_time = now;
        app.update_time = now;
        if app.client_id.is_empty() {
            app.client_id = secrets::new_client_id().map_err(|_| Error::Corrupt("no randomness".into()))?;
        }
        let mut client_secret = String::new();
        if app.client_type == ClientType::Confidential {
            let (secret, hash) = secrets::generate().map_err(|_| Error::Corrupt("no randomness".into()))?;
            client_secret = secret;
            app.secret_hash = Some(hash);
            app.secret_rotate_time = Some(now);
        }
        let app = self.change(|config| edit::create_app(config, app)).await?;
        Ok(Response::new(pb::CreateAppResponse {
            app: Some(app_to_proto(&app)),
            client_secret,
        }))
    }

    async fn get_app(&self, request: Request<pb::GetAppRequest>) -> Reply<pb::App> {
        let id = request.into_inner().id;
        let config = self.config();
        let app = config.apps.get(&id).ok_or(Error::NotFound { kind: "app", id })?;
        Ok(Response::new(app_to_proto(app)))
    }

    async fn lookup_app(&self, request: Request<pb::LookupAppRequest>) -> Reply<pb::App> {
        let client_id = request.into_inner().client_id;
        let compiled = self.in_force.get();
        let app = compiled.app_by_client_id(&client_id).ok_or(Error::NotFound {
            kind: "app",
            id: client_id,
        })?;
        Ok(Response::new(app_to_proto(app)))
    }

    async fn list_apps(&self, request: Request<pb::ListAppsRequest>) -> Reply<pb::ListAppsResponse> {
        let pb::ListAppsRequest { page_size, page_token } = request.into_inner();
        let config = self.config();
        let (apps, next_page_token) = self.page(
            "apps",
            config.apps.iter().map(|(id, a)| (id.clone(), app_to_proto(a))),
            page_size,
            &page_token,
        )?;
        Ok(Response::new(pb::ListAppsResponse { apps, next_page_token }))
    }

    async fn update_app(&self, request: Request<pb::UpdateAppRequest>) -> Reply<pb::App> {
        let app = convert::app_from_proto(request.into_inner().app)?;
        let now = now_micros();
        let app = self.change(|config| edit::update_app(config, app, now)).await?;
        Ok(Response::new(app_to_proto(&app)))
    }

    async fn delete_app(&self, request: Request<pb::DeleteAppRequest>) -> Reply<()> {
        let id = request.into_inner().id;
        self.change(|config| edit::delete_app(config, &id)).await?;
        Ok(Response::new(()))
    }

    async fn rotate_app_secret(&self, request: Request<pb::RotateAppSecretRequest>) -> Reply<pb::CreateAppResponse> {
        let id = request.into_inner().id;
        let (secret, hash) = secrets::generate().map_err(|_| Error::Corrupt("no randomness".into()))?;
        let now = now_micros();
        let app = self
            .change(|config| {
                let app = config.apps.get_mut(&id).ok_or_else(|| Error::NotFound {
                    kind: "app",
                    id: id.clone(),
                })?;
                if app.client_type != ClientType::Confidential {
                    return Err(Error::field("id", "a public client has no secret"));
                }
                app.secret_hash = Some(hash);
                app.secret_rotate_time = Some(now);
                app.update_time = now;
                Ok(app.clone())
            })
            .await?;
        Ok(Response::new(pb::CreateAppResponse {
            app: Some(app_to_proto(&app)),
            client_secret: secret,
        }))
    }

    async fn verify_client_secret(
        &self,
        request: Request<pb::VerifyClientSecretRequest>,
    ) -> Reply<pb::VerifyClientSecretResponse> {
        let pb::VerifyClientSecretRequest {
            client_id,
            client_secret,
        } = request.into_inner();
        let compiled = self.in_force.get();
        let app = compiled.app_by_client_id(&client_id);
        let valid = app
            .and_then(|a| a.secret_hash.as_deref())
            .is_some_and(|stored| secrets::verify(&client_secret, stored));
        Ok(Response::new(pb::VerifyClientSecretResponse {
            valid,
            app: app.filter(|_| valid).map(app_to_proto),
        }))
    }

    async fn create_network_zone(&self, request: Request<pb::CreateNetworkZoneRequest>) -> Reply<pb::NetworkZone> {
        let mut zone = convert::zone_from_proto(request.into_inner().zone)?;
        let now = now_micros();
        zone.id = edit::new_id();
        zone.create_time = now;
        zone.update_time = now;
        let zone = self.change(|config| Ok(edit::create_zone(config, zone))).await?;
        Ok(Response::new(zone_to_proto(&zone)))
    }

    async fn get_network_zone(&self, request: Request<pb::GetNetworkZoneRequest>) -> Reply<pb::NetworkZone> {
        let id = request.into_inner().id;
        let config = self.config();
        let zone = config.zones.get(&id).ok_or(Error::NotFound {
            kind: "network zone",
            id,
        })?;
        Ok(Response::new(zone_to_proto(zone)))
    }

    async fn list_network_zones(
        &self,
        request: Request<pb::ListNetworkZonesRequest>,
    ) -> Reply<pb::ListNetworkZonesResponse> {
        let pb::ListNetworkZonesRequest { page_size, page_token } = request.into_inner();
        let config = self.config();
        let (zones, next_page_token) = self.page(
            "zones",
            config.zones.iter().map(|(id, z)| (id.clone(), zone_to_proto(z))),
            page_size,
            &page_token,
        )?;
        Ok(Response::new(pb::ListNetworkZonesResponse { zones, next_page_token }))
    }

    async fn update_network_zone(&self, request: Request<pb::UpdateNetworkZoneRequest>) -> Reply<pb::NetworkZone> {
        let zone = convert::zone_from_proto(request.into_inner().zone)?;
        let now = now_micros();
        let zone = self.change(|config| edit::update_zone(config, zone, now)).await?;
        Ok(Response::new(zone_to_proto(&zone)))
    }

    async fn delete_network_zone(&self, request: Request<pb::DeleteNetworkZoneRequest>) -> Reply<()> {
        let id = request.into_inner().id;
        self.change(|config| edit::delete_zone(config, &id)).await?;
        Ok(Response::new(()))
    }

    async fn create_device_assurance_policy(
        &self,
        request: Request<pb::CreateDeviceAssurancePolicyRequest>,
    ) -> Reply<pb::DeviceAssurancePolicy> {
        let mut policy = convert::assurance_from_proto(request.into_inner().policy)?;
        let now = now_micros();
        policy.id = edit::new_id();
        policy.create_time = now;
        policy.update_time = now;
        let policy = self.change(|config| Ok(edit::create_assurance(config, policy))).await?;
        Ok(Response::new(assurance_to_proto(&policy)))
    }

    async fn get_device_assurance_policy(
        &self,
        request: Request<pb::GetDeviceAssurancePolicyRequest>,
    ) -> Reply<pb::DeviceAssurancePolicy> {
        let id = request.into_inner().id;
        let config = self.config();
        let policy = config.assurance.get(&id).ok_or(Error::NotFound {
            kind: "device assurance policy",
            id,
        })?;
        Ok(Response::new(assurance_to_proto(policy)))
    }

    async fn list_device_assurance_policies(
        &self,
        request: Request<pb::ListDeviceAssurancePoliciesRequest>,
    ) -> Reply<pb::ListDeviceAssurancePoliciesResponse> {
        let pb::ListDeviceAssurancePoliciesRequest { page_size, page_token } = request.into_inner();
        let config = self.config();
        let (policies, next_page_token) = self.page(
            "assurance",
            config
                .assurance
                .iter()
                .map(|(id, p)| (id.clone(), assurance_to_proto(p))),
            page_size,
            &page_token,
        )?;
        Ok(Response::new(pb::ListDeviceAssurancePoliciesResponse {
            policies,
            next_page_token,
        }))
    }

    async fn update_device_assurance_policy(
        &self,
        request: Request<pb::UpdateDeviceAssurancePolicyRequest>,
    ) -> Reply<pb::DeviceAssurancePolicy> {
        let policy = convert::assurance_from_proto(request.into_inner().policy)?;
        let now = now_micros();
        let policy = self
            .change(|config| edit::update_assurance(config, policy, now))
            .await?;
        Ok(Response::new(assurance_to_proto(&policy)))
    }

    async fn delete_device_assurance_policy(
        &self,
        request: Request<pb::DeleteDeviceAssurancePolicyRequest>,
    ) -> Reply<()> {
        let id = request.into_inner().id;
        self.change(|config| edit::delete_assurance(config, &id)).await?;
        self.store.forget_assurance_failures(&[id]).await?;
        Ok(Response::new(()))
    }

    async fn create_policy(&self, request: Request<pb::CreatePolicyRequest>) -> Reply<pb::Policy> {
        let pb::CreatePolicyRequest {
            policy,
            catch_all_access_actions,
            catch_all_session_actions,
        } = request.into_inner();
        let mut policy = convert::policy_from_proto(policy)?;
        let now = now_micros();
        policy.id = edit::new_id();
        policy.create_time = now;
        policy.update_time = now;
        let catch_all = match policy.policy_type {
            PolicyType::Access => Actions::Access(match catch_all_access_actions {
                Some(a) => convert::access_actions_from_proto(a)?,
                None => edit::default_catch_all_access(),
            }),
            PolicyType::GlobalSession => Actions::Session(match catch_all_session_actions {
                Some(s) => convert::session_actions_from_proto(s)?,
                None => edit::default_catch_all_session(),
            }),
        };
        let policy = self
            .change(|config| Ok(edit::create_policy(config, policy, catch_all)))
            .await?;
        Ok(Response::new(policy_to_proto(&policy)))
    }

    async fn get_policy(&self, request: Request<pb::GetPolicyRequest>) -> Reply<pb::Policy> {
        let id = request.into_inner().id;
        let config = self.config();
        let policy = config.policies.get(&id).ok_or(Error::NotFound { kind: "policy", id })?;
        Ok(Response::new(policy_to_proto(policy)))
    }

    async fn list_policies(&self, request: Request<pb::ListPoliciesRequest>) -> Reply<pb::ListPoliciesResponse> {
        let wanted = convert::policy_type_from_proto(request.into_inner().r#type)?;
        let config = self.config();
        let mut policies: Vec<_> = config
            .policies
            .values()
            .filter(|p| wanted.is_none_or(|t| t == p.policy_type))
            .collect();
        policies.sort_by(|a, b| {
            (a.policy_type, a.is_default, a.priority, &a.name).cmp(&(b.policy_type, b.is_default, b.priority, &b.name))
        });
        Ok(Response::new(pb::ListPoliciesResponse {
            policies: policies.into_iter().map(policy_to_proto).collect(),
        }))
    }

    async fn update_policy(&self, request: Request<pb::UpdatePolicyRequest>) -> Reply<pb::Policy> {
        let request = request.into_inner();
        let id = request.policy.as_ref().map(|p| p.id.clone()).unwrap_or_default();
        let mut update = request.policy;
        // The type cannot change; take it from the stored policy so callers need not repeat it.
        if let (Some(update), Some(stored)) = (update.as_mut(), self.config().policies.get(&id)) {
            update.r#type = match stored.policy_type {
                PolicyType::GlobalSession => pb::PolicyType::GlobalSession,
                PolicyType::Access => pb::PolicyType::Access,
            } as i32;
            if stored.is_default {
                update.priority = stored.priority;
            }
        }
        let policy = convert::policy_from_proto(update)?;
        let now = now_micros();
        let policy = self.change(|config| edit::update_policy(config, policy, now)).await?;
        Ok(Response::new(policy_to_proto(&policy)))
    }

    async fn delete_policy(&self, request: Request<pb::DeletePolicyRequest>) -> Reply<()> {
        let id = request.into_inner().id;
        self.change(|config| edit::delete_policy(config, &id)).await?;
        Ok(Response::new(()))
    }

    async fn create_rule(&self, request: Request<pb::CreateRuleRequest>) -> Reply<pb::Rule> {
        let pb::CreateRuleRequest { policy_id, rule } = request.into_inner();
        let (_, mut rule) = convert::rule_from_proto(rule, self.policy_type_of(&policy_id)?)?;
        rule.id = edit::new_id();
        let now = now_micros();
        let rule = self
            .change(|config| edit::create_rule(config, &policy_id, rule, now))
            .await?;
        Ok(Response::new(rule_to_proto(&policy_id, &rule)))
    }

    async fn update_rule(&self, request: Request<pb::UpdateRuleRequest>) -> Reply<pb::Rule> {
        let rule = request.into_inner().rule;
        let policy_id = rule.as_ref().map(|r| r.policy_id.clone()).unwrap_or_default();
        let (_, rule) = convert::rule_from_proto(rule, self.policy_type_of(&policy_id)?)?;
        let now = now_micros();
        let rule = self
            .change(|config| edit::update_rule(config, &policy_id, rule, now))
            .await?;
        Ok(Response::new(rule_to_proto(&policy_id, &rule)))
    }

    async fn delete_rule(&self, request: Request<pb::DeleteRuleRequest>) -> Reply<()> {
        let pb::DeleteRuleRequest { policy_id, id } = request.into_inner();
        let now = now_micros();
        self.change(|config| edit::delete_rule(config, &policy_id, &id, now))
            .await?;
        Ok(Response::new(()))
    }

    async fn validate_expression(
        &self,
        request: Request<pb::ValidateExpressionRequest>,
    ) -> Reply<pb::ValidateExpressionResponse> {
        let source = request.into_inner().expression;
        Ok(Response::new(match crate::expression::Expression::parse(&source) {
            Ok(_) => pb::ValidateExpressionResponse {
                valid: true,
                error: None,
            },
            Err(e) => pb::ValidateExpressionResponse {
                valid: false,
                error: Some(pb::ExpressionError {
                    line: e.line,
                    column: e.column,
                    reason: e.reason,
                }),
            },
        }))
    }

    async fn evaluate(&self, request: Request<pb::EvaluateRequest>) -> Reply<pb::Decision> {
        let request_id = service_kit::observe::current_request_id()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let (outcome, sign_in, now) = self.decide_and_explain(request.into_inner().context, None).await?;
        let mut decision = outcome.decision;
        if let Some(device) = &sign_in.device
            && !outcome.first_failures.is_empty()
        {
            self.failures.record(&device.id, &outcome.first_failures, now).await?;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let record = DecisionRecord {
            id: id.clone(),
            time: now,
            client_id: sign_in.client_id,
            user_id: sign_in.user.id,
            device_id: sign_in.device.map(|d| d.id).unwrap_or_default(),
            client_address: outcome.resolved.address.map(|a| a.to_string()).unwrap_or_default(),
            outcome: outcome_name(decision.outcome).to_owned(),
            reason_code: decision.reason_code.clone(),
            reason: decision.reason.clone(),
            matched: serde_json::to_string(
                &decision
                    .matched
                    .iter()
                    .map(|m| {
                        [
                            m.policy_id.as_str(),
                            m.policy_name.as_str(),
                            m.rule_id.as_str(),
                            m.rule_name.as_str(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default(),
            request_id,
        };
        // A decision that cannot be recorded is not given.
        self.log
            .record(record)
            .await
            .map_err(|_| Status::unavailable("the service is stopping"))?;
        decision.event_id = id;
        Ok(Response::new(decision))
    }

    async fn simulate(&self, request: Request<pb::SimulateRequest>) -> Reply<pb::SimulateResponse> {
        let mut policies = Vec::new();
        let (outcome, _, _) = self
            .decide_and_explain(request.into_inner().context, Some(&mut policies))
            .await?;
        Ok(Response::new(pb::SimulateResponse {
            decision: Some(outcome.decision),
            policies,
            resolved_client_address: outcome.resolved.address.map(|a| a.to_string()).unwrap_or_default(),
            zone_ids: outcome.resolved.zones.clone(),
        }))
    }

    async fn list_decision_events(
        &self,
        request: Request<pb::ListDecisionEventsRequest>,
    ) -> Reply<pb::ListDecisionEventsResponse> {
        let pb::ListDecisionEventsRequest {
            page_size: requested,
            page_token,
            filter,
        } = request.into_inner();
        let limit = page_size(requested).map_err(|e| Error::field("page_size", e))?;
        let condition =
            compile_filter(&filter, DECISION_FILTER_FIELDS, 1).map_err(|e| Error::InvalidFilter(e.to_string()))?;
        let scope = format!("decisions\0{filter}");
        let before = self
            .page_tokens
            .resume(&scope, &page_token)
            .map_err(|_| Error::InvalidPageToken)?;
        let mut records = self
            .store
            .list_decisions(&condition, before.as_deref(), limit + 1)
            .await?;
        let next_page_token = self.page_tokens.next_page(&scope, &mut records, limit, |r| &r.id);
        let events = records
            .into_iter()
            .map(|r| {
                let matched: Vec<[String; 4]> = serde_json::from_str(&r.matched).unwrap_or_default();
                pb::DecisionEvent {
                    id: r.id,
                    r#type: EVENT_TYPE.to_owned(),
                    time: Some(timestamp(r.time)),
                    client_id: r.client_id,
                    user_id: r.user_id,
                    device_id: r.device_id,
                    client_address: r.client_address,
                    outcome: pb::Outcome::from_str_name(&format!("OUTCOME_{}", r.outcome)).unwrap_or_default() as i32,
                    reason_code: r.reason_code,
                    reason: r.reason,
                    matched: matched
                        .into_iter()
                        .map(|[policy_id, policy_name, rule_id, rule_name]| pb::MatchedRule {
                            policy_type: 0,
                            policy_id,
                            policy_name,
                            rule_id,
                            rule_name,
                        })
                        .collect(),
                    request_id: r.request_id,
                }
            })
            .collect();
        Ok(Response::new(pb::ListDecisionEventsResponse {
            events,
            next_page_token,
        }))
    }

    async fn export_configuration(
        &self,
        request: Request<pb::ExportConfigurationRequest>,
    ) -> Reply<pb::ExportConfigurationResponse> {
        let format = document::Format::from_proto(request.into_inner().format, "")?;
        let config = self.config();
        let text = document::export(&config, format)?;
        Ok(Response::new(pb::ExportConfigurationResponse {
            document: text,
            format: format.to_proto() as i32,
        }))
    }

    async fn apply_configuration(
        &self,
        request: Request<pb::ApplyConfigurationRequest>,
    ) -> Reply<pb::ApplyConfigurationResponse> {
        let pb::ApplyConfigurationRequest {
            document: text,
            format,
            dry_run,
        } = request.into_inner();
        let format = document::Format::from_proto(format, &text)?;
        let desired = document::parse(&text, format)?;
        let now = now_micros();
        let apply = |config: &mut Configuration| document::apply(config, desired, now);
        let (changes, created_secrets) = if dry_run {
            // Judge the result exactly as a real apply would, without storing it.
            let mut copy = (*self.config()).clone();
            let result = apply(&mut copy)?;
            validate::configuration(&copy)?;
            result
        } else {
            self.change(apply).await?
        };
        Ok(Response::new(pb::ApplyConfigurationResponse {
            applied: !dry_run && !changes.is_empty(),
            changes,
            created_secrets: if dry_run { Vec::new() } else { created_secrets },
        }))
    }
}
