//! The control endpoints tests and the sandbox use: paid counts, callbacks, faults, reset and
//! the rail's statement.

use super::api::problem;
use super::Shared;
use crate::wire::Faults;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

pub(crate) async fn payouts(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().payouts()).into_response()
}

pub(crate) async fn callbacks(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().callbacks()).into_response()
}

pub(crate) async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().faults).into_response()
}

pub(crate) async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(faults) => faults,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Malformed faults", e.to_string()),
    };
    if faults.error_rate_percent > 100 {
        return problem(
            StatusCode::BAD_REQUEST,
            "Malformed faults",
            "error_rate_percent: 0 to 100".to_owned(),
        );
    }
    shared.lock().faults = faults;
    tracing::info!(?faults, "Mock rail faults set");
    Json(faults).into_response()
}

pub(crate) async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.lock().reset();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct StatementQuery {
    format: Option<String>,
}

pub(crate) async fn statement(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<StatementQuery>,
) -> Response {
    match query.format.as_deref() {
        None | Some("csv") => {
            let csv = shared.lock().statement_csv();
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response()
        }
        Some(_) => problem(
            StatusCode::BAD_REQUEST,
            "Unsupported format",
            "format: only csv".to_owned(),
        ),
    }
}
