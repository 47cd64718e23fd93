//! A reconciliation run: our payments and the statement lines in its scope through the
//! matcher; what agrees settles, what does not becomes a break.
//!
//! The matcher is pure; this module feeds it from the store (lines streamed, one at a time)
//! and writes its outcome back. A dry run writes nothing but its own report.

use super::lines;
use super::postings;
use crate::domain::{Currency, Money};
use crate::engine::{self, Applied, Change};
use crate::store::recon::{self as rstore, BreakRow, RunRow, Settlement};
use crate::store::{col, now_micros, uuid_col, Db, Kind, StoreError};
use chrono::{DateTime, Days, NaiveDate, Utc};
use futures_util::StreamExt;
use railgate_statements::matching::{
    Break, BreakKind, Expected, ExpectedKind, ExpectedState, MatchConfig, Matcher, Outcome, Rule,
    Severity,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Breaks listed in full in a run's report; all of them are stored.
const REPORT_BREAKS: usize = 200;
/// Settlements written per transaction.
const SETTLE_CHUNK: usize = 20_000;
/// Settlement transactions in flight at once on PostgreSQL.
const SETTLE_AT_ONCE: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no such statement")]
    NoStatement,
}

impl From<sqlx::Error> for RunError {
    fn from(e: sqlx::Error) -> Self {
        RunError::Store(e.into())
    }
}

/// What a run covers and how it matches.
#[derive(Debug, Clone)]
pub struct Scope {
    pub statement_id: Option<Uuid>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub dry_run: bool,
    pub rules: MatchConfig,
    /// Whether the caller set `missing_between` (otherwise the run's period is used).
    pub missing_given: bool,
}

/// What the run keeps of each of our payments besides the matcher's view.
struct PaymentSide {
    /// The client's reference: some rails echo it on their statements instead of our id.
    reference: String,
    rail: Option<String>,
    programme: Option<String>,
}

/// What the run keeps of each statement line (the matcher numbers them 1..).
#[derive(Clone, Copy)]
struct RunLine {
    statement: u32,
    line_no: i64,
    amount_minor: i64,
    currency: Currency,
    date: Option<NaiveDate>,
    credit: bool,
}

fn day_start_micros(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or(0)
}

fn micros_date(us: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_micros(us)
        .unwrap_or_default()
        .date_naive()
}

pub fn rule_code(r: Rule) -> &'static str {
    r.as_str()
}

pub fn severity_code(s: Severity) -> &'static str {
    match s {
        Severity::Warning => "warning",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// Break types that do not come from the matcher.
pub const CALLBACK_CONFLICT: &str = "callback_conflict";

/// Every break type a run can raise (for filters and documentation).
pub const BREAK_TYPES: [&str; 9] = [
    "unmatched_statement_line",
    "missing_from_statement",
    "amount_mismatch",
    "currency_mismatch",
    "status_conflict",
    "duplicate",
    "partial_payment",
    "over_payment",
    CALLBACK_CONFLICT,
];

fn default_owner(severity: &str) -> &'static str {
    if severity == "critical" {
        "operations"
    } else {
        "finance"
    }
}

