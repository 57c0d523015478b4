//! The tonic `DeviceService`: request conversion, validation and calls into the store.

use portcullis_proto::device::v1 as pb;
use portcullis_proto::device::v1::device_service_server::DeviceService;
use service_kit::guard;
use service_kit::observe::current_request_id;
use service_kit::page_token::{self, PageTokens};
use tonic::{Request, Response, Status};

use crate::assertion::{self, Expectations, PublicKey};
use crate::device::DeviceStatus;
use crate::enrollment::{Enrollment, identifier};
use crate::enrollment_token;
use crate::error::{Error, Result};
use crate::key_lookup::KeyLookups;
use crate::lifecycle::Action;
use crate::replay::ReplayLedger;
use crate::signals::Signals;
use crate::store::{Event, Store, search_condition};
use service_kit::filter::{Field, FieldKind, SqlCondition, compile_filter};

/// Longest search text.
const MAX_SEARCH_CHARS: usize = 100;

/// Fields `ListDevices` and `CountDevices` filter on.
pub const DEVICE_FIELDS: &[Field] = &[
    Field {
        name: "platform",
        kind: FieldKind::Enum {
            column: "platform",
            values: crate::device::Platform::NAMES,
        },
    },
    Field {
        name: "status",
        kind: FieldKind::Enum {
            column: "status",
            values: DeviceStatus::NAMES,
        },
    },
    Field {
        name: "managed",
        kind: FieldKind::Bool { column: "managed" },
    },
    Field {
        name: "user_id",
        kind: FieldKind::Membership {
            sql_template: "id IN (SELECT device_id FROM device_users WHERE user_id = {})",
        },
    },
    Field {
        name: "create_time",
        kind: FieldKind::Timestamp { column: "created_at" },
    },
    Field {
        name: "last_seen_time",
        kind: FieldKind::Timestamp { column: "last_seen_at" },
    },
];

/// Fields `ListDeviceEvents` filters on.
pub const EVENT_FIELDS: &[Field] = &[
    Field {
        name: "device_id",
        kind: FieldKind::Text { column: "device_id" },
    },
    Field {
        name: "event_type",
        kind: FieldKind::Text { column: "event_type" },
    },
    Field {
        name: "user_id",
        kind: FieldKind::Text { column: "user_id" },
    },
    Field {
        name: "create_time",
        kind: FieldKind::Timestamp { column: "created_at" },
    },
];

/// Assertion checks that come from configuration.
#[derive(Debug, Clone, Copy)]
pub struct AssertionPolicy {
    /// Allowed clock skew, seconds.
    pub leeway_secs: i64,
    /// Longest accepted lifetime, seconds.
    pub max_lifetime_secs: i64,
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct DeviceApi {
    store: Store,
    page_tokens: PageTokens,
    trust_domain: String,
    assertions: AssertionPolicy,
    replays: ReplayLedger,
    key_lookups: KeyLookups,
}

impl DeviceApi {
    /// A service over `store`.
    pub fn new(
        store: Store,
        page_tokens: PageTokens,
        trust_domain: String,
        assertions: AssertionPolicy,
        replays: ReplayLedger,
        key_lookups: KeyLookups,
    ) -> Self {
        Self {
            store,
            page_tokens,
            trust_domain,
            assertions,
            replays,
            key_lookups,
        }
    }

    fn actor<T>(&self, request: &Request<T>) -> String {
        guard::actor(request, &self.trust_domain)
    }
}

fn request_id() -> String {
    current_request_id().map(|id| id.to_string()).unwrap_or_default()
}

fn page_size(requested: i32) -> Result<usize> {
    page_token::page_size(requested).map_err(|reason| Error::field("page_size", reason))
}

/// The filter and search as one condition, placeholders numbered from 1.
fn device_condition(filter: &str, search: &str) -> Result<SqlCondition> {
    let mut condition = compile_filter(filter, DEVICE_FIELDS, 1).map_err(|e| Error::InvalidFilter(e.to_string()))?;
    if search.chars().count() > MAX_SEARCH_CHARS {
        return Err(Error::field(
            "search",
            format!("must be at most {MAX_SEARCH_CHARS} characters"),
        ));
    }
    if search.chars().any(char::is_control) {
        return Err(Error::field("search", "must not contain control characters"));
    }
    let search = search.trim();
    if !search.is_empty() {
        let extra = search_condition(search, condition.values.len() + 1);
        condition.sql = if condition.sql.is_empty() {
            extra.sql
        } else {
            format!("{} AND {}", condition.sql, extra.sql)
        };
        condition.values.extend(extra.values);
    }
    Ok(condition)
}

impl DeviceApi {
    /// Opens a page token into the id to continue after.
    fn cursor(&self, scope: &str, token: &str) -> Result<Option<String>> {
        self.page_tokens
            .resume(scope, token)
            .map_err(|_| Error::InvalidPageToken)
    }

