//! The suite's service and operator identities, issued by pki-svc's `IssueServiceCertificate`
//! as an operator would ask for them. Only pki-svc's own certificate and the admin operator's
//! come from the data directory's bootstrap: pki-svc cannot issue before it runs.

use std::path::Path;

use portcullis_proto::pki::v1::IssueServiceCertificateRequest;
use portcullis_proto::pki::v1::pki_service_client::PkiServiceClient;
use rcgen::{CertificateParams, KeyPair};
use service_kit::dev_pki::write;
use service_kit::tls::TlsMaterial;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;

use crate::data_dir::{ADMIN_OPERATOR, DataDir, VIEWER_OPERATOR};
use crate::suite::{PKI_SVC, PortBase, SUITE};

/// Identities are reissued when less than this is left of them (pki-svc issues for 30 days).
const RENEW_BEFORE: Duration = Duration::days(10);

/// Why an identity could not be issued.
#[derive(Debug, thiserror::Error)]
#[error("cannot issue the identity `{stem}` through pki-svc: {reason}")]
pub struct IdentityError {
    /// The certificate's file stem.
    pub stem: String,
    /// Why.
    pub reason: String,
}

/// Every identity pki-svc issues: the suite's other members, and the viewer operator.
fn wanted() -> Vec<(&'static str, IssueServiceCertificateRequest)> {
    let mut wanted: Vec<_> = SUITE
        .iter()
        .filter(|member| **member != PKI_SVC)
        .map(|member| {
            (
                member.name,
                IssueServiceCertificateRequest {
                    kind: "svc".into(),
                    name: member.name.into(),
                    ..Default::default()
                },
            )
        })
        .collect();
    wanted.push((
        VIEWER_OPERATOR,
        IssueServiceCertificateRequest {
            kind: "operator".into(),
            name: "viewer".into(),
            role: "viewer".into(),
            ..Default::default()
        },
    ));
    wanted
}

/// Issues what is missing or runs out within [`RENEW_BEFORE`], through pki-svc as the admin
/// operator. Keys are made here and never leave the data directory: pki-svc signs CSRs.
pub async fn issue_missing(data: &DataDir, base: PortBase) -> Result<(), IdentityError> {
    let error = |stem: &str, reason: String| IdentityError {
        stem: stem.to_owned(),
        reason,
    };
    let admin = TlsMaterial::load(&data.tls(ADMIN_OPERATOR)).map_err(|e| error(ADMIN_OPERATOR, e.to_string()))?;
    let channel = admin
        .lazy_channel(&PKI_SVC.url(base))
        .map_err(|e| error(PKI_SVC.name, e))?;
    let mut pki = PkiServiceClient::new(channel);
    for (stem, mut request) in wanted() {
        let files = data.tls(stem);
        if still_valid(&files.cert) {
            continue;
        }
        let key = KeyPair::generate().map_err(|e| error(stem, e.to_string()))?;
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .map_err(|e| error(stem, e.to_string()))?;
        request.csr_pem = csr;
        let issued = pki
            .issue_service_certificate(request)
            .await
            .map_err(|status| error(stem, status.message().to_owned()))?
            .into_inner();
        write(&files.key, &key.serialize_pem(), true).map_err(|e| error(stem, e.to_string()))?;
        write(&files.cert, &issued.certificate_pem, false).map_err(|e| error(stem, e.to_string()))?;
        tracing::info!(identity = stem, serial_number = %issued.serial_number, "identity issued by pki-svc");
    }
    Ok(())
}

/// Whether the certificate at `path` exists and has more than [`RENEW_BEFORE`] left.
fn still_valid(path: &Path) -> bool {
    let Ok(pem) = std::fs::read(path) else {
        return false;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(&pem.contents) else {
        return false;
    };
    cert.validity().not_after.to_datetime() - OffsetDateTime::now_utc() > RENEW_BEFORE
}
