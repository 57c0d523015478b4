//! Management attestation: does a device's proof make it managed? Desktops present a management
//! certificate (from the device CA, or from a customer CA operators imported) and sign the
//! sign-in nonce with its key; mobiles present an HMAC of the nonce keyed by their MDM's
//! management secret. The first successful use of a certificate binds it to the device.

use std::sync::Arc;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use service_kit::sealing::Sealer;
use x509_parser::certificate::X509Certificate;
use x509_parser::public_key::PublicKey;

use crate::device_ca::{DEVICE_CA, EcCurve, ec_curve, hex};
use crate::error::{Error, Result};
use crate::store::{Store, StoredStatus};
use crate::trust::{Anchor, Trust};

/// Longest nonce accepted.
pub const MAX_NONCE_BYTES: usize = 1024;
/// Most certificates accepted in a presented chain.
pub const MAX_CHAIN: usize = 4;

/// Why a device is not managed. The names are the API's `reason` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotManaged {
    /// Nothing to check: no certificate or signature, or no proof.
    NoProof,
    /// The certificate does not parse.
    InvalidCertificate,
    /// Not issued by the device CA or a trusted customer CA.
    UntrustedIssuer,
    /// Outside its validity window, or its CA's.
    CertExpired,
    /// Not for client authentication.
    CertNotClientAuth,
    /// The signature over the nonce does not verify with the certificate's key.
    BadSignature,
    /// Revoked.
    CertRevoked,
    /// Its revocation status cannot be known (a customer CA without a current CRL, or one of ours
    /// missing from the inventory): fail closed.
    RevocationUnknown,
    /// Already attests for another device.
    CertBoundToOtherDevice,
    /// No mobile integration's secret made this HMAC.
    UnknownManagementSecret,
}

impl NotManaged {
    /// The API's reason.
    pub fn as_str(self) -> &'static str {
        match self {
            NotManaged::NoProof => "NO_PROOF",
            NotManaged::InvalidCertificate => "INVALID_CERTIFICATE",
            NotManaged::UntrustedIssuer => "UNTRUSTED_ISSUER",
            NotManaged::CertExpired => "CERT_EXPIRED",
            NotManaged::CertNotClientAuth => "CERT_NOT_CLIENT_AUTH",
            NotManaged::BadSignature => "BAD_SIGNATURE",
            NotManaged::CertRevoked => "CERT_REVOKED",
            NotManaged::RevocationUnknown => "REVOCATION_UNKNOWN",
            NotManaged::CertBoundToOtherDevice => "CERT_BOUND_TO_OTHER_DEVICE",
            NotManaged::UnknownManagementSecret => "UNKNOWN_MANAGEMENT_SECRET",
        }
    }
}

/// What was proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// A certificate attested.
    Certificate {
        /// Its serial, lower-case hex.
        serial_number: String,
        /// `device` or the trusted CA's id.
        issuer_ca: String,
    },
    /// A mobile integration's secret made the HMAC.
    ManagementHint {
        /// The integration.
        mobile_integration_id: String,
    },
}

/// The answer for one attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What was checked: a certificate (with its serial, when it parsed) or a management hint.
    pub proof: Option<Proof>,
    /// Why not managed, or `None` when managed.
    pub not_managed: Option<NotManaged>,
    /// Whether a certificate was checked (false for mobile hints).
    pub by_certificate: bool,
}

/// What a desktop presents.
#[derive(Debug)]
pub struct CertificateProof<'a> {
    /// The device asking.
    pub device_id: &'a str,
    /// The sign-in nonce.
    pub nonce: &'a [u8],
    /// Leaf first, DER.
    pub chain: &'a [Vec<u8>],
    /// The leaf key's signature over the nonce.
    pub signature: &'a [u8],
}

/// The attestation checks, over the trust snapshot and the inventory.
#[derive(Debug, Clone)]
pub struct Attestation {
    store: Store,
    trust: Arc<Trust>,
    sealer: Arc<Sealer>,
}

impl Attestation {
    /// Checks against `trust`, binding in `store`; mobile secrets are opened with `sealer`.
    pub fn new(store: Store, trust: Arc<Trust>, sealer: Arc<Sealer>) -> Self {
        Self { store, trust, sealer }
    }