pub async fn execute(
    db: &Db,
    client_id: Uuid,
    created_by: &str,
    scope: Scope,
) -> Result<RunRow, RunError> {
    let statement = match scope.statement_id {
        Some(id) => Some(
            rstore::statement(db, client_id, id)
                .await?
                .filter(|s| s.status == "loaded")
                .ok_or(RunError::NoStatement)?,
        ),
        None => None,
    };
    let today = Utc::now().date_naive();
    let parse = |s: &Option<String>| s.as_deref().and_then(|d| d.parse::<NaiveDate>().ok());
    let (lo, hi) = match &statement {
        Some(s) => (
            parse(&s.period_from).unwrap_or(today),
            parse(&s.period_to).unwrap_or(today),
        ),
        None => (
            scope.from.unwrap_or(today),
            scope.to.or(scope.from).unwrap_or(today),
        ),
    };
    let mut rules = scope.rules.clone();
    if !scope.missing_given {
        rules.missing_between = Some((lo, hi));
    }
    let rail_filter = statement.as_ref().and_then(|s| s.rail.clone());
    let run = RunRow {
        id: Uuid::now_v7(),
        client_id,
        statement_id: statement.as_ref().map(|s| s.id),
        date_from: Some(lo.to_string()),
        date_to: Some(hi.to_string()),
        dry_run: scope.dry_run,
        rules: serde_json::to_value(&rules).unwrap_or(Value::Null),
        status: "running".into(),
        report: None,
        created_by: created_by.to_owned(),
        created_at: now_micros(),
        finished_at: None,
    };
    rstore::insert_run(db, &run).await?;
    let started = std::time::Instant::now();

    // Our side: payments active in the window, and every one still waiting for an outcome.
    let window = u64::try_from(rules.date_window_days.clamp(0, 366)).unwrap_or(0);
    let lo_us = day_start_micros(lo.checked_sub_days(Days::new(window)).unwrap_or(lo));
    let hi_us = day_start_micros(
        hi.checked_add_days(Days::new(window.saturating_add(1)))
            .unwrap_or(hi),
    );
    let (expected, sides) =
        load_expected(db, client_id, lo_us, hi_us, rail_filter.as_deref()).await?;
    let loaded_ms = started.elapsed().as_millis();
    let by_id: HashMap<Uuid, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id, i))
        .collect();
    let mut aliases_out: HashMap<&str, usize> = HashMap::new();
    let mut aliases_in: HashMap<&str, usize> = HashMap::new();
    let mut refs_seen: HashMap<(bool, &str), u32> = HashMap::new();
    for (i, (e, side)) in expected.iter().zip(&sides).enumerate() {
        if e.end_to_end_id.is_some() {
            let r = side.reference.as_str();
            let out = e.kind == ExpectedKind::Disbursement;
            let n = refs_seen.entry((out, r)).or_insert(0);
            *n = n.saturating_add(1);
            if out {
                aliases_out.insert(r, i);
            } else {
                aliases_in.insert(r, i);
            }
        }
    }
    // A client reference used twice in the window (two directions aside) is no key.
    for ((out, r), n) in &refs_seen {
        if *n > 1 {
            if *out {
                aliases_out.remove(r);
            } else {
                aliases_in.remove(r);
            }
        }
    }

    let mut matcher = Matcher::new(&expected, rules.clone());
    let mut run_lines: Vec<RunLine> = Vec::new();
    let mut statements: Vec<Uuid> = Vec::new();
    {
        let scope = match &statement {
            Some(s) => rstore::LineScope::Statement(s.id),
            None => rstore::LineScope::Dated {
                client_id,
                from: lo.to_string(),
                to: hi.to_string(),
            },
        };
        // Lines an earlier run matched as a range are skipped here; those it marked one by
        // one the query leaves out (`matched_run`).
        let matched =
            rstore::matched_ranges(db, client_id, statement.as_ref().map(|s| s.id)).await?;
        let mut last_statement: Option<(String, u32)> = None;
        rstore::line_pages(db, &scope, |page| -> Result<(), RunError> {
            for rstore::RunLineRow {
                statement_id: sid,
                line: stored,
            } in page
            {
                if let Some(ranges) = matched.get(&sid) {
                    if rstore::in_ranges(ranges, stored.line_no) {
                        continue;
                    }
                }
                let sidx = match &last_statement {
                    Some((s, i)) if *s == sid => *i,
                    _ => {
                        let id = Uuid::parse_str(&sid)
                            .map_err(|_| StoreError::Corrupt("statement id".into()))?;
                        statements.push(id);
                        let i = u32::try_from(statements.len().saturating_sub(1)).unwrap_or(0);
                        last_statement = Some((sid, i));
                        i
                    }
                };
                let n = u64::try_from(run_lines.len().saturating_add(1)).unwrap_or(u64::MAX);
                let Some(mut line) = lines::from_row(&stored, n) else {
                    continue;
                };
                // Rails that echo the client's reference rather than our end-to-end id: the
                // reference names the payment, and the payment's end-to-end id is what matches.
                let aliases = match line.direction {
                    railgate_statements::Direction::Debit => &aliases_out,
                    railgate_statements::Direction::Credit => &aliases_in,
                };
                if let Some(e2e) = line
                    .reference
                    .as_deref()
                    .and_then(|r| aliases.get(r))
                    .and_then(|&i| expected.get(i))
                    .and_then(|e| e.end_to_end_id.clone())
                {
                    line.reference = Some(e2e);
                }
                if let Some(batch) = line.batch.as_mut() {
                    for t in &mut batch.transactions {
                        if let Some(e2e) = t
                            .end_to_end_id
                            .as_deref()
                            .and_then(|r| aliases.get(r))
                            .and_then(|&i| expected.get(i))
                            .and_then(|e| e.end_to_end_id.clone())
                        {
                            t.end_to_end_id = Some(e2e);
                        }
                    }
                }
                if let Some(ret) = line.return_info.as_mut() {
                    if let Some(e2e) = ret
                        .original_end_to_end_id
                        .as_deref()
                        .and_then(|r| aliases_out.get(r))
                        .and_then(|&i| expected.get(i))
                        .and_then(|e| e.end_to_end_id.clone())
                    {
                        ret.original_end_to_end_id = Some(e2e);
                    }
                }
                run_lines.push(RunLine {
                    statement: sidx,
                    line_no: stored.line_no,
                    amount_minor: line.amount.minor(),
                    currency: line.amount.currency(),
                    date: line.date(),
                    credit: line.direction == railgate_statements::Direction::Credit,
                });
                matcher.push(&line);
            }
            Ok(())
        })
        .await?;
    }
    let streamed_ms = started.elapsed().as_millis();
    let outcome = matcher.finish();
    let matched_ms = started.elapsed().as_millis();
    let ctx = Ctx {
        client_id,
        run_id: run.id,
        expected: &expected,
        sides: &sides,
        by_id: &by_id,
        run_lines: &run_lines,
        statements: &statements,
        statement_rail: rail_filter.as_deref(),
    };
    let report = if scope.dry_run {
        let conflicts = conflict_breaks(db, &ctx, &outcome.breaks).await?;
        let breaks = planned_breaks(&ctx, &outcome, conflicts);
        summarise(&ctx, &outcome, &breaks, 0, &[], 0)
    } else {
        write_outcome(db, &ctx, &outcome).await?
    };
    let mut conn = db.pool().acquire().await?;
    rstore::finish_run(&mut conn, run.id, "finished", &report).await?;
    tracing::info!(
        run_id = %run.id,
        dry_run = scope.dry_run,
        payments = expected.len(),
        lines = run_lines.len(),
        matches = outcome.matches.len(),
        breaks = outcome.breaks.len(),
        payments_loaded_ms = %loaded_ms,
        lines_streamed_ms = %streamed_ms,
        matched_ms = %matched_ms,
        total_ms = %started.elapsed().as_millis(),
        "Reconciliation run finished"
    );
    drop(conn);
    rstore::run(db, Some(client_id), run.id)
        .await?
        .ok_or_else(|| RunError::Store(StoreError::Corrupt("run vanished".into())))
}

