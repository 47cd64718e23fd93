//! HTTP in and out: the `/v1` API for the core, the rails' callbacks, health and metrics.

// `Problem` is the error of every handler; it is built once per failed request, so its size
// does not matter and boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod body;
mod charts;
pub mod console;
mod events;
pub mod exceptions;
mod finance;
mod health;
mod http_metrics;
pub mod intake;
mod jobs;
mod ledger;
mod openimis;
mod paging;
mod params;
pub mod payments;
pub mod payrolls;
pub mod problem;
mod rails;
pub mod recon;
pub mod reversals;
mod validate;
mod webhooks;

use crate::config::Config;
use crate::rails::Rails;
use crate::store::Db;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{any, delete, get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use problem::Problem;
use std::sync::Arc;
use tokio::sync::Notify;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub rails: Arc<Rails>,
    pub cfg: Arc<Config>,
    /// Wakes this process's dispatcher when a job was written.
    pub wake: Arc<Notify>,
    pub metrics: Option<PrometheusHandle>,
    /// Writes new payments in group commits.
    pub intake: intake::Intake,
    /// Stores the rails' callbacks, and what they settle, in group commits.
    pub group: crate::callbacks::CallbackGroup,
    /// API keys recently read, trusted for a second (`auth::KeyCache`).
    pub keys: Arc<auth::KeyCache>,
    /// Large payrolls' recent counts (`payrolls::progress`).
    pub progress: Arc<payrolls::progress::ProgressCache>,
}

