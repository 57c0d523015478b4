//! TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step of drift either way) and the
//! encryption of seeds at rest (AES-256-GCM with a key from configuration).

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Seed length: 160 bits, as RFC 4226 recommends for HMAC-SHA-1.
pub const SEED_LEN: usize = 20;
/// Steps of clock drift accepted on each side.
const DRIFT_STEPS: i64 = 1;

/// Why a seed could not be sealed or opened.
pub use service_kit::sealing::SealError as SeedError;
/// Encrypts and decrypts TOTP seeds, each bound to its user.
pub use service_kit::sealing::Sealer as SeedCipher;

/// A fresh random seed.
pub fn new_seed() -> Result<[u8; SEED_LEN], SeedError> {
    let mut seed = [0u8; SEED_LEN];
    SystemRandom::new().fill(&mut seed).map_err(|_| SeedError::Random)?;
    Ok(seed)
}

/// The step a Unix time falls in.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The code for `step` (RFC 4226 dynamic truncation over HMAC-SHA-1).
pub fn code_at_step(seed: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let digest = tag.as_ref();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    format!("{:0width$}", binary % 1_000_000, width = DIGITS)
}

/// The step whose code `code` is, within one step of `now_unix`, later steps first; `None` when
/// none matches. Every candidate is computed and compared in constant time, so timing does not
/// tell which step matched.
pub fn matching_step(seed: &[u8], code: &str, now_unix: i64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(now_unix);
    let mut found = None;
    for step in (now - DRIFT_STEPS..=now + DRIFT_STEPS).rev() {
        let candidate = code_at_step(seed, step);
        let equal = candidate
            .bytes()
            .zip(code.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if equal && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 without padding, as authenticator apps expect in `secret=`.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 0x1f)]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[usize::from((buffer << (5 - bits)) & 0x1f)]));
    }
    out
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(issuer: &str, login: &str, seed: &[u8]) -> String {
    let label = format!("{}:{}", percent_encode(issuer), percent_encode(login));
    format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        base32(seed),
        percent_encode(issuer)
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 seed "12345678901234567890", truncated to six digits.
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let seed = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at_step(seed, step_at(time)), code, "t={time}");
        }
    }

    #[test]
    fn one_step_of_drift_is_accepted_either_way_and_no_more() {
        let seed = b"12345678901234567890";
        let now = 1_234_567_890;
        let step = step_at(now);
        assert_eq!(matching_step(seed, &code_at_step(seed, step), now), Some(step));
        assert_eq!(matching_step(seed, &code_at_step(seed, step - 1), now), Some(step - 1));
        assert_eq!(matching_step(seed, &code_at_step(seed, step + 1), now), Some(step + 1));
        assert_eq!(matching_step(seed, &code_at_step(seed, step - 2), now), None);
        assert_eq!(matching_step(seed, &code_at_step(seed, step + 2), now), None);
        assert_eq!(matching_step(seed, "12345", now), None);
        assert_eq!(matching_step(seed, "12345a", now), None);
        assert_eq!(matching_step(seed, "１２３４５６", now), None);
    }

    #[test]
    fn base32_follows_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn the_otpauth_uri_names_issuer_login_and_parameters() {
        let uri = otpauth_uri("Portcullis", "alice@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Portcullis:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Portcullis&algorithm=SHA1&digits=6&period=30"
        );
        assert!(otpauth_uri("Port cullis", "a b", b"x").starts_with("otpauth://totp/Port%20cullis:a%20b?"));
    }
}
