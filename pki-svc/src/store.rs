//! pki-svc's tables: CAs, CRLs, SCEP integrations, the certificate inventory and revocations.

use service_kit::db::{Database, bind_values, keyset_page, placeholders};
use service_kit::filter::SqlCondition;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Error, Result};

pub use service_kit::clock::now_micros;

/// `challenge_type` of an integration with one shared challenge.
pub const STATIC: &str = "STATIC";
/// `challenge_type` of an integration with one-time challenges.
pub const DYNAMIC: &str = "DYNAMIC";

/// A stored SCEP integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRecord {
    /// URL name.
    pub name: String,
    /// Shown to operators.
    pub display_name: String,
    /// [`STATIC`] or [`DYNAMIC`].
    pub challenge_type: String,
    /// Salt of the secret's hash: the static challenge, or the dynamic integration's HTTP Basic
    /// password.
    pub secret_salt: Vec<u8>,
    /// SHA-256(salt || secret).
    pub secret_hash: Vec<u8>,
    /// Regular expression the whole subject must match; empty allows any.
    pub subject_pattern: String,
    /// Regular expression each subject alternative name (`DNS:…`, `URI:…`) must wholly match;
    /// empty allows any.
    pub san_pattern: String,
    /// Lifetime of issued certificates, in seconds.
    pub lifetime_secs: i64,
    /// When it was created.
    pub created_at: i64,
    /// When its challenge last changed.
    pub secret_rotated_at: i64,
}

/// A certificate status as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredStatus {
    /// Not revoked (it may still have expired).
    Valid,
    /// Revoked.
    Revoked,
}

impl StoredStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredStatus::Valid => "VALID",
            StoredStatus::Revoked => "REVOKED",
        }
    }
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// UUIDv7; id order is issue order.
    pub id: String,
    /// Lower-case hex.
    pub serial_number: String,
    /// The CA that signed it (`device`).
    pub issuer_ca: String,
    /// The SCEP integration it came through.
    pub integration: String,
    /// The SCEP transaction that asked for it.
    pub transaction_id: String,
    /// The subject as written.
    pub subject: String,
    /// Hex SHA-256 of the DER.
    pub sha256_fingerprint: String,
    /// The certificate.
    pub certificate_der: Vec<u8>,
    /// Validity start, microseconds.
    pub not_before: i64,
    /// Validity end, microseconds.
    pub not_after: i64,
    /// When it was issued.
    pub issued_at: i64,
    /// Revoked or not.
    pub status: StoredStatus,
    /// RFC 5280 reason code when revoked.
    pub revocation_reason: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// The device it attests for, once bound.
    pub bound_device_id: Option<String>,
    /// The certificate this one renewed, or empty.
    pub renewed_serial: String,
    /// Its last successful management attestation.
    pub last_used_at: Option<i64>,
}

const CERTIFICATE_COLUMNS: &str = "id, serial_number, issuer_ca, integration, transaction_id, subject, \
     sha256_fingerprint, certificate_der, not_before, not_after, issued_at, status, revocation_reason, revoked_at, \
     bound_device_id, renewed_serial, last_used_at";

