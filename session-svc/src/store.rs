//! Storage of users, groups, authenticators, sessions, the revocation feed, authorization codes
//! and events, through sqlx. One SQL text serves SQLite and PostgreSQL.

use std::collections::BTreeMap;

use portcullis_proto::session::v1 as pb;
use service_kit::db::{Backend, Database, bind_values, keyset_page};
use service_kit::filter::{SqlCondition, SqlValue};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::error::{Error, Result};
use crate::model::{Event, Group, Session, User, UserStatus, new_id, now_micros};

const USER_COLUMNS: &str = "id, login, email, display_name, profile, status, created_at, updated_at, last_login_at, \
    locked_until, password_hash IS NOT NULL AS has_password, totp_seed IS NOT NULL AS has_totp";

const SESSION_COLUMNS: &str = "id, user_id, device_id, amr, device_authenticator, created_at, last_active_at, \
    idle_timeout_us, expires_at, revoked_at, revocation_reason, client_ip, user_agent";

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Login as entered.
    pub login: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Profile attributes.
    pub profile: BTreeMap<String, String>,
}

/// What verifying a password needs to know about a user.
#[derive(Debug, Clone)]
pub struct PasswordState {
    /// The user.
    pub user: User,
    /// The stored hash, if a password is set.
    pub hash: Option<String>,
    /// Consecutive failures so far.
    pub failed_attempts: i64,
}

/// A sign-in event about to be recorded.
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    /// Event type.
    pub event_type: &'static str,
    /// The user, or empty.
    pub user_id: &'a str,
    /// The session, or empty.
    pub session_id: &'a str,
    /// Details.
    pub details: Vec<(&'static str, String)>,
}

/// Which sessions a bulk revocation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSelector {
    /// This user's sessions (empty: any user).
    pub user_id: String,
    /// Sessions on this device (empty: any device).
    pub device_id: String,
    /// Only those established with the device authenticator.
    pub device_authenticator_only: bool,
}

/// One row of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    /// Position in the feed.
    pub seq: i64,
    /// The session.
    pub session_id: String,
    /// Its user.
    pub user_id: String,
    /// Its device, or empty.
    pub device_id: String,
    /// Why.
    pub reason: pb::RevocationReason,
    /// When (µs).
    pub revoked_at: i64,
}

/// A stored authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// The session it was issued for.
    pub session_id: String,
    /// OIDC client.
    pub client_id: String,
    /// Exact redirect URI.
    pub redirect_uri: String,
    /// PKCE challenge.
    pub code_challenge: String,
    /// PKCE method (S256).
    pub code_challenge_method: String,
    /// OIDC nonce.
    pub nonce: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Expiry (µs).
    pub expires_at: i64,
}

/// How redeeming a code went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// First redemption: the code's contents.
    Redeemed(AuthorizationCode),
    /// The code was redeemed before; its session has now been revoked.
    Reused,
    /// No such code, or it expired.
    Unknown,
}

fn corrupt(what: &str, value: &str) -> Error {
    Error::Corrupt(format!("{what} {value:?}"))
}

fn flag(value: bool) -> i64 {
    i64::from(value)
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    let status: String = row.try_get("status")?;
    let profile: String = row.try_get("profile")?;
    Ok(User {
        id: row.try_get("id")?,
        login: row.try_get("login")?,
        email: row.try_get("email")?,
        display_name: row.try_get("display_name")?,
        profile: serde_json::from_str(&profile).map_err(|_| corrupt("profile", &profile))?,
        status: UserStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_login_at: row.try_get("last_login_at")?,
        locked_until: row.try_get("locked_until")?,
        has_password: bool_column(row, "has_password")?,
        has_totp: bool_column(row, "has_totp")?,
    })
}

/// A computed boolean: PostgreSQL answers BOOLEAN, SQLite an integer.
fn bool_column(row: &AnyRow, name: &str) -> Result<bool> {
    match row.try_get::<bool, _>(name) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(name)? != 0),
    }
}

