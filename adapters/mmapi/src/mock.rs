//! A mock Mobile Money API provider, in process on its own port, for the sandbox and tests.
//!
//! It speaks the v1.2 wire format: `202` request states, `PUT` callbacks of the transaction
//! or error object to `X-Callback-URL` (with `X-CorrelationID`, `X-Date`, `X-Content-Hash`
//! and the agreed Basic credentials), `/requeststates`, `/transactions`, `/responses`,
//! batches, reversals and OAuth2 tokens. The scenario is chosen by the last two digits of the
//! counterparty's identifier (the credit party of a disbursement, the debit party of a
//! merchant payment):
//!
//! | ends in | what the mock does |
//! |---|---|
//! | 00, other | completes; success callback after ~100 ms |
//! | 01 | error callback `businessRule/insufficientFunds` |
//! | 02 | error callback `identification/identifierError` |
//! | 03 | error callback `authorisation/requestDeclined` |
//! | 04 | pending ~3 s, then completes and calls back |
//! | 05 | completes, never calls back (polling shows completed) |
//! | 06 | fails `businessRule/incorrectState`, never calls back |
//! | 07 | completes; the success callback is sent three times |
//! | 08 | completes; only a forged callback is sent (wrong credentials, wrong path secret) |
//! | 09 | `503 serviceUnavailable` twice for the correlation id, then as 00 |
//! | 10 | completes, then drops the connection before answering; no callback |
//! | 11 | error callback, then completes and sends a success callback ~2 s later |
//! | 12 | drops the connection; every read about it answers `504` |
//!
//! | 14 | completes; a reversal of it is refused (`businessRule/insufficientFunds`) |
//! | 15 | completes; a reversal of it is executed, then the connection drops before the answer and no callback follows |
//!
//! Batch items: 01/02/03/06 are rejected (with the codes above as `rejectionReason`), all
//! others complete. A resent `X-CorrelationID` is refused as `businessRule/duplicateRequest`
//! and nothing is paid twice.
//!
//! Control: `GET /_control/payouts`, `POST /_control/faults`, `GET /_control/statement?format=csv`,
//! `GET /_control/tokens` (how many OAuth tokens were issued).

// Handlers short-circuit with ready-made responses; boxing them would only add noise.
#![allow(clippy::result_large_err)]

use crate::wire::{
    is_valid_amount, BatchCompletion, BatchObject, BatchRejection, BatchRequest, BatchStatus,
    ErrorObject, KeyValue, NotificationMethod, RequestState, RequestStatus, ResponseLink,
    ReversalRequest, TransactionObject, TransactionRequest,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

/// Scenario endings that only matter to a reversal of the completed transaction.
const REVERSAL_REFUSED: u8 = 14;
const REVERSAL_ANSWER_LOST: u8 = 15;

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MmapiMockConfig {
    /// When set, requests must carry this `X-API-Key`.
    pub api_key: Option<String>,
    /// When set, requests must carry a bearer token from `POST /token` issued to this client.
    pub oauth_client: Option<(String, String)>,
    pub token_lifetime: Duration,
    /// Basic credentials the mock presents on callbacks (the bilateral agreement).
    pub callback_credentials: Option<(String, String)>,
    pub callback_delay: Duration,
    pub pending_delay: Duration,
    pub conflict_delay: Duration,
    /// Serve HTTPS with this (a provider that requires mutual TLS, with certificates the test
    /// made); `None` serves plain HTTP.
    pub tls: Option<Arc<railgate_rail::tls::rustls::ServerConfig>>,
    /// TLS for the mock's own callbacks to the gateway.
    pub callback_tls: Option<railgate_rail::tls::ClientTls>,
}

impl Default for MmapiMockConfig {
    fn default() -> Self {
        MmapiMockConfig {
            api_key: None,
            oauth_client: None,
            token_lifetime: Duration::from_secs(3600),
            callback_credentials: None,
            callback_delay: Duration::from_millis(100),
            pending_delay: Duration::from_secs(3),
            conflict_delay: Duration::from_secs(2),
            tls: None,
            callback_tls: None,
        }
    }
}

/// Faults injected through `POST /_control/faults`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub latency_ms: u64,
    pub drop_callbacks: bool,
    pub error_rate_percent: u8,
    /// Every callback is delivered twice.
    pub duplicate_callbacks: bool,
    /// The first callback is delivered before the synchronous answer.
    pub callback_before_ack: bool,
}

/// One row of `GET /_control/payouts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutRow {
    pub attempt_id: String,
    pub reference: String,
    pub amount: String,
    pub currency: String,
    pub count: u32,
}

#[derive(Debug, Clone)]
struct StatementLine {
    date: String,
    amount: String,
    currency: String,
    direction: &'static str,
    reference: String,
    counterparty: String,
    rail_id: String,
}

#[derive(Debug, Clone)]
enum TxnState {
    Pending,
    Completed,
    Failed(ErrorObject),
}

