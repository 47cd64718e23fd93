//! Exceptions and conflicts on the console: the operator's queue (`crate::exceptions::queue`)
//! oldest first, with the two actions the design allows on a payment: ask the rail again
//! (`payments:write` or `recon:write`) and settle from evidence (`recon:write`, a reason
//! required). Never a resend under a new id: there is no such button. Each action and its
//! line in the audit trail commit in one transaction.

use super::super::exceptions::actor;
use super::super::problem::Problem;
use super::super::AppState;
use super::session::{self, Officer};
use super::{message, page, signed_out, when, Action, Chrome};
use crate::exceptions::queue::{self, Action as Allowed, Cursor, ItemKind};
use crate::exceptions::{self, ActionError, Evidence, Reason, Settlement};
use crate::store::audit::{self as trail, Outcome};
use askama::Template;
use axum::extract::{Form, Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

const PAGE: i64 = 50;
const BACK: &str = "/reports/exceptions";

/// The scopes that see the client's payments in the queue.
const SEE: [&str; 2] = ["payments:read", "recon:write"];

pub struct ItemView {
    pub id: String,
    pub kind: &'static str,
    pub since: String,
    pub payment_id: Option<String>,
    pub reference: String,
    pub state: String,
    pub amount: String,
    pub rail: String,
    pub detail: String,
    pub what: String,
    pub ask: bool,
    pub settle: bool,
    pub resolve_break: bool,
    pub retry_job: bool,
}

fn item_view(i: &queue::Item) -> ItemView {
    let p = i.payment.as_ref();
    let amount = p
        .and_then(|p| {
            p.currency.parse::<crate::domain::Currency>().ok().map(|c| {
                format!(
                    "{} {}",
                    railgate_rail::money::format_minor(p.amount_minor, c),
                    c.code()
                )
            })
        })
        .unwrap_or_default();
    ItemView {
        id: i.id.clone(),
        kind: match i.kind {
            ItemKind::Exception => "exception",
            ItemKind::Conflict => "conflict",
            ItemKind::DeadJob => "dead_job",
        },
        since: when(crate::store::from_micros(i.since)),
        payment_id: p.map(|p| p.id.clone()),
        reference: p.map(|p| p.reference.clone()).unwrap_or_default(),
        state: p.map(|p| p.state.clone()).unwrap_or_default(),
        amount,
        rail: p.and_then(|p| p.rail.clone()).unwrap_or_default(),
        detail: i
            .detail
            .as_deref()
            .map(super::mask::digit_runs)
            .unwrap_or_default(),
        what: i.what.clone().unwrap_or_default(),
        ask: i.actions.contains(&Allowed::AskRail),
        settle: i.actions.contains(&Allowed::Settle),
        resolve_break: i.actions.contains(&Allowed::ResolveBreak),
        retry_job: i.actions.contains(&Allowed::RetryJob),
    }
}

#[derive(Template)]
#[template(path = "console/exceptions.html")]
struct ExceptionsPage {
    chrome: Chrome,
    items: Vec<ItemView>,
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// `GET /reports/exceptions`.
pub async fn list(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::OK);
    };
    // The gateway's operator (scope operator alone) sees the dead letter, which is theirs;
    // a client's payments need one of SEE.
    let sees_payments = SEE.iter().any(|s| officer.may(s));
    if !sees_payments && !officer.may(super::super::auth::OPERATOR) {
        return message(
            StatusCode::FORBIDDEN,
            "Exceptions",
            "The queue needs a key with the scope payments:read, recon:write or operator.",
            "/reports",
        );
    }
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let only = (!sees_payments).then_some(ItemKind::DeadJob);
    queue_page(&state, &officer, &q, only)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn queue_page(
    state: &AppState,
    officer: &Officer,
    q: &QueueQuery,
    only: Option<ItemKind>,
) -> Result<Response, Problem> {
    let cursor = q.cursor.as_deref().and_then(Cursor::parse);
    let who = actor(&officer.caller);
    let page_of = queue::list(&state.db, &who, only, cursor.as_ref(), PAGE).await?;
    let mut chrome = Chrome::new(state, officer, "Exceptions", "exceptions").await?;
    chrome.flash = match q.done.as_deref() {
        Some("inquiry") => Some("The rail is being asked again.".into()),
        Some("settlement") => Some("Settled from the evidence given.".into()),
        _ => None,
    };
    Ok(page(
        StatusCode::OK,
        &ExceptionsPage {
            chrome,
            items: page_of.items.iter().map(item_view).collect(),
            next: page_of.next,
        },
    ))
}

/// What an action on a payment answers when the core refused it.
fn refused_page(e: &ActionError) -> Response {
    let status = match e {
        ActionError::NotFound => StatusCode::NOT_FOUND,
        ActionError::NotAwaiting { .. } => StatusCode::CONFLICT,
        ActionError::Evidence { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ActionError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let text = match e {
        ActionError::Store(_) => "The store failed; nothing was changed.".to_owned(),
        other => other.to_string(),
    };
    message(status, "Exceptions", &text, BACK)
}

/// Runs `act` in one transaction with the action's audit row; refusals are written on their
/// own (nothing else changed).
async fn in_tx<F, Fut>(
    state: &AppState,
    action: &Action<'_>,
    why: &Reason,
    detail: &str,
    act: F,
) -> Result<(), Response>
where
    F: FnOnce(crate::store::Tx) -> Fut,
    Fut: std::future::Future<Output = (crate::store::Tx, Result<(), ActionError>)>,
{
    let fail = |e: crate::store::StoreError| {
        tracing::error!(action = action.name, error = %e, "Console action failed in the store");
        message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Exceptions",
            "The store failed; nothing was changed.",
            BACK,
        )
    };
    let entry = action
        .entry(state, Outcome::Done, Some(why.as_str()), Some(detail))
        .await;
    let tx = state.db.begin().await.map_err(fail)?;
    let (mut tx, done) = act(tx).await;
    if let Err(e) = done {
        let _ = tx.rollback().await;
        let outcome = match e {
            ActionError::Store(_) => Outcome::Failed,
            _ => Outcome::Refused,
        };
        action
            .record(state, outcome, Some(why.as_str()), Some(&e.to_string()))
            .await;
        return Err(refused_page(&e));
    }
    trail::record_in(&mut tx, &entry).await.map_err(fail)?;
    tx.commit()
        .await
        .map_err(|e| fail(crate::store::StoreError::from(e)))?;
    state.wake.notify_one();
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct InquiryForm {
    csrf: Option<String>,
    reason: Option<String>,
}

/// `POST /reports/exceptions/{payment}/inquiry`: ask the rail again.
pub async fn inquiry(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<InquiryForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::UNAUTHORIZED);
    };
    let Ok(pid) = Uuid::parse_str(&id) else {
        return message(
            StatusCode::NOT_FOUND,
            "Exceptions",
            "No such payment.",
            BACK,
        );
    };
    let action = Action {
        officer: &officer,
        name: "exception.recheck",
        subject: format!("payment:{pid}"),
        scopes: &["payments:write", "recon:write"],
        back: BACK.into(),
    };
    let Ok(Form(f)) = form else {
        return message(
            StatusCode::BAD_REQUEST,
            "Exceptions",
            "Give a reason.",
            BACK,
        );
    };
    if let Err(refused) = action
        .allowed(&state, f.csrf.as_deref().unwrap_or(""))
        .await
    {
        return refused;
    }
    let Some(why) = f.reason.as_deref().and_then(Reason::parse) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Exceptions",
            "Give a reason (1 to 500 printable characters): it goes into the audit trail.",
            BACK,
        );
    };
    let who = actor(&officer.caller);
    let kind = state.db.kind();
    let r = why.clone();
    let done = in_tx(
        &state,
        &action,
        &why,
        "asked the rail again",
        |mut tx| async move {
            let res = exceptions::ask_rail(&mut tx, kind, &who, pid, &r)
                .await
                .map(|_| ());
            (tx, res)
        },
    )
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("{BACK}?done=inquiry")).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
pub struct SettlementForm {
    csrf: Option<String>,
    outcome: Option<String>,
    evidence: Option<String>,
    receipt: Option<String>,
    statement_id: Option<String>,
    line_no: Option<String>,
    reason: Option<String>,
}

