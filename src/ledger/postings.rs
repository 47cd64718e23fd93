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
