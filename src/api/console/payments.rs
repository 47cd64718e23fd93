//! Payments on the console: the search (reference, payee, state, rail, programme, days), and
//! one payment's page with everything recorded about it.
//!
//! The search is a form posted to the page, not a query string: a payee's number typed into
//! it must not end up in a URL (browser history, proxy and access logs). Results show the
//! payee masked; paging is by the last id shown (keyset), newest first.

use super::super::problem::Problem;
use super::super::AppState;
use super::session::{self, Officer};
use super::{mask, page, signed_out, when, Chrome};
use crate::domain::{Party, PartyIdType, Payment, State};
use crate::store::search::{self, Search};
use crate::store::{dossier, payments as pstore};
use askama::Template;
use axum::extract::{Form, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use railgate_rail::money::format_minor;
use serde::Deserialize;
use uuid::Uuid;

/// Payments per page.
const PAGE: i64 = 50;

/// The search form as typed (echoed back into the form).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    payee: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    rail: String,
    #[serde(default)]
    programme: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
}

/// A payment as a row of the results.
pub struct Row {
    pub id: String,
    pub created: String,
    pub reference: String,
    pub direction: &'static str,
    pub payee: String,
    pub state: &'static str,
    pub rail: String,
    pub programme: String,
    pub amount: String,
    pub currency: &'static str,
}

fn programme(p: &Payment) -> String {
    p.metadata
        .get("programme")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned()
}

fn row(p: &Payment) -> Row {
    Row {
        id: p.id.to_string(),
        created: when(p.created_at),
        reference: p.reference.clone(),
        direction: p.direction.as_str(),
        payee: mask::payee(p.party.id_value()),
        state: p.state.as_str(),
        rail: p.rail.clone().unwrap_or_default(),
        programme: programme(p),
        amount: p.amount.to_decimal_string(),
        currency: p.amount.currency().code(),
    }
}

#[derive(Template)]
#[template(path = "console/payments.html")]
struct PaymentsPage {
    chrome: Chrome,
    form: SearchForm,
    states: Vec<&'static str>,
    rails: Vec<String>,
    error: Option<String>,
    rows: Vec<Row>,
    /// The cursor of the next (older) page, when there may be one.
    before: Option<String>,
}

