//! Payrolls on the console: the list with each payroll's progress, one payroll's page with
//! its items by state, the release of its held items, and its openIMIS file.
//!
//! Progress comes from the count of items per state, read from the (payroll_id, state)
//! index; a page with a running payroll reloads itself every few seconds.

use super::super::payrolls::{export::export_as, hold_as, owned, release_as};
use super::super::problem::Problem;
use super::super::AppState;
use super::session::{self, Officer};
use super::{mask, message, page, reason, signed_out, when, Action, Chrome};
use crate::domain::State;
use crate::store::audit::Outcome;
use crate::store::payments::{self as pstore, Filter};
use crate::store::payrolls::{self, Payroll, Status};
use askama::Template;
use axum::extract::{Form, Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

/// Payrolls per page of the list; items per page of a payroll.
const PAYROLLS: i64 = 20;
const ITEMS: i64 = 100;
/// How often a page with a running payroll reloads itself.
const REFRESH_SECS: u32 = 5;

/// A payroll's progress as the bar shows it.
pub struct Progress {
    /// Finished items (completed, failed, cancelled, reversed) in whole percent.
    pub percent: i64,
    /// (class, width in percent with one decimal) per part of the bar.
    pub segments: Vec<(&'static str, String)>,
    /// (state, count) for every state with items.
    pub counts: Vec<(&'static str, i64)>,
    pub time_left: Option<String>,
}

/// Which part of the bar a state belongs to.
fn part(s: State) -> &'static str {
    match s {
        State::Completed => "completed",
        State::Failed => "failed",
        State::Unknown => "unknown",
        State::Cancelled => "cancelled",
        State::Reversed => "reversed",
        State::Received | State::Queued | State::Submitted | State::Pending => "open",
    }
}

/// `part` of `whole` in percent with one decimal, as text (integer arithmetic).
fn share(part: i64, whole: i64) -> String {
    let tenths = part
        .saturating_mul(1000)
        .checked_div(whole)
        .unwrap_or(0)
        .clamp(0, 1000);
    format!("{}.{}", tenths / 10, tenths % 10)
}

fn progress(p: &Payroll, counts: &[(State, i64)]) -> Progress {
    let total = counts
        .iter()
        .map(|(_, n)| *n)
        .fold(0i64, i64::saturating_add)
        .max(p.item_count);
    let done = counts
        .iter()
        .filter(|(s, _)| s.is_final())
        .map(|(_, n)| *n)
        .fold(0i64, i64::saturating_add);
    let mut segments: Vec<(&'static str, i64)> = Vec::new();
    for (s, n) in counts {
        let key = part(*s);
        match segments.iter_mut().find(|(k, _)| *k == key) {
            Some((_, m)) => *m = m.saturating_add(*n),
            None => segments.push((key, *n)),
        }
    }
    let order = [
        "completed",
        "failed",
        "reversed",
        "cancelled",
        "unknown",
        "open",
    ];
    segments.sort_by_key(|(k, _)| order.iter().position(|o| o == k));
    // Time left: the pace since the release, carried on over what is still open.
    let time_left = match (p.status, p.released_at) {
        (Status::Released, Some(at)) if done > 0 && done < total => {
            let elapsed = chrono::Utc::now()
                .signed_duration_since(at)
                .num_seconds()
                .max(1);
            let left = elapsed
                .saturating_mul(total.saturating_sub(done))
                .checked_div(done)
                .unwrap_or(0);
            Some(if left < 90 {
                format!("{left} s")
            } else {
                format!("{} min", left.saturating_add(59) / 60)
            })
        }
        _ => None,
    };
    let mut counts: Vec<(&'static str, i64)> =
        counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    counts.sort_by_key(|(s, _)| State::ALL.iter().position(|a| a.as_str() == *s));
    Progress {
        percent: done.saturating_mul(100).checked_div(total).unwrap_or(0),
        segments: segments
            .into_iter()
            .map(|(k, n)| (k, share(n, total)))
            .collect(),
        counts,
        time_left,
    }
}

pub struct PayrollRow {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub items: i64,
    pub created: String,
    pub progress: Progress,
}

async fn payroll_row(state: &AppState, p: &Payroll) -> Result<PayrollRow, Problem> {
    let counts = payrolls::state_counts(&state.db, p.id).await?;
    Ok(PayrollRow {
        id: p.id.to_string(),
        name: p.name.clone(),
        status: p.status.as_str(),
        items: p.item_count,
        created: when(p.created_at),
        progress: progress(p, &counts),
    })
}

fn needs_read(officer: &Officer) -> Option<Response> {
    (!officer.may("payments:read")).then(|| {
        message(
            StatusCode::FORBIDDEN,
            "Payrolls",
            "Payrolls need a key with the scope payments:read.",
            "/reports",
        )
    })
}

#[derive(Template)]
#[template(path = "console/payrolls.html")]
struct PayrollsPage {
    chrome: Chrome,
    rows: Vec<PayrollRow>,
    before: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    before: Option<String>,
}

/// `GET /reports/payrolls`.
pub async fn list(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::OK);
    };
    if let Some(refused) = needs_read(&officer) {
        return refused;
    }
    let before = query
        .ok()
        .and_then(|Query(q)| q.before)
        .and_then(|b| Uuid::parse_str(&b).ok());
    list_page(&state, &officer, before)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn list_page(
    state: &AppState,
    officer: &Officer,
    before: Option<Uuid>,
) -> Result<Response, Problem> {
    let list = payrolls::page(&state.db, officer.caller.client_id, before, PAYROLLS).await?;
    let mut rows = Vec::with_capacity(list.len());
    for p in &list {
        rows.push(payroll_row(state, p).await?);
    }
    let mut chrome = Chrome::new(state, officer, "Payrolls", "payrolls").await?;
    if list.iter().any(|p| p.status == Status::Released) {
        chrome.refresh_secs = REFRESH_SECS;
    }
    let before = (i64::try_from(list.len()).unwrap_or(0) == PAYROLLS)
        .then(|| list.last().map(|p| p.id.to_string()))
        .flatten();
    Ok(page(
        StatusCode::OK,
        &PayrollsPage {
            chrome,
            rows,
            before,
        },
    ))
}

pub struct ItemRow {
    pub id: String,
    pub reference: String,
    pub payee: String,
    pub state: &'static str,
    pub amount: String,
    pub currency: &'static str,
    pub rail: String,
}

#[derive(Template)]
#[template(path = "console/payroll.html")]
struct PayrollPage {
    chrome: Chrome,
    r: PayrollRow,
    released: String,
    completed: String,
    releasable: bool,
    /// Released and running: it can be paused.
    holdable: bool,
    states: Vec<&'static str>,
    state: String,
    items: Vec<ItemRow>,
    after: Option<String>,
    /// Lines per minute since the release (server-rendered SVG).
    throughput: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ItemsQuery {
    state: Option<String>,
    after: Option<String>,
    released: Option<String>,
    held: Option<String>,
}

/// `GET /reports/payrolls/{id}?state=&after=`.
pub async fn one(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<ItemsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::OK);
    };
    if let Some(refused) = needs_read(&officer) {
        return refused;
    }
    let q = query.map(|Query(q)| q).unwrap_or_default();
    payroll_page(&state, &officer, &id, &q)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn payroll_page(
    state: &AppState,
    officer: &Officer,
    id: &str,
    q: &ItemsQuery,
) -> Result<Response, Problem> {
    let p = match owned(state, &officer.caller, id).await {
        Ok(p) => p,
        Err(_) => {
            return Ok(message(
                StatusCode::NOT_FOUND,
                "Payrolls",
                "No such payroll.",
                "/reports/payrolls",
            ))
        }
    };
    let st = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(State::parse);
    if let Some(None) = st {
        return Ok(message(
            StatusCode::BAD_REQUEST,
            "Payrolls",
            "state: not a payment state",
            "/reports/payrolls",
        ));
    }
    let f = Filter {
        state: st.flatten(),
        payroll_id: Some(p.id),
        after: q.after.as_deref().and_then(|a| Uuid::parse_str(a).ok()),
        limit: ITEMS,
        ..Filter::default()
    };
    let items = pstore::list(&state.db, officer.caller.client_id, &f).await?;
    let after = (i64::try_from(items.len()).unwrap_or(0) == ITEMS)
        .then(|| items.last().map(|p| p.id.to_string()))
        .flatten();
    let mut chrome = Chrome::new(state, officer, format!("Payroll {}", p.name), "payrolls").await?;
    if p.status == Status::Released {
        chrome.refresh_secs = REFRESH_SECS;
    }
    if q.released.is_some() {
        chrome.flash = Some("Payroll released: its items are on their way.".into());
    }
    if q.held.is_some() {
        chrome.flash = Some(
            "Payroll paused: items not yet sent wait for its release; items already sent finish."
                .into(),
        );
    }
    let r = payroll_row(state, &p).await?;
    let throughput =
        crate::store::charts::payroll_throughput(&state.db, officer.caller.client_id, p.id)
            .await?
            .map(|minutes| crate::charts::throughput::payroll_throughput(&p.name, &minutes));
    Ok(page(
        StatusCode::OK,
        &PayrollPage {
            chrome,
            released: p.released_at.map(when).unwrap_or_default(),
            completed: p.completed_at.map(when).unwrap_or_default(),
            // Shown whatever the key: the server refuses without payments:write, and says so.
            releasable: matches!(p.status, Status::Held | Status::Paused),
            holdable: p.status == Status::Released,
            r,
            states: State::ALL.iter().map(|s| s.as_str()).collect(),
            state: st
                .flatten()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            items: items
                .iter()
                .map(|i| ItemRow {
                    id: i.id.to_string(),
                    reference: i.reference.clone(),
                    payee: mask::payee(i.party.id_value()),
                    state: i.state.as_str(),
                    amount: i.amount.to_decimal_string(),
                    currency: i.amount.currency().code(),
                    rail: i.rail.clone().unwrap_or_default(),
                })
                .collect(),
            after,
            throughput,
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct ReleaseForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// What an officer does to a payroll from its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayrollAction {
    Release,
    Hold,
}

/// `POST /reports/payrolls/{id}/release`: needs payments:write and a reason.
pub async fn release(
    state: AxState<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    form: Result<Form<ReleaseForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    act(state, headers, id, form, PayrollAction::Release).await
}

/// `POST /reports/payrolls/{id}/hold`: pauses a released payroll; needs payments:write and a
/// reason.
pub async fn hold(
    state: AxState<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    form: Result<Form<ReleaseForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    act(state, headers, id, form, PayrollAction::Hold).await
}

async fn act(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<ReleaseForm>, axum::extract::rejection::FormRejection>,
    what: PayrollAction,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::UNAUTHORIZED);
    };
    let Ok(pid) = Uuid::parse_str(&id) else {
        return message(
            StatusCode::NOT_FOUND,
            "Payrolls",
            "No such payroll.",
            "/reports/payrolls",
        );
    };
    let back = format!("/reports/payrolls/{pid}");
    let action = Action {
        officer: &officer,
        name: match what {
            PayrollAction::Release => "payroll.release",
            PayrollAction::Hold => "payroll.hold",
        },
        subject: format!("payroll:{pid}"),
        scopes: &["payments:write"],
        back: back.clone(),
    };
    let Ok(Form(f)) = form else {
        return message(StatusCode::BAD_REQUEST, "Payrolls", "Give a reason.", &back);
    };
    if let Err(refused) = action
        .allowed(&state, f.csrf.as_deref().unwrap_or(""))
        .await
    {
        return refused;
    }
    let why = match reason(f.reason.as_deref()) {
        Ok(r) => r,
        Err(e) => return message(StatusCode::BAD_REQUEST, "Payrolls", e, &back),
    };
    let done = match what {
        PayrollAction::Release => {
            release_as(&state, &officer.caller, &id, "console: payroll released").await
        }
        PayrollAction::Hold => hold_as(&state, &officer.caller, &id).await,
    };
    match done {
        Ok(p) => {
            let detail = format!("status {}", p.status.as_str());
            action
                .record(&state, Outcome::Done, Some(&why), Some(&detail))
                .await;
            let flag = match what {
                PayrollAction::Release => "released",
                PayrollAction::Hold => "held",
            };
            Redirect::to(&format!("{back}?{flag}=1")).into_response()
        }
        Err(p) => {
            let outcome = if p.status.is_client_error() {
                Outcome::Refused
            } else {
                Outcome::Failed
            };
            action
                .record(&state, outcome, Some(&why), Some(&p.detail_text()))
                .await;
            message(p.status, "Payrolls", &p.detail_text(), &back)
        }
    }
}

/// `GET /reports/payrolls/{id}/export`: the openIMIS reconciliation file.
pub async fn export(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::UNAUTHORIZED);
    };
    if let Some(refused) = needs_read(&officer) {
        return refused;
    }
    export_as(&state, &officer.caller, &id)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}
