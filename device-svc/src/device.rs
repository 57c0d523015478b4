//! The device record and its parts, as device-svc holds them, with proto conversions.

use portcullis_proto::device::v1 as pb;

use crate::signals::Signals;

/// Lifecycle status. See `lifecycle.rs` for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Usable for enrollment and FastPass.
    Active,
    /// Temporarily unusable; unsuspending restores it without user action.
    Suspended,
    /// Unusable; users and keys removed; enrolling again is required after activation.
    Deactivated,
}

impl DeviceStatus {
    /// Stored and filtered name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Active => "ACTIVE",
            DeviceStatus::Suspended => "SUSPENDED",
            DeviceStatus::Deactivated => "DEACTIVATED",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ACTIVE" => Some(DeviceStatus::Active),
            "SUSPENDED" => Some(DeviceStatus::Suspended),
            "DEACTIVATED" => Some(DeviceStatus::Deactivated),
            _ => None,
        }
    }

    /// Every stored name, for the filter language.
    pub const NAMES: &'static [&'static str] = &["ACTIVE", "SUSPENDED", "DEACTIVATED"];

    fn to_proto(self) -> pb::DeviceStatus {
        match self {
            DeviceStatus::Active => pb::DeviceStatus::Active,
            DeviceStatus::Suspended => pb::DeviceStatus::Suspended,
            DeviceStatus::Deactivated => pb::DeviceStatus::Deactivated,
        }
    }
}

/// Operating system family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Android.
    Android,
    /// iOS and iPadOS.
    Ios,
    /// macOS.
    Macos,
    /// Windows.
    Windows,
    /// ChromeOS.
    Chromeos,
    /// Linux.
    Linux,
}

impl Platform {
    /// Every stored name, for the filter language.
    pub const NAMES: &'static [&'static str] = &["ANDROID", "IOS", "MACOS", "WINDOWS", "CHROMEOS", "LINUX"];

    /// Stored and filtered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Android => "ANDROID",
            Platform::Ios => "IOS",
            Platform::Macos => "MACOS",
            Platform::Windows => "WINDOWS",
            Platform::Chromeos => "CHROMEOS",
            Platform::Linux => "LINUX",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    const ALL: [Platform; 6] = [
        Platform::Android,
        Platform::Ios,
        Platform::Macos,
        Platform::Windows,
        Platform::Chromeos,
        Platform::Linux,
    ];

    /// From the proto enum; `None` for UNSPECIFIED.
    pub fn from_proto(value: pb::Platform) -> Option<Self> {
        match value {
            pb::Platform::Unspecified => None,
            pb::Platform::Android => Some(Platform::Android),
            pb::Platform::Ios => Some(Platform::Ios),
            pb::Platform::Macos => Some(Platform::Macos),
            pb::Platform::Windows => Some(Platform::Windows),
            pb::Platform::Chromeos => Some(Platform::Chromeos),
            pb::Platform::Linux => Some(Platform::Linux),
        }
    }

    fn to_proto(self) -> pb::Platform {
        match self {
            Platform::Android => pb::Platform::Android,
            Platform::Ios => pb::Platform::Ios,
            Platform::Macos => pb::Platform::Macos,
            Platform::Windows => pb::Platform::Windows,
            Platform::Chromeos => pb::Platform::Chromeos,
            Platform::Linux => pb::Platform::Linux,
        }
    }
}

/// What a device says about itself at enrollment (Okta's device profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// 1 to 255 characters.
    pub display_name: String,
    /// Operating system family.
    pub platform: Platform,
    /// Maker.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Operating system version.
    pub os_version: String,
    /// Serial number.
    pub serial_number: String,
    /// Apple UDID.
    pub udid: String,
    /// Windows security identifier.
    pub sid: String,
    /// 14 to 17 characters when present.
    pub imei: String,
    /// Mobile equipment identifier.
    pub meid: String,
    /// Hash of the TPM's public key.
    pub tpm_public_key_hash: String,
    /// A TPM or secure enclave is present.
    pub secure_hardware_present: bool,
    /// Disk encryption.
    pub disk_encryption_type: pb::DiskEncryptionType,
    /// Screen lock.
    pub screen_lock_type: pb::ScreenLockType,
    /// Jailbroken or rooted.
    pub integrity_jailbreak: bool,
}

/// What a device key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Proves the device is present.
    ProofOfPossession,
    /// Unlocked by biometrics or PIN: proves the user is present too.
    UserVerification,
}

impl KeyPurpose {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::ProofOfPossession => "PROOF_OF_POSSESSION",
            KeyPurpose::UserVerification => "USER_VERIFICATION",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "PROOF_OF_POSSESSION" => Some(KeyPurpose::ProofOfPossession),
            "USER_VERIFICATION" => Some(KeyPurpose::UserVerification),
            _ => None,
        }
    }

    /// The proto enum.
    pub fn to_proto(self) -> pb::KeyPurpose {
        match self {
            KeyPurpose::ProofOfPossession => pb::KeyPurpose::ProofOfPossession,
            KeyPurpose::UserVerification => pb::KeyPurpose::UserVerification,
        }
    }
}

