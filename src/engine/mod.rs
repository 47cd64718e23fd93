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
use crate::store::{Kind, Result, StoreError};
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
    let item = Item {
        payment_id,
        change,
        cause: cause.to_owned(),
    };
    let applied = apply_many(conn, kind, vec![item], later).await?;
    Ok(applied.into_iter().next().unwrap_or(Applied::Ignored))
}

/// One change of a group applied together ([`apply_many`]).
#[derive(Debug, Clone)]
pub struct Item {
    pub payment_id: Uuid,
    pub change: Change,
    /// Who says so: it goes into the history.
    pub cause: String,
}

/// Applies a group of changes inside the caller's transaction, with set-based statements: the
/// group's payments are locked by one read (in the order of their ids, so two groups cannot
/// wait on each other), each change is decided in memory, and the payments, their history and
/// each kind of effect are written a statement per kind, whatever the group's size. Changes to
/// one payment are applied in their order, one per round. Returns what each change came to,
/// in the order given. Payroll progress is left to `later`, as with [`apply_in`].
pub async fn apply_many(
    conn: &mut Conn,
    kind: Kind,
    items: Vec<Item>,
    later: &mut Deferred,
) -> Result<Vec<Applied>> {
    let mut out = vec![Applied::Ignored; items.len()];
    let mut waiting: Vec<(usize, Item)> = items.into_iter().enumerate().collect();
    while !waiting.is_empty() {
        let mut seen = std::collections::HashSet::with_capacity(waiting.len());
        let (round, rest): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|(_, item)| seen.insert(item.payment_id));
        apply_round(conn, kind, round, &mut out, later).await?;
        waiting = rest;
    }
    Ok(out)
}

/// One round of [`apply_many`]: at most one change per payment.
async fn apply_round(
    conn: &mut Conn,
    kind: Kind,
    round: Vec<(usize, Item)>,
    out: &mut [Applied],
    later: &mut Deferred,
) -> Result<()> {
    let ids: Vec<Uuid> = round.iter().map(|(_, item)| item.payment_id).collect();
    let held = row::lock_many(conn, kind, &ids).await?;
    let mut writes = Vec::new();
    let mut history = Vec::new();
    let mut effects = Vec::with_capacity(round.len());
    for (at, item) in round {
        let p = held
            .get(&item.payment_id)
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))?;
        let decision = machine::decide(p, &item.change, &item.cause);
        if let Some(slot) = out.get_mut(at) {
            *slot = decision.applied;
        }
        if let Applied::Changed { from, to } = decision.applied {
            metrics::counter!("railgate_payment_transitions_total", "from" => from.as_str(), "to" => to.as_str())
                .increment(1);
        }
        // Without a write, a line of history is an operator's note: the row is untouched.
        let written = match decision.write {
            Some(w) => {
                writes.push(w.clone());
                w
            }
            None => p.clone(),
        };
        if let Some(line) = decision.history {
            history.push((written.client_id, written.id, line));
        }
        if !decision.effects.is_empty() {
            effects.push((written, decision.effects, item.cause));
        }
    }
    row::write_many(conn, &writes, &history).await?;
    effects::run_many(conn, &effects, later).await
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
