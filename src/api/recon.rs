//! `/v1/statements`, `/v1/reconciliation/...` and `/v1/reports/reconciliation`.

use super::auth::Caller;
use super::body::JsonBody;
use super::payments::with_idempotency;
use super::problem::Problem;
use super::AppState;
use crate::recon::breaks::{self, Decision, ResolveError, RESOLUTIONS};
use crate::recon::ingest::{self, IngestError, Ingested, Upload};
use crate::recon::render::{self, CsvSection};
use crate::recon::report;
use crate::recon::run::{self, RunError, Scope, BREAK_TYPES};
use crate::store::idempotency;
use crate::store::recon::{self as rstore, BreakFilter, RunRow, StatementRow};
use crate::store::{from_micros, StoreError};
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Days, NaiveDate, Utc};
use railgate_rail::json::{has_control, has_forbidden_control};
use railgate_statements::matching::MatchConfig;
use railgate_statements::{
    CsvProfile, InputFormat, MOBILE_MONEY_PROFILE, MOCK_RAIL_PROFILE, RAIL_EXPORT_PROFILE,
};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

fn rfc(us: i64) -> String {
    from_micros(us).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Reading reconciliation results is allowed to those who run it and to those who report on it.
fn require_read(caller: &Caller) -> Result<(), Problem> {
    caller
        .require("recon:write")
        .or_else(|_| caller.require("reports:read"))
}

use super::paging::bad_query;

pub fn statement_view(s: &StatementRow) -> Value {
    json!({
        "id": s.id,
        "format": s.format,
        "rail": s.rail,
        "content_hash": s.content_hash,
        "byte_size": s.byte_size,
        "status": s.status,
        "line_count": s.line_count,
        "error_count": s.error_count,
        "errors": s.errors,
        "statements": s.headers,
        "period": {"from": s.period_from, "to": s.period_to},
        "uploaded_by": s.uploaded_by,
        "created_at": rfc(s.created_at),
    })
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    profile: Option<String>,
    format: Option<String>,
    rail: Option<String>,
}

/// What a statement upload says about itself: its format (from `?format=` or its content
/// type), its CSV profile, its rail.
pub struct UploadSpec {
    pub format: InputFormat,
    pub format_name: String,
    pub rail: Option<String>,
}

/// Reads an upload's format and rail; the problem when they cannot be used.
pub fn upload_spec(
    state: &AppState,
    profile: Option<&str>,
    declared: Option<&str>,
    content_type: &str,
    rail: Option<String>,
) -> Result<UploadSpec, Problem> {
    let declared = declared.map(str::to_ascii_lowercase);
    let is_csv = match (declared.as_deref(), content_type) {
        (Some("csv"), _) => true,
        (Some("camt"), _) => false,
        (Some(_), _) => {
            return Err(bad_query(vec![Problem::field(
                "format",
                "must be camt or csv",
            )]))
        }
        (None, "text/csv") => true,
        (None, "application/xml" | "text/xml") => false,
        (None, _) => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported content type",
                "send camt.053/054 as 'Content-Type: application/xml' or a CSV statement as \
                 'Content-Type: text/csv' with ?profile=",
            ))
        }
    };
    let (format, format_name) = if is_csv {
        let name = profile.unwrap_or("");
        match CsvProfile::builtin(name) {
            Some(p) => (InputFormat::Csv(p), format!("csv:{name}")),
            None => {
                return Err(Problem::validation(vec![Problem::field(
                    "profile",
                    format!("a CSV statement needs ?profile= naming one of: {MOCK_RAIL_PROFILE}, {RAIL_EXPORT_PROFILE}, {MOBILE_MONEY_PROFILE}"),
                )]))
            }
        }
    } else {
        (InputFormat::Camt, "camt".to_owned())
    };
    if let Some(r) = &rail {
        if !state.cfg.rails.iter().any(|c| c.id == *r) {
            return Err(Problem::validation(vec![Problem::field(
                "rail",
                "is not a configured rail",
            )]));
        }
    }
    Ok(UploadSpec {
        format,
        format_name,
        rail,
    })
}

