//! The services `portcullis up` runs, and which ports each one gets from the base port.

use std::net::{Ipv4Addr, SocketAddr};

/// A service of the suite and where it sits in the port plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The service's name: its certificate's SPIFFE name (`spiffe://…/svc/<name>`) and file stem.
    pub name: &'static str,
    /// Its gRPC port is the base plus this; its admin port the one after.
    offset: u16,
}

/// The device registry.
pub const DEVICE_SVC: Member = Member {
    name: "device-svc",
    offset: 1,
};
/// Users and sessions.
pub const SESSION_SVC: Member = Member {
    name: "session-svc",
    offset: 3,
};
/// Certificate authorities and attestation.
pub const PKI_SVC: Member = Member {
    name: "pki-svc",
    offset: 5,
};
/// Access policies.
pub const POLICY_SVC: Member = Member {
    name: "policy-svc",
    offset: 7,
};
/// The edge that agents and applications talk to.
pub const GATEWAY: Member = Member {
    name: "gateway",
    offset: 9,
};

/// The port plan: every member, in start order. Each gets a certificate on first start, whether
/// it runs yet or not, so peers that already call it (device-svc's outbox) have identities to
/// trust.
pub const SUITE: [Member; 5] = [DEVICE_SVC, SESSION_SVC, PKI_SVC, POLICY_SVC, GATEWAY];

/// pki-svc's plain-HTTP port (SCEP and CRLs) is the base plus this.
const PKI_HTTP_OFFSET: u16 = 11;

/// The highest offset the plan uses (pki-svc's HTTP port).
const HIGHEST_OFFSET: u16 = 11;

/// pki-svc's plain-HTTP listener for SCEP and CRLs, on every interface: MDM-managed devices
/// enroll from other machines.
pub fn pki_http(base: PortBase) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, base.0 + PKI_HTTP_OFFSET))
}

/// A base port with room for the whole plan above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBase(u16);

impl PortBase {
    /// 7400: device-svc on 7401.
    pub const DEFAULT: PortBase = PortBase(7400);
    /// The highest base whose plan still fits below 65536.
    pub const MAX: PortBase = PortBase(u16::MAX - HIGHEST_OFFSET);

    /// `base`, if every planned port above it exists.
    pub fn new(base: u16) -> Option<Self> {
        (base <= Self::MAX.0).then_some(Self(base))
    }

    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// Where one member listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// mTLS gRPC.
    pub grpc: SocketAddr,
    /// Plaintext health and metrics.
    pub admin: SocketAddr,
}

impl Member {
    /// This member's ports on 127.0.0.1: the suite is for this machine only.
    pub fn ports(&self, base: PortBase) -> Ports {
        // Cannot overflow: PortBase leaves HIGHEST_OFFSET ports above it, and no offset exceeds it
        // (a test checks).
        let at = |offset: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, base.0 + offset));
        Ports {
            grpc: at(self.offset),
            admin: at(self.offset + 1),
        }
    }

    /// The URL peers use to call this member: `localhost`, which its certificate names.
    pub fn url(&self, base: PortBase) -> String {
        format!("https://localhost:{}", self.ports(base).grpc.port())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_plan_matches_the_documented_ports() {
        let base = PortBase::DEFAULT;
        let plan: Vec<(&str, u16, u16)> = SUITE
            .iter()
            .map(|m| (m.name, m.ports(base).grpc.port(), m.ports(base).admin.port()))
            .collect();
        assert_eq!(
            plan,
            [
                ("device-svc", 7401, 7402),
                ("session-svc", 7403, 7404),
                ("pki-svc", 7405, 7406),
                ("policy-svc", 7407, 7408),
                ("gateway", 7409, 7410),
            ]
        );
        assert_eq!(pki_http(base).port(), 7411);
    }

    #[test]
    fn no_two_members_share_a_port_and_all_fit_above_the_highest_base() {
        let mut offsets: Vec<u16> = SUITE.iter().flat_map(|m| [m.offset, m.offset + 1]).collect();
        assert!(offsets.iter().all(|&o| (1..=HIGHEST_OFFSET).contains(&o)));
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len(), SUITE.len() * 2);
        assert!(!offsets.contains(&PKI_HTTP_OFFSET));
        assert_eq!(pki_http(PortBase::MAX).port(), u16::MAX);
    }

    #[test]
    fn peers_reach_a_member_by_localhost() {
        assert_eq!(SESSION_SVC.url(PortBase::new(9000).unwrap()), "https://localhost:9003");
    }
}
