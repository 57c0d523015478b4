//! What management attestation trusts: the device CA and the customer CAs operators imported,
//! with each customer CA's current CRL. Kept in memory as one snapshot, rebuilt whenever this
//! replica changes it and every few seconds for changes made by other replicas.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::authority::pem_block;
use crate::device_ca::{DEVICE_CA, hex};
use crate::error::{Error, Result};
use crate::store::{Store, TrustedCaRecord, now_micros};

/// Largest CRL fetched or uploaded.
pub const MAX_CRL_BYTES: usize = 16 * 1024 * 1024;
/// How long a CRL fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A CA whose certificates may attest.
#[derive(Debug)]
pub struct Anchor {
    /// `device`, or the trusted CA's id.
    pub issuer_ca: String,
    /// The CA certificate, DER.
    pub certificate_der: Vec<u8>,
    /// For customer CAs: the serials on its current CRL, or `None` when it has no current CRL
    /// (revocation unknown: its certificates do not attest). Unused for the device CA, whose
    /// revocations are in the inventory.
    pub revoked: Option<HashSet<String>>,
    /// The CA certificate's notAfter, in seconds: past it, what it signed no longer attests.
    pub not_after: i64,
}

impl Anchor {
    /// Whether the CA certificate is past its end.
    pub fn expired(&self) -> bool {
        now_micros() / 1_000_000 >= self.not_after
    }
}

/// Certificates whose issuer was found (by SHA-256 of their DER) that a snapshot remembers, so a
/// device attesting again costs no chain verification. Dropped with the snapshot, so never older
/// than the trust it was checked against.
const MAX_REMEMBERED_ISSUERS: usize = 100_000;

/// The anchors, by the DER of their subject name.
#[derive(Debug, Default)]
pub struct TrustSnapshot {
    by_subject: HashMap<Vec<u8>, Vec<Arc<Anchor>>>,
    issuers: std::sync::Mutex<HashMap<[u8; 32], Arc<Anchor>>>,
}

