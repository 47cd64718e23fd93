//! Reading a payroll file (CSV, streamed; or JSON) into validated items, line by line.
//!
//! Every line goes through the same validation as `POST /v1/disbursements` and through the
//! routing table; every bad line is reported, and a file with any bad line stores nothing.
//!
//! CSV columns (header row required; names are case-insensitive, spaces and underscores
//! alike; unknown columns are ignored):
//!
//! | column | aliases | |
//! |---|---|---|
//! | `reference` | `code`, `invoice_id` | required, unique per client |
//! | `amount` | | required, decimal string |
//! | `currency` | | else the payroll's `currency` parameter |
//! | `payee_id_type` | `id_type` | MSISDN, ACCOUNT_ID, IBAN, ...; implied by `msisdn` / `account_number` |
//! | `payee_id` | `payee_id_value`, `id_value` | |
//! | `msisdn` | `phone_number`, `phone` | the payee's number when `payee_id` is absent |
//! | `account_number` | `account` | the payee's account when neither of the above is given |
//! | `name` | `payee_name` | else `first_name` + `last_name` |
//! | `narrative` | `description` | |
//! | `programme` | | kept in the item's metadata |
//!
//! openIMIS's reconciliation-file columns (Payroll Name, Payroll Status, First Name, Last
//! Name, Date of Birth, Code, Status, Amount, Type, Receipt, Paid) are accepted: `Code` is
//! the reference, and the others are kept in the item's metadata under `openimis` so that
//! the export can give them back.

use super::super::problem::Problem;
use super::super::validate;
use crate::domain::{Currency, Direction, NewPayment};
use crate::rails::Rails;
use crate::store::payrolls::NewItem;
use railgate_rail::json::JsonFault;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

/// Errors listed in one answer; past this only the count grows, so that a file of a million
/// bad lines does not produce a response larger than the file.
pub const MAX_LISTED_ERRORS: usize = 10_000;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LineError {
    pub line: u64,
    pub field: String,
    pub reason: String,
}

/// What a file held: valid items, or the reasons it is refused.
#[derive(Debug, Default)]
pub struct Parsed {
    pub items: Vec<NewItem>,
    pub errors: Vec<LineError>,
    pub error_count: u64,
    /// A payroll name found in the file (JSON `name`, or openIMIS's `Payroll Name`).
    pub name: Option<String>,
    /// JSON `hold`.
    pub hold: Option<bool>,
    /// SHA-256 of the body, for the idempotency key.
    pub fingerprint: String,
}

/// Why a file could not be read at all (as opposed to bad lines).
#[derive(Debug)]
pub enum Unreadable {
    TooLarge(usize),
    Malformed(String),
    /// JSON with a repeated key or a control character (never a syntax error).
    Refused(JsonFault),
}

impl From<Unreadable> for Problem {
    fn from(u: Unreadable) -> Problem {
        match u {
            Unreadable::TooLarge(limit) => Problem::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "The request body is too large",
                format!("a payroll file must be at most {limit} bytes"),
            ),
            Unreadable::Malformed(why) => Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                "malformed",
                "The payroll file cannot be read",
                why,
            ),
            Unreadable::Refused(fault) => super::super::body::json_problem(fault),
        }
    }
}

/// Collects items and errors line by line.
struct Collector<'a> {
    rails: &'a Rails,
    /// Rail ids, shared by the items routed to them.
    rail_ids: HashMap<String, Arc<str>>,
    totals: HashMap<Currency, i64>,
    /// Names the reference column in duplicate reports.
    reference_field: &'static str,
    out: Parsed,
}

impl<'a> Collector<'a> {
    fn new(rails: &'a Rails, reference_field: &'static str) -> Self {
        Collector {
            rails,
            rail_ids: HashMap::new(),
            totals: HashMap::new(),
            reference_field,
            out: Parsed::default(),
        }
    }

    fn error(&mut self, line: u64, field: &str, reason: impl Into<String>) {
        self.out.error_count = self.out.error_count.saturating_add(1);
        if self.out.errors.len() < MAX_LISTED_ERRORS {
            self.out.errors.push(LineError {
                line,
                field: field.to_owned(),
                reason: reason.into(),
            });
        }
    }

