//! Device assurance policies: the posture a device of one platform must report (OS version, disk
//! encryption, screen lock, secure hardware, integrity) and the grace a failing device gets to fix it.
//!
//! Every check fails closed: a signal the device did not report fails the requirement that reads
//! it, as does an OS version that cannot be read.
//!
//! Which requirements a platform takes follows Okta's device assurance, because those are the
//! signals the agent reports on each platform:
//!
//! | platform              | disk encryption        | screen lock             | secure hardware | jailbreak |
//! |-----------------------|------------------------|-------------------------|-----------------|-----------|
//! | Android               | `FULL`, `USER`         | `PASSCODE`, `BIOMETRIC` | yes             | yes       |
//! | iOS                   | —                      | `PASSCODE`, `BIOMETRIC` | —               | yes       |
//! | macOS, Windows, Linux | `ALL_INTERNAL_VOLUMES` | `PASSCODE`, `BIOMETRIC` | yes             | —         |
//! | ChromeOS              | —                      | —                       | —               | —         |
//!
//! Every platform takes a minimum OS version.
//!
//! iOS always encrypts its storage, so there is nothing to require. Desktop policies take only
//! `ALL_INTERNAL_VOLUMES`, as Okta's do; a device reporting `SYSTEM_VOLUME` has an unencrypted
//! data volume and fails them (expressions can still accept it explicitly). Okta has no Linux
//! policies; Portcullis treats Linux as the other desktops. ChromeOS policies take only a minimum
//! version, since the richer ChromeOS signals come from Chrome Device Trust, which the agent does
//! not collect. A requirement the platform cannot report would fail every device, so it is
//! refused when the policy is validated rather than discovered at sign-in.

use std::fmt;
use std::time::Duration;

use portcullis_proto::device::v1::{DiskEncryptionType, Platform, ScreenLockType};

use crate::version::Version;

/// The longest grace a policy may give a failing device: long enough to roll an OS update out
/// across a fleet, short enough that a forgotten grace period does not become a waiver.
pub const MAX_GRACE: Duration = Duration::from_secs(180 * 24 * 60 * 60);

/// The posture a device of one platform must report to satisfy the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssurancePolicy {
    /// Stable identifier that rules and the failing-since record refer to.
    pub id: String,
    /// Name shown to administrators.
    pub name: String,
    /// The platform the policy is for; devices of other platforms never satisfy it.
    pub platform: Platform,
    /// The lowest OS version allowed, as dotted numbers (`14.2`, `10.0.22631`).
    pub minimum_os_version: Option<String>,
    /// Disk encryption the device must report, any one of them; empty means no requirement.
    pub disk_encryption_types: Vec<DiskEncryptionType>,
    /// Screen lock the device must report, any one of them; empty means no requirement. A
    /// biometric lock is backed by a passcode, so it also satisfies `PASSCODE`.
    pub screen_lock_types: Vec<ScreenLockType>,
    /// The device must have a TPM, Secure Enclave or hardware-backed keystore.
    pub secure_hardware_required: bool,
    /// The device must report that it is not jailbroken or rooted.
    pub jailbreak_forbidden: bool,
    /// How long a failing device is still let in while it is fixed.
    pub grace: Option<GracePeriod>,
    /// What to tell the person when the device fails; empty to use the failures themselves.
    pub remediation: String,
}

/// How long a device that fails a policy is still let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GracePeriod {
    /// Until this instant, in Unix microseconds, for every device.
    Until(i64),
    /// For this long after the device was first seen failing the policy.
    For(Duration),
}

/// What a device reports about itself, as the checks read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePosture {
    /// Operating system family.
    pub platform: Platform,
    /// Operating system version as reported; empty when not reported.
    pub os_version: String,
    /// Disk encryption; `Unspecified` when not reported.
    pub disk_encryption: DiskEncryptionType,
    /// Screen lock; `Unspecified` when not reported.
    pub screen_lock: ScreenLockType,
    /// Whether the device has secure hardware; `None` when not reported.
    pub secure_hardware: Option<bool>,
    /// Whether the device is jailbroken or rooted; `None` when not reported.
    pub jailbroken: Option<bool>,
}

/// Why a policy cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssuranceError {
    /// The policy has no id to be referred to by.
    #[error("the policy has no id")]
    MissingId,
    /// The policy names no platform.
    #[error("the policy must name a platform")]
    UnspecifiedPlatform,
    /// The minimum OS version is not made of dotted numbers.
    #[error("minimum OS version `{text}` is not a version of dotted numbers such as 14.2.1")]
    InvalidMinimumVersion {
        /// The version as written.
        text: String,
    },
    /// A requirement list holds the unspecified enum value.
    #[error("{field} lists an unspecified value")]
    UnspecifiedValue {
        /// `disk_encryption_types` or `screen_lock_types`.
        field: &'static str,
    },
    /// The disk encryption value cannot be required on the platform.
    #[error(
        "{} policies cannot require disk encryption {}; {}",
        platform_name(*.platform),
        disk_name(*.value),
        allowed_disk(*.platform)
    )]
    UnsupportedDiskEncryption {
        /// The policy's platform.
        platform: Platform,
        /// The refused value.
        value: DiskEncryptionType,
    },
    /// The screen lock value cannot be required on the platform.
    #[error(
        "{} policies cannot require screen lock {}; {}",
        platform_name(*.platform),
        screen_lock_name(*.value),
        allowed_screen_lock(*.platform)
    )]
    UnsupportedScreenLock {
        /// The policy's platform.
        platform: Platform,
        /// The refused value.
        value: ScreenLockType,
    },
    /// The platform does not report whether it has secure hardware.
    #[error("{} policies cannot require secure hardware; the platform does not report it", platform_name(*.0))]
    SecureHardwareUnsupported(Platform),
    /// The platform does not report whether it is jailbroken or rooted.
    #[error("{} policies cannot forbid jailbroken or rooted devices; the platform does not report it", platform_name(*.0))]
    JailbreakUnsupported(Platform),
    /// A grace period of no time at all.
    #[error("a grace period must be longer than zero")]
    EmptyGrace,
    /// A grace period beyond [`MAX_GRACE`].
    #[error("a grace period of {} days is longer than the {} days allowed", days(.0), days(&MAX_GRACE))]
    GraceTooLong(Duration),
}

