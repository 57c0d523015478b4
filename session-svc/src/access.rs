//! Who may call each DirectoryService and SessionService RPC.

use service_kit::access::{AccessPolicy, AccessRule, Caller};
use service_kit::identity::Role;

const VIEWER: Caller = Caller::Operator(Role::Viewer);
const OPERATOR: Caller = Caller::Operator(Role::Operator);
const ADMIN: Caller = Caller::Operator(Role::Admin);
const GATEWAY: Caller = Caller::Service("gateway");
const DEVICE_SVC: Caller = Caller::Service("device-svc");

macro_rules! directory {
    ($method:literal, [$($caller:expr),* $(,)?]) => {
        AccessRule { method: concat!("/portcullis.session.v1.DirectoryService/", $method), allowed: &[$($caller),*] }
    };
}

macro_rules! sessions {
    ($method:literal, [$($caller:expr),* $(,)?]) => {
        AccessRule { method: concat!("/portcullis.session.v1.SessionService/", $method), allowed: &[$($caller),*] }
    };
}

/// The rule table. Viewers read; operators also run user and session lifecycle; admins manage
/// credentials and groups; the gateway signs people in (passwords, TOTP, sessions, codes) and
/// reads the users and groups policies need; device-svc ends device sessions; nobody else.
pub const RULES: &[AccessRule] = &[
    directory!("CreateUser", [ADMIN]),
    directory!("GetUser", [VIEWER, GATEWAY]),
    directory!("ListUsers", [VIEWER]),
    directory!("UpdateUser", [ADMIN]),
    directory!("SuspendUser", [OPERATOR]),
    directory!("UnsuspendUser", [OPERATOR]),
    directory!("DeactivateUser", [OPERATOR]),
    directory!("ActivateUser", [OPERATOR]),
    directory!("DeleteUser", [ADMIN]),
    directory!("CreateGroup", [ADMIN]),
    directory!("GetGroup", [VIEWER, GATEWAY]),
    directory!("ListGroups", [VIEWER]),
    directory!("DeleteGroup", [ADMIN]),
    directory!("AddGroupMember", [ADMIN]),
    directory!("RemoveGroupMember", [ADMIN]),
    directory!("ListUserGroups", [VIEWER, GATEWAY]),
    directory!("ListGroupMembers", [VIEWER]),
    directory!("SetPassword", [ADMIN]),
    directory!("VerifyPassword", [GATEWAY]),
    directory!("EnrollTotp", [ADMIN, GATEWAY]),
    directory!("VerifyTotp", [GATEWAY]),
    sessions!("CreateSession", [GATEWAY]),
    sessions!("ValidateSession", [GATEWAY]),
    sessions!("GetSession", [VIEWER, GATEWAY]),
    sessions!("ListSessions", [VIEWER]),
    sessions!("RevokeSession", [OPERATOR, GATEWAY]),
    sessions!("RevokeSessions", [OPERATOR, DEVICE_SVC]),
    sessions!("WatchRevocations", [VIEWER, GATEWAY]),
    sessions!("IssueAuthorizationCode", [GATEWAY]),
    sessions!("RedeemAuthorizationCode", [GATEWAY]),
    sessions!("ListEvents", [VIEWER]),
];

/// [`RULES`] as a policy.
pub const POLICY: AccessPolicy = AccessPolicy::new(RULES);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC of both services has exactly one rule.
    #[test]
    fn every_rpc_has_exactly_one_rule() {
        assert_eq!(
            service_kit::access::coverage_gaps("portcullis.session.v1", RULES),
            Vec::<String>::new()
        );
    }
}
