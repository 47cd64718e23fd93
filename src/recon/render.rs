//! The report as JSON, as CSV for a spreadsheet, and as an HTML page that prints cleanly.
//!
//! The HTML comes from templates (`templates/report/`), which escape every value; this module
//! only formats the figures for them.

use super::breaks;
use super::report::{AgingRow, DayRow, Figures, Report, TotalRow};
use crate::domain::Currency;
use crate::store::recon::BreakRow;
use railgate_rail::money::format_minor;
use serde_json::{json, Value};

fn money(minor: i64, c: Currency) -> String {
    format_minor(minor, c)
}

fn figures_json(f: &Figures, c: Currency) -> Value {
    json!({
        "instructed": {"count": f.instructed_count, "amount": money(f.instructed_minor, c)},
        "confirmed": {"count": f.confirmed_count, "amount": money(f.confirmed_minor, c)},
        "settled": {"count": f.settled_count, "amount": money(f.settled_minor, c)},
        "fees": money(f.fees_minor, c),
        "failed_count": f.failed_count,
        "unknown_count": f.unknown_count,
    })
}

fn day_json(d: &DayRow) -> Value {
    let mut v = json!({
        "date": d.date.to_string(),
        "rail": d.rail,
        "programme": d.programme,
        "direction": d.direction,
        "currency": d.currency.code(),
    });
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), figures_json(&d.figures, d.currency)) {
        o.extend(f);
    }
    v
}

fn total_json(t: &TotalRow) -> Value {
    let mut v = json!({"direction": t.direction, "currency": t.currency.code()});
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), figures_json(&t.figures, t.currency)) {
        o.extend(f);
    }
    v
}

fn aging_json(a: &AgingRow) -> Value {
    json!({
        "bucket": a.bucket,
        "currency": a.currency.map(|c| c.code()),
        "count": a.count,
        "critical": a.critical,
        "amount": a.currency.map(|c| money(a.amount_minor, c)),
    })
}

pub fn json(r: &Report) -> Value {
    json!({
        "from": r.query.from.to_string(),
        "to": r.query.to.to_string(),
        "rail": r.query.rail,
        "programme": r.query.programme,
        "generated_at": r.generated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "days": r.days.iter().map(day_json).collect::<Vec<_>>(),
        "totals": r.totals.iter().map(total_json).collect::<Vec<_>>(),
        "open_breaks": {
            "count": r.open_break_count,
            "aging": r.aging.iter().map(aging_json).collect::<Vec<_>>(),
            "items": r.open_breaks.iter().map(super::break_view).collect::<Vec<_>>(),
        },
        "unknown_outcomes": r.unknown.iter().map(|u| json!({
            "id": u.id,
            "reference": u.reference,
            "direction": u.direction,
            "state": u.state,
            "rail": u.rail,
            "amount": money(u.amount_minor, u.currency),
            "currency": u.currency.code(),
            "created_at": u.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "exception": u.exception,
            "conflict": u.conflict,
        })).collect::<Vec<_>>(),
    })
}

/// Which table a CSV download holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvSection {
    Daily,
    Breaks,
    Unknown,
}

impl CsvSection {
    pub fn parse(s: &str) -> Option<CsvSection> {
        match s {
            "daily" => Some(CsvSection::Daily),
            "breaks" => Some(CsvSection::Breaks),
            "unknown" => Some(CsvSection::Unknown),
            _ => None,
        }
    }
}

