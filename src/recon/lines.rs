//! Statement lines between the reader's model and the stored row.
//!
//! The reader's batch and return details have no serde form of their own (they are pure
//! model types), so they are mirrored here into the line's `extra` JSON column.

use crate::domain::{Currency, Money};
use crate::store::recon::LineRow;
use chrono::NaiveDate;
use railgate_statements::{
    BatchInfo, BatchTransaction, Counterparty, Direction, EntryStatus, Location, ReturnInfo,
    StatementLine,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch: Option<BatchJson>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "return")]
    ret: Option<ReturnJson>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct BatchJson {
    message_id: Option<String>,
    payment_info_id: Option<String>,
    number_of_transactions: Option<u32>,
    total_minor: Option<i64>,
    transactions: Vec<TxJson>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TxJson {
    end_to_end_id: Option<String>,
    rail_transaction_id: Option<String>,
    amount_minor: Option<i64>,
    counterparty_name: Option<String>,
    counterparty_account: Option<String>,
    creditor_reference: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ReturnJson {
    reason_code: Option<String>,
    original_end_to_end_id: Option<String>,
    bank_reversal: bool,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub fn status_str(s: EntryStatus) -> &'static str {
    match s {
        EntryStatus::Booked => "booked",
        EntryStatus::Pending => "pending",
        EntryStatus::Info => "info",
    }
}

/// The row to store for a line read from an upload.
pub fn to_row(l: &StatementLine) -> LineRow {
    let extra = if l.batch.is_some() || l.return_info.is_some() {
        let e = Extra {
            batch: l.batch.as_deref().map(|b| BatchJson {
                message_id: b.message_id.clone(),
                payment_info_id: b.payment_info_id.clone(),
                number_of_transactions: b.number_of_transactions,
                total_minor: b.total.map(Money::minor),
                transactions: b
                    .transactions
                    .iter()
                    .map(|t| TxJson {
                        end_to_end_id: t.end_to_end_id.clone(),
                        rail_transaction_id: t.rail_transaction_id.clone(),
                        amount_minor: t.amount.map(Money::minor),
                        counterparty_name: t.counterparty.as_ref().and_then(|c| c.name.clone()),
                        counterparty_account: t
                            .counterparty
                            .as_ref()
                            .and_then(|c| c.account.clone()),
                        creditor_reference: t.creditor_reference.clone(),
                    })
                    .collect(),
            }),
            ret: l.return_info.as_deref().map(|r| ReturnJson {
                reason_code: r.reason_code.clone(),
                original_end_to_end_id: r.original_end_to_end_id.clone(),
                bank_reversal: r.bank_reversal,
            }),
        };
        serde_json::to_string(&e).ok()
    } else {
        None
    };
    LineRow {
        line_no: to_i64(l.line_no),
        section: i64::from(l.location.section),
        entry: to_i64(l.location.entry),
        source_line: to_i64(l.location.source_line),
        byte_offset: to_i64(l.location.byte_offset),
        status: status_str(l.status),
        line_date: l.date().map(|d| d.to_string()),
        booking_date: l.booking_date.map(|d| d.to_string()),
        value_date: l.value_date.map(|d| d.to_string()),
        amount_minor: l.amount.minor(),
        instructed_minor: l.instructed_amount.map(Money::minor),
        currency: l.amount.currency().code().to_owned(),
        direction: l.direction.as_str(),
        reference: l.reference.clone(),
        rail_transaction_id: l.rail_transaction_id.clone(),
        receipt: l.receipt.clone(),
        creditor_reference: l.creditor_reference.clone(),
        remittance: l.remittance.clone(),
        bank_entry_ref: l.bank_entry_ref.clone(),
        counterparty_name: l.counterparty.as_ref().and_then(|c| c.name.clone()),
        counterparty_account: l.counterparty.as_ref().and_then(|c| c.account.clone()),
        fee_minor: l.fee.map(Money::minor),
        bank_transaction_code: l.bank_transaction_code.clone(),
        extra,
    }
}

fn date(s: &Option<String>) -> Option<NaiveDate> {
    s.as_deref().and_then(|d| d.parse().ok())
}

/// The line for the matcher, numbered `line_no` within the run. `None` when the stored
/// currency or amount no longer parses (which the upload would have refused).
pub fn from_row(r: &LineRow, line_no: u64) -> Option<StatementLine> {
    let currency: Currency = r.currency.parse().ok()?;
    let money = |m: i64| Money::from_minor(m, currency).ok();
    let counterparty = |name: &Option<String>, account: &Option<String>| {
        let c = Counterparty {
            name: name.clone(),
            account: account.clone(),
        };
        (!c.is_empty()).then_some(c)
    };
    let extra: Extra = r
        .extra
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    Some(StatementLine {
        line_no,
        status: match r.status {
            "booked" => EntryStatus::Booked,
            "pending" => EntryStatus::Pending,
            _ => EntryStatus::Info,
        },
        booking_date: date(&r.booking_date),
        value_date: date(&r.value_date),
        amount: money(r.amount_minor)?,
        instructed_amount: r.instructed_minor.and_then(money),
        direction: if r.direction == "credit" {
            Direction::Credit
        } else {
            Direction::Debit
        },
        reference: r.reference.clone(),
        rail_transaction_id: r.rail_transaction_id.clone(),
        receipt: r.receipt.clone(),
        creditor_reference: r.creditor_reference.clone(),
        remittance: r.remittance.clone(),
        bank_entry_ref: r.bank_entry_ref.clone(),
        counterparty: counterparty(&r.counterparty_name, &r.counterparty_account),
        fee: r.fee_minor.and_then(money),
        bank_transaction_code: r.bank_transaction_code.clone(),
        batch: extra.batch.map(|b| {
            Box::new(BatchInfo {
                message_id: b.message_id,
                payment_info_id: b.payment_info_id,
                number_of_transactions: b.number_of_transactions,
                total: b.total_minor.and_then(money),
                transactions: b
                    .transactions
                    .into_iter()
                    .map(|t| BatchTransaction {
                        counterparty: counterparty(&t.counterparty_name, &t.counterparty_account),
                        end_to_end_id: t.end_to_end_id,
                        rail_transaction_id: t.rail_transaction_id,
                        amount: t.amount_minor.and_then(money),
                        creditor_reference: t.creditor_reference,
                    })
                    .collect(),
            })
        }),
        return_info: extra.ret.map(|r| {
            Box::new(ReturnInfo {
                reason_code: r.reason_code,
                original_end_to_end_id: r.original_end_to_end_id,
                bank_reversal: r.bank_reversal,
            })
        }),
        location: Location {
            section: u32::try_from(r.section).unwrap_or(0),
            entry: to_u64(r.entry),
            source_line: to_u64(r.source_line),
            byte_offset: to_u64(r.byte_offset),
        },
    })
}
