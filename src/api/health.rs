//! Liveness, readiness, metrics and the contract.

use super::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::time::Duration;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and every migration is applied.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.migrations_applied().await {
        Ok(true) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "migrations pending"})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "Readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "database unreachable"})),
            )
        }
    }
}

/// `/metrics`: the counters and histograms the gateway keeps, and the gauges read from the
/// store at each scrape (the job queue per kind, how late its oldest due job is, the dead
/// letter). `telemetry::METRICS` lists them all; ops/ holds a dashboard and alert rules over them.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    use crate::store::jobs::JobKind;
    if let Ok(kinds) = crate::store::jobs::backlog(&state.db, crate::store::now_micros()).await {
        // A kind with nothing left is absent from the answer: its gauges go back to zero.
        for kind in JobKind::ALL {
            metrics::gauge!("railgate_jobs_waiting", "kind" => kind.as_str()).set(0.0);
            metrics::gauge!("railgate_jobs_overdue_seconds", "kind" => kind.as_str()).set(0.0);
        }
        for b in kinds {
            let kind = b.kind;
            metrics::gauge!("railgate_jobs_waiting", "kind" => kind.clone()).set(count(b.waiting));
            metrics::gauge!("railgate_jobs_overdue_seconds", "kind" => kind).set(
                Duration::from_micros(u64::try_from(b.overdue_micros).unwrap_or(0)).as_secs_f64(),
            );
        }
    }
    if let Ok(dead) = crate::store::jobs::dead_count(&state.db).await {
        metrics::gauge!("railgate_jobs_dead_letter").set(count(dead));
    }
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// A row count as a gauge's value.
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX })
}

pub const OPENAPI: &str = include_str!("../../openapi.yaml");

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}
