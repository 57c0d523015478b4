//! policy-svc's tables: the configuration (one version number over apps, zones, assurance
//! policies, policies and rules), assurance failures, and decision events.
//!
//! Configuration changes all take one path, [`Store::change`]: lock the version row, load the
//! whole configuration, change a copy, validate the copy whole, write what differs, bump the
//! version, commit. So changes are serialized, every stored configuration is valid, and a
//! replica that loads version N sees all of change N or none of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use portcullis_proto::device::v1::{DiskEncryptionType, Platform, ScreenLockType};
use serde::{Deserialize, Serialize};
use service_kit::db::{Backend, Database, bind_values};
use service_kit::filter::{SqlCondition, SqlValue};
use sqlx::{AnyConnection, Row};

use crate::error::Error;
use crate::model::{App, AssurancePolicy, ClientType, Configuration, Grace, Policy, PolicyType, Rule, Zone, ZoneKind};

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

/// A committed configuration change.
#[derive(Debug)]
pub struct Changed<T> {
    /// What the change returned.
    pub value: T,
    /// The configuration version now stored (unchanged when nothing differed).
    pub version: i64,
    /// The configuration now stored.
    pub config: Configuration,
    /// Whether anything was written.
    pub written: bool,
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    /// UUIDv7.
    pub id: String,
    /// Unix micros.
    pub time: i64,
    /// App.
    pub client_id: String,
    /// Person.
    pub user_id: String,
    /// Device, or empty.
    pub device_id: String,
    /// Resolved client address, or empty.
    pub client_address: String,
    /// ALLOW, DENY, CHALLENGE.
    pub outcome: String,
    /// Stable code.
    pub reason_code: String,
    /// Sentence.
    pub reason: String,
    /// JSON array of matched rules.
    pub matched: String,
    /// The request id of the Evaluate call.
    pub request_id: String,
}

