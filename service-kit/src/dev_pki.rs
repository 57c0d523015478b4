//! The development service CA `portcullis up` and the tests make: service and operator certificates.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::identity::Role;
use crate::tls::{TlsFiles, TlsMaterial};

/// Why the development PKI could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum DevPkiError {
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate").finish_non_exhaustive()
    }
}

/// A development service CA that signs SPIFFE identities. Not the device CA.
pub struct DevCa {
    trust_domain: String,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

const CA_FILE: &str = "service-ca.pem";
const CA_KEY_FILE: &str = "service-ca.key";

impl DevCa {
    /// A fresh CA (ECDSA P-256, ten years).
    pub fn generate(trust_domain: &str) -> Result<Self, DevPkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Portcullis");
        name.push(
            DnType::CommonName,
            format!("Portcullis development service CA ({trust_domain})"),
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // The CA constrains itself to SPIFFE ids of its trust domain would be ideal, but URI name
        // constraints are poorly supported by verifiers; the access rules check the domain instead.
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA from `dir`, or makes one there on first use.
    pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<Self, DevPkiError> {
        let cert_path = dir.join(CA_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            let cert_pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?)?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
            return Ok(Self {
                trust_domain: trust_domain.to_owned(),
                cert_pem,
                issuer,
            });
        }
        let ca = Self::generate(trust_domain)?;
        write(&cert_path, &ca.cert_pem, false)?;
        write(&key_path, &ca.issuer.key().serialize_pem(), true)?;
        Ok(ca)
    }

    /// The CA certificate.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for service `name` (`spiffe://<domain>/svc/<name>`), usable as TLS server
    /// and client, valid for `localhost` and 127.0.0.1 plus `dns_names`.
    pub fn issue_service(&self, name: &str, dns_names: &[&str]) -> Result<IssuedCertificate, DevPkiError> {
        let mut sans = vec![
            SanType::URI(format!("spiffe://{}/svc/{name}", self.trust_domain).try_into()?),
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        ];
        for dns in dns_names {
            sans.push(SanType::DnsName((*dns).try_into()?));
        }
        self.issue(name, None, sans)
    }

    /// A client certificate for operator `name` holding `role`.
    pub fn issue_operator(&self, name: &str, role: Role) -> Result<IssuedCertificate, DevPkiError> {
        let sans = vec![SanType::URI(
            format!("spiffe://{}/operator/{name}", self.trust_domain).try_into()?,
        )];
        self.issue(name, Some(role), sans)
    }

    fn issue(
        &self,
        common_name: &str,
        role: Option<Role>,
        sans: Vec<SanType>,
    ) -> Result<IssuedCertificate, DevPkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        if let Some(role) = role {
            name.push(DnType::OrganizationName, role.as_str());
        }
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if role.is_some() {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(365);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads `<dir>/<stem>.pem` and `.key`, or issues them with `issue` and writes them.
    pub fn load_or_issue(
        &self,
        dir: &Path,
        stem: &str,
        issue: impl FnOnce(&Self) -> Result<IssuedCertificate, DevPkiError>,
    ) -> Result<TlsFiles, DevPkiError> {
        let files = TlsFiles {
            ca: dir.join(CA_FILE),
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        if !(files.cert.exists() && files.key.exists()) {
            let issued = issue(self)?;
            write(&files.cert, &issued.cert_pem, false)?;
            write(&files.key, &issued.key_pem, true)?;
        }
        Ok(files)
    }
}

impl IssuedCertificate {
    /// TLS material pairing this certificate with the CA that issued it.
    pub fn tls(&self, ca: &DevCa) -> TlsMaterial {
        TlsMaterial::from_pem(ca.cert_pem(), &self.cert_pem, &self.key_pem)
    }
}

fn read(path: &Path) -> Result<String, DevPkiError> {
    std::fs::read_to_string(path).map_err(|source| DevPkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), DevPkiError> {
    let io = |source| DevPkiError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io)?;
    std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(io)
}