/// What an upload stored: a new statement, or the earlier one the same bytes (or the same
/// bank statement) already made, with what gave it away.
pub enum Uploaded {
    New(StatementRow),
    Duplicate(StatementRow, &'static str),
}

/// Streams `body` into a statement of the caller's.
pub async fn upload_as<S, E>(
    state: &AppState,
    caller: &Caller,
    spec: UploadSpec,
    body: S,
) -> Result<Uploaded, Problem>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let uploaded_by = rstore::key_owner(&state.db, caller.key_id).await?;
    let up = Upload {
        client_id: caller.client_id,
        uploaded_by,
        format: spec.format,
        format_name: spec.format_name,
        rail: spec.rail,
    };
    match ingest::ingest(&state.db, up, body).await {
        Ok(Ingested::New(s)) => {
            metrics::counter!("railgate_statements_loaded_total").increment(1);
            Ok(Uploaded::New(s))
        }
        Ok(Ingested::Duplicate { earlier, by }) => Ok(Uploaded::Duplicate(earlier, by)),
        Err(IngestError::Unreadable(e)) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-statement",
            "The statement cannot be read",
            e.to_string(),
        )
        .with_errors(vec![Problem::field(&e.field, e.kind.to_string())])),
        Err(IngestError::Empty) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-statement",
            "The statement cannot be read",
            "the file holds no statement",
        )),
        Err(IngestError::TooLarge) => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The statement is too large",
            format!(
                "a statement may be at most {} bytes",
                ingest::MAX_STATEMENT_BYTES
            ),
        )),
        Err(IngestError::Body(e)) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "interrupted",
            "The upload was interrupted",
            e,
        )),
        Err(IngestError::Store(e)) => Err(e.into()),
        Err(IngestError::Io(e)) => {
            tracing::error!(error = %e, "Statement could not be spooled");
            Err(Problem::internal())
        }
    }
}

/// `POST /v1/statements`: the body is streamed to a temporary file and parsed from there, so
/// the size of a statement is bounded by disk, not memory. Re-uploading is safe: the same
/// bytes (or the same bank statement re-delivered) answer 200 with the earlier statement.
pub async fn upload(
    AxState(state): AxState<AppState>,
    caller: Caller,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<Response, Problem> {
    caller.require("recon:write")?;
    let Query(q) = query.map_err(|e| bad_query(vec![Problem::field("query", e.body_text())]))?;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let spec = upload_spec(
        &state,
        q.profile.as_deref(),
        q.format.as_deref(),
        &ct,
        q.rail,
    )?;
    let body = req.into_body().into_data_stream();
    match upload_as(&state, &caller, spec, body).await? {
        Uploaded::New(s) => {
            let mut resp = (StatusCode::CREATED, Json(statement_view(&s))).into_response();
            if let Ok(v) = header::HeaderValue::from_str(&format!("/v1/statements/{}", s.id)) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Ok(resp)
        }
        Uploaded::Duplicate(earlier, by) => {
            let mut v = statement_view(&earlier);
            if let Some(o) = v.as_object_mut() {
                o.insert("duplicate".into(), json!(true));
                o.insert("recognised_by".into(), json!(by));
            }
            Ok((StatusCode::OK, Json(v)).into_response())
        }
    }
}

pub async fn get_statement(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    require_read(&caller)?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("statement"))?;
    let s = rstore::statement(&state.db, caller.client_id, id)
        .await?
        .ok_or_else(|| Problem::not_found("statement"))?;
    Ok(Json(statement_view(&s)))
}

pub fn run_view(r: &RunRow) -> Value {
    json!({
        "id": r.id,
        "statement_id": r.statement_id,
        "from": r.date_from,
        "to": r.date_to,
        "dry_run": r.dry_run,
        "rules": r.rules,
        "status": r.status,
        "created_by": r.created_by,
        "created_at": rfc(r.created_at),
        "finished_at": r.finished_at.map(rfc),
        "report": r.report,
    })
}

fn parse_date(
    v: &Value,
    field: &str,
    errors: &mut Vec<super::problem::FieldError>,
) -> Option<NaiveDate> {
    match v.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.parse::<NaiveDate>() {
            Ok(d) => Some(d),
            Err(_) => {
                errors.push(Problem::field(field, "must be a date (YYYY-MM-DD)"));
                None
            }
        },
        Some(_) => {
            errors.push(Problem::field(field, "must be a date (YYYY-MM-DD)"));
            None
        }
    }
}

