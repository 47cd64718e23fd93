//! `/v1/admin/jobs`: the dispatcher's dead letter, for the gateway's operator (scope
//! `operator`). Jobs belong to the gateway rather than to one client (a rail's follow-up has
//! no client at all), so a client's `admin` key does not reach them.

use super::auth::{Caller, OPERATOR};
use super::payments::with_idempotency;
use super::problem::Problem;
use super::{body, paging, AppState};
use crate::store::{idempotency, jobs, StoreError};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// Dead jobs, oldest first: what failed, how often, and since when.
pub async fn dead(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<DeadQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require(OPERATOR)?;
    let q = paging::query(query)?;
    let mut errors = Vec::new();
    let limit = paging::limit(q.limit.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(paging::bad_query(errors));
    }
    // The cursor is the last id of the previous page; any text is a place in id order.
    let page = jobs::dead(&state.db, q.cursor.as_deref(), limit).await?;
    let next = (i64::try_from(page.len()).unwrap_or(0) == limit)
        .then(|| page.last().map(|j| j.id.clone()))
        .flatten();
    Ok(Json(json!({ "data": page, "next_cursor": next })))
}

/// Puts a dead job back in the queue, due now (its cause fixed, e.g. its rail configured).
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require(OPERATOR)?;
    let key = body::idempotency_key(&headers)?;
    let st = state.clone();
    let client = caller.client_id;
    let k = key.clone();
    let fingerprint = format!("retry-job:{id}");
    let done = with_idempotency(
        &state,
        &caller,
        key.as_deref(),
        fingerprint,
        || async move {
            let mut tx = st.db.begin().await?;
            let Some(job) = jobs::requeue(&mut tx, &id).await? else {
                return Err(Problem::not_found("dead job"));
            };
            let body = json!(job).to_string();
            if let Some(k) = &k {
                idempotency::complete(&mut tx, client, k, 200, &body).await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            tracing::info!(job = %job.id, kind = %job.kind, "Dead job requeued");
            Ok((StatusCode::OK, body, None))
        },
    )
    .await?;
    state.wake.notify_one();
    Ok(done)
}
