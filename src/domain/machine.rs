//! What a change does to a payment, decided without I/O.
//!
//! [`decide`] takes the payment as it is held (read under its lock) and a [`Change`] (what the
//! rail, the client or the dispatcher says happened) and returns the [`Decision`]: the
//! payment as it is to be written, and every effect the change has, as data. The engine
//! (`crate::engine`) is the one place that reads, decides and writes; nothing here touches a
//! store, so every rule of a payment's life can be read and tested in this file alone.

use super::state::{self, Event, State};
use super::{Failure, FailureCode, Payment};
use railgate_rail::Settled;
use uuid::Uuid;

/// Something that happened to a payment.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Routed: a dispatch job is written with it.
    Queue,
    /// An expected collection waits for the payer from the start.
    AwaitPayer,
    /// An attempt was stored and is being sent (or sent again under the same id).
    Submit,
    /// The rail accepted the attempt; the outcome comes later.
    Accept {
        attempt: Option<Uuid>,
        rail_reference: Option<String>,
    },
    /// The rail confirmed the money moved.
    Complete {
        attempt: Option<Uuid>,
        settled: Settled,
    },
    /// The rail (or we, before sending) established that no money moved.
    Fail {
        attempt: Option<Uuid>,
        failure: Failure,
    },
    /// We cannot tell whether money moved.
    LoseTrack { attempt: Uuid, why: String },
    /// The outcome stayed unknown past the attempt's deadline: an operator must settle it.
    RaiseException { attempt: Uuid, why: String },
    /// The rail (or a bank file) said something the payment as held contradicts: recorded
    /// for an operator, nothing else changes.
    Contradict {
        claimed: &'static str,
        detail: Option<String>,
    },
    /// The client cancelled before submission.
    Cancel,
    /// A completed payment was refunded or returned.
    Reverse,
    /// An operator asks the rail again about a payment awaiting one: the payment's job is
    /// due now and, with an exception raised, only inquires (never a resend). The history
    /// notes who asked and why; the state does not move.
    AskRail,
    /// An operator states the outcome of a payment awaiting one, from evidence. It moves the
    /// payment as the rail's own answer would: the same postings, event and attempt.
    Settle {
        attempt: Option<Uuid>,
        finding: Finding,
    },
}

/// What an operator established from evidence (a statement line, a receipt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The money moved; the receipt that shows it, when the evidence is one.
    Completed { receipt: Option<String> },
    /// No money moved, for the reason given.
    Failed { reason: String },
}

/// Whether an operator may act on the payment: it is not final, and its outcome is unknown
/// or a rail left it waiting for one (an exception, or a contradiction that stopped it short
/// of a final state). Anything else belongs to the rail's own answers.
pub fn awaits_operator(p: &Payment) -> bool {
    operator_may_act(p.state, p.exception.is_some(), p.conflict.is_some())
}

/// [`awaits_operator`] from the state and whether an exception or a conflict is recorded.
pub fn operator_may_act(state: State, exception: bool, conflict: bool) -> bool {
    !state.is_final() && (state == State::Unknown || exception || conflict)
}

/// Whether the payment has an attempt the rail can be asked about (it was sent).
pub fn was_sent(state: State) -> bool {
    matches!(state, State::Submitted | State::Pending | State::Unknown)
}

/// What applying a change came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed {
        from: State,
        to: State,
    },
    /// Already so: nothing changed.
    Duplicate,
    /// The rail contradicted what we hold; recorded on the payment.
    Conflict,
    /// Not applicable in the payment's state; nothing changed.
    Ignored,
    /// Noted in the history (who asked for what, and why); the state did not move.
    Noted,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Changed { .. } => "applied",
            Applied::Duplicate => "duplicate",
            Applied::Conflict => "conflict",
            Applied::Ignored => "ignored",
            Applied::Noted => "noted",
        }
    }

    pub fn changed(self) -> bool {
        matches!(self, Applied::Changed { .. })
    }
}

/// What an attempt row is to become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptWrite {
    /// Settled, or no longer known, with the rail's reference or the reason when given.
    Status {
        attempt: Uuid,
        status: AttemptStatus,
        rail_reference: Option<String>,
        why: Option<String>,
    },
    /// Accepted, unless a callback already settled it or moved it to its next step.
    Accepted {
        attempt: Uuid,
        rail_reference: Option<String>,
    },
}