    async fn lifecycle(&self, request: Request<String>, action: Action) -> Result<pb::Device> {
        let actor = self.actor(&request);
        let id = request.into_inner();
        identifier("device_id", &id)?;
        let device = self.store.transition(&id, action, &actor, &request_id()).await?;
        tracing::info!(device = %id, action = action.verb(), %actor, "device lifecycle");
        Ok((&device).into())
    }

    async fn verify(&self, request: pb::VerifyDeviceAssertionRequest) -> Result<pb::VerifyDeviceAssertionResponse> {
        let pb::VerifyDeviceAssertionRequest {
            assertion: token,
            audience,
            nonce,
        } = request;
        if audience.is_empty() {
            return Err(Error::field("audience", "is required"));
        }
        if nonce.is_empty() {
            return Err(Error::field("nonce", "is required"));
        }
        let header = assertion::read_header(&token)?;
        let (owner, device) = self
            .key_lookups
            .key_and_device(&header.kid)
            .await?
            .ok_or(Error::UnknownKey)?;
        match owner.status {
            DeviceStatus::Active => {}
            DeviceStatus::Suspended => return Err(Error::DeviceSuspended(owner.device_id)),
            DeviceStatus::Deactivated => return Err(Error::DeviceDeactivated(owner.device_id)),
        }
        if owner.removed {
            return Err(Error::UnknownKey);
        }
        let key = PublicKey::from_jwk_coordinates(&owner.key.x, &owner.key.y)?;
        let now = crate::device::now_micros() / 1_000_000;
        let claims = assertion::verify(
            &token,
            &key,
            &Expectations {
                audience: &audience,
                nonce: &nonce,
                now_unix: now,
                leeway_secs: self.assertions.leeway_secs,
                max_lifetime_secs: self.assertions.max_lifetime_secs,
            },
        )?;
        if claims.sub != owner.key.user_id {
            return Err(Error::AssertionUserNotLinked);
        }
        // Only after the signature holds, so nobody can burn another device's jti.
        if !self
            .replays
            .claim(&claims.jti, claims.exp + self.assertions.leeway_secs)
            .await?
        {
            return Err(Error::AssertionReplayed);
        }
        Ok(pb::VerifyDeviceAssertionResponse {
            device: Some((&device).into()),
            user_id: claims.sub,
            kid: owner.key.kid,
            key_purpose: owner.key.purpose.to_proto().into(),
            hardware_protected: owner.key.hardware_protected,
            signals: Some(claims.signals.to_proto()),
        })
    }
}

fn event_to_proto(event: Event) -> pb::DeviceEvent {
    let Event {
        id,
        event_type,
        device_id,
        user_id,
        actor,
        created_at,
    } = event;
    pb::DeviceEvent {
        id,
        event_type,
        device_id,
        user_id,
        actor,
        create_time: Some(crate::device::timestamp(created_at)),
    }
}

#[tonic::async_trait]
impl DeviceService for DeviceApi {
    async fn register_device(
        &self,
        request: Request<pb::RegisterDeviceRequest>,
    ) -> Result<Response<pb::RegisterDeviceResponse>, Status> {
        let actor = self.actor(&request);
        let mut request = request.into_inner();
        if !request.enrollment_token.is_empty() {
            // The token says who enrolls; the store uses it up with the enrollment.
            if !enrollment_token::well_formed(&request.enrollment_token) {
                return Err(Error::InvalidEnrollmentToken.into());
            }
            let token_user = self
                .store
                .enrollment_token_user(&enrollment_token::token_hash(&request.enrollment_token))
                .await?
                .ok_or(Error::InvalidEnrollmentToken)?;
            if !request.user_id.is_empty() && request.user_id != token_user {
                return Err(Error::InvalidEnrollmentToken.into());
            }
            request.user_id = token_user;
        }
        let enrollment = Enrollment::try_from(request)?;
        let enrolled = self.store.enroll(&enrollment, &actor).await?;
        tracing::info!(device = %enrolled.device.id, user = %enrollment.user_id, created = enrolled.created, "device enrolled");
        Ok(Response::new(pb::RegisterDeviceResponse {
            device: Some((&enrolled.device).into()),
            created: enrolled.created,
        }))
    }

