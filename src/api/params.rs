//! Path and query parameters, checked once for every route before its handler runs (and so
//! before anything is stored, the callbacks inbox included):
//!
//! - a control character (Unicode Cc, NUL included) in a decoded path parameter, query
//!   parameter name or value is refused with a problem naming the parameter;
//! - an empty query value (`?cursor=`, `?rail=`) reads as an absent parameter, as HTML
//!   forms send them. Rail callbacks keep their query as sent: it may be signed.
//!
//! A middleware rather than a wrapper extractor, so that no handler can forget it.

use super::problem::Problem;
use axum::extract::RawPathParams;
use axum::extract::{FromRequestParts, Query, Request};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use railgate_rail::json::has_control;

fn refused(status: StatusCode, slug: &'static str, title: &'static str, name: &str) -> Response {
    Problem::new(
        status,
        slug,
        title,
        format!("{name}: must not contain control characters"),
    )
    .with_errors(vec![Problem::field(
        name,
        "must not contain control characters",
    )])
    .into_response()
}

pub async fn check(req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    // Undecodable parameters are left to the route's own extractor, which names them.
    if let Ok(params) = RawPathParams::from_request_parts(&mut parts, &()).await {
        for (name, value) in &params {
            // 404: no resource is named with a control character.
            if has_control(value) {
                return refused(StatusCode::NOT_FOUND, "not-found", "Not found", name);
            }
        }
    }
    if let Some(raw) = parts.uri.query() {
        if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) {
            for (name, value) in &pairs {
                if has_control(name) || has_control(value) {
                    let shown = if has_control(name) { "query" } else { name };
                    return refused(
                        StatusCode::BAD_REQUEST,
                        "bad-query",
                        "Invalid query parameters",
                        shown,
                    );
                }
            }
        }
        if !parts.uri.path().starts_with("/rails/") {
            let kept: Vec<&str> = raw
                .split('&')
                .filter(|p| p.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
                .collect();
            if kept.len() != raw.split('&').count() {
                if let Some(uri) = with_query(&parts.uri, &kept.join("&")) {
                    parts.uri = uri;
                }
            }
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

fn with_query(uri: &Uri, query: &str) -> Option<Uri> {
    let pq = if query.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{query}", uri.path())
    };
    let mut p = uri.clone().into_parts();
    p.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(p).ok()
}
