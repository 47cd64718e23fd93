//! `/v1/payrolls`: many disbursements as one file, held or released at once.

pub mod export;
pub mod file;
pub mod progress;

use super::auth::Caller;
use super::payments::{view as payment_view, with_idempotency};
use super::problem::Problem;
use super::AppState;
use crate::domain::{Currency, State};
use crate::store::idempotency;
use crate::store::payments::{self, Filter};
use crate::store::payrolls::{self, Payroll, Status};
use crate::store::{now_micros, StoreError};
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;
use file::Parsed;
use futures_util::TryStreamExt;
use railgate_rail::money::format_minor;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

pub use export::export;

/// Items per transaction while importing: each commit is a few multi-row statements.
const IMPORT_TX_ITEMS: usize = 20_000;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateQuery {
    /// `true`: keep the items `received` until released.
    hold: Option<String>,
    /// A name for the payroll (else the file's, else one from the date).
    name: Option<String>,
    /// Currency of CSV lines that have no `currency` column.
    currency: Option<String>,
    /// openIMIS's id of the payroll this file pays: its results are posted back under it.
    openimis_payroll_id: Option<String>,
}

fn bad_query(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "bad-query",
        "Invalid query parameters",
        detail,
    )
}

fn parse_bool(field: &str, v: Option<&str>) -> Result<Option<bool>, Problem> {
    match v {
        None => Ok(None),
        Some("true" | "1" | "yes") => Ok(Some(true)),
        Some("false" | "0" | "no") => Ok(Some(false)),
        Some(_) => Err(bad_query(format!("{field} must be true or false"))),
    }
}

fn essence(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `POST /v1/payrolls`: JSON or CSV; validated whole before anything is stored.
pub async fn create(
    AxState(state): AxState<AppState>,
    caller: Caller,
    query: Result<Query<CreateQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<Response, Problem> {
    caller.require("payments:write")?;
    let Query(q) = query.map_err(|e| bad_query(e.body_text()))?;
    let hold_param = parse_bool("hold", q.hold.as_deref())?;
    let currency = match q.currency.as_deref().map(str::parse::<Currency>) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return Err(bad_query(format!("currency: {e}"))),
    };
    let openimis_payroll_id = match q.openimis_payroll_id.as_deref().map(str::trim) {
        None => None,
        Some(id)
            if !id.is_empty() && id.chars().count() <= 64 && !id.chars().any(char::is_control) =>
        {
            Some(id.to_owned())
        }
        Some(_) => {
            return Err(bad_query(
                "openimis_payroll_id must be 1 to 64 printable characters",
            ))
        }
    };
    let key = super::body::idempotency_key(req.headers())?;
    let limit = state.cfg.payroll_limit_bytes;
    let rails = state.rails.clone();
    let started = std::time::Instant::now();
    let (parsed, source) = match essence(&req).as_str() {
        "text/csv" => {
            let stream = req
                .into_body()
                .into_data_stream()
                .map_err(std::io::Error::other);
            let reader =
                tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
            let parsed = tokio::task::spawn_blocking(move || {
                file::read_csv(reader, limit, currency, &rails)
            })
            .await
            .map_err(|_| Problem::internal())??;
            (parsed, "csv")
        }
        "application/json" => {
            let raw = super::body::read_limited(req, limit).await?;
            let parsed = tokio::task::spawn_blocking(move || file::read_json(&raw, &rails))
                .await
                .map_err(|_| Problem::internal())??;
            (parsed, "json")
        }
        _ => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported content type",
                "send the payroll as 'Content-Type: text/csv' or 'application/json'",
            ))
        }
    };
    tracing::info!(
        lines = parsed.items.len(),
        errors = parsed.error_count,
        read_ms = started.elapsed().as_millis(),
        "Payroll file read"
    );
    if parsed.error_count > 0 {
        return Err(refused(&parsed));
    }
    if parsed.items.is_empty() {
        return Err(Problem::validation(vec![Problem::field(
            "items",
            "the payroll has no items",
        )]));
    }
    let hold = hold_param.or(parsed.hold).unwrap_or(false);
    let name = q
        .name
        .clone()
        .or_else(|| parsed.name.clone())
        .unwrap_or_else(|| format!("Payroll {}", chrono::Utc::now().format("%Y-%m-%d %H:%M")));
    if railgate_rail::json::has_control(&name) {
        return Err(Problem::validation(vec![Problem::field(
            "name",
            "must not contain control characters",
        )]));
    }
    let fingerprint = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            "payrolls",
            if hold { "held" } else { "released" },
            &name,
            currency.map(|c| c.code()).unwrap_or(""),
            openimis_payroll_id.as_deref().unwrap_or(""),
            &parsed.fingerprint,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    };
    let st = state.clone();
    let c = caller.clone();
    let k = key.clone();
    with_idempotency(
        &state,
        &caller,
        key.as_deref(),
        fingerprint,
        || async move {
            let p = import(
                &st,
                &c,
                parsed,
                &name,
                source,
                hold,
                openimis_payroll_id.as_deref(),
            )
            .await?;
            let body = view(&st, &p).await?.to_string();
            if let Some(k) = k {
                // The payroll is stored whole by now; a crash before this line leaves the key to
                // expire as abandoned, and a retry is then refused for its used references.
                let mut conn = st.db.pool().acquire().await.map_err(StoreError::from)?;
                idempotency::complete(&mut conn, c.client_id, &k, 201, &body).await?;
            }
            Ok((
                StatusCode::CREATED,
                body,
                Some(format!("/v1/payrolls/{}", p.id)),
            ))
        },
    )
    .await
}

