//! Per-route request counts and latencies for `/metrics`.
//!
//! Labelled by the route's template (`/v1/payments/{id}`), never the path as sent: a path can
//! carry a payment id, a rail's secret segment or a party id, and every distinct label value
//! is a series Prometheus keeps. Requests that match no route are not counted here (they are
//! answered 404 by the fallback, which an attacker can call with any path).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub async fn record(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    if let Some(route) = route {
        let status = response.status().as_u16().to_string();
        metrics::counter!(
            "railgate_http_requests_total",
            "method" => method.clone(),
            "route" => route.clone(),
            "status" => status
        )
        .increment(1);
        metrics::histogram!(
            "railgate_http_request_duration_seconds",
            "method" => method,
            "route" => route
        )
        .record(started.elapsed().as_secs_f64());
    }
    response
}
