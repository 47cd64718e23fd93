//! Bank returns: a transfer the beneficiary's bank sent back arrives days after completion
//! as a credit entry coded as a return in a camt.053/054 file, carrying our end-to-end id.
//! The watcher reads each bank rail's inbound folder on a timer and reverses the original
//! payment through `outcomes::reverse` (so the ledger posts the reversal in the same
//! transaction).
//!
//! Bounded: one sweep per interval per bank rail, at most `MAX_PER_SWEEP` returns applied per
//! sweep (the rest wait for the next), and returns already applied by this process are not
//! looked at again. Applying a return twice is harmless anyway: the second is a duplicate.

use crate::config::{Config, RailConfig};
use crate::domain::State;
use crate::outcomes::{self, Applied};
use crate::store::{attempts, payments, Db, StoreError};
use railgate_bank::camt::ReturnedTransfer;
use railgate_bank::BankAdapter;
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Returns applied per sweep, at most.
pub const MAX_PER_SWEEP: usize = 500;

/// Failed payments re-read per sweep for a late contradicting status, at most.
const MAX_LATE_CHECKS: i64 = 100;

/// How long after a rejection a contradicting bank status is still looked for (default).
pub const DEFAULT_LATE_WINDOW_SECS: u64 = 3 * 24 * 3600;

/// The default interval between two reads of a bank's inbound folder.
pub const DEFAULT_POLL_SECS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ReturnsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bank rail {rail}: {why}")]
    Bank { rail: String, why: String },
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub reversed: usize,
    pub duplicates: usize,
    pub conflicts: usize,
    /// Returns naming no attempt of this rail (another system's, or a malformed id).
    pub unmatched: usize,
    /// Failed payments the bank later reported as settled: recorded as conflicts.
    pub late_settlements: usize,
}

/// The bank rails of a configuration with their watch interval (`returns_poll_ms`).
fn bank_rails(cfg: &Config) -> Vec<(&RailConfig, Duration, Duration)> {
    cfg.rails
        .iter()
        .filter(|rc| rc.kind == "bank")
        .map(|rc| {
            let every = rc
                .setting("returns_poll_ms")
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
                .unwrap_or(Duration::from_secs(DEFAULT_POLL_SECS));
            let window = Duration::from_secs(
                rc.setting("late_status_window_secs")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(DEFAULT_LATE_WINDOW_SECS),
            );
            (rc, every, window)
        })
        .collect()
}

/// Starts one watcher per bank rail; each stops when `stop` is cancelled.
pub fn spawn(
    cfg: &Config,
    db: &Db,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<(), crate::config::ConfigError> {
    for (rc, every, window) in bank_rails(cfg) {
        let bank = BankAdapter::new(crate::adapters::bank::bank_config(rc)?)
            .map_err(|e| crate::adapters::invalid(rc, e))?;
        let (db, stop, rail) = (db.clone(), stop.clone(), rc.id.clone());
        tasks.spawn(async move { watch(db, rail, bank, every, window, stop).await });
    }
    Ok(())
}

async fn watch(
    db: Db,
    rail: String,
    bank: BankAdapter,
    every: Duration,
    window: Duration,
    stop: CancellationToken,
) {
    let mut done: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let swept = match sweep(&db, &rail, &bank, &mut done).await {
            Ok(mut s) => late_statuses(&db, &rail, &bank, window).await.map(|n| {
                s.late_settlements = n;
                s
            }),
            Err(e) => Err(e),
        };
        match swept {
            Ok(s) if s != Sweep::default() => {
                tracing::info!(rail = %rail, reversed = s.reversed, duplicates = s.duplicates, conflicts = s.conflicts, unmatched = s.unmatched, late_settlements = s.late_settlements, "Bank files applied");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(rail = %rail, error = %e, "Reading bank returns failed; will retry")
            }
        }
    }
}

/// Reads the bank's returns once and applies those not applied before (`done` remembers
/// them between sweeps).
pub async fn sweep(
    db: &Db,
    rail: &str,
    bank: &BankAdapter,
    done: &mut HashSet<String>,
) -> Result<Sweep, ReturnsError> {
    let returns = bank.returns().await.map_err(|e| ReturnsError::Bank {
        rail: rail.to_owned(),
        why: e.to_string(),
    })?;
    let mut out = Sweep::default();
    let fresh: Vec<ReturnedTransfer> = returns
        .into_iter()
        .filter(|r| !done.contains(&r.end_to_end_id))
        .take(MAX_PER_SWEEP)
        .collect();
    for r in fresh {
        let applied = apply(db, rail, &r).await?;
        match applied {
            None => out.unmatched = out.unmatched.saturating_add(1),
            Some(Applied::Changed { .. }) => out.reversed = out.reversed.saturating_add(1),
            Some(Applied::Duplicate | Applied::Ignored) => {
                out.duplicates = out.duplicates.saturating_add(1)
            }
            Some(Applied::Conflict) => out.conflicts = out.conflicts.saturating_add(1),
        }
        done.insert(r.end_to_end_id);
    }
    Ok(out)
}

