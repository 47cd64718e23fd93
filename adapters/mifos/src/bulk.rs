//! Payment Hub EE's bulk API (`POST /batchtransactions`, a CSV file), built so that none of
//! its quirks loses or merges a line.
//!
//! PH-EE's bulk processor:
//! - reads the payment mode of a whole (sub-)batch from its **first row**: a file holding two
//!   modes sends half its lines the wrong way → we put one payment mode per file;
//! - **drops** every row after the first with the same payee identifier, identifier type,
//!   amount and currency ("Duplicate transaction."), whatever its `request_id` → two such
//!   payments (a beneficiary owed two equal instalments) go into different files;
//! - splits rows on `,` with no quoting → a field holding a comma or a line break would shift
//!   the columns: identifiers that contain one are refused, free text is cleaned;
//! - checks every row's field count against its 15 configured column names → we always write
//!   all 15 columns;
//! - refuses files over 100,000 bytes → files are cut below `max_file_bytes`;
//! - forwards each row to `/channel/transfer` with `X-CorrelationID` = the row's `request_id`,
//!   and in `mojaloop` mode always as an MSISDN payee → `request_id` is our attempt id, and
//!   non-MSISDN payees are refused in that mode.
//!
//! How the gateway uses it: `plan` the payroll's attempts into batches; store each batch's
//! `correlation_id` and line list with the attempts; upload each with
//! `PhEeAdapter::submit_bulk` (keep the returned batch id as the lines' rail reference); on a
//! batch callback (a hint) or on a timer (`SuggestedCallbackSeconds`), read
//! `PhEeAdapter::bulk_results` and apply them item by item with `account_for`. A line PH-EE
//! has no record of once the batch is finished was never sent: it can go in a later batch
//! under the same attempt id. Single-line `inquire` works for bulk lines too.

use railgate_rail::{Attempt, Money, PartyIdType, RailStatus};
use std::collections::HashMap;
use uuid::Uuid;

/// PH-EE's configured column names, in the order we write them.
pub const COLUMNS: [&str; 15] = [
    "id",
    "request_id",
    "payment_mode",
    "payer_identifier_type",
    "payer_identifier",
    "payee_identifier_type",
    "payee_identifier",
    "amount",
    "currency",
    "note",
    "account_number",
    "program_shortcode",
    "cycle",
    "payee_dfsp_id",
    "batch_id",
];

/// PH-EE's default `csv.size`.
pub const PHEE_MAX_FILE_BYTES: usize = 100_000;

#[derive(Debug, Clone)]
pub struct BulkOptions {
    pub payer_id_type: String,
    pub payer_identifier: String,
    /// `Purpose` header.
    pub purpose: String,
    pub max_file_bytes: usize,
}

/// One line of a batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkLine {
    pub attempt_id: Uuid,
    pub amount: Money,
}

/// One CSV file for PH-EE.
#[derive(Debug, Clone)]
pub struct BulkBatch {
    /// The batch-level `X-CorrelationID` (the lines carry the attempt ids).
    pub correlation_id: Uuid,
    pub payment_mode: String,
    pub purpose: String,
    pub file_name: String,
    pub csv: String,
    pub lines: Vec<BulkLine>,
}

/// A line that cannot be sent through PH-EE's bulk API as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub attempt_id: Uuid,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub batches: Vec<BulkBatch>,
    pub refused: Vec<Refused>,
}

/// The per-line outcome PH-EE reports.
#[derive(Debug, Clone, PartialEq)]
pub struct LineResult {
    pub attempt_id: Uuid,
    pub transaction_id: String,
    pub status: RailStatus,
    pub amount: Option<Money>,
}

/// Splits attempts into batch files: one payment mode per file, no two lines with the same
/// payee and amount in a file, every file under the size limit. Every attempt ends up in
/// exactly one batch or in `refused`.
pub fn plan(
    attempts: &[Attempt],
    opts: &BulkOptions,
    payment_mode: impl Fn(&Attempt) -> String,
) -> Plan {
    let mut out = Plan::default();
    // Mode → layers; a line goes to the layer numbered by how often its payee+amount was seen.
    let mut modes: Vec<(String, Vec<Vec<&Attempt>>)> = Vec::new();
    let mut seen: HashMap<(String, String, String, String, String), usize> = HashMap::new();
    for a in attempts {
        let mode = payment_mode(a).to_ascii_lowercase();
        if let Err(reason) = check_line(a, &mode) {
            out.refused.push(Refused {
                attempt_id: a.attempt_id,
                reason,
            });
            continue;
        }
        let key = (
            mode.clone(),
            payee_type(a.party.id_type()).to_owned(),
            a.party.id_value().to_owned(),
            a.amount.to_decimal_string(),
            a.amount.currency().code().to_owned(),
        );
        let n = seen.entry(key).or_insert(0);
        let layer = *n;
        *n = n.saturating_add(1);
        let idx = match modes.iter().position(|(m, _)| *m == mode) {
            Some(i) => i,
            None => {
                modes.push((mode.clone(), Vec::new()));
                modes.len().saturating_sub(1)
            }
        };
        if let Some((_, layers)) = modes.get_mut(idx) {
            while layers.len() <= layer {
                layers.push(Vec::new());
            }
            if let Some(l) = layers.get_mut(layer) {
                l.push(a);
            }
        }
    }
    for (mode, layers) in modes {
        for layer in layers {
            cut_files(&mut out, &mode, &layer, opts);
        }
    }
    out
}

