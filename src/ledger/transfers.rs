//! Writing transfers and their entries. A transfer is never updated or deleted.
//!
//! Each transfer is keyed by (payment, phase): writing one that exists already does nothing,
//! so a replayed callback or a retried job cannot post twice. A pending transfer is resolved
//! at most once (`pending_id` is unique), by a posting or a voiding transfer.

use super::chart::{AccountRef, Side};
use crate::domain::{Currency, Money};
use crate::store::sql::{Col, Rows};
use crate::store::Conn;
use crate::store::{col, now_micros, uuid_col, Result, StoreError};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Money committed to a rail, not yet confirmed.
    Pending,
    /// Confirmed: either the posting of a pending transfer or a single-phase transfer.
    Posted,
    /// The pending transfer's money did not move.
    Voided,
    /// A posted transfer undone by a new one in the other direction.
    Reversal,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Posted => "posted",
            Phase::Voided => "voided",
            Phase::Reversal => "reversal",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "pending" => Some(Phase::Pending),
            "posted" => Some(Phase::Posted),
            "voided" => Some(Phase::Voided),
            "reversal" => Some(Phase::Reversal),
            _ => None,
        }
    }
}

/// A stored transfer, as much of it as postings need.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub id: Uuid,
    pub phase: Phase,
    pub debit_account: Uuid,
    pub credit_account: Uuid,
    pub amount: Money,
    pub pending_id: Option<Uuid>,
}

/// The four balance deltas one transfer makes on one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Deltas {
    debits_pending: i64,
    debits_posted: i64,
    credits_pending: i64,
    credits_posted: i64,
}

/// What a transfer of `x` does to its debit and its credit account.
fn deltas(phase: Phase, resolves_pending: bool, x: i64) -> (Deltas, Deltas) {
    let neg = x.saturating_neg();
    match (phase, resolves_pending) {
        (Phase::Pending, _) => (
            Deltas {
                debits_pending: x,
                ..Deltas::default()
            },
            Deltas {
                credits_pending: x,
                ..Deltas::default()
            },
        ),
        (Phase::Posted, true) => (
            Deltas {
                debits_pending: neg,
                debits_posted: x,
                ..Deltas::default()
            },
            Deltas {
                credits_pending: neg,
                credits_posted: x,
                ..Deltas::default()
            },
        ),
        (Phase::Voided, _) => (
            Deltas {
                debits_pending: neg,
                ..Deltas::default()
            },
            Deltas {
                credits_pending: neg,
                ..Deltas::default()
            },
        ),
        (Phase::Posted | Phase::Reversal, _) => (
            Deltas {
                debits_posted: x,
                ..Deltas::default()
            },
            Deltas {
                credits_posted: x,
                ..Deltas::default()
            },
        ),
    }
}

/// Creates the account on first use.
pub async fn ensure_account(conn: &mut Conn, a: &AccountRef) -> Result<Uuid> {
    let id = a.id();
    crate::store::sql::query(
        "INSERT INTO ledger_accounts (id, code, currency, client_id, kind, normal_side, \
         non_negative, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id.to_string())
    .bind(&a.code)
    .bind(a.currency.code())
    .bind(a.client_id.map(|c| c.to_string()))
    .bind(a.kind.as_str())
    .bind(a.kind.normal_side().as_str())
    .bind(i64::from(a.kind.non_negative()))
    .bind(now_micros())
    .execute(conn)
    .await?;
    Ok(id)
}

/// One transfer to write.
#[derive(Debug, Clone)]
pub struct NewTransfer<'a> {
    pub payment_id: Option<Uuid>,
    /// For money that belongs to no payment: what brought it (unique).
    pub ext_key: Option<&'a str>,
    /// `None`: the gateway's own book.
    pub client_id: Option<Uuid>,
    pub phase: Phase,
    pub debit_account: Uuid,
    pub credit_account: Uuid,
    pub amount: Money,
    /// The pending transfer this one posts or voids.
    pub pending_id: Option<Uuid>,
    /// The posted transfer this one reverses.
    pub reverses_id: Option<Uuid>,
    pub cause: &'a str,
}