#[derive(Debug, Clone)]
struct Txn {
    reference: String,
    scid: String,
    correlation: Uuid,
    kind: String,
    request: TransactionRequest,
    counterparty: String,
    scenario: u8,
    state: TxnState,
    reversed: bool,
    created: String,
    modified: String,
}

#[derive(Debug, Clone)]
struct Batch {
    id: String,
    scid: String,
    status: BatchStatus,
    completions: Vec<BatchCompletion>,
    rejections: Vec<BatchRejection>,
}

#[derive(Debug, Default)]
struct MockState {
    faults: Faults,
    seq: u64,
    txns: HashMap<String, Txn>,
    /// Server correlation id → transaction reference or batch id.
    by_scid: HashMap<String, String>,
    /// Client correlation id → link of the resource it created.
    by_correlation: HashMap<Uuid, String>,
    unavailable_served: HashMap<Uuid, u8>,
    payouts: BTreeMap<String, PayoutRow>,
    statement: Vec<StatementLine>,
    tokens: HashMap<String, Instant>,
    tokens_issued: u64,
    batches: HashMap<String, Batch>,
}

struct Shared {
    config: MmapiMockConfig,
    base: String,
    state: Mutex<MockState>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running mock provider; stops when dropped.
pub struct MmapiMock {
    addr: SocketAddr,
    scheme: &'static str,
    task: JoinHandle<()>,
}

impl MmapiMock {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(config: MmapiMockConfig) -> std::io::Result<MmapiMock> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let shared = Arc::new(Shared {
            base: format!("{scheme}://{addr}/v1.2/mm"),
            state: Mutex::new(MockState::default()),
            http: railgate_rail::tls::client_builder(config.callback_tls.as_ref())
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(std::io::Error::other)?,
            config,
        });
        let tls = shared.config.tls.clone();
        let app = router(shared);
        let task = tokio::spawn(async move {
            let served = match tls {
                Some(tls) => {
                    axum::serve(railgate_rail::tls::TlsListener::new(listener, tls), app).await
                }
                None => axum::serve(listener, app).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "MMAPI mock stopped");
            }
        });
        Ok(MmapiMock { addr, scheme, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API root to configure the adapter with (`…/v1.2/mm`).
    pub fn base_url(&self) -> String {
        format!("{}://{}/v1.2/mm", self.scheme, self.addr)
    }

    /// The OAuth2 token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}://{}/token", self.scheme, self.addr)
    }

    /// Where the control endpoints live.
    pub fn control_url(&self) -> String {
        format!("{}://{}/_control", self.scheme, self.addr)
    }
}

impl Drop for MmapiMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/token", post(issue_token))
        .route(
            "/v1.2/mm/transactions/type/{kind}",
            post(create_transaction),
        )
        .route("/v1.2/mm/transactions/{reference}", get(read_transaction))
        .route(
            "/v1.2/mm/transactions/{reference}/reversals",
            post(create_reversal),
        )
        .route("/v1.2/mm/requeststates/{scid}", get(read_request_state))
        .route("/v1.2/mm/responses/{correlation}", get(read_response))
        .route("/v1.2/mm/batchtransactions", post(create_batch))
        .route("/v1.2/mm/batchtransactions/{id}", get(read_batch))
        .route(
            "/v1.2/mm/batchtransactions/{id}/{list}",
            get(read_batch_list),
        )
        .route(
            "/v1.2/mm/heartbeat",
            get(|| async { Json(serde_json::json!({"serviceStatus": "available"})) }),
        )
        .route("/_control/payouts", get(control_payouts))
        .route("/_control/faults", post(control_faults))
        .route("/_control/statement", get(control_statement))
        .route("/_control/tokens", get(control_tokens))
        .with_state(shared)
}

fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn error_reply(status: StatusCode, category: &str, code: &str, description: &str) -> Response {
    let mut e = ErrorObject::new(category, code, description);
    e.error_date_time = Some(now_iso());
    (status, [("X-Date", now_iso())], Json(e)).into_response()
}

/// An answer whose body fails mid-flight: the client loses the connection before it has the
/// response, after the mock has acted on the request.
fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "mock dropped the connection",
        ))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp
}

/// Checks API key and bearer token as configured.
fn check_auth(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    if let Some(key) = &shared.config.api_key {
        if headers.get("X-API-Key").and_then(|v| v.to_str().ok()) != Some(key.as_str()) {
            return Err(error_reply(
                StatusCode::UNAUTHORIZED,
                "authorisation",
                "clientAuthorisationError",
                "missing or wrong API key",
            ));
        }
    }
    if shared.config.oauth_client.is_some() {
        let token = headers
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let valid = shared
            .lock()
            .tokens
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry);
        if !valid {
            return Err(error_reply(
                StatusCode::UNAUTHORIZED,
                "authorisation",
                "clientAuthorisationError",
                "missing, unknown or expired access token",
            ));
        }
    }
    Ok(())
}