/// Reads a run request: a statement, or a period; the rules on top of the defaults.
pub fn scope_from(v: &Value) -> Result<Scope, Problem> {
    let mut errors = Vec::new();
    if !v.is_object() {
        return Err(Problem::validation(vec![Problem::field(
            "",
            "must be a JSON object",
        )]));
    }
    if let Some(obj) = v.as_object() {
        for k in obj.keys() {
            if !["statement_id", "from", "to", "dry_run", "rules"].contains(&k.as_str()) {
                errors.push(Problem::field(k, "unknown field"));
            }
        }
    }
    let statement_id = match v.get("statement_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match Uuid::parse_str(s) {
            Ok(u) => Some(u),
            Err(_) => {
                errors.push(Problem::field("statement_id", "must be a statement id"));
                None
            }
        },
        Some(_) => {
            errors.push(Problem::field("statement_id", "must be a statement id"));
            None
        }
    };
    let from = parse_date(v, "from", &mut errors);
    let to = parse_date(v, "to", &mut errors);
    if statement_id.is_none() && from.is_none() && errors.is_empty() {
        errors.push(Problem::field(
            "statement_id",
            "give a statement_id, or a period with from (and to)",
        ));
    }
    if statement_id.is_some() && (from.is_some() || to.is_some()) {
        errors.push(Problem::field(
            "from",
            "give either a statement_id or a period, not both",
        ));
    }
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            errors.push(Problem::field("to", "must not be before from"));
        } else if t.signed_duration_since(f).num_days() > 366 {
            errors.push(Problem::field("to", "a run covers at most 366 days"));
        }
    }
    let dry_run = match v.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(Problem::field("dry_run", "must be true or false"));
            false
        }
    };
    let mut rules_json = serde_json::to_value(MatchConfig::default()).unwrap_or(Value::Null);
    let mut missing_given = false;
    match v.get("rules") {
        None | Some(Value::Null) => {}
        Some(Value::Object(given)) => {
            missing_given = given.contains_key("missing_between");
            if let Some(base) = rules_json.as_object_mut() {
                for (k, val) in given {
                    if !base.contains_key(k) {
                        errors.push(Problem::field(
                            &format!("rules.{k}"),
                            "is not a rule setting",
                        ));
                    }
                    base.insert(k.clone(), val.clone());
                }
            }
        }
        Some(_) => errors.push(Problem::field("rules", "must be an object")),
    }
    let rules: Option<MatchConfig> = match serde_json::from_value(rules_json) {
        Ok(r) => Some(r),
        Err(e) => {
            if errors.is_empty() {
                errors.push(Problem::field("rules", e.to_string()));
            }
            None
        }
    };
    if let Some(r) = &rules {
        if !(0..=366).contains(&r.date_window_days) {
            errors.push(Problem::field(
                "rules.date_window_days",
                "must be from 0 to 366",
            ));
        }
        if r.amount_tolerance_minor < 0 {
            errors.push(Problem::field(
                "rules.amount_tolerance_minor",
                "must not be negative",
            ));
        }
        if r.max_group_size > 100_000 {
            errors.push(Problem::field(
                "rules.max_group_size",
                "must be at most 100000",
            ));
        }
    }
    match (errors.is_empty(), rules) {
        (true, Some(rules)) => Ok(Scope {
            statement_id,
            from,
            to,
            dry_run,
            rules,
            missing_given,
        }),
        _ => Err(Problem::validation(errors)),
    }
}

/// Completes the idempotency key (if any) with the response the work produced.
async fn remember(
    state: &AppState,
    caller: &Caller,
    key: Option<&str>,
    status: StatusCode,
    body: &str,
) -> Result<(), Problem> {
    if let Some(k) = key {
        let mut conn = state.db.pool().acquire().await.map_err(StoreError::from)?;
        idempotency::complete(&mut conn, caller.client_id, k, status.as_u16(), body).await?;
    }
    Ok(())
}

/// Runs a reconciliation as `caller`.
pub async fn run_as(state: &AppState, caller: &Caller, scope: Scope) -> Result<RunRow, Problem> {
    let by = rstore::key_owner(&state.db, caller.key_id).await?;
    let run = run::execute(&state.db, caller.client_id, &by, scope)
        .await
        .map_err(|e| match e {
            RunError::NoStatement => Problem::validation(vec![Problem::field(
                "statement_id",
                "no loaded statement of yours has this id",
            )]),
            RunError::Store(e) => e.into(),
        })?;
    metrics::counter!("railgate_recon_runs_total").increment(1);
    Ok(run)
}

pub async fn create_run(
    AxState(state): AxState<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Response, Problem> {
    caller.require("recon:write")?;
    let scope = scope_from(&body.value)?;
    let key = body.idempotency_key.clone();
    let fp = body.fingerprint("reconciliation-run");
    let st = state.clone();
    let c = caller.clone();
    let k = key.clone();
    with_idempotency(&state, &caller, key.as_deref(), fp, || async move {
        let run = run_as(&st, &c, scope).await?;
        let body = run_view(&run).to_string();
        remember(&st, &c, k.as_deref(), StatusCode::CREATED, &body).await?;
        Ok((
            StatusCode::CREATED,
            body,
            Some(format!("/v1/reconciliation/runs/{}", run.id)),
        ))
    })
    .await
}

pub async fn get_run(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    require_read(&caller)?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("run"))?;
    let r = rstore::run(&state.db, Some(caller.client_id), id)
        .await?
        .ok_or_else(|| Problem::not_found("run"))?;
    Ok(Json(run_view(&r)))
}