fn check_line(a: &Attempt, mode: &str) -> Result<(), String> {
    let bad = |s: &str| s.contains([',', '\n', '\r', '"']);
    if bad(a.party.id_value()) {
        return Err(
            "the payee identifier holds a character PH-EE's CSV reader cannot carry".into(),
        );
    }
    if mode == "mojaloop" && a.party.id_type() != PartyIdType::Msisdn {
        return Err(format!(
            "PH-EE's bulk mojaloop mode sends every payee as an MSISDN; {} payees must go one by one",
            a.party.id_type()
        ));
    }
    if mode.is_empty() || bad(mode) {
        return Err("no payment mode for this line".into());
    }
    Ok(())
}

fn payee_type(t: PartyIdType) -> &'static str {
    match t {
        PartyIdType::Msisdn => "msisdn",
        PartyIdType::AccountId => "accountid",
        PartyIdType::Iban => "iban",
        PartyIdType::Business => "business",
        PartyIdType::Alias => "alias",
        PartyIdType::WalletId => "walletid",
        PartyIdType::PersonalId => "personalid",
    }
}

fn header() -> String {
    let mut h = COLUMNS.join(",");
    h.push('\n');
    h
}

/// Free text without the CSV reader's separators, short.
fn clean_note(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, ',' | '\n' | '\r' | '"') || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .take(100)
        .collect()
}

fn row(index: usize, a: &Attempt, mode: &str, opts: &BulkOptions) -> String {
    let note = clean_note(a.narrative.as_deref().unwrap_or(&a.reference));
    format!(
        "{index},{},{mode},{},{},{},{},{},{},{note},,,,,\n",
        a.attempt_id,
        opts.payer_id_type,
        opts.payer_identifier,
        payee_type(a.party.id_type()),
        a.party.id_value(),
        a.amount.to_decimal_string(),
        a.amount.currency().code(),
    )
}

fn cut_files(out: &mut Plan, mode: &str, lines: &[&Attempt], opts: &BulkOptions) {
    let mut csv = header();
    let mut batch: Vec<BulkLine> = Vec::new();
    for a in lines {
        let r = row(batch.len(), a, mode, opts);
        if !batch.is_empty() && csv.len().saturating_add(r.len()) > opts.max_file_bytes {
            push_batch(
                out,
                mode,
                std::mem::replace(&mut csv, header()),
                std::mem::take(&mut batch),
                opts,
            );
        }
        csv.push_str(&row(batch.len(), a, mode, opts));
        batch.push(BulkLine {
            attempt_id: a.attempt_id,
            amount: a.amount,
        });
    }
    if !batch.is_empty() {
        push_batch(out, mode, csv, batch, opts);
    }
}

fn push_batch(out: &mut Plan, mode: &str, csv: String, lines: Vec<BulkLine>, opts: &BulkOptions) {
    let correlation_id = Uuid::now_v7();
    out.batches.push(BulkBatch {
        correlation_id,
        payment_mode: mode.to_owned(),
        purpose: opts.purpose.clone(),
        file_name: format!("{correlation_id}.csv"),
        csv,
        lines,
    });
}

/// The batch id at the end of PH-EE's `PollingPath` (`/batch/Summary/<batchId>`).
pub fn batch_id_of(polling_path: &str) -> Option<String> {
    polling_path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty() && *s != "Summary")
        .map(str::to_owned)
}

/// A transfer row of a batch, as a line result (rows without our correlation id are skipped).
pub fn line_result(t: &crate::wire::OpsTransfer) -> Option<LineResult> {
    let attempt_id = Uuid::parse_str(t.client_correlation_id.as_deref()?).ok()?;
    let exists = t
        .error_information
        .as_ref()
        .and_then(|e| e.error_code.as_deref())
        .is_some_and(|c| c == crate::wire::TRANSACTION_EXISTS);
    // A row refused because its request_id was sent before (a re-uploaded file) says
    // nothing about the line: the earlier transfer holds the outcome; inquire the line.
    let status = if exists {
        RailStatus::Pending
    } else {
        t.status()
    };
    Some(LineResult {
        attempt_id,
        transaction_id: t.transaction_id.clone(),
        status,
        amount: t.money(),
    })
}

/// Every line of a batch, with what PH-EE says about it.
#[derive(Debug, Clone, Default)]
pub struct Accounting {
    /// Lines PH-EE reports, with their status (in file order).
    pub reported: Vec<(Uuid, RailStatus)>,
    /// Lines PH-EE has no record of.
    pub missing: Vec<Uuid>,
    /// Lines whose recorded amount differs from ours: never treated as paid as instructed.
    pub amount_mismatch: Vec<Uuid>,
    /// Rows that name no line of this batch.
    pub unexpected: Vec<String>,
}

impl Accounting {
    pub fn all_final(&self) -> bool {
        self.missing.is_empty()
            && self
                .reported
                .iter()
                .all(|(_, s)| matches!(s, RailStatus::Completed(_) | RailStatus::Failed(_)))
    }
}

/// Accounts for every line of `batch` from PH-EE's per-line results.
pub fn account_for(batch: &BulkBatch, results: &[LineResult]) -> Accounting {
    let mut by_id: HashMap<Uuid, &LineResult> = HashMap::new();
    for r in results {
        // When PH-EE lists a line twice, a completed record wins.
        let keep = match by_id.get(&r.attempt_id) {
            Some(prev) => !matches!(prev.status, RailStatus::Completed(_)),
            None => true,
        };
        if keep {
            by_id.insert(r.attempt_id, r);
        }
    }
    let mut acc = Accounting::default();
    for line in &batch.lines {
        match by_id.remove(&line.attempt_id) {
            Some(r) => {
                if r.amount.is_some_and(|m| m != line.amount) {
                    acc.amount_mismatch.push(line.attempt_id);
                }
                acc.reported.push((line.attempt_id, r.status.clone()));
            }
            None => acc.missing.push(line.attempt_id),
        }
    }
    acc.unexpected = by_id
        .into_values()
        .map(|r| r.transaction_id.clone())
        .collect();
    acc
}