/// The states of an attempt the engine writes (the dispatcher writes the others while sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    Completed,
    Failed,
    Unknown,
}

/// A contradiction recorded for an operator (it becomes a reconciliation break).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub held: State,
    pub claimed: &'static str,
    pub detail: Option<String>,
    /// The note on the payment.
    pub summary: String,
    /// The rail reported another amount or currency than the payment's.
    pub amount: bool,
}

/// One consequence of a change, run by the engine in the change's transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Attempt(AttemptWrite),
    Conflict(Conflict),
    /// Where the rail's failure is not its last word, ask it again later.
    Recheck {
        attempt: Uuid,
    },
    /// The ledger's postings for arriving in `to` from `from`.
    Post {
        from: State,
        to: State,
    },
    /// The event for the core that arriving in `to` announces.
    Announce {
        to: State,
    },
    /// The operator was called in: `payment.exception` for the core.
    AnnounceException,
    /// A payroll item reached a final state: the payroll may be done.
    PayrollProgress {
        payroll: Uuid,
    },
    /// The payment's dispatch job, due now.
    Dispatch,
    /// The payment is final: its dispatch job, unless a dispatcher holds it, has nothing left
    /// to do and goes (rather than being claimed later only to be finished).
    StopDriving,
}

/// The decision: the payment as it is to be written (when it changed), the history line,
/// and the effects.
#[derive(Debug, Clone)]
pub struct Decision {
    pub applied: Applied,
    /// The payment to write back, when any of its fields changed.
    pub write: Option<Payment>,
    /// The line to add to the history: a transition (a self-transition adds none), or a note
    /// from an operator (from = to) with no write of the payment.
    pub history: Option<(State, State, String)>,
    pub effects: Vec<Effect>,
}

impl Decision {
    fn nothing(applied: Applied) -> Decision {
        Decision {
            applied,
            write: None,
            history: None,
            effects: Vec::new(),
        }
    }
}

/// Decides what `change` does to `held` (the payment as read under its lock). `cause` names
/// who says so; it goes into the history.
pub fn decide(held: &Payment, change: &Change, cause: &str) -> Decision {
    match change {
        Change::Complete { attempt, settled } => complete(held, *attempt, settled, cause),
        Change::Fail { attempt, failure } => fail(held, *attempt, failure, cause),
        Change::Accept {
            attempt,
            rail_reference,
        } => accept(held, *attempt, rail_reference.as_deref(), cause),
        Change::LoseTrack { attempt, why } => lose_track(held, *attempt, why, cause),
        Change::RaiseException { attempt, why } => raise_exception(held, *attempt, why, cause),
        Change::Queue => plain(held, Event::Queue, cause, true),
        Change::Submit => match state::next(held.state, Event::Submit) {
            Ok(to) if held.state == State::Queued => moved(held, to, cause, |_| {}, Vec::new()),
            // A resend of the same attempt: the pending posting and the announcement were
            // made by its first send; only the history notes that it went out again.
            Ok(to) => Decision {
                applied: Applied::Changed {
                    from: held.state,
                    to,
                },
                history: (held.state != to).then(|| (held.state, to, cause.to_owned())),
                write: (held.state != to).then(|| {
                    let mut p = held.clone();
                    p.state = to;
                    p
                }),
                effects: Vec::new(),
            },
            Err(_) => Decision::nothing(Applied::Ignored),
        },
        Change::AwaitPayer => plain(held, Event::Accept, cause, false),
        Change::Cancel => plain(held, Event::Cancel, cause, false),
        Change::Contradict { claimed, detail } => conflict(
            held,
            Conflict {
                held: held.state,
                claimed,
                detail: detail.clone(),
                summary: format!(
                    "rail reported {claimed} while the payment is {}",
                    held.state
                ),
                amount: false,
            },
        ),
        Change::Reverse => match state::next(held.state, Event::Reverse) {
            Ok(to) => moved(held, to, cause, |_| {}, Vec::new()),
            Err(_) if held.state == State::Reversed => Decision::nothing(Applied::Duplicate),
            Err(_) => Decision::nothing(Applied::Ignored),
        },
        Change::AskRail => ask_rail(held, cause),
        Change::Settle { attempt, finding } => settle(held, *attempt, finding, cause),
    }
}

