//! Lifecycle rules: which transitions each status allows, and the events and effects they cause.

use crate::device::DeviceStatus;
use crate::error::{Error, Result};

/// A lifecycle action an operator can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// ACTIVE → SUSPENDED.
    Suspend,
    /// SUSPENDED → ACTIVE.
    Unsuspend,
    /// ACTIVE or SUSPENDED → DEACTIVATED.
    Deactivate,
    /// DEACTIVATED → ACTIVE.
    Activate,
}

/// What an action does to a device in a given status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The device is already where the action leads: nothing changes, nothing is recorded.
    AlreadyThere,
    /// The device moves to this status.
    To(DeviceStatus),
}

impl Action {
    /// The verb, for messages.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Suspend => "suspend",
            Action::Unsuspend => "unsuspend",
            Action::Deactivate => "deactivate",
            Action::Activate => "activate",
        }
    }

    /// The System Log event type of this action.
    pub fn event_type(self) -> &'static str {
        match self {
            Action::Suspend => "device.lifecycle.suspend",
            Action::Unsuspend => "device.lifecycle.unsuspend",
            Action::Deactivate => "device.lifecycle.deactivate",
            Action::Activate => "device.lifecycle.activate",
        }
    }

    /// Whether the action ends the sessions established with the device authenticator.
    pub fn ends_device_sessions(self) -> bool {
        matches!(self, Action::Suspend | Action::Deactivate)
    }

    /// The transition from `from`, or ILLEGAL_DEVICE_STATUS.
    pub fn plan(self, from: DeviceStatus) -> Result<Transition> {
        use DeviceStatus::*;
        let target = match self {
            Action::Suspend => Suspended,
            Action::Unsuspend | Action::Activate => Active,
            Action::Deactivate => Deactivated,
        };
        let allowed = match self {
            Action::Suspend => from == Active,
            Action::Unsuspend => from == Suspended,
            Action::Deactivate => from == Active || from == Suspended,
            Action::Activate => from == Deactivated,
        };
        if from == target {
            Ok(Transition::AlreadyThere)
        } else if allowed {
            Ok(Transition::To(target))
        } else {
            Err(Error::IllegalDeviceStatus {
                action: self.verb(),
                from,
            })
        }
    }
}

/// Deleting is allowed only once a device is deactivated.
pub fn check_delete(from: DeviceStatus) -> Result<()> {
    if from == DeviceStatus::Deactivated {
        Ok(())
    } else {
        Err(Error::IllegalDeviceStatus { action: "delete", from })
    }
}

/// Enrolling (a new user, or again) needs an active device.
pub fn check_enroll(from: DeviceStatus) -> Result<()> {
    if from == DeviceStatus::Active {
        Ok(())
    } else {
        Err(Error::IllegalDeviceStatus {
            action: "enroll on",
            from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceStatus::*;

    /// The whole table: (action, from) → allowed target, already-there, or refused.
    #[test]
    fn the_lifecycle_table_holds() {
        let cases = [
            (Action::Suspend, Active, Some(Transition::To(Suspended))),
            (Action::Suspend, Suspended, Some(Transition::AlreadyThere)),
            (Action::Suspend, Deactivated, None),
            (Action::Unsuspend, Suspended, Some(Transition::To(Active))),
            (Action::Unsuspend, Active, Some(Transition::AlreadyThere)),
            (Action::Unsuspend, Deactivated, None),
            (Action::Deactivate, Active, Some(Transition::To(Deactivated))),
            (Action::Deactivate, Suspended, Some(Transition::To(Deactivated))),
            (Action::Deactivate, Deactivated, Some(Transition::AlreadyThere)),
            (Action::Activate, Deactivated, Some(Transition::To(Active))),
            (Action::Activate, Active, Some(Transition::AlreadyThere)),
            (Action::Activate, Suspended, None),
        ];
        for (action, from, expected) in cases {
            match (action.plan(from), expected) {
                (Ok(got), Some(want)) => assert_eq!(got, want, "{action:?} from {from:?}"),
                (Err(Error::IllegalDeviceStatus { .. }), None) => {}
                (got, want) => panic!("{action:?} from {from:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn only_deactivated_devices_can_be_deleted() {
        assert!(check_delete(Deactivated).is_ok());
        assert!(check_delete(Active).is_err());
        assert!(check_delete(Suspended).is_err());
    }

    #[test]
    fn only_active_devices_accept_enrollment() {
        assert!(check_enroll(Active).is_ok());
        assert!(matches!(
            check_enroll(Suspended),
            Err(Error::IllegalDeviceStatus { .. })
        ));
        assert!(matches!(
            check_enroll(Deactivated),
            Err(Error::IllegalDeviceStatus { .. })
        ));
    }
}
