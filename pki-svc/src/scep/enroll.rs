//! What the SCEP server does with a request that parsed: enroll, renew, answer a poll, return a
//! certificate or the CRL. Every refusal is a CertRep FAILURE with the failInfo RFC 8894 names.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use x509_parser::prelude::FromDer;

use crate::authority::Authorities;
use crate::challenge;
use crate::device_ca::{CsrPolicy, CsrRefusal, DEVICE_CA, hex};
use crate::error::Error;
use crate::scep::message::{
    BuildError, FailInfo, MessageType, Outcome, ParseError, PkiRequest, ReplyTo, RequestBody, build_cert_rep,
    parse_pki_message,
};
use crate::store::{CertificateRecord, DYNAMIC, IntegrationRecord, StoredStatus, now_micros};

/// Why an HTTP request gets no CertRep.
#[derive(Debug, thiserror::Error)]
pub enum ScepError {
    /// No integration has this name: 404.
    #[error("no SCEP integration named {0:?}")]
    UnknownIntegration(String),
    /// Not a pkiMessage at all: 400.
    #[error("not a SCEP pkiMessage: {0}")]
    BadMessage(String),
    /// The server failed: 500, detail in the log.
    #[error("internal error")]
    Internal,
}

impl From<Error> for ScepError {
    fn from(error: Error) -> Self {
        tracing::error!(error = %error, "SCEP request failed");
        ScepError::Internal
    }
}

/// The SCEP server behind `/scep/{integration}`.
#[derive(Debug, Clone)]
pub struct ScepServer {
    authorities: Arc<Authorities>,
    patterns: Arc<SubjectPatterns>,
    integrations: Arc<KnownIntegrations>,
}

/// Integrations as enrollment last read them, so a static-challenge enrollment reads nothing
/// before it writes. Never trusted alone: the certificate is recorded only if the integration
/// still exists with the secret it was checked against (see [`Store::insert_certificate`]), so a
/// rotation or deletion on any replica takes effect at once; a stale entry costs a re-read.
#[derive(Debug, Default)]
struct KnownIntegrations(std::sync::Mutex<std::collections::HashMap<String, IntegrationRecord>>);

impl KnownIntegrations {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, IntegrationRecord>> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Compiled subject patterns, by their text: compiling one takes longer than checking a CSR.
#[derive(Debug, Default)]
struct SubjectPatterns(std::sync::Mutex<std::collections::HashMap<String, Regex>>);

/// Patterns kept compiled at most; integrations are few, so this only bounds a pathological case.
const MAX_COMPILED_PATTERNS: usize = 1024;
/// Integrations remembered at most, bounded for the same reason.
const MAX_KNOWN_INTEGRATIONS: usize = 1024;

impl SubjectPatterns {
    /// `pattern` anchored to the whole subject, compiled once; `None` for the empty pattern.
    fn get(&self, pattern: &str) -> Result<Option<Regex>, Refusal> {
        if pattern.is_empty() {
            return Ok(None);
        }
        let mut compiled = match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(regex) = compiled.get(pattern) {
            return Ok(Some(regex.clone()));
        }
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| Refusal::internal(format!("stored subject pattern does not compile: {e}")))?;
        if compiled.len() >= MAX_COMPILED_PATTERNS {
            compiled.clear();
        }
        compiled.insert(pattern.to_owned(), regex.clone());
        Ok(Some(regex))
    }
}

impl ScepServer {
    /// A server issuing from `authorities`' device CA.
    pub fn new(authorities: Arc<Authorities>) -> Self {
        Self {
            authorities,
            patterns: Arc::default(),
            integrations: Arc::default(),
        }
    }

    /// The integration as last read, or read now.
    async fn known_integration(&self, name: &str) -> Result<IntegrationRecord, ScepError> {
        if let Some(record) = self.integrations.lock().get(name) {
            return Ok(record.clone());
        }
        self.fresh_integration(name).await
    }

