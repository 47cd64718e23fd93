//! The sandbox scenario table, chosen by the last two digits of the party's identifier, and
//! what each scenario does at acceptance and afterwards.

use super::MockRailConfig;
use crate::wire::{MockCode, MockStatus};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// 00 and anything not listed.
    Success,
    /// 01
    InsufficientFunds,
    /// 02: refused synchronously.
    PartyNotFound,
    /// 03: the party refused.
    Declined,
    /// 04
    PendingThenSuccess,
    /// 05: no callback; inquiry shows success.
    SilentSuccess,
    /// 06: no callback; inquiry shows failure.
    SilentFailure,
    /// 07: the success callback three times.
    TripleCallback,
    /// 08: one callback with a wrong signature; inquiry shows success.
    ForgedCallback,
    /// 09: 503 to the first two posts of the request id, then accepted.
    UnavailableTwice,
    /// 10: accepted and paid, but the answer never fully arrives.
    DropConnection,
    /// 11: a failure callback, then a success callback.
    Conflict,
    /// 12: accepted; the inquiry never answers.
    InquiryHangs,
    /// 14: a success whose reversal the rail refuses.
    ReversalRefused,
    /// 15: a success whose reversal is executed, but its answer is lost (the connection drops).
    ReversalAnswerLost,
}

/// Something the rail does after acceptance, `at` after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub at: Duration,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// A pending payment completes: money moves.
    Settle,
    /// Post a callback (`copies` deliveries with distinct event ids).
    Notify {
        status: MockStatus,
        code: Option<MockCode>,
        copies: u8,
        forged: bool,
    },
}

impl Action {
    fn notify(status: MockStatus, code: Option<MockCode>) -> Action {
        Action::Notify {
            status,
            code,
            copies: 1,
            forged: false,
        }
    }
}

impl Scenario {
    pub(crate) fn from_digits(digits: u8) -> Scenario {
        match digits {
            1 => Scenario::InsufficientFunds,
            2 => Scenario::PartyNotFound,
            3 => Scenario::Declined,
            4 => Scenario::PendingThenSuccess,
            5 => Scenario::SilentSuccess,
            6 => Scenario::SilentFailure,
            7 => Scenario::TripleCallback,
            8 => Scenario::ForgedCallback,
            9 => Scenario::UnavailableTwice,
            10 => Scenario::DropConnection,
            11 => Scenario::Conflict,
            12 => Scenario::InquiryHangs,
            14 => Scenario::ReversalRefused,
            15 => Scenario::ReversalAnswerLost,
            _ => Scenario::Success,
        }
    }

    /// The rail's own view of the payment once accepted (what an inquiry shows).
    pub(crate) fn initial(self) -> (MockStatus, Option<MockCode>) {
        match self {
            Scenario::Success
            | Scenario::SilentSuccess
            | Scenario::TripleCallback
            | Scenario::ForgedCallback
            | Scenario::UnavailableTwice
            | Scenario::DropConnection
            | Scenario::ReversalRefused
            | Scenario::ReversalAnswerLost
            // The rail paid; its failure callback is the lie the gateway must catch.
            | Scenario::Conflict => (MockStatus::Success, None),
            Scenario::InsufficientFunds => (MockStatus::Failed, Some(MockCode::InsufficientFunds)),
            Scenario::Declined => (MockStatus::Failed, Some(MockCode::Declined)),
            Scenario::SilentFailure => (MockStatus::Failed, Some(MockCode::Expired)),
            Scenario::PartyNotFound => (MockStatus::Rejected, Some(MockCode::PartyNotFound)),
            Scenario::PendingThenSuccess | Scenario::InquiryHangs => (MockStatus::Pending, None),
        }
    }

    /// What happens after acceptance, in time order.
    pub(crate) fn timeline(self, config: &MockRailConfig) -> Vec<Step> {
        let callback = Duration::from_millis(config.callback_delay_ms);
        let step = |at, action| Step { at, action };
        match self {
            Scenario::Success
            | Scenario::UnavailableTwice
            | Scenario::ReversalRefused
            | Scenario::ReversalAnswerLost => {
                vec![step(callback, Action::notify(MockStatus::Success, None))]
            }
            Scenario::InsufficientFunds => vec![step(
                callback,
                Action::notify(MockStatus::Failed, Some(MockCode::InsufficientFunds)),
            )],
            Scenario::Declined => vec![step(
                callback,
                Action::notify(MockStatus::Failed, Some(MockCode::Declined)),
            )],
            Scenario::PendingThenSuccess => {
                let settle = Duration::from_millis(config.pending_delay_ms).max(callback);
                vec![
                    step(callback, Action::notify(MockStatus::Pending, None)),
                    step(settle, Action::Settle),
                    step(settle, Action::notify(MockStatus::Success, None)),
                ]
            }
            Scenario::TripleCallback => vec![step(
                callback,
                Action::Notify {
                    status: MockStatus::Success,
                    code: None,
                    copies: 3,
                    forged: false,
                },
            )],
            Scenario::ForgedCallback => vec![step(
                callback,
                Action::Notify {
                    status: MockStatus::Success,
                    code: None,
                    copies: 1,
                    forged: true,
                },
            )],
            Scenario::Conflict => vec![
                step(
                    callback,
                    Action::notify(MockStatus::Failed, Some(MockCode::Declined)),
                ),
                step(
                    callback.saturating_add(Duration::from_millis(config.conflict_delay_ms)),
                    Action::notify(MockStatus::Success, None),
                ),
            ],
            // No callback: the gateway learns the outcome only by asking (05, 06, 10) or
            // never (12); 02 was answered synchronously.
            Scenario::PartyNotFound
            | Scenario::SilentSuccess
            | Scenario::SilentFailure
            | Scenario::DropConnection
            | Scenario::InquiryHangs => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};

    #[test]
    fn digits_pick_the_table_row() {
        assert_eq!(Scenario::from_digits(0), Scenario::Success);
        assert_eq!(Scenario::from_digits(13), Scenario::Success);
        assert_eq!(Scenario::from_digits(99), Scenario::Success);
        assert_eq!(Scenario::from_digits(9), Scenario::UnavailableTwice);
        assert_eq!(Scenario::from_digits(12), Scenario::InquiryHangs);
    }

    #[test]
    fn timelines_are_in_time_order() {
        let config = MockRailConfig {
            pending_delay_ms: 10,
            ..MockRailConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), "s")
        };
        for digits in 0..=13 {
            let steps = Scenario::from_digits(digits).timeline(&config);
            assert!(
                steps
                    .windows(2)
                    .all(|w| matches!(w, [a, b] if a.at <= b.at)),
                "{digits}"
            );
        }
    }
}
