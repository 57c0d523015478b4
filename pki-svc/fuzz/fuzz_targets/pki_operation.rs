//! Arbitrary bytes as a SCEP pkiMessage, parsed with the micromdm vector's CA as the device CA:
//! whatever arrives by POST at `/scep/{integration}?operation=PKIOperation` must come back as a
//! request or an error, never a panic. Seed the corpus with `tests/vectors/micromdm/PKCSReq.der`.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pki_svc::scep::message::{CaKeys, parse_pki_message};

static CA: LazyLock<CaKeys> = LazyLock::new(|| {
    let certificate = pem_contents(include_bytes!("../../tests/vectors/micromdm/ca.pem"));
    let key = pem_contents(include_bytes!("../../tests/vectors/micromdm/ca.key"));
    CaKeys::from_der(certificate, &key).expect("the vector's CA certificate and PKCS#8 key belong together")
});

fn pem_contents(pem: &[u8]) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem)
        .expect("the vector files are PEM")
        .1
        .contents
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_pki_message(data, &CA);
});