async fn apply_faults(shared: &Shared) -> Result<(), Response> {
    let faults = shared.lock().faults.clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.error_rate_percent > 0
        && rand::thread_rng().gen_range(0u8..100) < faults.error_rate_percent
    {
        return Err(error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceUnavailable",
            "genericError",
            "injected fault",
        ));
    }
    Ok(())
}

async fn issue_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some((id, secret)) = shared.config.oauth_client.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let given = headers
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    if given != Some(expected.as_str()) || !body.contains("grant_type=client_credentials") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = Uuid::new_v4().simple().to_string();
    let lifetime = shared.config.token_lifetime;
    {
        let mut st = shared.lock();
        st.tokens_issued = st.tokens_issued.saturating_add(1);
        st.tokens.insert(
            token.clone(),
            Instant::now()
                .checked_add(lifetime)
                .unwrap_or_else(Instant::now),
        );
    }
    Json(serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
    }))
    .into_response()
}

fn correlation_of(headers: &HeaderMap) -> Option<Uuid> {
    headers
        .get("X-CorrelationID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
}

/// The last two digits of a party's identifier.
fn scenario_of(party: &[KeyValue]) -> u8 {
    let digits: Vec<u8> = party
        .first()
        .map(|p| {
            p.value
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b.saturating_sub(b'0'))
                .collect()
        })
        .unwrap_or_default();
    match digits.as_slice() {
        [.., t, u] => t.saturating_mul(10).saturating_add(*u),
        [u] => *u,
        [] => 0,
    }
}

fn validate(req: &TransactionRequest) -> Result<(), Response> {
    if !is_valid_amount(&req.amount) {
        return Err(error_reply(
            StatusCode::BAD_REQUEST,
            "validation",
            "formatError",
            "amount does not follow the amount rules",
        ));
    }
    if req.currency.parse::<railgate_rail::Currency>().is_err() {
        return Err(error_reply(
            StatusCode::BAD_REQUEST,
            "validation",
            "currencyNotSupported",
            "currency not supported",
        ));
    }
    if req.credit_party.is_empty() && req.debit_party.is_empty() {
        return Err(error_reply(
            StatusCode::BAD_REQUEST,
            "validation",
            "mandatoryValueNotSupplied",
            "creditParty or debitParty is required",
        ));
    }
    Ok(())
}

fn request_state(scid: &str, status: RequestStatus, polling: bool) -> RequestState {
    RequestState {
        server_correlation_id: scid.to_owned(),
        status,
        notification_method: Some(if polling {
            NotificationMethod::Polling
        } else {
            NotificationMethod::Callback
        }),
        object_reference: None,
        pending_reason: None,
        expiry_time: None,
        poll_limit: Some(100),
        error: None,
    }
}

/// What happens to a transaction after its acknowledgement.
#[derive(Debug, Clone)]
enum Step {
    Wait(Duration),
    Complete,
    Fail(ErrorObject),
    CallbackState,
    CallbackError(ErrorObject),
    CallbackForged,
}

fn plan(scenario: u8, config: &MmapiMockConfig) -> Vec<Step> {
    let d = config.callback_delay;
    let insufficient = ErrorObject::new(
        "businessRule",
        "insufficientFunds",
        "insufficient funds in the debit account",
    );
    let not_found = ErrorObject::new(
        "identification",
        "identifierError",
        "the party could not be identified",
    );
    let declined = ErrorObject::new(
        "authorisation",
        "requestDeclined",
        "the debit party did not approve the request",
    );
    let incorrect = ErrorObject::new(
        "businessRule",
        "incorrectState",
        "the account does not permit this service",
    );
    match scenario {
        1 => vec![
            Step::Wait(d),
            Step::Fail(insufficient.clone()),
            Step::CallbackError(insufficient),
        ],
        2 => vec![
            Step::Wait(d),
            Step::Fail(not_found.clone()),
            Step::CallbackError(not_found),
        ],
        3 => vec![
            Step::Wait(d),
            Step::Fail(declined.clone()),
            Step::CallbackError(declined),
        ],
        4 => vec![
            Step::Wait(config.pending_delay),
            Step::Complete,
            Step::CallbackState,
        ],
        5 => vec![Step::Wait(d), Step::Complete],
        6 => vec![Step::Wait(d), Step::Fail(incorrect)],
        7 => vec![
            Step::Wait(d),
            Step::Complete,
            Step::CallbackState,
            Step::CallbackState,
            Step::CallbackState,
        ],
        8 => vec![Step::Wait(d), Step::Complete, Step::CallbackForged],
        10 => vec![Step::Complete],
        11 => {
            let failure = ErrorObject::new("businessRule", "genericError", "transaction failed");
            vec![
                Step::Wait(d),
                Step::Fail(failure.clone()),
                Step::CallbackError(failure),
                Step::Wait(config.conflict_delay),
                Step::Complete,
                Step::CallbackState,
            ]
        }
        12 => Vec::new(),
        _ => vec![Step::Wait(d), Step::Complete, Step::CallbackState],
    }
}

