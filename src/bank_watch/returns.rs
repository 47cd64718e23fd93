//! Returns: a transfer the beneficiary's bank sent back arrives days after completion as a
//! credit entry coded as a return, carrying our end-to-end id. The whole amount coming back
//! reverses the completed payment through the engine (the ledger posts the reversal
//! in the same transaction); anything else is a conflict for an operator.

use super::{FileEntry, Sweep, WatchError};
use crate::domain::State;
use crate::engine::{self, Applied, Change};
use crate::store::{attempts, entries, payments, Db, StoreError};

/// Applies one return in its own transaction. True when nothing more is to be done with it;
/// false when its payment's booking has not been seen yet (it is looked at again next sweep).
pub async fn apply(
    db: &Db,
    rail: &str,
    e: &FileEntry,
    out: &mut Sweep,
) -> Result<bool, WatchError> {
    let Some(attempt_id) = e.attempt_id else {
        out.unmatched = out.unmatched.saturating_add(1);
        return Ok(true);
    };
    let mut tx = db.begin().await?;
    let attempt = attempts::get(&mut tx, attempt_id).await?;
    let Some(attempt) = attempt.filter(|a| a.rail == rail) else {
        tx.rollback().await.map_err(StoreError::from)?;
        out.unmatched = out.unmatched.saturating_add(1);
        return Ok(true);
    };
    let pid = attempt.payment_id;
    let Some(p) = payments::row_in(&mut tx, pid).await? else {
        tx.rollback().await.map_err(StoreError::from)?;
        return Ok(true);
    };
    if matches!(p.state, State::Submitted | State::Pending | State::Unknown) {
        // Money cannot come back before it left: wait for the booking.
        tx.rollback().await.map_err(StoreError::from)?;
        out.waiting = out.waiting.saturating_add(1);
        return Ok(false);
    }
    if !entries::claim(&mut tx, rail, &e.key, (attempt.client_id, pid), &e.source).await? {
        tx.rollback().await.map_err(StoreError::from)?;
        out.duplicates = out.duplicates.saturating_add(1);
        return Ok(true);
    }
    let reason = format!(
        "returned by the bank ({}){}",
        e.reason.as_deref().unwrap_or("no reason code"),
        e.booking_date
            .map(|d| format!(", booked {d}"))
            .unwrap_or_default()
    );
    let cause = format!("rail {rail}: return of attempt {attempt_id}, {reason}");
    let applied = match e.amount {
        // Only the whole amount coming back undoes the payment.
        Some(amount) if amount != p.amount => {
            let detail = format!("{reason}: {amount} returned of {}", p.amount);
            engine::apply(
                &mut tx,
                db.kind(),
                pid,
                Change::Contradict {
                    claimed: "returned",
                    detail: Some(detail.clone()),
                },
                &cause,
            )
            .await?;
            Applied::Conflict
        }
        _ if matches!(p.state, State::Completed | State::Reversed) => {
            engine::apply(&mut tx, db.kind(), pid, Change::Reverse, &cause).await?
        }
        // Money came back for a payment we do not hold as paid: someone must look at it.
        _ => {
            engine::apply(
                &mut tx,
                db.kind(),
                pid,
                Change::Contradict {
                    claimed: "returned",
                    detail: Some(reason.clone()),
                },
                &cause,
            )
            .await?;
            Applied::Conflict
        }
    };
    entries::set_effect(&mut tx, rail, &e.key, applied.as_str()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    if applied == Applied::Conflict {
        tracing::warn!(rail = %rail, payment = %pid, "Bank return contradicts the payment; conflict recorded");
    }
    out.count(applied, |s| &mut s.reversed);
    Ok(true)
}
