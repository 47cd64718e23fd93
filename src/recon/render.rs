//! The report as JSON, as CSV for a spreadsheet, and as an HTML page that prints cleanly.
//!
//! The HTML is written here with an escaping helper rather than a template engine: two pages
//! of static structure do not justify a compile-time template crate, and every value passes
//! through [`esc`].

use super::breaks;
use super::report::{AgingRow, DayRow, Figures, Report, TotalRow};
use crate::domain::Currency;
use crate::store::recon::{BreakRow, RunRow};
use railgate_rail::money::format_minor;
use serde_json::{json, Value};
use std::fmt::Write as _;

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

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#1a1a1a}\
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}\
.meta{color:#555;font-size:.9rem}table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.85rem}\
th,td{border:1px solid #ccc;padding:.3rem .45rem;text-align:left;vertical-align:top}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}thead th{background:#f1f3f5}\
tr.critical td{background:#fdecea}.empty{color:#777;font-style:italic}\
form.inline{display:flex;gap:.4rem;flex-wrap:wrap;align-items:flex-start}\
form.inline textarea{min-width:14rem;min-height:2.2rem}button{cursor:pointer}\
nav{display:flex;gap:1rem;align-items:center;margin-bottom:1rem}.flash{background:#e7f5ea;padding:.5rem;border:1px solid #b7dfc0}\
.error{background:#fdecea;padding:.5rem;border:1px solid #f5c2c0}\
@media print{body{margin:0;font-size:10pt}nav,form,.noprint{display:none!important}table{page-break-inside:auto}\
tr{page-break-inside:avoid}thead{display:table-header-group}h2{page-break-after:avoid}}";

pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        esc(title)
    )
}

fn figure_cells(out: &mut String, f: &Figures, c: Currency, key: &str) {
    let cells = [
        ("instructed-count", f.instructed_count.to_string()),
        ("instructed", money(f.instructed_minor, c)),
        ("confirmed-count", f.confirmed_count.to_string()),
        ("confirmed", money(f.confirmed_minor, c)),
        ("settled-count", f.settled_count.to_string()),
        ("settled", money(f.settled_minor, c)),
        ("fees", money(f.fees_minor, c)),
        ("failed-count", f.failed_count.to_string()),
        ("unknown-count", f.unknown_count.to_string()),
    ];
    for (name, v) in cells {
        let _ = write!(
            out,
            "<td class=\"num\" data-figure=\"{}-{}\">{}</td>",
            esc(key),
            name,
            esc(&v)
        );
    }
}

const FIGURE_HEADERS: &str = "<th class=\"num\">Instructed #</th><th class=\"num\">Instructed</th>\
<th class=\"num\">Confirmed #</th><th class=\"num\">Confirmed</th><th class=\"num\">Settled #</th>\
<th class=\"num\">Settled</th><th class=\"num\">Fees</th><th class=\"num\">Failed #</th>\
<th class=\"num\">Unknown #</th>";

/// The body of the report: header, totals, daily table, aging, open breaks, unknown outcomes.
/// `resolve` adds a resolution form to each open break (the finance officer's page).
pub fn report_body(r: &Report, resolve: bool) -> String {
    let mut o = String::new();
    let q = &r.query;
    let _ = write!(
        o,
        "<h1>Reconciliation report</h1><p class=\"meta\">Period <strong id=\"period\">{} to {}</strong>\
         {}{} · generated {} UTC · days are the day each payment was instructed</p>",
        q.from,
        q.to,
        q.rail
            .as_deref()
            .map(|r| format!(" · rail {}", esc(r)))
            .unwrap_or_default(),
        q.programme
            .as_deref()
            .map(|p| format!(" · programme {}", esc(p)))
            .unwrap_or_default(),
        r.generated_at.format("%Y-%m-%d %H:%M"),
    );

    o.push_str("<h2>Totals</h2>");
    if r.totals.is_empty() {
        o.push_str("<p class=\"empty\">No payments in this period.</p>");
    } else {
        let _ = write!(
            o,
            "<table id=\"totals\"><thead><tr><th>Direction</th><th>Currency</th>{FIGURE_HEADERS}</tr></thead><tbody>"
        );
        for t in &r.totals {
            let key = format!("{}-{}", t.direction, t.currency.code());
            let _ = write!(
                o,
                "<tr data-total=\"{}\"><td>{}</td><td>{}</td>",
                esc(&key),
                esc(&t.direction),
                t.currency.code()
            );
            figure_cells(&mut o, &t.figures, t.currency, &key);
            o.push_str("</tr>");
        }
        o.push_str("</tbody></table>");
    }

    o.push_str("<h2>By day, rail and programme</h2>");
    if r.days.is_empty() {
        o.push_str("<p class=\"empty\">No payments in this period.</p>");
    } else {
        let _ = write!(
            o,
            "<table id=\"daily\"><thead><tr><th>Date</th><th>Rail</th><th>Programme</th><th>Direction</th>\
             <th>Currency</th>{FIGURE_HEADERS}</tr></thead><tbody>"
        );
        for d in &r.days {
            let key = format!(
                "{}-{}-{}-{}-{}",
                d.date,
                d.rail,
                d.programme,
                d.direction,
                d.currency.code()
            );
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                d.date,
                esc(&d.rail),
                esc(&d.programme),
                esc(&d.direction),
                d.currency.code()
            );
            figure_cells(&mut o, &d.figures, d.currency, &key);
            o.push_str("</tr>");
        }
        o.push_str("</tbody></table>");
    }

    let _ = write!(
        o,
        "<h2>Open breaks: <span id=\"open-break-count\">{}</span></h2>",
        r.open_break_count
    );
    if !r.aging.is_empty() {
        o.push_str(
            "<table id=\"aging\"><thead><tr><th>Age</th><th>Currency</th><th class=\"num\">Breaks</th>\
             <th class=\"num\">Critical</th><th class=\"num\">Amount</th></tr></thead><tbody>",
        );
        for a in &r.aging {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(a.bucket),
                a.currency.map(|c| c.code()).unwrap_or("—"),
                a.count,
                a.critical,
                a.currency
                    .map(|c| money(a.amount_minor, c))
                    .unwrap_or_default()
            );
        }
        o.push_str("</tbody></table>");
    }
    if r.open_breaks.is_empty() {
        o.push_str("<p class=\"empty\">No open breaks.</p>");
    } else {
        o.push_str(
            "<table id=\"breaks\"><thead><tr><th>Opened</th><th>Age (days)</th><th>Type</th><th>Severity</th>\
             <th>Owner</th><th>Rail</th><th>Programme</th><th class=\"num\">Amount</th><th>Note</th>",
        );
        if resolve {
            o.push_str("<th class=\"noprint\">Resolve</th>");
        }
        o.push_str("</tr></thead><tbody>");
        let now = crate::store::now_micros();
        for b in &r.open_breaks {
            break_row(&mut o, b, now, resolve);
        }
        o.push_str("</tbody></table>");
    }

    o.push_str("<h2>Unknown outcomes and exceptions</h2>");
    if r.unknown.is_empty() {
        o.push_str("<p class=\"empty\">None.</p>");
    } else {
        o.push_str(
            "<table id=\"unknown\"><thead><tr><th>Instructed</th><th>Reference</th><th>Direction</th>\
             <th>State</th><th>Rail</th><th>Currency</th><th class=\"num\">Amount</th><th>Exception or conflict</th>\
             </tr></thead><tbody>",
        );
        for u in &r.unknown {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                u.created_at.date_naive(),
                esc(&u.reference),
                esc(&u.direction),
                esc(&u.state),
                esc(u.rail.as_deref().unwrap_or("")),
                u.currency.code(),
                money(u.amount_minor, u.currency),
                esc(u
                    .exception
                    .as_deref()
                    .or(u.conflict.as_deref())
                    .unwrap_or("")),
            );
        }
        o.push_str("</tbody></table>");
    }
    o
}

