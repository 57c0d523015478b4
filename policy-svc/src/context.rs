//! What a sign-in decision looks at: the person, the device, the network, the risk, and the
//! factors proven so far; and how expressions read it (`user.profile.*`, `device.provider.*`, …).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::assurance::DevicePosture;
use crate::expression::{AttributeRef, AttributeValue, Attributes, Group};
use crate::model::{FactorType, RiskLevel};

/// One sign-in, as policy sees it.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The app's OAuth client id.
    pub client_id: String,
    /// The person.
    pub user: User,
    /// The device that answered, if one did.
    pub device: Option<Device>,
    /// The connecting peer.
    pub peer: IpAddr,
    /// Raw `X-Forwarded-For` values, in order.
    pub forwarded_for: Vec<String>,
    /// The gateway's rating, if any.
    pub risk: Option<RiskLevel>,
    /// Factors proven so far.
    pub factors: Vec<ProvenFactor>,
    /// When the session this sign-in continues was last active (unix micros).
    pub session_last_activity: Option<i64>,
    /// `security.behaviors`, as strings.
    pub behaviors: Vec<AttributeValue>,
}

/// The person.
#[derive(Debug, Clone, Default)]
pub struct User {
    /// Id.
    pub id: String,
    /// ACTIVE, SUSPENDED, …
    pub status: String,
    /// Groups (id and name).
    pub groups: Vec<Group>,
    /// `user.profile.*`.
    pub profile: HashMap<String, AttributeValue>,
}

impl User {
    /// Whether the person is in the group with this id.
    pub fn in_group(&self, group_id: &str) -> bool {
        self.groups.iter().any(|g| g.id == group_id)
    }
}

/// The device that answered the sign-in challenge.
#[derive(Debug, Clone)]
pub struct Device {
    /// Id.
    pub id: String,
    /// Known to the registry.
    pub registered: bool,
    /// Management proven.
    pub managed: bool,
    /// ACTIVE, SUSPENDED, …
    pub status: String,
    /// Platform and posture signals, as assurance policies read them.
    pub posture: DevicePosture,
    /// `device.profile.*`.
    pub profile: HashMap<String, AttributeValue>,
    /// `device.provider.*`, keyed below `device.provider.` (`wsc.fireWall`).
    pub signals: HashMap<String, AttributeValue>,
    /// The platform's short name (`MACOS`), as `device.profile.platform` reads.
    pub platform_name: AttributeValue,
    /// As `device.profile.osVersion` reads.
    pub os_version: AttributeValue,
}

/// A factor proven, with its properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvenFactor {
    /// Which factor.
    pub factor_type: FactorType,
    /// Phishing-resistant.
    pub phishing_resistant: bool,
    /// Hardware-protected.
    pub hardware_protected: bool,
    /// Device-bound.
    pub device_bound: bool,
    /// User presence.
    pub user_presence: bool,
    /// User verification.
    pub user_verification: bool,
    /// When (unix micros).
    pub verify_time: i64,
}

/// The attributes an expression can read, over one sign-in. Nothing is copied: every path is
/// answered from the context as it is.
#[derive(Debug)]
pub struct SignInAttributes<'a> {
    sign_in: &'a SignIn,
    risk: Option<AttributeValue>,
}

impl<'a> SignInAttributes<'a> {
    /// Reads `sign_in`.
    pub fn new(sign_in: &'a SignIn) -> Self {
        Self {
            sign_in,
            risk: sign_in.risk.map(|r| AttributeValue::String(r.as_str().to_owned())),
        }
    }
}

const TRUE: AttributeRef<'static> = AttributeRef::Bool(true);
const FALSE: AttributeRef<'static> = AttributeRef::Bool(false);

fn flag(value: bool) -> AttributeRef<'static> {
    if value { TRUE } else { FALSE }
}

impl Attributes for SignInAttributes<'_> {
    fn attribute(&self, path: &str) -> Option<AttributeRef<'_>> {
        let sign_in = self.sign_in;
        if let Some(rest) = path.strip_prefix("user.") {
            let user = &sign_in.user;
            return match rest {
                "id" => Some(AttributeRef::String(&user.id)),
                "status" => Some(AttributeRef::String(&user.status)),
                _ => rest
                    .strip_prefix("profile.")
                    .and_then(|key| user.profile.get(key))
                    .map(AttributeValue::as_ref),
            };
        }
        if let Some(rest) = path.strip_prefix("device.") {
            // No device answered: every device attribute is missing, except that it is neither
            // registered nor managed.
            let Some(device) = &sign_in.device else {
                return match rest {
                    "registered" | "managed" | "profile.registered" | "profile.managed" => Some(FALSE),
                    _ => None,
                };
            };
            return match rest {
                "id" => Some(AttributeRef::String(&device.id)),
                "status" => Some(AttributeRef::String(&device.status)),
                "registered" | "profile.registered" => Some(flag(device.registered)),
                "managed" | "profile.managed" => Some(flag(device.managed)),
                "profile.platform" => Some(device.platform_name.as_ref()),
                "profile.osVersion" => Some(device.os_version.as_ref()),
                _ => {
                    if let Some(key) = rest.strip_prefix("profile.") {
                        device.profile.get(key).map(AttributeValue::as_ref)
                    } else if let Some(key) = rest.strip_prefix("provider.") {
                        device.signals.get(key).map(AttributeValue::as_ref)
                    } else {
                        None
                    }
                }
            };
        }
        match path {
            "security.risk.level" => self.risk.as_ref().map(AttributeValue::as_ref),
            "security.behaviors" => Some(AttributeRef::List(&sign_in.behaviors)),
            _ => None,
        }
    }

    fn groups(&self) -> &[Group] {
        &self.sign_in.user.groups
    }
}