/// One requirement a device does not meet. The Display is a sentence the person at the device
/// can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The policy is for another platform (or names none).
    WrongPlatform {
        /// The policy's platform.
        required: Platform,
        /// The device's platform.
        actual: Platform,
    },
    /// The OS is older than the minimum.
    OsVersionBelowMinimum {
        /// The version the device reported.
        actual: String,
        /// The policy's minimum.
        minimum: String,
    },
    /// The device's OS version is missing or unreadable, so it cannot be shown to meet the minimum.
    OsVersionUnknown {
        /// The version the device reported, possibly empty.
        reported: String,
        /// The policy's minimum.
        minimum: String,
    },
    /// The policy's own minimum is not a version (the policy was saved without validation).
    MinimumVersionInvalid {
        /// The policy's minimum as written.
        minimum: String,
    },
    /// Disk encryption is missing, insufficient or unreported.
    DiskEncryption {
        /// What the device reported.
        actual: DiskEncryptionType,
        /// Any of these would do.
        allowed: Vec<DiskEncryptionType>,
    },
    /// Screen lock is missing, insufficient or unreported.
    ScreenLock {
        /// What the device reported.
        actual: ScreenLockType,
        /// Any of these would do.
        allowed: Vec<ScreenLockType>,
    },
    /// Secure hardware is required and the device lacks it or did not say (`None`).
    SecureHardwareMissing {
        /// What the device reported.
        reported: Option<bool>,
    },
    /// Jailbroken or rooted devices are forbidden and the device is one or did not say (`None`).
    Jailbroken {
        /// What the device reported.
        reported: Option<bool>,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongPlatform {
                required: Platform::Unspecified,
                ..
            } => f.write_str("this policy names no platform, so no device can satisfy it"),
            Self::WrongPlatform { required, actual } => write!(
                f,
                "this policy is for {} devices; this device is {}",
                platform_name(*required),
                platform_name(*actual)
            ),
            Self::OsVersionBelowMinimum { actual, minimum } => {
                write!(f, "OS version {actual} is below the minimum {minimum}")
            }
            Self::OsVersionUnknown { reported, minimum } if reported.trim().is_empty() => {
                write!(
                    f,
                    "the device did not report its OS version; {minimum} or later is required"
                )
            }
            Self::OsVersionUnknown { reported, minimum } => {
                write!(
                    f,
                    "OS version \"{reported}\" cannot be read; {minimum} or later is required"
                )
            }
            Self::MinimumVersionInvalid { minimum } => write!(
                f,
                "the policy's minimum OS version \"{minimum}\" is not a version; an administrator must correct it"
            ),
            Self::DiskEncryption { actual, allowed } => {
                match actual {
                    DiskEncryptionType::Unspecified => f.write_str("disk encryption was not reported")?,
                    _ => write!(f, "disk encryption is {}", disk_name(*actual))?,
                }
                let names: Vec<_> = allowed.iter().map(|value| disk_name(*value)).collect();
                write_required(f, &names)
            }
            Self::ScreenLock { actual, allowed } => {
                match actual {
                    ScreenLockType::Unspecified => f.write_str("screen lock was not reported")?,
                    _ => write!(f, "screen lock is {}", screen_lock_name(*actual))?,
                }
                let names: Vec<_> = allowed.iter().map(|value| screen_lock_name(*value)).collect();
                write_required(f, &names)
            }
            Self::SecureHardwareMissing { reported: Some(_) } => f.write_str(
                "the device has no secure hardware (TPM, Secure Enclave or hardware keystore), which is required",
            ),
            Self::SecureHardwareMissing { reported: None } => {
                f.write_str("the device did not report whether it has secure hardware, which is required")
            }
            Self::Jailbroken { reported: Some(_) } => {
                f.write_str("the device is jailbroken or rooted; only unmodified devices are allowed")
            }
            Self::Jailbroken { reported: None } => f.write_str(
                "the device did not report whether it is jailbroken or rooted; only unmodified devices are allowed",
            ),
        }
    }
}

fn write_required(f: &mut fmt::Formatter<'_>, names: &[&str]) -> fmt::Result {
    match names {
        [only] => write!(f, "; {only} is required"),
        _ => write!(f, "; one of {} is required", names.join(", ")),
    }
}

/// The result of the rule condition "the device satisfies any of these assurance policies".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssuranceOutcome {
    /// A policy for the device's platform is met.
    Satisfied {
        /// The first policy met.
        policy_id: String,
    },
    /// No policy is met, but one still gives the device grace.
    InGrace {
        /// The policy whose grace lasts longest.
        policy_id: String,
        /// When that grace ends, in Unix microseconds.
        until_micros: i64,
        /// What the device must fix to meet that policy.
        failures: Vec<Failure>,
        /// What to tell the person.
        remediation: String,
    },
    /// No policy is met and none gives grace.
    Failed {
        /// Each applicable policy's id with the requirements the device missed.
        failures: Vec<(String, Vec<Failure>)>,
        /// What to tell the person, one entry per failing policy.
        remediation: Vec<String>,
    },
    /// None of the policies is for the device's platform, so the condition cannot be met.
    NoPolicyForPlatform,
}

