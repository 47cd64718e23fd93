//! Payrolls through FSPIOP bulk: `POST /bulkQuotes` and `POST /bulkTransfers` (API definition
//! §6.9–6.10), behind the gateway's generic batch path (`railgate_rail::batch`).
//!
//! One upload (`submit_batch`, our batch id, at most 1,000 lines):
//!
//! ```text
//! GET /parties/{Type}/{ID}      per line          → PUT /parties (the payee FSP) | …/error (line fails)
//! POST /bulkQuotes              per payee FSP     → PUT /bulkQuotes/{id} (terms per line) | …/error
//! POST /bulkTransfers           per payee FSP     → 202: the upload is Accepted
//!                                                 → later PUT /bulkTransfers/{id} (result per line)
//! GET /bulkTransfers/{id}       when that answer is later than `bulk_answer_wait`
//! ```
//!
//! Ids: `bulkQuoteId` and `bulkTransferId` are derived from our batch id and the payee FSP
//! ([`wire::bulk_id`]); each line's `quoteId`, `transactionId` and `transferId` are derived
//! from its attempt id exactly as for a single disbursement ([`crate::wire::derive_id`]), so
//! a line's transfer is the same FSPIOP transfer whichever way it travels: the single-line
//! `GET /transfers/{id}` finds it, and a line later sent on its own can never be paid a
//! second time under another id. An upload tried again resends the stored bytes.
//!
//! Checks: a bulk callback must name a bulk this adapter sent and come from the payee FSP it
//! went to (or the switch, for errors); each quote result must name our amount and currency
//! (another amount is reported as such: the gateway records a conflict, and the line is
//! never sent), and its ILP packet our payee, ids and amount; each fulfilment must hash to
//! its line's condition, or the line is not completed.
//!
//! What is kept between the steps lives in [`book`], in memory: see its doc for what a
//! process that did not send a bulk (or restarted) can and cannot settle.

pub mod book;
mod results;
mod send;
pub mod wire;

pub use send::unfit;

use railgate_rail::{Attempt, BatchPlan, PlannedBatch};

/// Cuts a payroll chunk into bulks of at most `max_lines` (1,000 at most); lines a bulk cannot
/// carry go one by one.
pub fn plan(attempts: &[Attempt], max_lines: usize) -> BatchPlan {
    let mut fit = Vec::with_capacity(attempts.len());
    let mut refused = Vec::new();
    for a in attempts {
        match unfit(a) {
            Some(why) => refused.push((a.attempt_id, why)),
            None => fit.push(a.clone()),
        }
    }
    let max = max_lines.clamp(1, wire::MAX_INDIVIDUAL);
    BatchPlan {
        batches: fit
            .chunks(max)
            .map(|c| PlannedBatch {
                batch_id: uuid::Uuid::now_v7(),
                lines: c.iter().map(|a| a.attempt_id).collect(),
            })
            .collect(),
        refused,
    }
}
