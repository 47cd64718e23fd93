//! The operator's queue and its two actions (`crate::exceptions` holds the rules):
//!
//! - `GET /v1/admin/exceptions`: exceptions, contradictions and dead jobs, oldest first.
//!   Scope `payments:read` or `recon:write` for the client's payments (the finance officer
//!   who settles them must see them), `operator` for the dead letter, which is the gateway's.
//! - `POST /v1/payments/{id}/inquiries`: ask the rail again. Scope `payments:write` or
//!   `recon:write`: it never moves money, only asks, so the core (which owns the payment) and
//!   the finance officer working the queue may both.
//! - `POST /v1/payments/{id}/settlements`: settle from evidence. Scope `recon:write` only: an
//!   operator's word moves the books as a rail's confirmation would, which is a
//!   reconciliation decision (like resolving a break); the core's `payments:write` key must
//!   not be able to declare its own payments paid.

use super::auth::{Caller, OPERATOR};
use super::body::JsonBody;
use super::paging;
use super::payments::{view, with_idempotency};
use super::problem::{FieldError, Problem};
use super::AppState;
use crate::exceptions::queue::{self, Cursor, ItemKind};
use crate::exceptions::{self, ActionError, Actor, Evidence, Outcome, Reason, Settlement};
use crate::store::{idempotency, StoreError};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The actor a caller is, for what its scopes let it see.
pub fn actor(caller: &Caller) -> Actor {
    Actor {
        client_id: caller.client_id,
        key_id: caller.key_id,
        operator: caller.require(OPERATOR).is_ok(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    kind: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    AxState(state): AxState<AppState>,
    caller: Caller,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require_any(&["payments:read", "recon:write", OPERATOR])?;
    let q = paging::query(query)?;
    let mut errors = Vec::new();
    let limit = paging::limit(q.limit.as_deref(), &mut errors);
    let kind = match q.kind.as_deref().map(ItemKind::parse) {
        None => None,
        Some(Some(k)) => Some(k),
        Some(None) => {
            errors.push(Problem::field(
                "kind",
                "must be one of exception, conflict, dead_job",
            ));
            None
        }
    };
    let cursor = match q.cursor.as_deref().map(Cursor::parse) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            errors.push(Problem::field("cursor", "is not a cursor this API gave"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(paging::bad_query(errors));
    }
    let who = actor(&caller);
    let sees_payments = caller
        .require_any(&["payments:read", "recon:write"])
        .is_ok();
    let kind = match kind {
        Some(ItemKind::DeadJob) if !who.operator => return Err(Problem::forbidden(OPERATOR)),
        Some(ItemKind::Exception | ItemKind::Conflict) if !sees_payments => {
            return Err(caller
                .require_any(&["payments:read", "recon:write"])
                .err()
                .unwrap_or_else(Problem::internal))
        }
        // An operator key without payment scopes sees the dead letter only.
        None if !sees_payments => Some(ItemKind::DeadJob),
        k => k,
    };
    let page = queue::list(&state.db, &who, kind, cursor.as_ref(), limit).await?;
    let data: Vec<Value> = page.items.iter().map(queue::Item::view).collect();
    Ok(Json(json!({ "data": data, "next_cursor": page.next })))
}

/// The body's members, refusing any not in `allowed`.
fn members<'a>(
    body: &'a Value,
    allowed: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    let Some(obj) = body.as_object() else {
        errors.push(Problem::field("", "the body must be a JSON object"));
        return None;
    };
    for k in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.push(Problem::field(k, "unknown field"));
    }
    Some(obj)
}

fn reason_in(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Reason> {
    let reason = obj
        .get("reason")
        .and_then(Value::as_str)
        .and_then(Reason::parse);
    if reason.is_none() {
        errors.push(Problem::field(
            "reason",
            format!(
                "is required: a string of 1 to {} printable characters",
                exceptions::TEXT_MAX
            ),
        ));
    }
    reason
}

fn refusal(e: ActionError) -> Problem {
    match e {
        ActionError::NotFound => Problem::not_found("payment"),
        ActionError::NotAwaiting { state, .. } => Problem::conflict(
            "not-awaiting-operator",
            "The payment awaits no operator",
            e.to_string(),
        )
        .with("state", json!(state)),
        ActionError::Evidence { field, reason } => {
            Problem::validation(vec![Problem::field(field, reason)])
        }
        ActionError::Store(e) => e.into(),
    }
}

fn payment_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::not_found("payment"))
}

