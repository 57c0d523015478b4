//! pki-svc's configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use service_kit::config::{ConfigError, ServerConfig, Settings};
use service_kit::sealing::Sealer;

/// Default mTLS gRPC port.
pub const DEFAULT_PORT: u16 = 7455;
/// Default admin (health, metrics) port.
pub const DEFAULT_ADMIN_PORT: u16 = 7456;
/// Default plain-HTTP port for SCEP and CRLs.
pub const DEFAULT_HTTP_PORT: u16 = 7457;

/// A CA certificate and key read from PEM files instead of being made by the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// The CA certificate.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, or PKCS#1 for RSA).
    pub key: PathBuf,
}

/// Everything pki-svc reads at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiConfig {
    /// gRPC listener, TLS, database, limits.
    pub server: ServerConfig,
    /// The SCEP and CRL listener (`http_listen`). Plain HTTP: SCEP protects its messages itself,
    /// and CRLs are signed.
    pub http_listen: SocketAddr,
    /// The URL devices and verifiers reach that listener at (`public_url`, no trailing slash):
    /// SCEP URLs and CRL distribution points are built from it.
    pub public_url: String,
    /// Base64 of the 32-byte key sealing CA private keys in the database (`ca_encryption_key`).
    pub ca_encryption_key: String,
    /// A device CA of your own (`device_ca_cert`, `device_ca_key`); when unset, pki-svc makes an
    /// RSA device CA on first start and keeps it in the database.
    pub device_ca: Option<CaFiles>,
    /// The service CA (`service_ca_cert`, `service_ca_key`) that `IssueServiceCertificate` signs
    /// with; when unset that RPC answers FAILED_PRECONDITION.
    pub service_ca: Option<CaFiles>,
    /// How long a CRL is valid (`crl_validity_hours`); it is reissued at half that age.
    pub crl_validity: Duration,
    /// Management certificates of ours unused this many days are revoked
    /// (`unused_certificate_days`; 0 never).
    pub unused_certificate_days: u64,
    /// How often trusted CAs are reloaded from the database (`trust_reload_ms`).
    pub trust_reload: Duration,
    /// How often CRLs are fetched and unused certificates revoked (`maintenance_interval_secs`).
    pub maintenance_interval: Duration,
    /// Secret sealing page tokens (`page_token_secret`); replicas must share it.
    pub page_token_secret: Option<String>,
    /// Database connections (`database_max_connections`; two per core by default).
    pub database_max_connections: u32,
}

impl PkiConfig {
    /// Reads and validates the settings.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let server = ServerConfig::from_settings(
            settings,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_ADMIN_PORT)),
        )?;
        let http_listen = settings.get_or(
            "http_listen",
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_HTTP_PORT)),
        )?;
        let public_url = settings
            .raw("public_url")
            .map(|url| url.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://localhost:{}", http_listen.port()));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::new("public_url", "must be an http:// or https:// URL"));
        }
        let ca_encryption_key: String = settings.require("ca_encryption_key")?;
        Sealer::from_base64(&ca_encryption_key).map_err(|e| ConfigError::new("ca_encryption_key", e.to_string()))?;
        let crl_validity_hours: u64 = settings.get_or("crl_validity_hours", 24)?;
        if crl_validity_hours == 0 {
            return Err(ConfigError::new("crl_validity_hours", "must be greater than zero"));
        }
        let page_token_secret = settings.raw("page_token_secret").map(str::to_owned);
        if page_token_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(ConfigError::new("page_token_secret", "must be at least 16 characters"));
        }
        let maintenance_secs: u64 = settings.get_or("maintenance_interval_secs", 300)?;
        if maintenance_secs == 0 {
            return Err(ConfigError::new(
                "maintenance_interval_secs",
                "must be greater than zero",
            ));
        }
        Ok(Self {
            server,
            page_token_secret,
            unused_certificate_days: settings.get_or("unused_certificate_days", 90)?,
            trust_reload: settings.duration_ms_or("trust_reload_ms", Duration::from_secs(10))?,
            maintenance_interval: Duration::from_secs(maintenance_secs),
            http_listen,
            public_url,
            ca_encryption_key,
            device_ca: ca_files(settings, "device_ca_cert", "device_ca_key")?,
            service_ca: ca_files(settings, "service_ca_cert", "service_ca_key")?,
            crl_validity: Duration::from_secs(crl_validity_hours * 3600),
            database_max_connections: settings
                .get_or("database_max_connections", service_kit::db::default_max_connections())?,
        })
    }
}

fn ca_files(settings: &Settings, cert_key: &str, key_key: &str) -> Result<Option<CaFiles>, ConfigError> {
    let cert = settings.raw(cert_key).filter(|v| !v.is_empty());
    let key = settings.raw(key_key).filter(|v| !v.is_empty());
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(CaFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        })),
        (Some(_), None) => Err(ConfigError::new(key_key, format!("required when `{cert_key}` is set"))),
        (None, Some(_)) => Err(ConfigError::new(cert_key, format!("required when `{key_key}` is set"))),
    }
}
