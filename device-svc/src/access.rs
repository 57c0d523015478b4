//! Who may call each DeviceService RPC.

use service_kit::access::{AccessPolicy, AccessRule, Caller};
use service_kit::identity::Role;

macro_rules! rule {
    ($method:literal, [$($caller:expr),* $(,)?]) => {
        AccessRule { method: concat!("/portcullis.device.v1.DeviceService/", $method), allowed: &[$($caller),*] }
    };
}

const VIEWER: Caller = Caller::Operator(Role::Viewer);
const OPERATOR: Caller = Caller::Operator(Role::Operator);
const GATEWAY: Caller = Caller::Service("gateway");

/// The rule table: viewers read; operators and admins also run the lifecycle and hand out
/// enrollment tokens; the gateway
/// enrolls, verifies assertions and reports signals; nobody else gets anything.
pub const RULES: &[AccessRule] = &[
    rule!("RegisterDevice", [GATEWAY]),
    rule!("VerifyDeviceAssertion", [GATEWAY]),
    rule!("ReportSignals", [GATEWAY]),
    rule!("GetDevice", [VIEWER]),
    rule!("ListDevices", [VIEWER]),
    rule!("CountDevices", [VIEWER]),
    rule!("ListDeviceUsers", [VIEWER]),
    rule!("ListUserDevices", [VIEWER]),
    rule!("ListDeviceEvents", [VIEWER]),
    rule!("SuspendDevice", [OPERATOR]),
    rule!("UnsuspendDevice", [OPERATOR]),
    rule!("DeactivateDevice", [OPERATOR]),
    rule!("ActivateDevice", [OPERATOR]),
    rule!("DeleteDevice", [OPERATOR]),
    rule!("RemoveDeviceUser", [OPERATOR]),
    rule!("CreateEnrollmentToken", [OPERATOR]),
];

/// [`RULES`] as a policy.
pub const POLICY: AccessPolicy = AccessPolicy::new(RULES);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC in the proto has exactly one rule, so none is left to default deny by mistake.
    #[test]
    fn every_rpc_has_exactly_one_rule() {
        assert_eq!(
            service_kit::access::coverage_gaps("portcullis.device.v1", RULES),
            Vec::<String>::new()
        );
    }
}