/// The routes `openapi.yaml` documents (method, path); a test keeps the two in step.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/disbursements"),
    ("post", "/v1/collections"),
    ("get", "/v1/payments"),
    ("get", "/v1/payments/{id}"),
    ("post", "/v1/payments/{id}/cancel"),
    ("post", "/v1/payments/{id}/reversals"),
    ("post", "/v1/payrolls"),
    ("get", "/v1/payrolls/{id}"),
    ("post", "/v1/payrolls/{id}/release"),
    ("post", "/v1/payrolls/{id}/hold"),
    ("get", "/v1/payrolls/{id}/items"),
    ("get", "/v1/payrolls/{id}/export"),
    ("get", "/v1/payrolls/{id}/throughput"),
    ("post", "/openimis/payment"),
    ("post", "/openimis/reconciliation"),
    ("post", "/v1/statements"),
    ("get", "/v1/statements/{id}"),
    ("post", "/v1/reconciliation/runs"),
    ("get", "/v1/reconciliation/runs/{id}"),
    ("get", "/v1/reconciliation/breaks"),
    ("post", "/v1/reconciliation/breaks/{id}/resolve"),
    ("get", "/v1/reports/reconciliation"),
    ("get", "/v1/reports/charts/daily-flows"),
    ("get", "/v1/reports/charts/break-ageing"),
    ("get", "/reports"),
    ("post", "/reports/login"),
    ("post", "/reports/logout"),
    ("get", "/reports/download"),
    ("post", "/reports/breaks/{id}/resolve"),
    ("get", "/reports/payments"),
    ("post", "/reports/payments"),
    ("get", "/reports/payments/{id}"),
    ("get", "/reports/payrolls"),
    ("get", "/reports/payrolls/{id}"),
    ("post", "/reports/payrolls/{id}/release"),
    ("post", "/reports/payrolls/{id}/hold"),
    ("get", "/reports/payrolls/{id}/export"),
    ("get", "/reports/statements"),
    ("post", "/reports/statements"),
    ("post", "/reports/runs"),
    ("get", "/reports/audit"),
    ("get", "/reports/exceptions"),
    ("post", "/reports/exceptions/{id}/inquiry"),
    ("post", "/reports/exceptions/{id}/settlement"),
    ("get", "/v1/ledger/accounts"),
    ("get", "/v1/ledger/accounts/{id}/entries"),
    ("get", "/v1/ledger/trial-balance"),
    ("get", "/v1/events"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("delete", "/v1/webhooks/{id}"),
    ("get", "/v1/webhooks/{id}/deliveries"),
    ("get", "/v1/admin/exceptions"),
    ("post", "/v1/payments/{id}/inquiries"),
    ("post", "/v1/payments/{id}/settlements"),
    ("get", "/v1/admin/jobs/dead"),
    ("post", "/v1/admin/jobs/dead/{id}/retry"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.yaml"),
];

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let span_rails = state.rails.clone();
    Router::new()
        .route("/v1/disbursements", post(payments::create_disbursement))
        .route("/v1/collections", post(payments::create_collection))
        .route("/v1/payments", get(payments::list))
        .route("/v1/payments/{id}", get(payments::get))
        .route("/v1/payments/{id}/cancel", post(payments::cancel))
        .route("/v1/payments/{id}/reversals", post(reversals::create))
        .route("/v1/payrolls", post(payrolls::create))
        .route("/v1/payrolls/{id}", get(payrolls::get))
        .route("/v1/payrolls/{id}/release", post(payrolls::release))
        .route("/v1/payrolls/{id}/hold", post(payrolls::hold))
        .route("/v1/payrolls/{id}/items", get(payrolls::items))
        .route("/v1/payrolls/{id}/export", get(payrolls::export))
        .route("/v1/payrolls/{id}/throughput", get(charts::payroll_throughput))
        .route("/openimis/payment", post(openimis::payment))
        .route("/openimis/reconciliation", post(openimis::reconciliation))
        .route("/v1/statements", post(recon::upload))
        .route("/v1/statements/{id}", get(recon::get_statement))
        .route("/v1/reconciliation/runs", post(recon::create_run))
        .route("/v1/reconciliation/runs/{id}", get(recon::get_run))
        .route("/v1/reconciliation/breaks", get(recon::list_breaks))
        .route(
            "/v1/reconciliation/breaks/{id}/resolve",
            post(recon::resolve_break),
        )
        .route("/v1/reports/reconciliation", get(recon::reconciliation_report))
        .route("/v1/reports/charts/daily-flows", get(charts::daily_flows))
        .route("/v1/reports/charts/break-ageing", get(charts::break_ageing))
        .route("/reports", get(finance::page))
        .route("/reports/login", post(finance::login_post))
        .route("/reports/logout", post(finance::logout))
        .route("/reports/download", get(finance::download))
        .route("/reports/breaks/{id}/resolve", post(finance::resolve))
        .route(
            "/reports/payments",
            get(console::payments::list).post(console::payments::find),
        )
        .route("/reports/payments/{id}", get(console::payments::one))
        .route("/reports/payrolls", get(console::payrolls::list))
        .route("/reports/payrolls/{id}", get(console::payrolls::one))
        .route(
            "/reports/payrolls/{id}/release",
            post(console::payrolls::release),
        )
        .route("/reports/payrolls/{id}/hold", post(console::payrolls::hold))
        .route(
            "/reports/payrolls/{id}/export",
            get(console::payrolls::export),
        )
        .route(
            "/reports/statements",
            get(console::recon::statements).post(console::recon::upload).layer(
                axum::extract::DefaultBodyLimit::max(console::recon::upload_limit()),
            ),
        )
        .route("/reports/runs", post(console::recon::run))
        .route("/reports/audit", get(console::audit::list))
        .route("/reports/exceptions", get(console::exceptions::list))
        .route(
            "/reports/exceptions/{id}/inquiry",
            post(console::exceptions::inquiry),
        )
        .route(
            "/reports/exceptions/{id}/settlement",
            post(console::exceptions::settlement),
        )
        .route("/v1/ledger/accounts", get(ledger::accounts))
        .route("/v1/ledger/accounts/{id}/entries", get(ledger::entries))
        .route("/v1/ledger/trial-balance", get(ledger::trial_balance))
        .route("/v1/events", get(events::list))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/webhooks/{id}", delete(webhooks::delete))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/admin/exceptions", get(exceptions::list))
        .route("/v1/payments/{id}/inquiries", post(exceptions::ask_rail))
        .route("/v1/payments/{id}/settlements", post(exceptions::settle))
        .route("/v1/admin/jobs/dead", get(jobs::dead))
        .route("/v1/admin/jobs/dead/{id}/retry", post(jobs::retry))
        .route("/rails/{rail}/{*rest}", any(rails::callback))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.yaml", get(health::openapi))
        .route_layer(axum::middleware::from_fn(params::check))
        .route_layer(axum::middleware::from_fn(http_metrics::record))
        .fallback(|| async { Problem::not_found("route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed", "this route does not take that method")
        })
        .layer(
            TraceLayer::new_for_http().make_span_with(move |req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // The path as the rail's adapter lets it be logged (no secret segment, no
                // party id); never the query string (PH-EE's callback token is there).
                let path = rails::loggable_path(&span_rails, req.uri().path());
                tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::map_response(close_after_unread_body))
        .with_state(state)
}

/// A body refused as too large was not read to its end, so the connection cannot carry another
/// request: say so (`Connection: close`), or a client that reuses it finds it cut off.
async fn close_after_unread_body(mut res: axum::response::Response) -> axum::response::Response {
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        res.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    res
}
