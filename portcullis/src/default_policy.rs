//! The sign-in configuration `portcullis up` applies on first start (`default-configuration.yaml`):
//! an app for local testing and a policy that lets managed devices in with FastPass alone and
//! asks others for a password and TOTP. It goes through policy-svc's `ApplyConfiguration` as the
//! admin operator, and only into a configuration without apps, so an operator's own is never
//! overwritten.

use portcullis_proto::policy::v1::policy_service_client::PolicyServiceClient;
use portcullis_proto::policy::v1::{ApplyConfigurationRequest, DocumentFormat, ListAppsRequest};
use service_kit::tls::TlsMaterial;

use crate::data_dir::{ADMIN_OPERATOR, DataDir};
use crate::suite::{POLICY_SVC, PortBase};

/// The document applied on first start.
pub const DOCUMENT: &str = include_str!("default-configuration.yaml");

/// The local test app's client id.
pub const TEST_CLIENT_ID: &str = "portcullis-local-test";

/// Why the default configuration could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("cannot apply the default sign-in configuration: {0}")]
pub struct DefaultPolicyError(String);

/// Applies [`DOCUMENT`] when policy-svc has no apps yet.
pub async fn ensure(data: &DataDir, base: PortBase) -> Result<(), DefaultPolicyError> {
    let tls = TlsMaterial::load(&data.tls(ADMIN_OPERATOR)).map_err(|e| DefaultPolicyError(e.to_string()))?;
    let channel = tls.lazy_channel(&POLICY_SVC.url(base)).map_err(DefaultPolicyError)?;
    let mut client = PolicyServiceClient::new(channel);
    let apps = client
        .list_apps(ListAppsRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .map_err(|status| DefaultPolicyError(status.message().to_owned()))?;
    if !apps.into_inner().apps.is_empty() {
        return Ok(());
    }
    client
        .apply_configuration(ApplyConfigurationRequest {
            document: DOCUMENT.to_owned(),
            format: DocumentFormat::Yaml.into(),
            dry_run: false,
        })
        .await
        .map_err(|status| DefaultPolicyError(status.message().to_owned()))?;
    Ok(())
}
