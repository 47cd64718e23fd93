//! The payment state machine (DESIGN §2): pure, exhaustive, and the only place that decides
//! whether a change of state is allowed.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Received,
    Queued,
    Submitted,
    Pending,
    Completed,
    Failed,
    /// An attempt's outcome is not known: only an inquiry or a statement may move it.
    Unknown,
    Cancelled,
    Reversed,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Received,
        State::Queued,
        State::Submitted,
        State::Pending,
        State::Completed,
        State::Failed,
        State::Unknown,
        State::Cancelled,
        State::Reversed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Queued => "queued",
            State::Submitted => "submitted",
            State::Pending => "pending",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Unknown => "unknown",
            State::Cancelled => "cancelled",
            State::Reversed => "reversed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.iter().copied().find(|st| st.as_str() == s)
    }

    /// Final states never change, except completed → reversed.
    pub fn is_final(self) -> bool {
        match self {
            State::Completed | State::Failed | State::Cancelled | State::Reversed => true,
            State::Received
            | State::Queued
            | State::Submitted
            | State::Pending
            | State::Unknown => false,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happens to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Routed and its first dispatch job written.
    Queue,
    /// An attempt was stored and is being sent to the rail.
    Submit,
    /// The rail accepted the attempt; the outcome comes later.
    Accept,
    /// The rail confirmed the money moved.
    Complete,
    /// The rail (or we, before sending) established that no money moved.
    Fail,
    /// We cannot tell whether money moved.
    LoseTrack,
    /// The client cancelled before submission.
    Cancel,
    /// A completed payment was refunded or returned.
    Reverse,
}

/// Why a transition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} payment cannot {event:?}")]
pub struct Refused {
    pub from: State,
    pub event: Event,
}

/// The next state for `event` in `from`, or why not.
pub fn next(from: State, event: Event) -> Result<State, Refused> {
    use Event as E;
    use State as S;
    let to = match (from, event) {
        (S::Received, E::Queue) => S::Queued,
        // An expected collection waits for the payer from the start.
        (S::Received, E::Accept) => S::Pending,
        (S::Received | S::Queued, E::Cancel) => S::Cancelled,
        (S::Received | S::Queued, E::Fail) => S::Failed,
        (S::Queued, E::Submit) => S::Submitted,
        // A retry of a stored attempt, or a resend after an inquiry found nothing.
        (S::Submitted | S::Unknown, E::Submit) => S::Submitted,
        (S::Submitted | S::Unknown, E::Accept) => S::Pending,
        (S::Pending, E::Accept) => S::Pending,
        (S::Submitted | S::Pending | S::Unknown, E::Complete) => S::Completed,
        (S::Submitted | S::Pending | S::Unknown, E::Fail) => S::Failed,
        (S::Submitted | S::Pending, E::LoseTrack) => S::Unknown,
        (S::Completed, E::Reverse) => S::Reversed,
        (
            S::Received
            | S::Queued
            | S::Submitted
            | S::Pending
            | S::Completed
            | S::Failed
            | S::Unknown
            | S::Cancelled
            | S::Reversed,
            _,
        ) => return Err(Refused { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EVENTS: [Event; 8] = [
        Event::Queue,
        Event::Submit,
        Event::Accept,
        Event::Complete,
        Event::Fail,
        Event::LoseTrack,
        Event::Cancel,
        Event::Reverse,
    ];

    #[test]
    fn the_happy_path() {
        let mut s = State::Received;
        for e in [
            Event::Queue,
            Event::Submit,
            Event::Accept,
            Event::Complete,
            Event::Reverse,
        ] {
            s = next(s, e).unwrap_or_else(|r| unreachable!("{r}"));
        }
        assert_eq!(s, State::Reversed);
    }

    #[test]
    fn cancel_only_before_submission() {
        assert_eq!(next(State::Queued, Event::Cancel), Ok(State::Cancelled));
        assert!(next(State::Submitted, Event::Cancel).is_err());
        assert!(next(State::Pending, Event::Cancel).is_err());
    }

    #[test]
    fn unknown_is_left_only_by_an_answer() {
        assert_eq!(next(State::Unknown, Event::Complete), Ok(State::Completed));
        assert_eq!(next(State::Unknown, Event::Fail), Ok(State::Failed));
        assert!(next(State::Unknown, Event::Cancel).is_err());
        assert!(next(State::Unknown, Event::Queue).is_err());
    }

    proptest! {
        /// No sequence of events moves a final state, except completed → reversed.
        #[test]
        fn final_states_stay_final(events in proptest::collection::vec(0usize..8, 0..40)) {
            let mut s = State::Received;
            for i in events {
                let e = EVENTS[i];
                match next(s, e) {
                    Ok(to) => {
                        if s.is_final() {
                            prop_assert_eq!((s, to), (State::Completed, State::Reversed));
                        }
                        s = to;
                    }
                    Err(r) => prop_assert_eq!(r.from, s),
                }
            }
        }
    }
}
