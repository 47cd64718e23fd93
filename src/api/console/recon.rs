//! Statements and runs on the console: upload a statement from the page, start a run (a dry
//! run first), see the recent runs. The report and the break queue are `/reports` itself.

use super::super::recon::{run_as, scope_from, upload_as, upload_spec, Uploaded};
use super::super::AppState;
use super::session::{self, Officer};
use super::{message, page, reason, signed_out, Action, Chrome};
use crate::recon::ingest::MAX_STATEMENT_BYTES;
use crate::store::audit::Outcome;
use crate::store::recon::{self as rstore, RunRow};
use askama::Template;
use axum::extract::{Form, Multipart, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// A run as the tables show it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub id: String,
    pub started: String,
    pub scope: String,
    pub dry_run: &'static str,
    pub status: String,
    pub lines: u64,
    pub matched: u64,
    pub breaks: u64,
    pub by: String,
}

impl RunView {
    pub fn new(run: &RunRow) -> RunView {
        let rep = run.report.clone().unwrap_or(Value::Null);
        let n = |p: &str| rep.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        RunView {
            id: run.id.to_string(),
            started: crate::store::from_micros(run.created_at)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            scope: match run.statement_id {
                Some(s) => format!("statement {s}"),
                None => format!(
                    "{} to {}",
                    run.date_from.as_deref().unwrap_or("?"),
                    run.date_to.as_deref().unwrap_or("?")
                ),
            },
            dry_run: if run.dry_run { "yes" } else { "no" },
            status: run.status.clone(),
            lines: n("/lines_seen"),
            matched: n("/lines_matched"),
            breaks: n("/breaks/total"),
            by: run.created_by.clone(),
        }
    }
}

/// The statement formats the upload form offers: `camt`, or a CSV profile.
const KINDS: [(&str, &str); 4] = [
    ("camt", "camt.053 / camt.054 (XML)"),
    (
        railgate_statements::MOCK_RAIL_PROFILE,
        "CSV: the mock rail's export",
    ),
    (
        railgate_statements::RAIL_EXPORT_PROFILE,
        "CSV: a rail's statement export",
    ),
    (
        railgate_statements::MOBILE_MONEY_PROFILE,
        "CSV: a mobile-money statement",
    ),
];

#[derive(Template)]
#[template(path = "console/statements.html")]
struct StatementsPage {
    chrome: Chrome,
    kinds: &'static [(&'static str, &'static str)],
    rails: Vec<String>,
    statement_id: String,
    last: Option<RunView>,
    runs: Vec<RunView>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StatementsQuery {
    statement: Option<String>,
    run: Option<String>,
}

/// `GET /reports/statements`.
pub async fn statements(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    query: Result<Query<StatementsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::OK);
    };
    let q = query.map(|Query(q)| q).unwrap_or_default();
    match statements_page(&state, &officer, &q).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn statements_page(
    state: &AppState,
    officer: &Officer,
    q: &StatementsQuery,
) -> Result<Response, super::super::problem::Problem> {
    let client = officer.caller.client_id;
    let mut chrome = Chrome::new(state, officer, "Statements and runs", "statements").await?;
    let statement = q.statement.as_deref().and_then(|s| Uuid::parse_str(s).ok());
    if let Some(id) = statement {
        if let Some(s) = rstore::statement(&state.db, client, id).await? {
            chrome.flash = Some(format!(
                "Statement {} loaded: {} lines, {} errors.",
                s.id, s.line_count, s.error_count
            ));
        }
    }
    let last = match q.run.as_deref().and_then(|s| Uuid::parse_str(s).ok()) {
        Some(id) => rstore::run(&state.db, Some(client), id)
            .await?
            .map(|r| RunView::new(&r)),
        None => None,
    };
    let runs = rstore::recent_runs(&state.db, client, 20).await?;
    Ok(page(
        StatusCode::OK,
        &StatementsPage {
            chrome,
            kinds: &KINDS,
            rails: state.cfg.rails.iter().map(|r| r.id.clone()).collect(),
            statement_id: statement.map(|s| s.to_string()).unwrap_or_default(),
            last,
            runs: runs.iter().map(RunView::new).collect(),
        },
    ))
}

/// The most a text field of the upload form may hold.
const MAX_FIELD: usize = 200;

