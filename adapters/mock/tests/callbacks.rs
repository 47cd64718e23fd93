//! Callback authentication: forged, tampered, unsigned and stale callbacks are refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::http::{HeaderMap, HeaderValue, Method};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use common::{adapter_for, Harness, SECRET};
use railgate_mock::{sign, MockRailAdapter, EVENT_ID_HEADER, SIGNATURE_HEADER};
use railgate_rail::{AttemptRef, CallbackError, CallbackOutcome, InboundRequest, RailAdapter};
use std::time::Duration;
use uuid::Uuid;

fn adapter() -> MockRailAdapter {
    adapter_for(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        Duration::from_secs(1),
    )
}

fn body(event_id: Uuid, request_id: Uuid) -> Vec<u8> {
    serde_json::json!({
        "event_id": event_id,
        "request_id": request_id,
        "transaction_id": "MR0123456789ABCDEF",
        "status": "SUCCESS",
        "code": null,
        "receipt": "R0123456789",
        "amount": "1500.00",
        "currency": "TZS",
        "occurred_at": "2026-03-02T09:15:27Z"
    })
    .to_string()
    .into_bytes()
}

fn request(body: Vec<u8>, signature: Option<String>, received_at: DateTime<Utc>) -> InboundRequest {
    let mut headers = HeaderMap::new();
    if let Some(signature) = signature {
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).unwrap());
    }
    InboundRequest {
        method: Method::POST,
        path: "/callback".to_owned(),
        query: None,
        headers,
        body: body.into(),
        received_at,
        peer: None,
    }
}

#[test]
fn a_well_signed_callback_is_accepted() {
    let (event_id, request_id) = (Uuid::new_v4(), Uuid::new_v4());
    let b = body(event_id, request_id);
    let now = Utc::now();
    let reply = adapter()
        .callback(&request(
            b.clone(),
            Some(sign(SECRET, now.timestamp(), &b)),
            now,
        ))
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.events.len(), 1);
    assert_eq!(reply.events[0].callback_id, event_id.to_string());
    assert_eq!(reply.events[0].attempt, AttemptRef::Attempt(request_id));
    assert!(matches!(
        reply.events[0].outcome,
        CallbackOutcome::Completed(_)
    ));
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["received"], true);
}

#[test]
fn forged_tampered_and_unsigned_callbacks_are_unauthenticated() {
    let a = adapter();
    let b = body(Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now();
    let t = now.timestamp();
    let forged = request(b.clone(), Some(sign("not-the-secret", t, &b)), now);
    assert!(matches!(
        a.callback(&forged),
        Err(CallbackError::Unauthenticated(_))
    ));
    let mut tampered_body = b.clone();
    let at = tampered_body.iter().position(|c| *c == b'5').unwrap();
    tampered_body[at] = b'9';
    let tampered = request(tampered_body, Some(sign(SECRET, t, &b)), now);
    assert!(matches!(
        a.callback(&tampered),
        Err(CallbackError::Unauthenticated(_))
    ));
    let unsigned = request(b.clone(), None, now);
    assert!(matches!(
        a.callback(&unsigned),
        Err(CallbackError::Unauthenticated(_))
    ));
    let garbage = request(b, Some("v1=deadbeef".to_owned()), now);
    assert!(matches!(
        a.callback(&garbage),
        Err(CallbackError::Unauthenticated(_))
    ));
}

#[test]
fn callbacks_outside_the_replay_window_are_stale() {
    let a = adapter();
    let b = body(Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now();
    for offset in [-301i64, 301, -86_400] {
        let t = now.timestamp() + offset;
        let r = request(b.clone(), Some(sign(SECRET, t, &b)), now);
        assert!(
            matches!(a.callback(&r), Err(CallbackError::Stale(_))),
            "{offset}"
        );
    }
    for offset in [-299i64, 0, 299] {
        let t = now.timestamp() + offset;
        let r = request(b.clone(), Some(sign(SECRET, t, &b)), now);
        assert!(a.callback(&r).is_ok(), "{offset}");
    }
    // A replay of a delivery once valid is stale when it arrives late.
    let t = now.timestamp();
    let late = request(
        b.clone(),
        Some(sign(SECRET, t, &b)),
        now + ChronoDuration::seconds(600),
    );
    assert!(matches!(a.callback(&late), Err(CallbackError::Stale(_))));
}

#[test]
fn other_routes_and_methods_are_unknown() {
    let a = adapter();
    let b = body(Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now();
    let mut r = request(b.clone(), Some(sign(SECRET, now.timestamp(), &b)), now);
    r.path = "/callbacks".to_owned();
    assert_eq!(a.callback(&r), Err(CallbackError::UnknownRoute));
    r.path = "/callback".to_owned();
    r.method = Method::PUT;
    assert_eq!(a.callback(&r), Err(CallbackError::UnknownRoute));
}

#[test]
fn signed_nonsense_is_malformed() {
    let a = adapter();
    let now = Utc::now();
    let b = b"{\"status\":\"SUCCESS\"}".to_vec();
    let r = request(b.clone(), Some(sign(SECRET, now.timestamp(), &b)), now);
    assert!(matches!(a.callback(&r), Err(CallbackError::Malformed(_))));
    // The event id header must name the body's event.
    let b = body(Uuid::new_v4(), Uuid::new_v4());
    let mut r = request(b.clone(), Some(sign(SECRET, now.timestamp(), &b)), now);
    r.headers.insert(
        EVENT_ID_HEADER,
        HeaderValue::from_str(&Uuid::new_v4().to_string()).unwrap(),
    );
    assert!(matches!(a.callback(&r), Err(CallbackError::Malformed(_))));
}

#[tokio::test]
async fn a_forged_callback_over_http_is_refused_by_the_receiver() {
    let h = Harness::start().await;
    let b = body(Uuid::new_v4(), Uuid::new_v4());
    let t = Utc::now().timestamp();
    let response = reqwest::Client::new()
        .post(format!("{}/rails/mock/callback", h.receiver_url))
        .header(SIGNATURE_HEADER, sign("guessed-secret", t, &b))
        .body(b.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let genuine = reqwest::Client::new()
        .post(format!("{}/rails/mock/callback", h.receiver_url))
        .header(SIGNATURE_HEADER, sign(SECRET, t, &b))
        .body(b)
        .send()
        .await
        .unwrap();
    assert_eq!(genuine.status(), 200);
    assert_eq!(h.refusals().len(), 1);
    assert_eq!(h.log.lock().unwrap().events.len(), 1);
}
