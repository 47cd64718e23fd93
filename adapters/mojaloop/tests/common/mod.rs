//! A stand-in for the gateway, over real HTTP: a callback receiver on port 0 that hands every
//! request under `/rails/mojaloop` to `adapter.callback()`, applies the events the way the
//! gateway does (dedupe by callback id, find the attempt, `review_callback`, then apply; a
//! `Step` stores the rail state and drives `prepare` + `submit`), keeps inbound POST hashes for
//! idempotency and sends follow-ups through `send_follow_up`.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::Utc;
use railgate_mojaloop::adapter::lookup_reference;
use railgate_mojaloop::config::JwsConfig;
use railgate_mojaloop::jws::{generate_key, JwsSigner};
use railgate_mojaloop::mock::{MockHub, MockHubConfig, MockJws};
use railgate_mojaloop::payee::{inbound_post, replay_of, Replay};
use railgate_mojaloop::{IlpSecret, MojaloopAdapter, MojaloopConfig, OwnParty};
use railgate_rail::{
    Attempt, AttemptRef, CallbackEvent, CallbackOutcome, Currency, Direction, Failure,
    InboundRequest, Money, Outbound, Party, PartyIdType, RailAdapter, RailError, RailStatus,
    Settled, Submitted,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use uuid::Uuid;

pub const OUR_FSP: &str = "railgate";
pub const SCHEME_ID: &str = "NHIF";

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    InFlight,
    Unknown(String),
    Completed(Settled),
    Failed(Failure),
    /// A final outcome contradicted by a later one (a reconciliation break).
    Conflict,
}

impl Status {
    pub fn is_final(&self) -> bool {
        !matches!(self, Status::InFlight | Status::Unknown(_))
    }
}

pub struct Row {
    pub attempt: Attempt,
    pub status: Status,
    /// Outcomes applied, in order.
    pub applied: Vec<CallbackOutcome>,
}

#[derive(Default)]
pub struct Store {
    pub rows: HashMap<Uuid, Row>,
    pub by_reference: HashMap<String, Vec<Uuid>>,
    pub seen_callbacks: HashSet<String>,
    pub duplicate_callbacks: usize,
    pub refused: Vec<(String, String)>,
    pub inbound: HashMap<(String, String), (String, Vec<Outbound>)>,
    pub received: Vec<CallbackEvent>,
    pub follow_ups_sent: Vec<(String, Vec<u8>)>,
    /// Stop before sending transfers (to test what happens to a transfer never sent).
    pub hold_transfers: bool,
}

pub struct Core {
    pub adapter: MojaloopAdapter,
    pub store: Mutex<Store>,
}

pub struct Gateway {
    pub core: Arc<Core>,
    pub hub: MockHub,
    pub base: String,
}

pub struct Keys {
    pub railgate: JwsSigner,
    pub mock: JwsSigner,
    pub forger: JwsSigner,
}

/// Three 2048-bit keys, made once per test binary.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        railgate: JwsSigner::new(generate_key().unwrap()).unwrap(),
        mock: JwsSigner::new(generate_key().unwrap()).unwrap(),
        forger: JwsSigner::new(generate_key().unwrap()).unwrap(),
    })
}

pub struct Options {
    pub jws: bool,
    pub pending_delay: Duration,
    pub late_success_delay: Duration,
    /// The hub's ingress over TLS (its server configuration) and our client side of it.
    pub tls: Option<(
        Arc<railgate_rail::tls::rustls::ServerConfig>,
        railgate_rail::tls::ClientTls,
    )>,
    /// An API gateway in front of the hub that wants an OAuth2 bearer token.
    pub oauth: bool,
    /// How long a bulk's results may take before the hub is asked (`GET /bulkTransfers`).
    pub bulk_answer_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jws: false,
            pending_delay: Duration::from_secs(3),
            late_success_delay: Duration::from_secs(2),
            tls: None,
            oauth: false,
            bulk_answer_wait: Duration::from_secs(30),
        }
    }
}

pub fn adapter_config(hub_base: &str, callback_base: &str, jws: bool) -> MojaloopConfig {
    let mut config = MojaloopConfig::new(
        OUR_FSP,
        hub_base,
        callback_base,
        IlpSecret::new("railgate-test-ilp-secret"),
        vec![OwnParty {
            id_type: PartyIdType::Business,
            id_value: SCHEME_ID.to_owned(),
            name: "National Health Insurance Fund".to_owned(),
        }],
    );
    config.peers = vec!["mockdfsp".to_owned()];
    config.http_timeout = Duration::from_secs(5);
    if jws {
        let k = keys();
        let mut peers = BTreeMap::new();
        peers.insert("mockdfsp".to_owned(), k.mock.verifier());
        peers.insert("switch".to_owned(), k.mock.verifier());
        config.jws = Some(JwsConfig {
            signer: Some(k.railgate.clone()),
            peers,
            verify_inbound: true,
            accept_unsigned_from_hub: false,
        });
    }
    config
}

