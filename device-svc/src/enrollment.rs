//! Enrollment input: a `RegisterDeviceRequest` checked against Okta's limits.

use std::collections::HashSet;

use portcullis_proto::device::v1 as pb;

use crate::assertion::PublicKey;
use crate::device::{DeviceKey, KeyPurpose, Platform, Profile};
use crate::error::{Error, Result};
use crate::signals::Signals;

/// Most keys one enrollment may register (proof-of-possession and user-verification, per user).
const MAX_KEYS: usize = 4;

/// A validated enrollment.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    /// The user enrolling.
    pub user_id: String,
    /// The agent installation.
    pub app_instance_id: String,
    /// The device profile.
    pub profile: Profile,
    /// The keys, each owned by `user_id`.
    pub keys: Vec<DeviceKey>,
    /// Signals collected at enrollment.
    pub signals: Signals,
    /// The hash of the enrollment token that allows it, which the enrollment uses up; `None`
    /// when the user signed in.
    pub token_hash: Option<String>,
}

fn length(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    let chars = value.chars().count();
    if chars < min || chars > max {
        let reason = match (min, chars < min) {
            (1, true) => "is required".to_owned(),
            (_, true) => format!("must be at least {min} characters"),
            _ => format!("must be at most {max} characters"),
        };
        return Err(Error::field(field, reason));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::field(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks an identifier such as a user id or app instance id: 1 to 255 visible characters.
pub fn identifier(field: &str, value: &str) -> Result<()> {
    length(field, value, 1, 255)?;
    if value.trim() != value {
        return Err(Error::field(field, "must not start or end with spaces"));
    }
    Ok(())
}

fn profile(p: Option<pb::DeviceProfile>) -> Result<Profile> {
    let pb::DeviceProfile {
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
    } = p.ok_or_else(|| Error::field("profile", "is required"))?;
    length("profile.display_name", &display_name, 1, 255)?;
    let platform = pb::Platform::try_from(platform)
        .ok()
        .and_then(Platform::from_proto)
        .ok_or_else(|| {
            Error::field(
                "profile.platform",
                "must be one of ANDROID, IOS, MACOS, WINDOWS, CHROMEOS, LINUX",
            )
        })?;
    length("profile.manufacturer", &manufacturer, 0, 127)?;
    length("profile.model", &model, 0, 127)?;
    length("profile.os_version", &os_version, 0, 127)?;
    length("profile.serial_number", &serial_number, 0, 127)?;
    length("profile.udid", &udid, 0, 47)?;
    length("profile.sid", &sid, 0, 256)?;
    if !imei.is_empty() {
        length("profile.imei", &imei, 14, 17)?;
        if !imei.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::field("profile.imei", "must be digits"));
        }
    }
    length("profile.meid", &meid, 0, 14)?;
    length("profile.tpm_public_key_hash", &tpm_public_key_hash, 0, 255)?;
    let disk_encryption_type = pb::DiskEncryptionType::try_from(disk_encryption_type)
        .map_err(|_| Error::field("profile.disk_encryption_type", "unknown value"))?;
    let screen_lock_type = pb::ScreenLockType::try_from(screen_lock_type)
        .map_err(|_| Error::field("profile.screen_lock_type", "unknown value"))?;
    Ok(Profile {
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
    })
}

fn key(index: usize, k: pb::DeviceKey, enrolling_user: &str) -> Result<DeviceKey> {
    let pb::DeviceKey {
        kid,
        purpose,
        hardware_protected,
        kty,
        crv,
        x,
        y,
        user_id,
    } = k;
    let field = |name: &str| format!("keys[{index}].{name}");
    length(&field("kid"), &kid, 1, 128)?;
    if !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) {
        return Err(Error::field(
            field("kid"),
            "may contain only letters, digits and - _ . :",
        ));
    }
    let purpose = match pb::KeyPurpose::try_from(purpose) {
        Ok(pb::KeyPurpose::ProofOfPossession) => KeyPurpose::ProofOfPossession,
        Ok(pb::KeyPurpose::UserVerification) => KeyPurpose::UserVerification,
        _ => {
            return Err(Error::field(
                field("purpose"),
                "must be PROOF_OF_POSSESSION or USER_VERIFICATION",
            ));
        }
    };
    if kty != "EC" {
        return Err(Error::field(field("kty"), "must be EC"));
    }
    if crv != "P-256" {
        return Err(Error::field(field("crv"), "must be P-256"));
    }
    PublicKey::from_jwk_coordinates(&x, &y)
        .map_err(|e| Error::field(field("x"), format!("not a P-256 public key: {e}")))?;
    if !user_id.is_empty() && user_id != enrolling_user {
        return Err(Error::field(field("user_id"), "must be empty or the enrolling user"));
    }
    Ok(DeviceKey {
        kid,
        purpose,
        hardware_protected,
        x,
        y,
        user_id: enrolling_user.to_owned(),
    })
}

impl TryFrom<pb::RegisterDeviceRequest> for Enrollment {
    type Error = Error;

    fn try_from(request: pb::RegisterDeviceRequest) -> Result<Self> {
        let pb::RegisterDeviceRequest {
            user_id,
            app_instance_id,
            profile: p,
            keys,
            signals,
            enrollment_token,
        } = request;
        identifier("user_id", &user_id)?;
        let token_hash = if enrollment_token.is_empty() {
            None
        } else if crate::enrollment_token::well_formed(&enrollment_token) {
            Some(crate::enrollment_token::token_hash(&enrollment_token))
        } else {
            return Err(Error::InvalidEnrollmentToken);
        };
        identifier("app_instance_id", &app_instance_id)?;
        let profile = profile(p)?;
        if keys.is_empty() {
            return Err(Error::field("keys", "at least a proof-of-possession key is required"));
        }
        if keys.len() > MAX_KEYS {
            return Err(Error::field("keys", format!("at most {MAX_KEYS} keys")));
        }
        let keys = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| key(i, k, &user_id))
            .collect::<Result<Vec<_>>>()?;
        let mut kids = HashSet::new();
        if let Some(dup) = keys.iter().find(|k| !kids.insert(k.kid.as_str())) {
            return Err(Error::field("keys", format!("key id {} appears twice", dup.kid)));
        }
        if !keys.iter().any(|k| k.purpose == KeyPurpose::ProofOfPossession) {
            return Err(Error::field("keys", "a PROOF_OF_POSSESSION key is required"));
        }
        let signals = match signals {
            Some(s) => Signals::from_proto(s).map_err(|e| Error::field(e.field, e.reason))?,
            None => Signals::default(),
        };
        Ok(Enrollment {
            user_id,
            app_instance_id,
            profile,
            keys,
            signals,
            token_hash,
        })
    }
}