struct Ctx<'a> {
    client_id: Uuid,
    run_id: Uuid,
    expected: &'a [Expected],
    sides: &'a [PaymentSide],
    by_id: &'a HashMap<Uuid, usize>,
    run_lines: &'a [RunLine],
    statements: &'a [Uuid],
    statement_rail: Option<&'a str>,
}

impl Ctx<'_> {
    fn line(&self, n: u64) -> Option<&RunLine> {
        usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.run_lines.get(i))
    }
    fn statement_of(&self, l: &RunLine) -> Option<Uuid> {
        usize::try_from(l.statement)
            .ok()
            .and_then(|i| self.statements.get(i))
            .copied()
    }
    fn payment(&self, id: &Uuid) -> Option<(&Expected, &PaymentSide)> {
        let i = *self.by_id.get(id)?;
        Some((self.expected.get(i)?, self.sides.get(i)?))
    }
    fn line_ref(&self, n: u64) -> Value {
        match self.line(n) {
            Some(l) => json!({
                "statement_id": self.statement_of(l),
                "line_no": l.line_no,
                "amount": railgate_rail::money::format_minor(l.amount_minor, l.currency),
                "currency": l.currency.code(),
                "date": l.date.map(|d| d.to_string()),
                "direction": if l.credit { "credit" } else { "debit" },
            }),
            None => Value::Null,
        }
    }
}

