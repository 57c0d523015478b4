//! Who is calling: the SPIFFE identity in the peer certificate, and operator roles.

use std::fmt;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The default SPIFFE trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "portcullis.local";

/// What an operator may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read-only RPCs.
    Viewer,
    /// Reads and day-to-day changes (lifecycle).
    Operator,
    /// Everything an operator may do, plus configuration.
    Admin,
}

impl Role {
    /// The name carried in the certificate's subject Organization.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An authenticated caller, taken from its client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A Portcullis service: `spiffe://<trust-domain>/svc/<name>`.
    Service(String),
    /// A person or tool: `spiffe://<trust-domain>/operator/<name>`, with the role named in the
    /// certificate subject's Organization (as Kubernetes reads groups from client certificates).
    /// `role` is `None` when the certificate names no known role; such a caller is allowed nothing.
    Operator {
        /// The operator's name.
        name: String,
        /// The operator's role.
        role: Option<Role>,
    },
}

impl Identity {
    /// The SPIFFE id this identity stands for.
    pub fn spiffe_id(&self, trust_domain: &str) -> String {
        match self {
            Identity::Service(name) => format!("spiffe://{trust_domain}/svc/{name}"),
            Identity::Operator { name, .. } => format!("spiffe://{trust_domain}/operator/{name}"),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Service(name) => write!(f, "svc/{name}"),
            Identity::Operator { name, role } => match role {
                Some(role) => write!(f, "operator/{name} ({})", role.as_str()),
                None => write!(f, "operator/{name} (no role)"),
            },
        }
    }
}

/// Why a certificate yields no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The certificate could not be parsed.
    #[error("the client certificate cannot be parsed")]
    Unparsable,
    /// The certificate has no `spiffe://` URI SAN.
    #[error("the client certificate has no SPIFFE URI SAN")]
    NoSpiffeId,
    /// The certificate has more than one `spiffe://` URI SAN; SPIFFE allows exactly one.
    #[error("the client certificate has more than one SPIFFE URI SAN")]
    SeveralSpiffeIds,
    /// The SPIFFE id belongs to another trust domain.
    #[error("SPIFFE id {0} is outside this trust domain")]
    ForeignTrustDomain(String),
    /// The SPIFFE id's path is neither `/svc/<name>` nor `/operator/<name>`.
    #[error("SPIFFE id {0} is neither a service nor an operator")]
    UnknownKind(String),
}

/// Reads the identity from a DER certificate already verified by the TLS handshake.
pub fn identity_from_certificate(der: &[u8], trust_domain: &str) -> Result<Identity, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Unparsable)?;
    let mut spiffe_ids = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && uri.starts_with("spiffe://")
            {
                spiffe_ids.push(*uri);
            }
        }
    }
    let spiffe_id = match spiffe_ids.as_slice() {
        [] => return Err(IdentityError::NoSpiffeId),
        [one] => *one,
        _ => return Err(IdentityError::SeveralSpiffeIds),
    };
    let rest = &spiffe_id["spiffe://".len()..];
    let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
    if domain != trust_domain {
        return Err(IdentityError::ForeignTrustDomain(spiffe_id.to_owned()));
    }
    let valid_name = |n: &str| {
        !n.is_empty() && n.len() <= 128 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    match path.split_once('/') {
        Some(("svc", name)) if valid_name(name) => Ok(Identity::Service(name.to_owned())),
        Some(("operator", name)) if valid_name(name) => {
            let role = cert
                .subject()
                .iter_organization()
                .filter_map(|o| o.as_str().ok())
                .filter_map(Role::parse)
                .max();
            Ok(Identity::Operator {
                name: name.to_owned(),
                role,
            })
        }
        _ => Err(IdentityError::UnknownKind(spiffe_id.to_owned())),
    }
}