    /// Takes one line's validation result; `rename` maps the API's field names to the file's.
    fn take(&mut self, line: u64, result: Result<NewPayment, Problem>, rename: fn(&str) -> &str) {
        let new = match result {
            Ok(n) => n,
            Err(p) => {
                if p.errors.is_empty() {
                    self.error(line, "", p.detail);
                }
                for e in p.errors {
                    self.error(line, rename(&e.field), e.reason);
                }
                return;
            }
        };
        let rail = match self.rails.route(&new) {
            Ok(r) => r,
            Err(e) => {
                let field = e.field(new.rail_hint.is_some());
                self.error(
                    line,
                    rename(if field.is_empty() { "rail" } else { field }),
                    e.to_string(),
                );
                return;
            }
        };
        let total = self.totals.entry(new.amount.currency()).or_insert(0);
        match total.checked_add(new.amount.minor()) {
            Some(t) => *total = t,
            None => {
                self.error(line, rename("amount"), "the payroll's total overflows");
                return;
            }
        }
        let rail = self
            .rail_ids
            .entry(rail)
            .or_insert_with_key(|r| Arc::from(r.as_str()))
            .clone();
        // Kept even once the file is known to be refused, so that duplicates are reported.
        self.out.items.push(NewItem::new(line, new, rail));
    }

    fn finish(mut self, fingerprint: String) -> Parsed {
        // Duplicate references, found by sorting positions (no second copy of every reference).
        let items = &self.out.items;
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|a, b| {
            let (x, y) = (items.get(*a), items.get(*b));
            x.map(|i| &i.reference)
                .cmp(&y.map(|i| &i.reference))
                .then(a.cmp(b))
        });
        let mut dups = Vec::new();
        for pair in order.windows(2) {
            if let (Some(a), Some(b)) = (
                pair.first().and_then(|i| items.get(*i)),
                pair.get(1).and_then(|i| items.get(*i)),
            ) {
                if a.reference == b.reference {
                    dups.push((b.line, a.line));
                }
            }
        }
        drop(order);
        for (line, first) in dups {
            let field = self.reference_field;
            self.error(
                line,
                field,
                format!("duplicate reference: also on line {first}"),
            );
        }
        if self.out.error_count > 0 {
            // Nothing of a refused file is kept.
            self.out.items = Vec::new();
            self.out.errors.sort_by_key(|e| e.line);
        }
        self.out.fingerprint = fingerprint;
        self.out
    }
}

/// Counts and hashes what is read, and stops at the limit.
struct Metered<R> {
    inner: R,
    read: usize,
    limit: usize,
    hash: Sha256,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n);
        if self.read > self.limit {
            return Err(std::io::Error::other(TooLarge));
        }
        self.hash.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("body too large")
    }
}

impl std::error::Error for TooLarge {}

