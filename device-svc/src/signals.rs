//! Device posture signals: the domain type behind `DeviceSignals`, serialized with Okta's JSON
//! attribute names both in the `signals` claim of a FastPass response JWT and in storage.

use std::ops::RangeInclusive;

use portcullis_proto::device::v1 as pb;
use serde::{Deserialize, Serialize};

/// Longest accepted `osVersion` and `agentVersion`, in characters.
pub const MAX_VERSION_CHARS: usize = 100;

/// The range of a CrowdStrike Zero Trust Assessment score.
pub const ZTA_SCORE_RANGE: RangeInclusive<i32> = 1..=100;

/// A signal that was refused, named by its proto field path so the API layer can report it as
/// a `google.rpc.BadRequest` field violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SignalsError {
    /// The proto field path in snake_case, such as `signals.zta.overall`.
    pub field: &'static str,
    /// Why the value was refused.
    pub reason: String,
}

impl SignalsError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Posture the agent collected. Every field is optional: `None` means the device did not
/// report it, which policies must treat as unknown rather than as `false` or `NONE`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signals {
    /// Operating system version, such as `14.4.1` or `10.0.22631`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Disk encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_encryption_type: Option<DiskEncryption>,
    /// Screen lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_lock_type: Option<ScreenLock>,
    /// True when the device has a TPM or secure enclave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_hardware_present: Option<bool>,
    /// True when the device is jailbroken or rooted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_jailbreak: Option<bool>,
    /// Version of the agent that collected the signals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Windows Security Center health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wsc: Option<WscSignals>,
    /// CrowdStrike Zero Trust Assessment scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zta: Option<ZtaSignals>,
    /// When the agent collected the signals, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collect_time: Option<i64>,
}

/// Windows Security Center signals (`device.provider.wsc.*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WscSignals {
    /// Firewall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire_wall: Option<WscHealth>,
    /// Automatic updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_update_settings: Option<WscHealth>,
    /// Antivirus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub av_type: Option<WscHealth>,
    /// Antispyware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_spyware: Option<WscHealth>,
}

/// CrowdStrike Zero Trust Assessment scores (`device.provider.zta.*`), each 1 to 100.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZtaSignals {
    /// Overall score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<i32>,
    /// Operating system score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<i32>,
    /// Sensor configuration score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor_config: Option<i32>,
}

/// Disk encryption as the device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiskEncryption {
    /// Not encrypted.
    None,
    /// The whole disk (FileVault, BitLocker on every volume).
    Full,
    /// User data only (Android file-based encryption).
    User,
    /// Every internal volume (macOS).
    AllInternalVolumes,
    /// The system volume only (Windows).
    SystemVolume,
}

/// Screen lock as the device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScreenLock {
    /// No screen lock.
    None,
    /// A PIN, password or pattern.
    Passcode,
    /// Biometrics (backed by a passcode).
    Biometric,
}

/// Health of a Windows Security Center component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WscHealth {
    /// On and up to date.
    Good,
    /// On but needs attention.
    Poor,
    /// The user postponed a fix.
    Snooze,
    /// Subscription or definitions expired.
    Expired,
    /// Not installed or off.
    None,
}

impl DiskEncryption {
    /// The Okta name of the value, as in the JSON (`ALL_INTERNAL_VOLUMES`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Full => "FULL",
            Self::User => "USER",
            Self::AllInternalVolumes => "ALL_INTERNAL_VOLUMES",
            Self::SystemVolume => "SYSTEM_VOLUME",
        }
    }

    fn from_proto(value: i32, field: &'static str) -> Result<Option<Self>, SignalsError> {
        let proto = pb::DiskEncryptionType::try_from(value).map_err(|_| unknown_enum_value(field, value))?;
        Ok(match proto {
            pb::DiskEncryptionType::Unspecified => None,
            pb::DiskEncryptionType::None => Some(Self::None),
            pb::DiskEncryptionType::Full => Some(Self::Full),
            pb::DiskEncryptionType::User => Some(Self::User),
            pb::DiskEncryptionType::AllInternalVolumes => Some(Self::AllInternalVolumes),
            pb::DiskEncryptionType::SystemVolume => Some(Self::SystemVolume),
        })
    }

    fn to_proto(value: Option<Self>) -> pb::DiskEncryptionType {
        match value {
            None => pb::DiskEncryptionType::Unspecified,
            Some(Self::None) => pb::DiskEncryptionType::None,
            Some(Self::Full) => pb::DiskEncryptionType::Full,
            Some(Self::User) => pb::DiskEncryptionType::User,
            Some(Self::AllInternalVolumes) => pb::DiskEncryptionType::AllInternalVolumes,
            Some(Self::SystemVolume) => pb::DiskEncryptionType::SystemVolume,
        }
    }
}