impl AssurancePolicy {
    /// Checks that the policy can be enforced as written: see the module docs for what each
    /// platform takes.
    pub fn validate(&self) -> Result<(), AssuranceError> {
        if self.id.trim().is_empty() {
            return Err(AssuranceError::MissingId);
        }
        let Some(capabilities) = Capabilities::of(self.platform) else {
            return Err(AssuranceError::UnspecifiedPlatform);
        };
        if let Some(minimum) = &self.minimum_os_version
            && !is_plain_version(minimum)
        {
            return Err(AssuranceError::InvalidMinimumVersion { text: minimum.clone() });
        }
        for &value in &self.disk_encryption_types {
            if value == DiskEncryptionType::Unspecified {
                return Err(AssuranceError::UnspecifiedValue {
                    field: "disk_encryption_types",
                });
            }
            if !capabilities.disk_encryption.contains(&value) {
                return Err(AssuranceError::UnsupportedDiskEncryption {
                    platform: self.platform,
                    value,
                });
            }
        }
        for &value in &self.screen_lock_types {
            if value == ScreenLockType::Unspecified {
                return Err(AssuranceError::UnspecifiedValue {
                    field: "screen_lock_types",
                });
            }
            if !capabilities.screen_lock.contains(&value) {
                return Err(AssuranceError::UnsupportedScreenLock {
                    platform: self.platform,
                    value,
                });
            }
        }
        if self.secure_hardware_required && !capabilities.secure_hardware {
            return Err(AssuranceError::SecureHardwareUnsupported(self.platform));
        }
        if self.jailbreak_forbidden && !capabilities.jailbreak {
            return Err(AssuranceError::JailbreakUnsupported(self.platform));
        }
        match self.grace {
            Some(GracePeriod::For(duration)) if duration.is_zero() => Err(AssuranceError::EmptyGrace),
            Some(GracePeriod::For(duration)) if duration > MAX_GRACE => Err(AssuranceError::GraceTooLong(duration)),
            _ => Ok(()),
        }
    }

    /// The requirements `posture` misses; empty when it meets them all. A device of another
    /// platform gets a single [`Failure::WrongPlatform`].
    pub fn check(&self, posture: &DevicePosture) -> Vec<Failure> {
        if self.platform == Platform::Unspecified || posture.platform != self.platform {
            return vec![Failure::WrongPlatform {
                required: self.platform,
                actual: posture.platform,
            }];
        }
        let mut failures = Vec::new();
        if let Some(minimum) = &self.minimum_os_version {
            let failure = match (Version::parse(minimum), Version::parse(&posture.os_version)) {
                (None, _) => Some(Failure::MinimumVersionInvalid {
                    minimum: minimum.clone(),
                }),
                (Some(_), None) => Some(Failure::OsVersionUnknown {
                    reported: posture.os_version.clone(),
                    minimum: minimum.clone(),
                }),
                (Some(minimum_version), Some(actual)) if actual < minimum_version => {
                    Some(Failure::OsVersionBelowMinimum {
                        actual: posture.os_version.clone(),
                        minimum: minimum.clone(),
                    })
                }
                (Some(_), Some(_)) => None,
            };
            failures.extend(failure);
        }
        if !self.disk_encryption_types.is_empty() && !disk_encryption_meets(posture.disk_encryption, self) {
            failures.push(Failure::DiskEncryption {
                actual: posture.disk_encryption,
                allowed: self.disk_encryption_types.clone(),
            });
        }
        if !self.screen_lock_types.is_empty() && !screen_lock_meets(posture.screen_lock, self) {
            failures.push(Failure::ScreenLock {
                actual: posture.screen_lock,
                allowed: self.screen_lock_types.clone(),
            });
        }
        if self.secure_hardware_required && posture.secure_hardware != Some(true) {
            failures.push(Failure::SecureHardwareMissing {
                reported: posture.secure_hardware,
            });
        }
        if self.jailbreak_forbidden && posture.jailbroken != Some(false) {
            failures.push(Failure::Jailbroken {
                reported: posture.jailbroken,
            });
        }
        failures
    }

    /// When this policy's grace for a failing device ends, in Unix microseconds, if it has any.
    fn grace_until(&self, now_micros: i64, failing_since: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        match self.grace? {
            GracePeriod::Until(until) => Some(until),
            GracePeriod::For(duration) => {
                // A first-failure time in the future (clock skew, a bad record) must not lengthen
                // the grace, so it counts as now.
                let since = failing_since(&self.id).map_or(now_micros, |since| since.min(now_micros));
                let length = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
                Some(since.saturating_add(length))
            }
        }
    }

    /// The text shown for a failing device: the policy's own, or else its failures.
    fn remediation_for(&self, failures: &[Failure]) -> String {
        if !self.remediation.trim().is_empty() {
            return self.remediation.clone();
        }
        let sentences: Vec<String> = failures.iter().map(ToString::to_string).collect();
        sentences.join("; ")
    }
}

fn disk_encryption_meets(actual: DiskEncryptionType, policy: &AssurancePolicy) -> bool {
    match actual {
        DiskEncryptionType::Unspecified | DiskEncryptionType::None => false,
        _ => policy.disk_encryption_types.contains(&actual),
    }
}

fn screen_lock_meets(actual: ScreenLockType, policy: &AssurancePolicy) -> bool {
    let allowed = &policy.screen_lock_types;
    match actual {
        ScreenLockType::Unspecified | ScreenLockType::None => false,
        ScreenLockType::Passcode => allowed.contains(&ScreenLockType::Passcode),
        // Biometrics unlock a device that has a passcode behind them.
        ScreenLockType::Biometric => {
            allowed.contains(&ScreenLockType::Biometric) || allowed.contains(&ScreenLockType::Passcode)
        }
    }
}