/// The settlement the form states, or what is wrong with it.
fn settlement_of(f: &SettlementForm) -> Result<Settlement, &'static str> {
    let outcome = f
        .outcome
        .as_deref()
        .and_then(exceptions::Outcome::parse)
        .ok_or("Choose the outcome: completed or failed.")?;
    let evidence = match f.evidence.as_deref() {
        Some("receipt") => f
            .receipt
            .as_deref()
            .and_then(Evidence::receipt)
            .ok_or("Give the receipt (1 to 64 printable characters).")?,
        Some("statement_line") => Evidence::StatementLine {
            statement_id: f
                .statement_id
                .as_deref()
                .map(str::trim)
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or("Give the statement's id.")?,
            line_no: f
                .line_no
                .as_deref()
                .and_then(|n| n.trim().parse::<i64>().ok())
                .filter(|n| *n >= 1)
                .ok_or("Give the statement line's number (from 1).")?,
        },
        _ => return Err("Choose the evidence: a receipt or a statement line."),
    };
    let reason =
        f.reason.as_deref().and_then(Reason::parse).ok_or(
            "Give a reason (1 to 500 printable characters): it goes into the audit trail.",
        )?;
    Ok(Settlement {
        outcome,
        evidence,
        reason,
    })
}

/// `POST /reports/exceptions/{payment}/settlement`: settle from evidence (`recon:write`).
pub async fn settlement(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<SettlementForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::UNAUTHORIZED);
    };
    let Ok(pid) = Uuid::parse_str(&id) else {
        return message(
            StatusCode::NOT_FOUND,
            "Exceptions",
            "No such payment.",
            BACK,
        );
    };
    let action = Action {
        officer: &officer,
        name: "exception.settle",
        subject: format!("payment:{pid}"),
        scopes: &["recon:write"],
        back: BACK.into(),
    };
    let Ok(Form(f)) = form else {
        return message(
            StatusCode::BAD_REQUEST,
            "Exceptions",
            "Fill in the form.",
            BACK,
        );
    };
    if let Err(refused) = action
        .allowed(&state, f.csrf.as_deref().unwrap_or(""))
        .await
    {
        return refused;
    }
    let s = match settlement_of(&f) {
        Ok(s) => s,
        Err(e) => return message(StatusCode::BAD_REQUEST, "Exceptions", e, BACK),
    };
    let detail = format!(
        "settled as {} from {}",
        s.outcome.as_str(),
        match &s.evidence {
            Evidence::Receipt(r) => format!("receipt {r}"),
            Evidence::StatementLine {
                statement_id,
                line_no,
            } => format!("statement {statement_id} line {line_no}"),
        }
    );
    let who = actor(&officer.caller);
    let kind = state.db.kind();
    let why = s.reason.clone();
    let done = in_tx(&state, &action, &why, &detail, |mut tx| async move {
        let res = exceptions::settle(&mut tx, kind, &who, pid, &s)
            .await
            .map(|_| ());
        (tx, res)
    })
    .await;
    match done {
        Ok(()) => Redirect::to(&format!("{BACK}?done=settlement")).into_response(),
        Err(r) => r,
    }
}
