//! The data directory: the development PKI, the page-token secret and one database per service,
//! made on first start and reused after.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use service_kit::dev_pki::{DevCa, DevPkiError};
use service_kit::identity::{DEFAULT_TRUST_DOMAIN, Role};
use service_kit::tls::TlsFiles;

use crate::suite::PKI_SVC;

/// Stem of the admin operator's certificate and key in `pki/`.
pub const ADMIN_OPERATOR: &str = "operator-admin";
/// Stem of the viewer operator's certificate and key in `pki/`.
pub const VIEWER_OPERATOR: &str = "operator-viewer";
/// The file holding the secret device-svc seals page tokens with.
const PAGE_TOKEN_SECRET_FILE: &str = "page-token-secret";
/// The health service's descriptors, for grpcurl on the admin port (which serves no reflection).
const HEALTH_PROTOSET_FILE: &str = "grpc-health.protoset";
/// Random bytes in a new page-token secret.
const PAGE_TOKEN_SECRET_BYTES: usize = 32;
/// The shortest secret device-svc accepts.
const PAGE_TOKEN_SECRET_MIN_CHARS: usize = 16;
/// The file holding session-svc's key for TOTP seeds (base64 of 32 bytes).
const TOTP_KEY_FILE: &str = "totp-encryption-key";
/// Base64 of 32 bytes.
const TOTP_KEY_CHARS: usize = 44;
/// The file holding pki-svc's key for CA private keys (base64 of 32 bytes).
const CA_KEY_FILE: &str = "ca-encryption-key";
/// The file holding the default SCEP integration's static challenge.
const SCEP_CHALLENGE_FILE: &str = "scep-challenge";

/// Why the data directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file or directory could not be made or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Something other than a directory is in the way.
    #[error("{}: is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The directory's path cannot be passed on in settings and URLs.
    #[error("data dir {}: the path must be valid UTF-8", .0.display())]
    NotUtf8(PathBuf),
    /// The CA or a certificate could not be made or loaded.
    #[error("development PKI in {}: {source}", dir.display())]
    Pki {
        /// `pki/`.
        dir: PathBuf,
        /// Why.
        #[source]
        source: DevPkiError,
    },
    /// A secret file (page-token secret, TOTP key) holds something unusable.
    #[error("{}: {reason}; delete it to have a new one made", path.display())]
    BadSecret {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A prepared data directory. Every path in it is absolute.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    pki: PathBuf,
    ca: PathBuf,
    page_token_secret: String,
    totp_encryption_key: String,
    ca_encryption_key: String,
    health_protoset: PathBuf,
}

