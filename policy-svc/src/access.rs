//! Who may call each PolicyService RPC.

use service_kit::access::{AccessPolicy, AccessRule, Caller};
use service_kit::identity::Role;

const VIEWER: Caller = Caller::Operator(Role::Viewer);
const ADMIN: Caller = Caller::Operator(Role::Admin);
const GATEWAY: Caller = Caller::Service("gateway");

macro_rules! policy {
    ($method:literal, [$($caller:expr),* $(,)?]) => {
        AccessRule { method: concat!("/portcullis.policy.v1.PolicyService/", $method), allowed: &[$($caller),*] }
    };
}

/// The rule table. The gateway decides sign-ins and looks up apps and their secrets; viewers
/// read, validate and simulate; admins (operators who configure) change the configuration.
pub const RULES: &[AccessRule] = &[
    policy!("CreateApp", [ADMIN]),
    policy!("GetApp", [VIEWER, GATEWAY]),
    policy!("LookupApp", [VIEWER, GATEWAY]),
    policy!("ListApps", [VIEWER]),
    policy!("UpdateApp", [ADMIN]),
    policy!("DeleteApp", [ADMIN]),
    policy!("RotateAppSecret", [ADMIN]),
    policy!("VerifyClientSecret", [GATEWAY]),
    policy!("CreateNetworkZone", [ADMIN]),
    policy!("GetNetworkZone", [VIEWER]),
    policy!("ListNetworkZones", [VIEWER]),
    policy!("UpdateNetworkZone", [ADMIN]),
    policy!("DeleteNetworkZone", [ADMIN]),
    policy!("CreateDeviceAssurancePolicy", [ADMIN]),
    policy!("GetDeviceAssurancePolicy", [VIEWER]),
    policy!("ListDeviceAssurancePolicies", [VIEWER]),
    policy!("UpdateDeviceAssurancePolicy", [ADMIN]),
    policy!("DeleteDeviceAssurancePolicy", [ADMIN]),
    policy!("CreatePolicy", [ADMIN]),
    policy!("GetPolicy", [VIEWER]),
    policy!("ListPolicies", [VIEWER]),
    policy!("UpdatePolicy", [ADMIN]),
    policy!("DeletePolicy", [ADMIN]),
    policy!("CreateRule", [ADMIN]),
    policy!("UpdateRule", [ADMIN]),
    policy!("DeleteRule", [ADMIN]),
    policy!("ValidateExpression", [VIEWER]),
    policy!("Evaluate", [GATEWAY]),
    policy!("Simulate", [VIEWER, GATEWAY]),
    policy!("ListDecisionEvents", [VIEWER]),
    policy!("ExportConfiguration", [VIEWER]),
    policy!("ApplyConfiguration", [ADMIN]),
];

/// [`RULES`] as a policy.
pub const POLICY: AccessPolicy = AccessPolicy::new(RULES);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_exactly_one_rule() {
        assert_eq!(
            service_kit::access::coverage_gaps("portcullis.policy.v1", RULES),
            Vec::<String>::new()
        );
    }
}
