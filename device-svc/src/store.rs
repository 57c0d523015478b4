//! Storage of devices, users, keys, events, the outbox and assertion replays, through sqlx.
//!
//! One SQL text serves SQLite and PostgreSQL: `$n` placeholders, integers for times and flags.

use std::collections::HashMap;
use std::sync::LazyLock;

use service_kit::db::{Backend, Database, bind_values, keyset_page, placeholders};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};

use crate::device::{
    Device, DeviceKey, DeviceStatus, DeviceUser, KeyPurpose, ManagementSource, Platform, Profile, now_micros,
};
use crate::enrollment::Enrollment;
use crate::error::{Error, Result};
use crate::lifecycle::{self, Action, Transition};
use crate::outbox::Effect;
use crate::signals::Signals;
use service_kit::filter::{SqlCondition, SqlValue};

/// A device event about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent<'a> {
    /// `device.lifecycle.suspend`, …
    pub event_type: &'static str,
    /// The device.
    pub device_id: &'a str,
    /// The user concerned, or empty.
    pub user_id: &'a str,
}

/// A recorded device event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Time-ordered id.
    pub id: String,
    /// Event type.
    pub event_type: String,
    /// The device.
    pub device_id: String,
    /// The user concerned, or empty.
    pub user_id: String,
    /// SPIFFE id of the caller.
    pub actor: String,
    /// When (µs).
    pub created_at: i64,
}

/// A key found by its id, with the device it belongs to.
#[derive(Debug, Clone)]
pub struct KeyOwner {
    /// The key.
    pub key: DeviceKey,
    /// The device's id.
    pub device_id: String,
    /// The device's status.
    pub status: DeviceStatus,
    /// The key was retired by deactivation or user removal.
    pub removed: bool,
}

/// A pending outbox entry.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// Id; also the idempotency key sent to the receiver.
    pub id: String,
    /// What to do.
    pub effect: Effect,
    /// Request id of the call that caused it.
    pub request_id: String,
    /// Delivery attempts so far.
    pub attempts: i64,
}

/// The outcome of an enrollment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The device, with keys.
    pub device: Device,
    /// A new device was created (rather than a user added to an existing one).
    pub created: bool,
}

/// device-svc's store.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

const DEVICE_COLUMNS: &str = "id, status, created_at, updated_at, last_seen_at, display_name, platform, manufacturer, \
    model, os_version, serial_number, udid, sid, imei, meid, tpm_public_key_hash, secure_hardware_present, \
    disk_encryption_type, screen_lock_type, integrity_jailbreak, management_source, app_instance_id, signals, managed";

fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn flag(value: bool) -> i64 {
    i64::from(value)
}

/// Searchable terms of a profile: each identifier, lower-cased, and each word of the display name
/// (split at anything but letters, digits and apostrophes, so "FINANCE-LAPTOP-02" is found by "laptop").
fn search_terms(profile: &Profile) -> Vec<String> {
    let mut terms: Vec<String> = [
        &profile.display_name,
        &profile.serial_number,
        &profile.imei,
        &profile.meid,
        &profile.udid,
        &profile.sid,
    ]
    .into_iter()
    .filter(|v| !v.is_empty())
    .map(|v| v.to_lowercase())
    .collect();
    terms.extend(
        profile
            .display_name
            .split(|c: char| !(c.is_alphanumeric() || c == '\''))
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase),
    );
    terms.sort();
    terms.dedup();
    terms
}

/// The SQL condition (and its values) for a prefix search, numbered from `first`.
pub fn search_condition(search: &str, first: usize) -> SqlCondition {
    let low = search.to_lowercase();
    // Every string that starts with `low` sorts between `low` and `low` + U+10FFFF byte-wise.
    let high = format!("{low}\u{10FFFF}");
    SqlCondition {
        sql: format!(
            "id IN (SELECT device_id FROM device_search WHERE term >= ${first} AND term < ${})",
            first + 1
        ),
        values: vec![SqlValue::Text(low), SqlValue::Text(high)],
    }
}

fn corrupt(what: &str, value: &str) -> Error {
    Error::Corrupt(format!("{what} {value:?}"))
}