/// The 422 answer for a refused file: every bad line with its field and reason.
fn refused(parsed: &Parsed) -> Problem {
    let listed = parsed.errors.len();
    let detail = if u64::try_from(listed).unwrap_or(0) < parsed.error_count {
        format!(
            "{} errors in the file (the first {listed} are listed); nothing was stored",
            parsed.error_count
        )
    } else {
        format!(
            "{} errors in the file; nothing was stored",
            parsed.error_count
        )
    };
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "payroll-invalid",
        "The payroll file has invalid lines",
        detail,
    )
    .with("errors", json!(parsed.errors))
}

/// Stores a validated payroll: refuses references the client used before, inserts the items
/// in multi-row statements over a few transactions, then holds or releases it.
async fn import(
    state: &AppState,
    caller: &Caller,
    parsed: Parsed,
    name: &str,
    source: &str,
    hold: bool,
    openimis_payroll_id: Option<&str>,
) -> Result<Payroll, Problem> {
    let refs: Vec<&str> = parsed.items.iter().map(|i| &*i.reference).collect();
    let started = std::time::Instant::now();
    let used = payrolls::existing_references(&state.db, caller.client_id, &refs).await?;
    let checked_ms = started.elapsed().as_millis();
    if !used.is_empty() {
        let used: std::collections::HashSet<&str> = used.iter().map(String::as_str).collect();
        let errors: Vec<file::LineError> = parsed
            .items
            .iter()
            .filter(|i| used.contains(&*i.reference))
            .map(|i| file::LineError {
                line: i.line,
                field: "reference".into(),
                reason: "already used by an earlier payment of this client".into(),
            })
            .collect();
        let count = u64::try_from(errors.len()).unwrap_or(u64::MAX);
        let listed = errors.into_iter().take(file::MAX_LISTED_ERRORS).collect();
        return Err(refused(&Parsed {
            errors: listed,
            error_count: count,
            ..Parsed::default()
        }));
    }
    drop(refs);
    let payroll_id = Uuid::now_v7();
    let count = i64::try_from(parsed.items.len()).unwrap_or(i64::MAX);
    {
        let mut conn = state.db.pool().acquire().await.map_err(StoreError::from)?;
        payrolls::create(&mut conn, payroll_id, caller.client_id, name, source, count).await?;
        if let Some(oid) = openimis_payroll_id {
            // Before any item can complete, so the payroll's results always know where to go.
            crate::notify::openimis::link_payroll(&mut conn, payroll_id, oid).await?;
        }
    }
    let started = std::time::Instant::now();
    let stored = store_items(state, caller, payroll_id, parsed.items).await;
    let stored_ms = started.elapsed().as_millis();
    if let Err(e) = stored {
        if let Err(d) = payrolls::discard(&state.db, payroll_id).await {
            tracing::error!(payroll = %payroll_id, error = %d, "A failed import could not be removed");
        }
        return Err(if e.is_unique_violation() {
            Problem::conflict(
                "duplicate-reference",
                "A reference is already used",
                "another request stored one of these references meanwhile; nothing was stored",
            )
        } else {
            e.into()
        });
    }
    {
        let mut conn = state.db.pool().acquire().await.map_err(StoreError::from)?;
        payrolls::set_status(&mut conn, payroll_id, Status::Importing, Status::Held).await?;
    }
    tracing::info!(payroll = %payroll_id, items = count, hold, checked_ms, stored_ms, "Payroll stored");
    if !hold {
        crate::payrolls::release(
            &state.db,
            &state.wake,
            &state.cfg,
            &state.rails,
            payroll_id,
            "api: payroll released",
        )
        .await?;
    }
    payrolls::get(&state.db, None, payroll_id)
        .await?
        .ok_or_else(Problem::internal)
}