/// One table per file, a header row, ISO dates, plain decimal amounts with the currency in a
/// column of its own: what a spreadsheet opens without questions.
pub fn csv(r: &Report, section: CsvSection) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    match section {
        CsvSection::Daily => {
            w.write_record([
                "date",
                "rail",
                "programme",
                "direction",
                "currency",
                "instructed_count",
                "instructed_amount",
                "confirmed_count",
                "confirmed_amount",
                "settled_count",
                "settled_amount",
                "fees",
                "failed_count",
                "unknown_count",
            ])?;
            for d in &r.days {
                let f = &d.figures;
                let c = d.currency;
                w.write_record([
                    d.date.to_string(),
                    d.rail.clone(),
                    d.programme.clone(),
                    d.direction.clone(),
                    c.code().to_owned(),
                    f.instructed_count.to_string(),
                    money(f.instructed_minor, c),
                    f.confirmed_count.to_string(),
                    money(f.confirmed_minor, c),
                    f.settled_count.to_string(),
                    money(f.settled_minor, c),
                    money(f.fees_minor, c),
                    f.failed_count.to_string(),
                    f.unknown_count.to_string(),
                ])?;
            }
        }
        CsvSection::Breaks => {
            w.write_record([
                "id",
                "type",
                "severity",
                "owner",
                "opened_on",
                "age_days",
                "aging_bucket",
                "rail",
                "programme",
                "currency",
                "amount",
                "payment_id",
                "statement_id",
                "line_no",
                "note",
            ])?;
            let now = crate::store::now_micros();
            for b in &r.open_breaks {
                let age = super::age_days(b.opened_at, now);
                let c = b
                    .currency
                    .as_deref()
                    .and_then(|c| c.parse::<Currency>().ok());
                w.write_record([
                    b.id.to_string(),
                    b.kind.clone(),
                    b.severity.clone(),
                    b.owner.clone().unwrap_or_default(),
                    crate::store::from_micros(b.opened_at)
                        .date_naive()
                        .to_string(),
                    age.to_string(),
                    super::report::bucket(age).to_owned(),
                    b.rail.clone().unwrap_or_default(),
                    b.programme.clone().unwrap_or_default(),
                    c.map(|c| c.code().to_owned()).unwrap_or_default(),
                    match (b.amount_minor, c) {
                        (Some(m), Some(c)) => money(m, c),
                        _ => String::new(),
                    },
                    b.payment_id.map(|p| p.to_string()).unwrap_or_default(),
                    b.statement_id.map(|p| p.to_string()).unwrap_or_default(),
                    b.line_no.map(|n| n.to_string()).unwrap_or_default(),
                    b.note.clone(),
                ])?;
            }
        }
        CsvSection::Unknown => {
            w.write_record([
                "id",
                "reference",
                "direction",
                "state",
                "rail",
                "currency",
                "amount",
                "instructed_on",
                "exception",
                "conflict",
            ])?;
            for u in &r.unknown {
                w.write_record([
                    u.id.to_string(),
                    u.reference.clone(),
                    u.direction.clone(),
                    u.state.clone(),
                    u.rail.clone().unwrap_or_default(),
                    u.currency.code().to_owned(),
                    money(u.amount_minor, u.currency),
                    u.created_at.date_naive().to_string(),
                    u.exception.clone().unwrap_or_default(),
                    u.conflict.clone().unwrap_or_default(),
                ])?;
            }
        }
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// One figure of a totals or daily row: its `data-figure` key and the value shown.
#[derive(Debug, Clone)]
pub struct Cell {
    pub figure: String,
    pub value: String,
}

fn cells(f: &Figures, c: Currency, key: &str) -> Vec<Cell> {
    [
        ("instructed-count", f.instructed_count.to_string()),
        ("instructed", money(f.instructed_minor, c)),
        ("confirmed-count", f.confirmed_count.to_string()),
        ("confirmed", money(f.confirmed_minor, c)),
        ("settled-count", f.settled_count.to_string()),
        ("settled", money(f.settled_minor, c)),
        ("fees", money(f.fees_minor, c)),
        ("failed-count", f.failed_count.to_string()),
        ("unknown-count", f.unknown_count.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| Cell {
        figure: format!("{key}-{name}"),
        value,
    })
    .collect()
}

#[derive(Debug, Clone)]
pub struct TotalView {
    pub key: String,
    pub direction: String,
    pub currency: &'static str,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone)]
pub struct DayView {
    pub date: String,
    pub rail: String,
    pub programme: String,
    pub direction: String,
    pub currency: &'static str,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone)]
pub struct AgingView {
    pub bucket: &'static str,
    pub currency: &'static str,
    pub count: u64,
    pub critical: u64,
    pub amount: String,
}

#[derive(Debug, Clone)]
pub struct BreakView {
    pub id: String,
    pub opened: String,
    pub age: i64,
    pub kind: String,
    pub severity: String,
    pub owner: String,
    pub rail: String,
    pub programme: String,
    pub amount: String,
    pub note: String,
    pub resolutions: Vec<&'static str>,
}

#[derive(Debug, Clone)]
pub struct UnknownView {
    pub instructed: String,
    pub reference: String,
    pub direction: String,
    pub state: String,
    pub rail: String,
    pub currency: &'static str,
    pub amount: String,
    pub note: String,
}

/// The report as the page shows it: every value formatted, ready for `report/body.html`.
#[derive(Debug, Clone)]
pub struct ReportView {
    pub from: String,
    pub to: String,
    pub rail: Option<String>,
    pub programme: Option<String>,
    pub generated: String,
    pub totals: Vec<TotalView>,
    pub days: Vec<DayView>,
    pub open_break_count: u64,
    pub aging: Vec<AgingView>,
    pub breaks: Vec<BreakView>,
    pub unknown: Vec<UnknownView>,
    /// A resolution form on each open break (the finance officer's page), with this form
    /// token.
    pub resolve: bool,
    pub csrf: String,
}

fn break_view(b: &BreakRow, now: i64) -> BreakView {
    let c = b
        .currency
        .as_deref()
        .and_then(|c| c.parse::<Currency>().ok());
    BreakView {
        id: b.id.to_string(),
        opened: crate::store::from_micros(b.opened_at)
            .date_naive()
            .to_string(),
        age: super::age_days(b.opened_at, now),
        kind: b.kind.clone(),
        severity: b.severity.clone(),
        owner: b.owner.clone().unwrap_or_default(),
        rail: b.rail.clone().unwrap_or_default(),
        programme: b.programme.clone().unwrap_or_default(),
        amount: match (b.amount_minor, c) {
            (Some(m), Some(c)) => format!("{} {}", money(m, c), c.code()),
            _ => String::new(),
        },
        note: b.note.clone(),
        resolutions: breaks::allowed(&b.kind).to_vec(),
    }
}

impl ReportView {
    /// `csrf`: the officer's form token when the page resolves breaks; `None` for the
    /// printable report, which has no forms.
    pub fn new(r: &Report, csrf: Option<&str>) -> ReportView {
        let q = &r.query;
        let now = crate::store::now_micros();
        ReportView {
            from: q.from.to_string(),
            to: q.to.to_string(),
            rail: q.rail.clone(),
            programme: q.programme.clone(),
            generated: r.generated_at.format("%Y-%m-%d %H:%M").to_string(),
            totals: r
                .totals
                .iter()
                .map(|t| {
                    let key = format!("{}-{}", t.direction, t.currency.code());
                    TotalView {
                        cells: cells(&t.figures, t.currency, &key),
                        key,
                        direction: t.direction.clone(),
                        currency: t.currency.code(),
                    }
                })
                .collect(),
            days: r
                .days
                .iter()
                .map(|d| {
                    let key = format!(
                        "{}-{}-{}-{}-{}",
                        d.date,
                        d.rail,
                        d.programme,
                        d.direction,
                        d.currency.code()
                    );
                    DayView {
                        date: d.date.to_string(),
                        rail: d.rail.clone(),
                        programme: d.programme.clone(),
                        direction: d.direction.clone(),
                        currency: d.currency.code(),
                        cells: cells(&d.figures, d.currency, &key),
                    }
                })
                .collect(),
            open_break_count: r.open_break_count,
            aging: r
                .aging
                .iter()
                .map(|a| AgingView {
                    bucket: a.bucket,
                    currency: a.currency.map(|c| c.code()).unwrap_or("—"),
                    count: a.count,
                    critical: a.critical,
                    amount: a
                        .currency
                        .map(|c| money(a.amount_minor, c))
                        .unwrap_or_default(),
                })
                .collect(),
            breaks: r.open_breaks.iter().map(|b| break_view(b, now)).collect(),
            unknown: r
                .unknown
                .iter()
                .map(|u| UnknownView {
                    instructed: u.created_at.date_naive().to_string(),
                    reference: u.reference.clone(),
                    direction: u.direction.clone(),
                    state: u.state.clone(),
                    rail: u.rail.clone().unwrap_or_default(),
                    currency: u.currency.code(),
                    amount: money(u.amount_minor, u.currency),
                    note: u
                        .exception
                        .clone()
                        .or_else(|| u.conflict.clone())
                        .unwrap_or_default(),
                })
                .collect(),
            resolve: csrf.is_some(),
            csrf: csrf.unwrap_or_default().to_owned(),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "report/print.html")]
struct PrintPage<'a> {
    title: String,
    report: &'a ReportView,
}

/// The printable report on its own (API `format=html`, `railgate report --format html`).
pub fn html(r: &Report) -> Result<String, askama::Error> {
    use askama::Template as _;
    let report = ReportView::new(r, None);
    PrintPage {
        title: format!("Reconciliation {} to {}", r.query.from, r.query.to),
        report: &report,
    }
    .render()
}

/// The report as text in the asked format (the command line's `railgate report`).
pub async fn write(
    db: &crate::store::Db,
    q: &super::report::Query,
    format: crate::api::recon::ReportFormat,
) -> anyhow::Result<String> {
    use crate::api::recon::ReportFormat;
    let r = super::report::build(db, q).await?;
    Ok(match format {
        ReportFormat::Json => serde_json::to_string_pretty(&json(&r))?,
        ReportFormat::Html => html(&r)?,
        ReportFormat::Csv(section) => csv(&r, section)?,
    })
}