async fn load_expected(
    db: &Db,
    client_id: Uuid,
    lo_us: i64,
    hi_us: i64,
    rail: Option<&str>,
) -> Result<(Vec<Expected>, Vec<PaymentSide>), RunError> {
    let scope = rstore::ExpectedScope {
        client_id,
        lo_us,
        hi_us,
        rail,
    };
    let mut expected = Vec::new();
    let mut sides = Vec::new();
    rstore::expected_pages(db, scope, |page| -> Result<(), RunError> {
        for row in page {
            let Ok(currency) = row.currency.parse::<Currency>() else {
                continue;
            };
            let Ok(amount) = Money::from_minor(row.amount_minor, currency) else {
                continue;
            };
            let state = match row.state.as_str() {
                "completed" => ExpectedState::Completed,
                "failed" => ExpectedState::Failed,
                "unknown" => ExpectedState::Unknown,
                _ => ExpectedState::Pending,
            };
            let kind = if row.direction == "collection" {
                ExpectedKind::Collection
            } else {
                ExpectedKind::Disbursement
            };
            let id =
                Uuid::parse_str(&row.id).map_err(|_| StoreError::Corrupt("payment id".into()))?;
            expected.push(Expected {
                id,
                kind,
                end_to_end_id: row.attempt_id,
                rail_reference: row.rail_reference,
                receipt: row.receipt,
                payment_reference: if row.mode.as_deref() == Some("expected") {
                    row.payment_reference
                } else {
                    None
                },
                batch_id: None,
                amount,
                counterparty: row.party_value,
                date: micros_date(if state == ExpectedState::Completed {
                    row.updated_at
                } else {
                    row.created_at
                }),
                state,
                already_matched: row.settled > 0,
            });
            sides.push(PaymentSide {
                reference: row.reference,
                rail: row.rail,
                programme: match row.programme {
                    Some(Value::String(p)) => Some(p),
                    _ => None,
                },
            });
        }
        Ok(())
    })
    .await?;
    Ok((expected, sides))
}

/// The break rows a run raises (not yet stored).
fn planned_breaks(ctx: &Ctx<'_>, outcome: &Outcome, conflicts: Vec<BreakRow>) -> Vec<BreakRow> {
    let now = now_micros();
    let mut out = Vec::with_capacity(outcome.breaks.len().saturating_add(conflicts.len()));
    for b in &outcome.breaks {
        out.push(break_row(ctx, b, now));
    }
    out.extend(conflicts);
    out
}

