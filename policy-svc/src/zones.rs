//! Network zones.
