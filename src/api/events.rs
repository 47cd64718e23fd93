//! `GET /v1/events`: the client's event feed, oldest first, from a cursor.

use super::auth::Caller;
use super::paging;
use super::problem::Problem;
use super::AppState;
use crate::notify::events::{self, Cursor};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require("payments:read")?;
    let q = paging::query(query)?;
    let mut errors = Vec::new();
    let limit = paging::limit(q.limit.as_deref(), &mut errors);
    let after = match q.after.as_deref().map(Cursor::parse) {
        None => Cursor::default(),
        Some(Some(c)) => c,
        Some(None) => {
            errors.push(Problem::field("after", "is not a cursor this API issued"));
            Cursor::default()
        }
    };
    if !errors.is_empty() {
        return Err(paging::bad_query(errors));
    }
    let page = events::page(&state.db, caller.client_id, after, limit).await?;
    // The cursor to ask from next time: where this page ended, or where the caller was.
    let next = page.last().map_or(after, |e| e.cursor);
    Ok(Json(json!({
        "data": page.iter().map(|e| {
            let mut v = e.view();
            if let Some(o) = v.as_object_mut() {
                o.insert("cursor".into(), json!(e.cursor.encode()));
            }
            v
        }).collect::<Vec<_>>(),
        "next_cursor": next.encode(),
    })))
}
