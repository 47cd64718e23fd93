//! Applying what a rail said to a payment, inside the caller's transaction.
//!
//! The dispatcher (answers to submissions and inquiries) and the callbacks inbox both come
//! here, so a completion is recorded the same way whichever path brought it, and a duplicate
//! or a contradiction is recognised in one place.

use crate::domain::{Event, Failure, State};
use crate::store::attempts::{self, Status};
use crate::store::{payments, payments::Moved, Kind, Result};
use crate::{ledger, notify};
use railgate_rail::Settled;
use sqlx::AnyConnection;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed {
        from: State,
        to: State,
    },
    /// Already so: nothing changed.
    Duplicate,
    /// The rail contradicted a final state; recorded on the payment.
    Conflict,
    /// Not applicable in the payment's state; nothing changed.
    Ignored,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Changed { .. } => "applied",
            Applied::Duplicate => "duplicate",
            Applied::Conflict => "conflict",
            Applied::Ignored => "ignored",
        }
    }
}

pub async fn complete(
    conn: &mut AnyConnection,
    kind: Kind,
    payment_id: Uuid,
    attempt_id: Option<Uuid>,
    settled: &Settled,
    cause: &str,
) -> Result<Applied> {
    if let Some(reported) = settled.amount {
        // Every path that completes a payment (callbacks, inquiry and submission answers,
        // batch results, files) passes here, so the rail's amount is compared in one place.
        let (held, expected) = payments::lock_state_and_amount(conn, kind, payment_id).await?;
        if reported != expected {
            let detail = format!("the rail reported {reported} for a payment of {expected}");
            tracing::warn!(payment = %payment_id, "Rail reported another amount; conflict recorded, not completed");
            metrics::counter!("railgate_amount_conflicts_total").increment(1);
            payments::record_conflict_noting(
                conn,
                payment_id,
                held,
                "completed",
                cause,
                Some(&detail),
                &format!("{detail}: not completed; an operator must settle it"),
            )
            .await?;
            return Ok(Applied::Conflict);
        }
    }
    let moved = payments::transition(conn, kind, payment_id, Event::Complete, cause).await?;
    match moved {
        Moved::To { from, to } => {
            payments::set_rail(
                conn,
                payment_id,
                settled.rail_reference.as_deref(),
                settled.receipt.as_deref(),
            )
            .await?;
            if let Some(a) = attempt_id {
                attempts::set_status(
                    conn,
                    a,
                    Status::Completed,
                    settled.rail_reference.as_deref(),
                    None,
                )
                .await?;
            }
            after_transition(conn, payment_id, from, to, cause).await?;
            Ok(Applied::Changed { from, to })
        }
        Moved::Refused {
            held: State::Completed | State::Reversed,
        } => Ok(Applied::Duplicate),
        Moved::Refused { held } => {
            payments::record_conflict(
                conn,
                payment_id,
                held,
                "completed",
                cause,
                settled.receipt.as_deref(),
            )
            .await?;
            Ok(Applied::Conflict)
        }
    }
}

pub async fn fail(
    conn: &mut AnyConnection,
    kind: Kind,
    payment_id: Uuid,
    attempt_id: Option<Uuid>,
    failure: &Failure,
    cause: &str,
) -> Result<Applied> {
    let moved = payments::transition(conn, kind, payment_id, Event::Fail, cause).await?;
    match moved {
        Moved::To { from, to } => {
            payments::set_failure(conn, payment_id, failure).await?;
            if let Some(a) = attempt_id {
                attempts::set_status(conn, a, Status::Failed, None, Some(&failure.reason)).await?;
                // Where the rail's failure is not its last word, ask it again later.
                crate::dispatch::recheck::schedule(conn, payment_id, a).await?;
            }
            after_transition(conn, payment_id, from, to, cause).await?;
            Ok(Applied::Changed { from, to })
        }
        Moved::Refused {
            held: State::Failed | State::Cancelled,
        } => Ok(Applied::Duplicate),
        Moved::Refused { held } => {
            let detail = format!("{}: {}", failure.code.as_str(), failure.reason);
            payments::record_conflict(conn, payment_id, held, "failed", cause, Some(&detail))
                .await?;
            Ok(Applied::Conflict)
        }
    }
}

