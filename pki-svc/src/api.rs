//! `portcullis.pki.v1.PkiService` over the CAs, the integrations and the inventory.

use std::sync::Arc;
use std::time::Duration;

use portcullis_proto::pki::v1 as pb;
use portcullis_proto::pki::v1::pki_service_server::PkiService;
use service_kit::clock::{now_micros, timestamp};
use service_kit::dev_pki::{IdentityKind, IdentityRequest};
use service_kit::filter::{Field, FieldKind, compile_filter};
use service_kit::identity::Role;
use service_kit::page_token::{self, PageTokens};
use tonic::{Request, Response, Status};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::attestation::{Attestation, CertificateProof, MAX_CHAIN, MAX_NONCE_BYTES, Proof};
use crate::authority::{Authorities, pem_block};
use crate::challenge;
use crate::device_ca::{DEVICE_CA, hex, pem};
use crate::error::{Error, Result};
use crate::store::{
    CertificateRecord, DYNAMIC, IntegrationRecord, MobileIntegrationRecord, RevocationTarget, STATIC, StoredStatus,
    TrustedCaRecord,
};
use crate::trust::{MAX_CRL_BYTES, Trust, pem_certificates};
use service_kit::sealing::Sealer;

/// Default lifetime of a service or operator certificate.
const SERVICE_CERT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest service or operator certificate (the CA/Browser Forum's TLS limit).
const MAX_SERVICE_CERT_LIFETIME: Duration = Duration::from_secs(397 * 24 * 3600);
/// Default lifetime of a management certificate.
const DEVICE_CERT_LIFETIME_SECS: i64 = 365 * 24 * 3600;
const MIN_DEVICE_CERT_LIFETIME_SECS: i64 = 3600;
const MAX_DEVICE_CERT_LIFETIME_SECS: i64 = 5 * 365 * 24 * 3600;
/// Longest subject pattern.
const MAX_PATTERN_LEN: usize = 512;

const CERTIFICATE_FIELDS: &[Field] = &[
    Field {
        name: "bound_device_id",
        kind: FieldKind::Text {
            column: "bound_device_id",
        },
    },
    Field {
        name: "integration",
        kind: FieldKind::Text { column: "integration" },
    },
    Field {
        name: "status",
        kind: FieldKind::Enum {
            column: "status",
            values: &["VALID", "REVOKED"],
        },
    },
    Field {
        name: "issue_time",
        kind: FieldKind::Timestamp { column: "issued_at" },
    },
    Field {
        name: "not_after",
        kind: FieldKind::Timestamp { column: "not_after" },
    },
];

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct PkiApi {
    authorities: Arc<Authorities>,
    trust: Arc<Trust>,
    attestation: Attestation,
    sealer: Arc<Sealer>,
    page_tokens: PageTokens,
}

impl PkiApi {
    /// The API over `authorities` and `trust`.
    pub fn new(
        authorities: Arc<Authorities>,
        trust: Arc<Trust>,
        attestation: Attestation,
        sealer: Arc<Sealer>,
        page_tokens: PageTokens,
    ) -> Self {
        Self {
            authorities,
            trust,
            attestation,
            sealer,
            page_tokens,
        }
    }

    async fn trusted_ca(&self, id: &str) -> Result<TrustedCaRecord> {
        self.authorities
            .store()
            .trusted_ca(id)
            .await?
            .ok_or_else(|| Error::TrustedCaNotFound(id.to_owned()))
    }

    fn integration_to_pb(&self, record: &IntegrationRecord) -> pb::ScepIntegration {
        pb::ScepIntegration {
            name: record.name.clone(),
            display_name: record.display_name.clone(),
            challenge_type: if record.challenge_type == DYNAMIC {
                pb::ScepChallengeType::Dynamic.into()
            } else {
                pb::ScepChallengeType::Static.into()
            },
            url: self.authorities.scep_url(&record.name),
            subject_pattern: record.subject_pattern.clone(),
            san_pattern: record.san_pattern.clone(),
            certificate_lifetime_seconds: record.lifetime_secs,
            create_time: Some(timestamp(record.created_at)),
            secret_rotate_time: Some(timestamp(record.secret_rotated_at)),
        }
    }
}

/// A certificate as the API shows it.
fn certificate_to_pb(record: &CertificateRecord) -> pb::Certificate {
    let status = match record.status {
        StoredStatus::Revoked => pb::CertificateStatus::Revoked,
        StoredStatus::Valid if record.not_after <= now_micros() => pb::CertificateStatus::Expired,
        StoredStatus::Valid => pb::CertificateStatus::Valid,
    };
    pb::Certificate {
        serial_number: record.serial_number.clone(),
        subject: record.subject.clone(),
        issuer_ca: record.issuer_ca.clone(),
        integration: record.integration.clone(),
        bound_device_id: record.bound_device_id.clone().unwrap_or_default(),
        not_before: Some(timestamp(record.not_before)),
        not_after: Some(timestamp(record.not_after)),
        status: status.into(),
        revocation_reason: revocation_reason_to_pb(record.revocation_reason).into(),
        revoke_time: record.revoked_at.map(timestamp),
        issue_time: Some(timestamp(record.issued_at)),
        sha256_fingerprint: record.sha256_fingerprint.clone(),
        certificate_pem: pem("CERTIFICATE", &record.certificate_der),
        renewed_serial_number: record.renewed_serial.clone(),
    }
}

/// RFC 5280 reason codes for the API's reasons.
fn rfc5280_reason(reason: pb::CertificateRevocationReason) -> i64 {
    match reason {
        pb::CertificateRevocationReason::Unspecified => 0,
        pb::CertificateRevocationReason::KeyCompromise => 1,
        pb::CertificateRevocationReason::Superseded => 4,
        pb::CertificateRevocationReason::CessationOfOperation => 5,
    }
}

fn revocation_reason_to_pb(code: i64) -> pb::CertificateRevocationReason {
    match code {
        1 => pb::CertificateRevocationReason::KeyCompromise,
        4 => pb::CertificateRevocationReason::Superseded,
        5 => pb::CertificateRevocationReason::CessationOfOperation,
        _ => pb::CertificateRevocationReason::Unspecified,
    }
}

/// Integration names: part of a URL path.
fn integration_name(field: &str, name: &str) -> Result<()> {
    let valid = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(Error::field(
            field,
            "1 to 63 lower-case letters, digits and '-', starting with a letter",
        ))
    }
}

