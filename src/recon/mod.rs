//! Reconciliation (DESIGN §8): statements in, runs that match them against our payments,
//! the break queue finance officers work through, and the reports they sign off.
//!
//! - `ingest`: an upload spooled, hashed, recognised when seen before, parsed in a stream;
//! - `run`: the matcher fed from the store; settlements and breaks written back;
//! - `breaks`: resolving a break, with who, when, why and the entries it posts;
//! - `report`: the figures per day, rail and programme, the aging of open breaks;
//! - `render`: the same report as CSV and as a printable HTML page;
//! - `postings`: the only place reconciliation talks to the ledger.

pub mod breaks;
pub mod ingest;
pub mod lines;
pub mod postings;
pub mod render;
pub mod report;
pub mod run;

use crate::store::from_micros;
use crate::store::recon::BreakRow;
use serde_json::{json, Value};

const DAY_MICROS: i64 = 86_400_000_000;

/// Whole days between two instants in microseconds (never negative).
pub fn age_days(from_us: i64, to_us: i64) -> i64 {
    to_us
        .saturating_sub(from_us)
        .max(0)
        .checked_div(DAY_MICROS)
        .unwrap_or(0)
}

fn amount_json(minor: Option<i64>, currency: Option<&str>) -> Value {
    match (
        minor,
        currency.and_then(|c| c.parse::<crate::domain::Currency>().ok()),
    ) {
        (Some(m), Some(c)) => json!({
            "value": railgate_rail::money::format_minor(m, c),
            "currency": c.code(),
        }),
        _ => Value::Null,
    }
}

/// A break as the API shows it.
pub fn break_view(b: &BreakRow) -> Value {
    let until = b.resolved_at.unwrap_or_else(crate::store::now_micros);
    let rfc = |us: i64| from_micros(us).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    json!({
        "id": b.id,
        "type": b.kind,
        "severity": b.severity,
        "status": b.status,
        "owner": b.owner,
        "note": b.note,
        "age_days": age_days(b.opened_at, until),
        "opened_at": rfc(b.opened_at),
        "run_id": b.run_id,
        "payment_id": b.payment_id,
        "statement_line": b.statement_id.map(|s| json!({"statement_id": s, "line_no": b.line_no})),
        "amount": amount_json(b.amount_minor, b.currency.as_deref()),
        "rail": b.rail,
        "programme": b.programme,
        "detail": b.detail,
        "resolution": b.resolution.as_ref().map(|r| json!({
            "resolution": r,
            "reason": b.reason,
            "resolved_by": b.resolved_by,
            "resolved_at": b.resolved_at.map(rfc),
            "entries": b.entries.clone().unwrap_or(json!([])),
        })),
    })
}