fn group_from_row(row: &AnyRow) -> Result<Group> {
    Ok(Group {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

fn reason_from_name(name: &str) -> Result<pb::RevocationReason> {
    if name.is_empty() {
        return Ok(pb::RevocationReason::Unspecified);
    }
    pb::RevocationReason::from_str_name(name).ok_or_else(|| corrupt("revocation reason", name))
}

fn session_from_row(row: &AnyRow) -> Result<Session> {
    let amr: String = row.try_get("amr")?;
    let reason: String = row.try_get("revocation_reason")?;
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        device_id: row.try_get("device_id")?,
        amr: amr.split_whitespace().map(str::to_owned).collect(),
        device_authenticator: row.try_get::<i64, _>("device_authenticator")? != 0,
        created_at: row.try_get("created_at")?,
        last_active_at: row.try_get("last_active_at")?,
        idle_timeout_us: row.try_get("idle_timeout_us")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revocation_reason: reason_from_name(&reason)?,
        client_ip: row.try_get("client_ip")?,
        user_agent: row.try_get("user_agent")?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<Event> {
    let details: String = row.try_get("details")?;
    Ok(Event {
        id: row.try_get("id")?,
        event_type: row.try_get("event_type")?,
        user_id: row.try_get("user_id")?,
        session_id: row.try_get("session_id")?,
        actor: row.try_get("actor")?,
        created_at: row.try_get("created_at")?,
        details: serde_json::from_str(&details).map_err(|_| corrupt("event details", &details))?,
    })
}

fn revocation_from_row(row: &AnyRow) -> Result<RevocationRecord> {
    let reason: String = row.try_get("reason")?;
    Ok(RevocationRecord {
        seq: row.try_get("seq")?,
        session_id: row.try_get("session_id")?,
        user_id: row.try_get("user_id")?,
        device_id: row.try_get("device_id")?,
        reason: reason_from_name(&reason)?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn json(map: &BTreeMap<String, String>) -> String {
    // A map of strings always serialises.
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned())
}

/// session-svc's store.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// A store over an open, migrated database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The pool, for tests and benchmarks.
    pub fn pool(&self) -> &AnyPool {
        &self.db.pool
    }

    /// Records an event in `tx`.
    pub async fn insert_event(
        tx: &mut Transaction<'static, Any>,
        event: NewEvent<'_>,
        actor: &str,
        at: i64,
    ) -> Result<()> {
        let details: BTreeMap<String, String> = event.details.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        sqlx::query(
            "INSERT INTO events (id, event_type, user_id, session_id, actor, created_at, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(event.event_type)
        .bind(event.user_id)
        .bind(event.session_id)
        .bind(actor)
        .bind(at)
        .bind(json(&details))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records an event about a user (no session, no details) in `tx`.
    async fn insert_user_event(
        tx: &mut Transaction<'static, Any>,
        event_type: &'static str,
        user_id: &str,
        actor: &str,
        at: i64,
    ) -> Result<()> {
        Self::insert_event(
            tx,
            NewEvent {
                event_type,
                user_id,
                ..Default::default()
            },
            actor,
            at,
        )
        .await
    }

    /// Records one event on its own.
    pub async fn record_event(&self, event: NewEvent<'_>, actor: &str) -> Result<()> {
        let mut w = self.db.begin_write().await?;
        Self::insert_event(&mut w.tx, event, actor, now_micros()).await?;
        w.tx.commit().await?;
        Ok(())
    }

    // ----- users -----

    /// Creates an ACTIVE user; `LoginTaken` when another user has the login (any case).
    pub async fn create_user(&self, new: &NewUser, actor: &str) -> Result<User> {
        let id = new_id();
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, login, login_key, email, display_name, profile, status, created_at, updated_at, \
             failed_attempts) VALUES ($1, $2, $3, $4, $5, $6, 'ACTIVE', $7, $7, 0) ON CONFLICT (login_key) DO NOTHING",
        )
        .bind(&id)
        .bind(&new.login)
        .bind(new.login.to_lowercase())
        .bind(&new.email)
        .bind(&new.display_name)
        .bind(json(&new.profile))
        .bind(now)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(Error::LoginTaken(new.login.clone()));
        }
        Self::insert_user_event(&mut w.tx, "user.lifecycle.create", &id, actor, now).await?;
        let user = Self::load_user(&mut w.tx, &id).await?;
        w.tx.commit().await?;
        Ok(user)
    }

    async fn load_user(tx: &mut Transaction<'static, Any>, id: &str) -> Result<User> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| Error::UserNotFound(id.to_owned()))?;
        user_from_row(&row)
    }

    /// A user by id.
    pub async fn get_user(&self, id: &str) -> Result<User> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::UserNotFound(id.to_owned()))?;
        user_from_row(&row)
    }

    /// A user by login, without regard to case.
    pub async fn get_user_by_login(&self, login: &str) -> Result<User> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE login_key = $1"))
            .bind(login.to_lowercase())
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::UserNotFound(login.to_owned()))?;
        user_from_row(&row)
    }

    /// Users matching `condition` in id order after `after_id`.
    pub async fn list_users(
        &self,
        condition: &SqlCondition,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>> {
        let (sql, values) = keyset_page(USER_COLUMNS, "users", condition, after_id, limit);
        let rows = bind_values(sqlx::query(&sql), &values).fetch_all(&self.db.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Changes the given fields of a user.
    pub async fn update_user(
        &self,
        id: &str,
        email: Option<&str>,
        display_name: Option<&str>,
        profile: Option<&BTreeMap<String, String>>,
        actor: &str,
    ) -> Result<User> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        let current = Self::load_user(&mut w.tx, id).await?;
        sqlx::query("UPDATE users SET email = $1, display_name = $2, profile = $3, updated_at = $4 WHERE id = $5")
            .bind(email.unwrap_or(&current.email))
            .bind(display_name.unwrap_or(&current.display_name))
            .bind(json(profile.unwrap_or(&current.profile)))
            .bind(now)
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        Self::insert_user_event(&mut w.tx, "user.account.update_profile", id, actor, now).await?;
        let user = Self::load_user(&mut w.tx, id).await?;
        w.tx.commit().await?;
        Ok(user)
    }

    /// Moves a user to `to` if `allowed(from)`; unchanged when already there. Deprovisioning also
    /// revokes the user's sessions, in the same transaction.
    pub async fn set_user_status(
        &self,
        id: &str,
        to: UserStatus,
        allowed: impl Fn(UserStatus) -> bool,
        verb: &'static str,
        event_type: &'static str,
        actor: &str,
    ) -> Result<(User, Vec<RevocationRecord>)> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        let status: Option<(String,)> = sqlx::query_as(&format!(
            "SELECT status FROM users WHERE id = $1{}",
            self.db.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await?;
        let (status,) = status.ok_or_else(|| Error::UserNotFound(id.to_owned()))?;
        let from = UserStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?;
        let mut revoked = Vec::new();
        if from != to {
            if !allowed(from) {
                return Err(Error::IllegalUserStatus { action: verb, from });
            }
            sqlx::query("UPDATE users SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(to.as_str())
                .bind(now)
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
            Self::insert_event(
                &mut w.tx,
                NewEvent {
                    event_type,
                    user_id: id,
                    ..Default::default()
                },
                actor,
                now,
            )
            .await?;
            if to == UserStatus::Deprovisioned {
                let selector = SessionSelector {
                    user_id: id.to_owned(),
                    device_id: String::new(),
                    device_authenticator_only: false,
                };
                revoked = self
                    .revoke_in(&mut w.tx, &selector, pb::RevocationReason::UserDeactivated, actor, now)
                    .await?;
            }
        }
        let user = Self::load_user(&mut w.tx, id).await?;
        w.tx.commit().await?;
        Ok((user, revoked))
    }

    /// Deletes a DEPROVISIONED user with memberships and authenticators.
    pub async fn delete_user(&self, id: &str, actor: &str) -> Result<()> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        let user = Self::load_user(&mut w.tx, id).await?;
        if user.status != UserStatus::Deprovisioned {
            return Err(Error::IllegalUserStatus {
                action: "delete",
                from: user.status,
            });
        }
        sqlx::query("DELETE FROM group_members WHERE user_id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        Self::insert_user_event(&mut w.tx, "user.lifecycle.delete", id, actor, now).await?;
        w.tx.commit().await?;
        Ok(())
    }

    // ----- groups -----

    /// Creates a group; `GroupNameTaken` when the name exists (any case).
    pub async fn create_group(&self, name: &str, description: &str) -> Result<Group> {
        let id = new_id();
        let now = now_micros();
        let _turn = self.db.write_turn().await;
        let inserted = sqlx::query(
            "INSERT INTO groups (id, name, name_key, description, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name_key) DO NOTHING",
        )
        .bind(&id)
        .bind(name)
        .bind(name.to_lowercase())
        .bind(description)
        .bind(now)
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(Error::GroupNameTaken(name.to_owned()));
        }
        Ok(Group {
            id,
            name: name.to_owned(),
            description: description.to_owned(),
            created_at: now,
        })
    }

    /// A group by id.
    pub async fn get_group(&self, id: &str) -> Result<Group> {
        let row = sqlx::query("SELECT * FROM groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::GroupNotFound(id.to_owned()))?;
        group_from_row(&row)
    }

    /// Groups in id order after `after_id`.
    pub async fn list_groups(&self, after_id: Option<&str>, limit: usize) -> Result<Vec<Group>> {
        let (sql, values) = keyset_page("*", "groups", &SqlCondition::default(), after_id, limit);
        let rows = bind_values(sqlx::query(&sql), &values).fetch_all(&self.db.pool).await?;
        rows.iter().map(group_from_row).collect()
    }

    /// Deletes a group and its memberships.
    pub async fn delete_group(&self, id: &str) -> Result<()> {
        let mut w = self.db.begin_write().await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::GroupNotFound(id.to_owned()));
        }
        w.tx.commit().await?;
        Ok(())
    }

    /// Adds a member (idempotent).
    pub async fn add_member(&self, group_id: &str, user_id: &str, actor: &str) -> Result<()> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        Self::load_user(&mut w.tx, user_id).await?;
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM groups WHERE id = $1")
            .bind(group_id)
            .fetch_optional(&mut *w.tx)
            .await?;
        if exists.is_none() {
            return Err(Error::GroupNotFound(group_id.to_owned()));
        }
        let added = sqlx::query(
            "INSERT INTO group_members (group_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(group_id)
        .bind(user_id)
        .bind(now)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if added > 0 {
            Self::insert_event(
                &mut w.tx,
                NewEvent {
                    event_type: "group.user_membership.add",
                    user_id,
                    details: vec![("group_id", group_id.to_owned())],
                    ..Default::default()
                },
                actor,
                now,
            )
            .await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    /// Removes a member; `MembershipNotFound` when the user was not a member.
    pub async fn remove_member(&self, group_id: &str, user_id: &str, actor: &str) -> Result<()> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        let removed = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if removed == 0 {
            // Name what is missing: the group, the user, or only the membership.
            let group: Option<(String,)> = sqlx::query_as("SELECT id FROM groups WHERE id = $1")
                .bind(group_id)
                .fetch_optional(&mut *w.tx)
                .await?;
            if group.is_none() {
                return Err(Error::GroupNotFound(group_id.to_owned()));
            }
            Self::load_user(&mut w.tx, user_id).await?;
            return Err(Error::MembershipNotFound {
                group_id: group_id.to_owned(),
                user_id: user_id.to_owned(),
            });
        }
        Self::insert_event(
            &mut w.tx,
            NewEvent {
                event_type: "group.user_membership.remove",
                user_id,
                details: vec![("group_id", group_id.to_owned())],
                ..Default::default()
            },
            actor,
            now,
        )
        .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// A user's groups, by name.
    pub async fn user_groups(&self, user_id: &str) -> Result<Vec<Group>> {
        self.get_user(user_id).await?;
        let rows = sqlx::query(
            "SELECT g.* FROM groups g JOIN group_members m ON m.group_id = g.id WHERE m.user_id = $1 ORDER BY g.name_key",
        )
        .bind(user_id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(group_from_row).collect()
    }

    /// A group's members in id order after `after_id`.
    pub async fn group_members(&self, group_id: &str, after_id: Option<&str>, limit: usize) -> Result<Vec<User>> {
        self.get_group(group_id).await?;
        let condition = SqlCondition {
            sql: "id IN (SELECT user_id FROM group_members WHERE group_id = $1)".into(),
            values: vec![SqlValue::Text(group_id.to_owned())],
        };
        self.list_users(&condition, after_id, limit).await
    }

    // ----- authenticators -----

    /// Stores a password hash and clears any lockout.
    pub async fn set_password(&self, user_id: &str, hash: &str, actor: &str) -> Result<()> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1, failed_attempts = 0, locked_until = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(user_id)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(Error::UserNotFound(user_id.to_owned()));
        }
        Self::insert_user_event(&mut w.tx, "user.account.update_password", user_id, actor, now).await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// The password state of the user with `login`, if there is one.
    pub async fn password_state(&self, login: &str) -> Result<Option<PasswordState>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash, failed_attempts FROM users WHERE login_key = $1"
        ))
        .bind(login.to_lowercase())
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(PasswordState {
            user: user_from_row(&row)?,
            hash: row.try_get("password_hash")?,
            failed_attempts: row.try_get("failed_attempts")?,
        }))
    }

    /// Counts a failed attempt; locks the account until `lock_until` once `max_attempts` is
    /// reached. Returns the lock's end when this attempt locked it.
    pub async fn record_password_failure(
        &self,
        user_id: &str,
        max_attempts: i64,
        lock_until: i64,
        actor: &str,
    ) -> Result<Option<i64>> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        let (failed, locked_until): (i64, Option<i64>) = sqlx::query_as(&format!(
            "SELECT failed_attempts, locked_until FROM users WHERE id = $1{}",
            self.db.for_update()
        ))
        .bind(user_id)
        .fetch_one(&mut *w.tx)
        .await?;
        // A lock that ran out before the sweeper noticed ends here, with its event, and the
        // count starts again.
        let failed = if locked_until.is_some_and(|until| until <= now) {
            Self::insert_user_event(&mut w.tx, "user.account.unlock", user_id, "system", now).await?;
            1
        } else {
            failed + 1
        };
        let locks = failed >= max_attempts;
        sqlx::query("UPDATE users SET failed_attempts = $1, locked_until = $2 WHERE id = $3")
            .bind(if locks { 0 } else { failed })
            .bind(locks.then_some(lock_until))
            .bind(user_id)
            .execute(&mut *w.tx)
            .await?;
        if locks {
            Self::insert_event(
                &mut w.tx,
                NewEvent {
                    event_type: "user.account.lock",
                    user_id,
                    details: vec![
                        ("reason", "too many failed password attempts".into()),
                        ("failed_attempts", failed.to_string()),
                    ],
                    ..Default::default()
                },
                actor,
                now,
            )
            .await?;
        }
        w.tx.commit().await?;
        Ok(locks.then_some(lock_until))
    }

    /// Clears failures after a correct password and records the sign-in.
    pub async fn record_password_success(&self, user_id: &str) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query("UPDATE users SET failed_attempts = 0, last_login_at = $1 WHERE id = $2")
            .bind(now_micros())
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Ends lockouts that have run out, with a `user.account.unlock` event each.
    pub async fn end_expired_lockouts(&self, now: i64) -> Result<usize> {
        let mut w = self.db.begin_write().await?;
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM users WHERE locked_until IS NOT NULL AND locked_until <= $1 ORDER BY id LIMIT 500",
        )
        .bind(now)
        .fetch_all(&mut *w.tx)
        .await?;
        for (id,) in &rows {
            sqlx::query("UPDATE users SET locked_until = NULL, failed_attempts = 0 WHERE id = $1")
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
            Self::insert_user_event(&mut w.tx, "user.account.unlock", id, "system", now).await?;
        }
        w.tx.commit().await?;
        Ok(rows.len())
    }

    /// Stores a sealed TOTP seed, replacing any earlier one.
    pub async fn set_totp_seed(&self, user_id: &str, sealed: &[u8], actor: &str) -> Result<()> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        let updated =
            sqlx::query("UPDATE users SET totp_seed = $1, totp_last_step = NULL, updated_at = $2 WHERE id = $3")
                .bind(sealed)
                .bind(now)
                .bind(user_id)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
        if updated == 0 {
            return Err(Error::UserNotFound(user_id.to_owned()));
        }
        Self::insert_event(
            &mut w.tx,
            NewEvent {
                event_type: "user.mfa.factor.activate",
                user_id,
                details: vec![("factor", "totp".into())],
                ..Default::default()
            },
            actor,
            now,
        )
        .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// The user and their sealed TOTP seed, if enrolled.
    pub async fn totp_seed(&self, user_id: &str) -> Result<(User, Option<Vec<u8>>)> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS}, totp_seed FROM users WHERE id = $1"))
            .bind(user_id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::UserNotFound(user_id.to_owned()))?;
        Ok((user_from_row(&row)?, row.try_get("totp_seed")?))
    }

    /// Records that the code of `step` was used; false when that step (or a later one) was
    /// already used — a replay.
    pub async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool> {
        let _turn = self.db.write_turn().await;
        let updated = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    // ----- sessions -----

    /// Stores a new session (by its token's hash) with its start events.
    pub async fn create_session(&self, session: &Session, token_hash: &str, actor: &str) -> Result<()> {
        let mut w = self.db.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}, token_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, '', $10, $11, $12)"
        ))
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.device_id)
        .bind(session.amr.join(" "))
        .bind(flag(session.device_authenticator))
        .bind(session.created_at)
        .bind(session.last_active_at)
        .bind(session.idle_timeout_us)
        .bind(session.expires_at)
        .bind(&session.client_ip)
        .bind(&session.user_agent)
        .bind(token_hash)
        .execute(&mut *w.tx)
        .await?;
        let mut details = vec![("amr", session.amr.join(" "))];
        if !session.device_id.is_empty() {
            details.push(("device_id", session.device_id.clone()));
        }
        Self::insert_event(
            &mut w.tx,
            NewEvent {
                event_type: "user.session.start",
                user_id: &session.user_id,
                session_id: &session.id,
                details,
            },
            actor,
            session.created_at,
        )
        .await?;
        if session.amr.iter().any(|m| m == "mfa") {
            Self::insert_event(
                &mut w.tx,
                NewEvent {
                    event_type: "user.authentication.auth_via_mfa",
                    user_id: &session.user_id,
                    session_id: &session.id,
                    details: vec![],
                },
                actor,
                session.created_at,
            )
            .await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    /// The session a token hash stands for.
    pub async fn session_by_token_hash(&self, token_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Moves a session's last activity forward (never back).
    pub async fn touch_session(&self, id: &str, at: i64) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "UPDATE sessions SET last_active_at = $1 WHERE id = $2 AND last_active_at < $1 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// A session by id.
    pub async fn get_session(&self, id: &str) -> Result<Session> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::SessionNotFound(id.to_owned()))?;
        session_from_row(&row)
    }

    /// Sessions of a user or a device in id order after `after_id`; only live ones unless
    /// `include_ended`.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        device_id: &str,
        include_ended: bool,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Session>> {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        if !user_id.is_empty() {
            values.push(SqlValue::Text(user_id.to_owned()));
            clauses.push(format!("user_id = ${}", values.len()));
        }
        if !device_id.is_empty() {
            values.push(SqlValue::Text(device_id.to_owned()));
            clauses.push(format!("device_id = ${}", values.len()));
        }
        if !include_ended {
            values.push(SqlValue::Int(now_micros()));
            // Idle expiry too, so a page is never cut short by sessions filtered out below.
            clauses.push(format!(
                "revoked_at IS NULL AND expires_at > ${n} AND last_active_at + idle_timeout_us > ${n}",
                n = values.len()
            ));
        }
        let condition = SqlCondition {
            sql: clauses.join(" AND "),
            values,
        };
        let (sql, values) = keyset_page(SESSION_COLUMNS, "sessions", &condition, after_id, limit);
        let rows = bind_values(sqlx::query(&sql), &values).fetch_all(&self.db.pool).await?;
        let now = now_micros();
        let sessions = rows.iter().map(session_from_row).collect::<Result<Vec<_>>>()?;
        // Idle expiry depends on last activity, which SQL above does not check.
        Ok(sessions
            .into_iter()
            .filter(|s| include_ended || s.state(now) == crate::model::SessionState::Active)
            .collect())
    }

    /// Revokes the live sessions `selector` picks, inside `tx`: marks them, appends them to the
    /// feed and records `user.session.end`. The feed's order must be its commit order, so on
    /// PostgreSQL revoking transactions take turns on the feed table.
    async fn revoke_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        selector: &SessionSelector,
        reason: pb::RevocationReason,
        actor: &str,
        now: i64,
    ) -> Result<Vec<RevocationRecord>> {
        if self.db.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut **tx)
                .await?;
        }
        // Sessions already ended by time are not revoked again (nor counted, nor fed).
        let mut clauses = vec![
            "revoked_at IS NULL".to_owned(),
            "expires_at > $1".to_owned(),
            "last_active_at + idle_timeout_us > $1".to_owned(),
        ];
        let mut values = vec![SqlValue::Int(now)];
        if !selector.user_id.is_empty() {
            values.push(SqlValue::Text(selector.user_id.clone()));
            clauses.push(format!("user_id = ${}", values.len()));
        }
        if !selector.device_id.is_empty() {
            values.push(SqlValue::Text(selector.device_id.clone()));
            clauses.push(format!("device_id = ${}", values.len()));
        }
        if selector.device_authenticator_only {
            clauses.push("device_authenticator = 1".to_owned());
        }
        let sql = format!(
            "SELECT id, user_id, device_id FROM sessions WHERE {} ORDER BY id",
            clauses.join(" AND ")
        );
        let rows = bind_values(sqlx::query(&sql), &values).fetch_all(&mut **tx).await?;
        let mut revoked = Vec::with_capacity(rows.len());
        for row in rows {
            let session_id: String = row.try_get("id")?;
            let user_id: String = row.try_get("user_id")?;
            let device_id: String = row.try_get("device_id")?;
            revoked.push(
                self.revoke_one_in(tx, session_id, user_id, device_id, reason, actor, now)
                    .await?,
            );
        }
        Ok(revoked)
    }

    #[allow(clippy::too_many_arguments)]
    async fn revoke_one_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        session_id: String,
        user_id: String,
        device_id: String,
        reason: pb::RevocationReason,
        actor: &str,
        now: i64,
    ) -> Result<RevocationRecord> {
        sqlx::query("UPDATE sessions SET revoked_at = $1, revocation_reason = $2 WHERE id = $3")
            .bind(now)
            .bind(reason.as_str_name())
            .bind(&session_id)
            .execute(&mut **tx)
            .await?;
        let row = sqlx::query(
            "INSERT INTO revocations (session_id, user_id, device_id, reason, revoked_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING seq",
        )
        .bind(&session_id)
        .bind(&user_id)
        .bind(&device_id)
        .bind(reason.as_str_name())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        let seq: i64 = row.try_get("seq")?;
        Self::insert_event(
            tx,
            NewEvent {
                event_type: "user.session.end",
                user_id: &user_id,
                session_id: &session_id,
                details: vec![("reason", crate::model::reason_name(reason).to_owned())],
            },
            actor,
            now,
        )
        .await?;
        Ok(RevocationRecord {
            seq,
            session_id,
            user_id,
            device_id,
            reason,
            revoked_at: now,
        })
    }

    /// Revokes one session; unchanged when already ended.
    pub async fn revoke_session(
        &self,
        id: &str,
        reason: pb::RevocationReason,
        actor: &str,
    ) -> Result<(Session, Option<RevocationRecord>)> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        if self.db.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *w.tx)
                .await?;
        }
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1{}",
            self.db.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| Error::SessionNotFound(id.to_owned()))?;
        let session = session_from_row(&row)?;
        let record = if session.revoked_at.is_none() {
            Some(
                self.revoke_one_in(
                    &mut w.tx,
                    session.id.clone(),
                    session.user_id.clone(),
                    session.device_id.clone(),
                    reason,
                    actor,
                    now,
                )
                .await?,
            )
        } else {
            None
        };
        let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *w.tx)
            .await?;
        let session = session_from_row(&row)?;
        w.tx.commit().await?;
        Ok((session, record))
    }

    /// Revokes the sessions `selector` picks, once per idempotency key (a repeated key returns
    /// the first count and ends nothing new).
    pub async fn revoke_sessions(
        &self,
        selector: &SessionSelector,
        reason: pb::RevocationReason,
        idempotency_key: &str,
        actor: &str,
    ) -> Result<(i64, Vec<RevocationRecord>)> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        if self.db.backend == Backend::Postgres {
            // Taken before the key is checked, so a concurrent call with the same key waits and
            // then finds it applied, rather than failing on the key's uniqueness.
            sqlx::query("LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *w.tx)
                .await?;
        }
        if !idempotency_key.is_empty() {
            let applied: Option<(i64,)> =
                sqlx::query_as("SELECT revoked_count FROM applied_revocations WHERE idempotency_key = $1")
                    .bind(idempotency_key)
                    .fetch_optional(&mut *w.tx)
                    .await?;
            if let Some((count,)) = applied {
                return Ok((count, Vec::new()));
            }
        }
        let revoked = self.revoke_in(&mut w.tx, selector, reason, actor, now).await?;
        let count = i64::try_from(revoked.len()).unwrap_or(i64::MAX);
        if !idempotency_key.is_empty() {
            // A concurrent call with the same key loses here on the primary key and rolls back.
            sqlx::query(
                "INSERT INTO applied_revocations (idempotency_key, revoked_count, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(idempotency_key)
            .bind(count)
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        }
        w.tx.commit().await?;
        Ok((count, revoked))
    }

    /// Feed rows after `seq`, oldest first.
    pub async fn revocations_after(&self, seq: i64, limit: usize) -> Result<Vec<RevocationRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM revocations WHERE seq > $1 ORDER BY seq LIMIT {limit}"
        ))
        .bind(seq)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(revocation_from_row).collect()
    }

    /// The newest feed position (0 when empty).
    pub async fn latest_revocation_seq(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM revocations")
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get("seq")?)
    }

    // ----- authorization codes -----

    /// Stores a code by its hash.
    pub async fn insert_code(&self, code_hash: &str, code: &AuthorizationCode) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, session_id, client_id, redirect_uri, code_challenge, \
             code_challenge_method, nonce, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(code_hash)
        .bind(&code.session_id)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(&code.code_challenge_method)
        .bind(&code.nonce)
        .bind(code.scopes.join(" "))
        .bind(now_micros())
        .bind(code.expires_at)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Redeems a code once; a second redemption revokes the code's session. `matches` checks
    /// the request against the code (client, redirect URI, PKCE) before the code is spent, so a
    /// request that fails it — someone holding a stolen code but not the verifier — neither
    /// spends the code nor ends the session.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        matches: impl FnOnce(&AuthorizationCode) -> Result<()>,
        actor: &str,
    ) -> Result<(Redemption, Option<RevocationRecord>)> {
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT * FROM authorization_codes WHERE code_hash = $1{}",
            self.db.for_update()
        ))
        .bind(code_hash)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(row) = row else {
            return Ok((Redemption::Unknown, None));
        };
        let redeemed_at: Option<i64> = row.try_get("redeemed_at")?;
        let scopes: String = row.try_get("scopes")?;
        let code = AuthorizationCode {
            session_id: row.try_get("session_id")?,
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            code_challenge: row.try_get("code_challenge")?,
            code_challenge_method: row.try_get("code_challenge_method")?,
            nonce: row.try_get("nonce")?,
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
            expires_at: row.try_get("expires_at")?,
        };
        if redeemed_at.is_some() {
            // RFC 6749 §4.1.2: a reused code means it leaked; end what it granted.
            if self.db.backend == Backend::Postgres {
                sqlx::query("LOCK TABLE revocations IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *w.tx)
                    .await?;
            }
            let session = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"))
                .bind(&code.session_id)
                .fetch_optional(&mut *w.tx)
                .await?;
            let mut record = None;
            if let Some(session) = session.as_ref().map(session_from_row).transpose()?
                && session.revoked_at.is_none()
            {
                record = Some(
                    self.revoke_one_in(
                        &mut w.tx,
                        session.id,
                        session.user_id,
                        session.device_id,
                        pb::RevocationReason::AuthorizationCodeReused,
                        actor,
                        now,
                    )
                    .await?,
                );
            }
            w.tx.commit().await?;
            return Ok((Redemption::Reused, record));
        }
        if code.expires_at <= now {
            return Ok((Redemption::Unknown, None));
        }
        matches(&code)?;
        sqlx::query("UPDATE authorization_codes SET redeemed_at = $1 WHERE code_hash = $2")
            .bind(now)
            .bind(code_hash)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok((Redemption::Redeemed(code), None))
    }

    // ----- events and sweeping -----

    /// Events matching `condition` in id order after `after_id`.
    pub async fn list_events(
        &self,
        condition: &SqlCondition,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let (sql, values) = keyset_page("*", "events", condition, after_id, limit);
        let rows = bind_values(sqlx::query(&sql), &values).fetch_all(&self.db.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Deletes, in bounded batches, codes past expiry, sessions ended more than `keep_us` ago,
    /// feed rows and idempotency records older than `keep_us`. Returns rows removed.
    pub async fn sweep(&self, now: i64, keep_us: i64) -> Result<u64> {
        let horizon = now - keep_us;
        let statements = [
            (
                "DELETE FROM authorization_codes WHERE code_hash IN (SELECT code_hash FROM authorization_codes WHERE expires_at < $1 LIMIT 1000)",
                now - 60_000_000,
            ),
            (
                "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1 LIMIT 1000)",
                horizon,
            ),
            (
                "DELETE FROM applied_revocations WHERE idempotency_key IN (SELECT idempotency_key FROM applied_revocations WHERE applied_at < $1 LIMIT 1000)",
                horizon,
            ),
        ];
        let mut removed = 0;
        for (sql, bound) in statements {
            // One short write at a time, so the hot path never waits long behind the sweeper.
            let _turn = self.db.write_turn().await;
            removed += sqlx::query(sql)
                .bind(bound)
                .execute(&self.db.pool)
                .await?
                .rows_affected();
        }
        removed += self.prune_feed(horizon).await?;
        Ok(removed)
    }

    /// Drops feed rows revoked before `horizon` (a batch at a time) and moves the pruned mark, so
    /// a watcher resuming from before it learns it missed revocations instead of silently
    /// skipping them.
    async fn prune_feed(&self, horizon: i64) -> Result<u64> {
        let mut w = self.db.begin_write().await?;
        let row = sqlx::query(
            "SELECT MAX(seq) AS seq FROM (SELECT seq FROM revocations WHERE revoked_at < $1 ORDER BY seq LIMIT 1000) batch",
        )
        .bind(horizon)
        .fetch_one(&mut *w.tx)
        .await?;
        let Some(through): Option<i64> = row.try_get("seq")? else {
            return Ok(0);
        };
        let removed = sqlx::query("DELETE FROM revocations WHERE seq <= $1")
            .bind(through)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE revocation_horizon SET pruned_through = $1 WHERE singleton = 1 AND pruned_through < $1")
            .bind(through)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(removed)
    }

    /// Feed positions up to this one were pruned.
    pub async fn feed_pruned_through(&self) -> Result<i64> {
        let row = sqlx::query("SELECT pruned_through FROM revocation_horizon WHERE singleton = 1")
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get("pruned_through")?)
    }
}