fn break_row(ctx: &Ctx<'_>, b: &Break, now: i64) -> BreakRow {
    let payment = b.expected.first().copied();
    let side = payment.as_ref().and_then(|p| ctx.payment(p));
    let first_line = b.lines.first().and_then(|&n| ctx.line(n)).copied();
    let mut detail = Map::new();
    detail.insert(
        "payments".into(),
        json!(b.expected.iter().map(Uuid::to_string).collect::<Vec<_>>()),
    );
    detail.insert(
        "lines".into(),
        Value::Array(b.lines.iter().map(|&n| ctx.line_ref(n)).collect()),
    );
    detail.insert("rule".into(), json!(b.rule.map(rule_code)));
    let money =
        |m: &Money| json!({"value": m.to_decimal_string(), "currency": m.currency().code()});
    match &b.kind {
        BreakKind::AmountMismatch { expected, found } => {
            detail.insert("expected".into(), money(expected));
            detail.insert("found".into(), money(found));
        }
        BreakKind::CurrencyMismatch { expected, found } => {
            detail.insert("expected_currency".into(), json!(expected.code()));
            detail.insert("found_currency".into(), json!(found.code()));
        }
        BreakKind::StatusConflict { ours } => {
            detail.insert("our_state".into(), json!(ours.as_str()));
        }
        BreakKind::Duplicate { of_line } => {
            detail.insert(
                "duplicate_of".into(),
                of_line.map(|n| ctx.line_ref(n)).unwrap_or(Value::Null),
            );
        }
        BreakKind::PartialPayment { expected, received }
        | BreakKind::OverPayment { expected, received } => {
            detail.insert("expected".into(), money(expected));
            detail.insert("received".into(), money(received));
        }
        BreakKind::UnmatchedStatementLine | BreakKind::MissingFromStatement => {}
    }
    let (amount_minor, currency) = match (&b.kind, first_line, side) {
        (BreakKind::UnmatchedStatementLine | BreakKind::Duplicate { .. }, Some(l), _) => {
            (Some(l.amount_minor), Some(l.currency.code().to_owned()))
        }
        (_, _, Some((e, _))) => (
            Some(e.amount.minor()),
            Some(e.amount.currency().code().to_owned()),
        ),
        (_, Some(l), None) => (Some(l.amount_minor), Some(l.currency.code().to_owned())),
        (_, None, None) => (None, None),
    };
    let severity = severity_code(b.severity);
    let mut keys: Vec<String> = b.expected.iter().map(Uuid::to_string).collect();
    keys.extend(b.lines.iter().filter_map(|&n| {
        ctx.line(n)
            .map(|l| format!("{}:{}", ctx.statement_of(l).unwrap_or_default(), l.line_no))
    }));
    let dedupe_key = match (&b.kind, payment) {
        // One conflict per payment, whether the callbacks or a statement revealed it.
        (BreakKind::StatusConflict { .. }, Some(p)) => format!("conflict:{p}"),
        _ => format!("{}:{}", b.kind.code(), keys.join(",")),
    };
    BreakRow {
        id: Uuid::now_v7(),
        client_id: ctx.client_id,
        run_id: Some(ctx.run_id),
        dedupe_key,
        kind: b.kind.code().to_owned(),
        severity: severity.to_owned(),
        status: "open".into(),
        owner: Some(default_owner(severity).to_owned()),
        note: b.note.to_owned(),
        detail: Value::Object(detail),
        payment_id: payment,
        statement_id: first_line.and_then(|l| ctx.statement_of(&l)),
        line_no: first_line.map(|l| l.line_no),
        amount_minor,
        currency,
        rail: side
            .and_then(|(_, s)| s.rail.clone())
            .or_else(|| ctx.statement_rail.map(str::to_owned)),
        programme: side.and_then(|(_, s)| s.programme.clone()),
        opened_at: now,
        resolution: None,
        reason: None,
        resolved_by: None,
        resolved_at: None,
        entries: None,
    }
}