impl ScreenLock {
    /// The Okta name of the value, as in the JSON (`BIOMETRIC`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Passcode => "PASSCODE",
            Self::Biometric => "BIOMETRIC",
        }
    }

    fn from_proto(value: i32, field: &'static str) -> Result<Option<Self>, SignalsError> {
        let proto = pb::ScreenLockType::try_from(value).map_err(|_| unknown_enum_value(field, value))?;
        Ok(match proto {
            pb::ScreenLockType::Unspecified => None,
            pb::ScreenLockType::None => Some(Self::None),
            pb::ScreenLockType::Passcode => Some(Self::Passcode),
            pb::ScreenLockType::Biometric => Some(Self::Biometric),
        })
    }

    fn to_proto(value: Option<Self>) -> pb::ScreenLockType {
        match value {
            None => pb::ScreenLockType::Unspecified,
            Some(Self::None) => pb::ScreenLockType::None,
            Some(Self::Passcode) => pb::ScreenLockType::Passcode,
            Some(Self::Biometric) => pb::ScreenLockType::Biometric,
        }
    }
}

impl WscHealth {
    /// The Okta name of the value, as in the JSON (`GOOD`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "GOOD",
            Self::Poor => "POOR",
            Self::Snooze => "SNOOZE",
            Self::Expired => "EXPIRED",
            Self::None => "NONE",
        }
    }

    fn from_proto(value: i32, field: &'static str) -> Result<Option<Self>, SignalsError> {
        let proto = pb::WscHealth::try_from(value).map_err(|_| unknown_enum_value(field, value))?;
        Ok(match proto {
            pb::WscHealth::Unspecified => None,
            pb::WscHealth::Good => Some(Self::Good),
            pb::WscHealth::Poor => Some(Self::Poor),
            pb::WscHealth::Snooze => Some(Self::Snooze),
            pb::WscHealth::Expired => Some(Self::Expired),
            pb::WscHealth::None => Some(Self::None),
        })
    }

    fn to_proto(value: Option<Self>) -> pb::WscHealth {
        match value {
            None => pb::WscHealth::Unspecified,
            Some(Self::Good) => pb::WscHealth::Good,
            Some(Self::Poor) => pb::WscHealth::Poor,
            Some(Self::Snooze) => pb::WscHealth::Snooze,
            Some(Self::Expired) => pb::WscHealth::Expired,
            Some(Self::None) => pb::WscHealth::None,
        }
    }
}

fn unknown_enum_value(field: &'static str, value: i32) -> SignalsError {
    SignalsError::new(field, format!("unknown enum value {value}"))
}

/// Proto3 strings cannot be absent, so the empty string stands for "not reported".
fn non_empty(value: String) -> Option<String> {
    if value.is_empty() { None } else { Some(value) }
}

/// Proto3 integers cannot be absent; 0 is outside the score range, so it means "not reported".
fn non_zero(value: i32) -> Option<i32> {
    if value == 0 { None } else { Some(value) }
}

