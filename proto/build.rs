//! Compiles the v1 protos with protox (no system protoc) and generates tonic clients and servers.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "portcullis/device/v1/device.proto",
    "portcullis/session/v1/directory.proto",
    "portcullis/session/v1/session.proto",
    "portcullis/pki/v1/pki.proto",
    "portcullis/policy/v1/policy.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("portcullis_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