    async fn create_enrollment_token(
        &self,
        request: Request<pb::CreateEnrollmentTokenRequest>,
    ) -> Result<Response<pb::CreateEnrollmentTokenResponse>, Status> {
        let actor = self.actor(&request);
        let pb::CreateEnrollmentTokenRequest { user_id, ttl } = request.into_inner();
        identifier("user_id", &user_id)?;
        let ttl = enrollment_token::ttl(ttl)?;
        let token = enrollment_token::new_token()?;
        let ttl_micros = i64::try_from(ttl.as_micros()).map_err(|_| Error::field("ttl", "too long"))?;
        let expires_at = service_kit::clock::now_micros().saturating_add(ttl_micros);
        self.store
            .create_enrollment_token(&enrollment_token::token_hash(&token), &user_id, &actor, expires_at)
            .await?;
        tracing::info!(user = %user_id, %actor, "enrollment token created");
        Ok(Response::new(pb::CreateEnrollmentTokenResponse {
            token,
            user_id,
            expire_time: Some(service_kit::clock::timestamp(expires_at)),
        }))
    }

    async fn get_device(&self, request: Request<pb::GetDeviceRequest>) -> Result<Response<pb::Device>, Status> {
        let pb::GetDeviceRequest { device_id } = request.into_inner();
        identifier("device_id", &device_id)?;
        let device = self.store.get_device(&device_id).await?;
        Ok(Response::new((&device).into()))
    }

