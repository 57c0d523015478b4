//! policy-svc: decides every sign-in (allow, deny, or prove more) from the person, the app, the
//! network and the device, under policies operators manage as resources or as code.

pub mod assurance;
pub mod expression;
pub mod version;
pub mod zones;