impl Signals {
    /// Converts and validates signals received over gRPC. `*_UNSPECIFIED` enums, empty strings,
    /// zero scores and absent messages become `None`. Proto3 booleans have no absent state, so
    /// `secure_hardware_present` and `integrity_jailbreak` always come out as `Some`.
    pub fn from_proto(p: pb::DeviceSignals) -> Result<Self, SignalsError> {
        // Destructured without `..` so that a field added to the proto breaks the build here.
        let pb::DeviceSignals {
            os_version,
            disk_encryption_type,
            screen_lock_type,
            secure_hardware_present,
            integrity_jailbreak,
            agent_version,
            wsc,
            zta,
            collect_time,
        } = p;
        let wsc = wsc
            .map(|w| {
                let pb::WindowsSecurityCenterSignals {
                    fire_wall,
                    auto_update_settings,
                    av_type,
                    anti_spyware,
                } = w;
                Ok::<_, SignalsError>(WscSignals {
                    fire_wall: WscHealth::from_proto(fire_wall, "signals.wsc.fire_wall")?,
                    auto_update_settings: WscHealth::from_proto(
                        auto_update_settings,
                        "signals.wsc.auto_update_settings",
                    )?,
                    av_type: WscHealth::from_proto(av_type, "signals.wsc.av_type")?,
                    anti_spyware: WscHealth::from_proto(anti_spyware, "signals.wsc.anti_spyware")?,
                })
            })
            .transpose()?;
        let zta = zta.map(|z| {
            let pb::ZeroTrustAssessmentSignals {
                overall,
                os,
                sensor_config,
            } = z;
            ZtaSignals {
                overall: non_zero(overall),
                os: non_zero(os),
                sensor_config: non_zero(sensor_config),
            }
        });
        let signals = Self {
            os_version: non_empty(os_version),
            disk_encryption_type: DiskEncryption::from_proto(disk_encryption_type, "signals.disk_encryption_type")?,
            screen_lock_type: ScreenLock::from_proto(screen_lock_type, "signals.screen_lock_type")?,
            secure_hardware_present: Some(secure_hardware_present),
            integrity_jailbreak: Some(integrity_jailbreak),
            agent_version: non_empty(agent_version),
            wsc,
            zta,
            // Signals are collected at second granularity; nanoseconds carry no meaning here.
            collect_time: collect_time.map(|t| t.seconds),
        };
        signals.validate()?;
        Ok(signals)
    }

    /// Converts to the gRPC message; `None` becomes the proto default (`*_UNSPECIFIED`, empty,
    /// 0, `false`, absent).
    pub fn to_proto(&self) -> pb::DeviceSignals {
        let Self {
            os_version,
            disk_encryption_type,
            screen_lock_type,
            secure_hardware_present,
            integrity_jailbreak,
            agent_version,
            wsc,
            zta,
            collect_time,
        } = self;
        pb::DeviceSignals {
            os_version: os_version.clone().unwrap_or_default(),
            disk_encryption_type: DiskEncryption::to_proto(*disk_encryption_type) as i32,
            screen_lock_type: ScreenLock::to_proto(*screen_lock_type) as i32,
            secure_hardware_present: secure_hardware_present.unwrap_or(false),
            integrity_jailbreak: integrity_jailbreak.unwrap_or(false),
            agent_version: agent_version.clone().unwrap_or_default(),
            wsc: wsc.map(|w| {
                let WscSignals {
                    fire_wall,
                    auto_update_settings,
                    av_type,
                    anti_spyware,
                } = w;
                pb::WindowsSecurityCenterSignals {
                    fire_wall: WscHealth::to_proto(fire_wall) as i32,
                    auto_update_settings: WscHealth::to_proto(auto_update_settings) as i32,
                    av_type: WscHealth::to_proto(av_type) as i32,
                    anti_spyware: WscHealth::to_proto(anti_spyware) as i32,
                }
            }),
            zta: zta.map(|z| {
                let ZtaSignals {
                    overall,
                    os,
                    sensor_config,
                } = z;
                pb::ZeroTrustAssessmentSignals {
                    overall: overall.unwrap_or(0),
                    os: os.unwrap_or(0),
                    sensor_config: sensor_config.unwrap_or(0),
                }
            }),
            collect_time: collect_time.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        }
    }

    /// Checks the bounds that the types alone do not: version lengths and score ranges. Run it
    /// on signals deserialized from JSON; `from_proto` already does.
    pub fn validate(&self) -> Result<(), SignalsError> {
        check_version(self.os_version.as_deref(), "signals.os_version")?;
        check_version(self.agent_version.as_deref(), "signals.agent_version")?;
        if let Some(zta) = &self.zta {
            check_score(zta.overall, "signals.zta.overall")?;
            check_score(zta.os, "signals.zta.os")?;
            check_score(zta.sensor_config, "signals.zta.sensor_config")?;
        }
        Ok(())
    }
}