async fn store_items(
    state: &AppState,
    caller: &Caller,
    payroll_id: Uuid,
    items: Vec<payrolls::NewItem>,
) -> Result<(), StoreError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let cause = format!("api: payroll {payroll_id}");
    // The payroll stays `importing` (invisible to the dispatcher) until every chunk is in,
    // and a failed import is discarded whole, so its chunks need not share one transaction:
    // on PostgreSQL they are written by as many connections at once as the store gives its
    // writers (the database's index upkeep is the cost, and it runs on each backend's own
    // core); SQLite has one writer.
    let chunks: Vec<_> = items
        .chunks(IMPORT_TX_ITEMS)
        .map(|tx_items| store_chunk(state, caller.client_id, payroll_id, tx_items, &cause))
        .collect();
    stream::iter(chunks)
        .buffer_unordered(state.db.writers())
        .try_collect::<()>()
        .await
}

/// One transaction of an import: a chunk of its items.
async fn store_chunk(
    state: &AppState,
    client_id: Uuid,
    payroll_id: Uuid,
    items: &[payrolls::NewItem],
    cause: &str,
) -> Result<(), StoreError> {
    let mut tx = state.db.begin().await?;
    payrolls::insert_items(&mut tx, client_id, payroll_id, items, cause).await?;
    tx.commit().await?;
    Ok(())
}

