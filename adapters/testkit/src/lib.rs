//! Test harness shared by the adapter crates: a callback receiver on port 0 that hands every request to the adapter,
//! and a minimal stand-in for the gateway's dispatcher that drives one attempt to its end.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod pki;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use axum::Router;
use railgate_rail::{
    Attempt, AttemptRef, CallbackError, CallbackEvent, CallbackOutcome, Currency, Direction,
    Failure, Money, Party, PartyIdType, RailAdapter, RailError, RailStatus, Settled, Submitted,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

/// What the receiver saw.
#[derive(Default)]
pub struct Seen {
    pub events: Vec<CallbackEvent>,
    pub refused: Vec<CallbackError>,
    pub paths: Vec<String>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    listener: Option<TcpListener>,
}

impl Receiver {
    pub async fn bind() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            listener: Some(listener),
        }
    }

    pub fn base(&self, rail_id: &str) -> String {
        format!("http://{}/rails/{rail_id}", self.addr)
    }

    /// Starts serving `/rails/{rail}/...` into `adapter.callback()`.
    pub fn serve(&mut self, adapter: Arc<dyn RailAdapter>) {
        let listener = self.listener.take().unwrap();
        let seen = self.seen.clone();
        let prefix = format!("/rails/{}", adapter.id());
        let app = Router::new().fallback(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| {
                let adapter = adapter.clone();
                let seen = seen.clone();
                let prefix = prefix.clone();
                async move { handle(adapter, seen, prefix, peer, req).await }
            },
        );
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
    }

    pub fn events_for(&self, attempt: Uuid) -> Vec<CallbackEvent> {
        self.seen
            .lock()
            .unwrap()
            .events
            .iter()
            .filter(|e| e.attempt == AttemptRef::Attempt(attempt))
            .cloned()
            .collect()
    }

    pub fn refused(&self) -> usize {
        self.seen.lock().unwrap().refused.len()
    }
}

async fn handle(
    adapter: Arc<dyn RailAdapter>,
    seen: Arc<Mutex<Seen>>,
    prefix: String,
    peer: SocketAddr,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let Some(path) = parts.uri.path().strip_prefix(&prefix) else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    let inbound = railgate_rail::InboundRequest {
        method: parts.method.clone(),
        path: path.to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body,
        received_at: chrono::Utc::now(),
        peer: Some(peer),
    };
    let mut s = seen.lock().unwrap();
    s.paths.push(path.to_owned());
    match adapter.callback(&inbound) {
        Ok(reply) => {
            s.events.extend(reply.events);
            let status = axum::http::StatusCode::from_u16(reply.status).unwrap();
            (status, [("Content-Type", reply.content_type)], reply.body).into_response()
        }
        Err(e) => {
            let status = match e {
                CallbackError::Unauthenticated(_) => 401,
                CallbackError::UnknownRoute => 404,
                CallbackError::Stale(_) | CallbackError::Malformed(_) => 400,
            };
            s.refused.push(e);
            axum::http::StatusCode::from_u16(status)
                .unwrap()
                .into_response()
        }
    }
}

pub fn attempt(
    direction: Direction,
    id_type: PartyIdType,
    identifier: &str,
    amount: &str,
    currency: Currency,
) -> Attempt {
    Attempt {
        attempt_id: Uuid::new_v4(),
        payment_id: Uuid::new_v4(),
        direction,
        amount: Money::parse(amount, currency).unwrap(),
        party: Party::new(id_type, identifier, Some("Asha Juma")).unwrap(),
        reference: format!("REF-{}", &Uuid::new_v4().simple().to_string()[..10]),
        narrative: Some("Benefit payment".into()),
        rail_reference: None,
        rail_state: None,
        request: None,
        created_at: chrono::Utc::now(),
    }
}

/// Where the stand-in gateway left an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    Completed(Settled),
    Failed(Failure),
    Pending,
    Unknown,
}

impl End {
    fn is_final(&self) -> bool {
        matches!(self, End::Completed(_) | End::Failed(_))
    }
}

#[derive(Debug, Clone)]
pub struct Run {
    pub attempt: Attempt,
    pub end: End,
    /// What the first successful submission said (`None` when it never got an answer).
    pub submitted: Option<Submitted>,
    pub retryable_errors: usize,
    pub submit_unknown: bool,
    /// How the final state was reached.
    pub by_inquiry: bool,
    pub conflict: bool,
    /// Final callbacks applied after the attempt was already final with the same outcome.
    pub duplicates: usize,
    pub inquiries: usize,
}