    /// The integration as stored now, remembered for the next enrollment.
    async fn fresh_integration(&self, name: &str) -> Result<IntegrationRecord, ScepError> {
        let record = self.authorities.store().integration(name).await?;
        let mut known = self.integrations.lock();
        match record {
            Some(record) => {
                if known.len() >= MAX_KNOWN_INTEGRATIONS {
                    known.clear();
                }
                known.insert(name.to_owned(), record.clone());
                Ok(record)
            }
            None => {
                known.remove(name);
                Err(ScepError::UnknownIntegration(name.to_owned()))
            }
        }
    }

    /// The integration named `name`.
    pub async fn integration(&self, name: &str) -> Result<IntegrationRecord, ScepError> {
        self.authorities
            .store()
            .integration(name)
            .await?
            .ok_or_else(|| ScepError::UnknownIntegration(name.to_owned()))
    }

    /// The device CA certificate, DER (GetCACert).
    pub fn ca_certificate(&self) -> &[u8] {
        self.authorities.device_ca().certificate_der()
    }

    /// Answers a pkiMessage sent to `integration` with a DER CertRep.
    pub async fn pki_operation(&self, integration: &str, message: Vec<u8>) -> Result<Vec<u8>, ScepError> {
        let integration = self.known_integration(integration).await?;
        let authorities = self.authorities.clone();
        let parsed = blocking(move || parse_pki_message(&message, authorities.device_ca().scep_keys())).await?;
        let request = match parsed {
            Ok(request) => request,
            Err(ParseError::Malformed(detail)) => return Err(ScepError::BadMessage(detail)),
            Err(ParseError::Refused {
                reply_to,
                fail_info,
                detail,
            }) => {
                tracing::info!(integration = %integration.name, transaction_id = %reply_to.transaction_id, %detail, "SCEP request refused");
                return self.reply(reply_to, Outcome::Failure(fail_info)).await;
            }
        };
        let outcome = match self.outcome(&integration, &request).await {
            Ok(outcome) => outcome,
            Err(refusal) => {
                tracing::info!(
                    integration = %integration.name,
                    transaction_id = %request.reply_to.transaction_id,
                    reason = %refusal.detail,
                    "SCEP request refused"
                );
                Outcome::Failure(refusal.fail_info)
            }
        };
        self.reply(request.reply_to, outcome).await
    }

    /// The CertRep for `outcome`, signed off the async workers.
    async fn reply(&self, reply_to: ReplyTo, outcome: Outcome) -> Result<Vec<u8>, ScepError> {
        let authorities = self.authorities.clone();
        blocking(move || reply(authorities.device_ca().scep_keys(), &reply_to, &outcome)).await?
    }

    async fn outcome(&self, integration: &IntegrationRecord, request: &PkiRequest) -> Result<Outcome, Refusal> {
        if let Some(skew) = clock_skew(request.signing_time) {
            return Err(Refusal::new(
                FailInfo::BadTime,
                format!("signed {} s away from the server's clock", skew.as_secs()),
            ));
        }
        match (&request.message_type, &request.body) {
            (MessageType::PkcsReq, RequestBody::Csr(csr)) => self.enroll(integration, request, csr, false).await,
            (MessageType::RenewalReq, RequestBody::Csr(csr)) => self.enroll(integration, request, csr, true).await,
            (MessageType::CertPoll, RequestBody::IssuerAndSubject { .. }) => {
                let issued = self
                    .authorities
                    .store()
                    .certificate_for_transaction(&integration.name, &request.reply_to.transaction_id)
                    .await?;
                match issued {
                    Some(record) => Ok(success(record.certificate_der)),
                    None => Err(Refusal::new(FailInfo::BadCertId, "no certificate for this transaction")),
                }
            }
            (MessageType::GetCert, RequestBody::IssuerAndSerial { issuer, serial }) => {
                self.check_issuer(issuer)?;
                let record = self.authorities.store().certificate(&hex(serial)).await?;
                match record {
                    Some(record) => Ok(success(record.certificate_der)),
                    None => Err(Refusal::new(FailInfo::BadCertId, "no such certificate")),
                }
            }
            (MessageType::GetCrl, RequestBody::IssuerAndSerial { issuer, .. }) => {
                self.check_issuer(issuer)?;
                match self.authorities.device_crl().await? {
                    Some(crl) => Ok(Outcome::Success {
                        certificates: Vec::new(),
                        crls: vec![crl],
                    }),
                    None => Err(Refusal::new(FailInfo::BadRequest, "the device CA publishes no CRL")),
                }
            }
            _ => Err(Refusal::new(FailInfo::BadRequest, "unsupported message")),
        }
    }