/// A subject or SAN pattern: empty, or a regular expression of bounded length.
fn pattern(field: &str, pattern: &str) -> Result<()> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(Error::field(field, format!("at most {MAX_PATTERN_LEN} bytes")));
    }
    if !pattern.is_empty() {
        regex::Regex::new(pattern).map_err(|e| Error::field(field, format!("not a regular expression: {e}")))?;
    }
    Ok(())
}

/// Service and operator names: a path segment of a SPIFFE id.
fn identity_name(name: &str) -> Result<()> {
    let valid = (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(Error::field("name", "1 to 63 lower-case letters, digits and '-'"))
    }
}

/// Serial numbers as the API takes them: hex, any case, optional colons.
fn serial_number(field: &str, text: &str) -> Result<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if cleaned.is_empty() || cleaned.len() > 40 || !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::field(field, "a hexadecimal serial number"));
    }
    Ok(cleaned)
}

fn trusted_ca_to_pb(record: &TrustedCaRecord) -> pb::TrustedCa {
    let revoked_count = record
        .crl_der
        .as_deref()
        .and_then(|der| {
            x509_parser::revocation_list::CertificateRevocationList::from_der(der)
                .ok()
                .map(|(_, crl)| crl.iter_revoked_certificates().count())
        })
        .unwrap_or(0);
    pb::TrustedCa {
        id: record.id.clone(),
        display_name: record.display_name.clone(),
        certificates_pem: pem_certificates(&record.certificates_pem)
            .iter()
            .map(|der| pem("CERTIFICATE", der))
            .collect(),
        subject: record.subject.clone(),
        crl_url: record.crl_url.clone(),
        crl_this_update: record.crl_this_update.map(timestamp),
        crl_next_update: record.crl_next_update.map(timestamp),
        crl_revoked_count: i32::try_from(revoked_count).unwrap_or(i32::MAX),
        crl_fetch_error: record.crl_fetch_error.clone(),
        create_time: Some(timestamp(record.created_at)),
    }
}

fn mobile_to_pb(record: &MobileIntegrationRecord) -> pb::MobileIntegration {
    pb::MobileIntegration {
        id: record.id.clone(),
        provider_name: record.provider_name.clone(),
        enrollment_link: record.enrollment_link.clone(),
        create_time: Some(timestamp(record.created_at)),
        secret_rotate_time: Some(timestamp(record.secret_rotated_at)),
    }
}

