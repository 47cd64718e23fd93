//! `/v1/disbursements`, `/v1/collections` and `/v1/payments`.

use super::auth::Caller;
use super::body::JsonBody;
use super::intake::Written;
use super::problem::Problem;
use super::{validate, AppState};
use crate::domain::machine;
use crate::domain::{control_number, CollectionMode, Direction, NewPayment, Payment, State};
use crate::engine::{self, Applied, Change};
use crate::store::idempotency::{self, Begin};
use crate::store::payments::{self, Filter};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// The payment as the API shows it.
pub fn view(p: &Payment) -> Value {
    let party_key = match p.direction {
        Direction::Disbursement => "payee",
        Direction::Collection => "payer",
    };
    let mut v = json!({
        "id": p.id,
        "direction": p.direction,
        "state": p.state,
        "reference": p.reference,
        "amount": {"value": p.amount.to_decimal_string(), "currency": p.amount.currency()},
        party_key: p.party,
        "narrative": p.narrative,
        "rail": p.rail,
        "metadata": p.metadata,
        "failure": p.failure,
        "receipt": p.receipt,
        "rail_reference": p.rail_reference,
        "exception": p.exception,
        "conflict": p.conflict,
        "payroll_id": p.payroll_id,
        "created_at": p.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "updated_at": p.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "history": p.history.iter().map(|t| json!({
            "from": t.from, "to": t.to, "cause": t.cause,
            "at": t.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        })).collect::<Vec<_>>(),
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(m) = p.mode {
            obj.insert("mode".into(), json!(payments::mode_str(m)));
        }
        if let Some(r) = &p.payment_reference {
            obj.insert("payment_reference".into(), json!(r));
        }
    }
    v
}

fn json_response(status: StatusCode, body: &str, location: Option<String>) -> Response {
    let mut resp = (
        status,
        [(
            header::CONTENT_TYPE,
            if status.is_success() {
                "application/json"
            } else {
                "application/problem+json"
            },
        )],
        body.to_owned(),
    )
        .into_response();
    if let Some(loc) = location {
        if let Ok(v) = header::HeaderValue::from_str(&loc) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
    resp
}

pub async fn create_disbursement(
    state: AxState<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Response, Problem> {
    create(state, caller, body, Direction::Disbursement).await
}

pub async fn create_collection(
    state: AxState<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Response, Problem> {
    create(state, caller, body, Direction::Collection).await
}

/// Runs `work` under the request's idempotency key (if any): replays, refuses a reused key
/// with another body, answers 409 while the first request is in flight.
pub async fn with_idempotency<F, Fut>(
    state: &AppState,
    caller: &Caller,
    key: Option<&str>,
    fingerprint: String,
    work: F,
) -> Result<Response, Problem>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, String, Option<String>), Problem>>,
{
    let Some(key) = key else {
        let (status, body, loc) = work().await?;
        return Ok(json_response(status, &body, loc));
    };
    let stale = std::time::Duration::from_millis(state.cfg.instance_stale_ms);
    match idempotency::begin(&state.db, caller.client_id, key, &fingerprint, stale).await? {
        Begin::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut r = json_response(status, &body, None);
            r.headers_mut().insert(
                "idempotent-replayed",
                header::HeaderValue::from_static("true"),
            );
            Ok(r)
        }
        Begin::InFlight => Err(Problem::conflict(
            "idempotency-in-flight",
            "A request with this key is still in flight",
            "retry once the first request has finished",
        )),
        Begin::Mismatch => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "The idempotency key was used with another request",
            "an Idempotency-Key may be reused only with the identical request",
        )),
        Begin::Fresh => {
            let guard = KeyHeld::new(&state.db, caller.client_id, key);
            let done = finish_keyed(state, caller, key, work().await).await;
            // Settled unless storing the outcome failed: then the guard lets the key go.
            if !matches!(&done, Err(p) if p.status.is_server_error()) {
                guard.release();
            }
            done
        }
    }
}