/// Only a payment with an attempt to ask about (sent, accepted or unknown) is asked again.
fn ask_rail(held: &Payment, cause: &str) -> Decision {
    if !was_sent(held.state) || !awaits_operator(held) {
        return Decision::nothing(Applied::Ignored);
    }
    Decision {
        applied: Applied::Noted,
        write: None,
        history: Some((held.state, held.state, cause.to_owned())),
        effects: vec![Effect::Dispatch],
    }
}

/// An operator's finding moves the payment as the rail's answer would (`moved`: postings,
/// event, payroll progress), writes the attempt's outcome, and settles the exception and the
/// contradiction it answers. Refused (nothing changes) unless the payment awaits an operator.
fn settle(held: &Payment, attempt: Option<Uuid>, finding: &Finding, cause: &str) -> Decision {
    if !awaits_operator(held) {
        return Decision::nothing(Applied::Ignored);
    }
    let (event, status, why) = match finding {
        Finding::Completed { .. } => (Event::Complete, AttemptStatus::Completed, None),
        Finding::Failed { reason } => (Event::Fail, AttemptStatus::Failed, Some(reason.clone())),
    };
    let Ok(to) = state::next(held.state, event) else {
        return Decision::nothing(Applied::Ignored);
    };
    let mut cause = cause.to_owned();
    if let Some(c) = &held.conflict {
        cause.push_str(&format!(" (settles the conflict: {c})"));
    }
    let extra = attempt
        .map(|a| {
            vec![Effect::Attempt(AttemptWrite::Status {
                attempt: a,
                status,
                rail_reference: None,
                why: why.clone(),
            })]
        })
        .unwrap_or_default();
    moved(
        held,
        to,
        &cause,
        |p| {
            p.conflict = None;
            match finding {
                Finding::Completed { receipt } => {
                    if receipt.is_some() {
                        p.receipt.clone_from(receipt);
                    }
                }
                Finding::Failed { reason } => {
                    p.failure = Some(Failure::new(
                        FailureCode::RailRejected,
                        format!("settled as failed by an operator: {reason}"),
                        None,
                    ));
                }
            }
        },
        extra,
    )
}

/// A move with no side of its own: refused moves change nothing.
fn plain(held: &Payment, event: Event, cause: &str, dispatch: bool) -> Decision {
    match state::next(held.state, event) {
        Ok(to) => {
            let extra = if dispatch {
                vec![Effect::Dispatch]
            } else {
                Vec::new()
            };
            moved(held, to, cause, |_| {}, extra)
        }
        Err(_) => Decision::nothing(Applied::Ignored),
    }
}

fn complete(held: &Payment, attempt: Option<Uuid>, settled: &Settled, cause: &str) -> Decision {
    if let Some(reported) = settled.amount {
        // Every path that completes a payment (callbacks, inquiry and submission answers,
        // batch results, files) comes here, so the rail's amount is compared in one place.
        if reported != held.amount {
            let detail = format!(
                "the rail reported {reported} for a payment of {}",
                held.amount
            );
            return conflict(
                held,
                Conflict {
                    held: held.state,
                    claimed: "completed",
                    summary: format!("{detail}: not completed; an operator must settle it"),
                    detail: Some(detail),
                    amount: true,
                },
            );
        }
    }
    match state::next(held.state, Event::Complete) {
        Ok(to) => {
            let mut extra = Vec::new();
            if let Some(a) = attempt {
                extra.push(Effect::Attempt(AttemptWrite::Status {
                    attempt: a,
                    status: AttemptStatus::Completed,
                    rail_reference: settled.rail_reference.clone(),
                    why: None,
                }));
            }
            moved(
                held,
                to,
                cause,
                |p| {
                    if settled.rail_reference.is_some() {
                        p.rail_reference.clone_from(&settled.rail_reference);
                    }
                    if settled.receipt.is_some() {
                        p.receipt.clone_from(&settled.receipt);
                    }
                },
                extra,
            )
        }
        Err(_) if matches!(held.state, State::Completed | State::Reversed) => {
            Decision::nothing(Applied::Duplicate)
        }
        Err(_) => conflict(
            held,
            Conflict {
                held: held.state,
                claimed: "completed",
                detail: settled.receipt.clone(),
                summary: format!(
                    "rail reported completed while the payment is {}",
                    held.state
                ),
                amount: false,
            },
        ),
    }
}