fn certificate_from_row(row: &AnyRow) -> Result<CertificateRecord> {
    let status: String = row.try_get("status")?;
    let status = match status.as_str() {
        "VALID" => StoredStatus::Valid,
        "REVOKED" => StoredStatus::Revoked,
        other => return Err(Error::Corrupt(format!("certificate status {other:?}"))),
    };
    Ok(CertificateRecord {
        id: row.try_get("id")?,
        serial_number: row.try_get("serial_number")?,
        issuer_ca: row.try_get("issuer_ca")?,
        integration: row.try_get("integration")?,
        transaction_id: row.try_get("transaction_id")?,
        subject: row.try_get("subject")?,
        sha256_fingerprint: row.try_get("sha256_fingerprint")?,
        certificate_der: row.try_get("certificate_der")?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        issued_at: row.try_get("issued_at")?,
        status,
        revocation_reason: row.try_get("revocation_reason")?,
        revoked_at: row.try_get("revoked_at")?,
        bound_device_id: row.try_get("bound_device_id")?,
        renewed_serial: row.try_get("renewed_serial")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

fn integration_from_row(row: &AnyRow) -> Result<IntegrationRecord> {
    Ok(IntegrationRecord {
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        challenge_type: row.try_get("challenge_type")?,
        secret_salt: row.try_get("secret_salt")?,
        secret_hash: row.try_get("secret_hash")?,
        subject_pattern: row.try_get("subject_pattern")?,
        san_pattern: row.try_get("san_pattern")?,
        lifetime_secs: row.try_get("lifetime_secs")?,
        created_at: row.try_get("created_at")?,
        secret_rotated_at: row.try_get("secret_rotated_at")?,
    })
}

/// What attestation reads of one of our certificates: no more, so the hot path fetches no DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRecord {
    /// Hex SHA-256 of the DER, to know the presented certificate is the one issued.
    pub sha256_fingerprint: String,
    /// Revoked or not.
    pub status: StoredStatus,
    /// The device it attests for, once bound.
    pub bound_device_id: Option<String>,
    /// Its last successful management attestation.
    pub last_used_at: Option<i64>,
}

/// A CRL as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCrl {
    /// Its number.
    pub number: i64,
    /// DER.
    pub der: Vec<u8>,
    /// When it was issued, microseconds.
    pub issued_at: i64,
}

/// pki-svc's storage.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Storage over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The CA named `name`: its certificate and sealed key.
    pub async fn certificate_authority(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let row = sqlx::query("SELECT certificate_der, sealed_key FROM certificate_authorities WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).transpose()
    }

    /// Stores a CA unless one of that name exists (another replica may have made it first).
    pub async fn insert_certificate_authority_if_absent(
        &self,
        name: &str,
        certificate_der: &[u8],
        sealed_key: &[u8],
    ) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO certificate_authorities (name, certificate_der, sealed_key, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(certificate_der)
        .bind(sealed_key)
        .bind(now_micros())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// The current CRL of `ca`.
    pub async fn crl(&self, ca: &str) -> Result<Option<StoredCrl>> {
        let row = sqlx::query("SELECT crl_number, crl_der, issued_at FROM crls WHERE ca = $1")
            .bind(ca)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(|row| {
            Ok(StoredCrl {
                number: row.try_get(0)?,
                der: row.try_get(1)?,
                issued_at: row.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Issues `ca`'s next CRL: in one transaction, takes the next number, reads the revoked
    /// certificates that have not expired, has `sign` make the CRL, and stores it. Concurrent
    /// reissues queue on the row, so numbers only grow and the newest CRL lists every revocation
    /// committed before it.
    pub async fn reissue_crl<F>(&self, ca: &str, sign: F) -> Result<StoredCrl>
    where
        F: FnOnce(u64, Vec<(String, i64, i64)>) -> std::result::Result<Vec<u8>, String>,
    {
        let mut write = self.db.begin_write().await?;
        let tx = &mut write.tx;
        let now = now_micros();
        // Take the row lock first (PostgreSQL), creating the row on first use.
        sqlx::query(
            "INSERT INTO crls (ca, crl_number, crl_der, issued_at) VALUES ($1, 0, $2, 0) ON CONFLICT (ca) DO NOTHING",
        )
        .bind(ca)
        .bind(Vec::<u8>::new())
        .execute(&mut **tx)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT crl_number FROM crls WHERE ca = $1{}",
            self.db.for_update()
        ))
        .bind(ca)
        .fetch_one(&mut **tx)
        .await?;
        let number: i64 = row.try_get(0)?;
        let next = number + 1;
        let rows = sqlx::query(
            "SELECT serial_number, revoked_at, revocation_reason FROM certificates \
             WHERE issuer_ca = $1 AND status = 'REVOKED' AND not_after > $2 ORDER BY revoked_at",
        )
        .bind(ca)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
        let revoked = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get::<Option<i64>, _>(1)?.unwrap_or(now),
                    row.try_get(2)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let der = sign(u64::try_from(next).unwrap_or(0), revoked).map_err(Error::Signing)?;
        sqlx::query("UPDATE crls SET crl_number = $2, crl_der = $3, issued_at = $4 WHERE ca = $1")
            .bind(ca)
            .bind(next)
            .bind(der.as_slice())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        write.tx.commit().await?;
        Ok(StoredCrl {
            number: next,
            der,
            issued_at: now,
        })
    }

    /// Stores a new integration.
    pub async fn insert_integration(&self, record: &IntegrationRecord) -> Result<()> {
        let _turn = self.db.write_turn().await;
        let result = sqlx::query(
            "INSERT INTO scep_integrations (name, display_name, challenge_type, secret_salt, secret_hash, \
             subject_pattern, san_pattern, lifetime_secs, created_at, secret_rotated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&record.name)
        .bind(&record.display_name)
        .bind(&record.challenge_type)
        .bind(record.secret_salt.as_slice())
        .bind(record.secret_hash.as_slice())
        .bind(&record.subject_pattern)
        .bind(&record.san_pattern)
        .bind(record.lifetime_secs)
        .bind(record.created_at)
        .bind(record.secret_rotated_at)
        .execute(&self.db.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(Error::IntegrationExists(record.name.clone()));
        }
        Ok(())
    }

    /// The integration named `name`.
    pub async fn integration(&self, name: &str) -> Result<Option<IntegrationRecord>> {
        let row = sqlx::query("SELECT * FROM scep_integrations WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(integration_from_row).transpose()
    }

    /// Every integration, by name.
    pub async fn integrations(&self) -> Result<Vec<IntegrationRecord>> {
        let rows = sqlx::query("SELECT * FROM scep_integrations ORDER BY name")
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(integration_from_row).collect()
    }

    /// Replaces an integration's challenge hash; the old challenge stops working with this commit.
    pub async fn rotate_secret(&self, name: &str, salt: &[u8], hash: &[u8]) -> Result<IntegrationRecord> {
        let _turn = self.db.write_turn().await;
        let result = sqlx::query(
            "UPDATE scep_integrations SET secret_salt = $2, secret_hash = $3, secret_rotated_at = $4 WHERE name = $1",
        )
        .bind(name)
        .bind(salt)
        .bind(hash)
        .bind(now_micros())
        .execute(&self.db.pool)
        .await?;
        drop(_turn);
        if result.rows_affected() == 0 {
            return Err(Error::IntegrationNotFound(name.to_owned()));
        }
        self.integration(name)
            .await?
            .ok_or_else(|| Error::IntegrationNotFound(name.to_owned()))
    }

    /// Deletes an integration.
    pub async fn delete_integration(&self, name: &str) -> Result<()> {
        let _turn = self.db.write_turn().await;
        let result = sqlx::query("DELETE FROM scep_integrations WHERE name = $1")
            .bind(name)
            .execute(&self.db.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(Error::IntegrationNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Records an issued certificate; false when its SCEP transaction already has one. With
    /// `secret_rotated_at`, only if its integration still exists with the secret it had when it
    /// was read (false otherwise), so a rotation or deletion committed meanwhile wins.
    pub async fn insert_certificate(&self, record: &CertificateRecord, secret_rotated_at: Option<i64>) -> Result<bool> {
        let _turn = self.db.write_turn().await;
        let values = placeholders(1, 17);
        let sql = match secret_rotated_at {
            Some(_) => format!(
                "INSERT INTO certificates ({CERTIFICATE_COLUMNS}) SELECT {values} \
                 WHERE EXISTS (SELECT 1 FROM scep_integrations WHERE name = $4 AND secret_rotated_at = $18) \
                 ON CONFLICT (integration, transaction_id) DO NOTHING"
            ),
            None => format!(
                "INSERT INTO certificates ({CERTIFICATE_COLUMNS}) VALUES ({values}) \
                 ON CONFLICT (integration, transaction_id) DO NOTHING"
            ),
        };
        let mut query = sqlx::query(&sql)
            .bind(&record.id)
            .bind(&record.serial_number)
            .bind(&record.issuer_ca)
            .bind(&record.integration)
            .bind(&record.transaction_id)
            .bind(&record.subject)
            .bind(&record.sha256_fingerprint)
            .bind(record.certificate_der.as_slice())
            .bind(record.not_before)
            .bind(record.not_after)
            .bind(record.issued_at)
            .bind(record.status.as_str())
            .bind(record.revocation_reason)
            .bind(record.revoked_at)
            .bind(record.bound_device_id.as_deref())
            .bind(&record.renewed_serial)
            .bind(record.last_used_at);
        if let Some(secret_rotated_at) = secret_rotated_at {
            query = query.bind(secret_rotated_at);
        }
        let result = query.execute(&self.db.pool).await?;
        Ok(result.rows_affected() == 1)
    }

    /// The certificate with this serial number.
    pub async fn certificate(&self, serial_number: &str) -> Result<Option<CertificateRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial_number = $1"
        ))
        .bind(serial_number)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(certificate_from_row).transpose()
    }

    /// What attestation needs of the certificate with this serial number.
    pub async fn attestation_record(&self, serial_number: &str) -> Result<Option<AttestationRecord>> {
        let row = sqlx::query(
            "SELECT sha256_fingerprint, status, bound_device_id, last_used_at FROM certificates \
             WHERE serial_number = $1",
        )
        .bind(serial_number)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let status: String = row.try_get(1)?;
        Ok(Some(AttestationRecord {
            sha256_fingerprint: row.try_get(0)?,
            status: match status.as_str() {
                "VALID" => StoredStatus::Valid,
                "REVOKED" => StoredStatus::Revoked,
                other => return Err(Error::Corrupt(format!("certificate status {other:?}"))),
            },
            bound_device_id: row.try_get(2)?,
            last_used_at: row.try_get(3)?,
        }))
    }

    /// The newest certificate issued for a SCEP transaction (a client retrying, or polling).
    pub async fn certificate_for_transaction(
        &self,
        integration: &str,
        transaction_id: &str,
    ) -> Result<Option<CertificateRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE integration = $1 AND transaction_id = $2 \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(integration)
        .bind(transaction_id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(certificate_from_row).transpose()
    }

    /// A page of certificates matching `condition`, in issue order.
    pub async fn list_certificates(
        &self,
        condition: &SqlCondition,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CertificateRecord>> {
        let (sql, values) = keyset_page(CERTIFICATE_COLUMNS, "certificates", condition, after_id, limit);
        let rows = bind_values(sqlx::query(&sql), &values).fetch_all(&self.db.pool).await?;
        rows.iter().map(certificate_from_row).collect()
    }

    /// Revokes the certificate with `serial_number`, or every unrevoked one bound to
    /// `bound_device_id`, once per `idempotency_key`: a repeated key answers what the first call
    /// revoked. Returns the serials revoked, and whether anything changed (so the CRL needs
    /// reissuing).
    pub async fn revoke(
        &self,
        target: RevocationTarget<'_>,
        reason: i64,
        idempotency_key: &str,
    ) -> Result<(Vec<String>, bool)> {
        let mut write = self.db.begin_write().await?;
        let tx = &mut write.tx;
        if !idempotency_key.is_empty() {
            let earlier = sqlx::query("SELECT serial_numbers FROM revocation_requests WHERE idempotency_key = $1")
                .bind(idempotency_key)
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(row) = earlier {
                let text: String = row.try_get(0)?;
                let serials: Vec<String> =
                    serde_json::from_str(&text).map_err(|e| Error::Corrupt(format!("revocation request: {e}")))?;
                return Ok((serials, false));
            }
        }
        let now = now_micros();
        let serials: Vec<String> = match target {
            RevocationTarget::Serial(serial) => {
                let row = sqlx::query(&format!(
                    "SELECT status FROM certificates WHERE serial_number = $1{}",
                    self.db.for_update()
                ))
                .bind(serial)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(row) = row else {
                    return Err(Error::CertificateNotFound(serial.to_owned()));
                };
                let status: String = row.try_get(0)?;
                if status == StoredStatus::Revoked.as_str() {
                    Vec::new()
                } else {
                    vec![serial.to_owned()]
                }
            }
            RevocationTarget::BoundDevice(device_id) => {
                let rows = sqlx::query(&format!(
                    "SELECT serial_number FROM certificates WHERE bound_device_id = $1 AND status = 'VALID'{}",
                    self.db.for_update()
                ))
                .bind(device_id)
                .fetch_all(&mut **tx)
                .await?;
                rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?
            }
        };
        for serial in &serials {
            sqlx::query(
                "UPDATE certificates SET status = 'REVOKED', revocation_reason = $2, revoked_at = $3 \
                 WHERE serial_number = $1",
            )
            .bind(serial)
            .bind(reason)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        if !idempotency_key.is_empty() {
            let text = serde_json::to_string(&serials).map_err(|e| Error::Corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO revocation_requests (idempotency_key, serial_numbers, created_at) VALUES ($1, $2, $3)",
            )
            .bind(idempotency_key)
            .bind(text)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        write.tx.commit().await?;
        let changed = !serials.is_empty();
        Ok((serials, changed))
    }
}

/// A trusted customer CA as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCaRecord {
    /// UUIDv7.
    pub id: String,
    /// Shown to operators.
    pub display_name: String,
    /// The chain as imported, issuing CA first.
    pub certificates_pem: String,
    /// The issuing CA's subject.
    pub subject: String,
    /// Where its CRL is fetched from, or empty.
    pub crl_url: String,
    /// The current CRL, DER.
    pub crl_der: Option<Vec<u8>>,
    /// Its thisUpdate, microseconds.
    pub crl_this_update: Option<i64>,
    /// Its nextUpdate, microseconds.
    pub crl_next_update: Option<i64>,
    /// Why the last fetch failed, or empty.
    pub crl_fetch_error: String,
    /// When it was imported.
    pub created_at: i64,
}

fn trusted_ca_from_row(row: &AnyRow) -> Result<TrustedCaRecord> {
    Ok(TrustedCaRecord {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        certificates_pem: row.try_get("certificates_pem")?,
        subject: row.try_get("subject")?,
        crl_url: row.try_get("crl_url")?,
        crl_der: row.try_get("crl_der")?,
        crl_this_update: row.try_get("crl_this_update")?,
        crl_next_update: row.try_get("crl_next_update")?,
        crl_fetch_error: row.try_get("crl_fetch_error")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A mobile MDM as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileIntegrationRecord {
    /// UUIDv7.
    pub id: String,
    /// The MDM's name.
    pub provider_name: String,
    /// Where users enroll.
    pub enrollment_link: String,
    /// The management secret, sealed.
    pub sealed_secret: Vec<u8>,
    /// When it was created.
    pub created_at: i64,
    /// When its secret last changed.
    pub secret_rotated_at: i64,
}

fn mobile_from_row(row: &AnyRow) -> Result<MobileIntegrationRecord> {
    Ok(MobileIntegrationRecord {
        id: row.try_get("id")?,
        provider_name: row.try_get("provider_name")?,
        enrollment_link: row.try_get("enrollment_link")?,
        sealed_secret: row.try_get("sealed_secret")?,
        created_at: row.try_get("created_at")?,
        secret_rotated_at: row.try_get("secret_rotated_at")?,
    })
}

impl Store {
    /// Records a one-time challenge (its SHA-256) for `integration`.
    pub async fn insert_dynamic_challenge(
        &self,
        integration: &str,
        challenge_hash: &str,
        expires_at: i64,
    ) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query("INSERT INTO dynamic_challenges (challenge_hash, integration, expires_at) VALUES ($1, $2, $3)")
            .bind(challenge_hash)
            .bind(integration)
            .bind(expires_at)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Uses up a one-time challenge: true only the first time, before it expires, through the
    /// integration it was made for.
    pub async fn redeem_dynamic_challenge(&self, integration: &str, challenge_hash: &str) -> Result<bool> {
        let _turn = self.db.write_turn().await;
        let now = now_micros();
        let result = sqlx::query(
            "UPDATE dynamic_challenges SET used_at = $3 \
             WHERE challenge_hash = $1 AND integration = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(challenge_hash)
        .bind(integration)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Forgets challenges that expired before `before`.
    pub async fn delete_expired_challenges(&self, before: i64) -> Result<u64> {
        let _turn = self.db.write_turn().await;
        let result = sqlx::query("DELETE FROM dynamic_challenges WHERE expires_at < $1")
            .bind(before)
            .execute(&self.db.pool)
            .await?;
        Ok(result.rows_affected())
    }

    /// Binds our certificate `serial_number` to `device_id` unless it is bound already, and notes
    /// the use (at most once a day per certificate, so attestation rarely writes). Returns the
    /// device it is bound to.
    pub async fn bind_certificate(
        &self,
        serial_number: &str,
        device_id: &str,
        record: &AttestationRecord,
    ) -> Result<String> {
        const USE_RESOLUTION_MICROS: i64 = 24 * 3600 * 1_000_000;
        let now = now_micros();
        let needs_binding = record.bound_device_id.is_none();
        let needs_use = record.last_used_at.is_none_or(|at| now - at > USE_RESOLUTION_MICROS);
        if !needs_binding && !needs_use {
            return Ok(record.bound_device_id.clone().unwrap_or_default());
        }
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "UPDATE certificates SET bound_device_id = COALESCE(bound_device_id, $2), last_used_at = $3 \
             WHERE serial_number = $1",
        )
        .bind(serial_number)
        .bind(device_id)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        drop(_turn);
        let row = sqlx::query("SELECT bound_device_id FROM certificates WHERE serial_number = $1")
            .bind(serial_number)
            .fetch_one(&self.db.pool)
            .await?;
        let bound: Option<String> = row.try_get(0)?;
        bound.ok_or_else(|| Error::Corrupt(format!("certificate {serial_number} did not bind")))
    }

    /// Binds a customer-CA certificate to `device_id` unless it is bound already; returns the
    /// device it is bound to.
    pub async fn bind_external_certificate(
        &self,
        issuer_ca: &str,
        serial_number: &str,
        device_id: &str,
    ) -> Result<String> {
        let existing = sqlx::query(
            "SELECT device_id FROM external_certificate_bindings WHERE issuer_ca = $1 AND serial_number = $2",
        )
        .bind(issuer_ca)
        .bind(serial_number)
        .fetch_optional(&self.db.pool)
        .await?;
        if let Some(row) = existing {
            return Ok(row.try_get(0)?);
        }
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO external_certificate_bindings (issuer_ca, serial_number, device_id, bound_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (issuer_ca, serial_number) DO NOTHING",
        )
        .bind(issuer_ca)
        .bind(serial_number)
        .bind(device_id)
        .bind(now_micros())
        .execute(&self.db.pool)
        .await?;
        drop(_turn);
        let row = sqlx::query(
            "SELECT device_id FROM external_certificate_bindings WHERE issuer_ca = $1 AND serial_number = $2",
        )
        .bind(issuer_ca)
        .bind(serial_number)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Revokes our certificates unused (no attestation, nor issued) since `cutoff`, as
    /// cessation of operation; returns their serials.
    pub async fn revoke_unused(&self, issuer_ca: &str, cutoff: i64) -> Result<Vec<String>> {
        let mut write = self.db.begin_write().await?;
        let rows = sqlx::query(
            "SELECT serial_number FROM certificates WHERE issuer_ca = $1 AND status = 'VALID' \
             AND COALESCE(last_used_at, issued_at) < $2 AND not_after > $3",
        )
        .bind(issuer_ca)
        .bind(cutoff)
        .bind(now_micros())
        .fetch_all(&mut *write.tx)
        .await?;
        let serials: Vec<String> = rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
        let now = now_micros();
        for serial in &serials {
            sqlx::query(
                "UPDATE certificates SET status = 'REVOKED', revocation_reason = 5, revoked_at = $2 \
                 WHERE serial_number = $1 AND status = 'VALID'",
            )
            .bind(serial)
            .bind(now)
            .execute(&mut *write.tx)
            .await?;
        }
        write.tx.commit().await?;
        Ok(serials)
    }

    /// Stores a trusted CA.
    pub async fn insert_trusted_ca(&self, record: &TrustedCaRecord) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO trusted_cas (id, display_name, certificates_pem, subject, crl_url, crl_der, crl_this_update, \
             crl_next_update, crl_fetch_error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&record.id)
        .bind(&record.display_name)
        .bind(&record.certificates_pem)
        .bind(&record.subject)
        .bind(&record.crl_url)
        .bind(record.crl_der.as_deref())
        .bind(record.crl_this_update)
        .bind(record.crl_next_update)
        .bind(&record.crl_fetch_error)
        .bind(record.created_at)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Every trusted CA, oldest first.
    pub async fn trusted_cas(&self) -> Result<Vec<TrustedCaRecord>> {
        let rows = sqlx::query("SELECT * FROM trusted_cas ORDER BY id")
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(trusted_ca_from_row).collect()
    }

    /// One trusted CA.
    pub async fn trusted_ca(&self, id: &str) -> Result<Option<TrustedCaRecord>> {
        let row = sqlx::query("SELECT * FROM trusted_cas WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(trusted_ca_from_row).transpose()
    }

    /// Stops trusting a CA; false when there was none.
    pub async fn delete_trusted_ca(&self, id: &str) -> Result<bool> {
        let _turn = self.db.write_turn().await;
        let result = sqlx::query("DELETE FROM trusted_cas WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Replaces a trusted CA's CRL, unless the stored one is newer (a slow fetch racing an
    /// upload never goes back in time).
    pub async fn update_trusted_ca_crl(
        &self,
        id: &str,
        crl_der: &[u8],
        this_update: i64,
        next_update: i64,
    ) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "UPDATE trusted_cas SET crl_der = $2, crl_this_update = $3, crl_next_update = $4, crl_fetch_error = '' \
             WHERE id = $1 AND (crl_this_update IS NULL OR crl_this_update <= $3)",
        )
        .bind(id)
        .bind(crl_der)
        .bind(this_update)
        .bind(next_update)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Notes why fetching a trusted CA's CRL failed.
    pub async fn set_trusted_ca_fetch_error(&self, id: &str, error: &str) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query("UPDATE trusted_cas SET crl_fetch_error = $2 WHERE id = $1")
            .bind(id)
            .bind(error)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Stores a mobile integration.
    pub async fn insert_mobile_integration(&self, record: &MobileIntegrationRecord) -> Result<()> {
        let _turn = self.db.write_turn().await;
        sqlx::query(
            "INSERT INTO mobile_integrations (id, provider_name, enrollment_link, sealed_secret, created_at, \
             secret_rotated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&record.id)
        .bind(&record.provider_name)
        .bind(&record.enrollment_link)
        .bind(record.sealed_secret.as_slice())
        .bind(record.created_at)
        .bind(record.secret_rotated_at)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Every mobile integration.
    pub async fn mobile_integrations(&self) -> Result<Vec<MobileIntegrationRecord>> {
        let rows = sqlx::query("SELECT * FROM mobile_integrations ORDER BY id")
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(mobile_from_row).collect()
    }

    /// Replaces a mobile integration's sealed secret; None when there is no such integration.
    pub async fn rotate_mobile_secret(
        &self,
        id: &str,
        sealed_secret: &[u8],
    ) -> Result<Option<MobileIntegrationRecord>> {
        let _turn = self.db.write_turn().await;
        let result =
            sqlx::query("UPDATE mobile_integrations SET sealed_secret = $2, secret_rotated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(sealed_secret)
                .bind(now_micros())
                .execute(&self.db.pool)
                .await?;
        drop(_turn);
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT * FROM mobile_integrations WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(Some(mobile_from_row(&row)?))
    }
}

/// What a revocation names.
#[derive(Debug, Clone, Copy)]
pub enum RevocationTarget<'a> {
    /// One certificate.
    Serial(&'a str),
    /// Whatever is bound to a device.
    BoundDevice(&'a str),
}
