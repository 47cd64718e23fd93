//! The console's pictures over the API, as SVG (`crate::charts` draws them):
//!
//! - `GET /v1/reports/charts/daily-flows?from=&to=&rail=&programme=&direction=`: per day,
//!   instructed vs confirmed vs settled (scope `reports:read`, as the report they picture);
//! - `GET /v1/reports/charts/break-ageing`: open breaks by age (`reports:read`);
//! - `GET /v1/payrolls/{id}/throughput`: a payroll's lines per minute (`payments:read` or
//!   `reports:read`, as the payroll itself).
//!
//! A picture is a document of its own: served with a policy that lets it run nothing.

use super::auth::Caller;
use super::paging::bad_query;
use super::problem::Problem;
use super::AppState;
use crate::charts;
use crate::store::{charts as figures, now_micros, payrolls};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{Days, NaiveDate, Utc};
use serde::Deserialize;
use uuid::Uuid;

fn svg(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, charts::CONTENT_TYPE),
            (header::CACHE_CONTROL, "private, no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsQuery {
    from: Option<String>,
    to: Option<String>,
    rail: Option<String>,
    programme: Option<String>,
    direction: Option<String>,
}

pub async fn daily_flows(
    AxState(state): AxState<AppState>,
    caller: Caller,
    query: Result<Query<FlowsQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.require("reports:read")?;
    let q = super::paging::query(query)?;
    let mut errors = Vec::new();
    let mut date = |name: &str, v: Option<&str>| match v.map(str::parse::<NaiveDate>) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            errors.push(Problem::field(name, "must be a date (YYYY-MM-DD)"));
            None
        }
    };
    let to = date("to", q.to.as_deref()).unwrap_or_else(|| Utc::now().date_naive());
    let from = date("from", q.from.as_deref())
        .unwrap_or_else(|| to.checked_sub_days(Days::new(13)).unwrap_or(to));
    if from > to {
        errors.push(Problem::field("to", "must not be before from"));
    } else if to.signed_duration_since(from).num_days() >= figures::MAX_DAYS {
        errors.push(Problem::field(
            "to",
            format!("a picture covers at most {} days", figures::MAX_DAYS),
        ));
    }
    if let Some(d) = q.direction.as_deref() {
        if !["disbursement", "collection"].contains(&d) {
            errors.push(Problem::field(
                "direction",
                "must be disbursement or collection",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(bad_query(errors));
    }
    let mut rows = figures::daily_flows(&state.db, caller.client_id, from, to).await?;
    rows.retain(|r| {
        q.rail.as_ref().is_none_or(|x| *x == r.rail)
            && q.programme.as_ref().is_none_or(|x| *x == r.programme)
            && q.direction.as_ref().is_none_or(|x| *x == r.direction)
    });
    Ok(svg(charts::flows::daily_flows(&rows, from, to)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

pub async fn break_ageing(
    AxState(state): AxState<AppState>,
    caller: Caller,
    query: Result<Query<NoQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.require("reports:read")?;
    super::paging::query(query)?;
    let rows = figures::break_ageing(&state.db, caller.client_id, now_micros()).await?;
    Ok(svg(charts::ageing::break_ageing(&rows, Utc::now())))
}

pub async fn payroll_throughput(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<NoQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.require_any(&["payments:read", "reports:read"])?;
    super::paging::query(query)?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("payroll"))?;
    let payroll = payrolls::get(&state.db, Some(caller.client_id), id)
        .await?
        .ok_or_else(|| Problem::not_found("payroll"))?;
    let minutes = figures::payroll_throughput(&state.db, caller.client_id, id)
        .await?
        .ok_or_else(|| Problem::not_found("payroll"))?;
    Ok(svg(charts::throughput::payroll_throughput(
        &payroll.name,
        &minutes,
    )))
}
