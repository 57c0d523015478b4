//! device-svc's configuration.

use std::net::{Ipv4Addr, SocketAddr};

use service_kit::config::{ConfigError, ServerConfig, Settings};

/// Default mTLS gRPC port.
pub const DEFAULT_PORT: u16 = 7443;
/// Default admin (health, metrics) port.
pub const DEFAULT_ADMIN_PORT: u16 = 7444;

/// Everything device-svc reads at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Listeners, TLS, database, limits.
    pub server: ServerConfig,
    /// session-svc's URL (`session_svc_url`, `https://host:port`); revocations wait in the outbox
    /// while unset.
    pub session_svc_url: Option<String>,
    /// pki-svc's URL (`pki_svc_url`).
    pub pki_svc_url: Option<String>,
    /// Secret sealing page tokens (`page_token_secret`); replicas must share it. When unset, a
    /// random one is made at start and tokens do not survive a restart.
    pub page_token_secret: Option<String>,
    /// Clock skew allowed on assertion times, in seconds (`assertion_leeway_secs`).
    pub assertion_leeway_secs: i64,
    /// Longest accepted assertion lifetime, in seconds (`assertion_max_lifetime_secs`).
    pub assertion_max_lifetime_secs: i64,
    /// Database connections (`database_max_connections`; two per core by default).
    pub database_max_connections: u32,
}

fn url(settings: &Settings, key: &str) -> Result<Option<String>, ConfigError> {
    let Some(value) = settings.raw(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if !value.starts_with("https://") {
        return Err(ConfigError::new(key, "must be an https:// URL"));
    }
    Ok(Some(value.to_owned()))
}

/// The default `database_max_connections`: two per core.
pub use service_kit::db::default_max_connections as default_database_connections;

impl DeviceConfig {
    /// Reads and validates the settings.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let server = ServerConfig::from_settings(
            settings,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_ADMIN_PORT)),
        )?;
        let page_token_secret = settings.raw("page_token_secret").map(str::to_owned);
        if page_token_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(ConfigError::new("page_token_secret", "must be at least 16 characters"));
        }
        Ok(Self {
            server,
            session_svc_url: url(settings, "session_svc_url")?,
            pki_svc_url: url(settings, "pki_svc_url")?,
            page_token_secret,
            assertion_leeway_secs: settings.get_or("assertion_leeway_secs", 30)?,
            assertion_max_lifetime_secs: settings.get_or("assertion_max_lifetime_secs", 300)?,
            database_max_connections: settings.get_or("database_max_connections", default_database_connections())?,
        })
    }
}
