//! Arbitrary bytes as a SCEP pkiMessage, parsed with the micromdm vector's CA as the device CA:
//! whatever arrives by POST at `/scep/{integration}?operation=PKIOperation` must come back as a
//! request or an error, never a panic. Seed the corpus with `tests/vectors/micromdm/PKCSReq.der`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pki_svc::scep::message::parse_pki_message;

#[path = "vector_ca.rs"]
mod vector_ca;

use vector_ca::CA;

fuzz_target!(|data: &[u8]| {
    let _ = parse_pki_message(data, &CA);
});
