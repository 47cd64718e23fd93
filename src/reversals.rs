//! Reversals the core asks for (`POST /v1/payments/{id}/reversals`): a completed payment's money
//! is given back by its rail, when the rail can reverse.
//!
//! The reversal is stored with its job before anything is sent; its id is the rail's
//! idempotency key, so a resend after a lost answer is recognised as the same reversal, and a
//! lost answer is settled by asking the rail (`inquire_reversal`), never by a second reversal
//! under a new id. Only the rail's confirmation reverses the payment, through
//! the engine (the ledger posts a transfer that names the original, and
//! `payment.reversed` is emitted), in the transaction that records the confirmation. A refusal
//! fails the reversal with the rail's reason and leaves the payment completed; another
//! reversal may then be asked for.
//!
//! Bank returns (`returns.rs`) reverse payments too, without a request of ours.

use crate::domain::{Failure, State};
use crate::engine::{self, Applied, Change};
use crate::rails::Rails;
use crate::store::jobs::{self, JobKind};
use crate::store::reversals::{self, ReversalRow, Status};
use crate::store::Conn;
use crate::store::{now_micros, payments, Kind, Result, StoreError};
use railgate_rail::Settled;
use uuid::Uuid;

/// Why a reversal was not even asked of the rail. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the payment is {0}; only a completed payment can be reversed")]
    NotCompleted(State),
    #[error("the payment is already reversed")]
    AlreadyReversed,
    #[error("reversal {0} of this payment is still in progress")]
    InProgress(Uuid),
    #[error("rail {0} cannot reverse payments")]
    RailCannotReverse(String),
    #[error("the payment has no rail")]
    NoRail,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a reversal of `payment_id` and its job in `tx` (the caller commits, with whatever
/// else belongs to the request, such as its idempotency key).
pub async fn request(
    tx: &mut Conn,
    kind: Kind,
    rails: &Rails,
    payment_id: Uuid,
    client_id: Uuid,
    rail_id: Option<&str>,
    reason: Option<&str>,
) -> std::result::Result<ReversalRow, Refusal> {
    let held = payments::lock_state(tx, kind, payment_id).await?;
    match held {
        State::Completed => {}
        State::Reversed => return Err(Refusal::AlreadyReversed),
        other => return Err(Refusal::NotCompleted(other)),
    }
    let rail_id = rail_id.ok_or(Refusal::NoRail)?;
    let rail = rails
        .get(rail_id)
        .filter(|r| r.adapter.capabilities().reversal)
        .ok_or_else(|| Refusal::RailCannotReverse(rail_id.to_owned()))?;
    if let Some(live) = reversals::of_payment(tx, payment_id)
        .await?
        .into_iter()
        .find(|r| r.status != Status::Failed)
    {
        return Err(match live.status {
            Status::Completed => Refusal::AlreadyReversed,
            _ => Refusal::InProgress(live.id),
        });
    }
    let deadline = now_micros().saturating_add(micros(rail.deadline));
    let id = match reversals::insert(tx, payment_id, client_id, rail_id, reason, deadline).await {
        Ok(id) => id,
        // Another request won the race for this payment (the unique index said so).
        Err(e) if e.is_unique_violation() => return Err(Refusal::InProgress(Uuid::nil())),
        Err(e) => return Err(e.into()),
    };
    jobs::insert(
        tx,
        JobKind::Reversal,
        Some(client_id),
        Some(payment_id),
        Some(&id.to_string()),
        now_micros(),
    )
    .await?;
    reversals::get(tx, id)
        .await?
        .ok_or_else(|| Refusal::Store(StoreError::Corrupt(format!("reversal {id} vanished"))))
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The rail confirmed the reversal: the payment is reversed (ledger and event), in `conn`'s
/// transaction. A reversal already completed is a duplicate; one already failed is a
/// contradiction, recorded on the payment as a conflict for an operator.
pub async fn confirmed(
    conn: &mut Conn,
    kind: Kind,
    reversal_id: Uuid,
    settled: &Settled,
    cause: &str,
) -> Result<Applied> {
    let Some(r) = reversals::get(conn, reversal_id).await? else {
        return Ok(Applied::Ignored);
    };
    match r.status {
        Status::Completed => Ok(Applied::Duplicate),
        Status::Failed => {
            let detail = format!("reversal {reversal_id} was refused, then confirmed");
            engine::apply(
                conn,
                kind,
                r.payment_id,
                Change::Contradict {
                    claimed: "reversed",
                    detail: Some(detail.clone()),
                },
                cause,
            )
            .await?;
            Ok(Applied::Conflict)
        }
        Status::Requested
        | Status::Sending
        | Status::Retry
        | Status::Accepted
        | Status::Unknown => {
            reversals::set_status(
                conn,
                reversal_id,
                Status::Completed,
                settled.rail_reference.as_deref(),
                None,
            )
            .await?;
            engine::apply(conn, kind, r.payment_id, Change::Reverse, cause).await
        }
    }
}

/// The rail refused the reversal (nothing moved): it fails with the rail's reason; the payment
/// stays completed. A reversal the rail already confirmed is not undone: the contradiction is
/// recorded on the payment.
pub async fn refused(
    conn: &mut Conn,
    kind: Kind,
    reversal_id: Uuid,
    failure: &Failure,
    cause: &str,
) -> Result<Applied> {
    let Some(r) = reversals::get(conn, reversal_id).await? else {
        return Ok(Applied::Ignored);
    };
    match r.status {
        Status::Failed => Ok(Applied::Duplicate),
        Status::Completed => {
            let detail = format!(
                "reversal {reversal_id} was confirmed, then refused: {}",
                failure.reason
            );
            engine::apply(
                conn,
                kind,
                r.payment_id,
                Change::Contradict {
                    claimed: "reversal_failed",
                    detail: Some(detail.clone()),
                },
                cause,
            )
            .await?;
            Ok(Applied::Conflict)
        }
        Status::Requested
        | Status::Sending
        | Status::Retry
        | Status::Accepted
        | Status::Unknown => {
            reversals::fail(conn, reversal_id, failure).await?;
            tracing::info!(reversal = %reversal_id, payment = %r.payment_id, code = failure.code.as_str(), "Reversal refused by the rail");
            Ok(Applied::Changed {
                from: State::Completed,
                to: State::Completed,
            })
        }
    }
}