/// A mobile management secret: given (8 to 256 printable ASCII characters) or generated.
fn management_secret(given: &str) -> Result<String> {
    if given.is_empty() {
        return challenge::choose("").map_err(|e| Error::Signing(e.to_string()));
    }
    let printable = given.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !printable || !(8..=256).contains(&given.len()) {
        return Err(Error::field("management_secret", "8 to 256 printable ASCII characters"));
    }
    Ok(given.to_owned())
}

/// An enrollment link: an https:// (or http://) URL.
fn enrollment_link(link: &str) -> Result<()> {
    let valid = link.len() <= 2048
        && (link.starts_with("https://") || link.starts_with("http://"))
        && !link.chars().any(char::is_whitespace);
    if valid || link.is_empty() {
        Ok(())
    } else {
        Err(Error::field("enrollment_link", "an http:// or https:// URL"))
    }
}

fn challenge_error(field: &str, error: challenge::ChallengeError) -> Error {
    match error {
        challenge::ChallengeError::Invalid => Error::field(field, error.to_string()),
        challenge::ChallengeError::Random => Error::Signing(error.to_string()),
    }
}

#[tonic::async_trait]
impl PkiService for PkiApi {
    async fn get_ca_certificates(
        &self,
        _request: Request<pb::GetCaCertificatesRequest>,
    ) -> Result<Response<pb::GetCaCertificatesResponse>, Status> {
        let device = self.authorities.device_ca();
        Ok(Response::new(pb::GetCaCertificatesResponse {
            device_ca: Some(pb::CaChain {
                name: DEVICE_CA.to_owned(),
                certificates_pem: vec![device.certificate_pem().to_owned()],
                crl_url: if device.signs_crls() {
                    device.crl_url().to_owned()
                } else {
                    String::new()
                },
            }),
            service_ca: self.authorities.service_ca().map(|ca| pb::CaChain {
                name: "service".to_owned(),
                certificates_pem: vec![ca.cert_pem().to_owned()],
                crl_url: String::new(),
            }),
        }))
    }

    async fn issue_service_certificate(
        &self,
        request: Request<pb::IssueServiceCertificateRequest>,
    ) -> Result<Response<pb::IssueServiceCertificateResponse>, Status> {
        let request = request.into_inner();
        let ca = self.authorities.service_ca().ok_or(Error::NoServiceCa)?;
        identity_name(&request.name)?;
        let identity = match request.kind.as_str() {
            "svc" => {
                if !request.role.is_empty() {
                    return Err(Error::field("role", "only operators have a role").into());
                }
                for dns in &request.dns_names {
                    let valid = !dns.is_empty()
                        && dns.len() <= 253
                        && dns.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                    if !valid {
                        return Err(Error::field("dns_names", format!("{dns:?} is not a DNS name")).into());
                    }
                }
                IdentityKind::Service {
                    name: &request.name,
                    dns_names: request.dns_names.clone(),
                }
            }
            "operator" => {
                if !request.dns_names.is_empty() {
                    return Err(Error::field("dns_names", "operators have no DNS names").into());
                }
                let role =
                    Role::parse(&request.role).ok_or_else(|| Error::field("role", "one of viewer, operator, admin"))?;
                IdentityKind::Operator {
                    name: &request.name,
                    role,
                }
            }
            _ => return Err(Error::field("kind", "`svc` or `operator`").into()),
        };
        let lifetime = match request.lifetime_seconds {
            0 => SERVICE_CERT_LIFETIME,
            secs if secs > 0 && Duration::from_secs(secs.unsigned_abs()) <= MAX_SERVICE_CERT_LIFETIME => {
                Duration::from_secs(secs.unsigned_abs())
            }
            _ => return Err(Error::field("lifetime_seconds", "1 second to 397 days").into()),
        };
        let public_key_der = if request.csr_pem.is_empty() {
            None
        } else {
            let der = pem_block(request.csr_pem.as_bytes(), "CERTIFICATE REQUEST")
                .ok_or_else(|| Error::field("csr_pem", "no PEM CERTIFICATE REQUEST"))?;
            let (_, csr) = X509CertificationRequest::from_der(&der)
                .map_err(|_| Error::field("csr_pem", "the request does not parse"))?;
            csr.verify_signature()
                .map_err(|_| Error::field("csr_pem", "the request's signature does not verify"))?;
            Some(csr.certification_request_info.subject_pki.raw.to_vec())
        };
        let issued = ca
            .issue_identity(&IdentityRequest {
                identity,
                public_key_der: public_key_der.as_deref(),
                lifetime: time::Duration::try_from(lifetime).map_err(|e| Error::Signing(e.to_string()))?,
            })
            .map_err(|e| Error::Signing(e.to_string()))?;
        let der = pem_block(issued.cert_pem.as_bytes(), "CERTIFICATE")
            .ok_or_else(|| Error::Signing("the issued certificate is not PEM".into()))?;
        let serial = x509_parser::parse_x509_certificate(&der)
            .map(|(_, cert)| hex(cert.raw_serial()))
            .map_err(|e| Error::Signing(e.to_string()))?;
        tracing::info!(kind = %request.kind, name = %request.name, serial_number = %serial, "service certificate issued");
        Ok(Response::new(pb::IssueServiceCertificateResponse {
            certificate_pem: issued.cert_pem,
            private_key_pem: issued.key_pem,
            ca_certificate_pem: ca.cert_pem().to_owned(),
            serial_number: serial,
        }))
    }