impl TrustSnapshot {
    /// The anchors whose subject is `issuer_der`.
    pub fn issuers_named(&self, issuer_der: &[u8]) -> &[Arc<Anchor>] {
        self.by_subject.get(issuer_der).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The anchor that signed `certificate` (whose DER hashes to `fingerprint`), checked with
    /// `signed_by` the first time this snapshot sees it.
    pub fn issuer_of(
        &self,
        certificate: &x509_parser::certificate::X509Certificate<'_>,
        fingerprint: &[u8],
        signed_by: impl Fn(&x509_parser::certificate::X509Certificate<'_>, &Anchor) -> bool,
    ) -> Option<Arc<Anchor>> {
        let key: [u8; 32] = fingerprint.try_into().ok()?;
        if let Some(anchor) = self.remembered().get(&key) {
            return Some(anchor.clone());
        }
        let anchor = self
            .issuers_named(certificate.issuer().as_raw())
            .iter()
            .find(|anchor| signed_by(certificate, anchor))?
            .clone();
        let mut remembered = self.remembered();
        if remembered.len() >= MAX_REMEMBERED_ISSUERS {
            remembered.clear();
        }
        remembered.insert(key, anchor.clone());
        Some(anchor)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<Anchor>>> {
        match self.issuers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The trust snapshot and what keeps it current.
#[derive(Debug)]
pub struct Trust {
    store: Store,
    device_ca_der: Vec<u8>,
    snapshot: RwLock<Arc<TrustSnapshot>>,
    /// What the snapshot was built from, so a reload that finds nothing new keeps it (and what
    /// it remembers).
    built_from: std::sync::Mutex<Option<String>>,
}

/// A CRL's revoked serials and validity, once its signature checked out.
#[derive(Debug)]
pub struct CheckedCrl {
    /// Lower-case hex serials.
    pub revoked: HashSet<String>,
    /// thisUpdate, microseconds.
    pub this_update: i64,
    /// nextUpdate, microseconds; CRLs without one are treated as valid for a day.
    pub next_update: i64,
}

/// Parses `der` as a CRL issued and signed by the CA in `ca_der`.
pub fn check_crl(der: &[u8], ca_der: &[u8]) -> std::result::Result<CheckedCrl, String> {
    let (rest, crl) = CertificateRevocationList::from_der(der).map_err(|e| format!("not a DER CRL: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing data after the CRL".into());
    }
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| format!("CA certificate: {e}"))?;
    if crl.issuer().as_raw() != ca.subject().as_raw() {
        return Err(format!(
            "the CRL is issued by {}, not by {}",
            crl.issuer(),
            ca.subject()
        ));
    }
    crl.verify_signature(ca.public_key())
        .map_err(|_| "the CRL's signature does not verify with the CA's key".to_owned())?;
    let this_update = crl.last_update().timestamp() * 1_000_000;
    let next_update = crl
        .next_update()
        .map(|t| t.timestamp() * 1_000_000)
        .unwrap_or(this_update + 24 * 3600 * 1_000_000);
    let revoked = crl.iter_revoked_certificates().map(|r| hex(r.raw_serial())).collect();
    Ok(CheckedCrl {
        revoked,
        this_update,
        next_update,
    })
}

/// The DER certificates in a PEM bundle.
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    crate::authority::pem_blocks(pem.as_bytes(), "CERTIFICATE").collect()
}

impl Trust {
    /// Trust in the device CA (`device_ca_der`) and the customer CAs in `store`.
    pub async fn load(store: Store, device_ca_der: Vec<u8>) -> Result<Arc<Self>> {
        let trust = Arc::new(Self {
            store,
            device_ca_der,
            snapshot: RwLock::new(Arc::new(TrustSnapshot::default())),
            built_from: std::sync::Mutex::new(None),
        });
        trust.reload().await?;
        Ok(trust)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<TrustSnapshot> {
        match self.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the snapshot from the database.
    pub async fn reload(&self) -> Result<()> {
        let records = self.store.trusted_cas().await?;
        let now = now_micros();
        let version: String = records
            .iter()
            .map(|r| {
                let current = r.crl_next_update.is_some_and(|next| next > now);
                format!("{}:{:?}:{current};", r.id, r.crl_this_update)
            })
            .collect();
        let mut built_from = match self.built_from.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if built_from.as_deref() == Some(version.as_str()) {
            return Ok(());
        }
        let mut by_subject: HashMap<Vec<u8>, Vec<Arc<Anchor>>> = HashMap::new();
        let mut add = |issuer_ca: String, certificate_der: Vec<u8>, revoked| -> Result<()> {
            let (_, cert) = x509_parser::parse_x509_certificate(&certificate_der)
                .map_err(|e| Error::Corrupt(format!("trusted CA {issuer_ca}: {e}")))?;
            let subject = cert.subject().as_raw().to_vec();
            let not_after = cert.validity().not_after.timestamp();
            by_subject.entry(subject).or_default().push(Arc::new(Anchor {
                issuer_ca,
                certificate_der,
                revoked,
                not_after,
            }));
            Ok(())
        };
        add(DEVICE_CA.to_owned(), self.device_ca_der.clone(), None)?;
        for record in records {
            let Some(issuing) = pem_certificates(&record.certificates_pem).into_iter().next() else {
                return Err(Error::Corrupt(format!("trusted CA {} has no certificate", record.id)));
            };
            let revoked = match (&record.crl_der, record.crl_next_update) {
                (Some(der), Some(next_update)) if next_update > now => match check_crl(der, &issuing) {
                    Ok(crl) => Some(crl.revoked),
                    Err(e) => return Err(Error::Corrupt(format!("trusted CA {} CRL: {e}", record.id))),
                },
                _ => None,
            };
            add(record.id, issuing, revoked)?;
        }
        let snapshot = Arc::new(TrustSnapshot {
            by_subject,
            issuers: Default::default(),
        });
        match self.snapshot.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        *built_from = Some(version);
        Ok(())
    }

    /// Checks `crl` (PEM or DER) against trusted CA `record` and stores it.
    pub async fn store_crl(&self, record: &TrustedCaRecord, crl: &[u8]) -> std::result::Result<(), String> {
        let der = pem_block(crl, "X509 CRL").unwrap_or_else(|| crl.to_vec());
        let issuing = pem_certificates(&record.certificates_pem)
            .into_iter()
            .next()
            .ok_or("the trusted CA has no certificate")?;
        let checked = check_crl(&der, &issuing)?;
        self.store
            .update_trusted_ca_crl(&record.id, &der, checked.this_update, checked.next_update)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Fetches the CRL of every trusted CA with a CRL URL whose CRL is missing or past half its
    /// validity, then rebuilds the snapshot.
    pub async fn refresh_crls(&self) -> Result<()> {
        let now = now_micros();
        for record in self.store.trusted_cas().await? {
            if record.crl_url.is_empty() {
                continue;
            }
            let fresh = match (record.crl_this_update, record.crl_next_update) {
                (Some(this_update), Some(next_update)) => now < this_update + (next_update - this_update) / 2,
                _ => false,
            };
            if fresh {
                continue;
            }
            let outcome = match fetch(&record.crl_url).await {
                Ok(body) => self.store_crl(&record, &body).await,
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                tracing::warn!(trusted_ca = %record.id, url = %record.crl_url, error = %e, "CRL fetch failed");
                self.store.set_trusted_ca_fetch_error(&record.id, &e).await?;
            }
        }
        self.reload().await
    }
}

/// GETs `url` (http://) and returns the body.
async fn fetch(url: &str) -> std::result::Result<Vec<u8>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = tokio::time::timeout(FETCH_TIMEOUT, client.get(uri))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = tokio::time::timeout(
        FETCH_TIMEOUT,
        Limited::new(response.into_body(), MAX_CRL_BYTES).collect(),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok(body.to_bytes().to_vec())
}
