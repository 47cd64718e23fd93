//! The entries of the inbound camt.053/054 files that speak of our payments, read through the
//! statements reader (`railgate_statements`) that reconciliation uses too.
//!
//! Only booked entries (`BOOK`) count. A debit whose end-to-end id is one of ours is a
//! booking; a credit coded as a return that names our end-to-end id is a return. A batch entry
//! contributes one item per transaction detail it lists. `RvslInd=true` (the bank undoing
//! its own booking) is left to reconciliation, as are entries without an end-to-end id.

use crate::domain::Money;
use railgate_rail::inbound::{InboundFile, InboundFiles};
use railgate_statements::{read_all, Direction, EntryStatus, InputFormat, StatementLine};
use std::collections::HashSet;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Money left the account for one of our payments.
    Booking,
    /// Money came back for one of our payments.
    Return,
}

impl EntryKind {
    fn as_str(self) -> &'static str {
        match self {
            EntryKind::Booking => "booking",
            EntryKind::Return => "return",
        }
    }
}

/// One item of a statement about one of our payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// What makes the entry unique at the bank: kind, end-to-end id and the bank's entry
    /// reference (`AcctSvcrRef`), the same in a camt.054 and the camt.053 that repeats it.
    pub key: String,
    pub kind: EntryKind,
    pub end_to_end_id: String,
    /// The attempt our end-to-end id encodes.
    pub attempt_id: Option<Uuid>,
    /// The instructed amount when the bank shows it, else the booked amount; `None` for a
    /// batch entry that does not give this payment's amount.
    pub amount: Option<Money>,
    pub bank_ref: Option<String>,
    /// A return's reason code (`AC04`, `MD07`...).
    pub reason: Option<String>,
    pub booking_date: Option<chrono::NaiveDate>,
    /// Where it was read: file name and entry position.
    pub source: String,
}

/// Every entry about our payments in these files, each key once (first seen wins). A file
/// that cannot be read is skipped with a warning; it is the bank's to resend.
pub fn read_entries(files: &[InboundFile], rail: &dyn InboundFiles) -> Vec<FileEntry> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for f in files {
        let statements = match read_all(f.bytes.as_slice(), InputFormat::Camt) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %f.name, error = %e, "Unreadable bank statement skipped");
                continue;
            }
        };
        for line in statements.iter().flat_map(|s| s.lines.iter()) {
            for e in of_line(&f.name, line, rail) {
                if seen.insert(e.key.clone()) {
                    out.push(e);
                }
            }
        }
    }
    out
}

fn of_line(file: &str, line: &StatementLine, rail: &dyn InboundFiles) -> Vec<FileEntry> {
    if line.status != EntryStatus::Booked {
        return Vec::new();
    }
    let bank_reversal = line.return_info.as_ref().is_some_and(|r| r.bank_reversal);
    if bank_reversal {
        return Vec::new();
    }
    let kind = match (line.direction, line.is_return()) {
        (Direction::Debit, false) => EntryKind::Booking,
        (Direction::Credit, true) => EntryKind::Return,
        // Money in that is not a return (a collection), or a debit coded as a return.
        (Direction::Credit, false) | (Direction::Debit, true) => return Vec::new(),
    };
    let source = format!("{file}, {}", line.location);
    let make = |e2e: &str, amount: Option<Money>| FileEntry {
        key: format!(
            "{}:{e2e}:{}",
            kind.as_str(),
            line.bank_entry_ref.as_deref().unwrap_or("-")
        ),
        kind,
        end_to_end_id: e2e.to_owned(),
        attempt_id: rail.attempt_of(e2e),
        amount,
        bank_ref: line.bank_entry_ref.clone(),
        reason: line.return_reason().map(str::to_owned),
        booking_date: line.booking_date,
        source: source.clone(),
    };
    if let Some(batch) = &line.batch {
        return batch
            .transactions
            .iter()
            .filter_map(|t| {
                let e2e = t.end_to_end_id.as_deref()?;
                Some(make(e2e, t.amount))
            })
            .collect();
    }
    let e2e = match kind {
        EntryKind::Booking => line.reference.as_deref(),
        EntryKind::Return => line.original_end_to_end_id(),
    };
    e2e.map(|id| vec![make(id, Some(line.matching_amount()))])
        .unwrap_or_default()
}
