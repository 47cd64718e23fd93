//! The openIMIS facade: `/openimis/payment` and `/openimis/reconciliation`, as openIMIS's
//! payroll connector calls them (configured with this gateway's base URL, `openimis/payment`
//! and `openimis/reconciliation` as its two endpoints).
//!
//! The connector POSTs `{"invoiceId": "<benefit code>", "amount": "<decimal>"}` and reads
//! plain text: a payment counts as accepted only when the answer is exactly
//! `<invoiceId> invoice of <amount> accepted to be paid`, a benefit as reconciled when the
//! answer is `true`. The payee is not in that call: the code names an item of a payroll the
//! client imported beforehand and held, and this call releases that one item.
//!
//! Authentication, either of openIMIS's two kinds:
//! - `token`: `Authorization: Bearer <API key>`;
//! - `basic`: username = the client's name or the key's id, password = an API key of that
//!   client. The key decides who calls; the username must agree with it, so a key pasted
//!   under another client's name is refused rather than silently used.
//!
//! Every refusal is a non-2xx answer with a one-line text reason, and moves nothing.

use super::AppState;
use crate::domain::{Money, State};
use crate::ledger::transfers::{self, Phase};
use crate::payrolls::{release_item, NotReleased};
use crate::store::keys;
use crate::store::payments;
use crate::store::payrolls::{find_item, Status};
use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use railgate_rail::json::JsonFault;
use serde_json::Value;
use uuid::Uuid;

/// The connector's bodies are two short strings.
const BODY_LIMIT: usize = 16 * 1024;

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "openIMIS facade: store error");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; nothing was changed, it is safe to retry",
    )
}

fn unauthorized(why: &str) -> Response {
    let mut r = text(StatusCode::UNAUTHORIZED, why);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"railgate\", Bearer"),
    );
    r
}

/// The client and scopes behind the request's Basic or Bearer credentials.
async fn client(state: &AppState, headers: &HeaderMap, scope: &str) -> Result<Uuid, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("send Basic or Bearer credentials"))?;
    let (scheme, cred) = value
        .split_once(' ')
        .ok_or_else(|| unauthorized("malformed Authorization header"))?;
    let (user, key) = if scheme.eq_ignore_ascii_case("bearer") {
        (None, cred.trim().to_owned())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(cred.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
        let (u, p) = decoded
            .split_once(':')
            .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
        (Some(u.to_owned()), p.to_owned())
    } else {
        return Err(unauthorized("use Basic or Bearer authentication"));
    };
    let record = keys::lookup(&state.db, &key)
        .await
        .map_err(internal)?
        .filter(|r| r.revoked_at.is_none())
        .ok_or_else(|| unauthorized("the credentials are not valid"))?;
    if let Some(u) = user {
        if u != record.client_name && u != record.id.to_string() {
            return Err(unauthorized("the credentials are not valid"));
        }
    }
    if !record.scopes.iter().any(|s| s == scope || s == "admin") {
        return Err(text(
            StatusCode::FORBIDDEN,
            format!("this operation needs the scope '{scope}'"),
        ));
    }
    Ok(record.client_id)
}

/// `invoiceId` and `amount`, exactly as received.
async fn read_body(req: Request) -> Result<(String, String), Response> {
    let raw = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|_| text(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large"))?;
    let v: Value = railgate_rail::json::parse(&raw).map_err(|e| match e {
        JsonFault::Syntax { .. } => text(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        ),
        JsonFault::DuplicateKey { path } => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{path}: the key appears more than once; nothing was paid"),
        ),
        JsonFault::ControlCharacter { path } => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{path}: must not contain control characters; nothing was paid"),
        ),
    })?;
    let field = |k: &str| -> Result<String, Response> {
        match v.get(k) {
            Some(Value::String(s)) if railgate_rail::json::has_control(s) => Err(text(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{k}: must not contain control characters; nothing was paid"),
            )),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(text(
                StatusCode::BAD_REQUEST,
                format!("{k} must be a string"),
            )),
            None => Err(text(StatusCode::BAD_REQUEST, format!("{k} is required"))),
        }
    };
    Ok((field("invoiceId")?, field("amount")?))
}