/// Evaluates the rule condition "the device satisfies any of these assurance policies".
///
/// Only policies for the device's platform apply. A met policy wins; otherwise the failing policy
/// whose grace lasts longest lets the device in until then; otherwise the device fails. Grace
/// `Until(t)` holds while `now < t`; `For(d)` holds while `now < failing_since(id) + d`, where
/// `failing_since` gives when this device was first seen failing the policy (`None`: it is
/// failing for the first time now). At the boundary the grace has expired.
pub fn check_any(
    policies: &[&AssurancePolicy],
    posture: &DevicePosture,
    now_micros: i64,
    failing_since: &dyn Fn(&str) -> Option<i64>,
) -> AssuranceOutcome {
    let mut applicable = policies
        .iter()
        .filter(|policy| policy.platform != Platform::Unspecified && policy.platform == posture.platform)
        .peekable();
    if applicable.peek().is_none() {
        return AssuranceOutcome::NoPolicyForPlatform;
    }
    let mut grace: Option<(&AssurancePolicy, i64, Vec<Failure>)> = None;
    let mut failed = Vec::new();
    for policy in applicable {
        let failures = policy.check(posture);
        if failures.is_empty() {
            return AssuranceOutcome::Satisfied {
                policy_id: policy.id.clone(),
            };
        }
        if let Some(until) = policy.grace_until(now_micros, failing_since) {
            let longer = grace.as_ref().is_none_or(|(_, best, _)| until > *best);
            if now_micros < until && longer {
                grace = Some((policy, until, failures.clone()));
            }
        }
        failed.push((*policy, failures));
    }
    if let Some((policy, until_micros, failures)) = grace {
        return AssuranceOutcome::InGrace {
            policy_id: policy.id.clone(),
            until_micros,
            remediation: policy.remediation_for(&failures),
            failures,
        };
    }
    let remediation = failed
        .iter()
        .map(|(policy, failures)| policy.remediation_for(failures))
        .collect();
    AssuranceOutcome::Failed {
        failures: failed
            .into_iter()
            .map(|(policy, failures)| (policy.id.clone(), failures))
            .collect(),
        remediation,
    }
}

/// What a platform's agent reports, and so what its policies may require.
struct Capabilities {
    disk_encryption: &'static [DiskEncryptionType],
    screen_lock: &'static [ScreenLockType],
    secure_hardware: bool,
    jailbreak: bool,
}

const LOCKS: &[ScreenLockType] = &[ScreenLockType::Passcode, ScreenLockType::Biometric];
const DESKTOP_DISK: &[DiskEncryptionType] = &[DiskEncryptionType::AllInternalVolumes];

impl Capabilities {
    fn of(platform: Platform) -> Option<Self> {
        let capabilities = match platform {
            Platform::Unspecified => return None,
            Platform::Android => Self {
                disk_encryption: &[DiskEncryptionType::Full, DiskEncryptionType::User],
                screen_lock: LOCKS,
                secure_hardware: true,
                jailbreak: true,
            },
            Platform::Ios => Self {
                disk_encryption: &[],
                screen_lock: LOCKS,
                secure_hardware: false,
                jailbreak: true,
            },
            Platform::Macos | Platform::Windows | Platform::Linux => Self {
                disk_encryption: DESKTOP_DISK,
                screen_lock: LOCKS,
                secure_hardware: true,
                jailbreak: false,
            },
            Platform::Chromeos => Self {
                disk_encryption: &[],
                screen_lock: &[],
                secure_hardware: false,
                jailbreak: false,
            },
        };
        Some(capabilities)
    }
}

/// A policy's minimum must be only dotted numbers: `Version::parse` reads the leading version of
/// longer text, which suits what devices report but would let `14.2 beta` pass as `14.2`.
fn is_plain_version(text: &str) -> bool {
    text.split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        && Version::parse(text).is_some()
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Unspecified => "an unspecified platform",
        Platform::Android => "Android",
        Platform::Ios => "iOS",
        Platform::Macos => "macOS",
        Platform::Windows => "Windows",
        Platform::Chromeos => "ChromeOS",
        Platform::Linux => "Linux",
    }
}

/// The value's name as administrators and Okta's API write it (`ALL_INTERNAL_VOLUMES`).
fn disk_name(value: DiskEncryptionType) -> &'static str {
    match value {
        DiskEncryptionType::Unspecified => "UNSPECIFIED",
        DiskEncryptionType::None => "NONE",
        DiskEncryptionType::Full => "FULL",
        DiskEncryptionType::User => "USER",
        DiskEncryptionType::AllInternalVolumes => "ALL_INTERNAL_VOLUMES",
        DiskEncryptionType::SystemVolume => "SYSTEM_VOLUME",
    }
}

/// The value's name as administrators and Okta's API write it (`BIOMETRIC`).
fn screen_lock_name(value: ScreenLockType) -> &'static str {
    match value {
        ScreenLockType::Unspecified => "UNSPECIFIED",
        ScreenLockType::None => "NONE",
        ScreenLockType::Passcode => "PASSCODE",
        ScreenLockType::Biometric => "BIOMETRIC",
    }
}

