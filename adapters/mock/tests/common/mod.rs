//! The test harness: the mock rail on port 0, its adapter, and a callback receiver on port 0
//! that hands every callback to the adapter, as the gateway does, and records the outcome.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use chrono::Utc;
use railgate_mock::{MockAdapterConfig, MockRail, MockRailAdapter, MockRailConfig};
use railgate_rail::{
    Attempt, AttemptRef, CallbackError, CallbackEvent, CallbackOutcome, Currency, Direction,
    InboundRequest, Money, Party, PartyIdType, RailAdapter,
};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use uuid::Uuid;

pub const SECRET: &str = "test-callback-secret";
pub const RAIL_ID: &str = "mock";

/// Short delays so the suite runs quickly; the behaviour is the same as with the defaults.
pub fn rail_config() -> MockRailConfig {
    MockRailConfig {
        callback_delay_ms: 20,
        pending_delay_ms: 300,
        conflict_delay_ms: 200,
        hang_ms: 30_000,
        ..MockRailConfig::local(SECRET)
    }
}

#[derive(Debug, Default)]
pub struct Log {
    pub events: Vec<CallbackEvent>,
    pub refusals: Vec<CallbackError>,
}

pub struct Harness {
    pub rail: MockRail,
    pub adapter: Arc<MockRailAdapter>,
    pub log: Arc<Mutex<Log>>,
    pub receiver_url: String,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(rail_config(), Duration::from_secs(5)).await
    }

    pub async fn with(config: MockRailConfig, request_timeout: Duration) -> Harness {
        let rail = railgate_mock::spawn(config).await.unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        // The receiver needs the adapter and the adapter needs the receiver's URL: bind first.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver_url = format!("http://{}", listener.local_addr().unwrap());
        let adapter = Arc::new(adapter_for(
            &rail.base_url(),
            &receiver_url,
            request_timeout,
        ));
        let app = receiver(Arc::clone(&adapter), Arc::clone(&log));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Harness {
            rail,
            adapter,
            log,
            receiver_url,
        }
    }

    /// The events the receiver accepted for one attempt, in arrival order.
    pub fn events_for(&self, attempt: &Attempt) -> Vec<CallbackEvent> {
        let log = self.log.lock().unwrap();
        log.events
            .iter()
            .filter(|e| e.attempt == AttemptRef::Attempt(attempt.attempt_id))
            .cloned()
            .collect()
    }

    pub fn refusals(&self) -> Vec<CallbackError> {
        self.log.lock().unwrap().refusals.clone()
    }

    /// Waits until the attempt has at least `n` accepted callback events.
    pub async fn wait_events(&self, attempt: &Attempt, n: usize) -> Vec<CallbackEvent> {
        let ok = wait_until(|| self.events_for(attempt).len() >= n).await;
        assert!(
            ok,
            "expected {n} callback events, got {:?}",
            self.events_for(attempt)
        );
        self.events_for(attempt)
    }

    /// Waits until the rail has finished every delivery it planned for the attempt (`n` of them).
    pub async fn wait_deliveries(&self, attempt: &Attempt, n: usize) {
        let ok = wait_until(|| {
            self.rail
                .callbacks()
                .iter()
                .filter(|c| c.request_id == attempt.attempt_id)
                .count()
                >= n
        })
        .await;
        assert!(
            ok,
            "the rail did not finish {n} deliveries: {:?}",
            self.rail.callbacks()
        );
    }
}

pub fn adapter_for(
    base_url: &str,
    receiver_url: &str,
    request_timeout: Duration,
) -> MockRailAdapter {
    MockRailAdapter::new(MockAdapterConfig {
        rail_id: RAIL_ID.to_owned(),
        base_url: base_url.to_owned(),
        callback_url: format!("{receiver_url}/rails/{RAIL_ID}/callback"),
        callback_secret: SECRET.to_owned(),
        request_timeout,
        replay_window: Duration::from_secs(300),
    })
}

/// Stands in for the gateway's `/rails/{rail}/...` routes.
fn receiver(adapter: Arc<MockRailAdapter>, log: Arc<Mutex<Log>>) -> Router {
    Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let adapter = Arc::clone(&adapter);
            let log = Arc::clone(&log);
            async move {
                let prefix = format!("/rails/{RAIL_ID}");
                let Some(path) = uri.path().strip_prefix(&prefix) else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let request = InboundRequest {
                    method,
                    path: path.to_owned(),
                    query: uri.query().map(str::to_owned),
                    headers,
                    body,
                    received_at: Utc::now(),
                    peer: None,
                };
                match adapter.callback(&request) {
                    Ok(reply) => {
                        log.lock().unwrap().events.extend(reply.events);
                        let status = StatusCode::from_u16(reply.status).unwrap();
                        (status, [("content-type", reply.content_type)], reply.body).into_response()
                    }
                    Err(refusal) => {
                        let status = match refusal {
                            CallbackError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                            CallbackError::Stale(_) | CallbackError::Malformed(_) => {
                                StatusCode::BAD_REQUEST
                            }
                            CallbackError::UnknownRoute => StatusCode::NOT_FOUND,
                        };
                        log.lock().unwrap().refusals.push(refusal);
                        status.into_response()
                    }
                }
            }
        },
    )
}

/// A disbursement of TZS 1,500.00 to an MSISDN ending in `digits`.
pub fn attempt(digits: &str) -> Attempt {
    attempt_in(digits, Direction::Disbursement)
}

pub fn attempt_in(digits: &str, direction: Direction) -> Attempt {
    let attempt_id = Uuid::new_v4();
    Attempt {
        attempt_id,
        payment_id: Uuid::new_v4(),
        direction,
        amount: Money::parse("1500.00", Currency::Tzs).unwrap(),
        party: Party::new(PartyIdType::Msisdn, &format!("2557123456{digits}"), None).unwrap(),
        reference: format!("BEN-{}", &attempt_id.simple().to_string()[..8]),
        narrative: Some("benefit".to_owned()),
        rail_reference: None,
        rail_state: None,
        request: None,
        created_at: Utc::now(),
    }
}

/// Polls a condition every 20 ms for at most 10 s.
pub async fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// Polls an async condition every 20 ms for at most 10 s.
pub async fn wait_until_async<F, Fut>(mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..500 {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition().await
}

pub fn is_completed(event: &CallbackEvent) -> bool {
    matches!(event.outcome, CallbackOutcome::Completed(_))
}