/// Checks that `amount` is exactly the item's amount (in the item's currency).
fn check_amount(invoice: &str, amount: &str, item: Money) -> Result<(), Response> {
    match Money::parse(amount, item.currency()) {
        Ok(m) if m == item => Ok(()),
        Ok(_) => Err(text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "amount {amount} differs from the amount of invoice {invoice} ({} {}); nothing was paid",
                item.to_decimal_string(),
                item.currency().code()
            ),
        )),
        Err(e) => Err(text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "amount {amount} is not a valid {} amount: {e}; nothing was paid",
                item.currency().code()
            ),
        )),
    }
}

/// `POST /openimis/payment`: releases one item of a held payroll.
pub async fn payment(AxState(state): AxState<AppState>, req: Request) -> Response {
    match pay(&state, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn pay(state: &AppState, req: Request) -> Result<Response, Response> {
    let client_id = client(state, req.headers(), "payments:write").await?;
    let (invoice, amount) = read_body(req).await?;
    let not_found = || {
        text(
            StatusCode::NOT_FOUND,
            format!("invoice {invoice} is not an item of a held payroll of this client"),
        )
    };
    let item = find_item(&state.db, client_id, &invoice)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let status = match (item.payroll_id, item.payroll_status) {
        (Some(_), Some(s)) => s,
        _ => return Err(not_found()),
    };
    let p = payments::get(&state.db, Some(client_id), item.payment_id)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    check_amount(&invoice, &amount, p.amount)?;
    let already = |st: State| {
        let why = match st {
            State::Cancelled => format!("invoice {invoice} was cancelled; it will not be paid"),
            _ => format!("invoice {invoice} was already released for payment (it is {st})"),
        };
        text(StatusCode::CONFLICT, why)
    };
    match status {
        Status::Held => {}
        Status::Importing => {
            return Err(text(
                StatusCode::CONFLICT,
                format!("the payroll of invoice {invoice} is still being imported"),
            ))
        }
        Status::Released | Status::Paused | Status::Completed => return Err(already(p.state)),
    }
    if p.state != State::Received {
        return Err(already(p.state));
    }
    let cause = "openimis: payment requested";
    match release_item(&state.db, &state.wake, p.id, cause)
        .await
        .map_err(internal)?
    {
        Ok(()) => {
            tracing::info!(payment = %p.id, "openIMIS released a payroll item");
            Ok(text(
                StatusCode::OK,
                format!("{invoice} invoice of {amount} accepted to be paid"),
            ))
        }
        Err(NotReleased::AlreadyReleased(st)) => Err(already(st)),
    }
}

/// `POST /openimis/reconciliation`: `true` once the payment is completed and its transfer
/// posted in the ledger, `false` otherwise.
pub async fn reconciliation(AxState(state): AxState<AppState>, req: Request) -> Response {
    match reconcile(&state, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn reconcile(state: &AppState, req: Request) -> Result<Response, Response> {
    let client_id = client(state, req.headers(), "payments:read").await?;
    let (invoice, amount) = read_body(req).await?;
    let not_found = || {
        text(
            StatusCode::NOT_FOUND,
            format!("invoice {invoice} is not known for this client"),
        )
    };
    let item = find_item(&state.db, client_id, &invoice)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    let p = payments::get(&state.db, Some(client_id), item.payment_id)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    check_amount(&invoice, &amount, p.amount)?;
    let paid = settled(state, &p).await.map_err(internal)?;
    Ok(text(StatusCode::OK, paid.to_string()))
}

/// Whether openIMIS may count the benefit as paid: the payment is completed and its transfer
/// is posted in the ledger (both are written in one transaction; the ledger is asked so that
/// a `true` never runs ahead of the books).
async fn settled(
    state: &AppState,
    p: &crate::domain::Payment,
) -> Result<bool, crate::store::StoreError> {
    if p.state != State::Completed {
        return Ok(false);
    }
    let mut conn = state.db.pool().acquire().await?;
    let posted = transfers::find(&mut conn, p.id, Phase::Posted).await?;
    Ok(posted.is_some())
}
