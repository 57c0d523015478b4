//! The micromdm vector's CA as the device CA both targets decrypt with.

use std::sync::LazyLock;

use pki_svc::scep::message::CaKeys;

pub static CA: LazyLock<CaKeys> = LazyLock::new(|| {
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
