//! Device assurance policies.
