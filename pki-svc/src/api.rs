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

use crate::authority::{Authorities, pem_block};
use crate::challenge;
use crate::device_ca::{DEVICE_CA, hex, pem};
use crate::error::{Error, Result};
use crate::store::{CertificateRecord, IntegrationRecord, RevocationTarget, StoredStatus};

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
    page_tokens: PageTokens,
}

impl PkiApi {
    /// The API over `authorities`.
    pub fn new(authorities: Arc<Authorities>, page_tokens: PageTokens) -> Self {
        Self {
            authorities,
            page_tokens,
        }
    }

    fn integration_to_pb(&self, record: &IntegrationRecord) -> pb::ScepIntegration {
        pb::ScepIntegration {
            name: record.name.clone(),
            display_name: record.display_name.clone(),
            challenge_type: pb::ScepChallengeType::Static.into(),
            url: self.authorities.scep_url(&record.name),
            subject_pattern: record.subject_pattern.clone(),
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
                crl_url: device.crl_url().to_owned(),
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
        match pb::ScepChallengeType::try_from(request.challenge_type) {
            Ok(pb::ScepChallengeType::Static | pb::ScepChallengeType::Unspecified) => {}
            Err(_) => return Err(Error::field("challenge_type", "unknown value").into()),
        }
        if request.subject_pattern.len() > MAX_PATTERN_LEN {
            return Err(Error::field("subject_pattern", format!("at most {MAX_PATTERN_LEN} bytes")).into());
        }
        if !request.subject_pattern.is_empty() {
            regex::Regex::new(&request.subject_pattern)
                .map_err(|e| Error::field("subject_pattern", format!("not a regular expression: {e}")))?;
        }
        let lifetime_secs = match request.certificate_lifetime_seconds {
            0 => DEVICE_CERT_LIFETIME_SECS,
            secs if (MIN_DEVICE_CERT_LIFETIME_SECS..=MAX_DEVICE_CERT_LIFETIME_SECS).contains(&secs) => secs,
            _ => return Err(Error::field("certificate_lifetime_seconds", "one hour to five years").into()),
        };
        let secret = challenge::choose(&request.static_secret).map_err(|e| challenge_error("static_secret", e))?;
        let hashed = challenge::hash(&secret).map_err(|e| challenge_error("static_secret", e))?;
        let now = now_micros();
        let record = IntegrationRecord {
            display_name: if request.display_name.is_empty() {
                request.name.clone()
            } else {
                request.display_name
            },
            name: request.name,
            challenge_type: "STATIC".to_owned(),
            secret_salt: hashed.salt,
            secret_hash: hashed.hash,
            subject_pattern: request.subject_pattern,
            lifetime_secs,
            created_at: now,
            secret_rotated_at: now,
        };
        self.authorities.store().insert_integration(&record).await?;
        tracing::info!(integration = %record.name, "SCEP integration created");
        Ok(Response::new(pb::CreateScepIntegrationResponse {
            integration: Some(self.integration_to_pb(&record)),
            static_secret: secret,
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
        let secret = challenge::choose(&request.static_secret).map_err(|e| challenge_error("static_secret", e))?;
        let hashed = challenge::hash(&secret).map_err(|e| challenge_error("static_secret", e))?;
        let record = self
            .authorities
            .store()
            .rotate_secret(&request.name, &hashed.salt, &hashed.hash)
            .await?;
        tracing::info!(integration = %record.name, "SCEP challenge rotated");
        Ok(Response::new(pb::RotateScepSecretResponse {
            integration: Some(self.integration_to_pb(&record)),
            static_secret: secret,
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
            tracing::info!(serial_numbers = ?revoked, crl_number = crl.number, "certificates revoked");
        }
        Ok(Response::new(pb::RevokeCertificateResponse {
            revoked_serial_numbers: revoked,
        }))
    }
}
