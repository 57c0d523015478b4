//! Arbitrary bytes as the pkcsPKIEnvelope inside a request: the part `pki_operation` rarely
//! reaches, since a mutated message seldom keeps a valid signature. Decoding, key transport,
//! decryption and the content's own decoding must answer a value or an error, never panic.
//! Seed the corpus with envelopes (`openssl cms -encrypt -binary -outform DER -aes256 …` to the
//! vector's `ca.pem`).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pki_svc::scep::message::{CaKeys, open_envelope};

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
    let _ = open_envelope(data, &CA);
});