    /// PKCSReq and RenewalReq. A PKCSReq needs the integration's challenge, unless it is signed
    /// by a live certificate of ours (how older clients renew); a RenewalReq must be.
    async fn enroll(
        &self,
        integration: &IntegrationRecord,
        request: &PkiRequest,
        csr_der: &[u8],
        renewal: bool,
    ) -> Result<Outcome, Refusal> {
        let mut integration = std::borrow::Cow::Borrowed(integration);
        let store = self.authorities.store();
        let transaction_id = &request.reply_to.transaction_id;
        let ca = self.authorities.device_ca();
        if let Some(reason) = ca.cannot_issue() {
            return Err(Refusal::new(FailInfo::BadRequest, reason));
        }
        let pattern = self.patterns.get(&integration.subject_pattern)?;
        let san_pattern = self.patterns.get(&integration.san_pattern)?;
        let lifetime = Duration::from_secs(u64::try_from(integration.lifetime_secs).unwrap_or(0));
        let policy = CsrPolicy {
            subject_pattern: pattern.as_ref(),
            san_pattern: san_pattern.as_ref(),
            lifetime,
        };
        let csr = ca.check_csr(csr_der, &policy).map_err(|refusal| {
            let fail_info = match refusal {
                CsrRefusal::BadCsr => FailInfo::BadMessageCheck,
                CsrRefusal::WeakKey(_) => FailInfo::BadAlg,
                CsrRefusal::SubjectNotAllowed(_) | CsrRefusal::SanNotAllowed(_) => FailInfo::BadRequest,
            };
            Refusal::new(fail_info, refusal.to_string())
        })?;
        // Who may ask: the holder of a live certificate of ours (a renewal; older clients renew
        // with a PKCSReq), or the holder of the key to certify, whose self-signed certificate
        // signed the request. A RenewalReq must be the former.
        let renewing = self
            .live_certificate_of_ours(&request.reply_to.requester_certificate)
            .await?;
        if renewing.is_none() {
            if renewal {
                return Err(Refusal::new(
                    FailInfo::BadRequest,
                    "a renewal must be signed by a valid certificate of this CA",
                ));
            }
            if !same_public_key(&request.reply_to.requester_certificate, csr_der) {
                return Err(Refusal::new(
                    FailInfo::BadMessageCheck,
                    "the request is not signed by the key it asks to certify",
                ));
            }
        }
        // A client that lost our reply sends the same transaction again: it gets what it got. A
        // dynamic challenge is used up by the first request, so look first; otherwise the
        // insert's conflict below tells, which saves a read on every enrollment.
        if integration.challenge_type == DYNAMIC
            && let Some(answer) = self.earlier_answer(&integration, transaction_id, csr_der).await?
        {
            return answer;
        }
        if renewing.is_none() {
            let presented = csr.challenge_password.as_deref().unwrap_or("");
            let accepted = if integration.challenge_type == DYNAMIC {
                // Checked last, so a request refused for anything else leaves it unused.
                store
                    .redeem_dynamic_challenge(&integration.name, &challenge::stored_dynamic(presented))
                    .await?
            } else if challenge::matches(presented, &integration.secret_salt, &integration.secret_hash) {
                true
            } else {
                // The secret may have been rotated since it was last read: read it again.
                let fresh = self
                    .fresh_integration(&integration.name)
                    .await
                    .map_err(|_| Refusal::new(FailInfo::BadRequest, "the integration is gone"))?;
                let matches = challenge::matches(presented, &fresh.secret_salt, &fresh.secret_hash);
                if matches {
                    integration = std::borrow::Cow::Owned(fresh);
                }
                matches
            };
            if !accepted {
                return Err(Refusal::new(
                    FailInfo::BadRequest,
                    "wrong, missing, used or expired challenge password",
                ));
            }
        }
        let authorities = self.authorities.clone();
        let to_sign = csr.clone();
        let signed = blocking(move || authorities.device_ca().sign(&to_sign, lifetime))
            .await
            .map_err(|_| Refusal::internal("the signing task failed".into()))?
            .map_err(|e| Refusal::internal(format!("signing failed: {e}")))?;
        let record = CertificateRecord {
            id: uuid::Uuid::now_v7().to_string(),
            serial_number: signed.serial_number.clone(),
            issuer_ca: DEVICE_CA.to_owned(),
            integration: integration.name.clone(),
            transaction_id: transaction_id.clone(),
            subject: csr.subject.clone(),
            sha256_fingerprint: fingerprint(&signed.der),
            certificate_der: signed.der.clone(),
            not_before: signed.not_before_micros,
            not_after: signed.not_after_micros,
            issued_at: now_micros(),
            status: StoredStatus::Valid,
            revocation_reason: 0,
            revoked_at: None,
            bound_device_id: renewing.as_ref().and_then(|old| old.bound_device_id.clone()),
            renewed_serial: renewing
                .as_ref()
                .map(|old| old.serial_number.clone())
                .unwrap_or_default(),
            last_used_at: None,
        };
        if !store
            .insert_certificate(&record, Some(integration.secret_rotated_at))
            .await?
        {
            // Another request of this transaction got there first, or the integration changed
            // (its secret rotated, or it was deleted) since it was read.
            if let Some(answer) = self.earlier_answer(&integration, transaction_id, csr_der).await? {
                return answer;
            }
            self.integrations.lock().remove(&integration.name);
            return Err(Refusal::new(
                FailInfo::BadRequest,
                "the integration changed during the request; retry",
            ));
        }
        tracing::info!(
            integration = %integration.name,
            serial_number = %record.serial_number,
            subject = %record.subject,
            renewed = %record.renewed_serial,
            "certificate issued"
        );
        Ok(success(signed.der))
    }

