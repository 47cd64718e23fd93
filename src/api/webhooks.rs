//! `/v1/webhooks`: a client's webhook endpoints (scope `admin`) and their delivery history.
//! `"format": "openimis"` makes the endpoint openIMIS's payroll callback: `url` is then the
//! openIMIS base URL and `token` the bearer token the gateway presents to it.

use super::auth::Caller;
use super::body::JsonBody;
use super::paging;
use super::payments::with_idempotency;
use super::problem::{FieldError, Problem};
use super::AppState;
use crate::notify::deliveries;
use crate::notify::endpoints::{self, Endpoint, Format};
use crate::notify::openimis;
use crate::notify::EventType;
use crate::store::idempotency;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

fn view(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "events": e.event_types,
        "format": e.format.as_str(),
        "created_at": e.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
}

struct NewEndpoint {
    url: String,
    description: Option<String>,
    events: Option<Vec<EventType>>,
    format: Format,
    token: Option<String>,
}

/// Longest openIMIS token taken (JWTs run to a few hundred bytes).
const TOKEN_MAX: usize = 4096;

#[allow(clippy::result_large_err)] // `Problem` is the API's one error type
fn validate(body: &Value) -> Result<NewEndpoint, Problem> {
    let mut errors: Vec<FieldError> = Vec::new();
    let Value::Object(obj) = body else {
        return Err(Problem::validation(vec![Problem::field(
            "",
            "the body must be a JSON object",
        )]));
    };
    for k in obj.keys() {
        if !["url", "description", "events", "format", "token"].contains(&k.as_str()) {
            errors.push(Problem::field(k, "unknown field"));
        }
    }
    let url = match obj.get("url") {
        Some(Value::String(u)) => match reqwest::Url::parse(u) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https")
                    && parsed.host().is_some()
                    && u.len() <= 2048 =>
            {
                Some(u.clone())
            }
            _ => {
                errors.push(Problem::field(
                    "url",
                    "must be an absolute http or https URL of at most 2048 characters",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(Problem::field("url", "must be a string"));
            None
        }
        None => {
            errors.push(Problem::field("url", "is required"));
            None
        }
    };
    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.chars().count() <= 140 => Some(d.clone()),
        Some(_) => {
            errors.push(Problem::field(
                "description",
                "must be a string of at most 140 characters",
            ));
            None
        }
    };
    let events = match obj.get("events") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) if !list.is_empty() => {
            let mut types = Vec::new();
            for (i, v) in list.iter().enumerate() {
                match v.as_str().and_then(EventType::parse) {
                    Some(t) => types.push(t),
                    None => errors.push(Problem::field(
                        &format!("events[{i}]"),
                        format!(
                            "must be one of {}",
                            EventType::ALL.map(|t| t.as_str()).join(", ")
                        ),
                    )),
                }
            }
            Some(types)
        }
        Some(_) => {
            errors.push(Problem::field(
                "events",
                "must be a non-empty list of event types (omit it for every event)",
            ));
            None
        }
    };
    let format = match obj.get("format") {
        None | Some(Value::Null) => Format::Standard,
        Some(Value::String(f)) if Format::parse(f).is_some() => {
            Format::parse(f).unwrap_or(Format::Standard)
        }
        Some(_) => {
            errors.push(Problem::field("format", "must be standard or openimis"));
            Format::Standard
        }
    };
    let token = match (format, obj.get("token")) {
        (Format::OpenImis, Some(Value::String(t)))
            if !t.is_empty() && t.len() <= TOKEN_MAX && t.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(t.clone())
        }
        (Format::OpenImis, None | Some(Value::Null)) => {
            errors.push(Problem::field(
                "token",
                "is required for openimis: the token of an openIMIS user with the payroll rights",
            ));
            None
        }
        (Format::OpenImis, Some(_)) => {
            errors.push(Problem::field(
                "token",
                format!("must be 1 to {TOKEN_MAX} visible ASCII characters"),
            ));
            None
        }
        (Format::Standard, None | Some(Value::Null)) => None,
        (Format::Standard, Some(_)) => {
            errors.push(Problem::field("token", "is only for the openimis format"));
            None
        }
    };
    // openIMIS takes payroll results only.
    let events = match (format, events) {
        (Format::OpenImis, None) => Some(vec![EventType::PayrollCompleted]),
        (Format::OpenImis, Some(list))
            if list.iter().any(|t| *t != EventType::PayrollCompleted) =>
        {
            errors.push(Problem::field(
                "events",
                "an openimis endpoint takes payroll.completed only (omit events)",
            ));
            None
        }
        (_, events) => events,
    };
    let url = match (format, url) {
        (Format::OpenImis, Some(base)) => Some(openimis::callback_url(&base)),
        (_, url) => url,
    };
    match url {
        Some(url) if errors.is_empty() => Ok(NewEndpoint {
            url,
            description,
            events,
            format,
            token,
        }),
        _ => Err(Problem::validation(errors)),
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Response, Problem> {
    caller.require("admin")?;
    let new = validate(&body.value)?;
    let key = body.idempotency_key.clone();
    let fp = body.fingerprint("webhooks");
    let st = state.clone();
    let client = caller.client_id;
    let k = key.clone();
    with_idempotency(&state, &caller, key.as_deref(), fp, || async move {
        let mut tx = st.db.begin().await?;
        let (e, secret) = endpoints::create(
            &mut tx,
            client,
            &new.url,
            new.description.as_deref(),
            new.events.as_deref(),
            new.format,
            new.token.as_deref(),
        )
        .await?;
        let mut v = view(&e);
        // Shown this once (and to a replay of the same request): deliveries are signed with it.
        if let Some(o) = v.as_object_mut() {
            o.insert("secret".into(), json!(secret));
        }
        let body = v.to_string();
        if let Some(k) = &k {
            idempotency::complete(&mut tx, client, k, 201, &body).await?;
        }
        tx.commit().await.map_err(crate::store::StoreError::from)?;
        tracing::info!(endpoint = %e.id, "Webhook endpoint created");
        Ok((
            StatusCode::CREATED,
            body,
            Some(format!("/v1/webhooks/{}", e.id)),
        ))
    })
    .await
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, Problem> {
    caller.require("admin")?;
    let list = endpoints::list(&state.db, caller.client_id).await?;
    Ok(Json(
        json!({ "data": list.iter().map(view).collect::<Vec<_>>() }),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require("admin")?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("webhook endpoint"))?;
    if endpoints::delete(&state.db, caller.client_id, id).await? {
        tracing::info!(endpoint = %id, "Webhook endpoint deleted");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found("webhook endpoint"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// The endpoint's deliveries, newest first, with their status and last try.
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require("admin")?;
    let q = paging::query(query)?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("webhook endpoint"))?;
    endpoints::get(&state.db, caller.client_id, id)
        .await?
        .ok_or_else(|| Problem::not_found("webhook endpoint"))?;
    let mut errors = Vec::new();
    let limit = paging::limit(q.limit.as_deref(), &mut errors);
    let before = match q.cursor.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            errors.push(Problem::field("cursor", "is not a cursor this API issued"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(paging::bad_query(errors));
    }
    let page = deliveries::list(&state.db, id, before, limit).await?;
    let next = (i64::try_from(page.len()).unwrap_or(0) == limit)
        .then(|| page.last().map(|d| d.cursor.to_string()))
        .flatten();
    Ok(Json(json!({ "data": page, "next_cursor": next })))
}