fn fail(held: &Payment, attempt: Option<Uuid>, failure: &Failure, cause: &str) -> Decision {
    match state::next(held.state, Event::Fail) {
        Ok(to) => {
            let mut extra = Vec::new();
            if let Some(a) = attempt {
                extra.push(Effect::Attempt(AttemptWrite::Status {
                    attempt: a,
                    status: AttemptStatus::Failed,
                    rail_reference: None,
                    why: Some(failure.reason.clone()),
                }));
                extra.push(Effect::Recheck { attempt: a });
            }
            moved(
                held,
                to,
                cause,
                |p| p.failure = Some(failure.clone()),
                extra,
            )
        }
        Err(_) if matches!(held.state, State::Failed | State::Cancelled) => {
            Decision::nothing(Applied::Duplicate)
        }
        Err(_) => conflict(
            held,
            Conflict {
                held: held.state,
                claimed: "failed",
                detail: Some(format!("{}: {}", failure.code.as_str(), failure.reason)),
                summary: format!("rail reported failed while the payment is {}", held.state),
                amount: false,
            },
        ),
    }
}

fn accept(
    held: &Payment,
    attempt: Option<Uuid>,
    rail_reference: Option<&str>,
    cause: &str,
) -> Decision {
    // The payment first: an answer that arrives after a callback already settled it must not
    // move the attempt back from completed or failed.
    match state::next(held.state, Event::Accept) {
        Ok(to) => {
            let mut extra = Vec::new();
            if let Some(a) = attempt {
                extra.push(Effect::Attempt(AttemptWrite::Accepted {
                    attempt: a,
                    rail_reference: rail_reference.map(str::to_owned),
                }));
            }
            moved(
                held,
                to,
                cause,
                |p| {
                    if let Some(r) = rail_reference {
                        p.rail_reference = Some(r.to_owned());
                    }
                },
                extra,
            )
        }
        Err(_) => Decision::nothing(Applied::Ignored),
    }
}

fn lose_track(held: &Payment, attempt: Uuid, why: &str, cause: &str) -> Decision {
    let unknown = Effect::Attempt(AttemptWrite::Status {
        attempt,
        status: AttemptStatus::Unknown,
        rail_reference: None,
        why: Some(why.to_owned()),
    });
    match state::next(held.state, Event::LoseTrack) {
        Ok(to) => moved(held, to, cause, |_| {}, vec![unknown]),
        // Already unknown: the attempt says so too. A late timeout must not overwrite an
        // attempt a callback settled, so a final payment's attempt is left alone.
        Err(_) if !held.state.is_final() => Decision {
            applied: Applied::Ignored,
            write: None,
            history: None,
            effects: vec![unknown],
        },
        Err(_) => Decision::nothing(Applied::Ignored),
    }
}

/// Unknown past the deadline: unknown it stays, with the operator called in, unless the
/// payment was settled meanwhile (a callback): no exception on it then. An exception already
/// raised (an operator asked the rail again and it still gave no answer) is not announced a
/// second time.
fn raise_exception(held: &Payment, attempt: Uuid, why: &str, cause: &str) -> Decision {
    let mut d = lose_track(held, attempt, why, cause);
    if held.state.is_final() {
        return d;
    }
    let raised = held.exception.is_some();
    let mut p = d.write.take().unwrap_or_else(|| held.clone());
    p.exception = Some(why.to_owned());
    d.write = Some(p);
    if !raised {
        d.effects.push(Effect::AnnounceException);
    }
    d
}

fn conflict(held: &Payment, c: Conflict) -> Decision {
    let mut p = held.clone();
    p.conflict = Some(c.summary.clone());
    Decision {
        applied: Applied::Conflict,
        write: Some(p),
        history: None,
        effects: vec![Effect::Conflict(c)],
    }
}

