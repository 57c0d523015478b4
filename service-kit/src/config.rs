//! Typed configuration read from an optional TOML file and the environment, validated up front.
//!
//! Every setting has a key (`database_url`) that is also its name in the file, and an
//! environment variable (`PORTCULLIS_DATABASE_URL`) that overrides the file.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::identity::DEFAULT_TRUST_DOMAIN;
use crate::tls::TlsFiles;

/// Prefix of every environment variable Portcullis reads.
pub const ENV_PREFIX: &str = "PORTCULLIS_";

/// A setting that is missing or has a bad value. Its message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting `{key}` ({env}): {reason}")]
pub struct ConfigError {
    /// The key.
    pub key: String,
    /// The environment variable for it.
    pub env: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            env: env_name(key),
            reason: reason.into(),
        }
    }
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Raw settings: file values overridden by environment values.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    /// Builds settings from a TOML file (a flat table of keys) and environment variables.
    /// Taking the variables as an iterator keeps this testable without the process environment.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new("config", format!("cannot read {}: {e}", path.display())))?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| ConfigError::new("config", format!("{}: {e}", path.display())))?;
            for (key, value) in table {
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    other => {
                        return Err(ConfigError::new(
                            &key,
                            format!("expected a string, number or boolean, got {}", other.type_str()),
                        ));
                    }
                };
                values.insert(key, text);
            }
        }
        for (name, value) in env {
            if let Some(key) = name.strip_prefix(ENV_PREFIX)
                && key != "CONFIG"
            {
                values.insert(key.to_ascii_lowercase(), value);
            }
        }
        Ok(Self { values })
    }

    /// Settings from `PORTCULLIS_CONFIG` (a file, if set) and the process environment.
    pub fn from_process_env() -> Result<Self, ConfigError> {
        let file = std::env::var_os(format!("{ENV_PREFIX}CONFIG")).map(PathBuf::from);
        Self::from_sources(file.as_deref(), std::env::vars())
    }

    /// Sets a value, as the file or environment would.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.values.insert(key.to_owned(), value.into());
        self
    }

    /// The raw value of `key`.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A parsed value, or `default` when unset.
    pub fn get_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.raw(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| ConfigError::new(key, format!("invalid value {raw:?}: {e}"))),
        }
    }

    /// A parsed value that must be set.
    pub fn require<T: FromStr>(&self, key: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.raw(key) {
            None => Err(ConfigError::new(key, "is required")),
            Some(raw) => raw
                .parse()
                .map_err(|e| ConfigError::new(key, format!("invalid value {raw:?}: {e}"))),
        }
    }

    /// A duration given in milliseconds, or `default`.
    pub fn duration_ms_or(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        let ms: u64 = self.get_or(key, default.as_millis() as u64)?;
        if ms == 0 {
            return Err(ConfigError::new(key, "must be greater than zero"));
        }
        Ok(Duration::from_millis(ms))
    }
}

/// What every gRPC service needs, whatever it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The mTLS gRPC listener (`listen`).
    pub listen: SocketAddr,
    /// The plaintext admin listener: health and metrics (`admin_listen`).
    pub admin_listen: SocketAddr,
    /// The service CA, this service's certificate and key (`tls_ca`, `tls_cert`, `tls_key`).
    pub tls: TlsFiles,
    /// SPIFFE trust domain of callers (`trust_domain`).
    pub trust_domain: String,
    /// `sqlite://…` or `postgres://…` (`database_url`).
    pub database_url: String,
    /// Longest time a call may take (`request_timeout_ms`).
    pub request_timeout: Duration,
    /// Most calls served at once; more are shed with UNAVAILABLE (`concurrency_limit`).
    pub concurrency_limit: usize,
    /// JSON log lines (`log_json`).
    pub log_json: bool,
}

impl ServerConfig {
    /// Reads and validates the common settings; `default_listen`/`default_admin` apply when unset.
    pub fn from_settings(
        settings: &Settings,
        default_listen: SocketAddr,
        default_admin: SocketAddr,
    ) -> Result<Self, ConfigError> {
        let listen = settings.get_or("listen", default_listen)?;
        let admin_listen = settings.get_or("admin_listen", default_admin)?;
        if listen == admin_listen && listen.port() != 0 {
            return Err(ConfigError::new("admin_listen", "must differ from `listen`"));
        }
        let tls = TlsFiles {
            ca: settings.require::<PathBuf>("tls_ca")?,
            cert: settings.require::<PathBuf>("tls_cert")?,
            key: settings.require::<PathBuf>("tls_key")?,
        };
        let trust_domain: String = settings.get_or("trust_domain", DEFAULT_TRUST_DOMAIN.to_owned())?;
        if trust_domain.is_empty() || trust_domain.contains('/') {
            return Err(ConfigError::new(
                "trust_domain",
                "must be a host name such as portcullis.local",
            ));
        }
        let database_url: String = settings.require("database_url")?;
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let request_timeout = settings.duration_ms_or("request_timeout_ms", Duration::from_secs(10))?;
        let concurrency_limit: usize = settings.get_or("concurrency_limit", 1024)?;
        if concurrency_limit == 0 {
            return Err(ConfigError::new("concurrency_limit", "must be greater than zero"));
        }
        let log_json = settings.get_or("log_json", false)?;
        Ok(Self {
            listen,
            admin_listen,
            tls,
            trust_domain,
            database_url,
            request_timeout,
            concurrency_limit,
            log_json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7000);
    const ADMIN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7001);

    fn complete() -> Vec<(String, String)> {
        env(&[
            ("PORTCULLIS_TLS_CA", "/ca.pem"),
            ("PORTCULLIS_TLS_CERT", "/c.pem"),
            ("PORTCULLIS_TLS_KEY", "/c.key"),
            ("PORTCULLIS_DATABASE_URL", "sqlite://x.db"),
            ("HOME", "/root"),
        ])
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("pc-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nconcurrency_limit = 5\n").unwrap();
        let mut vars = complete();
        vars.push(("PORTCULLIS_LISTEN".into(), "127.0.0.1:9100".into()));
        let settings = Settings::from_sources(Some(&file), vars).unwrap();
        let config = ServerConfig::from_settings(&settings, LISTEN, ADMIN).unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.concurrency_limit, 5);
        assert_eq!(config.admin_listen, ADMIN);
    }

    #[test]
    fn a_bad_value_names_the_setting_and_its_variable() {
        let mut vars = complete();
        vars.push(("PORTCULLIS_REQUEST_TIMEOUT_MS".into(), "soon".into()));
        let settings = Settings::from_sources(None, vars).unwrap();
        let err = ServerConfig::from_settings(&settings, LISTEN, ADMIN).unwrap_err();
        assert_eq!(err.key, "request_timeout_ms");
        assert!(err.to_string().contains("PORTCULLIS_REQUEST_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn a_missing_required_setting_is_an_error() {
        let settings = Settings::from_sources(None, env(&[("PORTCULLIS_TLS_CA", "/ca.pem")])).unwrap();
        let err = ServerConfig::from_settings(&settings, LISTEN, ADMIN).unwrap_err();
        assert_eq!(err.key, "tls_cert");
    }

    #[test]
    fn an_unknown_database_scheme_is_rejected() {
        let mut vars = complete();
        vars.push(("PORTCULLIS_DATABASE_URL".into(), "mysql://x".into()));
        let settings = Settings::from_sources(None, vars).unwrap();
        assert_eq!(
            ServerConfig::from_settings(&settings, LISTEN, ADMIN).unwrap_err().key,
            "database_url"
        );
    }
}
