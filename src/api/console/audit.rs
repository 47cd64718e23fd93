//! The audit trail on the console: the client's actions, newest first, a page at a time.

use super::super::problem::Problem;
use super::super::AppState;
use super::session::{self, Officer};
use super::{page, signed_out, when, Chrome};
use crate::store::audit;
use askama::Template;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

const PAGE: i64 = 100;

pub struct RowView {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub reason: String,
    pub outcome: &'static str,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<RowView>,
    before: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    before: Option<String>,
}

/// `GET /reports/audit`: readable by every officer of the client (`reports:read`).
pub async fn list(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(officer) = session::officer(&state, &headers).await else {
        return signed_out(&headers, StatusCode::OK);
    };
    let before = query
        .ok()
        .and_then(|Query(q)| q.before)
        .and_then(|b| Uuid::parse_str(&b).ok());
    audit_page(&state, &officer, before)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn audit_page(
    state: &AppState,
    officer: &Officer,
    before: Option<Uuid>,
) -> Result<Response, Problem> {
    let rows = audit::page(&state.db, officer.caller.client_id, None, before, PAGE).await?;
    let next = (i64::try_from(rows.len()).unwrap_or(0) == PAGE)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let chrome = Chrome::new(state, officer, "Audit trail", "audit").await?;
    Ok(page(
        StatusCode::OK,
        &AuditPage {
            chrome,
            rows: rows
                .iter()
                .map(|r| RowView {
                    at: when(r.at),
                    actor: r.actor.clone(),
                    action: r.action.clone(),
                    subject: r.subject.clone(),
                    reason: r.reason.clone().unwrap_or_default(),
                    outcome: r.outcome.as_str(),
                    detail: r.detail.clone().unwrap_or_default(),
                })
                .collect(),
            before: next,
        },
    ))
}