/// Writes the transfer and its two entries; `None` when the payment already has a transfer
/// of that phase, the pending one was already resolved, or the external key was used:
/// nothing is written twice.
pub async fn write(conn: &mut Conn, t: &NewTransfer<'_>) -> Result<Option<Uuid>> {
    let id = Uuid::now_v7();
    let now = now_micros();
    let written = crate::store::sql::query(
        "INSERT INTO ledger_transfers (id, payment_id, phase, client_id, debit_account, \
         credit_account, amount_minor, currency, pending_id, reverses_id, cause, created_at, \
         ext_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id.to_string())
    .bind(t.payment_id.map(|p| p.to_string()))
    .bind(t.phase.as_str())
    .bind(t.client_id.map(|c| c.to_string()))
    .bind(t.debit_account.to_string())
    .bind(t.credit_account.to_string())
    .bind(t.amount.minor())
    .bind(t.amount.currency().code())
    .bind(t.pending_id.map(|p| p.to_string()))
    .bind(t.reverses_id.map(|p| p.to_string()))
    .bind(t.cause)
    .bind(now)
    .bind(t.ext_key)
    .execute(&mut *conn)
    .await?;
    if written.rows_affected() == 0 {
        return Ok(None);
    }
    let (debit, credit) = deltas(t.phase, t.pending_id.is_some(), t.amount.minor());
    crate::store::sql::query(
        "INSERT INTO ledger_entries (transfer_id, account_id, debits_pending, debits_posted, \
         credits_pending, credits_posted, at, client_id) VALUES \
         ($1, $2, $3, $4, $5, $6, $12, $13), ($1, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id.to_string())
    .bind(t.debit_account.to_string())
    .bind(debit.debits_pending)
    .bind(debit.debits_posted)
    .bind(debit.credits_pending)
    .bind(debit.credits_posted)
    .bind(t.credit_account.to_string())
    .bind(credit.debits_pending)
    .bind(credit.debits_posted)
    .bind(credit.credits_pending)
    .bind(credit.credits_posted)
    .bind(now)
    .bind(t.client_id.map(|c| c.to_string()))
    .execute(conn)
    .await?;
    Ok(Some(id))
}

/// The payment's transfer of that phase, if it has one.
pub async fn find(conn: &mut Conn, payment_id: Uuid, phase: Phase) -> Result<Option<Transfer>> {
    let row = crate::store::sql::query(
        "SELECT id, phase, debit_account, credit_account, amount_minor, currency, pending_id \
         FROM ledger_transfers WHERE payment_id = $1 AND phase = $2",
    )
    .bind(payment_id.to_string())
    .bind(phase.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(transfer_from).transpose()
}

/// Creates the accounts not stored yet, in the order given (the caller's: by id), in one
/// statement.
pub async fn ensure_accounts(conn: &mut Conn, accounts: Vec<AccountRef>) -> Result<()> {
    if accounts.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let text =
        |f: &dyn Fn(&AccountRef) -> Option<String>| Col::Text(accounts.iter().map(f).collect());
    let rows = Rows::new(vec![
        ("id", text(&|a| Some(a.id().to_string()))),
        ("code", text(&|a| Some(a.code.clone()))),
        ("currency", text(&|a| Some(a.currency.code().to_owned()))),
        ("client", text(&|a| a.client_id.map(|c| c.to_string()))),
        ("kind", text(&|a| Some(a.kind.as_str().to_owned()))),
        (
            "side",
            text(&|a| Some(a.kind.normal_side().as_str().to_owned())),
        ),
        (
            "non_negative",
            Col::Int(
                accounts
                    .iter()
                    .map(|a| Some(i64::from(a.kind.non_negative())))
                    .collect(),
            ),
        ),
    ]);
    let now = now_micros();
    for part in rows.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} INSERT INTO ledger_accounts (id, code, currency, client_id, kind, \
             normal_side, non_negative, created_at) SELECT u.id, u.code, u.currency, u.client, \
             u.kind, u.side, u.non_negative, $1 FROM u WHERE true ON CONFLICT DO NOTHING",
            part.cte(kind, 2)
        ))
        .bind(now)
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// [`write`] for many transfers: a statement for the transfers and one for their entries.
/// A transfer that exists already (same payment and phase, pending already resolved, external
/// key used) is not written, and neither are its entries.
pub async fn write_many(conn: &mut Conn, ts: &[NewTransfer<'_>]) -> Result<()> {
    if ts.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let ids: Vec<Uuid> = ts.iter().map(|_| Uuid::now_v7()).collect();
    let now = now_micros();
    let text =
        |f: &dyn Fn(&NewTransfer<'_>) -> Option<String>| Col::Text(ts.iter().map(f).collect());
    let rows = Rows::new(vec![
        (
            "id",
            Col::Text(ids.iter().map(|i| Some(i.to_string())).collect()),
        ),
        ("payment", text(&|t| t.payment_id.map(|p| p.to_string()))),
        ("phase", text(&|t| Some(t.phase.as_str().to_owned()))),
        ("client", text(&|t| t.client_id.map(|c| c.to_string()))),
        ("debit", text(&|t| Some(t.debit_account.to_string()))),
        ("credit", text(&|t| Some(t.credit_account.to_string()))),
        (
            "amount",
            Col::Int(ts.iter().map(|t| Some(t.amount.minor())).collect()),
        ),
        (
            "currency",
            text(&|t| Some(t.amount.currency().code().to_owned())),
        ),
        ("pending", text(&|t| t.pending_id.map(|p| p.to_string()))),
        ("reverses", text(&|t| t.reverses_id.map(|p| p.to_string()))),
        ("cause", text(&|t| Some(t.cause.to_owned()))),
        ("ext_key", text(&|t| t.ext_key.map(str::to_owned))),
    ]);
    if kind == crate::store::Kind::Postgres {
        // One statement: the transfers written by a data-modifying `WITH`, the two entries
        // of each one written beside them (none for a transfer that was not).
        let sides: Vec<(Deltas, Deltas)> = ts
            .iter()
            .map(|t| deltas(t.phase, t.pending_id.is_some(), t.amount.minor()))
            .collect();
        let int = |f: &dyn Fn(&(Deltas, Deltas)) -> i64| {
            Col::Int(sides.iter().map(|d| Some(f(d))).collect())
        };
        let entries = Rows::new(vec![
            (
                "id",
                Col::Text(ids.iter().map(|i| Some(i.to_string())).collect()),
            ),
            ("ddp", int(&|d| d.0.debits_pending)),
            ("ddq", int(&|d| d.0.debits_posted)),
            ("dcp", int(&|d| d.0.credits_pending)),
            ("dcq", int(&|d| d.0.credits_posted)),
            ("cdp", int(&|d| d.1.debits_pending)),
            ("cdq", int(&|d| d.1.debits_posted)),
            ("ccp", int(&|d| d.1.credits_pending)),
            ("ccq", int(&|d| d.1.credits_posted)),
        ]);
        crate::store::sql::query(&format!(
            "WITH {}, {}, w AS (INSERT INTO ledger_transfers (id, payment_id, phase, client_id, \
             debit_account, credit_account, amount_minor, currency, pending_id, reverses_id, \
             cause, created_at, ext_key) SELECT u.id, u.payment, u.phase, u.client, u.debit, \
             u.credit, u.amount, u.currency, u.pending, u.reverses, u.cause, $1, u.ext_key \
             FROM u WHERE true ON CONFLICT DO NOTHING RETURNING id) \
             INSERT INTO ledger_entries (transfer_id, account_id, debits_pending, \
             debits_posted, credits_pending, credits_posted, at, client_id) \
             SELECT u.id, u.debit, e.ddp, e.ddq, e.dcp, e.dcq, $1, u.client \
             FROM w JOIN u ON u.id = w.id JOIN e ON e.id = w.id \
             UNION ALL SELECT u.id, u.credit, e.cdp, e.cdq, e.ccp, e.ccq, $1, u.client \
             FROM w JOIN u ON u.id = w.id JOIN e ON e.id = w.id",
            rows.cte(kind, 2),
            entries.cte_as(kind, "e", 14)
        ))
        .bind(now)
        .bind_rows(kind, rows)
        .bind_rows(kind, entries)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    let mut written = std::collections::HashSet::with_capacity(ts.len());
    for part in rows.parts(kind) {
        let got: Vec<String> = crate::store::sql::query_scalar(&format!(
            "WITH {} INSERT INTO ledger_transfers (id, payment_id, phase, client_id, \
             debit_account, credit_account, amount_minor, currency, pending_id, reverses_id, \
             cause, created_at, ext_key) SELECT u.id, u.payment, u.phase, u.client, u.debit, \
             u.credit, u.amount, u.currency, u.pending, u.reverses, u.cause, $1, u.ext_key \
             FROM u WHERE true ON CONFLICT DO NOTHING RETURNING id",
            part.cte(kind, 2)
        ))
        .bind(now)
        .bind_rows(kind, part)
        .fetch_all(&mut *conn)
        .await?;
        written.extend(got);
    }
    if written.is_empty() {
        return Ok(());
    }
    // Two entries per transfer written: its debit account's and its credit account's.
    let mut entries: Vec<(String, Uuid, Deltas, Option<Uuid>)> =
        Vec::with_capacity(written.len().saturating_mul(2));
    for (id, t) in ids.iter().zip(ts) {
        let id = id.to_string();
        if !written.contains(&id) {
            continue;
        }
        let (debit, credit) = deltas(t.phase, t.pending_id.is_some(), t.amount.minor());
        entries.push((id.clone(), t.debit_account, debit, t.client_id));
        entries.push((id, t.credit_account, credit, t.client_id));
    }
    let int =
        |f: &dyn Fn(&Deltas) -> i64| Col::Int(entries.iter().map(|e| Some(f(&e.2))).collect());
    let rows = Rows::new(vec![
        (
            "transfer",
            Col::Text(entries.iter().map(|e| Some(e.0.clone())).collect()),
        ),
        (
            "account",
            Col::Text(entries.iter().map(|e| Some(e.1.to_string())).collect()),
        ),
        ("dp", int(&|d| d.debits_pending)),
        ("dq", int(&|d| d.debits_posted)),
        ("cp", int(&|d| d.credits_pending)),
        ("cq", int(&|d| d.credits_posted)),
        (
            "client",
            Col::Text(entries.iter().map(|e| e.3.map(|c| c.to_string())).collect()),
        ),
    ]);
    for part in rows.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} INSERT INTO ledger_entries (transfer_id, account_id, debits_pending, \
             debits_posted, credits_pending, credits_posted, at, client_id) SELECT u.transfer, \
             u.account, u.dp, u.dq, u.cp, u.cq, $1, u.client FROM u WHERE true",
            part.cte(kind, 2)
        ))
        .bind(now)
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// [`find`] for many payments: each one's transfer of that phase, by payment.
pub async fn find_many(
    conn: &mut Conn,
    payment_ids: &[Uuid],
    phase: Phase,
) -> Result<HashMap<Uuid, Transfer>> {
    let mut found = HashMap::with_capacity(payment_ids.len());
    if payment_ids.is_empty() {
        return Ok(found);
    }
    let kind = conn.kind();
    let per_statement = match kind {
        crate::store::Kind::Postgres => payment_ids.len(),
        crate::store::Kind::Sqlite => 5_000,
    };
    for chunk in payment_ids.chunks(per_statement) {
        let sql = format!(
            "SELECT id, payment_id, phase, debit_account, credit_account, amount_minor, \
             currency, pending_id FROM ledger_transfers WHERE phase = $1 AND {}",
            crate::store::sql::in_list(kind, "payment_id", 2, chunk.len())
        );
        let rows = crate::store::sql::query(&sql)
            .bind(phase.as_str())
            .bind_list(kind, chunk.iter().map(Uuid::to_string).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let payment = uuid_col(&row, "payment_id")?;
            found.insert(payment, transfer_from(&row)?);
        }
    }
    Ok(found)
}

fn transfer_from(row: &crate::store::sql::Row) -> Result<Transfer> {
    let phase: String = col(row, "phase")?;
    let currency: String = col(row, "currency")?;
    let currency: Currency = currency
        .parse()
        .map_err(|_| StoreError::Corrupt("transfer currency".into()))?;
    let pending: Option<String> = col(row, "pending_id")?;
    Ok(Transfer {
        id: uuid_col(row, "id")?,
        phase: Phase::parse(&phase).ok_or_else(|| StoreError::Corrupt(phase.clone()))?,
        debit_account: uuid_col(row, "debit_account")?,
        credit_account: uuid_col(row, "credit_account")?,
        amount: Money::from_minor(col(row, "amount_minor")?, currency)
            .map_err(|_| StoreError::Corrupt("transfer amount".into()))?,
        pending_id: pending.and_then(|p| Uuid::parse_str(&p).ok()),
    })
}

/// Refuses (by failing the transaction) when an account that must not go negative would:
/// what its other side holds, pending included, may not exceed what its own side has posted.
pub async fn check_not_negative(conn: &mut Conn, account: Uuid) -> Result<()> {
    let row = crate::store::sql::query(
        "SELECT a.normal_side, a.non_negative, \
         CAST(COALESCE(SUM(e.debits_pending), 0) AS BIGINT) AS dp, \
         CAST(COALESCE(SUM(e.debits_posted), 0) AS BIGINT) AS dq, \
         CAST(COALESCE(SUM(e.credits_pending), 0) AS BIGINT) AS cp, \
         CAST(COALESCE(SUM(e.credits_posted), 0) AS BIGINT) AS cq \
         FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id \
         WHERE a.id = $1 GROUP BY a.normal_side, a.non_negative",
    )
    .bind(account.to_string())
    .fetch_one(conn)
    .await?;
    let non_negative: i64 = col(&row, "non_negative")?;
    if non_negative == 0 {
        return Ok(());
    }
    let side: String = col(&row, "normal_side")?;
    let (dp, dq, cp, cq): (i64, i64, i64, i64) = (
        col(&row, "dp")?,
        col(&row, "dq")?,
        col(&row, "cp")?,
        col(&row, "cq")?,
    );
    let ok = match Side::parse(&side) {
        Some(Side::Debit) => cp.saturating_add(cq) <= dq,
        Some(Side::Credit) => dp.saturating_add(dq) <= cq,
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "ledger account {account} would go below zero"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_balances() {
        for phase in [
            Phase::Pending,
            Phase::Posted,
            Phase::Voided,
            Phase::Reversal,
        ] {
            for resolves in [false, true] {
                let (d, c) = deltas(phase, resolves, 700);
                let debits =
                    d.debits_pending + d.debits_posted + c.debits_pending + c.debits_posted;
                let credits =
                    d.credits_pending + d.credits_posted + c.credits_pending + c.credits_posted;
                assert_eq!(debits, credits, "{phase:?}");
                assert_eq!(d.debits_pending, c.credits_pending);
                assert_eq!(d.debits_posted, c.credits_posted);
            }
        }
    }

    #[test]
    fn posting_moves_pending_to_posted() {
        let (d, _) = deltas(Phase::Pending, false, 5);
        let (d2, _) = deltas(Phase::Posted, true, 5);
        assert_eq!(d.debits_pending + d2.debits_pending, 0);
        assert_eq!(d2.debits_posted, 5);
    }
}