impl DataDir {
    /// Makes whatever is missing in `dir` (the directory itself, the service CA, pki-svc's and the
    /// admin operator's certificates, the secrets) and keeps whatever exists, so a restart finds
    /// the same CA, identities and data.
    pub fn prepare(dir: &Path) -> Result<Self, DataDirError> {
        create_private_dir(dir)?;
        let root = std::fs::canonicalize(dir).map_err(|source| DataDirError::Io {
            path: dir.to_owned(),
            source,
        })?;
        if root.to_str().is_none() {
            return Err(DataDirError::NotUtf8(root));
        }
        let pki = root.join("pki");
        let pki_error = |source| DataDirError::Pki {
            dir: pki.clone(),
            source,
        };
        // The bootstrap: the service CA, pki-svc's identity and the admin operator's. pki-svc
        // issues every other identity once it runs (see identities.rs).
        let ca = DevCa::load_or_create(&pki, DEFAULT_TRUST_DOMAIN).map_err(pki_error)?;
        ca.load_or_issue(&pki, PKI_SVC.name, |ca| ca.issue_service(PKI_SVC.name, &[]))
            .map_err(pki_error)?;
        let admin = ca
            .load_or_issue(&pki, ADMIN_OPERATOR, |ca| ca.issue_operator("admin", Role::Admin))
            .map_err(pki_error)?;
        let page_token_secret = load_or_create_secret(
            &root.join(PAGE_TOKEN_SECRET_FILE),
            PAGE_TOKEN_SECRET_MIN_CHARS,
            |bytes| bytes.iter().map(|b| format!("{b:02x}")).collect(),
        )?;
        let base64_key = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
        let totp_encryption_key = load_or_create_secret(&root.join(TOTP_KEY_FILE), TOTP_KEY_CHARS, base64_key)?;
        let ca_encryption_key = load_or_create_secret(&root.join(CA_KEY_FILE), TOTP_KEY_CHARS, base64_key)?;
        // Written every start: it describes the health service of this build.
        let health_protoset = root.join(HEALTH_PROTOSET_FILE);
        std::fs::write(&health_protoset, tonic_health::pb::FILE_DESCRIPTOR_SET).map_err(|source| DataDirError::Io {
            path: health_protoset.clone(),
            source,
        })?;
        Ok(Self {
            root,
            pki,
            ca: admin.ca,
            page_token_secret,
            totp_encryption_key,
            ca_encryption_key,
            health_protoset,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The development service CA certificate.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// The certificate and key files with stem `stem` in `pki/`: a suite member's name,
    /// [`ADMIN_OPERATOR`] or [`VIEWER_OPERATOR`].
    pub fn tls(&self, stem: &str) -> TlsFiles {
        // The names DevCa::load_or_issue writes.
        TlsFiles {
            ca: self.ca.clone(),
            cert: self.pki.join(format!("{stem}.pem")),
            key: self.pki.join(format!("{stem}.key")),
        }
    }

    /// The key session-svc seals TOTP seeds with; losing it makes enrolled TOTP unusable.
    pub fn totp_encryption_key(&self) -> &str {
        &self.totp_encryption_key
    }

    /// The key pki-svc seals the device CA's private key with; losing it loses the device CA.
    pub fn ca_encryption_key(&self) -> &str {
        &self.ca_encryption_key
    }

    /// The service CA's certificate and key, which pki-svc issues service identities with.
    pub fn service_ca_files(&self) -> (PathBuf, PathBuf) {
        (self.ca.clone(), self.ca.with_extension("key"))
    }

    /// Where `up` keeps the default SCEP integration's static challenge.
    pub fn scep_challenge_file(&self) -> PathBuf {
        self.root.join(SCEP_CHALLENGE_FILE)
    }

    /// The protoset describing `grpc.health.v1`, for `grpcurl -protoset` on the admin port.
    pub fn health_protoset(&self) -> &Path {
        &self.health_protoset
    }

    /// The secret device-svc seals page tokens with, so tokens survive a restart.
    pub fn page_token_secret(&self) -> &str {
        &self.page_token_secret
    }

    /// The SQLite database of service `name`, created on first use.
    pub fn database_url(&self, name: &str) -> String {
        sqlite_url(&self.root.join(format!("{name}.db")))
    }
}

/// `sqlite://<path>?mode=rwc`. sqlx percent-decodes the path, so the characters that would end
/// it early or be decoded (`?`, `#`, `%`) are encoded.
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => {
                let _ = write!(url, "%{:02X}", c as u32);
            }
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// Creates `dir` (and its parents) readable only by us when it does not exist: it will hold
/// private keys, a secret and the databases.
fn create_private_dir(dir: &Path) -> Result<(), DataDirError> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataDirError::NotADirectory(dir.to_owned()));
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| DataDirError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn load_or_create_secret(path: &Path, min_chars: usize, encode: fn(&[u8]) -> String) -> Result<String, DataDirError> {
    let io = |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.len() < min_chars {
                return Err(DataDirError::BadSecret {
                    path: path.to_owned(),
                    reason: format!("holds {} characters, at least {min_chars} are needed", secret.len()),
                });
            }
            Ok(secret.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; PAGE_TOKEN_SECRET_BYTES];
            aws_lc_rs::rand::fill(&mut bytes)
                .map_err(|_| io(std::io::Error::other("the system random number generator failed")))?;
            let secret = encode(&bytes);
            let mut options = std::fs::OpenOptions::new();
            // create_new: never overwrite a secret something else wrote meanwhile.
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            writeln!(file, "{secret}").map_err(io)?;
            Ok(secret)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sqlite_urls_encode_what_sqlx_would_misread() {
        assert_eq!(
            sqlite_url(Path::new("/data/device-svc.db")),
            "sqlite:///data/device-svc.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url(Path::new("/a b/50%?#.db")),
            "sqlite:///a b/50%25%3F%23.db?mode=rwc"
        );
    }

    #[test]
    fn a_new_secret_is_64_hex_characters_and_kept_across_loads() {
        let dir = std::env::temp_dir().join(format!("portcullis-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        let _ = std::fs::remove_file(&path);
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect();
        let secret = load_or_create_secret(&path, 16, hex).unwrap();
        assert_eq!(secret.len(), 64);
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(load_or_create_secret(&path, 16, hex).unwrap(), secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            load_or_create_secret(&path, 16, hex),
            Err(DataDirError::BadSecret { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
