//! The device CA: signs the management certificates MDMs enroll through SCEP, and their CRL.
//! It is RSA, because SCEP's key transport needs an RSA recipient, and it never signs a service
//! identity.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use regex::Regex;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::scep::message::CaKeys;

/// The device CA's name in URLs (`/crl/device.crl`) and in the inventory.
pub const DEVICE_CA: &str = "device";

/// How long a generated device CA is valid.
const CA_LIFETIME: Duration = Duration::days(3650);
/// Issued certificates start this long before issue, for devices whose clocks run behind.
const BACKDATE: Duration = Duration::minutes(5);

/// The EC curves Portcullis accepts in management certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcCurve {
    /// NIST P-256 (prime256v1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
}

/// The curve of an EC public key, if it is one Portcullis accepts.
pub fn ec_curve(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Option<EcCurve> {
    let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?.to_id_string();
    match curve.as_str() {
        "1.2.840.10045.3.1.7" => Some(EcCurve::P256),
        "1.3.132.0.34" => Some(EcCurve::P384),
        _ => None,
    }
}

/// Why the CA could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Key or certificate generation, or signing, failed.
    #[error("{0}")]
    Crypto(String),
    /// The CA's certificate or key does not parse, or they do not belong together.
    #[error("bad CA material: {0}")]
    Material(String),
    /// The CA is loaded but must not issue (expired, or unable to sign CRLs).
    #[error("{0}")]
    CannotIssue(String),
}

/// Why a certificate request was refused. Each maps to a SCEP failInfo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrRefusal {
    /// The CSR does not parse or its self-signature does not verify (badMessageCheck).
    #[error("the certificate request is malformed or its signature does not verify")]
    BadCsr,
    /// The key is too weak or of an unsupported kind (badAlg).
    #[error("key not allowed: {0}; use RSA of at least 2048 bits, or EC P-256 or P-384")]
    WeakKey(String),
    /// The subject does not match the integration's pattern (badRequest).
    #[error("subject {0:?} is not allowed by this integration")]
    SubjectNotAllowed(String),
    /// A subject alternative name does not match the integration's pattern (badRequest).
    #[error("subject alternative name {0:?} is not allowed by this integration")]
    SanNotAllowed(String),
}

/// What the CA needs to sign one certificate request.
#[derive(Debug)]
pub struct CsrPolicy<'a> {
    /// The whole subject must match this, when set.
    pub subject_pattern: Option<&'a Regex>,
    /// Each subject alternative name, written `DNS:…`, `URI:…`, `email:…` or `IP:…`, must match
    /// this, when set.
    pub san_pattern: Option<&'a Regex>,
    /// Lifetime of the certificate.
    pub lifetime: std::time::Duration,
}

/// A certificate request that passed the policy.
#[derive(Debug, Clone)]
pub struct AcceptedCsr {
    /// The subject as written (`CN=…, O=…`).
    pub subject: String,
    /// The challenge password attribute, if any.
    pub challenge_password: Option<String>,
    distinguished_name: DistinguishedName,
    subject_alt_names: Vec<SanType>,
    public_key_der: Vec<u8>,
}

/// A freshly signed certificate.
#[derive(Debug, Clone)]
pub struct SignedCertificate {
    /// DER.
    pub der: Vec<u8>,
    /// Lower-case hex serial number.
    pub serial_number: String,
    /// Validity, microseconds since the epoch.
    pub not_before_micros: i64,
    /// Validity, microseconds since the epoch.
    pub not_after_micros: i64,
}

/// A certificate on the CRL.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    /// Lower-case hex serial number.
    pub serial_number: String,
    /// When it was revoked, microseconds since the epoch.
    pub revoked_at_micros: i64,
    /// RFC 5280 reason code.
    pub reason: Option<RevocationReason>,
}

/// The device CA, ready to sign.
pub struct DeviceCa {
    certificate_der: Vec<u8>,
    certificate_pem: String,
    issuer: Issuer<'static, KeyPair>,
    scep_keys: CaKeys,
    crl_url: String,
    not_after: OffsetDateTime,
    signs_crls: bool,
    subject_der: Vec<u8>,
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCa")
            .field("crl_url", &self.crl_url)
            .finish_non_exhaustive()
    }
}