/// Breaks for the contradicting callbacks recorded on the client's payments (one per
/// payment), except where the statement already raised a status conflict for it.
async fn conflict_breaks(
    db: &Db,
    ctx: &Ctx<'_>,
    matcher_breaks: &[Break],
) -> Result<Vec<BreakRow>, RunError> {
    let rows = crate::store::sql::query(
        "SELECT c.payment_id AS payment_id, c.held_state AS held_state, c.claimed AS claimed, \
         c.source AS source, c.detail AS detail, c.at AS at, p.amount_minor AS amount_minor, \
         p.currency AS currency, p.rail AS rail, p.metadata AS metadata FROM conflicts c \
         JOIN payments p ON p.id = c.payment_id WHERE p.client_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM recon_breaks b WHERE b.client_id = $1 \
         AND b.dedupe_key = 'conflict:' || c.payment_id) ORDER BY c.at",
    )
    .bind(ctx.client_id.to_string())
    .fetch_all(db.pool())
    .await?;
    let statement_conflicts: Vec<Uuid> = matcher_breaks
        .iter()
        .filter(|b| matches!(b.kind, BreakKind::StatusConflict { .. }))
        .filter_map(|b| b.expected.first().copied())
        .collect();
    let mut by_payment: BTreeMap<Uuid, BreakRow> = BTreeMap::new();
    let now = now_micros();
    for row in rows {
        let pid = uuid_col(&row, "payment_id")?;
        if statement_conflicts.contains(&pid) {
            continue;
        }
        let seen = json!({
            "held": col::<String>(&row, "held_state")?,
            "claimed": col::<String>(&row, "claimed")?,
            "source": col::<String>(&row, "source")?,
            "detail": col::<Option<String>>(&row, "detail")?,
            "at": crate::store::from_micros(col(&row, "at")?).to_rfc3339(),
        });
        let metadata: String = col(&row, "metadata")?;
        let programme = serde_json::from_str::<Value>(&metadata).ok().and_then(|m| {
            m.get("programme")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let entry = by_payment.entry(pid);
        match entry {
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if let Some(list) = o
                    .get_mut()
                    .detail
                    .get_mut("conflicts")
                    .and_then(Value::as_array_mut)
                {
                    list.push(seen);
                }
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(BreakRow {
                    id: Uuid::now_v7(),
                    client_id: ctx.client_id,
                    run_id: Some(ctx.run_id),
                    dedupe_key: format!("conflict:{pid}"),
                    kind: CALLBACK_CONFLICT.into(),
                    severity: "critical".into(),
                    status: "open".into(),
                    owner: Some(default_owner("critical").to_owned()),
                    note: "the rail's callbacks contradicted a final state".into(),
                    detail: json!({"payments": [pid.to_string()], "conflicts": [seen]}),
                    payment_id: Some(pid),
                    statement_id: None,
                    line_no: None,
                    amount_minor: Some(col(&row, "amount_minor")?),
                    currency: Some(col(&row, "currency")?),
                    rail: col(&row, "rail")?,
                    programme,
                    opened_at: now,
                    resolution: None,
                    reason: None,
                    resolved_by: None,
                    resolved_at: None,
                    entries: None,
                });
            }
        }
    }
    Ok(by_payment.into_values().collect())
}

/// Writes settlements, marks matched lines, completes unknown payments the statement proves
/// paid, and stores the breaks. Returns the run's report.
async fn write_outcome(db: &Db, ctx: &Ctx<'_>, outcome: &Outcome) -> Result<Value, RunError> {
    // Settlements: every payment a match names, on the first line of its match.
    let mut settlements: Vec<Settlement> = Vec::new();
    let mut matched_lines: HashMap<u32, Vec<i64>> = HashMap::new();
    let mut returns = 0u64;
    for m in &outcome.matches {
        for &n in &m.lines {
            if let Some(l) = ctx.line(n) {
                matched_lines
                    .entry(l.statement)
                    .or_default()
                    .push(l.line_no);
            }
        }
        if m.rule == Rule::ReturnOfPayment {
            returns = returns.saturating_add(1);
            continue;
        }
        let Some(first) = m.lines.first().and_then(|&n| ctx.line(n)) else {
            continue;
        };
        let Some(statement_id) = ctx.statement_of(first) else {
            continue;
        };
        for (j, pid) in m.expected.iter().enumerate() {
            let Some((e, _)) = ctx.payment(pid) else {
                continue;
            };
            if e.already_matched {
                continue;
            }
            settlements.push(Settlement {
                payment_id: *pid,
                statement_id,
                line_no: first.line_no,
                rule: rule_code(m.rule),
                amount_minor: e.amount.minor(),
                fee_minor: if j == 0 {
                    m.fee.map(Money::minor).unwrap_or(0)
                } else {
                    0
                },
                currency: e.amount.currency().code().to_owned(),
                settled_on: first.date.map(|d| d.to_string()),
            });
        }
    }
    // Chunks are independent transactions (each posts its own sums); PostgreSQL writes two
    // at a time on two connections, SQLite (one writer) one after the other.
    let at_once = match db.kind() {
        Kind::Postgres => SETTLE_AT_ONCE,
        Kind::Sqlite => 1,
    };
    // Made up front: a lazy `map` in the stream's type trips the compiler's `Send` check of
    // the handler's future.
    let chunks: Vec<_> = settlements
        .chunks(SETTLE_CHUNK)
        .enumerate()
        .map(|(n, chunk)| settle_chunk(db, ctx, n, chunk))
        .collect();
    let mut writes = futures_util::stream::iter(chunks).buffer_unordered(at_once);
    while let Some(done) = writes.next().await {
        done?;
    }
    drop(writes);
    for (sidx, nos) in &matched_lines {
        let Some(statement_id) = usize::try_from(*sidx)
            .ok()
            .and_then(|i| ctx.statements.get(i))
        else {
            continue;
        };
        let mut tx = db.begin().await?;
        rstore::mark_lines_matched(&mut tx, ctx.client_id, ctx.run_id, *statement_id, nos).await?;
        tx.commit().await?;
    }

    // Unknown outcomes the statement proves paid: completed by the run, the break says so.
    let conflicts = conflict_breaks(db, ctx, &outcome.breaks).await?;
    let mut breaks = planned_breaks(ctx, outcome, conflicts);
    let mut completed: Vec<Uuid> = Vec::new();
    let kind = db.kind();
    let mut tx = db.begin().await?;
    for (b, row) in outcome.breaks.iter().zip(breaks.iter_mut()) {
        let BreakKind::StatusConflict {
            ours: ExpectedState::Unknown,
        } = b.kind
        else {
            continue;
        };
        let (Some(pid), Some(line)) = (row.payment_id, b.lines.first().and_then(|&n| ctx.line(n)))
        else {
            continue;
        };
        let (applied, settled) =
            complete_from_statement(&mut tx, kind, ctx, pid, line, b.rule).await?;
        let resolved = matches!(applied, Applied::Changed { .. });
        if resolved {
            completed.push(pid);
            row.status = "resolved".into();
            row.resolution = Some("completed_from_statement".into());
            row.reason = Some(
                "the payment's outcome was unknown; the statement shows it booked, so the run \
                 completed it"
                    .into(),
            );
            row.resolved_by = Some(format!("reconciliation run {}", ctx.run_id));
            row.resolved_at = Some(now_micros());
            row.entries = Some(serde_json::to_value(&settled).unwrap_or(Value::Null));
        }
    }
    let new = rstore::insert_breaks(&mut tx, &breaks).await?;
    // The breaks this run opened (one raised before keeps its first run) are announced to
    // the core with the run's writes.
    for b in rstore::opened_by_run(&mut tx, ctx.run_id).await? {
        crate::notify::events::emit(
            &mut tx,
            &crate::notify::events::NewEvent {
                client_id: ctx.client_id,
                kind: crate::notify::EventType::ReconciliationBreakOpened,
                payment_id: b.payment_id,
                payroll_id: None,
                data: super::break_view(&b),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(summarise(ctx, outcome, &breaks, new, &completed, returns))
}

/// Stores one chunk of settlements and posts their sums, in one transaction.
async fn settle_chunk(
    db: &Db,
    ctx: &Ctx<'_>,
    n: usize,
    chunk: &[Settlement],
) -> Result<(), RunError> {
    let mut tx = db.begin().await?;
    let settled_now = rstore::insert_settlements(&mut tx, ctx.client_id, ctx.run_id, chunk).await?;
    // One transfer per rail, currency and direction for the chunk: every payment's
    // settlement is in `recon_settlements`; the books need the sums, and one balance row
    // per payment would make a million-line run a million transfers.
    let mut sums: BTreeMap<(String, Currency), (i64, i64, i64)> = BTreeMap::new();
    for s in chunk.iter().filter(|s| settled_now.contains(&s.payment_id)) {
        let Some((e, side)) = ctx.payment(&s.payment_id) else {
            continue;
        };
        let key = (
            side.rail.clone().unwrap_or_else(|| "unassigned".to_owned()),
            e.amount.currency(),
        );
        let sum = sums.entry(key).or_insert((0, 0, 0));
        match e.kind {
            ExpectedKind::Disbursement => sum.0 = sum.0.saturating_add(s.amount_minor),
            ExpectedKind::Collection => sum.1 = sum.1.saturating_add(s.amount_minor),
        }
        sum.2 = sum.2.saturating_add(s.fee_minor);
    }
    let mut entries = Vec::new();
    for ((rail, currency), (out, inn, fee)) in &sums {
        let book = postings::Book {
            client: ctx.client_id,
            rail,
            programme: None,
            currency: *currency,
        };
        entries.extend(postings::settlement_entries(&book, *out, *inn, *fee));
    }
    postings::post(
        &mut tx,
        &format!("settle:{}:{n}", ctx.run_id),
        &entries,
        &format!("reconciliation run {}", ctx.run_id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Completes an unknown payment that a statement line proves paid, and settles it.
async fn complete_from_statement(
    tx: &mut crate::store::Tx,
    kind: Kind,
    ctx: &Ctx<'_>,
    pid: Uuid,
    line: &RunLine,
    rule: Option<Rule>,
) -> Result<(Applied, Vec<postings::Entry>), RunError> {
    let statement_id = ctx.statement_of(line).unwrap_or_default();
    let rail_tx: Option<String> = crate::store::sql::query_scalar(
        "SELECT rail_transaction_id FROM statement_lines WHERE statement_id = $1 AND line_no = $2",
    )
    .bind(statement_id.to_string())
    .bind(line.line_no)
    .fetch_optional(&mut **tx)
    .await?
    .flatten();
    let cause = format!(
        "reconciliation run {}: statement {statement_id} line {}",
        ctx.run_id, line.line_no
    );
    let applied = engine::apply(
        tx,
        kind,
        pid,
        Change::Complete {
            attempt: None,
            settled: railgate_rail::Settled {
                rail_reference: rail_tx,
                receipt: None,
                amount: None,
            }
            .clone(),
        },
        &cause,
    )
    .await?;
    let mut entries = Vec::new();
    if matches!(applied, Applied::Changed { .. }) {
        if let Some((e, side)) = ctx.payment(&pid) {
            let settled_now = rstore::insert_settlements(
                tx,
                ctx.client_id,
                ctx.run_id,
                &[Settlement {
                    payment_id: pid,
                    statement_id,
                    line_no: line.line_no,
                    rule: rule.map(rule_code).unwrap_or("status_conflict"),
                    amount_minor: e.amount.minor(),
                    fee_minor: 0,
                    currency: e.amount.currency().code().to_owned(),
                    settled_on: line.date.map(|d| d.to_string()),
                }],
            )
            .await?;
            rstore::mark_lines_matched(
                tx,
                ctx.client_id,
                ctx.run_id,
                statement_id,
                &[line.line_no],
            )
            .await?;
            let book = postings::Book {
                client: ctx.client_id,
                rail: side.rail.as_deref().unwrap_or("unassigned"),
                programme: side.programme.as_deref(),
                currency: e.amount.currency(),
            };
            let (out, inn) = match e.kind {
                ExpectedKind::Disbursement => (e.amount.minor(), 0),
                ExpectedKind::Collection => (0, e.amount.minor()),
            };
            if settled_now.contains(&pid) {
                entries = postings::settlement_entries(&book, out, inn, 0);
                postings::post(tx, &format!("settle:{pid}"), &entries, &cause).await?;
            }
        }
    }
    Ok((applied, entries))
}

fn summarise(
    ctx: &Ctx<'_>,
    outcome: &Outcome,
    breaks: &[BreakRow],
    new_breaks: u64,
    completed: &[Uuid],
    returns: u64,
) -> Value {
    let mut by_rule: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_shape: BTreeMap<String, u64> = BTreeMap::new();
    for m in &outcome.matches {
        let n = by_rule.entry(rule_code(m.rule)).or_insert(0);
        *n = n.saturating_add(1);
        let s = by_shape
            .entry(
                match m.shape {
                    railgate_statements::matching::Shape::OneToOne => "one_to_one",
                    railgate_statements::matching::Shape::OneToMany => "one_to_many",
                    railgate_statements::matching::Shape::ManyToOne => "many_to_one",
                }
                .to_owned(),
            )
            .or_insert(0);
        *s = s.saturating_add(1);
    }
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for b in breaks {
        let n = by_kind.entry(b.kind.as_str()).or_insert(0);
        *n = n.saturating_add(1);
    }
    let st = &outcome.stats;
    json!({
        "lines_seen": st.lines_seen,
        "lines_not_booked": st.lines_not_booked,
        "lines_matched": st.lines_matched,
        "payments_considered": st.expected_given,
        "payments_matched": st.expected_matched,
        "statements": ctx.statements,
        "matches": {"total": outcome.matches.len(), "by_rule": by_rule, "by_shape": by_shape},
        "returns": returns,
        "completed_by_run": completed,
        "breaks": {
            "total": breaks.len(),
            "new": new_breaks,
            "by_type": by_kind,
            "items": breaks.iter().take(REPORT_BREAKS).map(super::break_view).collect::<Vec<_>>(),
            "truncated": breaks.len() > REPORT_BREAKS,
        },
    })
}
