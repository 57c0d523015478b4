//! The v1 protobuf contract of the Portcullis services: messages, clients and servers.

/// Encoded `FileDescriptorSet` of every Portcullis proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/portcullis_descriptor.bin"));

/// `portcullis.device.v1`: the device registry.
pub mod device {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("portcullis.device.v1");
    }
}

/// `portcullis.session.v1`: users and sessions.
pub mod session {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("portcullis.session.v1");
    }
}

/// `portcullis.pki.v1`: certificate authorities and attestation.
pub mod pki {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("portcullis.pki.v1");
    }
}

/// `portcullis.policy.v1`: sign-in policy and decisions.
pub mod policy {
    /// Version 1.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("portcullis.policy.v1");
    }
}
