//! policy-svc's configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use service_kit::config::{ConfigError, ServerConfig, Settings};

/// Default mTLS gRPC port.
pub const DEFAULT_PORT: u16 = 7459;
/// Default admin (health, metrics) port.
pub const DEFAULT_ADMIN_PORT: u16 = 7460;

/// Everything policy-svc reads at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Listeners, TLS, database, limits.
    pub server: ServerConfig,
    /// How often the configuration version is polled for other replicas' changes
    /// (`reload_poll_ms`); a change is in force everywhere within about this long.
    pub reload_poll_interval: Duration,
    /// Secret sealing page tokens (`page_token_secret`); replicas must share it.
    pub page_token_secret: Option<String>,
    /// Database connections (`database_max_connections`).
    pub database_max_connections: u32,
}

impl PolicyConfig {
    /// Reads and validates the settings.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let server = ServerConfig::from_settings(
            settings,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_ADMIN_PORT)),
        )?;
        let reload_poll_interval = settings.duration_ms_or("reload_poll_ms", Duration::from_millis(250))?;
        if reload_poll_interval > Duration::from_secs(1) {
            return Err(ConfigError::new(
                "reload_poll_ms",
                "must be at most 1000, so changes reach every replica within a second",
            ));
        }
        let page_token_secret = settings.raw("page_token_secret").map(str::to_owned);
        if page_token_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(ConfigError::new("page_token_secret", "must be at least 16 characters"));
        }
        Ok(Self {
            server,
            reload_poll_interval,
            page_token_secret,
            database_max_connections: settings
                .get_or("database_max_connections", service_kit::db::default_max_connections())?,
        })
    }
}