    /// A desktop's management certificate.
    pub async fn verify_certificate(&self, proof: &CertificateProof<'_>) -> Result<Verdict> {
        let refuse = |proof: Option<Proof>, reason| Verdict {
            proof,
            not_managed: Some(reason),
            by_certificate: true,
        };
        let Some(leaf_der) = proof.chain.first() else {
            return Ok(refuse(None, NotManaged::NoProof));
        };
        if proof.signature.is_empty() {
            return Ok(refuse(None, NotManaged::NoProof));
        }
        let Ok((_, leaf)) = x509_parser::parse_x509_certificate(leaf_der) else {
            return Ok(refuse(None, NotManaged::InvalidCertificate));
        };
        let serial_number = hex(leaf.raw_serial());
        let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf_der);
        let snapshot = self.trust.snapshot();
        let Some(anchor) = snapshot.issuer_of(&leaf, fingerprint.as_ref(), signed_by) else {
            return Ok(refuse(
                Some(Proof::Certificate {
                    serial_number,
                    issuer_ca: String::new(),
                }),
                NotManaged::UntrustedIssuer,
            ));
        };
        let attested = Proof::Certificate {
            serial_number: serial_number.clone(),
            issuer_ca: anchor.issuer_ca.clone(),
        };
        // The chain's validity window: the certificate's, and its CA's.
        if !leaf.validity().is_valid() || anchor.expired() {
            return Ok(refuse(Some(attested), NotManaged::CertExpired));
        }
        let client_auth = matches!(leaf.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth);
        if !client_auth {
            return Ok(refuse(Some(attested), NotManaged::CertNotClientAuth));
        }
        if !signature_verifies(&leaf, proof.nonce, proof.signature) {
            return Ok(refuse(Some(attested), NotManaged::BadSignature));
        }
        let bound_to = if anchor.issuer_ca == DEVICE_CA {
            let Some(record) = self.store.attestation_record(&serial_number).await? else {
                return Ok(refuse(Some(attested), NotManaged::RevocationUnknown));
            };
            if record.sha256_fingerprint != hex(fingerprint.as_ref()) {
                return Ok(refuse(Some(attested), NotManaged::RevocationUnknown));
            }
            if record.status == StoredStatus::Revoked {
                return Ok(refuse(Some(attested), NotManaged::CertRevoked));
            }
            if record
                .bound_device_id
                .as_deref()
                .is_some_and(|bound| bound != proof.device_id)
            {
                return Ok(refuse(Some(attested), NotManaged::CertBoundToOtherDevice));
            }
            self.store
                .bind_certificate(&serial_number, proof.device_id, &record)
                .await?
        } else {
            match &anchor.revoked {
                None => return Ok(refuse(Some(attested), NotManaged::RevocationUnknown)),
                Some(revoked) if revoked.contains(&serial_number) => {
                    return Ok(refuse(Some(attested), NotManaged::CertRevoked));
                }
                Some(_) => {}
            }
            self.store
                .bind_external_certificate(&anchor.issuer_ca, &serial_number, proof.device_id)
                .await?
        };
        if bound_to != proof.device_id {
            return Ok(refuse(Some(attested), NotManaged::CertBoundToOtherDevice));
        }
        Ok(Verdict {
            proof: Some(attested),
            not_managed: None,
            by_certificate: true,
        })
    }

    /// A mobile's management hint: HMAC-SHA256 of the nonce keyed by a management secret.
    pub async fn verify_management_hint(&self, nonce: &[u8], proof: &[u8]) -> Result<Verdict> {
        if proof.is_empty() {
            return Ok(Verdict {
                proof: None,
                not_managed: Some(NotManaged::NoProof),
                by_certificate: false,
            });
        }
        for integration in self.store.mobile_integrations().await? {
            let secret = self
                .sealer
                .open(&integration.sealed_secret, &integration.id)
                .map_err(|e| Error::Corrupt(format!("mobile integration {}: {e}", integration.id)))?;
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
            if aws_lc_rs::hmac::verify(&key, nonce, proof).is_ok() {
                return Ok(Verdict {
                    proof: Some(Proof::ManagementHint {
                        mobile_integration_id: integration.id,
                    }),
                    not_managed: None,
                    by_certificate: false,
                });
            }
        }
        Ok(Verdict {
            proof: None,
            not_managed: Some(NotManaged::UnknownManagementSecret),
            by_certificate: false,
        })
    }
}

/// Whether `anchor` signed `leaf`.
fn signed_by(leaf: &X509Certificate<'_>, anchor: &Anchor) -> bool {
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(&anchor.certificate_der) else {
        return false;
    };
    leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// Whether `signature` over `message` verifies with `certificate`'s key: RSA PKCS#1 v1.5 with
/// SHA-256, ECDSA P-256 with SHA-256 or P-384 with SHA-384.
fn signature_verifies(certificate: &X509Certificate<'_>, message: &[u8], signature: &[u8]) -> bool {
    let spki = certificate.public_key();
    let algorithm: &'static dyn VerificationAlgorithm = match spki.parsed() {
        Ok(PublicKey::RSA(_)) => &signature::RSA_PKCS1_2048_8192_SHA256,
        Ok(PublicKey::EC(_)) => match ec_curve(spki) {
            Some(EcCurve::P256) => &signature::ECDSA_P256_SHA256_ASN1,
            Some(EcCurve::P384) => &signature::ECDSA_P384_SHA384_ASN1,
            None => return false,
        },
        _ => return false,
    };
    UnparsedPublicKey::new(algorithm, &spki.subject_public_key.data)
        .verify(message, signature)
        .is_ok()
}