    async fn create_scep_integration(
        &self,
        request: Request<pb::CreateScepIntegrationRequest>,
    ) -> Result<Response<pb::CreateScepIntegrationResponse>, Status> {
        let request = request.into_inner();
        integration_name("name", &request.name)?;
        if request.display_name.chars().count() > 200 {
            return Err(Error::field("display_name", "at most 200 characters").into());
        }
        let challenge_type = match pb::ScepChallengeType::try_from(request.challenge_type) {
            Ok(pb::ScepChallengeType::Static | pb::ScepChallengeType::Unspecified) => STATIC,
            Ok(pb::ScepChallengeType::Dynamic) => DYNAMIC,
            Err(_) => return Err(Error::field("challenge_type", "unknown value").into()),
        };
        pattern("subject_pattern", &request.subject_pattern)?;
        pattern("san_pattern", &request.san_pattern)?;
        let lifetime_secs = match request.certificate_lifetime_seconds {
            0 => DEVICE_CERT_LIFETIME_SECS,
            secs if (MIN_DEVICE_CERT_LIFETIME_SECS..=MAX_DEVICE_CERT_LIFETIME_SECS).contains(&secs) => secs,
            _ => return Err(Error::field("certificate_lifetime_seconds", "one hour to five years").into()),
        };
        let secret = challenge::choose(&request.secret).map_err(|e| challenge_error("secret", e))?;
        let hashed = challenge::hash(&secret).map_err(|e| challenge_error("secret", e))?;
        let now = now_micros();
        let record = IntegrationRecord {
            display_name: if request.display_name.is_empty() {
                request.name.clone()
            } else {
                request.display_name
            },
            name: request.name,
            challenge_type: challenge_type.to_owned(),
            secret_salt: hashed.salt,
            secret_hash: hashed.hash,
            subject_pattern: request.subject_pattern,
            san_pattern: request.san_pattern,
            lifetime_secs,
            created_at: now,
            secret_rotated_at: now,
        };
        self.authorities.store().insert_integration(&record).await?;
        tracing::info!(integration = %record.name, "SCEP integration created");
        Ok(Response::new(pb::CreateScepIntegrationResponse {
            integration: Some(self.integration_to_pb(&record)),
            secret,
        }))
    }

    async fn list_scep_integrations(
        &self,
        _request: Request<pb::ListScepIntegrationsRequest>,
    ) -> Result<Response<pb::ListScepIntegrationsResponse>, Status> {
        let records = self.authorities.store().integrations().await?;
        Ok(Response::new(pb::ListScepIntegrationsResponse {
            integrations: records.iter().map(|r| self.integration_to_pb(r)).collect(),
        }))
    }

    async fn rotate_scep_secret(
        &self,
        request: Request<pb::RotateScepSecretRequest>,
    ) -> Result<Response<pb::RotateScepSecretResponse>, Status> {
        let request = request.into_inner();
        integration_name("name", &request.name)?;
        let secret = challenge::choose(&request.secret).map_err(|e| challenge_error("secret", e))?;
        let hashed = challenge::hash(&secret).map_err(|e| challenge_error("secret", e))?;
        let record = self
            .authorities
            .store()
            .rotate_secret(&request.name, &hashed.salt, &hashed.hash)
            .await?;
        tracing::info!(integration = %record.name, "SCEP challenge rotated");
        Ok(Response::new(pb::RotateScepSecretResponse {
            integration: Some(self.integration_to_pb(&record)),
            secret,
        }))
    }