/// The rail accepted the attempt (or one step of it); the outcome comes later.
pub async fn accept(
    conn: &mut AnyConnection,
    kind: Kind,
    payment_id: Uuid,
    attempt_id: Uuid,
    rail_reference: Option<&str>,
    cause: &str,
) -> Result<Applied> {
    // The payment first (its row is locked on PostgreSQL): an answer that arrives after a
    // callback already settled it must not move the attempt back from completed or failed.
    match payments::transition(conn, kind, payment_id, Event::Accept, cause).await? {
        Moved::To { from, to } => {
            // Nor back from a step a callback already moved it to.
            attempts::mark_accepted(conn, attempt_id, rail_reference).await?;
            payments::set_rail(conn, payment_id, rail_reference, None).await?;
            if from != to {
                after_transition(conn, payment_id, from, to, cause).await?;
            }
            Ok(Applied::Changed { from, to })
        }
        Moved::Refused { .. } => Ok(Applied::Ignored),
    }
}

/// We no longer know whether money moved: only an inquiry or a statement may settle it.
pub async fn lose_track(
    conn: &mut AnyConnection,
    kind: Kind,
    payment_id: Uuid,
    attempt_id: Uuid,
    why: &str,
    cause: &str,
) -> Result<Applied> {
    // As in `accept`: a late timeout must not overwrite an attempt a callback settled.
    match payments::transition(conn, kind, payment_id, Event::LoseTrack, cause).await? {
        Moved::To { from, to } => {
            attempts::set_status(conn, attempt_id, Status::Unknown, None, Some(why)).await?;
            after_transition(conn, payment_id, from, to, cause).await?;
            Ok(Applied::Changed { from, to })
        }
        Moved::Refused { held } if !held.is_final() => {
            // Already unknown: the attempt says so too.
            attempts::set_status(conn, attempt_id, Status::Unknown, None, Some(why)).await?;
            Ok(Applied::Ignored)
        }
        Moved::Refused { .. } => Ok(Applied::Ignored),
    }
}

/// A completed payment was refunded or returned: the reversal is posted and announced.
pub async fn reverse(
    conn: &mut AnyConnection,
    kind: Kind,
    payment_id: Uuid,
    cause: &str,
) -> Result<Applied> {
    match payments::transition(conn, kind, payment_id, Event::Reverse, cause).await? {
        Moved::To { from, to } => {
            after_transition(conn, payment_id, from, to, cause).await?;
            Ok(Applied::Changed { from, to })
        }
        Moved::Refused {
            held: State::Reversed,
        } => Ok(Applied::Duplicate),
        Moved::Refused { .. } => Ok(Applied::Ignored),
    }
}

/// An unknown outcome passed its deadline: written with the exception, for the core and reports.
pub async fn exception_raised(conn: &mut AnyConnection, payment_id: Uuid, why: &str) -> Result<()> {
    tracing::debug!(reason = why, "Exception raised");
    metrics::counter!("railgate_payment_exceptions_total").increment(1);
    let p = payments::get_bare(conn, payment_id).await?;
    notify::emit(
        conn,
        &notify::NewEvent {
            client_id: p.client_id,
            kind: notify::EventType::PaymentException,
            payment_id: Some(p.id),
            payroll_id: p.payroll_id,
            data: notify::events::payment_data(&p),
        },
    )
    .await?;
    Ok(())
}

/// Every state change passes here, inside its transaction: the place where the ledger
/// postings and the events for the core that a change causes are written.
pub async fn after_transition(
    conn: &mut AnyConnection,
    payment_id: Uuid,
    from: State,
    to: State,
    cause: &str,
) -> Result<()> {
    metrics::counter!("railgate_payment_transitions_total", "from" => from.as_str(), "to" => to.as_str())
        .increment(1);
    // Arriving in these states neither posts nor is announced: spare every payment a read.
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
        let mut p = payments::get_bare(conn, payment_id).await?;
        if let (true, Some(why)) = (to.is_final(), p.exception.take()) {
            // A late final answer settles what the operator was called in for; the exception
            // stays in the history, on the transition that settled it.
            payments::clear_exception(conn, payment_id, &why).await?;
        }
        ledger::on_transition(conn, &p, from, to, cause).await?;
        notify::events::payment_transition(conn, &p, to).await?;
        if let (true, Some(payroll)) = (to.is_final(), p.payroll_id) {
            crate::payrolls::item_final(conn, payroll).await?;
        }
    }
    Ok(())
}