fn device_from_row(row: &AnyRow) -> Result<Device> {
    let status: String = row.try_get("status")?;
    let platform: String = row.try_get("platform")?;
    let disk: String = row.try_get("disk_encryption_type")?;
    let screen: String = row.try_get("screen_lock_type")?;
    let source: String = row.try_get("management_source")?;
    let signals: String = row.try_get("signals")?;
    use portcullis_proto::device::v1 as pb;
    Ok(Device {
        id: row.try_get("id")?,
        status: DeviceStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        profile: Profile {
            display_name: row.try_get("display_name")?,
            platform: Platform::parse(&platform).ok_or_else(|| corrupt("platform", &platform))?,
            manufacturer: row.try_get("manufacturer")?,
            model: row.try_get("model")?,
            os_version: row.try_get("os_version")?,
            serial_number: row.try_get("serial_number")?,
            udid: row.try_get("udid")?,
            sid: row.try_get("sid")?,
            imei: row.try_get("imei")?,
            meid: row.try_get("meid")?,
            tpm_public_key_hash: row.try_get("tpm_public_key_hash")?,
            secure_hardware_present: row.try_get::<i64, _>("secure_hardware_present")? != 0,
            disk_encryption_type: pb::DiskEncryptionType::from_str_name(&disk)
                .ok_or_else(|| corrupt("disk_encryption_type", &disk))?,
            screen_lock_type: pb::ScreenLockType::from_str_name(&screen)
                .ok_or_else(|| corrupt("screen_lock_type", &screen))?,
            integrity_jailbreak: row.try_get::<i64, _>("integrity_jailbreak")? != 0,
        },
        management_source: ManagementSource::parse(&source).ok_or_else(|| corrupt("management_source", &source))?,
        app_instance_id: row.try_get("app_instance_id")?,
        signals: serde_json::from_str(&signals).map_err(|_| corrupt("signals", &signals))?,
        keys: Vec::new(),
        users: Vec::new(),
    })
}

/// A looked-up key with its device, or why its stored rows do not decode.
pub type FoundKey = std::result::Result<(KeyOwner, Device), String>;

/// The asserted key (`asserted_*` columns) and its device, from a row of
/// [`Store::keys_and_devices`]; the device's keys are added row by row.
fn key_owner_from_row(row: &AnyRow, kid: &str) -> Result<(KeyOwner, Device)> {
    let device = device_from_row(row)?;
    let purpose: String = row.try_get("asserted_purpose")?;
    let removed_at: Option<i64> = row.try_get("asserted_removed_at")?;
    let owner = KeyOwner {
        key: DeviceKey {
            kid: kid.to_owned(),
            purpose: KeyPurpose::parse(&purpose).ok_or_else(|| corrupt("purpose", &purpose))?,
            hardware_protected: row.try_get::<i64, _>("asserted_hardware_protected")? != 0,
            x: row.try_get("asserted_x")?,
            y: row.try_get("asserted_y")?,
            user_id: row.try_get("asserted_user_id")?,
        },
        device_id: device.id.clone(),
        status: device.status,
        removed: removed_at.is_some(),
    };
    Ok((owner, device))
}

fn key_from_row(row: &AnyRow) -> Result<(String, DeviceKey)> {
    let purpose: String = row.try_get("purpose")?;
    Ok((
        row.try_get("device_id")?,
        DeviceKey {
            kid: row.try_get("kid")?,
            purpose: KeyPurpose::parse(&purpose).ok_or_else(|| corrupt("purpose", &purpose))?,
            hardware_protected: row.try_get::<i64, _>("hardware_protected")? != 0,
            x: row.try_get("x")?,
            y: row.try_get("y")?,
            user_id: row.try_get("user_id")?,
        },
    ))
}

fn user_from_row(row: &AnyRow) -> Result<(String, DeviceUser)> {
    Ok((
        row.try_get("device_id")?,
        DeviceUser {
            user_id: row.try_get("user_id")?,
            created_at: row.try_get("created_at")?,
        },
    ))
}