#[derive(Serialize, Deserialize)]
struct AppBody {
    client_type: ClientType,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    allowed_scopes: Vec<String>,
    access_policy_id: String,
    secret_rotate_time: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct ZoneBody {
    kind: ZoneKind,
    gateways: Vec<String>,
    proxies: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct AssuranceBody {
    platform: String,
    minimum_os_version: Option<String>,
    disk_encryption_types: Vec<String>,
    screen_lock_types: Vec<String>,
    secure_hardware_required: bool,
    jailbreak_forbidden: bool,
    grace: Option<Grace>,
    remediation: String,
}

#[derive(Serialize, Deserialize)]
struct PolicyBody {
    description: String,
    priority: i32,
    group_ids: Vec<String>,
    is_default: bool,
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

fn enum_names<T>(values: &[T], name: impl Fn(&T) -> &'static str) -> Vec<String> {
    values.iter().map(|v| name(v).to_owned()).collect()
}

fn parse_enum<T>(names: &[String], parse: impl Fn(&str) -> Option<T>, what: &str) -> Result<Vec<T>, Error> {
    names
        .iter()
        .map(|n| parse(n).ok_or_else(|| Error::Corrupt(format!("unknown {what} {n:?}"))))
        .collect()
}

impl Store {
    /// Uses `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The stored configuration version.
    pub async fn version(&self) -> Result<i64, Error> {
        let row = sqlx::query("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get("version")?)
    }

    /// The stored configuration and its version, read as one snapshot.
    pub async fn load(&self) -> Result<(i64, Configuration), Error> {
        let mut tx = self.db.pool.begin().await?;
        if self.db.backend == Backend::Postgres {
            // Read Committed would give each SELECT its own snapshot; one snapshot for all of
            // them is what keeps a half-applied change out of view.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let version = sqlx::query("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        let config = load_configuration(&mut tx).await?;
        tx.commit().await?;
        Ok((version, config))
    }

    /// Changes the configuration: `change` edits a copy of the stored configuration (and may
    /// refuse); `validate` judges the whole result; then what differs is written and the version
    /// bumped, all in one transaction. Nothing is written when nothing differs.
    pub async fn change<T>(
        &self,
        change: impl FnOnce(&mut Configuration) -> Result<T, Error>,
        validate: impl FnOnce(&Configuration) -> Result<(), Error>,
    ) -> Result<Changed<T>, Error> {
        let mut write = self.db.begin_write().await?;
        let tx = &mut write.tx;
        // Writing first takes the write lock before anything is read: PostgreSQL's row lock
        // orders concurrent changes, and SQLite's writer lock keeps a replica in another process
        // from committing between this read and this write. Rolled back if nothing changes.
        let version: i64 =
            sqlx::query("UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version")
                .fetch_one(&mut **tx)
                .await?
                .try_get("version")?;
        let version = version - 1;
        let old = load_configuration(tx).await?;
        let mut new = old.clone();
        let value = change(&mut new)?;
        if new == old {
            return Ok(Changed {
                value,
                version,
                config: old,
                written: false,
            });
        }
        validate(&new)?;
        write_differences(tx, &old, &new).await?;
        write.tx.commit().await?;
        Ok(Changed {
            value,
            version: version + 1,
            config: new,
            written: true,
        })
    }

    /// When `device_id` first failed each assurance policy it has failed.
    pub async fn assurance_failures(&self, device_id: &str) -> Result<HashMap<String, i64>, Error> {
        let rows = sqlx::query("SELECT policy_id, first_failed_at FROM assurance_failures WHERE device_id = $1")
            .bind(device_id)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("policy_id")?, row.try_get("first_failed_at")?)))
            .collect()
    }

    /// Records that `device_id` fails `policy_id` as of `now` unless an earlier failure is
    /// recorded; returns the first failure time that stands.
    pub async fn record_assurance_failure(&self, device_id: &str, policy_id: &str, now: i64) -> Result<i64, Error> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO assurance_failures (device_id, policy_id, first_failed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id, policy_id) DO NOTHING",
        )
        .bind(device_id)
        .bind(policy_id)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        let row = sqlx::query("SELECT first_failed_at FROM assurance_failures WHERE device_id = $1 AND policy_id = $2")
            .bind(device_id)
            .bind(policy_id)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get("first_failed_at")?)
    }

    /// Forgets failures of a policy that was changed or deleted: its grace starts afresh.
    pub async fn forget_assurance_failures(&self, policy_ids: &[String]) -> Result<(), Error> {
        let _turn = self.db.write_turn().await;
        for id in policy_ids {
            sqlx::query("DELETE FROM assurance_failures WHERE policy_id = $1")
                .bind(id)
                .execute(&self.db.pool)
                .await?;
        }
        Ok(())
    }

    /// Writes decision events in one statement: the batch travels as one JSON array of rows, so
    /// the statement's text is the same for every batch and both databases keep it prepared,
    /// and nothing is bound per row (SQLite finds each `$N` by walking the statement's parameter
    /// names, so binding costs grow with the square of a statement's parameters).
    pub async fn insert_decisions(&self, conn: &mut AnyConnection, records: &[DecisionRecord]) -> Result<(), Error> {
        const COLUMNS: &str = "id, event_time, client_id, user_id, device_id, client_address, outcome, reason_code, \
                               reason, matched, request_id";
        static SQLITE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO decision_events ({COLUMNS}) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, \
                 value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10 \
                 FROM json_each($1)"
            )
        });
        static POSTGRES: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO decision_events ({COLUMNS}) SELECT e ->> 0, (e ->> 1)::bigint, e ->> 2, e ->> 3, e ->> 4, \
                 e ->> 5, e ->> 6, e ->> 7, e ->> 8, e ->> 9, e ->> 10 FROM json_array_elements($1::json) AS e"
            )
        });
        if records.is_empty() {
            return Ok(());
        }
        let sql = match self.db.backend {
            Backend::Sqlite => SQLITE.as_str(),
            Backend::Postgres => POSTGRES.as_str(),
        };
        let rows: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.id.as_str(),
                    r.time,
                    r.client_id.as_str(),
                    r.user_id.as_str(),
                    r.device_id.as_str(),
                    r.client_address.as_str(),
                    r.outcome.as_str(),
                    r.reason_code.as_str(),
                    r.reason.as_str(),
                    r.matched.as_str(),
                    r.request_id.as_str(),
                )
            })
            .collect();
        let json = serde_json::to_string(&rows).map_err(|e| Error::Corrupt(format!("decision events: {e}")))?;
        sqlx::query(sql).bind(json).execute(conn).await?;
        Ok(())
    }

    /// A page of decision events, newest first, before `before_id`.
    pub async fn list_decisions(
        &self,
        condition: &SqlCondition,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DecisionRecord>, Error> {
        let mut clauses = Vec::new();
        if !condition.sql.is_empty() {
            clauses.push(condition.sql.clone());
        }
        let mut values = condition.values.clone();
        if let Some(before) = before_id {
            values.push(SqlValue::Text(before.to_owned()));
            clauses.push(format!("id < ${}", values.len()));
        }
        let where_clause = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT id, event_time, client_id, user_id, device_id, client_address, outcome, reason_code, reason, \
             matched, request_id FROM decision_events{where_clause} ORDER BY id DESC LIMIT {limit}"
        );
        let rows = bind_values(sqlx::query(&sql), &values).fetch_all(&self.db.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(DecisionRecord {
                    id: row.try_get("id")?,
                    time: row.try_get("event_time")?,
                    client_id: row.try_get("client_id")?,
                    user_id: row.try_get("user_id")?,
                    device_id: row.try_get("device_id")?,
                    client_address: row.try_get("client_address")?,
                    outcome: row.try_get("outcome")?,
                    reason_code: row.try_get("reason_code")?,
                    reason: row.try_get("reason")?,
                    matched: row.try_get("matched")?,
                    request_id: row.try_get("request_id")?,
                })
            })
            .collect()
    }
}