    async fn delete_scep_integration(
        &self,
        request: Request<pb::DeleteScepIntegrationRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        integration_name("name", &request.name)?;
        self.authorities.store().delete_integration(&request.name).await?;
        tracing::info!(integration = %request.name, "SCEP integration deleted");
        Ok(Response::new(()))
    }

    async fn list_certificates(
        &self,
        request: Request<pb::ListCertificatesRequest>,
    ) -> Result<Response<pb::ListCertificatesResponse>, Status> {
        let request = request.into_inner();
        let limit = page_token::page_size(request.page_size).map_err(|reason| Error::field("page_size", reason))?;
        let condition =
            compile_filter(&request.filter, CERTIFICATE_FIELDS, 1).map_err(|e| Error::InvalidFilter(e.to_string()))?;
        let scope = format!("certificates\0{}", request.filter);
        let after = self
            .page_tokens
            .resume(&scope, &request.page_token)
            .map_err(|_| Error::InvalidPageToken)?;
        let mut records = self
            .authorities
            .store()
            .list_certificates(&condition, after.as_deref(), limit + 1)
            .await?;
        let next_page_token = self.page_tokens.next_page(&scope, &mut records, limit, |r| &r.id);
        Ok(Response::new(pb::ListCertificatesResponse {
            certificates: records.iter().map(certificate_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn get_certificate(
        &self,
        request: Request<pb::GetCertificateRequest>,
    ) -> Result<Response<pb::Certificate>, Status> {
        let serial = serial_number("serial_number", &request.into_inner().serial_number)?;
        let record = self
            .authorities
            .store()
            .certificate(&serial)
            .await?
            .ok_or(Error::CertificateNotFound(serial))?;
        Ok(Response::new(certificate_to_pb(&record)))
    }

    async fn revoke_certificate(
        &self,
        request: Request<pb::RevokeCertificateRequest>,
    ) -> Result<Response<pb::RevokeCertificateResponse>, Status> {
        let request = request.into_inner();
        let reason = pb::CertificateRevocationReason::try_from(request.reason)
            .map_err(|_| Error::field("reason", "unknown value"))?;
        if request.idempotency_key.len() > 200 {
            return Err(Error::field("idempotency_key", "at most 200 bytes").into());
        }
        let serial;
        let target = match (request.serial_number.is_empty(), request.bound_device_id.is_empty()) {
            (false, true) => {
                serial = serial_number("serial_number", &request.serial_number)?;
                RevocationTarget::Serial(&serial)
            }
            (true, false) => {
                if request.bound_device_id.len() > 128 {
                    return Err(Error::field("bound_device_id", "at most 128 bytes").into());
                }
                RevocationTarget::BoundDevice(&request.bound_device_id)
            }
            _ => {
                return Err(
                    Error::field("serial_number", "give exactly one of serial_number and bound_device_id").into(),
                );
            }
        };
        let (revoked, changed) = self
            .authorities
            .store()
            .revoke(target, rfc5280_reason(reason), &request.idempotency_key)
            .await?;
        if changed {
            let crl = self.authorities.reissue_device_crl().await?;
            let crl_number = crl.map(|crl| crl.number);
            tracing::info!(serial_numbers = ?revoked, ?crl_number, "certificates revoked");
        }
        Ok(Response::new(pb::RevokeCertificateResponse {
            revoked_serial_numbers: revoked,
        }))
    }

    async fn create_dynamic_challenge(
        &self,
        request: Request<pb::CreateDynamicChallengeRequest>,
    ) -> Result<Response<pb::CreateDynamicChallengeResponse>, Status> {
        let name = request.into_inner().integration;
        integration_name("integration", &name)?;
        let record = self
            .authorities
            .store()
            .integration(&name)
            .await?
            .ok_or_else(|| Error::IntegrationNotFound(name.clone()))?;
        if record.challenge_type != DYNAMIC {
            return Err(Error::field("integration", "this integration uses a static challenge").into());
        }
        let (challenge, expires_at) = challenge::create_dynamic(self.authorities.store(), &name).await?;
        tracing::info!(integration = %name, "dynamic challenge issued");
        Ok(Response::new(pb::CreateDynamicChallengeResponse {
            challenge,
            expire_time: Some(timestamp(expires_at)),
        }))
    }

    async fn import_trusted_ca(
        &self,
        request: Request<pb::ImportTrustedCaRequest>,
    ) -> Result<Response<pb::TrustedCa>, Status> {
        let request = request.into_inner();
        if request.display_name.is_empty() || request.display_name.chars().count() > 200 {
            return Err(Error::field("display_name", "1 to 200 characters").into());
        }
        let chain = pem_certificates(&request.certificates_pem);
        let Some(issuing) = chain.first() else {
            return Err(Error::field("certificates_pem", "no PEM CERTIFICATE").into());
        };
        for der in &chain {
            let (_, cert) = x509_parser::parse_x509_certificate(der)
                .map_err(|e| Error::field("certificates_pem", format!("a certificate does not parse: {e}")))?;
            if !cert.is_ca() {
                return Err(Error::field(
                    "certificates_pem",
                    format!("{} is not a CA certificate", cert.subject()),
                )
                .into());
            }
        }
        let (_, issuing_cert) = x509_parser::parse_x509_certificate(issuing)
            .map_err(|e| Error::field("certificates_pem", e.to_string()))?;
        if !request.crl_url.is_empty() && !request.crl_url.starts_with("http://") {
            return Err(Error::field(
                "crl_url",
                "an http:// URL (CRLs are signed; HTTP is how they are published)",
            )
            .into());
        }
        if issuing == self.authorities.device_ca().certificate_der() {
            return Err(Error::field("certificates_pem", "the device CA is trusted already").into());
        }
        let record = TrustedCaRecord {
            id: uuid::Uuid::now_v7().to_string(),
            display_name: request.display_name,
            certificates_pem: chain.iter().map(|der| pem("CERTIFICATE", der)).collect(),
            subject: issuing_cert.subject().to_string(),
            crl_url: request.crl_url,
            crl_der: None,
            crl_this_update: None,
            crl_next_update: None,
            crl_fetch_error: String::new(),
            created_at: now_micros(),
        };
        self.authorities.store().insert_trusted_ca(&record).await?;
        // Fetch its CRL now, so its certificates can attest without waiting for the schedule.
        self.trust.refresh_crls().await?;
        tracing::info!(trusted_ca = %record.id, subject = %record.subject, "trusted CA imported");
        let stored = self.trusted_ca(&record.id).await?;
        Ok(Response::new(trusted_ca_to_pb(&stored)))
    }

    async fn list_trusted_cas(
        &self,
        _request: Request<pb::ListTrustedCasRequest>,
    ) -> Result<Response<pb::ListTrustedCasResponse>, Status> {
        let records = self.authorities.store().trusted_cas().await?;
        Ok(Response::new(pb::ListTrustedCasResponse {
            trusted_cas: records.iter().map(trusted_ca_to_pb).collect(),
        }))
    }

    async fn remove_trusted_ca(&self, request: Request<pb::RemoveTrustedCaRequest>) -> Result<Response<()>, Status> {
        let id = request.into_inner().id;
        if !self.authorities.store().delete_trusted_ca(&id).await? {
            return Err(Error::TrustedCaNotFound(id).into());
        }
        self.trust.reload().await?;
        tracing::info!(trusted_ca = %id, "trusted CA removed");
        Ok(Response::new(()))
    }

    async fn upload_trusted_ca_crl(
        &self,
        request: Request<pb::UploadTrustedCaCrlRequest>,
    ) -> Result<Response<pb::TrustedCa>, Status> {
        let request = request.into_inner();
        if request.crl.len() > MAX_CRL_BYTES {
            return Err(Error::field("crl", "too large").into());
        }
        let record = self.trusted_ca(&request.id).await?;
        self.trust
            .store_crl(&record, &request.crl)
            .await
            .map_err(|reason| Error::field("crl", reason))?;
        self.trust.reload().await?;
        tracing::info!(trusted_ca = %record.id, "CRL uploaded");
        Ok(Response::new(trusted_ca_to_pb(&self.trusted_ca(&request.id).await?)))
    }

    async fn create_mobile_integration(
        &self,
        request: Request<pb::CreateMobileIntegrationRequest>,
    ) -> Result<Response<pb::CreateMobileIntegrationResponse>, Status> {
        let request = request.into_inner();
        if request.provider_name.is_empty() || request.provider_name.chars().count() > 100 {
            return Err(Error::field("provider_name", "1 to 100 characters").into());
        }
        enrollment_link(&request.enrollment_link)?;
        let secret = management_secret(&request.management_secret)?;
        let id = uuid::Uuid::now_v7().to_string();
        let sealed = self
            .sealer
            .seal(secret.as_bytes(), &id)
            .map_err(|e| Error::Signing(e.to_string()))?;
        let now = now_micros();
        let record = MobileIntegrationRecord {
            id,
            provider_name: request.provider_name,
            enrollment_link: request.enrollment_link,
            sealed_secret: sealed,
            created_at: now,
            secret_rotated_at: now,
        };
        self.authorities.store().insert_mobile_integration(&record).await?;
        tracing::info!(mobile_integration = %record.id, provider = %record.provider_name, "mobile integration created");
        Ok(Response::new(pb::CreateMobileIntegrationResponse {
            integration: Some(mobile_to_pb(&record)),
            management_secret: secret,
        }))
    }

    async fn rotate_mobile_secret(
        &self,
        request: Request<pb::RotateMobileSecretRequest>,
    ) -> Result<Response<pb::CreateMobileIntegrationResponse>, Status> {
        let request = request.into_inner();
        let secret = management_secret(&request.management_secret)?;
        let sealed = self
            .sealer
            .seal(secret.as_bytes(), &request.id)
            .map_err(|e| Error::Signing(e.to_string()))?;
        let record = self
            .authorities
            .store()
            .rotate_mobile_secret(&request.id, &sealed)
            .await?
            .ok_or_else(|| Error::MobileIntegrationNotFound(request.id.clone()))?;
        tracing::info!(mobile_integration = %record.id, "mobile management secret rotated");
        Ok(Response::new(pb::CreateMobileIntegrationResponse {
            integration: Some(mobile_to_pb(&record)),
            management_secret: secret,
        }))
    }

    async fn verify_management_attestation(
        &self,
        request: Request<pb::VerifyManagementAttestationRequest>,
    ) -> Result<Response<pb::VerifyManagementAttestationResponse>, Status> {
        use portcullis_proto::device::v1::Platform;
        let request = request.into_inner();
        if request.device_id.is_empty() || request.device_id.len() > 128 {
            return Err(Error::field("device_id", "1 to 128 bytes").into());
        }
        if request.nonce.is_empty() || request.nonce.len() > MAX_NONCE_BYTES {
            return Err(Error::field("nonce", format!("1 to {MAX_NONCE_BYTES} bytes")).into());
        }
        if request.certificate_chain.len() > MAX_CHAIN {
            return Err(Error::field("certificate_chain", format!("at most {MAX_CHAIN} certificates")).into());
        }
        let platform = Platform::try_from(request.platform).map_err(|_| Error::field("platform", "unknown value"))?;
        let verdict = match platform {
            Platform::Unspecified => return Err(Error::field("platform", "required").into()),
            Platform::Ios | Platform::Android => {
                self.attestation
                    .verify_management_hint(&request.nonce, &request.management_hint_proof)
                    .await?
            }
            Platform::Macos | Platform::Windows | Platform::Linux | Platform::Chromeos => {
                self.attestation
                    .verify_certificate(&CertificateProof {
                        device_id: &request.device_id,
                        nonce: &request.nonce,
                        chain: &request.certificate_chain,
                        signature: &request.signature,
                    })
                    .await?
            }
        };
        let mut response = pb::VerifyManagementAttestationResponse {
            managed: verdict.not_managed.is_none(),
            method: if verdict.by_certificate {
                pb::AttestationMethod::Certificate.into()
            } else {
                pb::AttestationMethod::ManagementHint.into()
            },
            reason: verdict.not_managed.map(|r| r.as_str().to_owned()).unwrap_or_default(),
            ..Default::default()
        };
        match verdict.proof {
            Some(Proof::Certificate {
                serial_number,
                issuer_ca,
            }) => {
                response.certificate_serial_number = serial_number;
                response.issuer_ca = issuer_ca;
            }
            Some(Proof::ManagementHint { mobile_integration_id }) => {
                response.mobile_integration_id = mobile_integration_id;
            }
            None => {}
        }
        tracing::debug!(device = %request.device_id, managed = response.managed, reason = %response.reason, "management attestation");
        Ok(Response::new(response))
    }
}