    async fn list_devices(
        &self,
        request: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::ListDevicesResponse>, Status> {
        let pb::ListDevicesRequest {
            page_size: requested,
            page_token,
            filter,
            search,
            expand,
        } = request.into_inner();
        let limit = page_size(requested)?;
        let expand = pb::DeviceExpand::try_from(expand).map_err(|_| Error::field("expand", "unknown value"))?;
        let condition = device_condition(&filter, &search)?;
        let scope = format!("devices\0{filter}\0{search}");
        let after = self.cursor(&scope, &page_token)?;
        let mut devices = self
            .store
            .list_devices(
                &condition,
                after.as_deref(),
                limit + 1,
                expand == pb::DeviceExpand::Users,
            )
            .await?;
        let next_page_token = self.page_tokens.next_page(&scope, &mut devices, limit, |d| &d.id);
        Ok(Response::new(pb::ListDevicesResponse {
            devices: devices.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn count_devices(
        &self,
        request: Request<pb::CountDevicesRequest>,
    ) -> Result<Response<pb::CountDevicesResponse>, Status> {
        let pb::CountDevicesRequest { filter, search } = request.into_inner();
        let count = self.store.count_devices(&device_condition(&filter, &search)?).await?;
        Ok(Response::new(pb::CountDevicesResponse { count }))
    }

    async fn suspend_device(&self, request: Request<pb::SuspendDeviceRequest>) -> Result<Response<pb::Device>, Status> {
        Ok(Response::new(
            self.lifecycle(request.map(|r| r.device_id), Action::Suspend).await?,
        ))
    }

    async fn unsuspend_device(
        &self,
        request: Request<pb::UnsuspendDeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        Ok(Response::new(
            self.lifecycle(request.map(|r| r.device_id), Action::Unsuspend).await?,
        ))
    }

    async fn deactivate_device(
        &self,
        request: Request<pb::DeactivateDeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        Ok(Response::new(
            self.lifecycle(request.map(|r| r.device_id), Action::Deactivate).await?,
        ))
    }

    async fn activate_device(
        &self,
        request: Request<pb::ActivateDeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        Ok(Response::new(
            self.lifecycle(request.map(|r| r.device_id), Action::Activate).await?,
        ))
    }

    async fn delete_device(&self, request: Request<pb::DeleteDeviceRequest>) -> Result<Response<()>, Status> {
        let actor = self.actor(&request);
        let pb::DeleteDeviceRequest { device_id } = request.into_inner();
        identifier("device_id", &device_id)?;
        self.store.delete(&device_id, &actor, &request_id()).await?;
        tracing::info!(device = %device_id, %actor, "device deleted");
        Ok(Response::new(()))
    }

    async fn list_device_users(
        &self,
        request: Request<pb::ListDeviceUsersRequest>,
    ) -> Result<Response<pb::ListDeviceUsersResponse>, Status> {
        let pb::ListDeviceUsersRequest { device_id } = request.into_inner();
        identifier("device_id", &device_id)?;
        let users = self.store.device_users(&device_id).await?;
        Ok(Response::new(pb::ListDeviceUsersResponse {
            users: users.iter().map(Into::into).collect(),
        }))
    }

    async fn list_user_devices(
        &self,
        request: Request<pb::ListUserDevicesRequest>,
    ) -> Result<Response<pb::ListUserDevicesResponse>, Status> {
        let pb::ListUserDevicesRequest { user_id } = request.into_inner();
        identifier("user_id", &user_id)?;
        let devices = self.store.user_devices(&user_id).await?;
        Ok(Response::new(pb::ListUserDevicesResponse {
            devices: devices.iter().map(Into::into).collect(),
        }))
    }

    async fn remove_device_user(&self, request: Request<pb::RemoveDeviceUserRequest>) -> Result<Response<()>, Status> {
        let actor = self.actor(&request);
        let pb::RemoveDeviceUserRequest { device_id, user_id } = request.into_inner();
        identifier("device_id", &device_id)?;
        identifier("user_id", &user_id)?;
        self.store.remove_user(&device_id, &user_id, &actor).await?;
        Ok(Response::new(()))
    }

    async fn verify_device_assertion(
        &self,
        request: Request<pb::VerifyDeviceAssertionRequest>,
    ) -> Result<Response<pb::VerifyDeviceAssertionResponse>, Status> {
        Ok(Response::new(self.verify(request.into_inner()).await?))
    }

    async fn report_signals(&self, request: Request<pb::ReportSignalsRequest>) -> Result<Response<pb::Device>, Status> {
        let pb::ReportSignalsRequest { device_id, signals } = request.into_inner();
        identifier("device_id", &device_id)?;
        let signals = Signals::from_proto(signals.ok_or_else(|| Error::field("signals", "is required"))?)
            .map_err(|e| Error::field(e.field, e.reason))?;
        let device = self.store.report_signals(&device_id, &signals).await?;
        Ok(Response::new((&device).into()))
    }

    async fn list_device_events(
        &self,
        request: Request<pb::ListDeviceEventsRequest>,
    ) -> Result<Response<pb::ListDeviceEventsResponse>, Status> {
        let pb::ListDeviceEventsRequest {
            page_size: requested,
            page_token,
            filter,
        } = request.into_inner();
        let limit = page_size(requested)?;
        let condition = compile_filter(&filter, EVENT_FIELDS, 1).map_err(|e| Error::InvalidFilter(e.to_string()))?;
        let scope = format!("events\0{filter}");
        let after = self.cursor(&scope, &page_token)?;
        let mut events = self.store.list_events(&condition, after.as_deref(), limit + 1).await?;
        let next_page_token = self.page_tokens.next_page(&scope, &mut events, limit, |e| &e.id);
        Ok(Response::new(pb::ListDeviceEventsResponse {
            events: events.into_iter().map(event_to_proto).collect(),
            next_page_token,
        }))
    }
}