fn allowed_disk(platform: Platform) -> String {
    let allowed = Capabilities::of(platform).map_or(&[][..], |c| c.disk_encryption);
    match allowed {
        [] => "the platform reports none to require".to_owned(),
        _ => format!(
            "it takes {}",
            allowed.iter().map(|v| disk_name(*v)).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn allowed_screen_lock(platform: Platform) -> String {
    let allowed = Capabilities::of(platform).map_or(&[][..], |c| c.screen_lock);
    match allowed {
        [] => "the platform reports none to require".to_owned(),
        _ => format!(
            "it takes {}",
            allowed
                .iter()
                .map(|v| screen_lock_name(*v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn days(duration: &Duration) -> u64 {
    duration.as_secs().div_ceil(24 * 60 * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MICROS: i64 = 24 * 60 * 60 * 1_000_000;
    const NOW: i64 = 1_700_000_000 * 1_000_000;

    fn policy(id: &str, platform: Platform) -> AssurancePolicy {
        AssurancePolicy {
            id: id.into(),
            name: id.to_uppercase(),
            platform,
            minimum_os_version: None,
            disk_encryption_types: Vec::new(),
            screen_lock_types: Vec::new(),
            secure_hardware_required: false,
            jailbreak_forbidden: false,
            grace: None,
            remediation: String::new(),
        }
    }

    fn posture(platform: Platform, os_version: &str) -> DevicePosture {
        DevicePosture {
            platform,
            os_version: os_version.into(),
            disk_encryption: DiskEncryptionType::Unspecified,
            screen_lock: ScreenLockType::Unspecified,
            secure_hardware: None,
            jailbroken: None,
        }
    }

    fn with_minimum(platform: Platform, minimum: &str) -> AssurancePolicy {
        AssurancePolicy {
            minimum_os_version: Some(minimum.into()),
            ..policy("p", platform)
        }
    }

    fn never_failed(_: &str) -> Option<i64> {
        None
    }

    #[test]
    fn os_versions_compare_numerically_against_the_minimum() {
        let cases = [
            (Platform::Windows, "10.0.22631", "10.0.22631.2861", true),
            (Platform::Windows, "10.0.22631.3007", "10.0.22631.2861", false),
            (Platform::Windows, "10.0.19045", "10.0.22631.2861", true),
            (Platform::Windows, "10.0.22631.2861", "10.0.22621.9999", false),
            (Platform::Macos, "14.2", "14.2.1", true),
            (Platform::Macos, "14.2.1", "14.2", false),
            (Platform::Macos, "14.0", "13.6", false),
            (Platform::Macos, "14.0", "14.10", true),
            (Platform::Macos, "14.2.1", "14.2.1 (23C71)", true),
            (Platform::Ios, "17.1", "17.1.0", true),
            (Platform::Ios, "17.1.0", "17.1", true),
            (Platform::Ios, "17.1.1", "17.1", false),
            (Platform::Android, "12", "13", true),
        ];
        for (platform, minimum, reported, meets) in cases {
            let failures = with_minimum(platform, minimum).check(&posture(platform, reported));
            assert_eq!(
                failures.is_empty(),
                meets,
                "{reported} against minimum {minimum}: {failures:?}"
            );
        }
        let failures = with_minimum(Platform::Macos, "14.0").check(&posture(Platform::Macos, "13.6"));
        assert_eq!(
            failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["OS version 13.6 is below the minimum 14.0"]
        );
    }

    #[test]
    fn an_os_version_that_cannot_be_read_fails_the_minimum() {
        let policy = with_minimum(Platform::Windows, "10.0.22631");
        let cases = [
            (
                "",
                "the device did not report its OS version; 10.0.22631 or later is required",
            ),
            (
                "   ",
                "the device did not report its OS version; 10.0.22631 or later is required",
            ),
            (
                "Windows 11",
                "OS version \"Windows 11\" cannot be read; 10.0.22631 or later is required",
            ),
            (
                "99999999999999999999999",
                "OS version \"99999999999999999999999\" cannot be read; 10.0.22631 or later is required",
            ),
        ];
        for (reported, message) in cases {
            let failures = policy.check(&posture(Platform::Windows, reported));
            assert_eq!(
                failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
                [message],
                "{reported:?}"
            );
        }
        let broken = with_minimum(Platform::Windows, "latest");
        assert_eq!(
            broken.check(&posture(Platform::Windows, "10.0.22631")),
            [Failure::MinimumVersionInvalid {
                minimum: "latest".into()
            }]
        );
    }

    #[test]
    fn disk_encryption_must_be_one_of_the_listed_types() {
        use DiskEncryptionType as D;
        let android = AssurancePolicy {
            disk_encryption_types: vec![D::Full, D::User],
            ..policy("p", Platform::Android)
        };
        let windows = AssurancePolicy {
            disk_encryption_types: vec![D::AllInternalVolumes],
            ..policy("p", Platform::Windows)
        };
        let cases = [
            (&android, D::Full, None),
            (&android, D::User, None),
            (
                &android,
                D::None,
                Some("disk encryption is NONE; one of FULL, USER is required"),
            ),
            (
                &android,
                D::Unspecified,
                Some("disk encryption was not reported; one of FULL, USER is required"),
            ),
            (&windows, D::AllInternalVolumes, None),
            (
                &windows,
                D::SystemVolume,
                Some("disk encryption is SYSTEM_VOLUME; ALL_INTERNAL_VOLUMES is required"),
            ),
            (
                &windows,
                D::Full,
                Some("disk encryption is FULL; ALL_INTERNAL_VOLUMES is required"),
            ),
        ];
        for (policy, reported, expected) in cases {
            let device = DevicePosture {
                disk_encryption: reported,
                ..posture(policy.platform, "1")
            };
            let messages: Vec<_> = policy.check(&device).iter().map(ToString::to_string).collect();
            assert_eq!(messages, expected.into_iter().collect::<Vec<_>>(), "{reported:?}");
        }
    }

    #[test]
    fn a_screen_lock_must_be_one_of_the_listed_types_and_biometrics_count_as_a_passcode() {
        use ScreenLockType as S;
        let any_lock = AssurancePolicy {
            screen_lock_types: vec![S::Passcode, S::Biometric],
            ..policy("p", Platform::Ios)
        };
        let biometric = AssurancePolicy {
            screen_lock_types: vec![S::Biometric],
            ..policy("p", Platform::Ios)
        };
        let passcode = AssurancePolicy {
            screen_lock_types: vec![S::Passcode],
            ..policy("p", Platform::Ios)
        };
        let cases = [
            (&any_lock, S::Passcode, None),
            (&any_lock, S::Biometric, None),
            (
                &any_lock,
                S::None,
                Some("screen lock is NONE; one of PASSCODE, BIOMETRIC is required"),
            ),
            (
                &any_lock,
                S::Unspecified,
                Some("screen lock was not reported; one of PASSCODE, BIOMETRIC is required"),
            ),
            (&biometric, S::Biometric, None),
            (
                &biometric,
                S::Passcode,
                Some("screen lock is PASSCODE; BIOMETRIC is required"),
            ),
            (&passcode, S::Biometric, None),
            (&passcode, S::Passcode, None),
        ];
        for (policy, reported, expected) in cases {
            let device = DevicePosture {
                screen_lock: reported,
                ..posture(Platform::Ios, "17")
            };
            let messages: Vec<_> = policy.check(&device).iter().map(ToString::to_string).collect();
            assert_eq!(messages, expected.into_iter().collect::<Vec<_>>(), "{reported:?}");
        }
    }

    #[test]
    fn secure_hardware_and_integrity_must_be_reported_to_pass() {
        let strict = AssurancePolicy {
            secure_hardware_required: true,
            jailbreak_forbidden: true,
            ..policy("p", Platform::Android)
        };
        let cases = [
            (Some(true), Some(false), vec![]),
            (
                Some(false),
                Some(false),
                vec![Failure::SecureHardwareMissing { reported: Some(false) }],
            ),
            (
                None,
                Some(false),
                vec![Failure::SecureHardwareMissing { reported: None }],
            ),
            (
                Some(true),
                Some(true),
                vec![Failure::Jailbroken { reported: Some(true) }],
            ),
            (Some(true), None, vec![Failure::Jailbroken { reported: None }]),
        ];
        for (secure_hardware, jailbroken, expected) in cases {
            let device = DevicePosture {
                secure_hardware,
                jailbroken,
                ..posture(Platform::Android, "14")
            };
            assert_eq!(strict.check(&device), expected, "{secure_hardware:?} {jailbroken:?}");
        }
        let lenient = policy("p", Platform::Android);
        let rooted = DevicePosture {
            secure_hardware: Some(false),
            jailbroken: Some(true),
            ..posture(Platform::Android, "14")
        };
        assert!(lenient.check(&rooted).is_empty(), "unrequired signals are not read");
        assert_eq!(
            Failure::Jailbroken { reported: Some(true) }.to_string(),
            "the device is jailbroken or rooted; only unmodified devices are allowed"
        );
    }

    #[test]
    fn a_policy_for_another_platform_reports_only_the_wrong_platform() {
        let mac = with_minimum(Platform::Macos, "14.0");
        let failures = mac.check(&posture(Platform::Windows, "10.0.22631"));
        assert_eq!(
            failures,
            [Failure::WrongPlatform {
                required: Platform::Macos,
                actual: Platform::Windows
            }]
        );
        assert_eq!(
            failures[0].to_string(),
            "this policy is for macOS devices; this device is Windows"
        );
        let unnamed = policy("p", Platform::Unspecified);
        assert_eq!(
            unnamed.check(&posture(Platform::Unspecified, "1")),
            [Failure::WrongPlatform {
                required: Platform::Unspecified,
                actual: Platform::Unspecified
            }]
        );
    }

    #[test]
    fn every_failure_is_listed_together() {
        let strict = AssurancePolicy {
            minimum_os_version: Some("14".into()),
            disk_encryption_types: vec![DiskEncryptionType::Full],
            screen_lock_types: vec![ScreenLockType::Biometric],
            secure_hardware_required: true,
            jailbreak_forbidden: true,
            ..policy("p", Platform::Android)
        };
        assert_eq!(strict.check(&posture(Platform::Android, "13")).len(), 5);
    }

    #[test]
    fn validation_accepts_what_each_platform_reports() {
        use DiskEncryptionType as D;
        use ScreenLockType as S;
        let valid = [
            AssurancePolicy {
                minimum_os_version: Some("12".into()),
                disk_encryption_types: vec![D::Full, D::User],
                screen_lock_types: vec![S::Passcode, S::Biometric],
                secure_hardware_required: true,
                jailbreak_forbidden: true,
                grace: Some(GracePeriod::For(Duration::from_secs(7 * 24 * 3600))),
                ..policy("android", Platform::Android)
            },
            AssurancePolicy {
                minimum_os_version: Some("17.1.2".into()),
                screen_lock_types: vec![S::Biometric],
                jailbreak_forbidden: true,
                ..policy("ios", Platform::Ios)
            },
            AssurancePolicy {
                minimum_os_version: Some("10.0.22631.2861".into()),
                disk_encryption_types: vec![D::AllInternalVolumes],
                secure_hardware_required: true,
                grace: Some(GracePeriod::For(MAX_GRACE)),
                ..policy("windows", Platform::Windows)
            },
            AssurancePolicy {
                disk_encryption_types: vec![D::AllInternalVolumes],
                screen_lock_types: vec![S::Passcode],
                grace: Some(GracePeriod::Until(NOW)),
                ..policy("mac", Platform::Macos)
            },
            AssurancePolicy {
                minimum_os_version: Some("120".into()),
                ..policy("chromebook", Platform::Chromeos)
            },
            AssurancePolicy {
                disk_encryption_types: vec![D::AllInternalVolumes],
                ..policy("linux", Platform::Linux)
            },
        ];
        for policy in valid {
            assert_eq!(policy.validate(), Ok(()), "{}", policy.id);
        }
    }

    #[test]
    fn validation_refuses_what_cannot_be_enforced() {
        use DiskEncryptionType as D;
        use ScreenLockType as S;
        let base = || policy("p", Platform::Windows);
        let cases = [
            (
                AssurancePolicy {
                    id: " ".into(),
                    ..base()
                },
                AssuranceError::MissingId,
            ),
            (policy("p", Platform::Unspecified), AssuranceError::UnspecifiedPlatform),
            (
                AssurancePolicy {
                    minimum_os_version: Some("14.2 beta".into()),
                    ..base()
                },
                AssuranceError::InvalidMinimumVersion {
                    text: "14.2 beta".into(),
                },
            ),
            (
                AssurancePolicy {
                    minimum_os_version: Some("".into()),
                    ..base()
                },
                AssuranceError::InvalidMinimumVersion { text: "".into() },
            ),
            (
                AssurancePolicy {
                    minimum_os_version: Some("14..2".into()),
                    ..base()
                },
                AssuranceError::InvalidMinimumVersion { text: "14..2".into() },
            ),
            (
                AssurancePolicy {
                    disk_encryption_types: vec![D::Unspecified],
                    ..base()
                },
                AssuranceError::UnspecifiedValue {
                    field: "disk_encryption_types",
                },
            ),
            (
                AssurancePolicy {
                    screen_lock_types: vec![S::Passcode, S::Unspecified],
                    ..base()
                },
                AssuranceError::UnspecifiedValue {
                    field: "screen_lock_types",
                },
            ),
            (
                AssurancePolicy {
                    disk_encryption_types: vec![D::SystemVolume],
                    ..base()
                },
                AssuranceError::UnsupportedDiskEncryption {
                    platform: Platform::Windows,
                    value: D::SystemVolume,
                },
            ),
            (
                AssurancePolicy {
                    disk_encryption_types: vec![D::Full],
                    ..base()
                },
                AssuranceError::UnsupportedDiskEncryption {
                    platform: Platform::Windows,
                    value: D::Full,
                },
            ),
            (
                AssurancePolicy {
                    disk_encryption_types: vec![D::AllInternalVolumes],
                    ..policy("p", Platform::Android)
                },
                AssuranceError::UnsupportedDiskEncryption {
                    platform: Platform::Android,
                    value: D::AllInternalVolumes,
                },
            ),
            (
                AssurancePolicy {
                    disk_encryption_types: vec![D::None],
                    ..policy("p", Platform::Android)
                },
                AssuranceError::UnsupportedDiskEncryption {
                    platform: Platform::Android,
                    value: D::None,
                },
            ),
            (
                AssurancePolicy {
                    disk_encryption_types: vec![D::Full],
                    ..policy("p", Platform::Ios)
                },
                AssuranceError::UnsupportedDiskEncryption {
                    platform: Platform::Ios,
                    value: D::Full,
                },
            ),
            (
                AssurancePolicy {
                    screen_lock_types: vec![S::None],
                    ..base()
                },
                AssuranceError::UnsupportedScreenLock {
                    platform: Platform::Windows,
                    value: S::None,
                },
            ),
            (
                AssurancePolicy {
                    screen_lock_types: vec![S::Passcode],
                    ..policy("p", Platform::Chromeos)
                },
                AssuranceError::UnsupportedScreenLock {
                    platform: Platform::Chromeos,
                    value: S::Passcode,
                },
            ),
            (
                AssurancePolicy {
                    secure_hardware_required: true,
                    ..policy("p", Platform::Ios)
                },
                AssuranceError::SecureHardwareUnsupported(Platform::Ios),
            ),
            (
                AssurancePolicy {
                    jailbreak_forbidden: true,
                    ..base()
                },
                AssuranceError::JailbreakUnsupported(Platform::Windows),
            ),
            (
                AssurancePolicy {
                    grace: Some(GracePeriod::For(Duration::ZERO)),
                    ..base()
                },
                AssuranceError::EmptyGrace,
            ),
            (
                AssurancePolicy {
                    grace: Some(GracePeriod::For(MAX_GRACE + Duration::from_secs(1))),
                    ..base()
                },
                AssuranceError::GraceTooLong(MAX_GRACE + Duration::from_secs(1)),
            ),
        ];
        for (policy, expected) in cases {
            assert_eq!(policy.validate(), Err(expected), "{policy:?}");
        }
    }

    #[test]
    fn validation_errors_say_what_the_platform_takes() {
        let error = AssurancePolicy {
            disk_encryption_types: vec![DiskEncryptionType::SystemVolume],
            ..policy("p", Platform::Macos)
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "macOS policies cannot require disk encryption SYSTEM_VOLUME; it takes ALL_INTERNAL_VOLUMES"
        );
        let error = AssurancePolicy {
            disk_encryption_types: vec![DiskEncryptionType::Full],
            ..policy("p", Platform::Ios)
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "iOS policies cannot require disk encryption FULL; the platform reports none to require"
        );
        let error = AssuranceError::GraceTooLong(MAX_GRACE + Duration::from_secs(1));
        assert_eq!(
            error.to_string(),
            "a grace period of 181 days is longer than the 180 days allowed"
        );
    }

    fn failing_mac(id: &str, grace: Option<GracePeriod>, remediation: &str) -> AssurancePolicy {
        AssurancePolicy {
            id: id.into(),
            grace,
            remediation: remediation.into(),
            ..with_minimum(Platform::Macos, "15.0")
        }
    }

    fn mac_on(version: &str) -> DevicePosture {
        posture(Platform::Macos, version)
    }

    #[test]
    fn grace_until_an_instant_expires_at_that_instant() {
        let cases = [(NOW - 1, true), (NOW, false), (NOW + 1, false)];
        for (now, in_grace) in cases {
            let policy = failing_mac("p", Some(GracePeriod::Until(NOW)), "Update macOS.");
            let outcome = check_any(&[&policy], &mac_on("14.6"), now, &never_failed);
            assert_eq!(
                matches!(outcome, AssuranceOutcome::InGrace { .. }),
                in_grace,
                "at {now}: {outcome:?}"
            );
        }
    }

    #[test]
    fn grace_for_a_duration_runs_from_the_first_failure() {
        let week = Duration::from_secs(7 * 24 * 3600);
        let policy = failing_mac("p", Some(GracePeriod::For(week)), "Update macOS.");
        let first_failure = NOW - 7 * DAY_MICROS;
        let seen = |id: &str| (id == "p").then_some(first_failure);
        let cases = [(NOW - 1, Some(NOW)), (NOW, None), (NOW + 1, None)];
        for (now, until) in cases {
            let outcome = check_any(&[&policy], &mac_on("14.6"), now, &seen);
            match (outcome, until) {
                (
                    AssuranceOutcome::InGrace {
                        until_micros,
                        policy_id,
                        ..
                    },
                    Some(expected),
                ) => {
                    assert_eq!((until_micros, policy_id.as_str()), (expected, "p"), "at {now}");
                }
                (AssuranceOutcome::Failed { .. }, None) => {}
                (outcome, _) => panic!("at {now}: {outcome:?}"),
            }
        }
        // A device failing for the first time now has the whole week.
        let outcome = check_any(&[&policy], &mac_on("14.6"), NOW, &never_failed);
        assert!(
            matches!(outcome, AssuranceOutcome::InGrace { until_micros, .. } if until_micros == NOW + 7 * DAY_MICROS)
        );
        // A first failure recorded in the future does not lengthen the grace.
        let outcome = check_any(&[&policy], &mac_on("14.6"), NOW, &|_: &str| Some(NOW + DAY_MICROS));
        assert!(
            matches!(outcome, AssuranceOutcome::InGrace { until_micros, .. } if until_micros == NOW + 7 * DAY_MICROS)
        );
    }

    #[test]
    fn a_device_in_grace_is_told_what_to_fix() {
        let policy = failing_mac("p", Some(GracePeriod::Until(NOW + DAY_MICROS)), "");
        let outcome = check_any(&[&policy], &mac_on("14.6"), NOW, &never_failed);
        assert_eq!(
            outcome,
            AssuranceOutcome::InGrace {
                policy_id: "p".into(),
                until_micros: NOW + DAY_MICROS,
                failures: vec![Failure::OsVersionBelowMinimum {
                    actual: "14.6".into(),
                    minimum: "15.0".into()
                }],
                remediation: "OS version 14.6 is below the minimum 15.0".into(),
            }
        );
    }

    #[test]
    fn any_satisfied_policy_beats_grace_and_grace_beats_failure() {
        let satisfied = AssurancePolicy {
            id: "ok".into(),
            ..with_minimum(Platform::Macos, "14.0")
        };
        let short_grace = failing_mac(
            "short",
            Some(GracePeriod::Until(NOW + DAY_MICROS)),
            "Update within a day.",
        );
        let long_grace = failing_mac(
            "long",
            Some(GracePeriod::Until(NOW + 3 * DAY_MICROS)),
            "Update within three days.",
        );
        let expired = failing_mac("expired", Some(GracePeriod::Until(NOW)), "Update now.");
        let no_grace = failing_mac("strict", None, "");
        let windows = AssurancePolicy {
            id: "win".into(),
            ..policy("win", Platform::Windows)
        };
        let device = mac_on("14.6");
        let outcome = |policies: &[&AssurancePolicy]| check_any(policies, &device, NOW, &never_failed);

        assert_eq!(
            outcome(&[&no_grace, &short_grace, &satisfied]),
            AssuranceOutcome::Satisfied { policy_id: "ok".into() }
        );
        assert!(matches!(
            outcome(&[&short_grace, &no_grace, &long_grace, &expired]),
            AssuranceOutcome::InGrace { policy_id, remediation, .. }
                if policy_id == "long" && remediation == "Update within three days."
        ));
        assert_eq!(
            outcome(&[&windows, &expired, &no_grace]),
            AssuranceOutcome::Failed {
                failures: vec![
                    (
                        "expired".into(),
                        vec![Failure::OsVersionBelowMinimum {
                            actual: "14.6".into(),
                            minimum: "15.0".into()
                        }]
                    ),
                    (
                        "strict".into(),
                        vec![Failure::OsVersionBelowMinimum {
                            actual: "14.6".into(),
                            minimum: "15.0".into()
                        }]
                    ),
                ],
                remediation: vec!["Update now.".into(), "OS version 14.6 is below the minimum 15.0".into()],
            }
        );
    }

    #[test]
    fn policies_for_other_platforms_do_not_apply() {
        let windows = AssurancePolicy {
            id: "win".into(),
            ..policy("win", Platform::Windows)
        };
        let unnamed = policy("unnamed", Platform::Unspecified);
        let device = mac_on("14.6");
        assert_eq!(
            check_any(&[&windows, &unnamed], &device, NOW, &never_failed),
            AssuranceOutcome::NoPolicyForPlatform
        );
        assert_eq!(
            check_any(&[], &device, NOW, &never_failed),
            AssuranceOutcome::NoPolicyForPlatform
        );
        let unknown_device = posture(Platform::Unspecified, "1");
        assert_eq!(
            check_any(&[&unnamed], &unknown_device, NOW, &never_failed),
            AssuranceOutcome::NoPolicyForPlatform
        );
    }
}