pub async fn ask_rail(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, Problem> {
    caller.require_any(&["payments:write", "recon:write"])?;
    let id = payment_id(&id)?;
    let mut errors = Vec::new();
    let reason =
        members(&body.value, &["reason"], &mut errors).and_then(|obj| reason_in(obj, &mut errors));
    let Some(reason) = reason.filter(|_| errors.is_empty()) else {
        return Err(Problem::validation(errors));
    };
    let key = body.idempotency_key.clone();
    let fp = body.fingerprint(&format!("inquiry:{id}"));
    let st = state.clone();
    let who = actor(&caller);
    let k = key.clone();
    with_idempotency(&state, &caller, key.as_deref(), fp, || async move {
        let mut tx = st.db.begin().await?;
        let p = match exceptions::ask_rail(&mut tx, st.db.kind(), &who, id, &reason).await {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(refusal(e));
            }
        };
        let body = view(&p).to_string();
        if let Some(k) = &k {
            idempotency::complete(&mut tx, who.client_id, k, 202, &body).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        st.wake.notify_one();
        Ok((
            StatusCode::ACCEPTED,
            body,
            Some(format!("/v1/payments/{id}")),
        ))
    })
    .await
}

/// `evidence`: `{"type": "statement_line", "statement_id", "line_no"}` or
/// `{"type": "receipt", "reference"}`.
fn evidence_in(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Evidence> {
    let Some(ev) = obj.get("evidence").and_then(Value::as_object) else {
        errors.push(Problem::field(
            "evidence",
            "is required: an object with type statement_line or receipt",
        ));
        return None;
    };
    match ev.get("type").and_then(Value::as_str) {
        Some("statement_line") => {
            for k in ev.keys() {
                if !["type", "statement_id", "line_no"].contains(&k.as_str()) {
                    errors.push(Problem::field(&format!("evidence.{k}"), "unknown field"));
                }
            }
            let statement_id = ev
                .get("statement_id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok());
            if statement_id.is_none() {
                errors.push(Problem::field("evidence.statement_id", "must be a UUID"));
            }
            let line_no = ev
                .get("line_no")
                .and_then(Value::as_i64)
                .filter(|n| *n >= 1);
            if line_no.is_none() {
                errors.push(Problem::field(
                    "evidence.line_no",
                    "must be a whole number from 1",
                ));
            }
            Some(Evidence::StatementLine {
                statement_id: statement_id?,
                line_no: line_no?,
            })
        }
        Some("receipt") => {
            for k in ev.keys() {
                if !["type", "reference"].contains(&k.as_str()) {
                    errors.push(Problem::field(&format!("evidence.{k}"), "unknown field"));
                }
            }
            let r = ev
                .get("reference")
                .and_then(Value::as_str)
                .and_then(Evidence::receipt);
            if r.is_none() {
                errors.push(Problem::field(
                    "evidence.reference",
                    "must be a string of 1 to 64 printable characters",
                ));
            }
            r
        }
        _ => {
            errors.push(Problem::field(
                "evidence.type",
                "must be statement_line or receipt",
            ));
            None
        }
    }
}

/// The settlement a body asks for, or every field that is wrong with it.
pub fn settlement_of(body: &Value) -> Result<Settlement, Problem> {
    let mut errors = Vec::new();
    let Some(obj) = members(body, &["outcome", "evidence", "reason"], &mut errors) else {
        return Err(Problem::validation(errors));
    };
    let outcome = obj
        .get("outcome")
        .and_then(Value::as_str)
        .and_then(Outcome::parse);
    if outcome.is_none() {
        errors.push(Problem::field("outcome", "must be completed or failed"));
    }
    let evidence = evidence_in(obj, &mut errors);
    let reason = reason_in(obj, &mut errors);
    match (outcome, evidence, reason) {
        (Some(outcome), Some(evidence), Some(reason)) if errors.is_empty() => Ok(Settlement {
            outcome,
            evidence,
            reason,
        }),
        _ => Err(Problem::validation(errors)),
    }
}

pub async fn settle(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, Problem> {
    caller.require("recon:write")?;
    let id = payment_id(&id)?;
    let settlement = settlement_of(&body.value)?;
    let key = body.idempotency_key.clone();
    let fp = body.fingerprint(&format!("settlement:{id}"));
    let st = state.clone();
    let who = actor(&caller);
    let k = key.clone();
    with_idempotency(&state, &caller, key.as_deref(), fp, || async move {
        let mut tx = st.db.begin().await?;
        let p = match exceptions::settle(&mut tx, st.db.kind(), &who, id, &settlement).await {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(refusal(e));
            }
        };
        let body = view(&p).to_string();
        if let Some(k) = &k {
            idempotency::complete(&mut tx, who.client_id, k, 200, &body).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        // The payment's event for the core is in the outbox; its delivery job may be due.
        st.wake.notify_one();
        Ok((StatusCode::OK, body, Some(format!("/v1/payments/{id}"))))
    })
    .await
}