/// When the stand-in gateway may stop watching.
pub struct Until {
    /// Also wait until this many callback events arrived for the attempt.
    pub events: usize,
    pub conflict: bool,
    pub refused: usize,
    /// Give up after this long (an attempt still not final stays pending/unknown).
    pub limit: Duration,
}

impl Default for Until {
    fn default() -> Self {
        Until {
            events: 0,
            conflict: false,
            refused: 0,
            limit: Duration::from_secs(20),
        }
    }
}

/// Drives one attempt like the gateway would: resend the same attempt on a retryable error,
/// apply callbacks, inquire when nothing arrives, never resend after an unknown outcome.
pub async fn drive(
    adapter: &dyn RailAdapter,
    receiver: &Receiver,
    attempt: Attempt,
    until: Until,
) -> Run {
    let mut run = Run {
        attempt,
        end: End::Pending,
        submitted: None,
        retryable_errors: 0,
        submit_unknown: false,
        by_inquiry: false,
        conflict: false,
        duplicates: 0,
        inquiries: 0,
    };
    for _ in 0..6 {
        match adapter.submit(&run.attempt).await {
            Ok(s) => {
                match &s {
                    Submitted::Accepted { rail_reference } => {
                        run.attempt.rail_reference = rail_reference.clone();
                    }
                    Submitted::Completed(settled) => run.end = End::Completed(settled.clone()),
                    Submitted::Rejected(f) => run.end = End::Failed(f.clone()),
                    Submitted::Step { .. } => panic!("no multi-step rail here"),
                }
                run.submitted = Some(s);
                break;
            }
            Err(RailError::Retryable(_)) => {
                run.retryable_errors += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(RailError::Unknown(_)) => {
                run.submit_unknown = true;
                run.end = End::Unknown;
                break;
            }
            Err(RailError::Permanent(m)) => panic!("permanent error: {m}"),
        }
    }
    let start = Instant::now();
    let mut applied = 0;
    let mut last_inquiry = Instant::now();
    loop {
        let events = receiver.events_for(run.attempt.attempt_id);
        for ev in events.iter().skip(applied) {
            apply(&mut run, &ev.outcome, false);
        }
        applied = events.len();
        let done = run.end.is_final()
            && applied >= until.events
            && (!until.conflict || run.conflict)
            && receiver.refused() >= until.refused;
        if done || start.elapsed() > until.limit {
            break;
        }
        if !run.end.is_final() && last_inquiry.elapsed() > Duration::from_millis(600) {
            last_inquiry = Instant::now();
            run.inquiries += 1;
            match adapter.inquire(&run.attempt).await {
                Ok(RailStatus::Completed(s)) => {
                    apply(&mut run, &CallbackOutcome::Completed(s), true)
                }
                Ok(RailStatus::Failed(f)) => apply(&mut run, &CallbackOutcome::Failed(f), true),
                Ok(RailStatus::Pending) | Ok(RailStatus::NotFound) | Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    run
}

fn apply(run: &mut Run, outcome: &CallbackOutcome, by_inquiry: bool) {
    match (&run.end, outcome) {
        (End::Completed(_), CallbackOutcome::Completed(_))
        | (End::Failed(_), CallbackOutcome::Failed(_)) => run.duplicates += 1,
        (End::Completed(_), CallbackOutcome::Failed(_))
        | (End::Failed(_), CallbackOutcome::Completed(_)) => run.conflict = true,
        (_, CallbackOutcome::Completed(s)) => {
            run.end = End::Completed(s.clone());
            run.by_inquiry = by_inquiry;
        }
        (_, CallbackOutcome::Failed(f)) => {
            run.end = End::Failed(f.clone());
            run.by_inquiry = by_inquiry;
        }
        (_, CallbackOutcome::Pending)
        | (_, CallbackOutcome::Linked { .. })
        | (_, CallbackOutcome::Step { .. })
        | (_, CallbackOutcome::Received { .. }) => {}
    }
}

/// `count` paid for an attempt according to the mock's control endpoint.
pub async fn paid(control_url: &str, attempt_id: Uuid) -> u32 {
    let rows: Vec<serde_json::Value> = reqwest::get(format!("{control_url}/payouts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rows.iter()
        .filter(|r| r["attempt_id"] == attempt_id.to_string())
        .map(|r| u32::try_from(r["count"].as_u64().unwrap()).unwrap())
        .sum()
}

pub async fn set_faults(control_url: &str, faults: serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{control_url}/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

/// Waits (bounded) until `cond` holds.
pub async fn eventually<F: FnMut() -> bool>(mut cond: F, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    cond()
}
