//! `POST /v1/payments/{id}/reversals`: ask the payment's rail to give a completed payment's
//! money back (`crate::reversals` has the flow). Answers `202` with the stored reversal; its
//! outcome shows on `GET /v1/payments/{id}` (`reversals`) and, once confirmed, as
//! `payment.reversed`.

use super::auth::Caller;
use super::body::OptionalJsonBody;
use super::payments::with_idempotency;
use super::problem::Problem;
use super::AppState;
use crate::reversals::{self, Refusal};
use crate::store::idempotency;
use crate::store::payments;
use crate::store::reversals::ReversalRow;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use uuid::Uuid;

/// Longest `reason` a client may give.
const REASON_MAX: usize = 256;

/// A reversal as the API shows it.
pub fn view(r: &ReversalRow) -> Value {
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    json!({
        "id": r.id,
        "payment_id": r.payment_id,
        "state": r.status,
        "reason": r.reason,
        "rail": r.rail,
        "rail_reference": r.rail_reference,
        "failure": r.failure,
        "exception": r.exception,
        "created_at": at(r.created_at),
        "updated_at": at(r.updated_at),
    })
}

fn reason_of(body: &Value) -> Result<Option<String>, Problem> {
    let Some(obj) = body.as_object() else {
        return Err(Problem::validation(vec![Problem::field(
            "",
            "the body must be a JSON object",
        )]));
    };
    let mut errors = Vec::new();
    for k in obj.keys().filter(|k| k.as_str() != "reason") {
        errors.push(Problem::field(k, "unknown field"));
    }
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if !s.trim().is_empty()
                && s.chars().count() <= REASON_MAX
                && !s.chars().any(char::is_control) =>
        {
            Some(s.trim().to_owned())
        }
        Some(_) => {
            errors.push(Problem::field(
                "reason",
                format!("must be a string of 1 to {REASON_MAX} printable characters"),
            ));
            None
        }
    };
    if errors.is_empty() {
        Ok(reason)
    } else {
        Err(Problem::validation(errors))
    }
}

fn refusal(r: Refusal) -> Problem {
    match r {
        Refusal::NotCompleted(state) => Problem::conflict(
            "not-reversible",
            "The payment cannot be reversed",
            r.to_string(),
        )
        .with("state", json!(state)),
        Refusal::AlreadyReversed => Problem::conflict(
            "already-reversed",
            "The payment is already reversed",
            r.to_string(),
        ),
        Refusal::InProgress(id) => {
            let p = Problem::conflict(
                "reversal-in-progress",
                "A reversal of this payment is in progress",
                "wait for it to complete or fail; its state shows on the payment",
            );
            if id.is_nil() {
                p
            } else {
                p.with("reversal_id", json!(id))
            }
        }
        Refusal::RailCannotReverse(_) | Refusal::NoRail => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rail-cannot-reverse",
            "The payment's rail cannot reverse payments",
            r.to_string(),
        ),
        Refusal::Store(e) => e.into(),
    }
}

pub async fn create(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Response, Problem> {
    caller.require("payments:write")?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("payment"))?;
    let reason = reason_of(&body.value)?;
    let key = body.idempotency_key.clone();
    let fp = body.fingerprint(&format!("reversal:{id}"));
    let st = state.clone();
    let c = caller.clone();
    let k = key.clone();
    with_idempotency(&state, &caller, key.as_deref(), fp, || async move {
        let p = payments::get(&st.db, Some(c.client_id), id)
            .await?
            .ok_or_else(|| Problem::not_found("payment"))?;
        let mut tx = st.db.begin().await?;
        let requested = reversals::request(
            &mut tx,
            st.db.kind(),
            &st.rails,
            p.id,
            c.client_id,
            p.rail.as_deref(),
            reason.as_deref(),
        )
        .await;
        let r = match requested {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(refusal(e));
            }
        };
        let body = view(&r).to_string();
        if let Some(k) = &k {
            idempotency::complete(&mut tx, c.client_id, k, 202, &body).await?;
        }
        tx.commit().await.map_err(crate::store::StoreError::from)?;
        st.wake.notify_one();
        tracing::info!(payment = %p.id, reversal = %r.id, rail = %r.rail, "Reversal requested");
        Ok((
            StatusCode::ACCEPTED,
            body,
            Some(format!("/v1/payments/{}", p.id)),
        ))
    })
    .await
}