/// A key this request holds in flight. Should the request stop before its end (the client
/// went away and its handler was dropped, or it panicked), the key is let go, so a retry is
/// not told "in flight" by a request that no longer runs. Its transaction, never committed,
/// was rolled back.
struct KeyHeld {
    held: Option<(crate::store::Db, uuid::Uuid, String)>,
}

impl KeyHeld {
    fn new(db: &crate::store::Db, client: uuid::Uuid, key: &str) -> KeyHeld {
        KeyHeld {
            held: Some((db.clone(), client, key.to_owned())),
        }
    }

    /// The request came to its end: the key is settled by it.
    fn release(mut self) {
        self.held = None;
    }
}

impl Drop for KeyHeld {
    fn drop(&mut self) {
        let Some((db, client, key)) = self.held.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = idempotency::abandon(&db, client, &key).await {
                    tracing::warn!(error = %e, "Letting go of an interrupted request's idempotency key failed");
                }
            });
        }
    }
}

async fn finish_keyed(
    state: &AppState,
    caller: &Caller,
    key: &str,
    result: Result<(StatusCode, String, Option<String>), Problem>,
) -> Result<Response, Problem> {
    match result {
        Ok((status, body, loc)) => Ok(json_response(status, &body, loc)),
        Err(p) if p.status.is_client_error() => {
            // The refusal is the first result: it is stored and replayed like a success.
            let body = p.body().to_string();
            let mut conn = state
                .db
                .pool()
                .acquire()
                .await
                .map_err(crate::store::StoreError::from)?;
            idempotency::complete(&mut conn, caller.client_id, key, p.status.as_u16(), &body)
                .await?;
            Err(p)
        }
        Err(p) => {
            idempotency::abandon(&state.db, caller.client_id, key).await?;
            Err(p)
        }
    }
}

async fn create(
    AxState(state): AxState<AppState>,
    caller: Caller,
    body: JsonBody,
    direction: Direction,
) -> Result<Response, Problem> {
    caller.require("payments:write")?;
    let new = validate::new_payment(direction, &body.value)?;
    let key = body.idempotency_key.clone();
    let fp = body.fingerprint(direction.as_str());
    let st = state.clone();
    let c = caller.clone();
    let k = key.clone();
    with_idempotency(&state, &caller, key.as_deref(), fp, || async move {
        let p = insert_payment(&st, &c, &new, k.as_deref()).await?;
        let body = view(&p).to_string();
        Ok((
            StatusCode::CREATED,
            body,
            Some(format!("/v1/payments/{}", p.id)),
        ))
    })
    .await
}

/// Routes, stores and queues one payment; the idempotency key (if any) is completed in the
/// same transaction, so a crash leaves either both or neither.
pub async fn insert_payment(
    state: &AppState,
    caller: &Caller,
    new: &NewPayment,
    key: Option<&str>,
) -> Result<Payment, Problem> {
    let expected = new.mode == Some(CollectionMode::Expected);
    let rail = if expected && new.rail_hint.is_none() {
        None
    } else {
        Some(state.rails.route(new).map_err(|e| {
            Problem::validation(vec![Problem::field(
                e.field(new.rail_hint.is_some()),
                e.to_string(),
            )])
            .with("detail_code", json!("no_route"))
        })?)
    };
    let id = Uuid::now_v7();
    let payment_reference = expected.then(control_number);
    let decided = machine::routed(
        id,
        caller.client_id,
        new,
        rail.clone(),
        payment_reference,
        expected,
        crate::store::from_micros(crate::store::now_micros()),
        "api: created",
        "api: routed",
    );
    let written = state
        .intake
        .write(decided, key.map(str::to_owned))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "Storing a new payment failed");
            Problem::internal()
        })?;
    let p = match written {
        Written::Created(p) => *p,
        Written::Duplicate(existing) => return Err(duplicate_reference(existing)),
    };
    if !expected {
        state.wake.notify_one();
    }
    tracing::info!(payment = %id, direction = new.direction.as_str(), rail = rail.as_deref().unwrap_or("-"), party = %new.party.masked(), "Payment accepted");
    Ok(p)
}