/// Applies one return in its own transaction; `None` when it names no attempt of this rail.
async fn apply(db: &Db, rail: &str, r: &ReturnedTransfer) -> Result<Option<Applied>, ReturnsError> {
    let Some(attempt_id) = r.attempt_id else {
        return Ok(None);
    };
    let mut tx = db.begin().await?;
    let Some(attempt) = attempts::get(&mut tx, attempt_id).await? else {
        tx.rollback().await.map_err(StoreError::from)?;
        return Ok(None);
    };
    if attempt.rail != rail {
        tx.rollback().await.map_err(StoreError::from)?;
        return Ok(None);
    }
    let reason = format!(
        "returned by the bank ({}){}",
        r.reason_code.as_deref().unwrap_or("no reason code"),
        r.booking_date
            .as_deref()
            .map(|d| format!(", booked {d}"))
            .unwrap_or_default()
    );
    let cause = format!("rail {rail}: return of attempt {attempt_id}, {reason}");
    let payment = payments::get_in(&mut tx, None, attempt.payment_id).await?;
    let applied = match (payment, r.amount) {
        // Only the whole amount coming back undoes the payment; anything else is for an
        // operator to look at.
        (Some(p), Some(amount)) if amount != p.amount => {
            let detail = format!("{reason}: {amount} returned of {}", p.amount);
            payments::record_conflict(&mut tx, p.id, p.state, "returned", &cause, Some(&detail))
                .await?;
            Applied::Conflict
        }
        (Some(p), _) if matches!(p.state, State::Completed | State::Reversed) => {
            outcomes::reverse(&mut tx, db.kind(), p.id, &cause).await?
        }
        // Money came back for a payment we do not hold as paid: someone must look at it.
        (Some(p), _) => {
            payments::record_conflict(&mut tx, p.id, p.state, "returned", &cause, Some(&reason))
                .await?;
            Applied::Conflict
        }
        (None, _) => {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(None);
        }
    };
    tx.commit().await.map_err(StoreError::from)?;
    if applied == Applied::Conflict {
        tracing::warn!(rail = %rail, payment = %attempt.payment_id, "Bank return contradicts the payment; conflict recorded");
    }
    Ok(Some(applied))
}

/// A bank may reject a payment and settle it after all (a pain.002 `RJCT`, then `ACSC`). The
/// dispatcher stops asking once a payment has failed, so the watcher re-reads the latest status
/// of payments the bank failed within `window`; one it now reports settled is recorded as a
/// conflict (money moved while we hold the payment as failed), once. Returns how many.
pub async fn late_statuses(
    db: &Db,
    rail: &str,
    bank: &BankAdapter,
    window: Duration,
) -> Result<usize, ReturnsError> {
    use railgate_rail::{RailAdapter, RailStatus};
    let since = crate::store::now_micros()
        .saturating_sub(i64::try_from(window.as_micros()).unwrap_or(i64::MAX));
    let failed = {
        let mut conn = db.pool().acquire().await.map_err(StoreError::from)?;
        attempts::recently_failed(&mut conn, rail, since, MAX_LATE_CHECKS).await?
    };
    let mut found = 0usize;
    for a in failed {
        let Some(p) = payments::get(db, None, a.payment_id).await? else {
            continue;
        };
        let attempt = crate::dispatch::rail_attempt(&p, &a);
        let Ok(RailStatus::Completed(settled)) = bank.inquire(&attempt).await else {
            continue;
        };
        let cause = format!(
            "rail {rail}: status report after the rejection of attempt {}",
            a.id
        );
        let mut tx = db.begin().await?;
        let applied =
            outcomes::complete(&mut tx, db.kind(), p.id, Some(a.id), &settled, &cause).await?;
        tx.commit().await.map_err(StoreError::from)?;
        if applied == Applied::Conflict {
            tracing::warn!(rail = %rail, payment = %p.id, "The bank settled a payment it had rejected; conflict recorded");
            found = found.saturating_add(1);
        }
    }
    Ok(found)
}
