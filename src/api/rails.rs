//! `/rails/{rail}/...`: where rails call us. Hands each request to the callbacks inbox.

use super::problem::Problem;
use super::AppState;
use crate::callbacks::{self, Answer};
use crate::rails::Rails;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// Callbacks are small; anything larger than its rail allows (this, for a rail not
/// configured) is refused before it is stored.
const CALLBACK_LIMIT: usize = 1024 * 1024;

/// A request path as logs and spans may show it. Below `/rails/{rail}` the rail's adapter
/// hides what it must (a secret path segment, a party's identifier); below a rail that is not
/// configured everything is hidden, as nobody can say what it carries.
pub(super) fn loggable_path(rails: &Rails, path: &str) -> String {
    let Some(below) = path.strip_prefix("/rails/") else {
        return path.to_owned();
    };
    let (rail, rest) = below.split_once('/').unwrap_or((below, ""));
    match rails.get(rail) {
        Some(r) => format!(
            "/rails/{rail}{}",
            r.adapter.loggable_path(&format!("/{rest}"))
        ),
        None if rest.is_empty() => path.to_owned(),
        None => format!("/rails/{rail}/{}", railgate_rail::REDACTED),
    }
}

pub async fn callback(
    State(state): State<AppState>,
    Path((rail, rest)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, Problem> {
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_owned);
    let headers = req.headers().clone();
    let limit = state
        .rails
        .get(&rail)
        .map_or(CALLBACK_LIMIT, |r| r.adapter.max_callback_bytes());
    let body = super::body::read_limited(req, limit).await?;
    let inbound = railgate_rail::InboundRequest {
        method,
        path: format!("/{rest}"),
        query,
        headers,
        body,
        received_at: chrono::Utc::now(),
        peer: Some(peer),
    };
    let batch_hint = state
        .rails
        .get(&rail)
        .is_some_and(|r| r.adapter.is_batch_callback(&inbound));
    let answer = callbacks::receive(
        &state.db,
        &state.group,
        &state.rails,
        &state.wake,
        &rail,
        inbound,
    )
    .await
    .map_err(|e| {
        tracing::error!(rail = %rail, error = %e, "Callback could not be stored");
        Problem::internal()
    })?;
    // A batch callback, once authenticated, only says "read the rail's open batches now".
    if batch_hint && matches!(answer, Answer::Reply { .. }) {
        crate::batches::hint(state.db.background(), state.rails.clone(), rail.clone());
    }
    Ok(match answer {
        Answer::Reply {
            status,
            content_type,
            body,
        } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response(),
        Answer::Refused { status, reason } => Problem::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            "callback-refused",
            "Callback refused",
            reason,
        )
        .into_response(),
    })
}