async fn create_transaction(
    State(shared): State<Arc<Shared>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = apply_faults(&shared).await {
        return r;
    }
    if let Err(r) = check_auth(&shared, &headers) {
        return r;
    }
    if kind != "disbursement" && kind != "merchantpay" {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "validation",
            "formatError",
            "unsupported transaction type",
        );
    }
    let Some(correlation) = correlation_of(&headers) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "validation",
            "mandatoryValueNotSupplied",
            "X-CorrelationID (a UUID) is required",
        );
    };
    let req: TransactionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "validation",
                "formatError",
                &e.to_string(),
            )
        }
    };
    if let Err(r) = validate(&req) {
        return r;
    }
    let counterparty = if kind == "disbursement" {
        req.credit_party.clone()
    } else {
        req.debit_party.clone()
    };
    let scenario = scenario_of(&counterparty);
    let callback_url = headers
        .get("X-Callback-URL")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (reference, scid) = {
        let mut st = shared.lock();
        if st.by_correlation.contains_key(&correlation) {
            drop(st);
            return error_reply(
                StatusCode::BAD_REQUEST,
                "businessRule",
                "duplicateRequest",
                "a request with this X-CorrelationID was already processed",
            );
        }
        if scenario == 9 {
            let served = st.unavailable_served.entry(correlation).or_insert(0);
            if *served < 2 {
                *served = served.saturating_add(1);
                drop(st);
                return error_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "serviceUnavailable",
                    "genericError",
                    "the service is not currently available",
                );
            }
        }
        st.seq = st.seq.saturating_add(1);
        let reference = format!("MMT{:09}", st.seq);
        let scid = Uuid::new_v4().to_string();
        let now = now_iso();
        st.txns.insert(
            reference.clone(),
            Txn {
                reference: reference.clone(),
                scid: scid.clone(),
                correlation,
                kind: kind.clone(),
                request: req.clone(),
                counterparty: counterparty
                    .first()
                    .map(|p| p.value.clone())
                    .unwrap_or_default(),
                scenario,
                state: TxnState::Pending,
                reversed: false,
                created: now.clone(),
                modified: now,
            },
        );
        st.by_scid.insert(scid.clone(), reference.clone());
        let link = format!("{}/transactions/{reference}", shared.base);
        st.by_correlation.insert(correlation, link);
        (reference, scid)
    };
    let steps = plan(scenario, &shared.config);
    let before_ack = shared.lock().faults.callback_before_ack;
    if before_ack {
        run_steps(
            shared.clone(),
            reference.clone(),
            callback_url.clone(),
            steps,
            true,
        )
        .await;
    } else if scenario == 10 {
        // Acts, then loses the connection.
        run_steps(shared.clone(), reference.clone(), None, steps, true).await;
    } else {
        tokio::spawn(run_steps(
            shared.clone(),
            reference.clone(),
            callback_url.clone(),
            steps,
            false,
        ));
    }
    if scenario == 10 || scenario == 12 {
        return dropped_connection();
    }
    let state = request_state(&scid, RequestStatus::Pending, callback_url.is_none());
    (StatusCode::ACCEPTED, [("X-Date", now_iso())], Json(state)).into_response()
}

/// Runs a transaction's plan; `immediate` skips the waits before the first callback.
async fn run_steps(
    shared: Arc<Shared>,
    reference: String,
    callback_url: Option<String>,
    steps: Vec<Step>,
    immediate: bool,
) {
    let mut waited_once = false;
    for step in steps {
        match step {
            Step::Wait(d) => {
                if !immediate || waited_once {
                    tokio::time::sleep(d).await;
                }
                waited_once = true;
            }
            Step::Complete => complete(&shared, &reference),
            Step::Fail(e) => {
                let mut st = shared.lock();
                if let Some(t) = st.txns.get_mut(&reference) {
                    t.state = TxnState::Failed(e);
                    t.modified = now_iso();
                }
            }
            Step::CallbackState => {
                let txn = shared.lock().txns.get(&reference).cloned();
                if let (Some(t), Some(url)) = (txn, callback_url.as_deref()) {
                    let body = serde_json::to_vec(&transaction_object(&t)).unwrap_or_default();
                    deliver(&shared, url, t.correlation, body, false).await;
                }
            }
            Step::CallbackError(e) => {
                let txn = shared.lock().txns.get(&reference).cloned();
                if let (Some(t), Some(url)) = (txn, callback_url.as_deref()) {
                    let mut e = e.clone();
                    e.error_date_time = Some(now_iso());
                    let body = serde_json::to_vec(&e).unwrap_or_default();
                    deliver(&shared, url, t.correlation, body, false).await;
                }
            }
            Step::CallbackForged => {
                let txn = shared.lock().txns.get(&reference).cloned();
                if let (Some(t), Some(url)) = (txn, callback_url.as_deref()) {
                    let body = serde_json::to_vec(&transaction_object(&t)).unwrap_or_default();
                    deliver(&shared, url, t.correlation, body, true).await;
                }
            }
        }
    }
}

