//! Per-RPC access rules: which callers may call which method. Default deny.

use crate::identity::{Identity, Role};

/// One kind of caller a rule lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The named Portcullis service (`spiffe://…/svc/<name>`).
    Service(&'static str),
    /// Operators holding at least this role.
    Operator(Role),
}

/// The callers allowed to call one gRPC method, by full path
/// (`/portcullis.device.v1.DeviceService/SuspendDevice`).
#[derive(Debug, Clone, Copy)]
pub struct AccessRule {
    /// The gRPC method path.
    pub method: &'static str,
    /// Who may call it.
    pub allowed: &'static [Caller],
}

/// How `rules` fail to cover the RPCs of proto package `package` (`portcullis.pki.v1`) one to
/// one: an RPC without exactly one rule, or a rule for no RPC. Empty when they match; each
/// service's tests assert that, so no RPC is left to default deny by mistake.
pub fn coverage_gaps(package: &str, rules: &[AccessRule]) -> Vec<String> {
    use prost::Message as _;
    let Ok(set) = prost_types::FileDescriptorSet::decode(portcullis_proto::FILE_DESCRIPTOR_SET) else {
        return vec!["the descriptor set does not decode".to_owned()];
    };
    let mut gaps = Vec::new();
    let mut paths = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == package) {
        for service in &file.service {
            for method in &service.method {
                let path = format!("/{package}.{}/{}", service.name(), method.name());
                let count = rules.iter().filter(|r| r.method == path).count();
                if count != 1 {
                    gaps.push(format!("{path} has {count} rules"));
                }
                paths.push(path);
            }
        }
    }
    if paths.is_empty() {
        gaps.push(format!("package {package} has no RPCs"));
    }
    for rule in rules.iter().filter(|r| !paths.iter().any(|p| p == r.method)) {
        gaps.push(format!("{} is no RPC of {package}", rule.method));
    }
    gaps
}

/// Method-path prefixes any authenticated caller may use: reflection and health carry no data.
const OPEN_TO_AUTHENTICATED: &[&str] = &[
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.health.v1.Health/",
];

/// A service's access rule table.
#[derive(Debug, Clone, Copy)]
pub struct AccessPolicy {
    rules: &'static [AccessRule],
}

impl AccessPolicy {
    /// Wraps a rule table.
    pub const fn new(rules: &'static [AccessRule]) -> Self {
        Self { rules }
    }

    /// The rules, for tests and documentation.
    pub fn rules(&self) -> &'static [AccessRule] {
        self.rules
    }

    /// Whether `identity` may call `method`. Methods without a rule are denied.
    pub fn allows(&self, identity: &Identity, method: &str) -> bool {
        if OPEN_TO_AUTHENTICATED.iter().any(|prefix| method.starts_with(prefix)) {
            return true;
        }
        let Some(rule) = self.rules.iter().find(|rule| rule.method == method) else {
            return false;
        };
        rule.allowed.iter().any(|caller| match (caller, identity) {
            (Caller::Service(allowed), Identity::Service(name)) => allowed == name,
            (Caller::Operator(min), Identity::Operator { role: Some(role), .. }) => role >= min,
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[AccessRule] = &[
        AccessRule {
            method: "/p.S/Read",
            allowed: &[Caller::Operator(Role::Viewer), Caller::Service("gateway")],
        },
        AccessRule {
            method: "/p.S/Write",
            allowed: &[Caller::Operator(Role::Operator)],
        },
    ];
    const POLICY: AccessPolicy = AccessPolicy::new(RULES);

    fn operator(role: Option<Role>) -> Identity {
        Identity::Operator {
            name: "alice".into(),
            role,
        }
    }

    #[test]
    fn higher_roles_include_lower_ones() {
        assert!(POLICY.allows(&operator(Some(Role::Admin)), "/p.S/Write"));
        assert!(POLICY.allows(&operator(Some(Role::Operator)), "/p.S/Write"));
        assert!(!POLICY.allows(&operator(Some(Role::Viewer)), "/p.S/Write"));
        assert!(POLICY.allows(&operator(Some(Role::Viewer)), "/p.S/Read"));
    }

    #[test]
    fn an_operator_without_a_role_gets_nothing() {
        assert!(!POLICY.allows(&operator(None), "/p.S/Read"));
    }

    #[test]
    fn services_are_matched_by_name() {
        assert!(POLICY.allows(&Identity::Service("gateway".into()), "/p.S/Read"));
        assert!(!POLICY.allows(&Identity::Service("policy-svc".into()), "/p.S/Read"));
        assert!(!POLICY.allows(&Identity::Service("gateway".into()), "/p.S/Write"));
    }

    #[test]
    fn methods_without_a_rule_are_denied() {
        assert!(!POLICY.allows(&operator(Some(Role::Admin)), "/p.S/Unknown"));
    }

    #[test]
    fn reflection_and_health_are_open_to_any_authenticated_caller() {
        let nobody = operator(None);
        assert!(POLICY.allows(
            &nobody,
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(POLICY.allows(&nobody, "/grpc.health.v1.Health/Check"));
    }
}