fn break_row(o: &mut String, b: &BreakRow, now: i64, resolve: bool) {
    let c = b
        .currency
        .as_deref()
        .and_then(|c| c.parse::<Currency>().ok());
    let amount = match (b.amount_minor, c) {
        (Some(m), Some(c)) => format!("{} {}", money(m, c), c.code()),
        _ => String::new(),
    };
    let _ = write!(
        o,
        "<tr class=\"{}\" data-break=\"{}\"><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td>",
        esc(&b.severity),
        b.id,
        crate::store::from_micros(b.opened_at).date_naive(),
        super::age_days(b.opened_at, now),
        esc(&b.kind),
        esc(&b.severity),
        esc(b.owner.as_deref().unwrap_or("")),
        esc(b.rail.as_deref().unwrap_or("")),
        esc(b.programme.as_deref().unwrap_or("")),
        esc(&amount),
        esc(&b.note),
    );
    if resolve {
        let _ = write!(
            o,
            "<td class=\"noprint\"><form class=\"inline\" method=\"post\" action=\"/reports/breaks/{}/resolve\">\
             <select name=\"resolution\" aria-label=\"resolution\">",
            b.id
        );
        for r in breaks::allowed(&b.kind) {
            let _ = write!(o, "<option value=\"{0}\">{0}</option>", esc(r));
        }
        o.push_str(
            "</select><textarea name=\"reason\" required placeholder=\"Reason\" aria-label=\"reason\"></textarea>\
             <button type=\"submit\">Resolve</button></form></td>",
        );
    }
    o.push_str("</tr>");
}