/// Marks a transaction completed and pays it, once.
fn complete(shared: &Shared, reference: &str) {
    let mut st = shared.lock();
    let Some(t) = st.txns.get_mut(reference) else {
        return;
    };
    if matches!(t.state, TxnState::Completed) {
        return;
    }
    t.state = TxnState::Completed;
    t.modified = now_iso();
    let t = t.clone();
    let our_ref = t
        .request
        .requesting_organisation_transaction_reference
        .clone()
        .unwrap_or_default();
    pay(
        &mut st,
        &t.correlation.to_string(),
        &our_ref,
        &t.request,
        if t.kind == "disbursement" {
            "disbursement"
        } else {
            "collection"
        },
        &t.counterparty,
        &t.reference,
    );
}

fn pay(
    st: &mut MockState,
    attempt_id: &str,
    our_ref: &str,
    req: &TransactionRequest,
    direction: &'static str,
    counterparty: &str,
    rail_id: &str,
) {
    let row = st
        .payouts
        .entry(attempt_id.to_owned())
        .or_insert_with(|| PayoutRow {
            attempt_id: attempt_id.to_owned(),
            reference: our_ref.to_owned(),
            amount: req.amount.clone(),
            currency: req.currency.clone(),
            count: 0,
        });
    row.count = row.count.saturating_add(1);
    st.statement.push(StatementLine {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        amount: req.amount.clone(),
        currency: req.currency.clone(),
        direction,
        reference: our_ref.to_owned(),
        counterparty: counterparty.to_owned(),
        rail_id: rail_id.to_owned(),
    });
}

fn transaction_object(t: &Txn) -> TransactionObject {
    TransactionObject {
        transaction_reference: t.reference.clone(),
        transaction_status: match &t.state {
            TxnState::Pending => "pending",
            TxnState::Completed if t.reversed => "reversed",
            TxnState::Completed => "completed",
            TxnState::Failed(_) => "failed",
        }
        .into(),
        transaction_receipt: matches!(t.state, TxnState::Completed)
            .then(|| format!("RCPT-{}", t.reference)),
        kind: Some(t.kind.clone()),
        amount: Some(t.request.amount.clone()),
        currency: Some(t.request.currency.clone()),
        credit_party: t.request.credit_party.clone(),
        debit_party: t.request.debit_party.clone(),
        requesting_organisation_transaction_reference: t
            .request
            .requesting_organisation_transaction_reference
            .clone(),
        original_transaction_reference: None,
        creation_date: Some(t.created.clone()),
        modification_date: Some(t.modified.clone()),
    }
}

/// PUTs a callback body to the client, honouring the callback faults.
async fn deliver(shared: &Shared, url: &str, correlation: Uuid, body: Vec<u8>, forged: bool) {
    let faults = shared.lock().faults.clone();
    if faults.drop_callbacks {
        return;
    }
    let times = if faults.duplicate_callbacks { 2 } else { 1 };
    // A forger without the agreed credentials; when the client authenticates callbacks by a
    // path secret instead, a forger who knows the route layout but not the secret.
    let target = if forged && shared.config.callback_credentials.is_none() {
        forge_url(url)
    } else {
        url.to_owned()
    };
    for _ in 0..times {
        let mut req = shared
            .http
            .put(&target)
            .header("Content-Type", "application/json")
            .header("X-Date", now_iso())
            .header("X-CorrelationID", correlation.to_string())
            .header("X-Content-Hash", hex::encode(Sha256::digest(&body)))
            .body(body.clone());
        if let Some((user, pass)) = &shared.config.callback_credentials {
            let pass = if forged {
                "forged-password"
            } else {
                pass.as_str()
            };
            req = req.basic_auth(user, Some(pass));
        }
        if let Err(e) = req.send().await {
            tracing::debug!(error = %e.without_url(), "MMAPI mock callback not delivered");
        }
    }
}

/// The callback URL with the segment in front of `/transactions/{id}` (the path secret)
/// replaced.
fn forge_url(url: &str) -> String {
    let mut parts: Vec<&str> = url.split('/').collect();
    let n = parts.len();
    if let Some(i) = n.checked_sub(3) {
        if let Some(p) = parts.get_mut(i) {
            if *p != "rails" {
                *p = "forged-secret";
            }
        }
    }
    parts.join("/")
}

fn unanswerable(t: &Txn) -> bool {
    t.scenario == 12
}

