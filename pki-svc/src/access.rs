//! Who may call each PkiService RPC. SCEP itself is plain HTTP with its own challenge.

use service_kit::access::{AccessPolicy, AccessRule, Caller};
use service_kit::identity::Role;

const VIEWER: Caller = Caller::Operator(Role::Viewer);
const OPERATOR: Caller = Caller::Operator(Role::Operator);
const ADMIN: Caller = Caller::Operator(Role::Admin);
const GATEWAY: Caller = Caller::Service("gateway");
const DEVICE_SVC: Caller = Caller::Service("device-svc");

macro_rules! pki {
    ($method:literal, [$($caller:expr),* $(,)?]) => {
        AccessRule { method: concat!("/portcullis.pki.v1.PkiService/", $method), allowed: &[$($caller),*] }
    };
}

/// The rule table. Viewers read; operators manage integrations, CRLs and revocations; only admins
/// mint service identities and decide which customer CAs are trusted; the gateway verifies
/// attestations and reads the CAs; device-svc revokes the certificates of deleted devices.
pub const RULES: &[AccessRule] = &[
    pki!("GetCaCertificates", [VIEWER, GATEWAY]),
    pki!("IssueServiceCertificate", [ADMIN]),
    pki!("CreateScepIntegration", [OPERATOR]),
    pki!("ListScepIntegrations", [VIEWER]),
    pki!("RotateScepSecret", [OPERATOR]),
    pki!("DeleteScepIntegration", [OPERATOR]),
    pki!("ListCertificates", [VIEWER]),
    pki!("GetCertificate", [VIEWER]),
    pki!("RevokeCertificate", [OPERATOR, DEVICE_SVC]),
    pki!("CreateDynamicChallenge", [OPERATOR]),
    pki!("ImportTrustedCa", [ADMIN]),
    pki!("ListTrustedCas", [VIEWER]),
    pki!("RemoveTrustedCa", [ADMIN]),
    pki!("UploadTrustedCaCrl", [OPERATOR]),
    pki!("CreateMobileIntegration", [OPERATOR]),
    pki!("RotateMobileSecret", [OPERATOR]),
    pki!("VerifyManagementAttestation", [GATEWAY]),
];

/// [`RULES`] as a policy.
pub const POLICY: AccessPolicy = AccessPolicy::new(RULES);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every RPC of the service has exactly one rule.
    #[test]
    fn every_rpc_has_exactly_one_rule() {
        assert_eq!(
            service_kit::access::coverage_gaps("portcullis.pki.v1", RULES),
            Vec::<String>::new()
        );
    }
}
