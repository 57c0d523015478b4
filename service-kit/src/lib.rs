//! Plumbing every Portcullis service shares: mTLS identities and access rules, middleware,
//! the admin port, configuration, database pools, statuses, page tokens and shutdown.

pub mod access;
pub mod admin;
pub mod clock;
pub mod config;
pub mod db;
pub mod dev_pki;
pub mod filter;
pub mod guard;
pub mod identity;
pub mod observe;
pub mod page_token;
pub mod sealing;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod tls;