async fn read_transaction(
    State(shared): State<Arc<Shared>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = apply_faults(&shared).await {
        return r;
    }
    if let Err(r) = check_auth(&shared, &headers) {
        return r;
    }
    let txn = shared.lock().txns.get(&reference).cloned();
    match txn {
        Some(t) if unanswerable(&t) => StatusCode::GATEWAY_TIMEOUT.into_response(),
        Some(t) => Json(transaction_object(&t)).into_response(),
        None => error_reply(
            StatusCode::NOT_FOUND,
            "identification",
            "identifierError",
            "no such transaction",
        ),
    }
}

async fn read_request_state(
    State(shared): State<Arc<Shared>>,
    Path(scid): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = apply_faults(&shared).await {
        return r;
    }
    if let Err(r) = check_auth(&shared, &headers) {
        return r;
    }
    let st = shared.lock();
    let Some(target) = st.by_scid.get(&scid).cloned() else {
        drop(st);
        return error_reply(
            StatusCode::NOT_FOUND,
            "identification",
            "identifierError",
            "no such request",
        );
    };
    if let Some(b) = st.batches.get(&target) {
        let mut rs = request_state(&scid, RequestStatus::Pending, false);
        if b.status == BatchStatus::Completed {
            rs.status = RequestStatus::Completed;
            rs.object_reference = Some(b.id.clone());
        }
        drop(st);
        return Json(rs).into_response();
    }
    let Some(t) = st.txns.get(&target).cloned() else {
        drop(st);
        return error_reply(
            StatusCode::NOT_FOUND,
            "identification",
            "identifierError",
            "no such request",
        );
    };
    drop(st);
    if unanswerable(&t) {
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    let mut rs = request_state(&scid, RequestStatus::Pending, false);
    match t.state {
        TxnState::Pending => {}
        TxnState::Completed => {
            rs.status = RequestStatus::Completed;
            rs.object_reference = Some(t.reference.clone());
        }
        TxnState::Failed(e) => {
            rs.status = RequestStatus::Failed;
            rs.error = Some(e);
        }
    }
    Json(rs).into_response()
}

async fn read_response(
    State(shared): State<Arc<Shared>>,
    Path(correlation): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = apply_faults(&shared).await {
        return r;
    }
    if let Err(r) = check_auth(&shared, &headers) {
        return r;
    }
    let Ok(correlation) = Uuid::parse_str(&correlation) else {
        return error_reply(
            StatusCode::NOT_FOUND,
            "identification",
            "identifierError",
            "no such correlation id",
        );
    };
    let st = shared.lock();
    let link = st.by_correlation.get(&correlation).cloned();
    let blocked = st
        .txns
        .values()
        .any(|t| t.correlation == correlation && unanswerable(t));
    drop(st);
    if blocked {
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    match link {
        Some(link) => Json(ResponseLink { link }).into_response(),
        None => error_reply(
            StatusCode::NOT_FOUND,
            "identification",
            "identifierError",
            "no such correlation id",
        ),
    }
}

async fn create_reversal(
    State(shared): State<Arc<Shared>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = apply_faults(&shared).await {
        return r;
    }
    if let Err(r) = check_auth(&shared, &headers) {
        return r;
    }
    let Some(correlation) = correlation_of(&headers) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "validation",
            "mandatoryValueNotSupplied",
            "X-CorrelationID is required",
        );
    };
    let req: ReversalRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "validation",
                "formatError",
                &e.to_string(),
            )
        }
    };
    let callback_url = headers
        .get("X-Callback-URL")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (original, reversal_ref, scid) = {
        let mut st = shared.lock();
        if st.by_correlation.contains_key(&correlation) {
            drop(st);
            return error_reply(
                StatusCode::BAD_REQUEST,
                "businessRule",
                "duplicateRequest",
                "already processed",
            );
        }
        let Some(orig) = st.txns.get(&reference).cloned() else {
            drop(st);
            return error_reply(
                StatusCode::NOT_FOUND,
                "identification",
                "identifierError",
                "no such transaction",
            );
        };
        if !matches!(orig.state, TxnState::Completed) || orig.reversed {
            drop(st);
            return error_reply(
                StatusCode::BAD_REQUEST,
                "businessRule",
                "incorrectState",
                "transaction cannot be reversed",
            );
        }
        if orig.scenario == REVERSAL_REFUSED {
            drop(st);
            return error_reply(
                StatusCode::BAD_REQUEST,
                "businessRule",
                "insufficientFunds",
                "the credit party no longer holds the funds to reverse",
            );
        }
        if req
            .amount
            .as_ref()
            .is_some_and(|a| *a != orig.request.amount)
        {
            drop(st);
            return error_reply(
                StatusCode::BAD_REQUEST,
                "businessRule",
                "genericError",
                "partial reversals are not supported",
            );
        }
        st.seq = st.seq.saturating_add(1);
        let reversal_ref = format!("MMR{:09}", st.seq);
        let scid = Uuid::new_v4().to_string();
        let now = now_iso();
        let mut rev = orig.clone();
        rev.reference = reversal_ref.clone();
        rev.scid = scid.clone();
        rev.correlation = correlation;
        rev.kind = "reversal".into();
        rev.state = TxnState::Completed;
        rev.scenario = 0;
        rev.created = now.clone();
        rev.modified = now;
        st.txns.insert(reversal_ref.clone(), rev);
        st.by_scid.insert(scid.clone(), reversal_ref.clone());
        let link = format!("{}/transactions/{reversal_ref}", shared.base);
        st.by_correlation.insert(correlation, link);
        if let Some(o) = st.txns.get_mut(&reference) {
            o.reversed = true;
        }
        let our_ref = orig
            .request
            .requesting_organisation_transaction_reference
            .clone()
            .unwrap_or_default();
        st.statement.push(StatementLine {
            date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
            amount: orig.request.amount.clone(),
            currency: orig.request.currency.clone(),
            direction: "reversal",
            reference: our_ref,
            counterparty: orig.counterparty.clone(),
            rail_id: reversal_ref.clone(),
        });
        (orig, reversal_ref, scid)
    };
    if original.scenario == REVERSAL_ANSWER_LOST {
        // Reversed, but the answer never arrives and no callback follows: only asking
        // (`/responses/{correlation}`) can tell the client.
        return dropped_connection();
    }
    if let Some(url) = callback_url.clone() {
        let shared2 = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(shared2.config.callback_delay).await;
            let txn = shared2.lock().txns.get(&reversal_ref).cloned();
            if let Some(t) = txn {
                let mut obj = transaction_object(&t);
                obj.original_transaction_reference = Some(original.reference.clone());
                let body = serde_json::to_vec(&obj).unwrap_or_default();
                deliver(&shared2, &url, correlation, body, false).await;
            }
        });
    }
    let state = request_state(&scid, RequestStatus::Pending, callback_url.is_none());
    (StatusCode::ACCEPTED, Json(state)).into_response()
}