impl DeviceCa {
    /// A new RSA-2048 CA certificate and its PKCS#8 key, both DER.
    pub fn generate(common_name: &str) -> Result<(Vec<u8>, Vec<u8>), CaError> {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .map_err(|e| CaError::Crypto(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Portcullis");
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.serial_number = Some(random_serial()?);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + CA_LIFETIME;
        let cert = params.self_signed(&key).map_err(|e| CaError::Crypto(e.to_string()))?;
        Ok((cert.der().to_vec(), key.serialize_der()))
    }

    /// The CA from its certificate and PKCS#8 RSA key (DER), publishing its CRL at `crl_url`.
    pub fn from_der(certificate_der: Vec<u8>, key_pkcs8_der: &[u8], crl_url: String) -> Result<Self, CaError> {
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(key_pkcs8_der.to_vec()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .map_err(|e| CaError::Material(format!("the key is not a PKCS#8 RSA key: {e}")))?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != certificate_spki(&certificate_der)? {
            return Err(CaError::Material("the key does not belong to the certificate".into()));
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(certificate_der.clone()), key)
            .map_err(|e| CaError::Material(e.to_string()))?;
        let scep_keys =
            CaKeys::from_der(certificate_der.clone(), key_pkcs8_der).map_err(|e| CaError::Material(format!("{e}")))?;
        let (_, certificate) = x509_parser::parse_x509_certificate(&certificate_der)
            .map_err(|e| CaError::Material(format!("the certificate does not parse: {e}")))?;
        let not_after = certificate.validity().not_after.to_datetime();
        let subject_der = certificate.subject().as_raw().to_vec();
        // No keyUsage extension allows every use.
        let signs_crls = match certificate.key_usage() {
            Ok(Some(usage)) => usage.value.crl_sign(),
            Ok(None) => true,
            Err(_) => false,
        };
        let ca = Self {
            certificate_pem: pem("CERTIFICATE", &certificate_der),
            certificate_der,
            issuer,
            scep_keys,
            crl_url,
            not_after,
            signs_crls,
            subject_der,
        };
        if let Some(reason) = ca.cannot_issue() {
            tracing::warn!(%reason, "the device CA will answer SCEP requests but issue nothing");
        }
        Ok(ca)
    }

    /// Why this CA must not issue, if it must not: it expired, or it cannot sign CRLs, so what it
    /// issued could never be revoked in public.
    pub fn cannot_issue(&self) -> Option<String> {
        if OffsetDateTime::now_utc() >= self.not_after {
            return Some(format!("the device CA expired on {}", self.not_after.date()));
        }
        if !self.signs_crls {
            return Some("the device CA's key usage lacks cRLSign, so it cannot publish revocations".into());
        }
        None
    }

    /// Its subject name, DER: the issuer of what it signs.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    /// Whether it may sign CRLs.
    pub fn signs_crls(&self) -> bool {
        self.signs_crls
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Where its CRL is served.
    pub fn crl_url(&self) -> &str {
        &self.crl_url
    }

    /// The keys SCEP decrypts requests and signs replies with.
    pub fn scep_keys(&self) -> &CaKeys {
        &self.scep_keys
    }

    /// Parses `csr_der`, checks its self-signature, key and subject against `policy`.
    pub fn check_csr(&self, csr_der: &[u8], policy: &CsrPolicy<'_>) -> Result<AcceptedCsr, CsrRefusal> {
        let (rest, csr) = X509CertificationRequest::from_der(csr_der).map_err(|_| CsrRefusal::BadCsr)?;
        if !rest.is_empty() {
            return Err(CsrRefusal::BadCsr);
        }
        csr.verify_signature().map_err(|_| CsrRefusal::BadCsr)?;
        let info = &csr.certification_request_info;
        check_key(&info.subject_pki)?;
        let subject = info.subject.to_string();
        if policy
            .subject_pattern
            .is_some_and(|pattern| !pattern.is_match(&subject))
        {
            return Err(CsrRefusal::SubjectNotAllowed(subject));
        }
        let mut distinguished_name = DistinguishedName::new();
        for attribute in info.subject.iter_attributes() {
            let Some(oid) = attribute.attr_type().iter() else {
                return Err(CsrRefusal::BadCsr);
            };
            let value = attribute.as_str().map_err(|_| CsrRefusal::BadCsr)?;
            let value = match attribute.attr_value().header.tag() {
                der_tag if der_tag == x509_parser::der_parser::asn1_rs::Tag::PrintableString => {
                    DnValue::PrintableString(value.try_into().map_err(|_| CsrRefusal::BadCsr)?)
                }
                _ => DnValue::Utf8String(value.to_owned()),
            };
            distinguished_name.push(DnType::from_oid(&oid.collect::<Vec<_>>()), value);
        }
        let mut subject_alt_names = Vec::new();
        let mut challenge_password = None;
        for attribute in info.iter_attributes() {
            if let x509_parser::cri_attributes::ParsedCriAttribute::ChallengePassword(password) =
                attribute.parsed_attribute()
            {
                challenge_password = Some(password.0.clone());
            }
        }
        if let Some(extensions) = csr.requested_extensions() {
            for extension in extensions {
                if let ParsedExtension::SubjectAlternativeName(san) = extension {
                    for name in &san.general_names {
                        let Some((text, san)) = san_type(name)? else {
                            continue;
                        };
                        if policy.san_pattern.is_some_and(|pattern| !pattern.is_match(&text)) {
                            return Err(CsrRefusal::SanNotAllowed(text));
                        }
                        subject_alt_names.push(san);
                    }
                }
            }
        }
        Ok(AcceptedCsr {
            subject,
            challenge_password,
            distinguished_name,
            subject_alt_names,
            public_key_der: info.subject_pki.raw.to_vec(),
        })
    }

    /// Signs `csr` as a management certificate: client authentication, a random 128-bit serial,
    /// the CRL distribution point, valid from a few minutes ago for `lifetime`.
    pub fn sign(&self, csr: &AcceptedCsr, lifetime: std::time::Duration) -> Result<SignedCertificate, CaError> {
        if let Some(reason) = self.cannot_issue() {
            return Err(CaError::CannotIssue(reason));
        }
        let public_key =
            SubjectPublicKeyInfo::from_der(&csr.public_key_der).map_err(|e| CaError::Crypto(e.to_string()))?;
        let serial = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = csr.distinguished_name.clone();
        params.subject_alt_names = csr.subject_alt_names.clone();
        params.serial_number = Some(serial.clone());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![self.crl_url.clone()],
        }];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        // Never past the CA's own end: a certificate cannot outlive its issuer.
        params.not_after = (now + lifetime).min(self.not_after);
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|e| CaError::Crypto(e.to_string()))?;
        Ok(SignedCertificate {
            der: cert.der().to_vec(),
            serial_number: hex(serial.as_ref()),
            not_before_micros: micros(params.not_before),
            not_after_micros: micros(params.not_after),
        })
    }

    /// A CRL numbered `number` listing `revoked`, valid for `validity`.
    pub fn crl(
        &self,
        number: u64,
        revoked: &[RevokedEntry],
        validity: std::time::Duration,
    ) -> Result<Vec<u8>, CaError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = revoked
            .iter()
            .map(|entry| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&unhex(&entry.serial_number)?),
                    revocation_time: from_micros(entry.revoked_at_micros),
                    reason_code: entry.reason,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + validity,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(|e| CaError::Crypto(e.to_string()))?;
        Ok(crl.der().to_vec())
    }
}