    /// The answer to a repeated transaction: the certificate it was issued, when the request is
    /// for the same key; `None` when the transaction is new.
    async fn earlier_answer(
        &self,
        integration: &IntegrationRecord,
        transaction_id: &str,
        csr_der: &[u8],
    ) -> Result<Option<Result<Outcome, Refusal>>, Refusal> {
        let earlier = self
            .authorities
            .store()
            .certificate_for_transaction(&integration.name, transaction_id)
            .await?;
        Ok(earlier.map(|earlier| {
            if same_public_key(&earlier.certificate_der, csr_der) {
                Ok(success(earlier.certificate_der))
            } else {
                Err(Refusal::new(
                    FailInfo::BadRequest,
                    "transaction id reused for another key",
                ))
            }
        }))
    }

    /// The inventory record of `certificate_der` if this CA issued exactly it, and it is neither
    /// revoked nor expired.
    async fn live_certificate_of_ours(&self, certificate_der: &[u8]) -> Result<Option<CertificateRecord>, Refusal> {
        let Ok((_, certificate)) = x509_parser::parse_x509_certificate(certificate_der) else {
            return Ok(None);
        };
        // A PKCSReq's self-signed signer is nobody's certificate: no need to look it up.
        if certificate.issuer().as_raw() != self.authorities.device_ca().subject_der() {
            return Ok(None);
        }
        let serial = hex(certificate.raw_serial());
        let Some(record) = self.authorities.store().certificate(&serial).await? else {
            return Ok(None);
        };
        let now = now_micros();
        let live = record.certificate_der == certificate_der
            && record.status == StoredStatus::Valid
            && record.not_before <= now
            && now < record.not_after;
        Ok(live.then_some(record))
    }

