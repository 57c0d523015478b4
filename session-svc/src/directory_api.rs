//! The tonic `DirectoryService`: request conversion, validation and calls into the store and
//! authenticators.

use std::collections::BTreeMap;

use portcullis_proto::session::v1 as pb;
use portcullis_proto::session::v1::directory_service_server::DirectoryService;
use service_kit::filter::{Field, FieldKind, SqlValue, compile_filter};
use service_kit::guard;
use service_kit::page_token::{self, PageTokens};
use tonic::{Request, Response, Status};

use crate::authenticators::Authenticators;
use crate::error::{Error, Result};
use crate::feed::RevocationFeed;
use crate::model::{UserStatus, now_micros};
use crate::store::{NewUser, Store};
use crate::validate;

/// Fields `ListUsers` filters on.
pub const USER_FIELDS: &[Field] = &[
    Field {
        name: "status",
        kind: FieldKind::Enum {
            column: "status",
            values: UserStatus::NAMES,
        },
    },
    Field {
        name: "create_time",
        kind: FieldKind::Timestamp { column: "created_at" },
    },
    Field {
        name: "last_login_time",
        kind: FieldKind::Timestamp {
            column: "last_login_at",
        },
    },
];

/// The gRPC directory service.
#[derive(Debug, Clone)]
pub struct DirectoryApi {
    store: Store,
    authenticators: Authenticators,
    feed: std::sync::Arc<RevocationFeed>,
    page_tokens: PageTokens,
    trust_domain: String,
}

fn page_size(requested: i32) -> Result<usize> {
    page_token::page_size(requested).map_err(|reason| Error::field("page_size", reason))
}

fn profile(map: std::collections::HashMap<String, String>) -> Result<BTreeMap<String, String>> {
    let profile: BTreeMap<String, String> = map.into_iter().collect();
    validate::profile("profile", &profile)?;
    Ok(profile)
}

