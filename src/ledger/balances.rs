//! Reading the ledger: balances are sums over entries, never a stored running total.

use super::chart::Side;
use crate::store::Row;
use crate::store::{col, from_micros, uuid_col, Db, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Balance {
    pub debits_pending: i64,
    pub debits_posted: i64,
    pub credits_pending: i64,
    pub credits_posted: i64,
}

impl Balance {
    /// Posted balance on the account's normal side.
    pub fn posted(&self, side: Side) -> i64 {
        match side {
            Side::Debit => self.debits_posted.saturating_sub(self.credits_posted),
            Side::Credit => self.credits_posted.saturating_sub(self.debits_posted),
        }
    }

    /// What is committed but unconfirmed, on the account's normal side.
    pub fn pending(&self, side: Side) -> i64 {
        match side {
            Side::Debit => self.debits_pending.saturating_sub(self.credits_pending),
            Side::Credit => self.credits_pending.saturating_sub(self.debits_pending),
        }
    }

    fn from_row(row: &Row) -> Result<Balance> {
        Ok(Balance {
            debits_pending: col(row, "dp")?,
            debits_posted: col(row, "dq")?,
            credits_pending: col(row, "cp")?,
            credits_posted: col(row, "cq")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub code: String,
    pub currency: String,
    pub client_id: Option<Uuid>,
    pub kind: String,
    pub normal_side: Side,
    pub non_negative: bool,
    pub balance: Balance,
    pub created_at: DateTime<Utc>,
}

const SUMS: &str = "CAST(COALESCE(SUM(e.debits_pending), 0) AS BIGINT) AS dp, \
    CAST(COALESCE(SUM(e.debits_posted), 0) AS BIGINT) AS dq, \
    CAST(COALESCE(SUM(e.credits_pending), 0) AS BIGINT) AS cp, \
    CAST(COALESCE(SUM(e.credits_posted), 0) AS BIGINT) AS cq";

const ACCOUNT_COLUMNS: &str =
    "a.id, a.code, a.currency, a.client_id, a.kind, a.normal_side, a.non_negative, a.created_at";

fn account(row: &Row) -> Result<Account> {
    let side: String = col(row, "normal_side")?;
    let client: Option<String> = col(row, "client_id")?;
    let non_negative: i64 = col(row, "non_negative")?;
    Ok(Account {
        id: uuid_col(row, "id")?,
        code: col(row, "code")?,
        currency: col(row, "currency")?,
        client_id: client.and_then(|c| Uuid::parse_str(&c).ok()),
        kind: col(row, "kind")?,
        normal_side: Side::parse(&side)
            .ok_or_else(|| crate::store::StoreError::Corrupt(side.clone()))?,
        non_negative: non_negative != 0,
        balance: Balance::from_row(row)?,
        created_at: from_micros(col(row, "created_at")?),
    })
}

/// Accounts with their balances: a client's (`Some`), or every account (`None`).
pub async fn accounts(db: &Db, client: Option<Uuid>) -> Result<Vec<Account>> {
    let filter = if client.is_some() {
        "WHERE a.client_id = $1"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS}, {SUMS} FROM ledger_accounts a \
         LEFT JOIN ledger_entries e ON e.account_id = a.id {filter} \
         GROUP BY {ACCOUNT_COLUMNS} ORDER BY a.code, a.currency"
    );
    let mut q = crate::store::sql::query(&sql);
    if let Some(c) = client {
        q = q.bind(c.to_string());
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter().map(account).collect()
}

/// One account, if it exists and (for `Some(client)`) belongs to that client.
pub async fn account_of(db: &Db, client: Option<Uuid>, id: Uuid) -> Result<Option<Account>> {
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS}, {SUMS} FROM ledger_accounts a \
         LEFT JOIN ledger_entries e ON e.account_id = a.id WHERE a.id = $1 \
         GROUP BY {ACCOUNT_COLUMNS}"
    );
    let row = crate::store::sql::query(&sql)
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    let Some(a) = row.as_ref().map(account).transpose()? else {
        return Ok(None);
    };
    if client.is_some() && a.client_id != client {
        return Ok(None);
    }
    Ok(Some(a))
}

/// One entry: what one transfer did to one account.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub seq: i64,
    pub transfer_id: Uuid,
    pub phase: String,
    pub payment_id: Option<Uuid>,
    pub pending_id: Option<Uuid>,
    pub reverses_id: Option<Uuid>,
    pub debit_account: Uuid,
    pub credit_account: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub cause: String,
    pub deltas: Balance,
    pub at: DateTime<Utc>,
}

fn opt_uuid(row: &Row, name: &str) -> Result<Option<Uuid>> {
    let s: Option<String> = col(row, name)?;
    Ok(s.and_then(|s| Uuid::parse_str(&s).ok()))
}

/// A page of an account's entries in the order they were written, after `after` (a `seq`).
pub async fn entries(db: &Db, account: Uuid, after: i64, limit: i64) -> Result<Vec<Entry>> {
    let rows = crate::store::sql::query(
        "SELECT e.seq, e.transfer_id, e.debits_pending AS dp, e.debits_posted AS dq, \
         e.credits_pending AS cp, e.credits_posted AS cq, e.at, t.phase, t.payment_id, \
         t.pending_id, t.reverses_id, t.debit_account, t.credit_account, t.amount_minor, \
         t.currency, t.cause FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id \
         WHERE e.account_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3",
    )
    .bind(account.to_string())
    .bind(after)
    .bind(limit.clamp(1, 500))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Entry {
                seq: col(r, "seq")?,
                transfer_id: uuid_col(r, "transfer_id")?,
                phase: col(r, "phase")?,
                payment_id: opt_uuid(r, "payment_id")?,
                pending_id: opt_uuid(r, "pending_id")?,
                reverses_id: opt_uuid(r, "reverses_id")?,
                debit_account: uuid_col(r, "debit_account")?,
                credit_account: uuid_col(r, "credit_account")?,
                amount_minor: col(r, "amount_minor")?,
                currency: col(r, "currency")?,
                cause: col(r, "cause")?,
                deltas: Balance::from_row(r)?,
                at: from_micros(col(r, "at")?),
            })
        })
        .collect()
}