async fn load_configuration(conn: &mut AnyConnection) -> Result<Configuration, Error> {
    let mut config = Configuration::default();
    for row in sqlx::query("SELECT id, name, client_id, secret_hash, body, created_at, updated_at FROM apps")
        .fetch_all(&mut *conn)
        .await?
    {
        let body: AppBody = from_json(&row.try_get::<String, _>("body")?, "app")?;
        let app = App {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            client_id: row.try_get("client_id")?,
            client_type: body.client_type,
            redirect_uris: body.redirect_uris,
            post_logout_redirect_uris: body.post_logout_redirect_uris,
            allowed_scopes: body.allowed_scopes,
            access_policy_id: body.access_policy_id,
            secret_hash: row.try_get("secret_hash")?,
            create_time: row.try_get("created_at")?,
            update_time: row.try_get("updated_at")?,
            secret_rotate_time: body.secret_rotate_time,
        };
        config.apps.insert(app.id.clone(), app);
    }
    for row in sqlx::query("SELECT id, name, body, created_at, updated_at FROM network_zones")
        .fetch_all(&mut *conn)
        .await?
    {
        let body: ZoneBody = from_json(&row.try_get::<String, _>("body")?, "network zone")?;
        let zone = Zone {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            kind: body.kind,
            gateways: body.gateways,
            proxies: body.proxies,
            create_time: row.try_get("created_at")?,
            update_time: row.try_get("updated_at")?,
        };
        config.zones.insert(zone.id.clone(), zone);
    }
    for row in sqlx::query("SELECT id, name, body, created_at, updated_at FROM assurance_policies")
        .fetch_all(&mut *conn)
        .await?
    {
        let body: AssuranceBody = from_json(&row.try_get::<String, _>("body")?, "assurance policy")?;
        let policy = AssurancePolicy {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            platform: Platform::from_str_name(&body.platform)
                .ok_or_else(|| Error::Corrupt(format!("unknown platform {:?}", body.platform)))?,
            minimum_os_version: body.minimum_os_version,
            disk_encryption_types: parse_enum(
                &body.disk_encryption_types,
                DiskEncryptionType::from_str_name,
                "disk encryption type",
            )?,
            screen_lock_types: parse_enum(
                &body.screen_lock_types,
                ScreenLockType::from_str_name,
                "screen lock type",
            )?,
            secure_hardware_required: body.secure_hardware_required,
            jailbreak_forbidden: body.jailbreak_forbidden,
            grace: body.grace,
            remediation: body.remediation,
            create_time: row.try_get("created_at")?,
            update_time: row.try_get("updated_at")?,
        };
        config.assurance.insert(policy.id.clone(), policy);
    }
    for row in sqlx::query("SELECT id, policy_type, name, body, created_at, updated_at FROM policies")
        .fetch_all(&mut *conn)
        .await?
    {
        let body: PolicyBody = from_json(&row.try_get::<String, _>("body")?, "policy")?;
        let policy_type: String = row.try_get("policy_type")?;
        let policy = Policy {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: body.description,
            policy_type: match policy_type.as_str() {
                "GLOBAL_SESSION" => PolicyType::GlobalSession,
                "ACCESS" => PolicyType::Access,
                other => return Err(Error::Corrupt(format!("unknown policy type {other:?}"))),
            },
            priority: body.priority,
            group_ids: body.group_ids,
            is_default: body.is_default,
            rules: Vec::new(),
            create_time: row.try_get("created_at")?,
            update_time: row.try_get("updated_at")?,
        };
        config.policies.insert(policy.id.clone(), policy);
    }
    for row in sqlx::query("SELECT policy_id, body FROM rules")
        .fetch_all(&mut *conn)
        .await?
    {
        let policy_id: String = row.try_get("policy_id")?;
        let rule: Rule = from_json(&row.try_get::<String, _>("body")?, "rule")?;
        if let Some(policy) = config.policies.get_mut(&policy_id) {
            policy.rules.push(rule);
        }
    }
    for policy in config.policies.values_mut() {
        policy.rules.sort_by_key(|r| (r.catch_all, r.priority));
    }
    Ok(config)
}

