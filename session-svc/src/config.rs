//! session-svc's configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use service_kit::config::{ConfigError, ServerConfig, Settings};

use crate::totp::SeedCipher;

/// Default mTLS gRPC port.
pub const DEFAULT_PORT: u16 = 7453;
/// Default admin (health, metrics) port.
pub const DEFAULT_ADMIN_PORT: u16 = 7454;

/// Default `database_max_connections`.
pub const DEFAULT_DATABASE_CONNECTIONS: u32 = 16;

/// Everything session-svc reads at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Listeners, TLS, database, limits.
    pub server: ServerConfig,
    /// Base64 of the 32-byte key sealing TOTP seeds (`totp_encryption_key`).
    pub totp_encryption_key: String,
    /// Consecutive password failures that lock an account (`lockout_threshold`).
    pub lockout_threshold: i64,
    /// How long a lockout lasts (`lockout_duration_secs`).
    pub lockout_duration: Duration,
    /// Password hashes computed at once (`password_hash_concurrency`).
    pub password_hash_concurrency: usize,
    /// How often the revocation feed looks for other replicas' revocations (`feed_poll_ms`).
    pub feed_poll_interval: Duration,
    /// How long ended sessions, feed rows and idempotency records are kept (`retention_hours`).
    pub retention: Duration,
    /// How often expired records are swept and run-out lockouts ended (`sweep_interval_ms`).
    pub sweep_interval: Duration,
    /// Secret sealing page tokens (`page_token_secret`); replicas must share it.
    pub page_token_secret: Option<String>,
    /// Database connections (`database_max_connections`).
    pub database_max_connections: u32,
}

impl SessionConfig {
    /// Reads and validates the settings.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let server = ServerConfig::from_settings(
            settings,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_ADMIN_PORT)),
        )?;
        let totp_encryption_key: String = settings.require("totp_encryption_key")?;
        SeedCipher::from_base64(&totp_encryption_key)
            .map_err(|e| ConfigError::new("totp_encryption_key", e.to_string()))?;
        let lockout_threshold: i64 = settings.get_or("lockout_threshold", 10)?;
        if lockout_threshold < 1 {
            return Err(ConfigError::new("lockout_threshold", "must be at least 1"));
        }
        let lockout_secs: u64 = settings.get_or("lockout_duration_secs", 900)?;
        if lockout_secs == 0 {
            return Err(ConfigError::new("lockout_duration_secs", "must be greater than zero"));
        }
        let password_hash_concurrency: usize = settings.get_or("password_hash_concurrency", 2)?;
        if password_hash_concurrency == 0 {
            return Err(ConfigError::new(
                "password_hash_concurrency",
                "must be greater than zero",
            ));
        }
        let retention_hours: u64 = settings.get_or("retention_hours", 168)?;
        if retention_hours == 0 {
            return Err(ConfigError::new("retention_hours", "must be greater than zero"));
        }
        let page_token_secret = settings.raw("page_token_secret").map(str::to_owned);
        if page_token_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(ConfigError::new("page_token_secret", "must be at least 16 characters"));
        }
        Ok(Self {
            server,
            totp_encryption_key,
            lockout_threshold,
            lockout_duration: Duration::from_secs(lockout_secs),
            password_hash_concurrency,
            feed_poll_interval: settings.duration_ms_or("feed_poll_ms", Duration::from_millis(100))?,
            retention: Duration::from_secs(retention_hours * 3600),
            sweep_interval: settings.duration_ms_or("sweep_interval_ms", Duration::from_secs(5))?,
            page_token_secret,
            database_max_connections: settings.get_or("database_max_connections", DEFAULT_DATABASE_CONNECTIONS)?,
        })
    }
}
