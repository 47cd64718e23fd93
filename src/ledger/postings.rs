//! Which transfers a payment's change of state causes.
//!
//! Disbursement: committed to a rail → pending (debit benefits payable, credit the rail's
//! clearing); confirmed → posted; failed → voided. Collection: confirmed → posted (debit the
//! rail's clearing, credit premiums receivable). Completed → reversed: a new transfer the
//! other way that names the posted one.

use super::chart::{self, AccountRef};
use super::transfers::{self, NewTransfer, Phase};
use crate::domain::{Direction, Money, Payment, State};
use crate::store::Conn;
use crate::store::{Result, StoreError};
use uuid::Uuid;

/// The rail account of a payment that no rail was chosen for (an expected collection whose
/// money arrived before any rail was recorded on it).
const NO_RAIL: &str = "unassigned";

fn accounts(p: &Payment) -> (AccountRef, AccountRef) {
    let currency = p.amount.currency();
    let programme = p.metadata.get("programme").and_then(|v| v.as_str());
    let rail = chart::rail_clearing(p.client_id, p.rail.as_deref().unwrap_or(NO_RAIL), currency);
    let scheme = match p.direction {
        Direction::Disbursement => chart::benefits_payable(p.client_id, programme, currency),
        Direction::Collection => chart::premiums_receivable(p.client_id, programme, currency),
    };
    // (debit, credit) of the money's normal way.
    match p.direction {
        Direction::Disbursement => (scheme, rail),
        Direction::Collection => (rail, scheme),
    }
}

/// Creates the payment's two accounts if need be, always in the order of their ids, so that
/// two transactions creating the same new accounts wait for each other rather than deadlock.
async fn ensure_accounts(conn: &mut Conn, p: &Payment) -> Result<(Uuid, Uuid)> {
    let (debit, credit) = accounts(p);
    let (first, second) = if debit.id() <= credit.id() {
        (&debit, &credit)
    } else {
        (&credit, &debit)
    };
    transfers::ensure_account(conn, first).await?;
    transfers::ensure_account(conn, second).await?;
    Ok((debit.id(), credit.id()))
}

/// Writes what the transition `from → to` of `p` calls for, in the caller's transaction.
pub async fn on_transition(
    conn: &mut Conn,
    p: &Payment,
    from: State,
    to: State,
    cause: &str,
) -> Result<()> {
    match (p.direction, to) {
        (Direction::Disbursement, State::Submitted) if from != State::Submitted => {
            let (debit_account, credit_account) = ensure_accounts(conn, p).await?;
            transfers::write(
                conn,
                &NewTransfer {
                    payment_id: Some(p.id),
                    ext_key: None,
                    client_id: Some(p.client_id),
                    phase: Phase::Pending,
                    debit_account,
                    credit_account,
                    amount: p.amount,
                    pending_id: None,
                    reverses_id: None,
                    cause,
                },
            )
            .await?;
            Ok(())
        }
        (Direction::Disbursement | Direction::Collection, State::Completed) => {
            post(conn, p, cause).await
        }
        (Direction::Disbursement | Direction::Collection, State::Failed | State::Cancelled) => {
            void(conn, p, cause).await
        }
        (Direction::Disbursement | Direction::Collection, State::Reversed) => {
            reverse(conn, p, cause).await
        }
        (
            Direction::Disbursement | Direction::Collection,
            State::Received | State::Queued | State::Submitted | State::Pending | State::Unknown,
        ) => Ok(()),
    }
}

/// One payment's change of state, for [`on_transitions`].
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub payment: &'a Payment,
    pub from: State,
    pub to: State,
    pub cause: &'a str,
}

