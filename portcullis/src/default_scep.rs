//! The SCEP integration `portcullis up` makes on first start, so an MDM or a SCEP client can
//! enroll against the suite straight away. It goes through pki-svc's API as the admin operator,
//! like any operator would, and keeps the static challenge in the data directory to print it on
//! every start.

use std::io::Write as _;

use portcullis_proto::pki::v1::pki_service_client::PkiServiceClient;
use portcullis_proto::pki::v1::{CreateScepIntegrationRequest, RotateScepSecretRequest, ScepChallengeType};
use service_kit::tls::TlsMaterial;

use crate::data_dir::{ADMIN_OPERATOR, DataDir};
use crate::suite::{PKI_SVC, PortBase};

/// The integration's name, and so its URL: `/scep/default`.
pub const NAME: &str = "default";

/// The default integration, as the banner shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultScep {
    /// Where SCEP clients send requests.
    pub url: String,
    /// The static challenge.
    pub challenge: String,
}

/// Why the default integration could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the default SCEP integration: {0}")]
pub struct DefaultScepError(String);

/// Makes the default integration on first start; later starts read its challenge back.
pub async fn ensure(data: &DataDir, base: PortBase) -> Result<DefaultScep, DefaultScepError> {
    let path = data.scep_challenge_file();
    let saved = std::fs::read_to_string(&path)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let challenge = match &saved {
        Some(challenge) => challenge.clone(),
        None => pki_svc::challenge::choose("").map_err(|e| DefaultScepError(e.to_string()))?,
    };
    let tls = TlsMaterial::load(&data.tls(ADMIN_OPERATOR)).map_err(|e| DefaultScepError(e.to_string()))?;
    let channel = tls.lazy_channel(&PKI_SVC.url(base)).map_err(DefaultScepError)?;
    let mut client = PkiServiceClient::new(channel);
    let created = client
        .create_scep_integration(CreateScepIntegrationRequest {
            name: NAME.to_owned(),
            display_name: "Default (portcullis up)".to_owned(),
            challenge_type: ScepChallengeType::Static.into(),
            secret: challenge.clone(),
            subject_pattern: String::new(),
            certificate_lifetime_seconds: 0,
            san_pattern: String::new(),
        })
        .await;
    let url = match created {
        Ok(response) => response.into_inner().integration.map(|i| i.url).unwrap_or_default(),
        // It exists: with the saved challenge if there is one, else the saved one was lost and
        // the challenge is replaced.
        Err(status) if status.code() == tonic::Code::AlreadyExists => {
            let rotated = match saved {
                Some(_) => None,
                None => Some(
                    client
                        .rotate_scep_secret(RotateScepSecretRequest {
                            name: NAME.to_owned(),
                            secret: challenge.clone(),
                        })
                        .await
                        .map_err(|status| DefaultScepError(status.message().to_owned()))?,
                ),
            };
            rotated
                .and_then(|r| r.into_inner().integration.map(|i| i.url))
                .unwrap_or_else(|| data_url(base))
        }
        Err(status) => return Err(DefaultScepError(status.message().to_owned())),
    };
    if saved.is_none() {
        save(&path, &challenge).map_err(|e| DefaultScepError(format!("{}: {e}", path.display())))?;
    }
    Ok(DefaultScep { url, challenge })
}

fn data_url(base: PortBase) -> String {
    format!("http://localhost:{}/scep/{NAME}", crate::suite::pki_http(base).port())
}

fn save(path: &std::path::Path, challenge: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    writeln!(options.open(path)?, "{challenge}")
}