async fn create_batch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = apply_faults(&shared).await {
        return r;
    }
    if let Err(r) = check_auth(&shared, &headers) {
        return r;
    }
    let Some(correlation) = correlation_of(&headers) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "validation",
            "mandatoryValueNotSupplied",
            "X-CorrelationID is required",
        );
    };
    let req: BatchRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "validation",
                "formatError",
                &e.to_string(),
            )
        }
    };
    if req.transactions.is_empty() {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "validation",
            "mandatoryValueNotSupplied",
            "no transactions",
        );
    }
    for t in &req.transactions {
        if let Err(r) = validate(t) {
            return r;
        }
    }
    let callback_url = headers
        .get("X-Callback-URL")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (batch_id, scid) = {
        let mut st = shared.lock();
        if st.by_correlation.contains_key(&correlation) {
            drop(st);
            return error_reply(
                StatusCode::BAD_REQUEST,
                "businessRule",
                "duplicateRequest",
                "already processed",
            );
        }
        st.seq = st.seq.saturating_add(1);
        let batch_id = format!("BATCH{:07}", st.seq);
        let scid = Uuid::new_v4().to_string();
        st.batches.insert(
            batch_id.clone(),
            Batch {
                id: batch_id.clone(),
                scid: scid.clone(),
                status: BatchStatus::Created,
                completions: Vec::new(),
                rejections: Vec::new(),
            },
        );
        st.by_scid.insert(scid.clone(), batch_id.clone());
        let link = format!("{}/batchtransactions/{batch_id}", shared.base);
        st.by_correlation.insert(correlation, link);
        (batch_id, scid)
    };
    let shared2 = shared.clone();
    let id2 = batch_id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(shared2.config.callback_delay).await;
        let object = process_batch(&shared2, &id2, &req.transactions);
        if let (Some(url), Some(object)) = (callback_url, object) {
            let body = serde_json::to_vec(&object).unwrap_or_default();
            deliver(&shared2, &url, correlation, body, false).await;
        }
    });
    let state = request_state(&scid, RequestStatus::Pending, false);
    (StatusCode::ACCEPTED, Json(state)).into_response()
}