fn io_unreadable(e: &std::io::Error, limit: usize) -> Unreadable {
    if e.get_ref().is_some_and(|inner| inner.is::<TooLarge>()) {
        Unreadable::TooLarge(limit)
    } else {
        Unreadable::Malformed(format!("the body could not be read: {e}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Col {
    Reference,
    Amount,
    Currency,
    IdType,
    IdValue,
    Msisdn,
    Account,
    Name,
    Narrative,
    Programme,
    FirstName,
    LastName,
    DateOfBirth,
    Status,
    Type,
    PayrollName,
    PayrollStatus,
}

/// The openIMIS columns kept in metadata, with their keys there.
const OPENIMIS_KEPT: [(Col, &str); 7] = [
    (Col::FirstName, "first_name"),
    (Col::LastName, "last_name"),
    (Col::DateOfBirth, "date_of_birth"),
    (Col::Status, "status"),
    (Col::Type, "type"),
    (Col::PayrollName, "payroll_name"),
    (Col::PayrollStatus, "payroll_status"),
];

fn column(header: &str) -> Option<Col> {
    let h: String = header
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    Some(match h.as_str() {
        "reference" | "code" | "invoice_id" => Col::Reference,
        "amount" => Col::Amount,
        "currency" => Col::Currency,
        "payee_id_type" | "id_type" => Col::IdType,
        "payee_id" | "payee_id_value" | "id_value" => Col::IdValue,
        "msisdn" | "phone_number" | "phone" => Col::Msisdn,
        "account_number" | "account" => Col::Account,
        "name" | "payee_name" => Col::Name,
        "narrative" | "description" => Col::Narrative,
        "programme" => Col::Programme,
        "first_name" => Col::FirstName,
        "last_name" => Col::LastName,
        "date_of_birth" => Col::DateOfBirth,
        "status" => Col::Status,
        "type" => Col::Type,
        "payroll_name" => Col::PayrollName,
        "payroll_status" => Col::PayrollStatus,
        _ => return None,
    })
}

/// The CSV column name to report for a field of the API's body.
fn csv_field(api: &str) -> &str {
    match api {
        "amount" | "amount.value" => "amount",
        "amount.currency" => "currency",
        "payee" | "payee.id_value" => "payee_id",
        "payee.id_type" => "payee_id_type",
        "payee.name" => "name",
        "metadata" | "metadata.programme" => "programme",
        other => other,
    }
}

fn json_field(api: &str) -> &str {
    api
}

/// Reads a CSV payroll from `body` (blocking; run it off the async threads).
pub fn read_csv(
    body: impl Read,
    limit: usize,
    currency: Option<Currency>,
    rails: &Rails,
) -> Result<Parsed, Unreadable> {
    let mut metered = Metered {
        inner: body,
        read: 0,
        limit,
        hash: Sha256::new(),
    };
    metered.hash.update(b"csv\0");
    let mut c = Collector::new(rails, "reference");
    {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(&mut metered);
        let headers = reader
            .byte_headers()
            .map_err(|e| csv_unreadable(e, limit))?
            .clone();
        let mut cols: HashMap<Col, usize> = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            let h = String::from_utf8_lossy(h);
            if let Some(col) = column(&h) {
                cols.entry(col).or_insert(i);
            }
        }
        let mut missing = Vec::new();
        if !cols.contains_key(&Col::Reference) {
            missing.push((
                "reference",
                "column missing (reference, or openIMIS's Code)",
            ));
        }
        if !cols.contains_key(&Col::Amount) {
            missing.push(("amount", "column missing"));
        }
        if ![Col::IdValue, Col::Msisdn, Col::Account]
            .iter()
            .any(|k| cols.contains_key(k))
        {
            missing.push((
                "payee_id",
                "column missing (payee_id, msisdn or account_number)",
            ));
        }
        if !missing.is_empty() {
            for (f, why) in missing {
                c.error(1, f, why);
            }
            return Ok(c.finish(String::new()));
        }
        let width = headers.len();
        let mut record = csv::ByteRecord::new();
        // Rows read but not yet validated (see `validate_rows`).
        let mut waiting: Vec<(u64, HashMap<Col, String>)> = Vec::with_capacity(VALIDATE_BATCH);
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    if let csv::ErrorKind::Io(io) = e.kind() {
                        return Err(io_unreadable(io, limit));
                    }
                    let line = e.position().map_or(0, |p| p.line());
                    take_waiting(&mut c, &mut waiting, currency);
                    c.error(line, "", format!("not valid CSV: {e}"));
                    continue;
                }
            }
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != width {
                take_waiting(&mut c, &mut waiting, currency);
                c.error(
                    line,
                    "",
                    format!("has {} fields where the header has {width}", record.len()),
                );
                continue;
            }
            let mut bad_utf8 = false;
            let get = |col: Col, bad: &mut bool| -> Option<String> {
                let raw = record.get(*cols.get(&col)?)?;
                match std::str::from_utf8(raw) {
                    Ok("") => None,
                    Ok(s) => Some(s.to_owned()),
                    Err(_) => {
                        *bad = true;
                        None
                    }
                }
            };
            let mut row: HashMap<Col, String> = HashMap::new();
            for col in cols.keys() {
                if let Some(v) = get(*col, &mut bad_utf8) {
                    row.insert(*col, v);
                }
            }
            if bad_utf8 {
                take_waiting(&mut c, &mut waiting, currency);
                c.error(line, "", "is not valid UTF-8");
                continue;
            }
            let mut control = false;
            if row
                .values()
                .any(|v| railgate_rail::json::has_forbidden_control(v))
            {
                take_waiting(&mut c, &mut waiting, currency);
            }
            for (col, v) in &row {
                if railgate_rail::json::has_forbidden_control(v) {
                    let name = cols
                        .get(col)
                        .and_then(|i| headers.get(*i))
                        .map(|h| String::from_utf8_lossy(h).into_owned())
                        .unwrap_or_default();
                    c.error(line, &name, "must not contain control characters");
                    control = true;
                }
            }
            if control {
                continue;
            }
            if c.out.name.is_none() {
                c.out.name = row.get(&Col::PayrollName).cloned();
            }
            waiting.push((line, row));
            if waiting.len() >= VALIDATE_BATCH {
                take_waiting(&mut c, &mut waiting, currency);
            }
        }
        take_waiting(&mut c, &mut waiting, currency);
    }
    let fingerprint = hex::encode(metered.hash.finalize());
    Ok(c.finish(fingerprint))
}