/// `POST /reports/statements` (multipart): the form's token, format and rail come first, then
/// the file, which is streamed to the statement loader as the API's upload is.
pub async fn upload(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::UNAUTHORIZED);
    };
    let back = "/reports/statements";
    let bad = |text: &str| message(StatusCode::BAD_REQUEST, "Statements", text, back);
    let Ok(mut form) = multipart else {
        return bad("Send the upload form as it is on the page.");
    };
    let mut token = String::new();
    let mut kind = String::new();
    let mut rail = String::new();
    let action = Action {
        officer: &officer,
        name: "statement.upload",
        subject: "statement:new".into(),
        scopes: &["recon:write"],
        back: back.into(),
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return bad("The form holds no file."),
            Err(_) => return bad("The upload was interrupted."),
        };
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            if let Err(refused) = action.allowed(&state, &token).await {
                return refused;
            }
            let (declared, profile) = if kind == "camt" {
                ("camt", None)
            } else {
                ("csv", Some(kind.as_str()))
            };
            let rail = (!rail.is_empty()).then(|| rail.clone());
            let spec = match upload_spec(&state, profile, Some(declared), "", rail) {
                Ok(s) => s,
                Err(p) => return bad(&p.detail_text()),
            };
            return match upload_as(&state, &officer.caller, spec, field).await {
                Ok(Uploaded::New(s)) | Ok(Uploaded::Duplicate(s, _)) => {
                    let done = Action {
                        subject: format!("statement:{}", s.id),
                        ..action
                    };
                    let detail = format!("{} lines, {} errors", s.line_count, s.error_count);
                    done.record(&state, Outcome::Done, None, Some(&detail))
                        .await;
                    Redirect::to(&format!("/reports/statements?statement={}", s.id)).into_response()
                }
                Err(p) => {
                    action
                        .record(&state, Outcome::Refused, None, Some(&p.detail_text()))
                        .await;
                    message(p.status, "Statements", &p.detail_text(), back)
                }
            };
        }
        let Ok(text) = field.text().await else {
            return bad("The upload was interrupted.");
        };
        if text.len() > MAX_FIELD {
            return bad("A field of the form is too long.");
        }
        match name.as_str() {
            "csrf" => token = text,
            "kind" => kind = text,
            "rail" => rail = text,
            _ => return bad("The form has a field this page does not know."),
        }
    }
}

/// The largest upload the console takes (the statement loader's own bound).
pub fn upload_limit() -> usize {
    usize::try_from(MAX_STATEMENT_BYTES).unwrap_or(usize::MAX)
}

#[derive(Debug, Deserialize)]
pub struct RunForm {
    csrf: Option<String>,
    statement_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    dry_run: Option<String>,
    reason: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `POST /reports/runs`: a run over a statement or a period; a real run needs a reason.
pub async fn run(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    form: Result<Form<RunForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::UNAUTHORIZED);
    };
    let back = "/reports/statements";
    let Ok(Form(f)) = form else {
        return message(
            StatusCode::BAD_REQUEST,
            "Runs",
            "Fill in the run form.",
            back,
        );
    };
    let dry = f.dry_run.as_deref() == Some("true");
    let subject = match given(&f.statement_id) {
        Some(s) => format!("statement:{s}"),
        None => format!(
            "period:{}..{}",
            given(&f.from).unwrap_or("?"),
            given(&f.to).unwrap_or("?")
        ),
    };
    let action = Action {
        officer: &officer,
        name: "recon.run",
        subject,
        scopes: &["recon:write"],
        back: back.into(),
    };
    if let Err(refused) = action
        .allowed(&state, f.csrf.as_deref().unwrap_or(""))
        .await
    {
        return refused;
    }
    let why = match (dry, reason(f.reason.as_deref())) {
        (_, Ok(r)) => Some(r),
        (true, Err(_)) => None,
        (false, Err(e)) => return message(StatusCode::BAD_REQUEST, "Runs", e, back),
    };
    let mut body = json!({"dry_run": dry});
    for (k, v) in [
        ("statement_id", given(&f.statement_id)),
        ("from", given(&f.from)),
        ("to", given(&f.to)),
    ] {
        if let (Some(v), Some(o)) = (v, body.as_object_mut()) {
            o.insert(k.into(), json!(v));
        }
    }
    let scope = match scope_from(&body) {
        Ok(s) => s,
        Err(p) => return message(p.status, "Runs", &p.detail_text(), back),
    };
    match run_as(&state, &officer.caller, scope).await {
        Ok(r) => {
            let v = RunView::new(&r);
            let detail = format!(
                "{}run {}: {} lines, {} matched, {} breaks",
                if dry { "dry " } else { "" },
                r.id,
                v.lines,
                v.matched,
                v.breaks
            );
            action
                .record(&state, Outcome::Done, why.as_deref(), Some(&detail))
                .await;
            Redirect::to(&format!("/reports/statements?run={}", r.id)).into_response()
        }
        Err(p) => {
            action
                .record(
                    &state,
                    Outcome::Failed,
                    why.as_deref(),
                    Some(&p.detail_text()),
                )
                .await;
            message(p.status, "Runs", &p.detail_text(), back)
        }
    }
}