fn process_batch(
    shared: &Shared,
    batch_id: &str,
    items: &[TransactionRequest],
) -> Option<BatchObject> {
    let mut st = shared.lock();
    let mut completions = Vec::new();
    let mut rejections = Vec::new();
    for item in items {
        let attempt = item
            .requesting_organisation_transaction_reference
            .clone()
            .unwrap_or_default();
        let reason = match scenario_of(&item.credit_party) {
            1 => Some("insufficientFunds"),
            2 => Some("identifierError"),
            3 => Some("requestDeclined"),
            6 => Some("incorrectState"),
            _ => None,
        };
        st.seq = st.seq.saturating_add(1);
        let reference = format!("MMT{:09}", st.seq);
        match reason {
            Some(r) => rejections.push(BatchRejection {
                transaction_reference: None,
                requesting_organisation_transaction_reference: Some(attempt),
                credit_party: item.credit_party.clone(),
                debit_party: item.debit_party.clone(),
                rejection_reason: r.into(),
                rejection_date: Some(now_iso()),
            }),
            None => {
                let our_ref = item
                    .metadata
                    .iter()
                    .find(|m| m.key == "reference")
                    .map(|m| m.value.clone())
                    .unwrap_or_default();
                let counterparty = item
                    .credit_party
                    .first()
                    .map(|p| p.value.clone())
                    .unwrap_or_default();
                if st.payouts.get(&attempt).is_none_or(|p| p.count == 0) {
                    pay(
                        &mut st,
                        &attempt,
                        &our_ref,
                        item,
                        "disbursement",
                        &counterparty,
                        &reference,
                    );
                }
                completions.push(BatchCompletion {
                    transaction_reference: reference,
                    requesting_organisation_transaction_reference: Some(attempt),
                    credit_party: item.credit_party.clone(),
                    debit_party: item.debit_party.clone(),
                    completion_date: Some(now_iso()),
                    link: None,
                });
            }
        }
    }
    let batch = st.batches.get_mut(batch_id)?;
    batch.status = BatchStatus::Completed;
    batch.completions = completions;
    batch.rejections = rejections;
    Some(batch_object(batch))
}

fn batch_object(b: &Batch) -> BatchObject {
    BatchObject {
        batch_id: b.id.clone(),
        batch_status: b.status,
        approval_date: Some(now_iso()),
        completion_date: (b.status == BatchStatus::Completed).then(now_iso),
        processing_flag: Some(b.status != BatchStatus::Completed),
        completed_count: u64::try_from(b.completions.len()).ok(),
        rejection_count: u64::try_from(b.rejections.len()).ok(),
        parsing_success_count: u64::try_from(
            b.completions.len().saturating_add(b.rejections.len()),
        )
        .ok(),
    }
}

async fn read_batch(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_auth(&shared, &headers) {
        return r;
    }
    match shared.lock().batches.get(&id) {
        Some(b) => {
            let _ = &b.scid;
            Json(batch_object(b)).into_response()
        }
        None => error_reply(
            StatusCode::NOT_FOUND,
            "identification",
            "identifierError",
            "no such batch",
        ),
    }
}

#[derive(Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn read_batch_list(
    State(shared): State<Arc<Shared>>,
    Path((id, list)): Path<(String, String)>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_auth(&shared, &headers) {
        return r;
    }
    let st = shared.lock();
    let Some(b) = st.batches.get(&id) else {
        drop(st);
        return error_reply(
            StatusCode::NOT_FOUND,
            "identification",
            "identifierError",
            "no such batch",
        );
    };
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(50).min(1000);
    let body = match list.as_str() {
        "completions" => serde_json::to_value(
            b.completions
                .iter()
                .skip(offset)
                .take(limit)
                .collect::<Vec<_>>(),
        ),
        "rejections" => serde_json::to_value(
            b.rejections
                .iter()
                .skip(offset)
                .take(limit)
                .collect::<Vec<_>>(),
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    drop(st);
    match body {
        Ok(v) => Json(v).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn control_payouts(State(shared): State<Arc<Shared>>) -> Response {
    let rows: Vec<PayoutRow> = shared.lock().payouts.values().cloned().collect();
    Json(rows).into_response()
}

async fn control_tokens(State(shared): State<Arc<Shared>>) -> Response {
    let issued = shared.lock().tokens_issued;
    Json(serde_json::json!({ "issued": issued })).into_response()
}

async fn control_faults(State(shared): State<Arc<Shared>>, Json(faults): Json<Faults>) -> Response {
    shared.lock().faults = faults.clone();
    Json(faults).into_response()
}

#[derive(Deserialize)]
struct Format {
    format: Option<String>,
}

async fn control_statement(State(shared): State<Arc<Shared>>, Query(f): Query<Format>) -> Response {
    if f.format.as_deref().is_some_and(|f| f != "csv") {
        return (StatusCode::BAD_REQUEST, "only format=csv is offered").into_response();
    }
    let lines = shared.lock().statement.clone();
    let mut out = String::from(
        "date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n",
    );
    for l in lines {
        let fee = railgate_rail::money::format_minor(
            0,
            l.currency.parse().unwrap_or(railgate_rail::Currency::Usd),
        );
        let fields = [
            l.date.as_str(),
            l.amount.as_str(),
            l.currency.as_str(),
            l.direction,
            l.reference.as_str(),
            l.counterparty.trim_start_matches('+'),
            l.rail_id.as_str(),
            fee.as_str(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    ([("Content-Type", "text/csv; charset=utf-8")], out).into_response()
}

/// Quotes a CSV field when it needs it (RFC 4180); small enough not to need a CSV crate.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
