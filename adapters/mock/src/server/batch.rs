//! The rail's batch API: `POST /v1/batches` takes many payments at once, `GET
//! /v1/batches/{id}` gives their results page by page, and a signed "batch completed"
//! callback says when to read them. Each line follows the scenario table like a single
//! payment (see the crate's README for how each row shows in a batch).

use super::api::{apply_faults, dropped_answer, parse_party_money, problem, unavailable};
use super::deliver;
use super::scenario::Scenario;
use super::state::{BatchAdmission, NewPayment, Transaction};
use super::Shared;
use crate::wire::{
    BatchAccepted, BatchCallbackBody, BatchRequest, BatchResults, BatchStatus, ErrorBody, MockCode,
    MockStatus, TransactionStatus,
};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use railgate_rail::Direction;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Most lines one upload may carry.
pub const MAX_LINES: usize = 100_000;
/// Lines per results page when the caller does not say, and at most.
const DEFAULT_PAGE: usize = 1_000;
const MAX_PAGE: usize = 10_000;

pub(crate) async fn create(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(refusal) = apply_faults(&shared).await {
        return refusal;
    }
    let req: BatchRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Malformed batch",
                format!("body: {e}"),
            )
        }
    };
    if req.lines.is_empty() || req.lines.len() > MAX_LINES {
        return problem(
            StatusCode::BAD_REQUEST,
            "Malformed batch",
            format!("lines: 1 to {MAX_LINES}"),
        );
    }
    if let Some(url) = &req.callback_url {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Malformed batch",
                    "callback_url: must be an http or https URL".to_owned(),
                )
            }
        }
    }
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, l) in req.lines.iter().enumerate() {
        let parsed = Direction::parse(&l.direction)
            .ok_or_else(|| "direction: disbursement or collection".to_owned())
            .and_then(|direction| {
                let (amount, party, reference) =
                    parse_party_money(&l.amount, &l.currency, &l.party, &l.reference)?;
                Ok(NewPayment {
                    request_id: l.request_id,
                    direction,
                    amount,
                    party,
                    reference,
                    callback_url: String::new(),
                })
            });
        match parsed {
            Ok(n) => lines.push(n),
            // Nothing of a batch with a bad line is recorded.
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Malformed batch",
                    format!("lines[{i}].{e}"),
                )
            }
        }
    }
    let pending_for = chrono::Duration::milliseconds(
        i64::try_from(shared.config.pending_delay_ms).unwrap_or(i64::MAX),
    );
    let (admission, generation) = {
        let mut state = shared.lock();
        let a = state.accept_batch(req.batch_id, lines, Utc::now(), pending_for);
        (a, state.generation)
    };
    let accepted = |lines: usize| {
        let reply = BatchAccepted {
            batch_id: req.batch_id,
            lines: u64::try_from(lines).unwrap_or(u64::MAX),
            status: BatchStatus::Processing,
        };
        (StatusCode::ACCEPTED, Json(reply)).into_response()
    };
    match admission {
        BatchAdmission::Unavailable => unavailable(),
        BatchAdmission::Existing { lines } => accepted(lines),
        BatchAdmission::New {
            lines,
            drop_answer,
            settles_at,
        } => {
            tracing::info!(batch_id = %req.batch_id, lines, "Mock rail accepted a batch");
            if let Some(url) = req.callback_url.clone() {
                let wait = settles_at
                    .and_then(|at| at.signed_duration_since(Utc::now()).to_std().ok())
                    .unwrap_or_default()
                    .saturating_add(Duration::from_millis(shared.config.callback_delay_ms));
                let batch_id = req.batch_id;
                tokio::spawn(async move {
                    notify_completed(&shared, generation, batch_id, &url, wait).await;
                });
            }
            if drop_answer {
                dropped_answer()
            } else {
                accepted(lines)
            }
        }
    }
}

/// Posts "batch completed" once every line that will settle has.
async fn notify_completed(
    shared: &Shared,
    generation: u64,
    batch_id: Uuid,
    url: &str,
    wait: Duration,
) {
    if !shared.sleep(wait).await {
        return;
    }
    {
        let state = shared.lock();
        if state.generation != generation || state.faults.drop_callbacks {
            return;
        }
    }
    let event_id = Uuid::new_v4();
    let body = BatchCallbackBody {
        event_id,
        batch_id,
        status: BatchStatus::Completed,
        occurred_at: Utc::now(),
    };
    let Ok(bytes) = serde_json::to_vec(&body) else {
        return;
    };
    let result = deliver::post(
        shared,
        url,
        event_id,
        &shared.config.callback_secret,
        &bytes,
    )
    .await;
    tracing::debug!(%batch_id, ?result, "Mock rail batch callback");
}

#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn results(
    State(shared): State<Arc<Shared>>,
    Path(batch_id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    if let Some(refusal) = apply_faults(&shared).await {
        return refusal;
    }
    let Ok(batch_id) = Uuid::parse_str(&batch_id) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Malformed request",
            "batch_id is not a UUID".to_owned(),
        );
    };
    let start = match q.cursor.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Malformed request",
                "cursor: not one this rail gave".to_owned(),
            )
        }
    };
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let now = Utc::now();
    let mut state = shared.lock();
    let Some(batch) = state.batch(&batch_id) else {
        let body = ErrorBody {
            code: "NOT_FOUND".to_owned(),
            message: Some("no batch with this id".to_owned()),
        };
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let status = if batch.hangs || batch.settles_at.is_some_and(|at| at > now) {
        BatchStatus::Processing
    } else {
        BatchStatus::Completed
    };
    let end = start.saturating_add(limit).min(batch.lines.len());
    let ids: Vec<Uuid> = batch.lines.get(start..end).unwrap_or_default().to_vec();
    let next_cursor = (end < batch.lines.len()).then(|| end.to_string());
    let mut results = Vec::with_capacity(ids.len());
    for id in &ids {
        state.settle_due(id, now);
        if let Some(txn) = state.get(id) {
            line_results(txn, &mut results);
        }
    }
    drop(state);
    let reply = BatchResults {
        batch_id,
        status,
        results,
        next_cursor,
    };
    (StatusCode::OK, Json(reply)).into_response()
}

/// What the results list says of one line: its state, once; 07 twice; 11 a failure, then
/// the success the rail really booked.
fn line_results(txn: &Transaction, out: &mut Vec<TransactionStatus>) {
    let row = |status: MockStatus, code: Option<MockCode>| TransactionStatus {
        request_id: txn.request_id,
        transaction_id: txn.transaction_id.clone(),
        status,
        code,
        receipt: (status == MockStatus::Success).then(|| txn.receipt.clone()),
        amount: txn.amount.to_decimal_string(),
        currency: txn.amount.currency().code().to_owned(),
    };
    match txn.scenario {
        Scenario::TripleCallback => {
            out.push(row(txn.status, txn.code.clone()));
            out.push(row(txn.status, txn.code.clone()));
        }
        Scenario::Conflict => {
            out.push(row(MockStatus::Failed, Some(MockCode::Declined)));
            out.push(row(txn.status, txn.code.clone()));
        }
        Scenario::Success
        | Scenario::InsufficientFunds
        | Scenario::PartyNotFound
        | Scenario::Declined
        | Scenario::PendingThenSuccess
        | Scenario::SilentSuccess
        | Scenario::SilentFailure
        | Scenario::ForgedCallback
        | Scenario::UnavailableTwice
        | Scenario::DropConnection
        | Scenario::InquiryHangs
        | Scenario::ReversalRefused
        | Scenario::ReversalAnswerLost => out.push(row(txn.status, txn.code.clone())),
    }
}
