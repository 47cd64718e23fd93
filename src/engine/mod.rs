//! The engine: the one owner of a payment's state.
//!
//! Every change to a payment, whoever brings it (an API handler, the dispatcher, the batch
//! path, a callback, a bank file, a reconciliation run), comes here as a [`Change`]. The
//! engine reads the payment under its lock, asks the pure state machine
//! (`domain::machine::decide`) what the change does, and writes the payment, its history and
//! every effect (attempts, conflicts, ledger postings, events for the core, jobs, payroll
//! progress) in the caller's transaction. Nothing else writes a payment's state: the SQL that
//! does is private to this module (`row`).
//!
//! A caller that applies many changes (a batch of answers) applies them all with
//! [`apply_in`] inside one transaction and runs the [`Deferred`] work before its one commit.

mod effects;
mod row;

use crate::domain::machine;
pub use crate::domain::machine::{Applied, Change};
use crate::store::Conn;
use crate::store::{Kind, Result};
use uuid::Uuid;

/// Applies `change` to the payment inside the caller's transaction.
pub async fn apply(
    conn: &mut Conn,
    kind: Kind,
    payment_id: Uuid,
    change: Change,
    cause: &str,
) -> Result<Applied> {
    let mut later = Deferred::default();
    let applied = apply_in(conn, kind, payment_id, change, cause, &mut later).await?;
    later.run(conn).await?;
    Ok(applied)
}

/// What a batch of changes leaves to the end of its transaction: each payroll that one of
/// them may have finished is looked at once, after every payment of the batch is written.
/// This also orders the locks: payments first, payrolls last, in every transaction, so a
/// batch and a single callback cannot wait on each other.
#[derive(Debug, Default)]
pub struct Deferred {
    payrolls: std::collections::BTreeSet<Uuid>,
}

impl Deferred {
    /// Runs what was deferred, inside the transaction the changes were applied in.
    pub async fn run(self, conn: &mut Conn) -> Result<()> {
        for payroll in self.payrolls {
            effects::settle_payroll(conn, payroll).await?;
        }
        Ok(())
    }
}

/// `apply`, leaving payroll progress to `later` (the caller runs it before committing).
pub async fn apply_in(
    conn: &mut Conn,
    kind: Kind,
    payment_id: Uuid,
    change: Change,
    cause: &str,
    later: &mut Deferred,
) -> Result<Applied> {
    let held = row::lock(conn, kind, payment_id).await?;
    let decision = machine::decide(&held, &change, cause);
    let applied = decision.applied;
    if let Applied::Changed { from, to } = applied {
        metrics::counter!("railgate_payment_transitions_total", "from" => from.as_str(), "to" => to.as_str())
            .increment(1);
    }
    let written = match decision.write {
        Some(p) => {
            row::write(conn, &p, decision.history.as_ref()).await?;
            p
        }
        None => {
            // An operator's note: a line of history, the payment's row untouched.
            if let Some(line) = &decision.history {
                row::note(conn, &held, line).await?;
            }
            held
        }
    };
    effects::run(conn, &written, &decision.effects, cause, later).await?;
    Ok(applied)
}

/// Stores a new payment in `received` and records its first transition (the engine's, as
/// every other write of a payment's state is).
pub async fn create(
    conn: &mut Conn,
    id: Uuid,
    client_id: Uuid,
    new: &crate::domain::NewPayment,
    rail: Option<&str>,
    payment_reference: Option<&str>,
    cause: &str,
) -> Result<()> {
    row::insert(conn, id, client_id, new, rail, payment_reference, cause).await
}

/// A new payment, routed: `queued` with its dispatch job, or `pending` (an expected
/// collection waits for the payer). `decided` comes from `domain::machine::routed`. False
/// when the client already has a payment with that reference: nothing is written.
pub async fn create_routed(conn: &mut Conn, decided: &crate::domain::Payment) -> Result<bool> {
    let inserted = row::insert_routed(conn, decided).await?;
    if inserted {
        metrics::counter!("railgate_payment_transitions_total", "from" => "received", "to" => decided.state.as_str())
            .increment(1);
    }
    Ok(inserted)
}

/// [`create_routed`] for a group of new payments in one transaction (the API's intake):
/// whether each was stored.
pub async fn create_routed_many(
    conn: &mut Conn,
    decided: &[&crate::domain::Payment],
) -> Result<Vec<bool>> {
    let stored = row::insert_routed_many(conn, decided).await?;
    for (p, s) in decided.iter().zip(&stored) {
        if *s {
            metrics::counter!("railgate_payment_transitions_total", "from" => "received", "to" => p.state.as_str())
                .increment(1);
        }
    }
    Ok(stored)
}

/// Moves a chunk of a held payroll's items to `queued` (they are released), recording each
/// item's transition; returns the ids moved. Their jobs are written by the caller's release.
pub async fn release_payroll_chunk(
    conn: &mut Conn,
    payroll_id: Uuid,
    limit: i64,
    cause: &str,
) -> Result<Vec<Uuid>> {
    let ids = row::release_chunk(conn, payroll_id, limit, cause).await?;
    if !ids.is_empty() {
        metrics::counter!("railgate_payment_transitions_total", "from" => "received", "to" => "queued")
            .increment(u64::try_from(ids.len()).unwrap_or(0));
    }
    Ok(ids)
}

/// Records the rail money arrived on, for a payment no rail was chosen for.
pub async fn set_rail_if_none(conn: &mut Conn, id: Uuid, rail: &str) -> Result<()> {
    row::set_rail_if_none(conn, id, rail).await
}

pub use effects::settle_payroll;
