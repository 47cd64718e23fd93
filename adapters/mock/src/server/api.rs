//! The rail's API: submissions and status inquiries.

use super::deliver;
use super::scenario::Scenario;
use super::state::{Admission, NewPayment, Reversal, ReversalAdmission, Transaction};
use super::Shared;
use crate::wire::{
    AcceptedResponse, ErrorBody, MockCode, MockStatus, PaymentRequest, Problem, RejectedResponse,
    ReversalRequest, ReversalStatus, TransactionStatus,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use railgate_rail::{Currency, Direction, Money, Party, PartyIdType};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub(crate) async fn payouts(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    submit(shared, Direction::Disbursement, body).await
}

pub(crate) async fn collections(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    submit(shared, Direction::Collection, body).await
}

async fn submit(shared: Arc<Shared>, direction: Direction, body: Bytes) -> Response {
    if let Some(refusal) = apply_faults(&shared).await {
        return refusal;
    }
    let new = match parse_payment(&body, direction) {
        Ok(new) => new,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, "Malformed request", detail),
    };
    let (admission, generation) = {
        let mut state = shared.lock();
        (state.accept(new, Utc::now()), state.generation)
    };
    match admission {
        Admission::Unavailable => unavailable(),
        Admission::Existing(txn) => current_state(&txn),
        Admission::New(txn) => {
            tracing::info!(
                request_id = %txn.request_id,
                transaction_id = %txn.transaction_id,
                party = %txn.party.masked(),
                scenario = ?txn.scenario,
                "Mock rail accepted a payment"
            );
            deliver::start(Arc::clone(&shared), generation, &txn);
            match txn.scenario {
                Scenario::PartyNotFound => current_state(&txn),
                Scenario::DropConnection => dropped_answer(),
                Scenario::Success
                | Scenario::InsufficientFunds
                | Scenario::Declined
                | Scenario::PendingThenSuccess
                | Scenario::SilentSuccess
                | Scenario::SilentFailure
                | Scenario::TripleCallback
                | Scenario::ForgedCallback
                | Scenario::UnavailableTwice
                | Scenario::Conflict
                | Scenario::InquiryHangs
                | Scenario::ReversalRefused
                | Scenario::ReversalAnswerLost => {
                    // The first answer is always "accepted, pending": the outcome comes later.
                    let reply = AcceptedResponse {
                        transaction_id: txn.transaction_id,
                        request_id: txn.request_id,
                        status: MockStatus::Pending,
                        code: None,
                        receipt: None,
                    };
                    (StatusCode::ACCEPTED, Json(reply)).into_response()
                }
            }
        }
    }
}

/// The answer to a resend: the original's current state, never a second payment.
fn current_state(txn: &Transaction) -> Response {
    match txn.status {
        MockStatus::Rejected => {
            let code = txn.code.clone().unwrap_or(MockCode::PartyNotFound);
            let reply = RejectedResponse {
                request_id: txn.request_id,
                status: MockStatus::Rejected,
                message: code.description().to_owned(),
                code,
            };
            (StatusCode::UNPROCESSABLE_ENTITY, Json(reply)).into_response()
        }
        MockStatus::Pending | MockStatus::Success | MockStatus::Failed => {
            let reply = AcceptedResponse {
                transaction_id: txn.transaction_id.clone(),
                request_id: txn.request_id,
                status: txn.status,
                code: txn.code.clone(),
                receipt: txn.shown_receipt(),
            };
            (StatusCode::ACCEPTED, Json(reply)).into_response()
        }
    }
}

/// Scenario 10: the status line and the start of the body go out, then the connection is
/// torn down, so the client sees a 202 whose body it cannot read.
pub(crate) fn dropped_answer() -> Response {
    let chunks = futures_util::stream::unfold(0u8, |step| async move {
        match step {
            0 => Some((Ok(Bytes::from_static(b"{\"transaction_id\":\"MR")), 1)),
            1 => {
                // Let the head and the first chunk reach the socket before the failure.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((
                    Err(std::io::Error::other("scenario 10 drops the connection")),
                    2,
                ))
            }
            _ => None,
        }
    });
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(chunks))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub(crate) async fn transaction(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
) -> Response {
    if let Some(refusal) = apply_faults(&shared).await {
        return refusal;
    }
    let Ok(request_id) = Uuid::parse_str(&request_id) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Malformed request",
            "request_id is not a UUID".to_owned(),
        );
    };
    let txn = {
        let mut state = shared.lock();
        state.inquiries = state.inquiries.saturating_add(1);
        state.settle_due(&request_id, Utc::now());
        state.get(&request_id).cloned()
    };
    let Some(txn) = txn else {
        let body = ErrorBody {
            code: "NOT_FOUND".to_owned(),
            message: Some("no payment with this request_id".to_owned()),
        };
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    if txn.scenario == Scenario::InquiryHangs {
        shared
            .sleep(Duration::from_millis(shared.config.hang_ms))
            .await;
        let body = ErrorBody {
            code: "TIMEOUT".to_owned(),
            message: None,
        };
        return (StatusCode::GATEWAY_TIMEOUT, Json(body)).into_response();
    }
    let amount = if shared.lock().misreport_amount {
        txn.amount
            .minor()
            .checked_mul(10)
            .and_then(|m| Money::from_minor(m, txn.amount.currency()).ok())
            .unwrap_or(txn.amount)
    } else {
        txn.amount
    };
    let reply = TransactionStatus {
        request_id: txn.request_id,
        transaction_id: txn.transaction_id.clone(),
        status: txn.status,
        code: txn.code.clone(),
        receipt: txn.shown_receipt(),
        amount: amount.to_decimal_string(),
        currency: txn.amount.currency().code().to_owned(),
    };
    (StatusCode::OK, Json(reply)).into_response()
}