fn trimmed(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// A payee as typed, in the form the store keeps it (an MSISDN without `+`, an IBAN without
/// spaces); other identifiers as typed.
fn normalised_payee(typed: &str) -> String {
    [PartyIdType::Msisdn, PartyIdType::Iban]
        .into_iter()
        .find_map(|t| Party::new(t, typed, None).ok())
        .map(|p| p.id_value().to_owned())
        .unwrap_or_else(|| typed.trim().to_owned())
}

fn date(field: &str, s: &str) -> Result<Option<NaiveDate>, String> {
    match trimmed(s) {
        None => Ok(None),
        Some(t) => t
            .parse::<NaiveDate>()
            .map(Some)
            .map_err(|_| format!("{field}: give a date as YYYY-MM-DD")),
    }
}

/// Reads the form into a search; the first thing wrong with it otherwise.
fn search_of(state: &AppState, f: &SearchForm) -> Result<Search, String> {
    let st = match trimmed(&f.state) {
        None => None,
        Some(s) => Some(State::parse(&s).ok_or("state: not a payment state")?),
    };
    let rail = trimmed(&f.rail);
    if let Some(r) = &rail {
        if !state.cfg.rails.iter().any(|c| c.id == *r) {
            return Err("rail: not a configured rail".into());
        }
    }
    let before = match trimmed(&f.before) {
        None => None,
        Some(b) => Some(Uuid::parse_str(&b).map_err(|_| "before: not a cursor of this page")?),
    };
    let reference = trimmed(&f.reference);
    let programme = trimmed(&f.programme);
    if reference.as_ref().is_some_and(|r| r.chars().count() > 100)
        || programme.as_ref().is_some_and(|p| p.chars().count() > 100)
        || f.payee.chars().count() > 40
    {
        return Err("a search field is too long".into());
    }
    Ok(Search {
        reference,
        payee: trimmed(&f.payee).map(|p| normalised_payee(&p)),
        state: st,
        rail,
        programme,
        from: date("from", &f.from)?,
        to: date("to", &f.to)?,
        before,
        limit: PAGE,
    })
}

async fn results(
    state: &AppState,
    officer: &Officer,
    form: SearchForm,
) -> Result<Response, Problem> {
    let chrome = Chrome::new(state, officer, "Payments", "payments").await?;
    let (rows, error) = match search_of(state, &form) {
        Ok(s) => (
            search::payments(&state.db, officer.caller.client_id, &s).await?,
            None,
        ),
        Err(e) => (Vec::new(), Some(e)),
    };
    let before = (i64::try_from(rows.len()).unwrap_or(0) == PAGE)
        .then(|| rows.last().map(|p| p.id.to_string()))
        .flatten();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(page(
        status,
        &PaymentsPage {
            chrome,
            form,
            states: State::ALL.iter().map(|s| s.as_str()).collect(),
            rails: state.cfg.rails.iter().map(|r| r.id.clone()).collect(),
            error,
            rows: rows.iter().map(row).collect(),
            before,
        },
    ))
}

/// `GET /reports/payments`: the search form and the newest payments.
pub async fn list(AxState(state): AxState<AppState>, headers: HeaderMap) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::OK);
    };
    if !officer.may("payments:read") {
        return super::message(
            StatusCode::FORBIDDEN,
            "Payments",
            "Payments need a key with the scope payments:read.",
            "/reports",
        );
    }
    results(&state, &officer, SearchForm::default())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /reports/payments`: a search.
pub async fn find(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    form: Result<Form<SearchForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::UNAUTHORIZED);
    };
    let Ok(Form(f)) = form else {
        return super::message(
            StatusCode::BAD_REQUEST,
            "Payments",
            "The search form cannot be read.",
            "/reports/payments",
        );
    };
    // A search changes nothing, but it carries a payee's number: it is taken only from this
    // console's own form, and only with payments:read.
    if !officer.token_ok(&f.csrf) {
        return super::message(
            StatusCode::FORBIDDEN,
            "Payments",
            "The form has expired: reload the page and search again.",
            "/reports/payments",
        );
    }
    if !officer.may("payments:read") {
        return super::message(
            StatusCode::FORBIDDEN,
            "Payments",
            "Payments need a key with the scope payments:read.",
            "/reports",
        );
    }
    results(&state, &officer, f)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The payment's facts as the page shows them.
pub struct Facts {
    pub id: String,
    pub reference: String,
    pub direction: &'static str,
    pub state: &'static str,
    pub amount: String,
    pub currency: &'static str,
    pub payee: String,
    pub name: String,
    pub rail: String,
    pub programme: String,
    pub payroll: Option<String>,
    pub rail_reference: String,
    pub receipt: String,
    pub failure: String,
    pub exception: String,
    pub conflict: String,
    pub created: String,
    pub updated: String,
}

pub struct AttemptView {
    pub id: String,
    pub seq: i64,
    pub created: String,
    pub rail: String,
    pub status: String,
    pub rail_reference: String,
    pub answer: String,
    pub deadline: String,
    pub request: String,
}

pub struct CallbackView {
    pub received: String,
    pub rail: String,
    pub request: String,
    pub verdict: String,
    pub effect: String,
    pub body: String,
}

pub struct TransferView {
    pub at: String,
    pub phase: String,
    pub debit: String,
    pub credit: String,
    pub amount: String,
    pub currency: String,
    pub cause: String,
}

pub struct DeliveryView {
    pub created: String,
    pub event: String,
    pub endpoint: String,
    pub status: String,
    pub tries: i64,
    pub last: String,
    pub delivered: String,
}

#[derive(Template)]
#[template(path = "console/payment.html")]
struct PaymentPage {
    chrome: Chrome,
    p: Facts,
    history: Vec<(String, String, String, String)>,
    attempts: Vec<AttemptView>,
    callbacks: Vec<CallbackView>,
    transfers: Vec<TransferView>,
    deliveries: Vec<DeliveryView>,
}

fn facts(p: &Payment) -> Facts {
    Facts {
        id: p.id.to_string(),
        reference: p.reference.clone(),
        direction: p.direction.as_str(),
        state: p.state.as_str(),
        amount: p.amount.to_decimal_string(),
        currency: p.amount.currency().code(),
        payee: mask::payee(p.party.id_value()),
        name: p.party.name().map(railgate_rail::mask).unwrap_or_default(),
        rail: p.rail.clone().unwrap_or_default(),
        programme: programme(p),
        payroll: p.payroll_id.map(|id| id.to_string()),
        rail_reference: p.rail_reference.clone().unwrap_or_default(),
        receipt: p.receipt.clone().unwrap_or_default(),
        failure: p
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.code.as_str(), mask::digit_runs(&f.reason)))
            .unwrap_or_default(),
        exception: p
            .exception
            .as_deref()
            .map(mask::digit_runs)
            .unwrap_or_default(),
        conflict: p
            .conflict
            .as_deref()
            .map(mask::digit_runs)
            .unwrap_or_default(),
        created: when(p.created_at),
        updated: when(p.updated_at),
    }
}

fn attempt_view(a: &dossier::Attempt) -> AttemptView {
    let answer = [
        a.rail_status.clone(),
        a.rail_status_reason.clone(),
        a.rail_state.as_deref().map(|s| mask::body(s.as_bytes())),
        a.last_error.as_deref().map(mask::digit_runs),
        (a.refusals > 0).then(|| format!("{} refusals", a.refusals)),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    AttemptView {
        id: a.id.to_string(),
        seq: a.seq,
        created: when(a.created_at),
        rail: a.rail.clone(),
        status: a.status.clone(),
        rail_reference: a.rail_reference.clone().unwrap_or_default(),
        answer,
        deadline: when(a.deadline_at),
        request: match (&a.request_step, &a.request_body) {
            (Some(step), Some(b)) => format!("{step}\n{}", mask::body(b)),
            (None, Some(b)) => mask::body(b),
            (Some(step), None) => step.clone(),
            (None, None) => String::new(),
        },
    }
}

fn callback_view(c: &dossier::Callback) -> CallbackView {
    CallbackView {
        received: when(c.received_at),
        rail: c.rail.clone(),
        // The stored path has its secret segment redacted already; a party id in it is not.
        request: format!("{} {}", c.method, mask::digit_runs(&c.path)),
        verdict: match &c.reason {
            Some(r) => format!("{}: {}", c.verdict, mask::digit_runs(r)),
            None => c.verdict.clone(),
        },
        effect: c.effect.clone(),
        body: mask::body(&c.body),
    }
}

fn transfer_view(t: &dossier::Transfer) -> TransferView {
    TransferView {
        at: when(t.created_at),
        phase: t.phase.clone(),
        debit: t.debit.clone(),
        credit: t.credit.clone(),
        amount: t
            .currency
            .parse::<crate::domain::Currency>()
            .map(|c| format_minor(t.amount_minor, c))
            .unwrap_or_else(|_| t.amount_minor.to_string()),
        currency: t.currency.clone(),
        cause: t.cause.clone(),
    }
}

fn delivery_view(d: &dossier::Delivery) -> DeliveryView {
    DeliveryView {
        created: when(d.created_at),
        event: d.event_type.clone(),
        endpoint: d.endpoint_id.to_string(),
        status: d.status.clone(),
        tries: d.tries,
        last: match (d.last_status, &d.last_error) {
            (Some(s), _) => format!("HTTP {s}"),
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        },
        delivered: d.delivered_at.map(when).unwrap_or_default(),
    }
}

/// `GET /reports/payments/{id}`.
pub async fn one(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::OK);
    };
    if !officer.may("payments:read") {
        return super::message(
            StatusCode::FORBIDDEN,
            "Payments",
            "Payments need a key with the scope payments:read.",
            "/reports",
        );
    }
    payment_page(&state, &officer, &id)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn payment_page(state: &AppState, officer: &Officer, id: &str) -> Result<Response, Problem> {
    let not_found = || {
        super::message(
            StatusCode::NOT_FOUND,
            "Payments",
            "No such payment.",
            "/reports/payments",
        )
    };
    let Ok(id) = Uuid::parse_str(id) else {
        return Ok(not_found());
    };
    let Some(p) = pstore::get(&state.db, Some(officer.caller.client_id), id).await? else {
        return Ok(not_found());
    };
    let d = dossier::read(&state.db, p.id).await?;
    let chrome = Chrome::new(
        state,
        officer,
        format!("Payment {}", p.reference),
        "payments",
    )
    .await?;
    Ok(page(
        StatusCode::OK,
        &PaymentPage {
            chrome,
            history: p
                .history
                .iter()
                .map(|t| {
                    (
                        when(t.at),
                        t.from.map(State::as_str).unwrap_or("").to_owned(),
                        t.to.as_str().to_owned(),
                        mask::digit_runs(&t.cause),
                    )
                })
                .collect(),
            p: facts(&p),
            attempts: d.attempts.iter().map(attempt_view).collect(),
            callbacks: d.callbacks.iter().map(callback_view).collect(),
            transfers: d.transfers.iter().map(transfer_view).collect(),
            deliveries: d.deliveries.iter().map(delivery_view).collect(),
        },
    ))
}
