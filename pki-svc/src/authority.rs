//! The CAs pki-svc runs, loaded or made at start, and the CRL each publishes.

use std::sync::Arc;
use std::time::Duration;

use service_kit::dev_pki::DevCa;
use service_kit::sealing::Sealer;

use crate::config::{CaFiles, PkiConfig};
use crate::device_ca::{DEVICE_CA, DeviceCa, RevokedEntry};
use crate::error::{Error, Result};
use crate::store::{Store, StoredCrl, now_micros};

/// Why the CAs could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// CA material is unusable.
    #[error("{0}")]
    Material(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// The device CA, the service CA (when configured) and where they publish.
#[derive(Debug)]
pub struct Authorities {
    store: Store,
    device_ca: DeviceCa,
    service_ca: Option<DevCa>,
    public_url: String,
    crl_validity: Duration,
}

impl Authorities {
    /// Loads the configured CAs, making the device CA on the deployment's first start.
    pub async fn open(config: &PkiConfig, store: Store, sealer: &Sealer) -> Result<Arc<Self>, AuthorityError> {
        let crl_url = format!("{}/crl/{DEVICE_CA}.crl", config.public_url);
        let device_ca = match &config.device_ca {
            Some(files) => {
                let (certificate, key) = read_ca_files(files)?;
                DeviceCa::from_der(certificate, &key, crl_url).map_err(|e| AuthorityError::Material(e.to_string()))?
            }
            None => stored_device_ca(&store, sealer, crl_url).await?,
        };
        let service_ca = match &config.service_ca {
            Some(files) => Some(
                DevCa::load(&files.cert, &files.key, &config.server.trust_domain)
                    .map_err(|e| AuthorityError::Material(format!("service CA: {e}")))?,
            ),
            None => None,
        };
        Ok(Arc::new(Self {
            store,
            device_ca,
            service_ca,
            public_url: config.public_url.clone(),
            crl_validity: config.crl_validity,
        }))
    }

    /// The device CA.
    pub fn device_ca(&self) -> &DeviceCa {
        &self.device_ca
    }

    /// The service CA, if configured.
    pub fn service_ca(&self) -> Option<&DevCa> {
        self.service_ca.as_ref()
    }

    /// Where MDMs reach integration `name`.
    pub fn scep_url(&self, name: &str) -> String {
        format!("{}/scep/{name}", self.public_url)
    }

    /// The storage.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The device CA's current CRL, reissued first when there is none or it is past half its
    /// validity; `None` when the device CA cannot sign CRLs.
    pub async fn device_crl(&self) -> Result<Option<Vec<u8>>> {
        if !self.device_ca.signs_crls() {
            return Ok(None);
        }
        if let Some(crl) = self.store.crl(DEVICE_CA).await? {
            let half_life = i64::try_from(self.crl_validity.as_micros() / 2).unwrap_or(i64::MAX);
            if !crl.der.is_empty() && now_micros() - crl.issued_at < half_life {
                return Ok(Some(crl.der));
            }
        }
        Ok(self.reissue_device_crl().await?.map(|crl| crl.der))
    }

    /// Issues the device CA's next CRL from the inventory; `None` when the device CA cannot sign
    /// CRLs.
    pub async fn reissue_device_crl(&self) -> Result<Option<StoredCrl>> {
        if !self.device_ca.signs_crls() {
            return Ok(None);
        }
        let ca = &self.device_ca;
        let validity = self.crl_validity;
        self.store
            .reissue_crl(DEVICE_CA, |number, revoked| {
                let entries: Vec<RevokedEntry> = revoked
                    .into_iter()
                    .map(|(serial_number, revoked_at_micros, reason)| RevokedEntry {
                        serial_number,
                        revoked_at_micros,
                        reason: crl_reason(reason),
                    })
                    .collect();
                ca.crl(number, &entries, validity).map_err(|e| e.to_string())
            })
            .await
            .map(Some)
    }
}

/// RFC 5280 reason codes as rcgen names them.
fn crl_reason(code: i64) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    match code {
        1 => Some(R::KeyCompromise),
        4 => Some(R::Superseded),
        5 => Some(R::CessationOfOperation),
        _ => None,
    }
}

/// The device CA kept in the database, made and stored on first use. Replicas starting together
/// may each make one; the first stored wins and the others load it.
async fn stored_device_ca(store: &Store, sealer: &Sealer, crl_url: String) -> Result<DeviceCa, AuthorityError> {
    loop {
        if let Some((certificate, sealed_key)) = store.certificate_authority(DEVICE_CA).await? {
            let key = sealer.open(&sealed_key, DEVICE_CA).map_err(|e| {
                AuthorityError::Material(format!(
                    "the stored device CA key: {e} (is ca_encryption_key the one it was made with?)"
                ))
            })?;
            return DeviceCa::from_der(certificate, &key, crl_url).map_err(|e| AuthorityError::Material(e.to_string()));
        }
        let (certificate, key) =
            DeviceCa::generate("Portcullis device CA").map_err(|e| AuthorityError::Material(e.to_string()))?;
        let sealed = sealer
            .seal(&key, DEVICE_CA)
            .map_err(|e| AuthorityError::Material(e.to_string()))?;
        store
            .insert_certificate_authority_if_absent(DEVICE_CA, &certificate, &sealed)
            .await?;
        tracing::info!("made the device CA");
    }
}

/// The DER certificate and PKCS#8 key in a CA's PEM files.
fn read_ca_files(files: &CaFiles) -> Result<(Vec<u8>, Vec<u8>), AuthorityError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| AuthorityError::Io {
            path: path.display().to_string(),
            source,
        })
    };
    let certificate = pem_block(&read(&files.cert)?, "CERTIFICATE")
        .ok_or_else(|| AuthorityError::Material(format!("{}: no PEM CERTIFICATE", files.cert.display())))?;
    let key = pem_block(&read(&files.key)?, "PRIVATE KEY").ok_or_else(|| {
        AuthorityError::Material(format!(
            "{}: no PEM PRIVATE KEY (PKCS#8; convert with `openssl pkcs8 -topk8 -nocrypt`)",
            files.key.display()
        ))
    })?;
    Ok((certificate, key))
}

/// The contents of the first PEM block labelled `label`.
pub fn pem_block(text: &[u8], label: &str) -> Option<Vec<u8>> {
    pem_blocks(text, label).next()
}

/// The contents of every PEM block labelled `label`, in order.
pub fn pem_blocks<'a>(text: &'a [u8], label: &'a str) -> impl Iterator<Item = Vec<u8>> + 'a {
    x509_parser::pem::Pem::iter_from_buffer(text)
        .filter_map(|pem| pem.ok())
        .filter(move |pem| pem.label == label)
        .map(|pem| pem.contents)
}
