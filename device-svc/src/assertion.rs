//! Verification of FastPass response JWTs: compact JWS, ES256 only, signed with a P-256 key the
//! agent enrolled, carrying the challenge nonce and the device's posture signals.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};

use crate::signals::{Signals, SignalsError};

/// Longest accepted token, in bytes; checked before anything is decoded.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Longest accepted `jti`, in characters.
pub const MAX_JTI_CHARS: usize = 128;
/// Longest accepted `kid`, in characters: it is looked up in the database.
pub const MAX_KID_CHARS: usize = 256;

/// Longest accepted encoded header; a legitimate one is well under 200 characters.
const MAX_HEADER_SEGMENT_LEN: usize = 1024;
/// Decoded size of a header segment of at most `MAX_HEADER_SEGMENT_LEN` characters.
const MAX_HEADER_LEN: usize = MAX_HEADER_SEGMENT_LEN / 4 * 3;
/// A P-256 coordinate.
const COORDINATE_LEN: usize = 32;
/// A JWS ES256 signature: r and s, each 32 bytes big-endian.
const SIGNATURE_LEN: usize = 64;
/// Longest `alg` echoed back in an error.
const MAX_ECHOED_ALG_CHARS: usize = 32;

/// Why an assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// The token is not a compact JWS of acceptable size and encoding; says which part.
    #[error("malformed assertion: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than ES256 (shown truncated).
    #[error("unsupported algorithm {0:?}: only ES256 is accepted")]
    UnsupportedAlgorithm(String),
    /// The header has no `kid`, so the signing key cannot be found.
    #[error("the assertion header has no kid")]
    MissingKeyId,
    /// The header carries a parameter that is refused: `crit`, a key or key reference (`jwk`,
    /// `jku`, `x5u`, `x5c`) that must never be trusted, or a `typ` other than `JWT`.
    #[error("the assertion header parameter {0} is not accepted")]
    ForbiddenHeader(&'static str),
    /// The signature is not 64 raw bytes or does not verify with the device key.
    #[error("the assertion signature is invalid")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("the assertion has expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("the assertion is not valid yet")]
    NotYetValid,
    /// `iat` is in the future, beyond the leeway.
    #[error("the assertion was issued in the future")]
    IssuedInFuture,
    /// `exp - iat` exceeds the allowed lifetime.
    #[error("the assertion lifetime is too long")]
    LifetimeTooLong,
    /// `aud` does not name the expected audience.
    #[error("the assertion audience does not match")]
    AudienceMismatch,
    /// `nonce` is not the nonce of the challenge.
    #[error("the assertion nonce does not match the challenge")]
    NonceMismatch,
    /// A required claim is absent, null or empty; names it.
    #[error("the assertion has no {0} claim")]
    MissingClaim(&'static str),
    /// The JWK coordinates are not a P-256 public key.
    #[error("the device key is not a valid P-256 public key")]
    InvalidKey,
    /// The `signals` claim is not valid posture signals.
    #[error("invalid signals: {0}")]
    InvalidSignals(SignalsError),
}

/// A P-256 public key as its JWK coordinates, parsed once for repeated verification.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: ParsedPublicKey,
}

impl PublicKey {
    /// Builds the key from the base64url (unpadded) `x` and `y` of a JWK. Each must decode to
    /// 32 bytes and the point must be on the curve.
    pub fn from_jwk_coordinates(x: &str, y: &str) -> Result<Self, AssertionError> {
        // SEC 1 uncompressed point: 0x04 || x || y. aws-lc checks it lies on P-256.
        let mut point = [0u8; 1 + 2 * COORDINATE_LEN];
        point[0] = 0x04;
        let (x_out, y_out) = point[1..].split_at_mut(COORDINATE_LEN);
        if !decode_exact(x, x_out) || !decode_exact(y, y_out) {
            return Err(AssertionError::InvalidKey);
        }
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(|_| AssertionError::InvalidKey)?;
        Ok(Self { key })
    }
}

/// The header fields needed to find the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The id of the device key that signed the token.
    pub kid: String,
}

/// Reads the header without verifying the signature, to find the key by `kid`. Refuses the
/// same headers [`verify`] refuses, so a bad token is turned away before any lookup.
pub fn read_header(token: &str) -> Result<Header, AssertionError> {
    let segments = Segments::split(token)?;
    let mut buf = [0u8; MAX_HEADER_LEN];
    let kid = check_header(segments.header, &mut buf)?;
    Ok(Header { kid: kid.into_owned() })
}