/// A permitted move to `to`: the payment with `edit` applied, the history line, what arriving
/// there posts and announces, and `extra` effects.
fn moved(
    held: &Payment,
    to: State,
    cause: &str,
    edit: impl FnOnce(&mut Payment),
    extra: Vec<Effect>,
) -> Decision {
    let from = held.state;
    let mut p = held.clone();
    p.state = to;
    edit(&mut p);
    let mut cause = cause.to_owned();
    if to.is_final() {
        if let Some(why) = p.exception.take() {
            // A late final answer settles what the operator was called in for; the exception
            // stays in the history, on the transition that settled it.
            cause.push_str(&format!(" (settles the exception: {why})"));
        }
    }
    let mut effects = extra;
    // Arriving in these states neither posts nor is announced.
    let posts_or_tells = match to {
        State::Received | State::Queued | State::Pending => false,
        State::Submitted
        | State::Completed
        | State::Failed
        | State::Unknown
        | State::Cancelled
        | State::Reversed => true,
    };
    if posts_or_tells {
        effects.push(Effect::Post { from, to });
        effects.push(Effect::Announce { to });
        if let (true, Some(payroll)) = (to.is_final(), p.payroll_id) {
            effects.push(Effect::PayrollProgress { payroll });
        }
        if to.is_final() {
            effects.push(Effect::StopDriving);
        }
    }
    Decision {
        applied: Applied::Changed { from, to },
        history: (from != to).then_some((from, to, cause)),
        write: Some(p),
        effects,
    }
}