/// Validates the rows waiting and takes their results, in line order: called before anything
/// about a later line is recorded, so that errors are found (and the first ones listed) in the
/// order of the file.
fn take_waiting(
    c: &mut Collector<'_>,
    waiting: &mut Vec<(u64, HashMap<Col, String>)>,
    currency: Option<Currency>,
) {
    for (line, result) in validate_rows(std::mem::take(waiting), currency) {
        c.take(line, result, csv_field);
    }
}

/// Rows validated together by [`validate_rows`].
const VALIDATE_BATCH: usize = 8_192;

/// Validates rows as `POST /v1/disbursements` would, on every core the machine has, and
/// returns the results in the rows' order. Reading the file is sequential, but checking a row
/// (its amount, its payee, its JSON body) is most of an import's time before the store and
/// needs nothing from the other rows.
fn validate_rows(
    rows: Vec<(u64, HashMap<Col, String>)>,
    currency: Option<Currency>,
) -> Vec<(u64, Result<NewPayment, Problem>)> {
    let one = |(line, row): &(u64, HashMap<Col, String>)| {
        let body = csv_row_body(row, currency);
        (*line, validate::new_payment(Direction::Disbursement, &body))
    };
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if threads < 2 || rows.len() < 2 {
        return rows.iter().map(one).collect();
    }
    let per = rows.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = rows
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for part in parts {
            match part.join() {
                Ok(done) => out.extend(done),
                // A panic in a validator is a bug: it goes on up as it would have.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

fn csv_unreadable(e: csv::Error, limit: usize) -> Unreadable {
    match e.kind() {
        csv::ErrorKind::Io(io) => io_unreadable(io, limit),
        _ => Unreadable::Malformed(format!("not valid CSV: {e}")),
    }
}

/// One CSV row as the body `POST /v1/disbursements` takes, so the same validation applies.
fn csv_row_body(row: &HashMap<Col, String>, currency: Option<Currency>) -> Value {
    let text = |c: Col| row.get(&c).map(|s| Value::String(s.clone()));
    let id_type = row.get(&Col::IdType).cloned().or_else(|| {
        if row.contains_key(&Col::IdValue) {
            None
        } else if row.contains_key(&Col::Msisdn) {
            Some("MSISDN".to_owned())
        } else if row.contains_key(&Col::Account) {
            Some("ACCOUNT_ID".to_owned())
        } else {
            None
        }
    });
    let id_value = row
        .get(&Col::IdValue)
        .or_else(|| row.get(&Col::Msisdn))
        .or_else(|| row.get(&Col::Account))
        .cloned();
    let name = row.get(&Col::Name).cloned().or_else(|| {
        let parts: Vec<&str> = [Col::FirstName, Col::LastName]
            .iter()
            .filter_map(|c| row.get(c).map(String::as_str))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    let mut payee = Map::new();
    if let Some(t) = id_type {
        payee.insert("id_type".into(), Value::String(t));
    }
    if let Some(v) = id_value {
        payee.insert("id_value".into(), Value::String(v));
    }
    if let Some(n) = name {
        payee.insert("name".into(), Value::String(n));
    }
    let mut amount = Map::new();
    if let Some(v) = text(Col::Amount) {
        amount.insert("value".into(), v);
    }
    let cur = text(Col::Currency).or_else(|| currency.map(|c| Value::String(c.code().into())));
    if let Some(c) = cur {
        amount.insert("currency".into(), c);
    }
    let mut metadata = Map::new();
    if let Some(p) = text(Col::Programme) {
        metadata.insert("programme".into(), p);
    }
    let openimis: Map<String, Value> = OPENIMIS_KEPT
        .iter()
        .filter_map(|(c, k)| text(*c).map(|v| ((*k).to_owned(), v)))
        .collect();
    if !openimis.is_empty() {
        metadata.insert("openimis".into(), Value::Object(openimis));
    }
    let mut body = Map::new();
    body.insert("amount".into(), Value::Object(amount));
    body.insert("payee".into(), Value::Object(payee));
    if let Some(r) = text(Col::Reference) {
        body.insert("reference".into(), r);
    }
    if let Some(n) = text(Col::Narrative) {
        body.insert("narrative".into(), n);
    }
    if !metadata.is_empty() {
        body.insert("metadata".into(), Value::Object(metadata));
    }
    Value::Object(body)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPayroll<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    hold: Option<bool>,
    #[serde(borrow)]
    items: Vec<&'a serde_json::value::RawValue>,
}

/// Reads a JSON payroll `{"name", "hold", "items": [<disbursement body>, ...]}`. The `line`
/// of an error is the item's 1-based position.
pub fn read_json(body: &[u8], rails: &Rails) -> Result<Parsed, Unreadable> {
    // Repeated keys and control characters anywhere in the document first: serde would keep
    // the last of two `amount`s, and the items are read below as raw text.
    railgate_rail::json::check(body).map_err(|e| match e {
        JsonFault::Syntax { .. } => Unreadable::Malformed(format!(
            "{e} (expected {{\"name\", \"hold\", \"items\": [...]}})"
        )),
        refused => Unreadable::Refused(refused),
    })?;
    let doc: JsonPayroll<'_> = serde_json::from_slice(body).map_err(|e| {
        Unreadable::Malformed(format!(
            "line {}, column {}: {e} (expected {{\"name\", \"hold\", \"items\": [...]}})",
            e.line(),
            e.column()
        ))
    })?;
    let mut hash = Sha256::new();
    hash.update(b"json\0");
    hash.update(body);
    let mut c = Collector::new(rails, "reference");
    c.out.name = doc.name;
    c.out.hold = doc.hold;
    for (i, raw) in doc.items.iter().enumerate() {
        let line = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        let result = match railgate_rail::json::parse(raw.get().as_bytes()) {
            Ok(v) => validate::new_payment(Direction::Disbursement, &v),
            Err(e) => Err(super::super::body::json_problem(e)),
        };
        c.take(line, result, json_field);
    }
    Ok(c.finish(hex::encode(hash.finalize())))
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// Past the listed errors' cap, the ones listed are still the file's first, whichever
    /// check found them: rows are validated in batches, and an error found while reading a
    /// row (here a control character) must not jump ahead of the rows waiting before it.
    #[test]
    fn listed_errors_are_the_first_of_the_file_across_validation_batches() {
        let lines = MAX_LISTED_ERRORS.saturating_mul(2);
        let mut csv = String::from("reference,amount,msisdn\n");
        for i in 0..lines {
            // No rail is configured, so every other row fails routing; every third row has a
            // control character instead.
            let reference = if i % 3 == 0 {
                format!("REF-{i}\u{7}")
            } else {
                format!("REF-{i}")
            };
            csv.push_str(&format!("{reference},100.00,255712345600\n"));
        }
        let parsed = read_csv(
            csv.as_bytes(),
            usize::MAX,
            Some("TZS".parse().expect("currency")),
            &Rails::empty(),
        )
        .expect("readable");
        assert_eq!(parsed.error_count, u64::try_from(lines).expect("count"));
        assert_eq!(parsed.errors.len(), MAX_LISTED_ERRORS);
        let listed: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
        let first: Vec<u64> = (2..).take(MAX_LISTED_ERRORS).collect();
        assert_eq!(listed, first, "the first lines of the file, in order");
        assert!(parsed
            .errors
            .iter()
            .any(|e| e.reason.contains("control characters")));
    }
}