fn money(minor: i64, currency: &str) -> Value {
    match currency.parse::<Currency>() {
        Ok(c) => json!({"value": format_minor(minor, c), "currency": currency}),
        Err(_) => json!({"minor": minor, "currency": currency}),
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The payroll as the API shows it, counted now: counts and totals per state, progress and
/// time left.
pub async fn view(state: &AppState, p: &Payroll) -> Result<Value, Problem> {
    let counts = payrolls::counts(&state.db, p.id).await?;
    Ok(view_of(p, &counts))
}

/// The payroll as the API shows it, from a recent count when counting it is dear
/// ([`progress`]): for those who follow a payroll by asking again and again.
pub async fn view_recent(state: &AppState, p: &Payroll) -> Result<Value, Problem> {
    let counts = state.progress.counts(&state.db, p.id, p.status).await?;
    Ok(view_of(p, &counts))
}

fn view_of(p: &Payroll, counts: &[payrolls::StateCount]) -> Value {
    let (mut exceptions, mut conflicts) = (0_i64, 0_i64);
    let mut by_state: BTreeMap<&str, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    let mut finished: i64 = 0;
    for c in counts {
        exceptions = exceptions.saturating_add(c.exceptions);
        conflicts = conflicts.saturating_add(c.conflicts);
        let e = by_state.entry(c.state.as_str()).or_default();
        e.0 = e.0.saturating_add(c.count);
        let t = e.1.entry(c.currency.clone()).or_insert(0);
        *t = t.saturating_add(c.total_minor);
        let t = totals.entry(c.currency.clone()).or_insert(0);
        *t = t.saturating_add(c.total_minor);
        if c.state.is_final() {
            finished = finished.saturating_add(c.count);
        }
    }
    let states: Map<String, Value> = by_state
        .iter()
        .map(|(s, (n, t))| {
            (
                (*s).to_owned(),
                json!({"count": n, "totals": t.iter().map(|(c, m)| money(*m, c)).collect::<Vec<_>>()}),
            )
        })
        .collect();
    let total = p.item_count.max(1);
    let permille = finished
        .saturating_mul(1000)
        .checked_div(total)
        .unwrap_or(0);
    let percent = f64::from(i32::try_from(permille).unwrap_or(0)) / 10.0;
    let open = p.item_count.saturating_sub(finished);
    // Time left, from the pace since release: elapsed × open / finished.
    let eta = match p.released_at {
        _ if open == 0 => Some(0),
        Some(r) if finished > 0 => {
            let elapsed = now_micros().saturating_sub(r.timestamp_micros()).max(0);
            let left = i128::from(elapsed)
                .saturating_mul(i128::from(open))
                .checked_div(i128::from(finished))
                .unwrap_or(0)
                / 1_000_000;
            Some(i64::try_from(left).unwrap_or(i64::MAX))
        }
        _ => None,
    };
    json!({
        "id": p.id,
        "name": p.name,
        "status": p.status.as_str(),
        "source": p.source,
        "item_count": p.item_count,
        "totals": totals.iter().map(|(c, m)| money(*m, c)).collect::<Vec<_>>(),
        "states": states,
        "finished": finished,
        "exceptions": exceptions,
        "conflicts": conflicts,
        "percent_done": percent,
        "estimated_seconds_left": eta,
        "created_at": rfc3339(p.created_at),
        "released_at": p.released_at.map(rfc3339),
        "completed_at": p.completed_at.map(rfc3339),
    })
}

pub async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<Payroll, Problem> {
    let id = Uuid::parse_str(id).map_err(|_| Problem::not_found("payroll"))?;
    payrolls::get(&state.db, Some(caller.client_id), id)
        .await?
        .ok_or_else(|| Problem::not_found("payroll"))
}

/// `GET /v1/payrolls/{id}`.
pub async fn get(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require("payments:read")?;
    let p = owned(&state, &caller, &id).await?;
    Ok(Json(view_recent(&state, &p).await?))
}

/// Releases the payroll's held items as `caller` (`cause` goes into each item's history);
/// the payroll as it is afterwards. A released payroll's release is resumed.
pub async fn release_as(
    state: &AppState,
    caller: &Caller,
    id: &str,
    cause: &str,
) -> Result<Payroll, Problem> {
    let p = owned(state, caller, id).await?;
    match p.status {
        Status::Held | Status::Released | Status::Paused => {}
        Status::Importing => {
            return Err(Problem::conflict(
                "payroll-not-ready",
                "The payroll is still being stored",
                "release it once it is held",
            ))
        }
        Status::Completed => {
            return Err(Problem::conflict(
                "payroll-completed",
                "The payroll is completed",
                "every item already reached a final state",
            ))
        }
    }
    crate::payrolls::release(
        &state.db,
        &state.wake,
        &state.cfg,
        &state.rails,
        p.id,
        cause,
    )
    .await?;
    owned(state, caller, id).await
}

/// `POST /v1/payrolls/{id}/release`: hands every held item to the dispatcher. Calling it on
/// a released payroll resumes a release that was interrupted.
pub async fn release(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require("payments:write")?;
    let p = release_as(&state, &caller, &id, "api: payroll released").await?;
    Ok(Json(view(&state, &p).await?))
}

/// `POST /v1/payrolls/{id}/hold`: pauses a released payroll (see [`hold_as`]).
pub async fn hold(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require("payments:write")?;
    let p = hold_as(&state, &caller, &id).await?;
    Ok(Json(view(&state, &p).await?))
}

/// Pauses the caller's released payroll: its items not yet taken by the dispatcher wait
/// (nothing already sent is called back) until it is released again. Holding a held or
/// paused payroll changes nothing. The caller's scopes are checked by the caller.
pub async fn hold_as(state: &AppState, caller: &Caller, id: &str) -> Result<Payroll, Problem> {
    let p = owned(state, caller, id).await?;
    match p.status {
        Status::Released => {
            crate::payrolls::pause(&state.db, p.id).await?;
        }
        Status::Held | Status::Paused => {}
        Status::Importing => {
            return Err(Problem::conflict(
                "payroll-not-ready",
                "The payroll is still being stored",
                "it is held once it is stored",
            ))
        }
        Status::Completed => {
            return Err(Problem::conflict(
                "payroll-completed",
                "The payroll is completed",
                "every item already reached a final state",
            ))
        }
    }
    owned(state, caller, id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/payrolls/{id}/items?state=&cursor=&limit=`.
pub async fn items(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ItemsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require("payments:read")?;
    let Query(q) = query.map_err(|e| bad_query(e.body_text()))?;
    let p = owned(&state, &caller, &id).await?;
    let mut errors = Vec::new();
    let st = q.state.as_deref().and_then(|s| {
        let parsed = State::parse(s);
        if parsed.is_none() {
            errors.push(Problem::field("state", "unknown state"));
        }
        parsed
    });
    let limit = match q.limit.as_deref().map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => {
            errors.push(Problem::field("limit", "must be an integer from 1 to 500"));
            100
        }
    };
    let after = match q.cursor.as_deref().map(Uuid::parse_str) {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err(_)) => {
            errors.push(Problem::field("cursor", "is not a cursor this API issued"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(bad_query("see errors").with_errors(errors));
    }
    let f = Filter {
        state: st,
        payroll_id: Some(p.id),
        after,
        limit,
        ..Filter::default()
    };
    let page = payments::list(&state.db, caller.client_id, &f).await?;
    let next = (i64::try_from(page.len()).unwrap_or(0) == limit)
        .then(|| page.last().map(|p| p.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "data": page.iter().map(payment_view).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}
