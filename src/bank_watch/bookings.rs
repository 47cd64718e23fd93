//! Booked debits carrying our end-to-end id: the bank's proof that the money left.
//!
//! The same amount and currency complete the payment through the engine, which posts
//! the ledger transfer in the same transaction (a payment already completed is a duplicate and
//! posts nothing; one we hold as failed is a recorded conflict). Another amount is a conflict,
//! never a completion. A second booking of the same payment under another bank reference is
//! money paid twice: a conflict too.

use super::{FileEntry, Sweep, WatchError};
use crate::engine::{self, Applied, Change};
use crate::store::{attempts, entries, payments, Db, StoreError};
use railgate_rail::Settled;

/// Applies one booking in its own transaction. True when nothing more is to be done with it
/// (applied now or before, or not ours); false when it must be looked at again later.
pub async fn apply(
    db: &Db,
    rail: &str,
    e: &FileEntry,
    out: &mut Sweep,
) -> Result<bool, WatchError> {
    let Some(amount) = e.amount else {
        // A batch entry that does not say what this payment was: reconciliation's to match.
        out.waiting = out.waiting.saturating_add(1);
        return Ok(false);
    };
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
    if !entries::claim(&mut tx, rail, &e.key, (attempt.client_id, pid), &e.source).await? {
        tx.rollback().await.map_err(StoreError::from)?;
        out.duplicates = out.duplicates.saturating_add(1);
        return Ok(true);
    }
    let Some(p) = payments::row_in(&mut tx, pid).await? else {
        tx.rollback().await.map_err(StoreError::from)?;
        return Ok(true);
    };
    let cause = format!(
        "rail {rail}: booked debit{} for attempt {attempt_id} ({})",
        e.bank_ref
            .as_deref()
            .map(|r| format!(" {r}"))
            .unwrap_or_default(),
        e.source
    );
    // Another amount, or a second booking of the same payment, contradicts what we hold.
    let contradiction = if amount != p.amount {
        Some(format!("booked {amount} for a payment of {}", p.amount))
    } else if entries::others_applied(&mut tx, rail, pid, "booking:", &e.key).await? > 0 {
        Some(format!(
            "a second booking of end-to-end id {} (bank reference {})",
            e.end_to_end_id,
            e.bank_ref.as_deref().unwrap_or("none")
        ))
    } else {
        None
    };
    let applied = if let Some(detail) = contradiction {
        let change = Change::Contradict {
            claimed: "booked",
            detail: Some(detail),
        };
        engine::apply(&mut tx, db.kind(), pid, change, &cause).await?;
        Applied::Conflict
    } else {
        let settled = Settled {
            rail_reference: None,
            receipt: e.bank_ref.clone(),
            amount: None,
        };
        engine::apply(
            &mut tx,
            db.kind(),
            pid,
            Change::Complete {
                attempt: Some(attempt_id),
                settled: settled.clone(),
            },
            &cause,
        )
        .await?
    };
    entries::set_effect(&mut tx, rail, &e.key, applied.as_str()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    if applied == Applied::Conflict {
        tracing::warn!(rail = %rail, payment = %pid, "A bank booking contradicts the payment; conflict recorded");
    }
    out.count(applied, |s| &mut s.completed);
    Ok(true)
}