/// Totals of every account of a currency: debits equal credits, pending and posted apart.
#[derive(Debug, Clone, Serialize)]
pub struct CurrencyTotals {
    pub currency: String,
    pub totals: Balance,
}

impl CurrencyTotals {
    pub fn balanced(&self) -> bool {
        self.totals.debits_pending == self.totals.credits_pending
            && self.totals.debits_posted == self.totals.credits_posted
    }
}

pub async fn trial_balance(db: &Db, client: Option<Uuid>) -> Result<Vec<CurrencyTotals>> {
    let filter = if client.is_some() {
        "WHERE a.client_id = $1"
    } else {
        ""
    };
    let sql = format!(
        "SELECT a.currency, {SUMS} FROM ledger_entries e \
         JOIN ledger_accounts a ON a.id = e.account_id {filter} \
         GROUP BY a.currency ORDER BY a.currency"
    );
    let mut q = crate::store::sql::query(&sql);
    if let Some(c) = client {
        q = q.bind(c.to_string());
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok(CurrencyTotals {
                currency: col(r, "currency")?,
                totals: Balance::from_row(r)?,
            })
        })
        .collect()
}

/// Transfers whose entries do not balance (there should be none).
pub async fn unbalanced_transfers(db: &Db) -> Result<Vec<Uuid>> {
    let rows = crate::store::sql::query(
        "SELECT transfer_id FROM ledger_entries GROUP BY transfer_id HAVING \
         SUM(debits_pending) <> SUM(credits_pending) OR SUM(debits_posted) <> SUM(credits_posted) \
         OR COUNT(*) <> 2",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| uuid_col(r, "transfer_id")).collect()
}
