//! The tonic `SessionService`: request conversion and calls into sessions, the feed and events.

use std::pin::Pin;
use std::sync::Arc;

use portcullis_proto::session::v1 as pb;
use portcullis_proto::session::v1::session_service_server::SessionService;
use service_kit::filter::{Field, FieldKind, compile_filter};
use service_kit::guard;
use service_kit::page_token::{self, PageTokens};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::feed::RevocationFeed;
use crate::model::{now_micros, timestamp};
use crate::sessions::Sessions;
use crate::store::Store;
use crate::validate;

/// Fields `ListEvents` filters on.
pub const EVENT_FIELDS: &[Field] = &[
    Field {
        name: "event_type",
        kind: FieldKind::Text { column: "event_type" },
    },
    Field {
        name: "user_id",
        kind: FieldKind::Text { column: "user_id" },
    },
    Field {
        name: "session_id",
        kind: FieldKind::Text { column: "session_id" },
    },
    Field {
        name: "create_time",
        kind: FieldKind::Timestamp { column: "created_at" },
    },
];

/// The gRPC session service.
#[derive(Debug, Clone)]
pub struct SessionApi {
    store: Store,
    sessions: Sessions,
    feed: Arc<RevocationFeed>,
    page_tokens: PageTokens,
    trust_domain: String,
}

fn page_size(requested: i32) -> Result<usize> {
    page_token::page_size(requested).map_err(|reason| Error::field("page_size", reason))
}

impl SessionApi {
    /// The service.
    pub fn new(
        store: Store,
        sessions: Sessions,
        feed: Arc<RevocationFeed>,
        page_tokens: PageTokens,
        trust_domain: String,
    ) -> Self {
        Self {
            store,
            sessions,
            feed,
            page_tokens,
            trust_domain,
        }
    }

    fn actor<T>(&self, request: &Request<T>) -> String {
        guard::actor(request, &self.trust_domain)
    }

    fn cursor(&self, scope: &str, token: &str) -> Result<Option<String>> {
        self.page_tokens
            .resume(scope, token)
            .map_err(|_| Error::InvalidPageToken)
    }
}

type RevocationStream = Pin<Box<dyn Stream<Item = Result<pb::Revocation, Status>> + Send>>;

#[tonic::async_trait]
impl SessionService for SessionApi {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let actor = self.actor(&request);
        let (session, token) = self.sessions.create(request.into_inner(), &actor).await?;
        Ok(Response::new(pb::CreateSessionResponse {
            session: Some(session.to_proto(now_micros())),
            token,
        }))
    }

    async fn validate_session(
        &self,
        request: Request<pb::ValidateSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let pb::ValidateSessionRequest { token } = request.into_inner();
        let session = self.sessions.validate(&token).await?;
        Ok(Response::new(session.to_proto(now_micros())))
    }

    async fn get_session(&self, request: Request<pb::GetSessionRequest>) -> Result<Response<pb::Session>, Status> {
        let pb::GetSessionRequest { session_id } = request.into_inner();
        validate::identifier("session_id", &session_id)?;
        let session = self.store.get_session(&session_id).await?;
        Ok(Response::new(session.to_proto(now_micros())))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let pb::ListSessionsRequest {
            user_id,
            device_id,
            include_ended,
            page_size: requested,
            page_token,
        } = request.into_inner();
        if user_id.is_empty() == device_id.is_empty() {
            return Err(Error::field("user_id", "exactly one of user_id and device_id is required").into());
        }
        if !user_id.is_empty() {
            validate::identifier("user_id", &user_id)?;
        }
        if !device_id.is_empty() {
            validate::identifier("device_id", &device_id)?;
        }
        let limit = page_size(requested)?;
        let scope = format!("sessions\0{user_id}\0{device_id}\0{include_ended}");
        let after = self.cursor(&scope, &page_token)?;
        let mut sessions = self
            .store
            .list_sessions(&user_id, &device_id, include_ended, after.as_deref(), limit + 1)
            .await?;
        let next_page_token = self.page_tokens.next_page(&scope, &mut sessions, limit, |s| &s.id);
        let now = now_micros();
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions.iter().map(|s| s.to_proto(now)).collect(),
            next_page_token,
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let actor = self.actor(&request);
        let pb::RevokeSessionRequest { session_id, reason } = request.into_inner();
        let reason = match pb::RevocationReason::try_from(reason) {
            Ok(pb::RevocationReason::Unspecified) => pb::RevocationReason::Admin,
            Ok(reason) => reason,
            Err(_) => return Err(Error::field("reason", "unknown value").into()),
        };
        let session = self.sessions.revoke(&session_id, reason, &actor).await?;
        Ok(Response::new(session.to_proto(now_micros())))
    }

    async fn revoke_sessions(
        &self,
        request: Request<pb::RevokeSessionsRequest>,
    ) -> Result<Response<pb::RevokeSessionsResponse>, Status> {
        let actor = self.actor(&request);
        let revoked_count = self.sessions.revoke_many(request.into_inner(), &actor).await?;
        tracing::info!(revoked_count, %actor, "sessions revoked");
        Ok(Response::new(pb::RevokeSessionsResponse { revoked_count }))
    }

    type WatchRevocationsStream = RevocationStream;

    async fn watch_revocations(
        &self,
        request: Request<pb::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        let pb::WatchRevocationsRequest { cursor, from_now } = request.into_inner();
        let stream = self.feed.watch(&cursor, from_now).await?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn issue_authorization_code(
        &self,
        request: Request<pb::IssueAuthorizationCodeRequest>,
    ) -> Result<Response<pb::IssueAuthorizationCodeResponse>, Status> {
        let (code, expires_at) = self.sessions.issue_code(request.into_inner()).await?;
        Ok(Response::new(pb::IssueAuthorizationCodeResponse {
            code,
            expire_time: Some(timestamp(expires_at)),
        }))
    }

    async fn redeem_authorization_code(
        &self,
        request: Request<pb::RedeemAuthorizationCodeRequest>,
    ) -> Result<Response<pb::RedeemAuthorizationCodeResponse>, Status> {
        let actor = self.actor(&request);
        let (session, code) = self.sessions.redeem_code(request.into_inner(), &actor).await?;
        Ok(Response::new(pb::RedeemAuthorizationCodeResponse {
            session: Some(session.to_proto(now_micros())),
            nonce: code.nonce,
            scopes: code.scopes,
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let pb::ListEventsRequest {
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
        Ok(Response::new(pb::ListEventsResponse {
            events: events.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }
}