/// `POST /v1/reversals`: synchronous; `200` when the money went back, `422` when refused,
/// `404` for a payment the rail does not hold. A resend of a `reversal_id` answers as before.
pub(crate) async fn reversals(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(refusal) = apply_faults(&shared).await {
        return refusal;
    }
    let req: ReversalRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Malformed request",
                format!("body: {e}"),
            )
        }
    };
    let (admission, scenario) = {
        let mut state = shared.lock();
        let scenario = state.get(&req.request_id).map(|t| t.scenario);
        (state.reverse(req.reversal_id, req.request_id), scenario)
    };
    match admission {
        ReversalAdmission::UnknownPayment => not_found("no payment with this request_id"),
        ReversalAdmission::Done(r) => {
            tracing::info!(reversal_id = %r.reversal_id, request_id = %r.request_id, status = ?r.status, "Mock rail reversal");
            if scenario == Some(Scenario::ReversalAnswerLost) && r.status == MockStatus::Success {
                return dropped_answer();
            }
            reversal_answer(&r)
        }
    }
}

/// `GET /v1/reversals/{reversal_id}`.
pub(crate) async fn reversal(
    State(shared): State<Arc<Shared>>,
    Path(reversal_id): Path<String>,
) -> Response {
    if let Some(refusal) = apply_faults(&shared).await {
        return refusal;
    }
    let Ok(reversal_id) = Uuid::parse_str(&reversal_id) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Malformed request",
            "reversal_id is not a UUID".to_owned(),
        );
    };
    let found = shared.lock().reversal(&reversal_id).cloned();
    match found {
        Some(r) => (StatusCode::OK, Json(reversal_status(&r))).into_response(),
        None => not_found("no reversal with this reversal_id"),
    }
}

fn reversal_status(r: &Reversal) -> ReversalStatus {
    ReversalStatus {
        reversal_id: r.reversal_id,
        request_id: r.request_id,
        status: r.status,
        transaction_id: r.transaction_id.clone(),
        code: r.code.clone(),
        message: r.message.clone(),
    }
}

fn reversal_answer(r: &Reversal) -> Response {
    let status = match r.status {
        MockStatus::Success | MockStatus::Pending => StatusCode::OK,
        MockStatus::Failed | MockStatus::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (status, Json(reversal_status(r))).into_response()
}

fn not_found(message: &str) -> Response {
    let body = ErrorBody {
        code: "NOT_FOUND".to_owned(),
        message: Some(message.to_owned()),
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// Injected latency, then an injected 503 (before anything is recorded).
pub(crate) async fn apply_faults(shared: &Shared) -> Option<Response> {
    let faults = shared.lock().faults;
    if faults.latency_ms > 0 && !shared.sleep(Duration::from_millis(faults.latency_ms)).await {
        return Some(unavailable());
    }
    if faults.error_rate_percent > 0 && roll_percent() < faults.error_rate_percent {
        return Some(unavailable());
    }
    None
}

fn roll_percent() -> u8 {
    rand::thread_rng().gen_range(0..100)
}

pub(crate) fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable",
        "the rail is busy; nothing was recorded, send the same request again later".to_owned(),
    )
}

pub(crate) fn problem(status: StatusCode, title: &str, detail: String) -> Response {
    let body = Problem {
        kind: format!("https://mock-rail.invalid/problems/{}", status.as_u16()),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json,
    )
        .into_response()
}

/// The amount, party and reference of a payment or a batch line, validated.
pub(crate) fn parse_party_money(
    amount: &str,
    currency: &str,
    party: &crate::wire::WireParty,
    reference: &str,
) -> Result<(Money, Party, String), String> {
    let currency: Currency = currency.parse().map_err(|e| format!("currency: {e}"))?;
    let amount = Money::parse(amount, currency).map_err(|e| format!("amount: {e}"))?;
    let id_type = PartyIdType::parse(&party.id_type)
        .ok_or_else(|| "party.id_type: unknown identifier type".to_owned())?;
    let party =
        Party::new(id_type, &party.id_value, None).map_err(|e| format!("party.id_value: {e}"))?;
    let reference = reference.trim();
    if reference.is_empty() || reference.chars().count() > 64 {
        return Err("reference: 1 to 64 characters".to_owned());
    }
    Ok((amount, party, reference.to_owned()))
}

fn parse_payment(body: &[u8], direction: Direction) -> Result<NewPayment, String> {
    let req: PaymentRequest = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let (amount, party, reference) =
        parse_party_money(&req.amount, &req.currency, &req.party, &req.reference)?;
    let url = reqwest::Url::parse(&req.callback_url).map_err(|e| format!("callback_url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("callback_url: must be http or https".to_owned());
    }
    Ok(NewPayment {
        request_id: req.request_id,
        direction,
        amount,
        party,
        reference,
        callback_url: req.callback_url,
    })
}
