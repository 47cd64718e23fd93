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
//! A caller that applies many changes (a batch of answers) passes them all to
//! [`apply_many`] inside one transaction: one commit for the lot.

mod effects;
mod row;

use crate::domain::machine;
pub use crate::domain::machine::{Applied, Change};
use crate::store::{Kind, Result};
use sqlx::AnyConnection;
use uuid::Uuid;

/// Applies `change` to the payment inside the caller's transaction.
pub async fn apply(
    conn: &mut AnyConnection,
    kind: Kind,
    payment_id: Uuid,
    change: Change,
    cause: &str,
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
        None => held,
    };
    effects::run(conn, &written, &decision.effects, cause).await?;
    Ok(applied)
}

/// Applies each `(payment, change)` in order inside the caller's transaction, returning what
/// each came to. One transaction for the lot: the batch commits (or not) as one.
pub async fn apply_many(
    conn: &mut AnyConnection,
    kind: Kind,
    changes: Vec<(Uuid, Change, String)>,
) -> Result<Vec<Applied>> {
    let mut out = Vec::with_capacity(changes.len());
    for (id, change, cause) in changes {
        out.push(apply(conn, kind, id, change, &cause).await?);
    }
    Ok(out)
}

/// Stores a new payment in `received` and records its first transition (the engine's, as
/// every other write of a payment's state is).
pub async fn create(
    conn: &mut AnyConnection,
    id: Uuid,
    client_id: Uuid,
    new: &crate::domain::NewPayment,
    rail: Option<&str>,
    payment_reference: Option<&str>,
    cause: &str,
) -> Result<()> {
    row::insert(conn, id, client_id, new, rail, payment_reference, cause).await
}

/// Moves a chunk of a held payroll's items to `queued` (they are released), recording each
/// item's transition; returns the ids moved. Their jobs are written by the caller's release.
pub async fn release_payroll_chunk(
    conn: &mut AnyConnection,
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
pub async fn set_rail_if_none(conn: &mut AnyConnection, id: Uuid, rail: &str) -> Result<()> {
    row::set_rail_if_none(conn, id, rail).await
}

pub use effects::settle_payroll;