#[derive(Debug, Deserialize)]
pub struct BreakQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

pub async fn list_breaks(
    AxState(state): AxState<AppState>,
    caller: Caller,
    query: Result<Query<BreakQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    require_read(&caller)?;
    let Query(q) = query.map_err(|e| bad_query(vec![Problem::field("query", e.body_text())]))?;
    let mut errors = Vec::new();
    if let Some(s) = &q.status {
        if s != "open" && s != "resolved" {
            errors.push(Problem::field("status", "must be open or resolved"));
        }
    }
    if let Some(k) = &q.kind {
        if !BREAK_TYPES.contains(&k.as_str()) {
            errors.push(Problem::field(
                "type",
                format!("must be one of: {}", BREAK_TYPES.join(", ")),
            ));
        }
    }
    let limit = match q.limit.as_deref().map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            errors.push(Problem::field("limit", "must be an integer from 1 to 1000"));
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
        return Err(bad_query(errors));
    }
    let page = rstore::list_breaks(
        &state.db,
        Some(caller.client_id),
        &BreakFilter {
            status: q.status,
            kind: q.kind,
            after,
            limit,
        },
    )
    .await?;
    let next = if i64::try_from(page.len()).unwrap_or(0) == limit {
        page.last().map(|b| b.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({
        "data": page.iter().map(crate::recon::break_view).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

pub struct ResolveInput {
    pub resolution: String,
    pub reason: String,
    pub owner: Option<String>,
}

pub fn resolve_input(v: &Value) -> Result<ResolveInput, Problem> {
    let mut errors = Vec::new();
    // `free`: a free text, where tab and line breaks are kept; other control characters are
    // refused everywhere (the HTML form reaches this too, not only the checked JSON parser).
    let text = |name: &str, max: usize, free: bool, errors: &mut Vec<_>| match v.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if (free && has_forbidden_control(s)) || (!free && has_control(s)) =>
        {
            errors.push(Problem::field(name, "must not contain control characters"));
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => {
            Some(s.trim().to_owned())
        }
        Some(_) => {
            errors.push(Problem::field(
                name,
                format!("must be text of 1 to {max} characters"),
            ));
            None
        }
    };
    let resolution = text("resolution", 64, false, &mut errors);
    let reason = text("reason", 2000, true, &mut errors);
    // An empty owner is no owner, as the form sends it.
    let owner = match v.get("owner") {
        Some(Value::String(s)) if s.trim().is_empty() => None,
        _ => text("owner", 100, false, &mut errors),
    };
    if v.get("resolution").is_none() {
        errors.push(Problem::field("resolution", "is required"));
    }
    if v.get("reason").is_none() {
        errors.push(Problem::field("reason", "is required: say why"));
    }
    if let Some(r) = &resolution {
        if !RESOLUTIONS.iter().any(|(n, _)| n == r) {
            errors.push(Problem::field(
                "resolution",
                format!(
                    "must be one of: {}",
                    RESOLUTIONS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    match (resolution, reason) {
        (Some(resolution), Some(reason)) if errors.is_empty() => Ok(ResolveInput {
            resolution,
            reason,
            owner,
        }),
        _ => Err(Problem::validation(errors)),
    }
}

/// Resolves a break as `caller`; the problem for each way it can be refused.
pub async fn resolve_as(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    input: &ResolveInput,
) -> Result<Value, Problem> {
    let by = rstore::key_owner(&state.db, caller.key_id).await?;
    let b = breaks::resolve(
        &state.db,
        Some(caller.client_id),
        id,
        &Decision {
            resolution: &input.resolution,
            reason: &input.reason,
            owner: input.owner.as_deref(),
            resolved_by: &by,
        },
    )
    .await
    .map_err(|e| match e {
        ResolveError::NotFound => Problem::not_found("break"),
        ResolveError::AlreadyResolved(b) => Problem::conflict(
            "already-resolved",
            "The break is already resolved",
            format!(
                "resolved by {} as {}",
                b.resolved_by.as_deref().unwrap_or("?"),
                b.resolution.as_deref().unwrap_or("?")
            ),
        )
        .with("break", crate::recon::break_view(&b)),
        ResolveError::NotAllowed { kind, allowed } => Problem::validation(vec![Problem::field(
            "resolution",
            format!("a {kind} break may be resolved as: {}", allowed.join(", ")),
        )]),
        ResolveError::Store(e) => e.into(),
    })?;
    Ok(crate::recon::break_view(&b))
}

pub async fn resolve_break(
    AxState(state): AxState<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response, Problem> {
    caller.require("recon:write")?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("break"))?;
    let input = resolve_input(&body.value)?;
    let key = body.idempotency_key.clone();
    let fp = body.fingerprint(&format!("resolve:{id}"));
    let st = state.clone();
    let c = caller.clone();
    let k = key.clone();
    with_idempotency(&state, &caller, key.as_deref(), fp, || async move {
        let v = resolve_as(&st, &c, id, &input).await?;
        let body = v.to_string();
        remember(&st, &c, k.as_deref(), StatusCode::OK, &body).await?;
        Ok((StatusCode::OK, body, None))
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub rail: Option<String>,
    pub programme: Option<String>,
    pub format: Option<String>,
    pub section: Option<String>,
}

/// The output a report request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Csv(CsvSection),
    Html,
}

/// Validates a report query into the report's scope and format (defaults: the last 7 days,
/// JSON, the daily table for CSV).
pub fn report_query(
    q: &ReportQuery,
    client_id: Option<Uuid>,
) -> Result<(report::Query, ReportFormat), Problem> {
    let mut errors = Vec::new();
    let mut date = |name: &str, v: &Option<String>| match v.as_deref().map(str::parse::<NaiveDate>)
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            errors.push(Problem::field(name, "must be a date (YYYY-MM-DD)"));
            None
        }
    };
    let to = date("to", &q.to);
    let from = date("from", &q.from);
    let to = to.unwrap_or_else(|| Utc::now().date_naive());
    let from = from.unwrap_or_else(|| to.checked_sub_days(Days::new(6)).unwrap_or(to));
    if from > to {
        errors.push(Problem::field("to", "must not be before from"));
    } else if to.signed_duration_since(from).num_days() > 366 {
        errors.push(Problem::field("to", "a report covers at most 366 days"));
    }
    let section = match q.section.as_deref() {
        None => CsvSection::Daily,
        Some(s) => CsvSection::parse(s).unwrap_or_else(|| {
            errors.push(Problem::field(
                "section",
                "must be daily, breaks or unknown",
            ));
            CsvSection::Daily
        }),
    };
    let format = match q.format.as_deref() {
        None | Some("json") => ReportFormat::Json,
        Some("csv") => ReportFormat::Csv(section),
        Some("html") => ReportFormat::Html,
        Some(_) => {
            errors.push(Problem::field("format", "must be json, csv or html"));
            ReportFormat::Json
        }
    };
    if !errors.is_empty() {
        return Err(bad_query(errors));
    }
    Ok((
        report::Query {
            client_id,
            from,
            to,
            rail: q.rail.clone().filter(|r| !r.is_empty()),
            programme: q.programme.clone().filter(|p| !p.is_empty()),
        },
        format,
    ))
}

/// The report in the asked format, as a response.
pub async fn report_response(
    state: &AppState,
    rq: &report::Query,
    format: ReportFormat,
) -> Result<Response, Problem> {
    let r = report::build(&state.db, rq).await?;
    let name = format!("reconciliation-{}-{}", rq.from, rq.to);
    Ok(match format {
        ReportFormat::Json => Json(render::json(&r)).into_response(),
        ReportFormat::Html => {
            let page = render::html(&r).map_err(|e| {
                tracing::error!(error = %e, "Report page could not be written");
                Problem::internal()
            })?;
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
        }
        ReportFormat::Csv(section) => {
            let body = render::csv(&r, section).map_err(|e| {
                tracing::error!(error = %e, "Report CSV could not be written");
                Problem::internal()
            })?;
            let suffix = match section {
                CsvSection::Daily => "",
                CsvSection::Breaks => "-breaks",
                CsvSection::Unknown => "-unknown",
            };
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}{suffix}.csv\""),
                    ),
                ],
                body,
            )
                .into_response()
        }
    })
}

pub async fn reconciliation_report(
    AxState(state): AxState<AppState>,
    caller: Caller,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require("reports:read")?;
    let Query(q) = query.map_err(|e| bad_query(vec![Problem::field("query", e.body_text())]))?;
    let (rq, format) = report_query(&q, Some(caller.client_id))?;
    report_response(&state, &rq, format).await
}
