//! The status of an action and the transitions it may take.
//!
//! ```text
//! NotStarted ──► Running ──► Completed ──► Canceled   (cancel lifts the effect)
//!     │             ├──────► Failed
//!     │             └──────► Canceled                 (cancel stops and reverts)
//!     └────────────────────► Canceled                 (cancel before it ran)
//! ```
//!
//! `Completed → Completed` is also a recorded transition: a revert that finally
//! failed leaves the action completed, and its state row says why.

use std::fmt;

/// Where an action stands. The names are those of Microsoft Graph's
/// `operationStatus`, plus `Canceled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionStatus {
    NotStarted,
    Running,
    Completed,
    Failed,
    Canceled,
}

impl ActionStatus {
    /// Every status, in lifecycle order.
    pub(crate) const ALL: [ActionStatus; 5] = [
        ActionStatus::NotStarted,
        ActionStatus::Running,
        ActionStatus::Completed,
        ActionStatus::Failed,
        ActionStatus::Canceled,
    ];

    /// The stored form, also used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::NotStarted => "NotStarted",
            ActionStatus::Running => "Running",
            ActionStatus::Completed => "Completed",
            ActionStatus::Failed => "Failed",
            ActionStatus::Canceled => "Canceled",
        }
    }

    /// Parses the stored form.
    pub(crate) fn from_stored(value: &str) -> Option<ActionStatus> {
        ActionStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether the lifecycle allows moving from `self` to `next`.
    pub fn can_become(self, next: ActionStatus) -> bool {
        use ActionStatus::*;
        matches!(
            (self, next),
            (NotStarted, Running)
                | (NotStarted, Canceled)
                | (Running, Completed)
                | (Running, Failed)
                | (Running, Canceled)
                | (Completed, Canceled)
                | (Completed, Completed)
        )
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ActionStatus::*;
    use super::*;

    #[test]
    fn stored_form_round_trips() {
        for status in ActionStatus::ALL {
            assert_eq!(ActionStatus::from_stored(status.as_str()), Some(status));
        }
        assert_eq!(ActionStatus::from_stored("notstarted"), None);
    }

    #[test]
    fn failed_and_canceled_actions_go_nowhere() {
        for next in ActionStatus::ALL {
            assert!(!Failed.can_become(next));
            assert!(!Canceled.can_become(next));
        }
    }

    #[test]
    fn an_action_never_returns_to_not_started() {
        for from in ActionStatus::ALL {
            assert!(!from.can_become(NotStarted));
        }
        assert!(!Completed.can_become(Running));
        assert!(NotStarted.can_become(Canceled));
    }
}