/// A P-256 public key the agent enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey {
    /// Key id, unique across devices.
    pub kid: String,
    /// What it is for.
    pub purpose: KeyPurpose,
    /// Private key held in a TPM or secure enclave.
    pub hardware_protected: bool,
    /// base64url x coordinate.
    pub x: String,
    /// base64url y coordinate.
    pub y: String,
    /// The user who enrolled it.
    pub user_id: String,
}

/// A user linked to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUser {
    /// The user.
    pub user_id: String,
    /// When the link was made (µs since the epoch).
    pub created_at: i64,
}

/// How the device came to count as managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagementSource {
    /// Not managed.
    None,
    /// A management certificate (desktop).
    Certificate,
    /// A managed app configuration secret (mobile).
    ManagementHint,
}

impl ManagementSource {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ManagementSource::None => "NONE",
            ManagementSource::Certificate => "CERTIFICATE",
            ManagementSource::ManagementHint => "MANAGEMENT_HINT",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "NONE" => Some(ManagementSource::None),
            "CERTIFICATE" => Some(ManagementSource::Certificate),
            "MANAGEMENT_HINT" => Some(ManagementSource::ManagementHint),
            _ => None,
        }
    }

    fn to_proto(self) -> pb::ManagementSource {
        match self {
            ManagementSource::None => pb::ManagementSource::None,
            ManagementSource::Certificate => pb::ManagementSource::Certificate,
            ManagementSource::ManagementHint => pb::ManagementSource::ManagementHint,
        }
    }
}

/// A device record.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Opaque id, time-ordered.
    pub id: String,
    /// Lifecycle status.
    pub status: DeviceStatus,
    /// Created (µs since the epoch).
    pub created_at: i64,
    /// Last changed (µs).
    pub updated_at: i64,
    /// Last reported signals or verified assertion (µs).
    pub last_seen_at: Option<i64>,
    /// The device profile.
    pub profile: Profile,
    /// Whether the device is managed, and how that was established.
    pub management_source: ManagementSource,
    /// The agent installation that enrolled it.
    pub app_instance_id: String,
    /// Latest posture signals.
    pub signals: Signals,
    /// Enrolled keys.
    pub keys: Vec<DeviceKey>,
    /// Linked users; filled only when asked for.
    pub users: Vec<DeviceUser>,
}

impl Device {
    /// Managed by any source.
    pub fn managed(&self) -> bool {
        self.management_source != ManagementSource::None
    }
}

pub use service_kit::clock::{now_micros, timestamp};

impl From<&Profile> for pb::DeviceProfile {
    fn from(profile: &Profile) -> Self {
        let Profile {
            display_name,
            platform,
            manufacturer,
            model,
            os_version,
            serial_number,
            udid,
            sid,
            imei,
            meid,
            tpm_public_key_hash,
            secure_hardware_present,
            disk_encryption_type,
            screen_lock_type,
            integrity_jailbreak,
        } = profile;
        pb::DeviceProfile {
            display_name: display_name.clone(),
            platform: platform.to_proto().into(),
            manufacturer: manufacturer.clone(),
            model: model.clone(),
            os_version: os_version.clone(),
            serial_number: serial_number.clone(),
            udid: udid.clone(),
            sid: sid.clone(),
            imei: imei.clone(),
            meid: meid.clone(),
            tpm_public_key_hash: tpm_public_key_hash.clone(),
            secure_hardware_present: *secure_hardware_present,
            disk_encryption_type: (*disk_encryption_type).into(),
            screen_lock_type: (*screen_lock_type).into(),
            integrity_jailbreak: *integrity_jailbreak,
        }
    }
}

impl From<&DeviceKey> for pb::DeviceKey {
    fn from(key: &DeviceKey) -> Self {
        let DeviceKey {
            kid,
            purpose,
            hardware_protected,
            x,
            y,
            user_id,
        } = key;
        pb::DeviceKey {
            kid: kid.clone(),
            purpose: purpose.to_proto().into(),
            hardware_protected: *hardware_protected,
            kty: "EC".to_owned(),
            crv: "P-256".to_owned(),
            x: x.clone(),
            y: y.clone(),
            user_id: user_id.clone(),
        }
    }
}

impl From<&DeviceUser> for pb::DeviceUser {
    fn from(user: &DeviceUser) -> Self {
        let DeviceUser { user_id, created_at } = user;
        pb::DeviceUser {
            user_id: user_id.clone(),
            create_time: Some(timestamp(*created_at)),
        }
    }
}

impl From<&Device> for pb::Device {
    fn from(device: &Device) -> Self {
        let Device {
            id,
            status,
            created_at,
            updated_at,
            last_seen_at,
            profile,
            management_source,
            app_instance_id,
            signals,
            keys,
            users,
        } = device;
        pb::Device {
            id: id.clone(),
            status: status.to_proto().into(),
            create_time: Some(timestamp(*created_at)),
            update_time: Some(timestamp(*updated_at)),
            last_seen_time: last_seen_at.map(timestamp),
            profile: Some(profile.into()),
            managed: device.managed(),
            management_source: management_source.to_proto().into(),
            app_instance_id: app_instance_id.clone(),
            signals: Some(signals.to_proto()),
            keys: keys.iter().map(Into::into).collect(),
            users: users.iter().map(Into::into).collect(),
        }
    }
}