/// [`on_transition`] for a group of payments (each at most once), in the caller's
/// transaction: the pending transfers they resolve are read by one statement, the accounts
/// they need are created by one (in the order of their ids), and their transfers and entries
/// are written by one each. A reversal, rare, is written on its own.
pub async fn on_transitions(conn: &mut Conn, ts: &[Transition<'_>]) -> Result<()> {
    enum Kind {
        Pending,
        Post,
        Void,
    }
    let mut todo = Vec::with_capacity(ts.len());
    for t in ts {
        let p = t.payment;
        let kind = match (p.direction, t.to) {
            (Direction::Disbursement, State::Submitted) if t.from != State::Submitted => {
                Kind::Pending
            }
            (_, State::Completed) => Kind::Post,
            (_, State::Failed | State::Cancelled) => Kind::Void,
            (_, State::Reversed) => {
                reverse(conn, p, t.cause).await?;
                continue;
            }
            (
                _,
                State::Received
                | State::Queued
                | State::Submitted
                | State::Pending
                | State::Unknown,
            ) => continue,
        };
        todo.push((t, kind));
    }
    if todo.is_empty() {
        return Ok(());
    }
    let resolving: Vec<Uuid> = todo
        .iter()
        .filter(|(_, k)| !matches!(k, Kind::Pending))
        .map(|(t, _)| t.payment.id)
        .collect();
    let pendings = transfers::find_many(conn, &resolving, Phase::Pending).await?;
    let mut needed = std::collections::BTreeMap::new();
    for (t, kind) in &todo {
        let own_accounts = match kind {
            Kind::Pending => true,
            Kind::Post => !pendings.contains_key(&t.payment.id),
            Kind::Void => false,
        };
        if own_accounts {
            let (debit, credit) = accounts(t.payment);
            needed.insert(debit.id(), debit);
            needed.insert(credit.id(), credit);
        }
    }
    transfers::ensure_accounts(conn, needed.into_values().collect()).await?;
    let mut writes = Vec::with_capacity(todo.len());
    for (t, kind) in &todo {
        let p = t.payment;
        let pending = pendings.get(&p.id);
        let (phase, debit_account, credit_account, amount, pending_id) = match (kind, pending) {
            (Kind::Pending, _) => {
                let (d, c) = accounts(p);
                (Phase::Pending, d.id(), c.id(), p.amount, None)
            }
            (Kind::Post, Some(x)) => (
                Phase::Posted,
                x.debit_account,
                x.credit_account,
                x.amount,
                Some(x.id),
            ),
            (Kind::Post, None) => {
                let (d, c) = accounts(p);
                (Phase::Posted, d.id(), c.id(), p.amount, None)
            }
            (Kind::Void, Some(x)) => (
                Phase::Voided,
                x.debit_account,
                x.credit_account,
                x.amount,
                Some(x.id),
            ),
            // Nothing was committed to a rail: nothing to void.
            (Kind::Void, None) => continue,
        };
        writes.push(NewTransfer {
            payment_id: Some(p.id),
            ext_key: None,
            client_id: Some(p.client_id),
            phase,
            debit_account,
            credit_account,
            amount,
            pending_id,
            reverses_id: None,
            cause: t.cause,
        });
    }
    transfers::write_many(conn, &writes).await?;
    Ok(())
}

/// Posts the pending transfer, or (a collection, or a payment confirmed without one) writes
/// a single-phase posted transfer.
async fn post(conn: &mut Conn, p: &Payment, cause: &str) -> Result<()> {
    let pending = transfers::find(conn, p.id, Phase::Pending).await?;
    let t = match pending {
        Some(pending) => NewTransfer {
            payment_id: Some(p.id),
            ext_key: None,
            client_id: Some(p.client_id),
            phase: Phase::Posted,
            debit_account: pending.debit_account,
            credit_account: pending.credit_account,
            amount: pending.amount,
            pending_id: Some(pending.id),
            reverses_id: None,
            cause,
        },
        None => {
            let (debit_account, credit_account) = ensure_accounts(conn, p).await?;
            NewTransfer {
                payment_id: Some(p.id),
                ext_key: None,
                client_id: Some(p.client_id),
                phase: Phase::Posted,
                debit_account,
                credit_account,
                amount: p.amount,
                pending_id: None,
                reverses_id: None,
                cause,
            }
        }
    };
    transfers::write(conn, &t).await?;
    Ok(())
}

async fn void(conn: &mut Conn, p: &Payment, cause: &str) -> Result<()> {
    let Some(pending) = transfers::find(conn, p.id, Phase::Pending).await? else {
        return Ok(());
    };
    transfers::write(
        conn,
        &NewTransfer {
            payment_id: Some(p.id),
            ext_key: None,
            client_id: Some(p.client_id),
            phase: Phase::Voided,
            debit_account: pending.debit_account,
            credit_account: pending.credit_account,
            amount: pending.amount,
            pending_id: Some(pending.id),
            reverses_id: None,
            cause,
        },
    )
    .await?;
    Ok(())
}

async fn reverse(conn: &mut Conn, p: &Payment, cause: &str) -> Result<()> {
    let Some(posted) = transfers::find(conn, p.id, Phase::Posted).await? else {
        return Err(StoreError::Corrupt(format!(
            "payment {} is reversed but has no posted transfer",
            p.id
        )));
    };
    let written = transfers::write(
        conn,
        &NewTransfer {
            payment_id: Some(p.id),
            ext_key: None,
            client_id: Some(p.client_id),
            phase: Phase::Reversal,
            debit_account: posted.credit_account,
            credit_account: posted.debit_account,
            amount: posted.amount,
            pending_id: None,
            reverses_id: Some(posted.id),
            cause,
        },
    )
    .await?;
    if written.is_some() {
        transfers::check_not_negative(conn, posted.debit_account).await?;
        transfers::check_not_negative(conn, posted.credit_account).await?;
    }
    Ok(())
}

/// Money a rail says arrived but that no payment takes (an unknown payment reference, or not
/// the amount expected): posted to suspense against the rail's clearing, in the client's book
/// when the client is known, else in the gateway's. `key` names what brought it (the rail's
/// callback), so a redelivery posts nothing more. True when it was posted now.
pub async fn to_suspense(
    conn: &mut Conn,
    client: Option<Uuid>,
    rail: &str,
    amount: Money,
    key: &str,
    cause: &str,
) -> Result<bool> {
    let debit = transfers::ensure_account(
        conn,
        &chart::rail_clearing_of(client, rail, amount.currency()),
    )
    .await?;
    let credit =
        transfers::ensure_account(conn, &chart::suspense(client, amount.currency())).await?;
    let written = transfers::write(
        conn,
        &NewTransfer {
            payment_id: None,
            ext_key: Some(key),
            client_id: client,
            phase: Phase::Posted,
            debit_account: debit,
            credit_account: credit,
            amount,
            pending_id: None,
            reverses_id: None,
            cause,
        },
    )
    .await?;
    Ok(written.is_some())
}
