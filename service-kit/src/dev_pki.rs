//! The development service CA `portcullis up` and the tests make: service and operator certificates.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SubjectPublicKeyInfo,
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

/// How long the identities `portcullis up` and the tests make are valid.
const DEV_LIFETIME: Duration = Duration::days(365);

/// Whose identity a certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityKind<'a> {
    /// A service: `spiffe://<domain>/svc/<name>`, TLS server and client, valid for `localhost`,
    /// 127.0.0.1 and `dns_names`.
    Service {
        /// The service name.
        name: &'a str,
        /// Extra DNS names.
        dns_names: Vec<String>,
    },
    /// A person or tool: `spiffe://<domain>/operator/<name>`, TLS client, role in the subject.
    Operator {
        /// The operator name.
        name: &'a str,
        /// The role.
        role: Role,
    },
}

/// A request for an identity certificate.
#[derive(Debug, Clone)]
pub struct IdentityRequest<'a> {
    /// Whose identity.
    pub identity: IdentityKind<'a>,
    /// The key to certify (DER SubjectPublicKeyInfo); `None` generates a P-256 key.
    pub public_key_der: Option<&'a [u8]>,
    /// How long the certificate is valid.
    pub lifetime: Duration,
}

/// A certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key; empty when the caller brought its own key.
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

    /// Loads the CA from its certificate and key files.
    pub fn load(cert_path: &Path, key_path: &Path, trust_domain: &str) -> Result<Self, DevPkiError> {
        let cert_pem = read(cert_path)?;
        let key = KeyPair::from_pem(&read(key_path)?)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            cert_pem,
            issuer,
        })
    }

    /// Loads the CA from `dir`, or makes one there on first use.
    pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<Self, DevPkiError> {
        let cert_path = dir.join(CA_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            return Self::load(&cert_path, &key_path, trust_domain);
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
    /// and client, valid for `localhost` and 127.0.0.1 plus `dns_names`, for a year.
    pub fn issue_service(&self, name: &str, dns_names: &[&str]) -> Result<IssuedCertificate, DevPkiError> {
        self.issue_identity(&IdentityRequest {
            identity: IdentityKind::Service {
                name,
                dns_names: dns_names.iter().map(|d| (*d).to_owned()).collect(),
            },
            public_key_der: None,
            lifetime: DEV_LIFETIME,
        })
    }

    /// A client certificate for operator `name` holding `role`, for a year.
    pub fn issue_operator(&self, name: &str, role: Role) -> Result<IssuedCertificate, DevPkiError> {
        self.issue_identity(&IdentityRequest {
            identity: IdentityKind::Operator { name, role },
            public_key_der: None,
            lifetime: DEV_LIFETIME,
        })
    }

    /// A certificate for `request.identity`: for the key in `public_key_der` (a DER
    /// SubjectPublicKeyInfo), or for a fresh P-256 key returned with it.
    pub fn issue_identity(&self, request: &IdentityRequest<'_>) -> Result<IssuedCertificate, DevPkiError> {
        let (common_name, role, sans) = match &request.identity {
            IdentityKind::Service { name, dns_names } => {
                let mut sans = vec![
                    SanType::URI(format!("spiffe://{}/svc/{name}", self.trust_domain).try_into()?),
                    SanType::DnsName("localhost".try_into()?),
                    SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
                ];
                for dns in dns_names {
                    sans.push(SanType::DnsName(dns.clone().try_into()?));
                }
                (*name, None, sans)
            }
            IdentityKind::Operator { name, role } => {
                let sans = vec![SanType::URI(
                    format!("spiffe://{}/operator/{name}", self.trust_domain).try_into()?,
                )];
                (*name, Some(*role), sans)
            }
        };
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
        params.not_after = now + request.lifetime;
        match request.public_key_der {
            Some(spki) => {
                let key = SubjectPublicKeyInfo::from_der(spki)?;
                let cert = params.signed_by(&key, &self.issuer)?;
                Ok(IssuedCertificate {
                    cert_pem: cert.pem(),
                    key_pem: String::new(),
                })
            }
            None => {
                let key = KeyPair::generate()?;
                let cert = params.signed_by(&key, &self.issuer)?;
                Ok(IssuedCertificate {
                    cert_pem: cert.pem(),
                    key_pem: key.serialize_pem(),
                })
            }
        }
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

/// Writes a PEM file, readable by its owner only when `private` (keys).
pub fn write(path: &Path, contents: &str, private: bool) -> Result<(), DevPkiError> {
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
