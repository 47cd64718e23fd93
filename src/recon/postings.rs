//! The ledger entries reconciliation causes, in one place.
//!
//! Matched statement lines settle the rail's clearing account into its settlement account
//! (fees to fees); resolving a break posts what the finance officer decided (money of unknown
//! origin to suspense, suspense to premiums, a difference to fees, …). Entries are planned here
//! as data, kept with the break they belong to, and written by [`post`] as single-phase
//! transfers keyed by what caused them, so a replay posts nothing twice.

use crate::domain::{Currency, Money};
use crate::ledger::chart::{self, AccountRef};
use crate::ledger::transfers::{self, NewTransfer, Phase};
use crate::store::Conn;
use crate::store::{Result, StoreError};
use serde::Serialize;
use uuid::Uuid;

/// One balanced entry: `amount_minor` from `debit` to `credit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Account codes, as the ledger API shows them.
    pub debit: String,
    pub credit: String,
    pub amount_minor: i64,
    pub currency: String,
    pub memo: String,
    #[serde(skip)]
    accounts: (AccountRef, AccountRef),
    #[serde(skip)]
    client: Uuid,
}

fn entry(
    client: Uuid,
    debit: AccountRef,
    credit: AccountRef,
    amount_minor: i64,
    memo: &str,
) -> Entry {
    Entry {
        debit: debit.code.clone(),
        credit: credit.code.clone(),
        amount_minor,
        currency: debit.currency.code().to_owned(),
        memo: memo.to_owned(),
        accounts: (debit, credit),
        client,
    }
}

/// The accounts reconciliation posts to, for one client, rail and currency.
pub struct Book<'a> {
    pub client: Uuid,
    pub rail: &'a str,
    pub programme: Option<&'a str>,
    pub currency: Currency,
}

impl Book<'_> {
    pub fn clearing(&self) -> AccountRef {
        chart::rail_clearing(self.client, self.rail, self.currency)
    }
    pub fn settlement(&self) -> AccountRef {
        chart::rail_settlement(self.client, self.rail, self.currency)
    }
    pub fn suspense(&self) -> AccountRef {
        chart::suspense(Some(self.client), self.currency)
    }
    pub fn fees(&self) -> AccountRef {
        chart::fees(self.client, self.rail, self.currency)
    }
    pub fn premiums(&self) -> AccountRef {
        chart::premiums_receivable(self.client, self.programme, self.currency)
    }
    pub fn benefits(&self) -> AccountRef {
        chart::benefits_payable(self.client, self.programme, self.currency)
    }

    pub fn entry(
        &self,
        debit: AccountRef,
        credit: AccountRef,
        amount_minor: i64,
        memo: &str,
    ) -> Entry {
        entry(self.client, debit, credit, amount_minor, memo)
    }
}

/// What matched lines settle: disbursements leave clearing for settlement, collections arrive
/// in settlement from clearing, and the rail's fees go to fees. Zero amounts post nothing.
pub fn settlement_entries(
    book: &Book<'_>,
    disbursed_minor: i64,
    collected_minor: i64,
    fee_minor: i64,
) -> Vec<Entry> {
    let mut out = Vec::new();
    if disbursed_minor > 0 {
        out.push(book.entry(
            book.clearing(),
            book.settlement(),
            disbursed_minor,
            "statement settles disbursements cleared by the rail",
        ));
    }
    if collected_minor > 0 {
        out.push(book.entry(
            book.settlement(),
            book.clearing(),
            collected_minor,
            "statement settles collections cleared by the rail",
        ));
    }
    if fee_minor > 0 {
        out.push(book.entry(
            book.fees(),
            book.settlement(),
            fee_minor,
            "rail fees shown on the statement",
        ));
    }
    out
}

/// Writes the entries as posted transfers keyed `{key}:{n}`: a replay posts nothing.
pub async fn post(conn: &mut Conn, key: &str, entries: &[Entry], cause: &str) -> Result<()> {
    for (n, e) in entries.iter().enumerate() {
        let (debit, credit) = &e.accounts;
        // In id order, so two transactions creating the same accounts wait rather than deadlock.
        let (first, second) = if debit.id() <= credit.id() {
            (debit, credit)
        } else {
            (credit, debit)
        };
        transfers::ensure_account(conn, first).await?;
        transfers::ensure_account(conn, second).await?;
        let amount = Money::from_minor(e.amount_minor, debit.currency)
            .map_err(|_| StoreError::Corrupt("reconciliation entry amount".into()))?;
        let ext_key = format!("{key}:{n}");
        let cause = format!("{cause}: {}", e.memo);
        transfers::write(
            conn,
            &NewTransfer {
                payment_id: None,
                ext_key: Some(&ext_key),
                client_id: Some(e.client),
                phase: Phase::Posted,
                debit_account: debit.id(),
                credit_account: credit.id(),
                amount,
                pending_id: None,
                reverses_id: None,
                cause: &cause,
            },
        )
        .await?;
    }
    metrics::counter!("railgate_recon_entries_posted_total")
        .increment(u64::try_from(entries.len()).unwrap_or(0));
    Ok(())
}