    fn check_issuer(&self, issuer_der: &[u8]) -> Result<(), Refusal> {
        let ours = x509_parser::parse_x509_certificate(self.ca_certificate())
            .map(|(_, cert)| cert.tbs_certificate.subject.as_raw().to_vec())
            .map_err(|_| Refusal::internal("the CA certificate does not parse".into()))?;
        let asked = x509_parser::x509::X509Name::from_der(issuer_der)
            .map(|(_, name)| name.to_string())
            .map_err(|_| Refusal::new(FailInfo::BadCertId, "the issuer does not parse"))?;
        let ours_text = x509_parser::x509::X509Name::from_der(&ours)
            .map(|(_, name)| name.to_string())
            .unwrap_or_default();
        if asked == ours_text {
            Ok(())
        } else {
            Err(Refusal::new(FailInfo::BadCertId, "not issued by this CA"))
        }
    }
}

/// A refusal: the failInfo the client gets, and the reason the log gets.
#[derive(Debug)]
struct Refusal {
    fail_info: FailInfo,
    detail: String,
}

impl Refusal {
    fn new(fail_info: FailInfo, detail: impl Into<String>) -> Self {
        Self {
            fail_info,
            detail: detail.into(),
        }
    }

    /// A server fault, answered as badRequest: SCEP has no failInfo for it.
    fn internal(detail: String) -> Self {
        tracing::error!(%detail, "SCEP request failed");
        Self::new(FailInfo::BadRequest, detail)
    }
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::internal(error.to_string())
    }
}

/// How far a request's signingTime may be from the server's clock. Generous: SCEP clients are
/// often devices fresh out of the box whose clocks are not set yet.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(24 * 3600);

/// How far `signed_at` is from now, when that is more than [`MAX_CLOCK_SKEW`] (RFC 8894's
/// badTime).
fn clock_skew(signed_at: Option<std::time::SystemTime>) -> Option<Duration> {
    let signed_at = signed_at?;
    let now = std::time::SystemTime::now();
    let skew = now
        .duration_since(signed_at)
        .or_else(|_| signed_at.duration_since(now))
        .unwrap_or_default();
    (skew > MAX_CLOCK_SKEW).then_some(skew)
}

/// Runs CPU-bound RSA work (about a millisecond each) on the blocking pool, so it never stalls
/// the async workers serving other requests.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ScepError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "SCEP worker task failed");
        ScepError::Internal
    })
}

fn success(certificate_der: Vec<u8>) -> Outcome {
    Outcome::Success {
        certificates: vec![certificate_der],
        crls: Vec::new(),
    }
}

fn reply(ca: &crate::scep::message::CaKeys, reply_to: &ReplyTo, outcome: &Outcome) -> Result<Vec<u8>, ScepError> {
    let built = match build_cert_rep(ca, reply_to, outcome) {
        // A requester whose key cannot be encrypted to (RSA under 2048 bits) cannot be sent
        // anything it asked for.
        Err(BuildError::UnsupportedRecipientKey(detail)) => {
            tracing::info!(transaction_id = %reply_to.transaction_id, %detail, "SCEP request refused");
            build_cert_rep(ca, reply_to, &Outcome::Failure(FailInfo::BadAlg))
        }
        built => built,
    };
    built.map_err(|e| {
        tracing::error!(error = %e, "cannot build a CertRep");
        ScepError::Internal
    })
}

/// Whether a certificate and a CSR (both DER) hold the same public key.
fn same_public_key(certificate_der: &[u8], csr_der: &[u8]) -> bool {
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(certificate_der) else {
        return false;
    };
    let Ok((_, csr)) = x509_parser::certification_request::X509CertificationRequest::from_der(csr_der) else {
        return false;
    };
    certificate.tbs_certificate.subject_pki.raw == csr.certification_request_info.subject_pki.raw
}

/// Hex SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}
