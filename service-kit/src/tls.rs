//! mTLS material for servers and clients: the service CA, this service's certificate and key.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity as TlsIdentity, ServerTlsConfig};

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) that client and server certificates must chain to.
    pub ca: PathBuf,
    /// This process's certificate chain.
    pub cert: PathBuf,
    /// This process's private key.
    pub key: PathBuf,
}

/// Loaded PEM material.
#[derive(Clone)]
pub struct TlsMaterial {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

/// A PEM file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct TlsLoadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

fn read(path: &Path) -> Result<String, TlsLoadError> {
    std::fs::read_to_string(path).map_err(|source| TlsLoadError {
        path: path.to_owned(),
        source,
    })
}

impl TlsMaterial {
    /// From PEM text.
    pub fn from_pem(ca_pem: impl Into<String>, cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        Self {
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        }
    }

    /// Reads the three files.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsLoadError> {
        Ok(Self {
            ca_pem: read(&files.ca)?,
            cert_pem: read(&files.cert)?,
            key_pem: read(&files.key)?,
        })
    }

    /// Server side: present our certificate and require a client certificate from the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(TlsIdentity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(false)
    }

    /// Client side: trust only the CA, present our certificate, expect `server_name` in the
    /// server's certificate.
    pub fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(TlsIdentity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(server_name)
    }

    /// A channel to another service at `url` (`https://host:port`), over mTLS with this
    /// material, connecting on first use: the peer may start later or be down for a while.
    pub fn lazy_channel(&self, url: &str) -> Result<Channel, String> {
        let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| e.to_string())?;
        let host = endpoint.uri().host().ok_or("the URL has no host")?.to_owned();
        Ok(endpoint
            .tls_config(self.client_config(&host))
            .map_err(|e| e.to_string())?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_lazy())
    }

    /// The CA certificate(s).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}
