//! `GET /v1/payrolls/{id}/export?format=openimis-csv`: openIMIS's CSV reconciliation file.
//!
//! openIMIS reconciles a row when `Paid` is `Yes`, `Receipt` is not empty and `Status` is
//! the benefit's current status; so `Paid`/`Receipt` say what the rail did (the rail's
//! receipt, completed items only) and the other columns give back what the payroll file
//! said (kept in the item's metadata under `openimis`), with openIMIS's defaults otherwise.

use super::super::auth::Caller;
use super::super::problem::Problem;
use super::super::AppState;
use super::owned;
use crate::domain::{Payment, State};
use crate::store::payrolls;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use uuid::Uuid;

/// Rows read per query while streaming the file.
const PAGE: i64 = 2_000;

pub const HEADER: [&str; 11] = [
    "Payroll Name",
    "Payroll Status",
    "First Name",
    "Last Name",
    "Date of Birth",
    "Code",
    "Status",
    "Amount",
    "Type",
    "Receipt",
    "Paid",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
}

fn openimis<'a>(p: &'a Payment, key: &str) -> Option<&'a str> {
    p.metadata.get("openimis")?.get(key)?.as_str()
}

/// One item as a row of openIMIS's file.
pub fn row(payroll_name: &str, p: &Payment) -> [String; 11] {
    let completed = p.state == State::Completed;
    // Without First/Last Name columns in the payroll, the payee's name is split at its
    // first space, the way openIMIS shows an individual.
    let name = p.party.name().unwrap_or("");
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    let first = openimis(p, "first_name").unwrap_or(first);
    let last = openimis(p, "last_name").unwrap_or(last);
    [
        openimis(p, "payroll_name")
            .unwrap_or(payroll_name)
            .to_owned(),
        openimis(p, "payroll_status")
            .unwrap_or("APPROVE_FOR_PAYMENT")
            .to_owned(),
        first.to_owned(),
        last.to_owned(),
        openimis(p, "date_of_birth").unwrap_or("").to_owned(),
        p.reference.clone(),
        openimis(p, "status").unwrap_or("ACCEPTED").to_owned(),
        p.amount.to_decimal_string(),
        openimis(p, "type").unwrap_or("").to_owned(),
        if completed {
            // openIMIS reconciles only rows with a receipt: a rail that gives no receipt of
            // its own is represented by its transaction reference.
            p.receipt
                .clone()
                .or_else(|| p.rail_reference.clone())
                .unwrap_or_default()
        } else {
            String::new()
        },
        if completed { "Yes" } else { "No" }.to_owned(),
    ]
}

fn csv_bytes<I, R>(rows: I) -> std::io::Result<Bytes>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(r).map_err(std::io::Error::other)?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

pub async fn export(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require("payments:read")?;
    let Query(q) = query.map_err(|e| super::bad_query(e.body_text()))?;
    match q.format.as_deref() {
        None | Some("openimis-csv") => {}
        Some(other) => {
            return Err(super::bad_query(format!(
                "format '{other}' is not known; use openimis-csv"
            )))
        }
    }
    export_as(&state, &caller, &id).await
}

/// The openIMIS file of the caller's payroll, streamed.
pub async fn export_as(state: &AppState, caller: &Caller, id: &str) -> Result<Response, Problem> {
    let p = owned(state, caller, id).await?;
    let header = csv_bytes([HEADER]).map_err(|_| Problem::internal())?;
    let db = state.db.clone();
    let name = p.name.clone();
    let payroll_id = p.id;
    // Streamed page by page, so a payroll of a million lines is never held whole.
    let pages = futures_util::stream::unfold(Some(None::<Uuid>), move |cursor| {
        let db = db.clone();
        let name = name.clone();
        async move {
            let after = cursor?;
            match payrolls::items_page(&db, payroll_id, after, PAGE).await {
                Err(e) => {
                    tracing::error!(payroll = %payroll_id, error = %e, "Export failed mid-way");
                    Some((Err(std::io::Error::other("store error")), None))
                }
                Ok(items) if items.is_empty() => None,
                Ok(items) => {
                    let next = if i64::try_from(items.len()).unwrap_or(0) < PAGE {
                        None
                    } else {
                        items.last().map(|i| Some(i.id))
                    };
                    let chunk = csv_bytes(items.iter().map(|i| row(&name, i)));
                    Some((chunk, next))
                }
            }
        }
    });
    let body = futures_util::stream::iter([Ok(header)]).chain(pages);
    let filename = format!("payroll-{}.csv", p.id);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