/// The changed rows of one table: (id, is this a delete).
fn differing<'a, T: PartialEq>(
    old: &'a BTreeMap<String, T>,
    new: &'a BTreeMap<String, T>,
) -> Vec<(&'a str, Option<&'a T>)> {
    let mut out: Vec<(&str, Option<&T>)> = old
        .keys()
        .filter(|id| !new.contains_key(*id))
        .map(|id| (id.as_str(), None))
        .collect();
    out.extend(
        new.iter()
            .filter(|(id, value)| old.get(*id) != Some(*value))
            .map(|(id, value)| (id.as_str(), Some(value))),
    );
    out
}

async fn write_differences(conn: &mut AnyConnection, old: &Configuration, new: &Configuration) -> Result<(), Error> {
    // Deletes first, so a name freed by one resource can be taken by another in the same change.
    for (id, value) in differing(&old.apps, &new.apps) {
        sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        if let Some(app) = value {
            let body = to_json(&AppBody {
                client_type: app.client_type,
                redirect_uris: app.redirect_uris.clone(),
                post_logout_redirect_uris: app.post_logout_redirect_uris.clone(),
                allowed_scopes: app.allowed_scopes.clone(),
                access_policy_id: app.access_policy_id.clone(),
                secret_rotate_time: app.secret_rotate_time,
            })?;
            sqlx::query(
                "INSERT INTO apps (id, name, client_id, secret_hash, body, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(app.name.as_str())
            .bind(app.client_id.as_str())
            .bind(app.secret_hash.as_deref())
            .bind(body)
            .bind(app.create_time)
            .bind(app.update_time)
            .execute(&mut *conn)
            .await?;
        }
    }
    for (id, value) in differing(&old.zones, &new.zones) {
        sqlx::query("DELETE FROM network_zones WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        if let Some(zone) = value {
            let body = to_json(&ZoneBody {
                kind: zone.kind,
                gateways: zone.gateways.clone(),
                proxies: zone.proxies.clone(),
            })?;
            sqlx::query(
                "INSERT INTO network_zones (id, name, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(zone.name.as_str())
            .bind(body)
            .bind(zone.create_time)
            .bind(zone.update_time)
            .execute(&mut *conn)
            .await?;
        }
    }
    for (id, value) in differing(&old.assurance, &new.assurance) {
        sqlx::query("DELETE FROM assurance_policies WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        if let Some(policy) = value {
            let body = to_json(&AssuranceBody {
                platform: policy.platform.as_str_name().to_owned(),
                minimum_os_version: policy.minimum_os_version.clone(),
                disk_encryption_types: enum_names(&policy.disk_encryption_types, DiskEncryptionType::as_str_name),
                screen_lock_types: enum_names(&policy.screen_lock_types, ScreenLockType::as_str_name),
                secure_hardware_required: policy.secure_hardware_required,
                jailbreak_forbidden: policy.jailbreak_forbidden,
                grace: policy.grace,
                remediation: policy.remediation.clone(),
            })?;
            sqlx::query(
                "INSERT INTO assurance_policies (id, name, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(policy.name.as_str())
            .bind(body)
            .bind(policy.create_time)
            .bind(policy.update_time)
            .execute(&mut *conn)
            .await?;
        }
    }
    for (id, value) in differing(&old.policies, &new.policies) {
        sqlx::query("DELETE FROM rules WHERE policy_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM policies WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        if let Some(policy) = value {
            let body = to_json(&PolicyBody {
                description: policy.description.clone(),
                priority: policy.priority,
                group_ids: policy.group_ids.clone(),
                is_default: policy.is_default,
            })?;
            let policy_type = match policy.policy_type {
                PolicyType::GlobalSession => "GLOBAL_SESSION",
                PolicyType::Access => "ACCESS",
            };
            sqlx::query(
                "INSERT INTO policies (id, policy_type, name, body, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(policy_type)
            .bind(policy.name.as_str())
            .bind(body)
            .bind(policy.create_time)
            .bind(policy.update_time)
            .execute(&mut *conn)
            .await?;
            for rule in &policy.rules {
                sqlx::query("INSERT INTO rules (id, policy_id, body) VALUES ($1, $2, $3)")
                    .bind(rule.id.as_str())
                    .bind(id)
                    .bind(to_json(rule)?)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(())
}
