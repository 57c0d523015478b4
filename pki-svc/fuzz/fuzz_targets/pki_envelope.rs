//! Arbitrary bytes as the pkcsPKIEnvelope inside a request: the part `pki_operation` rarely
//! reaches, since a mutated message seldom keeps a valid signature. Decoding, key transport,
//! decryption and the content's own decoding must answer a value or an error, never panic.
//! Seed the corpus with envelopes (`openssl cms -encrypt -binary -outform DER -aes256 …` to the
//! vector's `ca.pem`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pki_svc::scep::message::open_envelope;

#[path = "vector_ca.rs"]
mod vector_ca;

use vector_ca::CA;

fuzz_target!(|data: &[u8]| {
    let _ = open_envelope(data, &CA);
});