fn check_version(value: Option<&str>, field: &'static str) -> Result<(), SignalsError> {
    match value {
        // The byte length bounds the character count, so most values skip the count.
        Some(v) if v.len() > MAX_VERSION_CHARS && v.chars().count() > MAX_VERSION_CHARS => Err(SignalsError::new(
            field,
            format!("longer than {MAX_VERSION_CHARS} characters"),
        )),
        _ => Ok(()),
    }
}

fn check_score(value: Option<i32>, field: &'static str) -> Result<(), SignalsError> {
    match value {
        Some(score) if !ZTA_SCORE_RANGE.contains(&score) => Err(SignalsError::new(
            field,
            format!(
                "{score} is outside {}..={}",
                ZTA_SCORE_RANGE.start(),
                ZTA_SCORE_RANGE.end()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full_signals() -> Signals {
        Signals {
            os_version: Some("14.4.1".to_owned()),
            disk_encryption_type: Some(DiskEncryption::AllInternalVolumes),
            screen_lock_type: Some(ScreenLock::Biometric),
            secure_hardware_present: Some(true),
            integrity_jailbreak: Some(false),
            agent_version: Some("9.20.0".to_owned()),
            wsc: Some(WscSignals {
                fire_wall: Some(WscHealth::Good),
                auto_update_settings: Some(WscHealth::Snooze),
                av_type: Some(WscHealth::Expired),
                anti_spyware: Some(WscHealth::None),
            }),
            zta: Some(ZtaSignals {
                overall: Some(87),
                os: Some(100),
                sensor_config: Some(1),
            }),
            collect_time: Some(1_717_000_000),
        }
    }

    #[test]
    fn json_uses_okta_attribute_names_and_round_trips() {
        let signals = full_signals();
        let value = serde_json::to_value(&signals).unwrap();
        assert_eq!(
            value,
            json!({
                "osVersion": "14.4.1",
                "diskEncryptionType": "ALL_INTERNAL_VOLUMES",
                "screenLockType": "BIOMETRIC",
                "secureHardwarePresent": true,
                "integrityJailbreak": false,
                "agentVersion": "9.20.0",
                "wsc": {
                    "fireWall": "GOOD",
                    "autoUpdateSettings": "SNOOZE",
                    "avType": "EXPIRED",
                    "antiSpyware": "NONE"
                },
                "zta": { "overall": 87, "os": 100, "sensorConfig": 1 },
                "collectTime": 1_717_000_000
            })
        );
        let back: Signals = serde_json::from_value(value).unwrap();
        assert_eq!(back, signals);
    }

    #[test]
    fn absent_json_fields_stay_unknown_and_are_not_serialized() {
        let signals: Signals = serde_json::from_str("{}").unwrap();
        assert_eq!(signals, Signals::default());
        assert_eq!(serde_json::to_string(&signals).unwrap(), "{}");
    }

    #[test]
    fn explicit_false_and_none_are_distinct_from_absent() {
        let signals: Signals =
            serde_json::from_str(r#"{"integrityJailbreak": false, "diskEncryptionType": "NONE", "osVersion": null}"#)
                .unwrap();
        assert_eq!(signals.integrity_jailbreak, Some(false));
        assert_eq!(signals.disk_encryption_type, Some(DiskEncryption::None));
        assert_eq!(signals.secure_hardware_present, None);
        assert_eq!(signals.os_version, None);
    }

    #[test]
    fn unknown_json_keys_are_ignored() {
        let signals: Signals = serde_json::from_str(
            r#"{"osVersion": "15.0", "managementHint": "x", "wsc": {"fireWall": "POOR", "new": 1}}"#,
        )
        .unwrap();
        assert_eq!(signals.os_version.as_deref(), Some("15.0"));
        assert_eq!(signals.wsc.unwrap().fire_wall, Some(WscHealth::Poor));
    }

    #[test]
    fn unknown_json_enum_value_is_rejected() {
        let result = serde_json::from_str::<Signals>(r#"{"screenLockType": "FACE"}"#);
        assert!(result.is_err());
    }

    #[test]
    fn proto_round_trip_keeps_every_field() {
        let signals = full_signals();
        let proto = signals.to_proto();
        assert_eq!(
            proto.disk_encryption_type,
            pb::DiskEncryptionType::AllInternalVolumes as i32
        );
        assert_eq!(proto.wsc.unwrap().auto_update_settings, pb::WscHealth::Snooze as i32);
        assert_eq!(Signals::from_proto(proto).unwrap(), signals);
    }

    #[test]
    fn proto_defaults_become_unknown_except_booleans() {
        let signals = Signals::from_proto(pb::DeviceSignals::default()).unwrap();
        assert_eq!(
            signals,
            Signals {
                secure_hardware_present: Some(false),
                integrity_jailbreak: Some(false),
                ..Signals::default()
            }
        );
        let proto = Signals::default().to_proto();
        assert_eq!(proto, pb::DeviceSignals::default());
    }

    #[test]
    fn proto_zero_scores_and_unspecified_health_become_unknown() {
        let proto = pb::DeviceSignals {
            wsc: Some(pb::WindowsSecurityCenterSignals::default()),
            zta: Some(pb::ZeroTrustAssessmentSignals {
                overall: 50,
                ..Default::default()
            }),
            ..Default::default()
        };
        let signals = Signals::from_proto(proto).unwrap();
        assert_eq!(signals.wsc, Some(WscSignals::default()));
        assert_eq!(
            signals.zta,
            Some(ZtaSignals {
                overall: Some(50),
                os: None,
                sensor_config: None
            })
        );
    }

    #[test]
    fn unknown_proto_enum_value_is_rejected_with_its_field_name() {
        let proto = pb::DeviceSignals {
            disk_encryption_type: 42,
            ..Default::default()
        };
        let err = Signals::from_proto(proto).unwrap_err();
        assert_eq!(err.field, "signals.disk_encryption_type");
        assert!(err.reason.contains("42"));

        let proto = pb::DeviceSignals {
            screen_lock_type: -1,
            ..Default::default()
        };
        assert_eq!(
            Signals::from_proto(proto).unwrap_err().field,
            "signals.screen_lock_type"
        );

        let proto = pb::DeviceSignals {
            wsc: Some(pb::WindowsSecurityCenterSignals {
                anti_spyware: 6,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            Signals::from_proto(proto).unwrap_err().field,
            "signals.wsc.anti_spyware"
        );
    }

    #[test]
    fn zta_score_out_of_range_is_rejected_with_its_field_name() {
        let proto = pb::DeviceSignals {
            zta: Some(pb::ZeroTrustAssessmentSignals {
                overall: 80,
                os: 101,
                sensor_config: 5,
            }),
            ..Default::default()
        };
        let err = Signals::from_proto(proto).unwrap_err();
        assert_eq!(err.field, "signals.zta.os");
        assert_eq!(err.to_string(), "signals.zta.os: 101 is outside 1..=100");

        let signals: Signals = serde_json::from_str(r#"{"zta": {"sensorConfig": 0}}"#).unwrap();
        assert_eq!(signals.validate().unwrap_err().field, "signals.zta.sensor_config");
        let signals: Signals = serde_json::from_str(r#"{"zta": {"overall": -3}}"#).unwrap();
        assert_eq!(signals.validate().unwrap_err().field, "signals.zta.overall");
    }

    #[test]
    fn versions_longer_than_one_hundred_characters_are_rejected() {
        let at_limit = Signals {
            os_version: Some("é".repeat(MAX_VERSION_CHARS)),
            agent_version: Some("1".repeat(MAX_VERSION_CHARS)),
            ..Signals::default()
        };
        assert_eq!(at_limit.validate(), Ok(()));

        let too_long = Signals {
            agent_version: Some("1".repeat(MAX_VERSION_CHARS + 1)),
            ..Signals::default()
        };
        assert_eq!(too_long.validate().unwrap_err().field, "signals.agent_version");

        let proto = pb::DeviceSignals {
            os_version: "x".repeat(MAX_VERSION_CHARS + 1),
            ..Default::default()
        };
        assert_eq!(Signals::from_proto(proto).unwrap_err().field, "signals.os_version");
    }

    #[test]
    fn enum_names_match_the_json_values() {
        assert_eq!(DiskEncryption::SystemVolume.as_str(), "SYSTEM_VOLUME");
        assert_eq!(ScreenLock::Passcode.as_str(), "PASSCODE");
        assert_eq!(WscHealth::Expired.as_str(), "EXPIRED");
        let json = serde_json::to_string(&DiskEncryption::SystemVolume).unwrap();
        assert_eq!(json, "\"SYSTEM_VOLUME\"");
    }
}
