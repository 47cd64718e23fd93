//! The ledger entries reconciliation causes, in one place.
//!
//! A matched statement line settles the rail's clearing account into its settlement account;
//! resolving a break posts what the finance officer decided (money of unknown origin to
//! suspense, suspense to premiums received, a difference to fees, …). The entries are planned
//! here as data, recorded with the break they belong to, and handed to [`post`], the only
//! function that touches the ledger.

use crate::store::Result;
use serde::Serialize;
use sqlx::AnyConnection;
use uuid::Uuid;

/// One balanced entry: `amount_minor` from `debit` to `credit`, in `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub debit: String,
    pub credit: String,
    pub amount_minor: i64,
    pub currency: String,
    pub memo: String,
}

pub fn rail_clearing(client: Uuid, rail: &str) -> String {
    format!("client:{client}:rail:{rail}:clearing")
}
pub fn rail_settlement(client: Uuid, rail: &str) -> String {
    format!("client:{client}:rail:{rail}:settlement")
}
pub fn suspense(client: Uuid) -> String {
    format!("client:{client}:suspense")
}
pub fn premiums_received(client: Uuid, programme: &str) -> String {
    format!("client:{client}:premiums_received:{programme}")
}
pub fn benefits_payable(client: Uuid, programme: &str) -> String {
    format!("client:{client}:benefits_payable:{programme}")
}
pub fn fees(client: Uuid, rail: &str) -> String {
    format!("client:{client}:fees:{rail}")
}

/// What a matched line settles: the payment's money leaves clearing for settlement (a
/// disbursement) or arrives in settlement from clearing (a collection); the rail's fee goes to
/// fees.
pub fn settlement_entries(
    client: Uuid,
    rail: &str,
    disbursement: bool,
    amount_minor: i64,
    fee_minor: i64,
    currency: &str,
) -> Vec<Entry> {
    let (debit, credit) = if disbursement {
        (rail_clearing(client, rail), rail_settlement(client, rail))
    } else {
        (rail_settlement(client, rail), rail_clearing(client, rail))
    };
    let mut out = vec![Entry {
        debit,
        credit,
        amount_minor,
        currency: currency.to_owned(),
        memo: "statement settles the rail's clearing".into(),
    }];
    if fee_minor > 0 {
        out.push(Entry {
            debit: fees(client, rail),
            credit: rail_settlement(client, rail),
            amount_minor: fee_minor,
            currency: currency.to_owned(),
            memo: "rail fee shown on the statement".into(),
        });
    }
    out
}

/// Writes the entries to the ledger under `key` (a replay with the same key posts nothing).
///
/// The double-entry ledger is a separate part of the gateway; until it takes reconciliation
/// postings this records nothing beyond the plan kept with the break or run.
pub async fn post(_conn: &mut AnyConnection, _key: &str, entries: &[Entry]) -> Result<()> {
    metrics::counter!("railgate_recon_entries_planned_total")
        .increment(u64::try_from(entries.len()).unwrap_or(0));
    Ok(())
}