/// The printable report on its own (API `format=html`, `railgate report --format html`).
pub fn html(r: &Report) -> String {
    page(
        &format!("Reconciliation {} to {}", r.query.from, r.query.to),
        &report_body(r, false),
    )
}

/// The finance officer's page: the period form, recent runs, then the report with a
/// resolution form on every open break.
pub fn finance_page(r: &Report, runs: &[RunRow], who: &str, flash: Option<&str>) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<nav class=\"noprint\"><strong>Railgate · reconciliation</strong><span>{}</span>\
         <form method=\"post\" action=\"/reports/logout\"><button type=\"submit\">Sign out</button></form></nav>",
        esc(who)
    );
    if let Some(f) = flash {
        let _ = write!(
            o,
            "<p class=\"flash noprint\" role=\"status\">{}</p>",
            esc(f)
        );
    }
    let _ = write!(
        o,
        "<form class=\"inline noprint\" method=\"get\" action=\"/reports\">\
         <label>From <input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>To <input type=\"date\" name=\"to\" value=\"{}\"></label>\
         <button type=\"submit\">Show</button>\
         <a href=\"/reports/download?from={0}&amp;to={1}&amp;format=csv\">CSV</a></form>",
        r.query.from, r.query.to
    );
    o.push_str(&report_body(r, true));
    o.push_str("<h2>Recent reconciliation runs</h2>");
    if runs.is_empty() {
        o.push_str("<p class=\"empty\">No runs yet.</p>");
    } else {
        o.push_str(
            "<table id=\"runs\"><thead><tr><th>Started</th><th>Scope</th><th>Dry run</th><th>Status</th>\
             <th class=\"num\">Lines</th><th class=\"num\">Matched</th><th class=\"num\">Breaks</th><th>By</th></tr></thead><tbody>",
        );
        for run in runs {
            let rep = run.report.clone().unwrap_or(Value::Null);
            let scope = match run.statement_id {
                Some(s) => format!("statement {s}"),
                None => format!(
                    "{} to {}",
                    run.date_from.as_deref().unwrap_or("?"),
                    run.date_to.as_deref().unwrap_or("?")
                ),
            };
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                crate::store::from_micros(run.created_at).format("%Y-%m-%d %H:%M"),
                esc(&scope),
                if run.dry_run { "yes" } else { "no" },
                esc(&run.status),
                rep.pointer("/lines_seen").and_then(Value::as_u64).unwrap_or(0),
                rep.pointer("/lines_matched").and_then(Value::as_u64).unwrap_or(0),
                rep.pointer("/breaks/total").and_then(Value::as_u64).unwrap_or(0),
                esc(&run.created_by),
            );
        }
        o.push_str("</tbody></table>");
    }
    page("Reconciliation · finance", &o)
}

/// The sign-in form of the finance page.
pub fn login_page(error: Option<&str>) -> String {
    let mut o = String::from("<h1>Railgate reconciliation</h1>");
    if let Some(e) = error {
        let _ = write!(o, "<p class=\"error\" role=\"alert\">{}</p>", esc(e));
    }
    o.push_str(
        "<form method=\"post\" action=\"/reports/login\"><p><label>API key (scope reports:read)<br>\
         <input type=\"password\" name=\"api_key\" autocomplete=\"current-password\" size=\"50\" required></label></p>\
         <p><button type=\"submit\">Sign in</button></p></form>",
    );
    page("Sign in · Railgate", &o)
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
        ReportFormat::Html => html(&r),
        ReportFormat::Csv(section) => csv(&r, section)?,
    })
}