fn check_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<(), CsrRefusal> {
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if (2048..=8192).contains(&bits) {
                Ok(())
            } else {
                Err(CsrRefusal::WeakKey(format!("RSA {bits} bits")))
            }
        }
        Ok(PublicKey::EC(_)) => match ec_curve(spki) {
            Some(EcCurve::P256 | EcCurve::P384) => Ok(()),
            None => Err(CsrRefusal::WeakKey("an EC curve other than P-256 and P-384".into())),
        },
        Ok(_) => Err(CsrRefusal::WeakKey("unsupported key type".into())),
        Err(_) => Err(CsrRefusal::BadCsr),
    }
}

/// The SAN to copy from a request, with how a SAN pattern sees it (`DNS:…`, `URI:…`, `email:…`,
/// `IP:…`); names a management certificate has no use for are dropped.
fn san_type(name: &GeneralName<'_>) -> Result<Option<(String, SanType)>, CsrRefusal> {
    let bad = |_| CsrRefusal::BadCsr;
    Ok(match name {
        GeneralName::DNSName(dns) => Some((format!("DNS:{dns}"), SanType::DnsName((*dns).try_into().map_err(bad)?))),
        GeneralName::RFC822Name(email) => Some((
            format!("email:{email}"),
            SanType::Rfc822Name((*email).try_into().map_err(bad)?),
        )),
        GeneralName::URI(uri) => Some((format!("URI:{uri}"), SanType::URI((*uri).try_into().map_err(bad)?))),
        GeneralName::IPAddress(bytes) => {
            let address = match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).map(std::net::IpAddr::from).ok(),
                16 => <[u8; 16]>::try_from(*bytes).map(std::net::IpAddr::from).ok(),
                _ => None,
            }
            .ok_or(CsrRefusal::BadCsr)?;
            Some((format!("IP:{address}"), SanType::IpAddress(address)))
        }
        _ => None,
    })
}

fn certificate_spki(certificate_der: &[u8]) -> Result<Vec<u8>, CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| CaError::Material(format!("the certificate does not parse: {e}")))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

/// A random positive 128-bit serial number.
fn random_serial() -> Result<SerialNumber, CaError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Crypto("the system random source failed".into()))?;
    // Positive, and 16 bytes long whatever the draw: top bit clear, next bit set.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>, CaError> {
    if !text.len().is_multiple_of(2) {
        return Err(CaError::Material(format!("serial number {text:?} is not hex")));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| CaError::Material(format!("serial number {text:?} is not hex")))
        })
        .collect()
}

/// PEM armour.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn micros(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