fn duplicate_reference(existing: Uuid) -> Problem {
    Problem::conflict(
        "duplicate-reference",
        "The reference is already used",
        format!("payment {existing} already has this reference for this direction"),
    )
    .with("existing_payment_id", json!(existing))
}

pub async fn get(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require("payments:read")?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("payment"))?;
    let p = payments::get(&state.db, Some(caller.client_id), id)
        .await?
        .ok_or_else(|| Problem::not_found("payment"))?;
    let mut v = view(&p);
    let reversals = {
        let mut conn = state
            .db
            .pool()
            .acquire()
            .await
            .map_err(crate::store::StoreError::from)?;
        crate::store::reversals::of_payment(&mut conn, id).await?
    };
    if let (false, Some(obj)) = (reversals.is_empty(), v.as_object_mut()) {
        obj.insert(
            "reversals".into(),
            reversals.iter().map(super::reversals::view).collect(),
        );
    }
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    reference: Option<String>,
    state: Option<String>,
    direction: Option<String>,
    rail: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    AxState(state): AxState<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require("payments:read")?;
    let q = super::paging::query(query)?;
    let mut errors = Vec::new();
    let st = q.state.as_deref().and_then(|s| {
        let parsed = State::parse(s);
        if parsed.is_none() {
            errors.push(Problem::field("state", "unknown state"));
        }
        parsed
    });
    let direction = q.direction.as_deref().and_then(|s| {
        let parsed = Direction::parse(s);
        if parsed.is_none() {
            errors.push(Problem::field(
                "direction",
                "must be disbursement or collection",
            ));
        }
        parsed
    });
    let limit = match q.limit.as_deref().map(str::parse::<i64>) {
        None => 50,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => {
            errors.push(Problem::field("limit", "must be an integer from 1 to 500"));
            50
        }
    };
    let after = match q.cursor.as_deref().map(Uuid::parse_str) {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err(_)) => {
            errors.push(Problem::field("cursor", "is not a cursor this API issued"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(super::paging::bad_query(errors));
    }
    let f = Filter {
        reference: q.reference,
        state: st,
        direction,
        rail: q.rail,
        payroll_id: None,
        after,
        limit,
    };
    let page = payments::list(&state.db, caller.client_id, &f).await?;
    let full = i64::try_from(page.len()).unwrap_or(0) == limit;
    let next = if full {
        page.last().map(|p| p.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({
        "data": page.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

pub async fn cancel(
    AxState(state): AxState<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require("payments:write")?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("payment"))?;
    let key = super::body::idempotency_key(&headers)?;
    let st = state.clone();
    let c = caller.clone();
    let k = key.clone();
    with_idempotency(&state, &caller, k.as_deref(), format!("cancel:{id}"), || async move {
        payments::get(&st.db, Some(c.client_id), id).await?.ok_or_else(|| Problem::not_found("payment"))?;
        let mut tx = st.db.begin().await?;
        match engine::apply(&mut tx, st.db.kind(), id, Change::Cancel, "api: cancelled by the client").await? {
            Applied::Changed { .. } => {
                let p = payments::get_in(&mut tx, None, id).await?.ok_or_else(Problem::internal)?;
                let body = view(&p).to_string();
                if let Some(k) = &key {
                    idempotency::complete(&mut tx, c.client_id, k, 200, &body).await?;
                }
                tx.commit().await.map_err(crate::store::StoreError::from)?;
                Ok((StatusCode::OK, body, None))
            }
            Applied::Duplicate | Applied::Conflict | Applied::Ignored | Applied::Noted => {
                let held = payments::lock_state(&mut tx, st.db.kind(), id).await?;
                let _ = tx.rollback().await;
                Err(Problem::conflict(
                    "not-cancellable",
                    "The payment can no longer be cancelled",
                    format!("the payment is {held}; only received or queued payments can be cancelled"),
                )
                .with("state", json!(held)))
            }
        }
    })
    .await
}