impl Gateway {
    pub async fn start(options: Options) -> Gateway {
        let mut hub_config = MockHubConfig::new(OUR_FSP);
        hub_config.pending_delay = options.pending_delay;
        hub_config.late_success_delay = options.late_success_delay;
        if options.jws {
            let k = keys();
            hub_config.jws = Some(MockJws {
                signer: k.mock.clone(),
                railgate: Some(k.railgate.verifier()),
                forger: k.forger.clone(),
            });
        }
        hub_config.tls = options.tls.as_ref().map(|(server, _)| server.clone());
        if options.oauth {
            hub_config.oauth_client = Some(("railgate".into(), "hub-client-secret".into()));
        }
        let hub = MockHub::start(hub_config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let callback_base = format!("http://{addr}/rails/mojaloop");
        let config = if options.jws {
            adapter_config(&hub.base_url(), &callback_base, true)
        } else {
            // The mock's own helper, as the sandbox uses it.
            let mut c =
                hub.adapter_config(&callback_base, SCHEME_ID, "National Health Insurance Fund");
            c.http_timeout = Duration::from_secs(5);
            c
        };
        let mut config = config;
        config.bulk_answer_wait = options.bulk_answer_wait;
        config.tls = options.tls.map(|(_, client)| client);
        if options.oauth {
            config.oauth = Some(railgate_rail::oauth::OAuthConfig::client_credentials(
                hub.token_url(),
                "railgate",
                railgate_rail::Secret::new("hub-client-secret"),
            ));
        }
        let adapter = MojaloopAdapter::new(config).unwrap();
        let core = Arc::new(Core {
            adapter,
            store: Mutex::new(Store::default()),
        });
        let app = Router::new().fallback(receive).with_state(core.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        hub.set_callback_base(&callback_base);
        Gateway {
            core,
            hub,
            base: format!("http://{addr}"),
        }
    }

    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.core.store.lock().unwrap()
    }

    pub fn add_attempt(
        &self,
        direction: Direction,
        msisdn: &str,
        amount: &str,
        reference: &str,
    ) -> Uuid {
        let attempt = Attempt {
            attempt_id: Uuid::new_v4(),
            payment_id: Uuid::now_v7(),
            direction,
            amount: Money::parse(amount, Currency::Tzs).unwrap(),
            party: Party::new(PartyIdType::Msisdn, msisdn, Some("Asha Juma")).unwrap(),
            reference: reference.to_owned(),
            narrative: Some("benefit".to_owned()),
            rail_reference: None,
            rail_state: None,
            request: None,
            created_at: Utc::now(),
        };
        let id = attempt.attempt_id;
        self.store().rows.insert(
            id,
            Row {
                attempt,
                status: Status::InFlight,
                applied: Vec::new(),
            },
        );
        id
    }

    /// Sends the attempt's first step.
    pub async fn start_attempt(&self, id: Uuid) {
        drive(self.core.clone(), id).await;
    }

    pub fn status(&self, id: Uuid) -> Status {
        self.store().rows[&id].status.clone()
    }

    pub fn attempt(&self, id: Uuid) -> Attempt {
        self.store().rows[&id].attempt.clone()
    }

    pub fn set_attempt(&self, attempt: Attempt) {
        let id = attempt.attempt_id;
        self.store().rows.get_mut(&id).unwrap().attempt = attempt;
    }

    /// Waits (bounded) until `done` holds.
    pub async fn wait_for(&self, what: &str, mut done: impl FnMut(&Gateway) -> bool) {
        for _ in 0..400 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for {what}");
    }

    pub async fn wait_final(&self, id: Uuid) -> Status {
        self.wait_for("a final status", |g| g.status(id).is_final())
            .await;
        self.status(id)
    }

    pub async fn wait_step(&self, id: Uuid, step: &str) {
        self.wait_for(step, |g| {
            g.attempt(id)
                .rail_state
                .as_ref()
                .and_then(|s| s.get("step"))
                .and_then(|s| s.as_str())
                == Some(step)
        })
        .await;
    }

    pub async fn inquire(&self, id: Uuid) -> Result<RailStatus, RailError> {
        let attempt = self.attempt(id);
        let r = self.core.adapter.inquire(&attempt).await;
        if let Ok(status) = &r {
            let outcome = match status {
                RailStatus::Completed(s) => Some(CallbackOutcome::Completed(s.clone())),
                RailStatus::Failed(f) => Some(CallbackOutcome::Failed(f.clone())),
                RailStatus::Pending | RailStatus::NotFound => None,
            };
            if let Some(o) = outcome {
                apply(&self.core, id, o);
            }
        }
        r
    }

    pub fn refused(&self) -> Vec<(String, String)> {
        self.store().refused.clone()
    }
}

/// prepare → store → submit, as the gateway's dispatcher does; a retryable error is retried
/// with the same attempt (same ids, same bytes).
pub async fn drive(core: Arc<Core>, id: Uuid) {
    let attempt = core.store.lock().unwrap().rows[&id].attempt.clone();
    match core.adapter.prepare(&attempt) {
        Ok(Some(request)) => {
            core.store
                .lock()
                .unwrap()
                .rows
                .get_mut(&id)
                .unwrap()
                .attempt
                .request = Some(request);
        }
        Ok(None) => {
            if attempt.rail_state.is_none() {
                let reference = lookup_reference(&attempt.party);
                core.store
                    .lock()
                    .unwrap()
                    .by_reference
                    .entry(reference)
                    .or_default()
                    .push(id);
            }
        }
        Err(e) => {
            set_status(
                &core,
                id,
                Status::Failed(Failure::new(
                    railgate_rail::FailureCode::InvalidRequest,
                    e.to_string(),
                    None,
                )),
            );
            return;
        }
    }
    for _ in 0..5 {
        let attempt = core.store.lock().unwrap().rows[&id].attempt.clone();
        match core.adapter.submit(&attempt).await {
            Ok(Submitted::Step {
                rail_state,
                rail_reference,
            }) => {
                let mut store = core.store.lock().unwrap();
                if let Some(r) = &rail_reference {
                    let ids = store.by_reference.entry(r.clone()).or_default();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                let row = store.rows.get_mut(&id).unwrap();
                row.attempt.rail_reference = rail_reference;
                // A callback may already have moved the attempt on; never step back.
                if row.attempt.rail_state.as_ref() == attempt.rail_state.as_ref() {
                    row.attempt.rail_state = Some(rail_state);
                }
                return;
            }
            Ok(Submitted::Accepted { rail_reference }) => {
                core.store
                    .lock()
                    .unwrap()
                    .rows
                    .get_mut(&id)
                    .unwrap()
                    .attempt
                    .rail_reference = rail_reference;
                return;
            }
            Ok(Submitted::Completed(s)) => return apply(&core, id, CallbackOutcome::Completed(s)),
            Ok(Submitted::Rejected(f)) => return apply(&core, id, CallbackOutcome::Failed(f)),
            Err(RailError::Retryable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(RailError::Unknown(why)) => return set_status(&core, id, Status::Unknown(why)),
            Err(RailError::Permanent(why)) => {
                return set_status(
                    &core,
                    id,
                    Status::Failed(Failure::new(
                        railgate_rail::FailureCode::InvalidRequest,
                        why,
                        None,
                    )),
                )
            }
        }
    }
}

fn set_status(core: &Core, id: Uuid, status: Status) {
    core.store.lock().unwrap().rows.get_mut(&id).unwrap().status = status;
}

/// Applies one reviewed outcome; a contradiction of a final state is a conflict.
pub fn apply(core: &Arc<Core>, id: Uuid, outcome: CallbackOutcome) {
    let mut store = core.store.lock().unwrap();
    if let CallbackOutcome::Linked { rail_reference } = &outcome {
        // As the gateway keeps it: the attempt's reference for what the rail sends next.
        store
            .by_reference
            .entry(rail_reference.clone())
            .or_default()
            .push(id);
    }
    let hold_transfers = store.hold_transfers;
    let row = store.rows.get_mut(&id).unwrap();
    row.applied.push(outcome.clone());
    let next = match (&row.status, outcome) {
        (Status::Conflict, _) => Status::Conflict,
        (Status::Completed(_), CallbackOutcome::Failed(_))
        | (Status::Failed(_), CallbackOutcome::Completed(_)) => Status::Conflict,
        (Status::Completed(s), CallbackOutcome::Completed(_)) => Status::Completed(s.clone()),
        (Status::Failed(f), CallbackOutcome::Failed(_)) => Status::Failed(f.clone()),
        (_, CallbackOutcome::Completed(s)) => Status::Completed(s),
        (_, CallbackOutcome::Failed(f)) => Status::Failed(f),
        (
            s,
            CallbackOutcome::Pending
            | CallbackOutcome::Linked { .. }
            | CallbackOutcome::Received { .. },
        ) => s.clone(),
        (s, CallbackOutcome::Step { rail_state }) => {
            if !s.is_final() {
                let quoted = rail_state.get("step").and_then(|v| v.as_str()) == Some("quoted");
                row.attempt.rail_state = Some(rail_state);
                if quoted && hold_transfers {
                    row.status = s.clone();
                    return;
                }
                let core = core.clone();
                tokio::spawn(drive(core, id));
            }
            s.clone()
        }
    };
    row.status = next;
}

async fn receive(
    State(core): State<Arc<Core>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(path) = uri.path().strip_prefix("/rails/mojaloop") else {
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
    let reply = match core.adapter.callback(&request) {
        Ok(r) => r,
        Err(e) => {
            core.store
                .lock()
                .unwrap()
                .refused
                .push((request.path.clone(), e.to_string()));
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    // Inbound POSTs: idempotent on their id.
    let mut follow_ups = reply.follow_ups.clone();
    let mut events = reply.events.clone();
    if let Some(post) = inbound_post(&request) {
        let key = (post.resource.as_str().to_owned(), post.id.clone());
        let mut store = core.store.lock().unwrap();
        let stored = store.inbound.get(&key).cloned();
        match replay_of(stored.as_ref().map(|(h, _)| h.as_str()), &post.body_hash) {
            Replay::First => {
                store
                    .inbound
                    .insert(key, (post.body_hash.clone(), follow_ups.clone()));
            }
            Replay::Duplicate => {
                follow_ups = stored.map(|(_, f)| f).unwrap_or_default();
                events.clear();
            }
            Replay::Modified => {
                follow_ups = vec![core.adapter.modified_request_follow_up(&post)];
                events.clear();
            }
        }
    }
    for event in events {
        handle_event(&core, &request, event);
    }
    let c = core.clone();
    tokio::spawn(async move {
        for f in follow_ups {
            let r = c.adapter.send_follow_up(&f).await;
            assert!(r.is_ok(), "follow-up {} failed: {r:?}", f.url);
            c.store
                .lock()
                .unwrap()
                .follow_ups_sent
                .push((f.url.clone(), f.body.clone()));
        }
    });
    let status = StatusCode::from_u16(reply.status).unwrap();
    (status, reply.body).into_response()
}

fn handle_event(core: &Arc<Core>, request: &InboundRequest, event: CallbackEvent) {
    {
        let mut store = core.store.lock().unwrap();
        if !store.seen_callbacks.insert(event.callback_id.clone()) {
            store.duplicate_callbacks = store.duplicate_callbacks.saturating_add(1);
            return;
        }
    }
    let ids: Vec<Uuid> = match &event.attempt {
        AttemptRef::Attempt(id) => vec![*id],
        AttemptRef::RailReference(r) => core
            .store
            .lock()
            .unwrap()
            .by_reference
            .get(r)
            .cloned()
            .unwrap_or_default(),
        AttemptRef::PaymentReference(_) => {
            core.store.lock().unwrap().received.push(event);
            return;
        }
        AttemptRef::Transaction {
            rail_reference,
            payment_reference,
        } => {
            let linked = core
                .store
                .lock()
                .unwrap()
                .by_reference
                .get(rail_reference)
                .cloned();
            let resolved = match linked {
                Some(ids) => CallbackEvent {
                    attempt: AttemptRef::Attempt(ids[0]),
                    outcome: event.outcome.clone().for_linked_attempt(),
                    callback_id: format!("{} (linked)", event.callback_id),
                },
                None => CallbackEvent {
                    attempt: AttemptRef::PaymentReference(payment_reference.clone()),
                    callback_id: format!("{} (by reference)", event.callback_id),
                    ..event.clone()
                },
            };
            handle_event(core, request, resolved);
            return;
        }
    };
    for id in ids {
        let attempt = match core.store.lock().unwrap().rows.get(&id) {
            Some(row) => row.attempt.clone(),
            None => continue,
        };
        match core
            .adapter
            .review_callback(&attempt, request, event.outcome.clone())
        {
            Ok(outcome) => apply(core, id, outcome),
            Err(e) => core
                .store
                .lock()
                .unwrap()
                .refused
                .push((request.path.clone(), e.to_string())),
        }
    }
}