impl DirectoryApi {
    /// The service.
    pub fn new(
        store: Store,
        authenticators: Authenticators,
        feed: std::sync::Arc<RevocationFeed>,
        page_tokens: PageTokens,
        trust_domain: String,
    ) -> Self {
        Self {
            store,
            authenticators,
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

    async fn lifecycle(&self, actor: String, user_id: String, to: UserStatus, verb: &'static str) -> Result<pb::User> {
        validate::identifier("user_id", &user_id)?;
        let (allowed, event): (fn(UserStatus) -> bool, &'static str) = match to {
            UserStatus::Suspended => (|from| from == UserStatus::Active, "user.lifecycle.suspend"),
            UserStatus::Deprovisioned => (|from| from != UserStatus::Deprovisioned, "user.lifecycle.deactivate"),
            UserStatus::Active if verb == "unsuspend" => {
                (|from| from == UserStatus::Suspended, "user.lifecycle.unsuspend")
            }
            UserStatus::Active => (|from| from == UserStatus::Deprovisioned, "user.lifecycle.activate"),
        };
        let (user, revoked) = self
            .store
            .set_user_status(&user_id, to, allowed, verb, event, &actor)
            .await?;
        self.feed.announce(&revoked);
        Ok(user.to_proto(now_micros()))
    }
}

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Result<Response<pb::User>, Status> {
        let actor = self.actor(&request);
        let pb::CreateUserRequest {
            login,
            email,
            display_name,
            profile: attributes,
        } = request.into_inner();
        validate::login("login", &login)?;
        validate::email("email", &email)?;
        validate::length("display_name", &display_name, 0, 255)?;
        let new = NewUser {
            login,
            email,
            display_name,
            profile: profile(attributes)?,
        };
        let user = self.store.create_user(&new, &actor).await?;
        Ok(Response::new(user.to_proto(now_micros())))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::User>, Status> {
        let pb::GetUserRequest { user_id, login } = request.into_inner();
        let user = match (user_id.is_empty(), login.is_empty()) {
            (false, true) => {
                validate::identifier("user_id", &user_id)?;
                self.store.get_user(&user_id).await?
            }
            (true, false) => {
                validate::login("login", &login)?;
                self.store.get_user_by_login(&login).await?
            }
            _ => return Err(Error::field("user_id", "exactly one of user_id and login is required").into()),
        };
        Ok(Response::new(user.to_proto(now_micros())))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let pb::ListUsersRequest {
            page_size: requested,
            page_token,
            filter,
            search,
        } = request.into_inner();
        let limit = page_size(requested)?;
        let mut condition = compile_filter(&filter, USER_FIELDS, 1).map_err(|e| Error::InvalidFilter(e.to_string()))?;
        validate::length("search", &search, 0, 100)?;
        let search = search.trim().to_lowercase();
        if !search.is_empty() {
            // LIKE with the wildcards escaped is a prefix match on both databases; both sides are
            // lower-cased, so PostgreSQL's case-sensitive LIKE and SQLite's agree.
            let n = condition.values.len() + 1;
            let extra = format!(
                "login_key LIKE ${n} ESCAPE '\\' OR LOWER(email) LIKE ${n} ESCAPE '\\' \
                 OR LOWER(display_name) LIKE ${n} ESCAPE '\\'"
            );
            condition.sql = if condition.sql.is_empty() {
                format!("({extra})")
            } else {
                format!("{} AND ({extra})", condition.sql)
            };
            let escaped = search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            condition.values.push(SqlValue::Text(format!("{escaped}%")));
        }
        let scope = format!("users\0{filter}\0{search}");
        let after = self.cursor(&scope, &page_token)?;
        let mut users = self.store.list_users(&condition, after.as_deref(), limit + 1).await?;
        let next_page_token = self.page_tokens.next_page(&scope, &mut users, limit, |u| &u.id);
        let now = now_micros();
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(|u| u.to_proto(now)).collect(),
            next_page_token,
        }))
    }

    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Result<Response<pb::User>, Status> {
        let actor = self.actor(&request);
        let pb::UpdateUserRequest {
            user_id,
            email,
            display_name,
            profile: attributes,
            update_mask,
        } = request.into_inner();
        validate::identifier("user_id", &user_id)?;
        let all = update_mask.is_empty();
        if let Some(unknown) = update_mask
            .iter()
            .find(|p| !["email", "display_name", "profile"].contains(&p.as_str()))
        {
            return Err(Error::field("update_mask", format!("unknown field {unknown:?}")).into());
        }
        let wants = |name: &str| all || update_mask.iter().any(|p| p == name);
        if wants("email") {
            validate::email("email", &email)?;
        }
        if wants("display_name") {
            validate::length("display_name", &display_name, 0, 255)?;
        }
        let attributes = if wants("profile") {
            Some(profile(attributes)?)
        } else {
            None
        };
        let user = self
            .store
            .update_user(
                &user_id,
                wants("email").then_some(email.as_str()),
                wants("display_name").then_some(display_name.as_str()),
                attributes.as_ref(),
                &actor,
            )
            .await?;
        Ok(Response::new(user.to_proto(now_micros())))
    }

    async fn suspend_user(&self, request: Request<pb::SuspendUserRequest>) -> Result<Response<pb::User>, Status> {
        let actor = self.actor(&request);
        Ok(Response::new(
            self.lifecycle(actor, request.into_inner().user_id, UserStatus::Suspended, "suspend")
                .await?,
        ))
    }

    async fn unsuspend_user(&self, request: Request<pb::UnsuspendUserRequest>) -> Result<Response<pb::User>, Status> {
        let actor = self.actor(&request);
        Ok(Response::new(
            self.lifecycle(actor, request.into_inner().user_id, UserStatus::Active, "unsuspend")
                .await?,
        ))
    }

    async fn deactivate_user(&self, request: Request<pb::DeactivateUserRequest>) -> Result<Response<pb::User>, Status> {
        let actor = self.actor(&request);
        Ok(Response::new(
            self.lifecycle(
                actor,
                request.into_inner().user_id,
                UserStatus::Deprovisioned,
                "deactivate",
            )
            .await?,
        ))
    }

    async fn activate_user(&self, request: Request<pb::ActivateUserRequest>) -> Result<Response<pb::User>, Status> {
        let actor = self.actor(&request);
        Ok(Response::new(
            self.lifecycle(actor, request.into_inner().user_id, UserStatus::Active, "activate")
                .await?,
        ))
    }

    async fn delete_user(&self, request: Request<pb::DeleteUserRequest>) -> Result<Response<()>, Status> {
        let actor = self.actor(&request);
        let pb::DeleteUserRequest { user_id } = request.into_inner();
        validate::identifier("user_id", &user_id)?;
        self.store.delete_user(&user_id, &actor).await?;
        Ok(Response::new(()))
    }

    async fn create_group(&self, request: Request<pb::CreateGroupRequest>) -> Result<Response<pb::Group>, Status> {
        let pb::CreateGroupRequest { name, description } = request.into_inner();
        validate::length("name", &name, 1, 255)?;
        validate::length("description", &description, 0, 1024)?;
        let group = self.store.create_group(&name, &description).await?;
        Ok(Response::new((&group).into()))
    }

    async fn get_group(&self, request: Request<pb::GetGroupRequest>) -> Result<Response<pb::Group>, Status> {
        let pb::GetGroupRequest { group_id } = request.into_inner();
        validate::identifier("group_id", &group_id)?;
        Ok(Response::new((&self.store.get_group(&group_id).await?).into()))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let pb::ListGroupsRequest {
            page_size: requested,
            page_token,
        } = request.into_inner();
        let limit = page_size(requested)?;
        let after = self.cursor("groups", &page_token)?;
        let mut groups = self.store.list_groups(after.as_deref(), limit + 1).await?;
        let next_page_token = self.page_tokens.next_page("groups", &mut groups, limit, |g| &g.id);
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn delete_group(&self, request: Request<pb::DeleteGroupRequest>) -> Result<Response<()>, Status> {
        let pb::DeleteGroupRequest { group_id } = request.into_inner();
        validate::identifier("group_id", &group_id)?;
        self.store.delete_group(&group_id).await?;
        Ok(Response::new(()))
    }

    async fn add_group_member(&self, request: Request<pb::AddGroupMemberRequest>) -> Result<Response<()>, Status> {
        let actor = self.actor(&request);
        let pb::AddGroupMemberRequest { group_id, user_id } = request.into_inner();
        validate::identifier("group_id", &group_id)?;
        validate::identifier("user_id", &user_id)?;
        self.store.add_member(&group_id, &user_id, &actor).await?;
        Ok(Response::new(()))
    }

    async fn remove_group_member(
        &self,
        request: Request<pb::RemoveGroupMemberRequest>,
    ) -> Result<Response<()>, Status> {
        let actor = self.actor(&request);
        let pb::RemoveGroupMemberRequest { group_id, user_id } = request.into_inner();
        validate::identifier("group_id", &group_id)?;
        validate::identifier("user_id", &user_id)?;
        self.store.remove_member(&group_id, &user_id, &actor).await?;
        Ok(Response::new(()))
    }

    async fn list_user_groups(
        &self,
        request: Request<pb::ListUserGroupsRequest>,
    ) -> Result<Response<pb::ListUserGroupsResponse>, Status> {
        let pb::ListUserGroupsRequest { user_id } = request.into_inner();
        validate::identifier("user_id", &user_id)?;
        let groups = self.store.user_groups(&user_id).await?;
        Ok(Response::new(pb::ListUserGroupsResponse {
            groups: groups.iter().map(Into::into).collect(),
        }))
    }

    async fn list_group_members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Result<Response<pb::ListGroupMembersResponse>, Status> {
        let pb::ListGroupMembersRequest {
            group_id,
            page_size: requested,
            page_token,
        } = request.into_inner();
        validate::identifier("group_id", &group_id)?;
        let limit = page_size(requested)?;
        let scope = format!("members\0{group_id}");
        let after = self.cursor(&scope, &page_token)?;
        let mut users = self.store.group_members(&group_id, after.as_deref(), limit + 1).await?;
        let next_page_token = self.page_tokens.next_page(&scope, &mut users, limit, |u| &u.id);
        let now = now_micros();
        Ok(Response::new(pb::ListGroupMembersResponse {
            users: users.iter().map(|u| u.to_proto(now)).collect(),
            next_page_token,
        }))
    }

    async fn set_password(&self, request: Request<pb::SetPasswordRequest>) -> Result<Response<()>, Status> {
        let actor = self.actor(&request);
        let pb::SetPasswordRequest { user_id, password } = request.into_inner();
        self.authenticators.set_password(&user_id, password, &actor).await?;
        Ok(Response::new(()))
    }

    async fn verify_password(
        &self,
        request: Request<pb::VerifyPasswordRequest>,
    ) -> Result<Response<pb::VerifyPasswordResponse>, Status> {
        let actor = self.actor(&request);
        let pb::VerifyPasswordRequest { login, password } = request.into_inner();
        let user = self.authenticators.verify_password(&login, password, &actor).await?;
        Ok(Response::new(pb::VerifyPasswordResponse {
            user: Some(user.to_proto(now_micros())),
        }))
    }

    async fn enroll_totp(
        &self,
        request: Request<pb::EnrollTotpRequest>,
    ) -> Result<Response<pb::EnrollTotpResponse>, Status> {
        let actor = self.actor(&request);
        let pb::EnrollTotpRequest { user_id } = request.into_inner();
        let otpauth_uri = self.authenticators.enroll_totp(&user_id, &actor).await?;
        Ok(Response::new(pb::EnrollTotpResponse { otpauth_uri }))
    }

    async fn verify_totp(
        &self,
        request: Request<pb::VerifyTotpRequest>,
    ) -> Result<Response<pb::VerifyTotpResponse>, Status> {
        let pb::VerifyTotpRequest { user_id, code } = request.into_inner();
        self.authenticators.verify_totp(&user_id, &code).await?;
        Ok(Response::new(pb::VerifyTotpResponse {}))
    }
}
