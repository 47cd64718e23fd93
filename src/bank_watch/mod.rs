//! The bank watcher: one per rail whose adapter answers with files (`RailAdapter::inbound_files`:
//! the bank rails), reading the rail's inbound drop folder on the adapter's interval.
//!
//! A bank answers a pain.001 with files, not callbacks. Each sweep reads the folder once and
//! applies, in this order:
//! 1. `statuses`: the pain.002 status of every attempt still waiting. `RJCT` (at transaction,
//!    block or group level) fails the payment; an accepted status (`ACCP`, `ACSP`, `ACSC`,
//!    `ACWC`, ...) is recorded on the attempt with its reason, and the payment stays pending:
//!    accepted by the bank, awaiting its booking.
//! 2. `bookings`: booked debit entries in camt.053/054 statements that carry our end-to-end id.
//!    The same amount and currency complete the payment (the ledger posts it in the same
//!    transaction); another amount is a conflict, never a completion.
//! 3. `returns`: credits coded as returns (`RRTN`/`RPCR`, or with `RtrInf`) carrying our
//!    end-to-end id reverse the completed payment.
//!
//! Every statement entry is claimed by its key in the transaction that applies it
//! (`store::entries`), so a statement read again, or an entry notified in a camt.054 and
//! repeated in the day's camt.053, applies once, whichever gateway process reads it. A payment
//! the bank accepted but never books is left to the dispatcher: past the rail's deadline it
//! becomes an operator exception.
//!
//! Bounded: one sweep per interval per bank rail, at most `MAX_OPEN` waiting attempts and
//! `MAX_PER_SWEEP` new entries per sweep (the rest wait for the next).

mod bookings;
mod entries;
mod returns;
mod statuses;

use crate::engine::Applied;
use crate::rails::Rails;
use crate::store::{Db, StoreError};
use railgate_rail::inbound::InboundFiles;
use railgate_rail::RailAdapter;
use std::collections::HashSet;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use entries::{read_entries, EntryKind, FileEntry};

/// New statement entries applied per sweep, at most.
pub const MAX_PER_SWEEP: usize = 500;

/// Waiting attempts whose pain.002 status is read per sweep, at most.
pub const MAX_OPEN: i64 = 500;

/// Entry keys remembered as done in memory (beyond it the memory is cleared: the store's
/// claims still keep every entry applied once).
const MAX_REMEMBERED: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bank rail {rail}: {why}")]
    Bank { rail: String, why: String },
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Interim statuses (`ACSC`...) newly recorded on attempts.
    pub accepted: usize,
    /// Payments failed by a rejection.
    pub failed: usize,
    /// Payments completed by their booking.
    pub completed: usize,
    pub reversed: usize,
    /// Entries already applied (by another process, or before a restart).
    pub duplicates: usize,
    /// Bookings or returns that contradict the payment: recorded as conflicts.
    pub conflicts: usize,
    /// Entries naming no attempt of this rail (another system's, or a malformed id).
    pub unmatched: usize,
    /// Entries left for a later sweep (a return whose booking is not seen yet, a batch entry
    /// without a per-payment amount).
    pub waiting: usize,
}

impl Sweep {
    fn count(&mut self, applied: Applied, changed: fn(&mut Sweep) -> &mut usize) {
        let slot = match applied {
            Applied::Changed { .. } => changed(self),
            Applied::Duplicate | Applied::Ignored | Applied::Noted => &mut self.duplicates,
            Applied::Conflict => &mut self.conflicts,
        };
        *slot = slot.saturating_add(1);
    }
}

/// Starts one watcher per rail whose adapter has an inbound folder; each stops when `stop` is
/// cancelled.
pub fn spawn(
    rails: &Rails,
    db: &Db,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    for id in rails.ids() {
        let Some(rail) = rails.get(id) else { continue };
        if rail.adapter.inbound_files().is_none() {
            continue;
        }
        let (db, stop, adapter) = (db.clone(), stop.clone(), rail.adapter.clone());
        tasks.spawn(async move { watch(db, adapter, stop).await });
    }
}

async fn watch(db: Db, adapter: Arc<dyn RailAdapter>, stop: CancellationToken) {
    let Some(files) = adapter.inbound_files() else {
        return;
    };
    let rail = adapter.id();
    let mut done: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(files.poll_every()) => {}
        }
        match sweep(&db, rail, files, &mut done).await {
            Ok(s)
                if s != Sweep::default()
                    && s != (Sweep {
                        waiting: s.waiting,
                        ..Sweep::default()
                    }) =>
            {
                tracing::info!(rail = %rail, accepted = s.accepted, failed = s.failed, completed = s.completed, reversed = s.reversed, duplicates = s.duplicates, conflicts = s.conflicts, unmatched = s.unmatched, waiting = s.waiting, "Bank files applied");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(rail = %rail, error = %e, "Reading the bank's files failed; will retry")
            }
        }
    }
}

/// Reads the bank's inbound folder once and applies what is new. `done` remembers, between
/// sweeps of this process, the entries that need no second look.
pub async fn sweep(
    db: &Db,
    rail: &str,
    files: &dyn InboundFiles,
    done: &mut HashSet<String>,
) -> Result<Sweep, WatchError> {
    let inbound = files.read().await.map_err(|e| WatchError::Bank {
        rail: rail.to_owned(),
        why: e.to_string(),
    })?;
    let mut out = Sweep::default();
    statuses::apply(db, rail, inbound.as_ref(), &mut out).await?;
    if done.len() > MAX_REMEMBERED {
        done.clear();
    }
    let entries = read_entries(inbound.statements(), files);
    let (mut bookings, mut returned): (Vec<FileEntry>, Vec<FileEntry>) = entries
        .into_iter()
        .filter(|e| !done.contains(&e.key))
        .partition(|e| e.kind == EntryKind::Booking);
    bookings.truncate(MAX_PER_SWEEP);
    returned.truncate(MAX_PER_SWEEP.saturating_sub(bookings.len()));
    // Bookings first: a return is only applied once the booking it undoes is.
    for e in &bookings {
        if bookings::apply(db, rail, e, &mut out).await? {
            done.insert(e.key.clone());
        }
    }
    for e in &returned {
        if returns::apply(db, rail, e, &mut out).await? {
            done.insert(e.key.clone());
        }
    }
    Ok(out)
}
