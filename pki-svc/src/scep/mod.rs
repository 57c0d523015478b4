//! SCEP (RFC 8894): the pkiMessage codec and the HTTP server.

pub mod client;
pub mod enroll;
pub mod http;
pub mod message;