/// A new payment as it is created and routed in one step: received, then queued (or, for an
/// expected collection, pending: it waits for the payer), with both lines of its history.
/// Arriving in either state neither posts nor is announced, so the two steps need nothing
/// between them.
#[allow(clippy::too_many_arguments)]
pub fn routed(
    id: Uuid,
    client_id: Uuid,
    new: &super::NewPayment,
    rail: Option<String>,
    payment_reference: Option<String>,
    expected: bool,
    at: chrono::DateTime<chrono::Utc>,
    created: &str,
    routed: &str,
) -> Payment {
    let event = if expected {
        Event::Accept
    } else {
        Event::Queue
    };
    // Both are permitted from `received` (the state machine's own table says so).
    let to = state::next(State::Received, event).unwrap_or(State::Queued);
    Payment {
        id,
        client_id,
        direction: new.direction,
        mode: new.mode,
        state: to,
        reference: new.reference.clone(),
        amount: new.amount,
        party: new.party.clone(),
        narrative: new.narrative.clone(),
        rail,
        metadata: new.metadata.clone(),
        payment_reference,
        failure: None,
        receipt: None,
        rail_reference: None,
        exception: None,
        conflict: None,
        payroll_id: new.payroll_id,
        created_at: at,
        updated_at: at,
        history: vec![
            super::Transition {
                from: None,
                to: State::Received,
                cause: created.to_owned(),
                at,
            },
            super::Transition {
                from: Some(State::Received),
                to,
                cause: routed.to_owned(),
                at,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, Direction, FailureCode, Money, Party, PartyIdType};

    fn payment(state: State) -> Payment {
        let currency: Currency = "KES".parse().unwrap_or_else(|_| unreachable!());
        Payment {
            id: Uuid::nil(),
            client_id: Uuid::nil(),
            direction: Direction::Disbursement,
            mode: None,
            state,
            reference: "r".into(),
            amount: Money::from_minor(1000, currency).unwrap_or_else(|_| unreachable!()),
            party: Party::new(PartyIdType::Msisdn, "254700000001", None)
                .unwrap_or_else(|_| unreachable!()),
            narrative: None,
            rail: Some("mock".into()),
            metadata: serde_json::Map::new(),
            payment_reference: None,
            failure: None,
            receipt: None,
            rail_reference: None,
            exception: None,
            conflict: None,
            payroll_id: Some(Uuid::from_u128(7)),
            created_at: chrono::DateTime::default(),
            updated_at: chrono::DateTime::default(),
            history: Vec::new(),
        }
    }

    fn settled(minor: Option<i64>) -> Settled {
        let currency: Currency = "KES".parse().unwrap_or_else(|_| unreachable!());
        Settled {
            rail_reference: Some("R1".into()),
            receipt: Some("RC".into()),
            amount: minor
                .map(|m| Money::from_minor(m, currency).unwrap_or_else(|_| unreachable!())),
        }
    }

    #[test]
    fn completing_posts_announces_and_counts_the_payroll_item() {
        let a = Uuid::from_u128(1);
        let d = decide(
            &payment(State::Pending),
            &Change::Complete {
                attempt: Some(a),
                settled: settled(Some(1000)),
            },
            "test",
        );
        assert_eq!(
            d.applied,
            Applied::Changed {
                from: State::Pending,
                to: State::Completed
            }
        );
        let p = d.write.unwrap_or_else(|| unreachable!());
        assert_eq!(p.receipt.as_deref(), Some("RC"));
        assert!(d.effects.contains(&Effect::Post {
            from: State::Pending,
            to: State::Completed
        }));
        assert!(d.effects.contains(&Effect::PayrollProgress {
            payroll: Uuid::from_u128(7)
        }));
    }

    #[test]
    fn another_amount_is_a_conflict_never_a_completion() {
        let d = decide(
            &payment(State::Pending),
            &Change::Complete {
                attempt: None,
                settled: settled(Some(999)),
            },
            "test",
        );
        assert_eq!(d.applied, Applied::Conflict);
        assert_eq!(d.write.map(|p| p.state), Some(State::Pending));
        assert!(!d.effects.iter().any(|e| matches!(e, Effect::Post { .. })));
    }

    #[test]
    fn a_late_final_answer_settles_the_exception_in_the_history() {
        let mut held = payment(State::Unknown);
        held.exception = Some("deadline".into());
        let d = decide(
            &held,
            &Change::Fail {
                attempt: None,
                failure: Failure::new(FailureCode::Declined, "no", None),
            },
            "cb",
        );
        let (_, _, cause) = d.history.unwrap_or_else(|| unreachable!());
        assert!(cause.contains("settles the exception: deadline"));
        assert_eq!(d.write.and_then(|p| p.exception), None);
    }

    #[test]
    fn a_settled_payment_gets_no_exception() {
        let d = decide(
            &payment(State::Completed),
            &Change::RaiseException {
                attempt: Uuid::nil(),
                why: "late".into(),
            },
            "deadline",
        );
        assert!(d.write.is_none());
        assert!(d.effects.is_empty());
    }

    #[test]
    fn a_resend_writes_no_history() {
        let d = decide(&payment(State::Submitted), &Change::Submit, "again");
        assert!(d.history.is_none());
        assert!(d.applied.changed());
    }

    fn exception(state: State) -> Payment {
        let mut p = payment(state);
        p.exception = Some("no answer by the deadline".into());
        p
    }

    fn ledger_and_event(d: &Decision) -> Vec<Effect> {
        d.effects
            .iter()
            .filter(|e| matches!(e, Effect::Post { .. } | Effect::Announce { .. }))
            .cloned()
            .collect()
    }

    #[test]
    fn an_operator_settles_completed_as_the_rail_would() {
        let a = Uuid::from_u128(1);
        let held = exception(State::Unknown);
        let by_rail = decide(
            &held,
            &Change::Complete {
                attempt: Some(a),
                settled: settled(None),
            },
            "rail",
        );
        let by_operator = decide(
            &held,
            &Change::Settle {
                attempt: Some(a),
                finding: Finding::Completed {
                    receipt: Some("RCPT-9".into()),
                },
            },
            "operator key k: seen on the statement",
        );
        assert_eq!(by_operator.applied, by_rail.applied);
        assert_eq!(ledger_and_event(&by_operator), ledger_and_event(&by_rail));
        assert!(by_operator
            .effects
            .contains(&Effect::Attempt(AttemptWrite::Status {
                attempt: a,
                status: AttemptStatus::Completed,
                rail_reference: None,
                why: None,
            })));
        assert!(by_operator.effects.contains(&Effect::PayrollProgress {
            payroll: Uuid::from_u128(7)
        }));
        let (from, to, cause) = by_operator.history.unwrap_or_else(|| unreachable!());
        assert_eq!((from, to), (State::Unknown, State::Completed));
        assert!(cause.starts_with("operator key k: seen on the statement"));
        assert!(cause.contains("settles the exception"));
        let p = by_operator.write.unwrap_or_else(|| unreachable!());
        assert_eq!(p.receipt.as_deref(), Some("RCPT-9"));
        assert_eq!(p.exception, None);
    }

    #[test]
    fn an_operator_settles_failed_as_the_rail_would() {
        let a = Uuid::from_u128(1);
        let held = exception(State::Unknown);
        let d = decide(
            &held,
            &Change::Settle {
                attempt: Some(a),
                finding: Finding::Failed {
                    reason: "the bank returned it".into(),
                },
            },
            "operator",
        );
        assert_eq!(
            d.applied,
            Applied::Changed {
                from: State::Unknown,
                to: State::Failed
            }
        );
        assert!(d.effects.contains(&Effect::Post {
            from: State::Unknown,
            to: State::Failed
        }));
        assert!(d.effects.contains(&Effect::Announce { to: State::Failed }));
        // The operator's word is final: no re-check of the rail is scheduled.
        assert!(!d
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Recheck { .. })));
        let p = d.write.unwrap_or_else(|| unreachable!());
        let failure = p.failure.unwrap_or_else(|| unreachable!());
        assert!(failure.reason.contains("the bank returned it"));
    }

    #[test]
    fn an_operator_settles_only_what_awaits_one() {
        let finding = Finding::Completed { receipt: None };
        for state in [
            State::Queued,
            State::Submitted,
            State::Pending,
            State::Completed,
            State::Failed,
            State::Cancelled,
            State::Reversed,
        ] {
            let d = decide(
                &payment(state),
                &Change::Settle {
                    attempt: None,
                    finding: finding.clone(),
                },
                "operator",
            );
            assert_eq!(d.applied, Applied::Ignored, "{state}");
            assert!(d.write.is_none() && d.effects.is_empty(), "{state}");
        }
        // Unknown before its deadline (no exception yet) may be settled too.
        let d = decide(
            &payment(State::Unknown),
            &Change::Settle {
                attempt: None,
                finding,
            },
            "operator",
        );
        assert!(d.applied.changed());
    }

    #[test]
    fn settling_a_contradicted_payment_settles_the_conflict() {
        let mut held = payment(State::Pending);
        held.conflict = Some("the rail reported 99.00".into());
        let d = decide(
            &held,
            &Change::Settle {
                attempt: None,
                finding: Finding::Completed { receipt: None },
            },
            "operator",
        );
        assert!(d.applied.changed());
        let (_, _, cause) = d.history.unwrap_or_else(|| unreachable!());
        assert!(cause.contains("settles the conflict: the rail reported 99.00"));
        assert_eq!(d.write.and_then(|p| p.conflict), None);
    }

    #[test]
    fn asking_the_rail_again_notes_it_and_dispatches() {
        let d = decide(
            &exception(State::Unknown),
            &Change::AskRail,
            "operator: why",
        );
        assert_eq!(d.applied, Applied::Noted);
        assert!(d.write.is_none());
        assert_eq!(
            d.history,
            Some((State::Unknown, State::Unknown, "operator: why".to_owned()))
        );
        assert_eq!(d.effects, vec![Effect::Dispatch]);
    }

    #[test]
    fn asking_the_rail_again_is_refused_where_nothing_awaits_an_operator() {
        let mut queued = payment(State::Queued);
        queued.conflict = Some("odd".into());
        for held in [payment(State::Pending), payment(State::Completed), queued] {
            let d = decide(&held, &Change::AskRail, "operator");
            assert_eq!(d.applied, Applied::Ignored, "{}", held.state);
            assert!(d.history.is_none() && d.effects.is_empty());
        }
    }

    #[test]
    fn an_exception_is_announced_once() {
        let change = Change::RaiseException {
            attempt: Uuid::nil(),
            why: "late".into(),
        };
        let first = decide(&payment(State::Unknown), &change, "deadline");
        assert!(first.effects.contains(&Effect::AnnounceException));
        let again = decide(&exception(State::Unknown), &change, "deadline");
        assert!(!again.effects.contains(&Effect::AnnounceException));
    }
}