fn event_from_row(row: &AnyRow) -> Result<Event> {
    Ok(Event {
        id: row.try_get("id")?,
        event_type: row.try_get("event_type")?,
        device_id: row.try_get("device_id")?,
        user_id: row.try_get("user_id")?,
        actor: row.try_get("actor")?,
        created_at: row.try_get("created_at")?,
    })
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

    /// The database behind the store.
    pub fn database(&self) -> &Database {
        &self.db
    }

    async fn insert_event(tx: &mut Transaction<'static, Any>, event: NewEvent<'_>, actor: &str, at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_events (id, event_type, device_id, user_id, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(event.event_type)
        .bind(event.device_id)
        .bind(event.user_id)
        .bind(actor)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn insert_outbox(
        tx: &mut Transaction<'static, Any>,
        effect: &Effect,
        request_id: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO outbox (id, kind, payload, request_id, attempts, next_attempt_at, last_error, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5, '', $5)",
        )
        .bind(new_id())
        .bind(effect.kind())
        .bind(effect.encode())
        .bind(request_id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn insert_keys(
        tx: &mut Transaction<'static, Any>,
        device_id: &str,
        keys: &[DeviceKey],
        at: i64,
    ) -> Result<()> {
        for key in keys {
            let owner: Option<(String, String)> =
                sqlx::query_as("SELECT device_id, user_id FROM device_keys WHERE kid = $1")
                    .bind(&key.kid)
                    .fetch_optional(&mut **tx)
                    .await?;
            match owner {
                // The same user enrolling the same key on the same device again (after
                // reactivation, say) brings the key back with what was sent now.
                Some((d, u)) if d == device_id && u == key.user_id => {
                    sqlx::query(
                        "UPDATE device_keys SET purpose = $1, hardware_protected = $2, x = $3, y = $4, removed_at = NULL \
                         WHERE kid = $5",
                    )
                    .bind(key.purpose.as_str())
                    .bind(flag(key.hardware_protected))
                    .bind(&key.x)
                    .bind(&key.y)
                    .bind(&key.kid)
                    .execute(&mut **tx)
                    .await?;
                    continue;
                }
                Some(_) => return Err(Error::KeyAlreadyEnrolled(key.kid.clone())),
                None => {}
            }
            sqlx::query(
                "INSERT INTO device_keys (kid, device_id, user_id, purpose, hardware_protected, x, y, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&key.kid)
            .bind(device_id)
            .bind(&key.user_id)
            .bind(key.purpose.as_str())
            .bind(flag(key.hardware_protected))
            .bind(&key.x)
            .bind(&key.y)
            .bind(at)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Stores a new enrollment token for `user_id`.
    pub async fn create_enrollment_token(
        &self,
        token_hash: &str,
        user_id: &str,
        actor: &str,
        expires_at: i64,
    ) -> Result<()> {
        let mut w = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO enrollment_tokens (token_hash, user_id, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(actor)
        .bind(now_micros())
        .bind(expires_at)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// The user an unused, unexpired enrollment token is for.
    pub async fn enrollment_token_user(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM enrollment_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_micros())
        .fetch_optional(&self.db.pool)
        .await?)
    }

    /// Enrolls: creates the device, or links the user to the device with the same app instance id.
    pub async fn enroll(&self, enrollment: &Enrollment, actor: &str) -> Result<Enrolled> {
        let mut w = self.db.begin_write().await?;
        let now = now_micros();
        let existing: Option<(String, String)> = sqlx::query_as(&format!(
            "SELECT id, status FROM devices WHERE app_instance_id = $1{}",
            self.db.for_update()
        ))
        .bind(&enrollment.app_instance_id)
        .fetch_optional(&mut *w.tx)
        .await?;
        let (device_id, created) = match existing {
            Some((id, status)) => {
                let status = DeviceStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?;
                lifecycle::check_enroll(status)?;
                sqlx::query("UPDATE devices SET signals = $1, updated_at = $2, last_seen_at = $2 WHERE id = $3")
                    .bind(signals_json(&enrollment.signals)?)
                    .bind(now)
                    .bind(&id)
                    .execute(&mut *w.tx)
                    .await?;
                (id, false)
            }
            None => {
                let id = new_id();
                self.insert_device(&mut w.tx, &id, enrollment, now).await?;
                Self::insert_event(
                    &mut w.tx,
                    NewEvent {
                        event_type: "device.enrollment.create",
                        device_id: &id,
                        user_id: &enrollment.user_id,
                    },
                    actor,
                    now,
                )
                .await?;
                (id, true)
            }
        };
        let linked = sqlx::query(
            "INSERT INTO device_users (device_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&device_id)
        .bind(&enrollment.user_id)
        .bind(now)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if linked > 0 {
            Self::insert_event(
                &mut w.tx,
                NewEvent {
                    event_type: "device.user.add",
                    device_id: &device_id,
                    user_id: &enrollment.user_id,
                },
                actor,
                now,
            )
            .await?;
        }
        Self::insert_keys(&mut w.tx, &device_id, &enrollment.keys, now).await?;
        if let Some(token_hash) = &enrollment.token_hash {
            // Used up in the enrollment's own transaction: a failed enrollment leaves it usable,
            // and of two racing enrollments only one finds it unused.
            let used = sqlx::query(
                "UPDATE enrollment_tokens SET used_at = $1, device_id = $2 \
                 WHERE token_hash = $3 AND user_id = $4 AND used_at IS NULL AND expires_at > $1",
            )
            .bind(now)
            .bind(&device_id)
            .bind(token_hash)
            .bind(&enrollment.user_id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            if used != 1 {
                return Err(Error::InvalidEnrollmentToken);
            }
        }
        let device = Self::load_device(&mut w.tx, &device_id, false).await?;
        w.tx.commit().await?;
        Ok(Enrolled { device, created })
    }

    async fn insert_device(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
        e: &Enrollment,
        now: i64,
    ) -> Result<()> {
        let p = &e.profile;
        sqlx::query(&format!(
            "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES \
             ($1, $2, $3, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
        ))
        .bind(id)
        .bind(DeviceStatus::Active.as_str())
        .bind(now)
        .bind(&p.display_name)
        .bind(p.platform.as_str())
        .bind(&p.manufacturer)
        .bind(&p.model)
        .bind(&p.os_version)
        .bind(&p.serial_number)
        .bind(&p.udid)
        .bind(&p.sid)
        .bind(&p.imei)
        .bind(&p.meid)
        .bind(&p.tpm_public_key_hash)
        .bind(flag(p.secure_hardware_present))
        .bind(p.disk_encryption_type.as_str_name())
        .bind(p.screen_lock_type.as_str_name())
        .bind(flag(p.integrity_jailbreak))
        .bind(ManagementSource::None.as_str())
        .bind(&e.app_instance_id)
        .bind(signals_json(&e.signals)?)
        .bind(flag(false))
        .execute(&mut **tx)
        .await?;
        for term in search_terms(p) {
            sqlx::query("INSERT INTO device_search (term, device_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(term)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn load_device(tx: &mut Transaction<'static, Any>, id: &str, with_users: bool) -> Result<Device> {
        let row = sqlx::query(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))?;
        let mut device = device_from_row(&row)?;
        for row in sqlx::query("SELECT * FROM device_keys WHERE device_id = $1 AND removed_at IS NULL ORDER BY kid")
            .bind(id)
            .fetch_all(&mut **tx)
            .await?
        {
            device.keys.push(key_from_row(&row)?.1);
        }
        if with_users {
            for row in sqlx::query("SELECT * FROM device_users WHERE device_id = $1 ORDER BY user_id")
                .bind(id)
                .fetch_all(&mut **tx)
                .await?
            {
                device.users.push(user_from_row(&row)?.1);
            }
        }
        Ok(device)
    }

    /// One device with its keys and users.
    pub async fn get_device(&self, id: &str) -> Result<Device> {
        let row = sqlx::query(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::DeviceNotFound(id.to_owned()))?;
        let mut devices = [device_from_row(&row)?];
        self.attach(&mut devices, true).await?;
        let [device] = devices;
        Ok(device)
    }

    /// Fills in keys (and users, when asked) for a page of devices with two queries.
    async fn attach(&self, devices: &mut [Device], with_users: bool) -> Result<()> {
        if devices.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
        let index: std::collections::HashMap<String, usize> =
            ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
        let sql = format!(
            "SELECT * FROM device_keys WHERE device_id IN ({}) AND removed_at IS NULL ORDER BY kid",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(id.as_str());
        }
        let mut keys = Vec::new();
        for row in query.fetch_all(&self.db.pool).await? {
            keys.push(key_from_row(&row)?);
        }
        let mut users = Vec::new();
        if with_users {
            let sql = format!(
                "SELECT * FROM device_users WHERE device_id IN ({}) ORDER BY user_id",
                placeholders(1, ids.len())
            );
            let mut query = sqlx::query(&sql);
            for id in &ids {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&self.db.pool).await? {
                users.push(user_from_row(&row)?);
            }
        }
        for (device_id, key) in keys {
            if let Some(&i) = index.get(&device_id) {
                devices[i].keys.push(key);
            }
        }
        for (device_id, user) in users {
            if let Some(&i) = index.get(&device_id) {
                devices[i].users.push(user);
            }
        }
        Ok(())
    }

    /// Devices matching `condition`, in id order, after `after_id`, at most `limit`.
    pub async fn list_devices(
        &self,
        condition: &SqlCondition,
        after_id: Option<&str>,
        limit: usize,
        with_users: bool,
    ) -> Result<Vec<Device>> {
        let (sql, values) = keyset_page(DEVICE_COLUMNS, "devices", condition, after_id, limit);
        let rows = bind_values(sqlx::query(&sql), &values).fetch_all(&self.db.pool).await?;
        let mut devices = rows.iter().map(device_from_row).collect::<Result<Vec<_>>>()?;
        self.attach(&mut devices, with_users).await?;
        Ok(devices)
    }

    /// How many devices match `condition`.
    pub async fn count_devices(&self, condition: &SqlCondition) -> Result<i64> {
        let where_clause = if condition.sql.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", condition.sql)
        };
        let sql = format!("SELECT COUNT(*) FROM devices{where_clause}");
        let row = bind_values(sqlx::query(&sql), &condition.values)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Applies a lifecycle action: the status change, its event, its side effects and the
    /// outbox rows for other services commit together. Idempotent when already in the target.
    pub async fn transition(&self, id: &str, action: Action, actor: &str, request_id: &str) -> Result<Device> {
        let mut w = self.db.begin_write().await?;
        let status: Option<(String,)> = sqlx::query_as(&format!(
            "SELECT status FROM devices WHERE id = $1{}",
            self.db.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await?;
        let (status,) = status.ok_or_else(|| Error::DeviceNotFound(id.to_owned()))?;
        let from = DeviceStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?;
        let Transition::To(to) = action.plan(from)? else {
            let device = Self::load_device(&mut w.tx, id, true).await?;
            w.tx.commit().await?;
            return Ok(device);
        };
        let now = now_micros();
        sqlx::query("UPDATE devices SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(to.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        if action == Action::Deactivate {
            // Deactivation forgets who used the device and how they proved it; they enroll again.
            sqlx::query("UPDATE device_keys SET removed_at = $1 WHERE device_id = $2 AND removed_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
            sqlx::query("DELETE FROM device_users WHERE device_id = $1")
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
        }
        Self::insert_event(
            &mut w.tx,
            NewEvent {
                event_type: action.event_type(),
                device_id: id,
                user_id: "",
            },
            actor,
            now,
        )
        .await?;
        if action.ends_device_sessions() {
            Self::insert_outbox(&mut w.tx, &Effect::end_device_sessions(id, action), request_id, now).await?;
        }
        let device = Self::load_device(&mut w.tx, id, true).await?;
        w.tx.commit().await?;
        Ok(device)
    }

    /// Deletes a deactivated device and asks pki-svc to revoke its bound certificate.
    pub async fn delete(&self, id: &str, actor: &str, request_id: &str) -> Result<()> {
        let mut w = self.db.begin_write().await?;
        let status: Option<(String,)> = sqlx::query_as(&format!(
            "SELECT status FROM devices WHERE id = $1{}",
            self.db.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await?;
        let (status,) = status.ok_or_else(|| Error::DeviceNotFound(id.to_owned()))?;
        lifecycle::check_delete(DeviceStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?)?;
        let now = now_micros();
        // Children first: SQLite enforces ON DELETE CASCADE only with foreign_keys on, so do not
        // depend on it.
        for table in ["device_keys", "device_users", "device_search"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE device_id = $1"))
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
        }
        sqlx::query("DELETE FROM devices WHERE id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        Self::insert_event(
            &mut w.tx,
            NewEvent {
                event_type: "device.lifecycle.delete",
                device_id: id,
                user_id: "",
            },
            actor,
            now,
        )
        .await?;
        Self::insert_outbox(&mut w.tx, &Effect::revoke_bound_certificate(id), request_id, now).await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// The users linked to a device.
    pub async fn device_users(&self, device_id: &str) -> Result<Vec<DeviceUser>> {
        let device = self.get_device(device_id).await?;
        Ok(device.users)
    }

    /// The devices a user is linked to, with keys.
    pub async fn user_devices(&self, user_id: &str) -> Result<Vec<Device>> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id IN (SELECT device_id FROM device_users WHERE user_id = $1) ORDER BY id LIMIT 1000"
        );
        let rows = sqlx::query(&sql).bind(user_id).fetch_all(&self.db.pool).await?;
        let mut devices = rows.iter().map(device_from_row).collect::<Result<Vec<_>>>()?;
        self.attach(&mut devices, false).await?;
        Ok(devices)
    }

    /// Unlinks a user from a device and removes the keys that user enrolled on it.
    pub async fn remove_user(&self, device_id: &str, user_id: &str, actor: &str) -> Result<()> {
        let mut w = self.db.begin_write().await?;
        let removed = sqlx::query("DELETE FROM device_users WHERE device_id = $1 AND user_id = $2")
            .bind(device_id)
            .bind(user_id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if removed == 0 {
            let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM devices WHERE id = $1")
                .bind(device_id)
                .fetch_optional(&mut *w.tx)
                .await?;
            return Err(match exists {
                None => Error::DeviceNotFound(device_id.to_owned()),
                Some(_) => Error::DeviceUserNotFound {
                    device_id: device_id.to_owned(),
                    user_id: user_id.to_owned(),
                },
            });
        }
        let now = now_micros();
        sqlx::query(
            "UPDATE device_keys SET removed_at = $1 WHERE device_id = $2 AND user_id = $3 AND removed_at IS NULL",
        )
        .bind(now)
        .bind(device_id)
        .bind(user_id)
        .execute(&mut *w.tx)
        .await?;
        Self::insert_event(
            &mut w.tx,
            NewEvent {
                event_type: "device.user.remove",
                device_id,
                user_id,
            },
            actor,
            now,
        )
        .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// For each of `kids` that exists, the key and its device with the device's live keys, by
    /// kid, in one query: the FastPass hot path, batched by [`crate::key_lookup::KeyLookups`].
    /// The ids travel as one JSON parameter, so the statement text never changes and stays
    /// prepared. A key whose rows do not decode gets its own error; the others are unaffected.
    pub async fn keys_and_devices(&self, conn: &mut AnyConnection, kids: &[&str]) -> Result<HashMap<String, FoundKey>> {
        fn sql(kids_from_json: &str) -> String {
            let device_columns: Vec<String> = DEVICE_COLUMNS.split(", ").map(|c| format!("d.{c}")).collect();
            format!(
                "SELECT k0.kid AS asserted_kid, k0.user_id AS asserted_user_id, k0.purpose AS asserted_purpose, \
                 k0.hardware_protected AS asserted_hardware_protected, k0.x AS asserted_x, k0.y AS asserted_y, \
                 k0.removed_at AS asserted_removed_at, {}, \
                 k.kid, k.device_id, k.user_id, k.purpose, k.hardware_protected, k.x, k.y \
                 FROM device_keys k0 JOIN devices d ON d.id = k0.device_id \
                 LEFT JOIN device_keys k ON k.device_id = d.id AND k.removed_at IS NULL \
                 WHERE k0.kid IN ({kids_from_json}) ORDER BY k0.kid, k.kid",
                device_columns.join(", ")
            )
        }
        static SQLITE: LazyLock<String> = LazyLock::new(|| sql("SELECT value FROM json_each($1)"));
        static POSTGRES: LazyLock<String> = LazyLock::new(|| sql("SELECT jsonb_array_elements_text($1::jsonb)"));
        let text = match self.db.backend {
            Backend::Sqlite => SQLITE.as_str(),
            Backend::Postgres => POSTGRES.as_str(),
        };
        let kids_json = serde_json::to_string(kids).map_err(|e| Error::Corrupt(format!("key ids: {e}")))?;
        let rows = sqlx::query(text).bind(kids_json).fetch_all(conn).await?;
        let mut found: HashMap<String, FoundKey> = HashMap::new();
        for row in &rows {
            let asserted: String = row.try_get("asserted_kid")?;
            let entry = found
                .entry(asserted)
                .or_insert_with_key(|kid| key_owner_from_row(row, kid).map_err(|e| e.to_string()));
            // A row per live key of the device (none when the LEFT JOIN found none).
            let failed: Option<Error> = match entry {
                Ok((_, device)) => match row.try_get::<Option<String>, _>("kid") {
                    Ok(None) => None,
                    Ok(Some(_)) => key_from_row(row).map(|(_, key)| device.keys.push(key)).err(),
                    Err(e) => Some(e.into()),
                },
                Err(_) => None,
            };
            if let Some(e) = failed {
                *entry = Err(e.to_string());
            }
        }
        Ok(found)
    }

    /// Forgets assertion ids whose assertions have expired.
    pub async fn prune_assertions(&self, now_unix: i64) -> Result<u64> {
        let _turn = self.db.write_turn().await;
        Ok(sqlx::query("DELETE FROM assertion_replays WHERE expires_at < $1")
            .bind(now_unix)
            .execute(&self.db.pool)
            .await?
            .rows_affected())
    }

    /// Records posture signals and marks the device seen.
    pub async fn report_signals(&self, device_id: &str, signals: &Signals) -> Result<Device> {
        let now = now_micros();
        let turn = self.db.write_turn().await;
        let updated = sqlx::query("UPDATE devices SET signals = $1, last_seen_at = $2, updated_at = $2 WHERE id = $3")
            .bind(signals_json(signals)?)
            .bind(now)
            .bind(device_id)
            .execute(&self.db.pool)
            .await?
            .rows_affected();
        drop(turn);
        if updated == 0 {
            return Err(Error::DeviceNotFound(device_id.to_owned()));
        }
        self.get_device(device_id).await
    }

    /// Device events matching `condition`, in id order, after `after_id`.
    pub async fn list_events(
        &self,
        condition: &SqlCondition,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let (sql, values) = keyset_page("*", "device_events", condition, after_id, limit);
        let rows = bind_values(sqlx::query(&sql), &values).fetch_all(&self.db.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Outbox entries due for delivery at `now`, oldest first.
    pub async fn due_outbox(&self, now: i64, limit: usize) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT id, kind, payload, request_id, attempts FROM outbox \
             WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT {limit}"
        ))
        .bind(now)
        .fetch_all(&self.db.pool)
        .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = row.try_get("kind")?;
            let payload: Vec<u8> = row.try_get("payload")?;
            let id: String = row.try_get("id")?;
            let effect = Effect::decode(&kind, &payload).ok_or_else(|| corrupt("outbox entry", &id))?;
            entries.push(OutboxEntry {
                id,
                effect,
                request_id: row.try_get("request_id")?,
                attempts: row.try_get("attempts")?,
            });
        }
        Ok(entries)
    }

    /// Marks an outbox entry delivered.
    pub async fn outbox_delivered(&self, id: &str) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query("UPDATE outbox SET delivered_at = $1, attempts = attempts + 1, last_error = '' WHERE id = $2")
            .bind(now_micros())
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn outbox_failed(&self, id: &str, error: &str, next_attempt_at: i64) -> Result<()> {
        let _turn = self.db.write_turn().await;
        let error: String = error.chars().take(500).collect();
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3")
            .bind(error)
            .bind(next_attempt_at)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Outbox entries not yet delivered.
    pub async fn pending_outbox(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(&self.db.pool)
            .await?;
        Ok(n)
    }
}

fn signals_json(signals: &Signals) -> Result<String> {
    serde_json::to_string(signals).map_err(|e| Error::Corrupt(format!("signals do not serialize: {e}")))
}