/// What the verifier checks besides the signature.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The audience of the challenge; an empty one never matches.
    pub audience: &'a str,
    /// The nonce of the challenge; an empty one never matches.
    pub nonce: &'a str,
    /// The current time, in Unix seconds.
    pub now_unix: i64,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`, in seconds; negative counts as 0.
    pub leeway_secs: i64,
    /// Longest accepted `exp - iat`, in seconds.
    pub max_lifetime_secs: i64,
}

/// The claims of a verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user the assertion speaks for.
    pub sub: String,
    /// The token id, for replay detection.
    pub jti: String,
    /// Issued at, in Unix seconds.
    pub iat: i64,
    /// Expiry, in Unix seconds.
    pub exp: i64,
    /// The challenge nonce, equal to the expected one.
    pub nonce: String,
    /// The posture signals; all unknown when the claim is absent.
    pub signals: Signals,
}

/// Verifies the header, the ES256 signature (raw `r || s`, as JWS requires, not DER) and then
/// the claims: `exp`, `iat`, optional `nbf`, lifetime, `aud`, `nonce`, `jti`, `sub`, `signals`.
pub fn verify(token: &str, key: &PublicKey, expect: &Expectations<'_>) -> Result<Claims, AssertionError> {
    let segments = Segments::split(token)?;
    // The header is checked again here: verify must not rely on the caller having read it.
    let mut header_buf = [0u8; MAX_HEADER_LEN];
    check_header(segments.header, &mut header_buf)?;

    let mut signature = [0u8; SIGNATURE_LEN];
    if !decode_exact(segments.signature, &mut signature) {
        return Err(AssertionError::BadSignature);
    }
    key.key
        .verify_sig(segments.signing_input.as_bytes(), &signature)
        .map_err(|_| AssertionError::BadSignature)?;

    // Claims are read only once the signature holds, so unsigned input never reaches serde
    // beyond the small header.
    let payload = URL_SAFE_NO_PAD
        .decode(segments.payload)
        .map_err(|_| AssertionError::Malformed("the payload is not unpadded base64url"))?;
    let raw = parse_claims(&payload)?;
    check_claims(raw, expect)
}

/// The three segments of a compact JWS, borrowed from the token.
struct Segments<'t> {
    header: &'t str,
    payload: &'t str,
    signature: &'t str,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'t str,
}

impl<'t> Segments<'t> {
    fn split(token: &'t str) -> Result<Self, AssertionError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AssertionError::Malformed("the token is longer than 16 KiB"));
        }
        const NOT_THREE: AssertionError = AssertionError::Malformed("the token does not have three segments");
        let (header, rest) = token.split_once('.').ok_or(NOT_THREE)?;
        let (payload, signature) = rest.split_once('.').ok_or(NOT_THREE)?;
        if signature.contains('.') {
            return Err(NOT_THREE);
        }
        if header.is_empty() || payload.is_empty() {
            return Err(AssertionError::Malformed("the token has an empty segment"));
        }
        Ok(Self {
            header,
            payload,
            signature,
            signing_input: &token[..header.len() + 1 + payload.len()],
        })
    }
}

/// Decodes unpadded base64url into exactly `out.len()` bytes. The standard alphabet, padding
/// and non-canonical trailing bits are refused by the engine's configuration.
fn decode_exact(input: &str, out: &mut [u8]) -> bool {
    // Checking the length first keeps the decoder from ever needing more room than `out`.
    let expected_len = (out.len() * 4).div_ceil(3);
    input.len() == expected_len && URL_SAFE_NO_PAD.decode_slice(input, out) == Ok(out.len())
}

/// Deserializes to `true` whatever the value, `null` included, so mere presence is detected.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer)?;
        Ok(Self(true))
    }
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    kid: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    typ: Option<JsonStr<'a>>,
    #[serde(default)]
    crit: Present,
    #[serde(default)]
    jwk: Present,
    #[serde(default)]
    jku: Present,
    #[serde(default)]
    x5u: Present,
    #[serde(default)]
    x5c: Present,
}

/// Decodes the header segment into `buf` and checks it; returns the `kid`, borrowed from `buf`
/// when it has no escapes.
fn check_header<'b>(segment: &str, buf: &'b mut [u8; MAX_HEADER_LEN]) -> Result<Cow<'b, str>, AssertionError> {
    if segment.len() > MAX_HEADER_SEGMENT_LEN {
        return Err(AssertionError::Malformed("the header is too long"));
    }
    let len = URL_SAFE_NO_PAD
        .decode_slice(segment, &mut buf[..])
        .map_err(|_| AssertionError::Malformed("the header is not unpadded base64url"))?;
    // From here on the buffer is only read, for as long as the returned kid borrows it.
    let buf: &'b [u8; MAX_HEADER_LEN] = buf;
    let json = buf.get(..len).unwrap_or_default();
    let header: RawHeader<'b> =
        parse_object(json).ok_or(AssertionError::Malformed("the header is not a JSON object"))?;

    match header.alg.as_ref().map(|alg| alg.0.as_ref()) {
        Some("ES256") => {}
        Some(other) => {
            let shown: String = other.chars().take(MAX_ECHOED_ALG_CHARS).collect();
            return Err(AssertionError::UnsupportedAlgorithm(shown));
        }
        None => return Err(AssertionError::Malformed("the header has no alg")),
    }
    // Keys must come from enrollment only; a token naming its own key proves nothing.
    for (present, name) in [
        (header.crit.0, "crit"),
        (header.jwk.0, "jwk"),
        (header.jku.0, "jku"),
        (header.x5u.0, "x5u"),
        (header.x5c.0, "x5c"),
    ] {
        if present {
            return Err(AssertionError::ForbiddenHeader(name));
        }
    }
    // RFC 7515 §4.1.9 compares media types case-insensitively.
    if header.typ.is_some_and(|typ| !typ.0.eq_ignore_ascii_case("JWT")) {
        return Err(AssertionError::ForbiddenHeader("typ"));
    }
    let JsonStr(kid) = header.kid.ok_or(AssertionError::MissingKeyId)?;
    if kid.is_empty() {
        return Err(AssertionError::MissingKeyId);
    }
    if kid.len() > MAX_KID_CHARS && kid.chars().count() > MAX_KID_CHARS {
        return Err(AssertionError::Malformed("the kid is longer than 256 characters"));
    }
    Ok(kid)
}

/// Parses a JSON object. serde's derived structs also accept arrays (fields by position),
/// which JOSE does not allow, so the first byte is checked.
fn parse_object<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Option<T> {
    let first = json.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    serde_json::from_slice(json).ok()
}

#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(borrow, default)]
    aud: Option<Audience<'a>>,
    // Parsed straight into the domain type: one pass over the JSON on the hot path.
    #[serde(default)]
    signals: Option<Signals>,
}

/// Only the `signals` claim, kept as a JSON tree to explain why it did not parse.
#[derive(Deserialize)]
struct SignalsOnly {
    #[serde(default)]
    signals: Option<serde_json::Value>,
}

fn parse_claims(payload: &[u8]) -> Result<RawClaims<'_>, AssertionError> {
    const NOT_CLAIMS: AssertionError = AssertionError::Malformed("the payload is not a JSON object of valid claims");
    if let Some(claims) = parse_object(payload) {
        return Ok(claims);
    }
    // Slow path, after a failure only: tell a bad `signals` claim (with serde's reason, which
    // names the offending value) from otherwise malformed claims.
    let Some(SignalsOnly { signals: Some(signals) }) = parse_object(payload) else {
        return Err(NOT_CLAIMS);
    };
    match Signals::deserialize(signals) {
        Err(err) => Err(AssertionError::InvalidSignals(SignalsError {
            field: "signals",
            reason: err.to_string(),
        })),
        Ok(_) => Err(NOT_CLAIMS),
    }
}

fn check_claims(raw: RawClaims<'_>, expect: &Expectations<'_>) -> Result<Claims, AssertionError> {
    let RawClaims {
        sub,
        jti,
        iat,
        exp,
        nbf,
        nonce,
        aud,
        signals,
    } = raw;

    let exp = exp.ok_or(AssertionError::MissingClaim("exp"))?;
    let iat = iat.ok_or(AssertionError::MissingClaim("iat"))?;
    // Saturating: the inputs are attacker-chosen and must not overflow into acceptance or panic.
    let leeway = expect.leeway_secs.max(0);
    let earliest = expect.now_unix.saturating_sub(leeway);
    let latest = expect.now_unix.saturating_add(leeway);
    if exp <= earliest {
        return Err(AssertionError::Expired);
    }
    if iat > latest {
        return Err(AssertionError::IssuedInFuture);
    }
    if nbf.is_some_and(|nbf| nbf > latest) {
        return Err(AssertionError::NotYetValid);
    }
    if exp < iat {
        return Err(AssertionError::Malformed("exp is before iat"));
    }
    if exp.saturating_sub(iat) > expect.max_lifetime_secs {
        return Err(AssertionError::LifetimeTooLong);
    }

    let aud = aud.ok_or(AssertionError::MissingClaim("aud"))?;
    if expect.audience.is_empty() || !aud.contains(expect.audience) {
        return Err(AssertionError::AudienceMismatch);
    }
    let nonce = non_empty(nonce).ok_or(AssertionError::MissingClaim("nonce"))?;
    if nonce != expect.nonce {
        return Err(AssertionError::NonceMismatch);
    }
    let jti = non_empty(jti).ok_or(AssertionError::MissingClaim("jti"))?;
    if jti.len() > MAX_JTI_CHARS && jti.chars().count() > MAX_JTI_CHARS {
        return Err(AssertionError::Malformed("the jti is longer than 128 characters"));
    }
    let sub = non_empty(sub).ok_or(AssertionError::MissingClaim("sub"))?;

    let signals = signals.unwrap_or_default();
    signals.validate().map_err(AssertionError::InvalidSignals)?;

    Ok(Claims {
        sub,
        jti,
        iat,
        exp,
        nonce,
        signals,
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3), borrowed where possible.
enum Audience<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    fn contains(&self, expected: &str) -> bool {
        match self {
            Self::One(aud) => aud == expected,
            Self::Many(auds) => auds.iter().any(|aud| aud == expected),
        }
    }
}

/// A JSON string, borrowed from the input when it has no escapes. (serde's own `Cow`
/// implementation always copies, and a plain `&str` cannot hold an unescaped string.)
struct JsonStr<'a>(Cow<'a, str>);

/// Collects strings as [`JsonStr`] does, and sequences of them for [`Audience`].
struct StrVisitor<'a>(PhantomData<&'a str>);

impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
    type Value = Audience<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Audience::One(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Audience::One(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Audience::One(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The hint comes from the input; cap it so it cannot drive a large allocation.
        let mut auds = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(8));
        while let Some(JsonStr(aud)) = seq.next_element()? {
            auds.push(aud);
        }
        Ok(Audience::Many(auds))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_str(StrVisitor(PhantomData))? {
            Audience::One(s) => Ok(Self(s)),
            // deserialize_str only ever calls the string methods.
            Audience::Many(_) => Err(de::Error::invalid_type(de::Unexpected::Seq, &"a string")),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Audience<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrVisitor(PhantomData))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::signals::{DiskEncryption, ScreenLock, WscHealth};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair,
    };
    use serde_json::{Value, json};

    const NOW: i64 = 1_717_000_000;
    const AUDIENCE: &str = "https://gateway.example.com";
    const NONCE: &str = "n-0S6_WzA2Mj";

    fn expectations() -> Expectations<'static> {
        Expectations {
            audience: AUDIENCE,
            nonce: NONCE,
            now_unix: NOW,
            leeway_secs: 30,
            max_lifetime_secs: 300,
        }
    }

    struct Device {
        pair: EcdsaKeyPair,
        key: PublicKey,
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn coordinates(pair: &EcdsaKeyPair) -> (String, String) {
        let point = pair.public_key().as_ref();
        assert_eq!(point.len(), 65);
        assert_eq!(point[0], 0x04);
        (b64(&point[1..33]), b64(&point[33..]))
    }

    fn device_with(alg: &'static EcdsaSigningAlgorithm) -> Device {
        let pair = EcdsaKeyPair::generate(alg).unwrap();
        let (x, y) = coordinates(&pair);
        let key = PublicKey::from_jwk_coordinates(&x, &y).unwrap();
        Device { pair, key }
    }

    fn new_device() -> Device {
        device_with(&ECDSA_P256_SHA256_FIXED_SIGNING)
    }

    fn header() -> Value {
        json!({ "alg": "ES256", "kid": "key-1", "typ": "JWT" })
    }

    fn claims() -> Value {
        json!({
            "iss": "agent",
            "sub": "user-42",
            "aud": AUDIENCE,
            "jti": "jti-7f3a",
            "iat": NOW - 5,
            "exp": NOW + 55,
            "nonce": NONCE,
            "signals": {
                "osVersion": "10.0.22631",
                "diskEncryptionType": "SYSTEM_VOLUME",
                "screenLockType": "PASSCODE",
                "secureHardwarePresent": true,
                "integrityJailbreak": false,
                "agentVersion": "4.8.0",
                "wsc": { "fireWall": "GOOD", "avType": "POOR" },
                "zta": { "overall": 90, "os": 80, "sensorConfig": 70 },
                "collectTime": NOW - 10,
                "futureSignal": { "anything": [1, 2] }
            }
        })
    }

    fn sign_input(pair: &EcdsaKeyPair, input: &str) -> String {
        let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(signature.as_ref()))
    }

    fn sign(pair: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        sign_input(pair, &input)
    }

    fn with_claim(name: &str, value: Value) -> Value {
        let mut claims = claims();
        claims[name] = value;
        claims
    }

    fn without_claim(name: &str) -> Value {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    fn verify_claims(claims: &Value) -> Result<Claims, AssertionError> {
        let device = new_device();
        let token = sign(&device.pair, &header(), claims);
        verify(&token, &device.key, &expectations())
    }

    fn verify_header(header: &Value) -> Result<Claims, AssertionError> {
        let device = new_device();
        let token = sign(&device.pair, header, &claims());
        verify(&token, &device.key, &expectations())
    }

    #[test]
    fn a_valid_token_passes_and_returns_its_claims_and_signals() {
        let device = new_device();
        let token = sign(&device.pair, &header(), &claims());
        assert_eq!(read_header(&token).unwrap().kid, "key-1");

        let verified = verify(&token, &device.key, &expectations()).unwrap();
        assert_eq!(verified.sub, "user-42");
        assert_eq!(verified.jti, "jti-7f3a");
        assert_eq!(verified.iat, NOW - 5);
        assert_eq!(verified.exp, NOW + 55);
        assert_eq!(verified.nonce, NONCE);
        let signals = verified.signals;
        assert_eq!(signals.os_version.as_deref(), Some("10.0.22631"));
        assert_eq!(signals.disk_encryption_type, Some(DiskEncryption::SystemVolume));
        assert_eq!(signals.screen_lock_type, Some(ScreenLock::Passcode));
        assert_eq!(signals.secure_hardware_present, Some(true));
        assert_eq!(signals.integrity_jailbreak, Some(false));
        assert_eq!(signals.wsc.unwrap().fire_wall, Some(WscHealth::Good));
        assert_eq!(signals.wsc.unwrap().anti_spyware, None);
        assert_eq!(signals.zta.unwrap().sensor_config, Some(70));
        assert_eq!(signals.collect_time, Some(NOW - 10));
    }

    #[test]
    fn the_same_key_verifies_many_tokens() {
        let device = new_device();
        for i in 0..20 {
            let token = sign(&device.pair, &header(), &with_claim("jti", json!(format!("j{i}"))));
            assert_eq!(
                verify(&token, &device.key, &expectations()).unwrap().jti,
                format!("j{i}")
            );
        }
    }

    #[test]
    fn a_token_without_typ_or_with_lowercase_typ_passes() {
        assert!(verify_header(&json!({ "alg": "ES256", "kid": "k" })).is_ok());
        assert!(verify_header(&json!({ "alg": "ES256", "kid": "k", "typ": "jwt" })).is_ok());
    }

    #[test]
    fn a_token_without_signals_has_unknown_signals() {
        let verified = verify_claims(&without_claim("signals")).unwrap();
        assert_eq!(verified.signals, Signals::default());
    }

    #[test]
    fn a_tampered_payload_is_rejected() {
        let device = new_device();
        let token = sign(&device.pair, &header(), &claims());
        let (head, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged = b64(with_claim("sub", json!("admin")).to_string());
        let tampered = format!("{head}.{forged}.{signature}");
        assert_eq!(
            verify(&tampered, &device.key, &expectations()),
            Err(AssertionError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_header_is_rejected() {
        let device = new_device();
        let token = sign(&device.pair, &header(), &claims());
        let (_, rest) = token.split_once('.').unwrap();
        let other = b64(json!({ "alg": "ES256", "kid": "key-2" }).to_string());
        let tampered = format!("{other}.{rest}");
        assert_eq!(read_header(&tampered).unwrap().kid, "key-2");
        assert_eq!(
            verify(&tampered, &device.key, &expectations()),
            Err(AssertionError::BadSignature)
        );
    }

    #[test]
    fn a_signature_by_another_key_is_rejected() {
        let device = new_device();
        let other = new_device();
        let token = sign(&other.pair, &header(), &claims());
        assert_eq!(
            verify(&token, &device.key, &expectations()),
            Err(AssertionError::BadSignature)
        );
    }

    #[test]
    fn a_der_encoded_signature_is_rejected() {
        let device = device_with(&ECDSA_P256_SHA256_ASN1_SIGNING);
        let token = sign(&device.pair, &header(), &claims());
        assert_eq!(
            verify(&token, &device.key, &expectations()),
            Err(AssertionError::BadSignature)
        );
    }

    #[test]
    fn a_missing_or_truncated_signature_is_rejected() {
        let device = new_device();
        let token = sign(&device.pair, &header(), &claims());
        let input = &token[..token.rfind('.').unwrap()];
        for bad in [
            format!("{input}."),
            format!("{input}.AAAA"),
            token[..token.len() - 1].to_owned(),
        ] {
            assert_eq!(
                verify(&bad, &device.key, &expectations()),
                Err(AssertionError::BadSignature)
            );
        }
    }

    #[test]
    fn algorithms_other_than_es256_are_rejected() {
        for alg in ["none", "HS256", "RS256", "PS256", "ES384", "ES256K", "EdDSA", "es256"] {
            let header = json!({ "alg": alg, "kid": "key-1" });
            let device = new_device();
            let token = sign(&device.pair, &header, &claims());
            let expected = AssertionError::UnsupportedAlgorithm(alg.to_owned());
            assert_eq!(read_header(&token).unwrap_err(), expected);
            assert_eq!(verify(&token, &device.key, &expectations()).unwrap_err(), expected);
        }
    }

    #[test]
    fn an_unsigned_alg_none_token_is_rejected() {
        let device = new_device();
        let header = b64(json!({ "alg": "none", "kid": "key-1" }).to_string());
        let token = format!("{header}.{}.", b64(claims().to_string()));
        assert_eq!(
            verify(&token, &device.key, &expectations()),
            Err(AssertionError::UnsupportedAlgorithm("none".to_owned()))
        );
    }

    #[test]
    fn a_missing_alg_is_rejected() {
        assert!(matches!(
            verify_header(&json!({ "kid": "key-1" })),
            Err(AssertionError::Malformed(_))
        ));
    }

    #[test]
    fn a_long_alg_is_echoed_truncated() {
        let alg = "X".repeat(500);
        let device = new_device();
        let token = sign(&device.pair, &json!({ "alg": alg, "kid": "k" }), &claims());
        let Err(AssertionError::UnsupportedAlgorithm(shown)) = read_header(&token) else {
            panic!("expected UnsupportedAlgorithm");
        };
        assert_eq!(shown.len(), MAX_ECHOED_ALG_CHARS);
    }

    #[test]
    fn a_missing_or_empty_kid_is_rejected() {
        for header in [
            json!({ "alg": "ES256" }),
            json!({ "alg": "ES256", "kid": "" }),
            json!({ "alg": "ES256", "kid": null }),
        ] {
            assert_eq!(verify_header(&header), Err(AssertionError::MissingKeyId));
        }
    }

    #[test]
    fn a_kid_with_escapes_is_read() {
        let device = new_device();
        let token = sign(&device.pair, &json!({ "alg": "ES256", "kid": "a\"b\u{e9}" }), &claims());
        assert_eq!(read_header(&token).unwrap().kid, "a\"b\u{e9}");
    }

    #[test]
    fn keys_and_key_references_in_the_header_are_rejected() {
        for name in ["jwk", "jku", "x5u", "x5c", "crit"] {
            let mut header = header();
            header[name] = json!(null);
            assert_eq!(verify_header(&header), Err(AssertionError::ForbiddenHeader(name)));
        }
        let mut header = header();
        header["jwk"] = json!({ "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA" });
        let device = new_device();
        let token = sign(&device.pair, &header, &claims());
        assert_eq!(read_header(&token), Err(AssertionError::ForbiddenHeader("jwk")));
    }

    #[test]
    fn a_typ_other_than_jwt_is_rejected() {
        let header = json!({ "alg": "ES256", "kid": "k", "typ": "at+jwt" });
        assert_eq!(verify_header(&header), Err(AssertionError::ForbiddenHeader("typ")));
    }

    #[test]
    fn a_header_that_is_not_a_json_object_is_rejected() {
        let device = new_device();
        for header in [json!(["ES256", "k"]), json!("ES256"), json!(null)] {
            let token = sign(&device.pair, &header, &claims());
            assert!(matches!(read_header(&token), Err(AssertionError::Malformed(_))));
        }
        let duplicated = format!("{}.{}.AAAA", b64(r#"{"alg":"ES256","kid":"a","kid":"b"}"#), b64("{}"));
        assert!(matches!(read_header(&duplicated), Err(AssertionError::Malformed(_))));
    }

    #[test]
    fn an_expired_token_is_rejected() {
        let claims = with_claim("exp", json!(NOW - 31));
        let mut claims = claims;
        claims["iat"] = json!(NOW - 100);
        assert_eq!(verify_claims(&claims), Err(AssertionError::Expired));
    }

    #[test]
    fn a_token_expired_within_the_leeway_passes() {
        let mut claims = with_claim("exp", json!(NOW - 29));
        claims["iat"] = json!(NOW - 100);
        assert!(verify_claims(&claims).is_ok());
    }

    #[test]
    fn a_token_not_valid_yet_is_rejected() {
        assert_eq!(
            verify_claims(&with_claim("nbf", json!(NOW + 31))),
            Err(AssertionError::NotYetValid)
        );
        assert!(verify_claims(&with_claim("nbf", json!(NOW + 30))).is_ok());
    }

    #[test]
    fn a_token_issued_in_the_future_is_rejected() {
        let mut claims = with_claim("iat", json!(NOW + 31));
        claims["exp"] = json!(NOW + 60);
        assert_eq!(verify_claims(&claims), Err(AssertionError::IssuedInFuture));
    }

    #[test]
    fn a_lifetime_too_long_is_rejected() {
        let claims = with_claim("exp", json!(NOW - 5 + 301));
        assert_eq!(verify_claims(&claims), Err(AssertionError::LifetimeTooLong));
        assert!(verify_claims(&with_claim("exp", json!(NOW - 5 + 300))).is_ok());
    }

    #[test]
    fn an_exp_before_iat_is_rejected() {
        let mut claims = with_claim("iat", json!(NOW + 20));
        claims["exp"] = json!(NOW + 10);
        assert!(matches!(verify_claims(&claims), Err(AssertionError::Malformed(_))));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut claims = with_claim("iat", json!(i64::MIN));
        claims["exp"] = json!(i64::MAX);
        assert_eq!(verify_claims(&claims), Err(AssertionError::LifetimeTooLong));
        let device = new_device();
        let token = sign(&device.pair, &header(), &self::claims());
        let end_of_time = Expectations {
            now_unix: i64::MAX,
            leeway_secs: 0,
            ..expectations()
        };
        assert_eq!(verify(&token, &device.key, &end_of_time), Err(AssertionError::Expired));
        let dawn_of_time = Expectations {
            now_unix: i64::MIN,
            leeway_secs: i64::MAX,
            ..expectations()
        };
        assert_eq!(
            verify(&token, &device.key, &dawn_of_time),
            Err(AssertionError::IssuedInFuture)
        );
    }

    #[test]
    fn a_wrong_audience_is_rejected() {
        assert_eq!(
            verify_claims(&with_claim("aud", json!("https://evil.example.com"))),
            Err(AssertionError::AudienceMismatch)
        );
        assert_eq!(
            verify_claims(&with_claim("aud", json!(["https://evil.example.com"]))),
            Err(AssertionError::AudienceMismatch)
        );
        assert_eq!(
            verify_claims(&with_claim("aud", json!([]))),
            Err(AssertionError::AudienceMismatch)
        );
        assert!(matches!(
            verify_claims(&with_claim("aud", json!(42))),
            Err(AssertionError::Malformed(_))
        ));
    }

    #[test]
    fn an_audience_array_containing_the_audience_passes() {
        let claims = with_claim("aud", json!(["https://other.example.com", AUDIENCE]));
        assert!(verify_claims(&claims).is_ok());
    }

    #[test]
    fn an_empty_expected_audience_never_matches() {
        let device = new_device();
        let token = sign(&device.pair, &header(), &with_claim("aud", json!("")));
        let expect = Expectations {
            audience: "",
            ..expectations()
        };
        assert_eq!(
            verify(&token, &device.key, &expect),
            Err(AssertionError::AudienceMismatch)
        );
    }

    #[test]
    fn a_wrong_nonce_is_rejected() {
        assert_eq!(
            verify_claims(&with_claim("nonce", json!("other"))),
            Err(AssertionError::NonceMismatch)
        );
    }

    #[test]
    fn missing_required_claims_are_named() {
        for name in ["exp", "iat", "aud", "nonce", "jti", "sub"] {
            assert_eq!(
                verify_claims(&without_claim(name)),
                Err(AssertionError::MissingClaim(name)),
                "{name}"
            );
        }
        assert_eq!(
            verify_claims(&with_claim("jti", json!(""))),
            Err(AssertionError::MissingClaim("jti"))
        );
        assert_eq!(
            verify_claims(&with_claim("sub", json!(null))),
            Err(AssertionError::MissingClaim("sub"))
        );
    }

    #[test]
    fn a_jti_longer_than_128_characters_is_rejected() {
        assert!(verify_claims(&with_claim("jti", json!("j".repeat(128)))).is_ok());
        assert!(matches!(
            verify_claims(&with_claim("jti", json!("j".repeat(129)))),
            Err(AssertionError::Malformed(_))
        ));
    }

    #[test]
    fn invalid_signals_are_rejected_with_the_field_name() {
        let mut claims = claims();
        claims["signals"]["zta"]["overall"] = json!(0);
        let Err(AssertionError::InvalidSignals(err)) = verify_claims(&claims) else {
            panic!("expected InvalidSignals");
        };
        assert_eq!(err.field, "signals.zta.overall");

        let mut claims = self::claims();
        claims["signals"]["diskEncryptionType"] = json!("BITLOCKER");
        let Err(AssertionError::InvalidSignals(err)) = verify_claims(&claims) else {
            panic!("expected InvalidSignals");
        };
        assert_eq!(err.field, "signals");
        assert!(err.reason.contains("BITLOCKER"), "{}", err.reason);
    }

    #[test]
    fn claims_of_the_wrong_type_are_malformed() {
        for (name, value) in [("exp", json!("soon")), ("iat", json!(1.5)), ("sub", json!(7))] {
            assert!(
                matches!(
                    verify_claims(&with_claim(name, value)),
                    Err(AssertionError::Malformed(_))
                ),
                "{name}"
            );
        }
        let device = new_device();
        for payload in [json!([1, 2]), json!("claims")] {
            let token = sign(&device.pair, &header(), &payload);
            assert!(matches!(
                verify(&token, &device.key, &expectations()),
                Err(AssertionError::Malformed(_))
            ));
        }
    }

    #[test]
    fn garbage_segments_are_rejected_without_panicking() {
        let device = new_device();
        let good = sign(&device.pair, &header(), &claims());
        let inputs = [
            String::new(),
            ".".to_owned(),
            "..".to_owned(),
            "...".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            format!("{good}.{}", b64("x")),
            "!!!.@@@.###".to_owned(),
            format!("{}.e30.AAAA", b64("not json")),
            format!(".{}", &good[good.find('.').unwrap() + 1..]),
            "\u{0}\u{ff}.\u{1f600}.x".to_owned(),
            format!("{}.{}", &good[..good.rfind('.').unwrap()], "é".repeat(43)),
        ];
        for input in &inputs {
            assert!(verify(input, &device.key, &expectations()).is_err(), "{input:?}");
        }
    }

    #[test]
    fn a_signed_payload_that_is_not_base64url_is_malformed() {
        let device = new_device();
        let input = format!("{}.{}", b64(header().to_string()), "e30$");
        let token = sign_input(&device.pair, &input);
        assert!(matches!(
            verify(&token, &device.key, &expectations()),
            Err(AssertionError::Malformed(_))
        ));
    }

    #[test]
    fn padded_base64_is_rejected() {
        let device = new_device();
        // {"alg":"ES256","kid":"k1"} is 26 bytes, so its padded form ends in '='.
        let padded_header = base64::engine::general_purpose::URL_SAFE.encode(r#"{"alg":"ES256","kid":"k1"}"#);
        assert!(padded_header.ends_with('='));
        let token = sign(&device.pair, &header(), &claims());
        let (_, rest) = token.split_once('.').unwrap();
        assert!(matches!(
            read_header(&format!("{padded_header}.{rest}")),
            Err(AssertionError::Malformed(_))
        ));

        // Grow a filler claim until the JSON length is not a multiple of 3 and needs padding.
        let mut claims = with_claim("filler", json!(""));
        while claims.to_string().len().is_multiple_of(3) {
            claims["filler"] = json!(format!("{}x", claims["filler"].as_str().unwrap()));
        }
        let padded_payload = base64::engine::general_purpose::URL_SAFE.encode(claims.to_string());
        assert!(padded_payload.ends_with('='));
        let input = format!("{}.{padded_payload}", b64(header().to_string()));
        let token = sign_input(&device.pair, &input);
        assert!(matches!(
            verify(&token, &device.key, &expectations()),
            Err(AssertionError::Malformed(_))
        ));

        let signature = token.rsplit_once('.').unwrap().1;
        let padded_signature = format!("{}.{signature}==", &token[..token.rfind('.').unwrap()]);
        assert_eq!(
            verify(&padded_signature, &device.key, &expectations()),
            Err(AssertionError::BadSignature)
        );
    }

    #[test]
    fn the_standard_base64_alphabet_is_rejected() {
        let device = new_device();
        // Find a signature whose encoding uses '-' or '_', then swap in '+' or '/'.
        for _ in 0..64 {
            let token = sign(&device.pair, &header(), &claims());
            let (input, signature) = token.rsplit_once('.').unwrap();
            if signature.contains(['-', '_']) {
                let standard = signature.replace('-', "+").replace('_', "/");
                let token = format!("{input}.{standard}");
                assert_eq!(
                    verify(&token, &device.key, &expectations()),
                    Err(AssertionError::BadSignature)
                );
                return;
            }
        }
        panic!("no signature used the URL-safe characters");
    }

    #[test]
    fn an_oversize_token_is_rejected_before_decoding() {
        let device = new_device();
        let big = with_claim("padding", json!("x".repeat(MAX_TOKEN_LEN)));
        let token = sign(&device.pair, &header(), &big);
        assert!(token.len() > MAX_TOKEN_LEN);
        assert_eq!(
            verify(&token, &device.key, &expectations()),
            Err(AssertionError::Malformed("the token is longer than 16 KiB"))
        );
        assert_eq!(
            read_header(&token),
            Err(AssertionError::Malformed("the token is longer than 16 KiB"))
        );
    }

    #[test]
    fn a_header_at_the_size_limit_is_read() {
        let mut header = json!({ "alg": "ES256", "kid": "k", "x": "" });
        let filler = MAX_HEADER_LEN - header.to_string().len();
        header["x"] = json!("y".repeat(filler));
        assert_eq!(header.to_string().len(), MAX_HEADER_LEN);
        let device = new_device();
        let token = sign(&device.pair, &header, &claims());
        assert_eq!(token.find('.'), Some(MAX_HEADER_SEGMENT_LEN));
        assert_eq!(read_header(&token).unwrap().kid, "k");
        assert!(verify(&token, &device.key, &expectations()).is_ok());
    }

    #[test]
    fn an_oversize_header_is_rejected() {
        let device = new_device();
        let header = json!({ "alg": "ES256", "kid": "k", "x": "y".repeat(2000) });
        let token = sign(&device.pair, &header, &claims());
        assert!(matches!(read_header(&token), Err(AssertionError::Malformed(_))));
    }

    #[test]
    fn error_messages_do_not_echo_the_token() {
        let device = new_device();
        let token = sign(&device.pair, &header(), &with_claim("nonce", json!("other")));
        let message = verify(&token, &device.key, &expectations()).unwrap_err().to_string();
        assert!(!message.contains(&token[..20]));
        assert!(!message.contains("other"));
    }

    #[test]
    fn an_off_curve_point_is_rejected() {
        let one = {
            let mut bytes = [0u8; 32];
            bytes[31] = 1;
            b64(bytes)
        };
        assert_eq!(
            PublicKey::from_jwk_coordinates(&one, &one).unwrap_err(),
            AssertionError::InvalidKey
        );
    }

    #[test]
    fn malformed_coordinates_are_rejected() {
        let device = new_device();
        let (x, y) = coordinates(&device.pair);
        let short = b64([7u8; 31]);
        let long = b64([7u8; 33]);
        let padded = base64::engine::general_purpose::URL_SAFE.encode([7u8; 32]);
        for (x, y) in [
            (short.as_str(), y.as_str()),
            (x.as_str(), long.as_str()),
            (padded.as_str(), y.as_str()),
            ("", ""),
            ("!!", y.as_str()),
        ] {
            assert_eq!(
                PublicKey::from_jwk_coordinates(x, y).unwrap_err(),
                AssertionError::InvalidKey
            );
        }
        // Swapped coordinates are (almost surely) off the curve.
        assert_eq!(
            PublicKey::from_jwk_coordinates(&y, &x).unwrap_err(),
            AssertionError::InvalidKey
        );
    }
}
