//! A mock Daraja, in process on its own port, for the sandbox and tests.
//!
//! It speaks Daraja's wire format: OAuth tokens with a configurable lifetime (`expires_in` as
//! a string), B2C v3 acknowledgements and `Result` callbacks POSTed to `ResultURL`, STK push
//! acknowledgements and `Body.stkCallback` callbacks, STK Query (with the "being processed"
//! error while pending and string `ResultCode`s), and Transaction Status queries answered
//! asynchronously on their `ResultURL`. The scenario is chosen by the last two digits of the
//! MSISDN:
//!
//! | ends in | B2C (disbursement) | STK push (collection) |
//! |---|---|---|
//! | 00, other | Result 0 after ~100 ms | callback 0 after ~100 ms |
//! | 01 | Result 1 (insufficient balance) | callback 1 |
//! | 02 | Result 2040 (customer type not supported) | callback 1037 (user cannot be reached) |
//! | 03 | Result 2028 (not permitted; a B2C payee cannot decline) | callback 1032 (cancelled by user) |
//! | 04 | Result 0 after ~3 s | callback 0 after ~3 s (STK Query says "being processed") |
//! | 05 | no Result; status query shows Completed | no callback; STK Query 0 |
//! | 06 | no Result; status query shows Failed | no callback; STK Query "1032" |
//! | 07 | Result 0 three times | callback 0 three times |
//! | 08 | only a forged Result (wrong path secret) | only a forged callback |
//! | 09 | 503 twice, then as 00 | 503 twice, then as 00 |
//! | 10 | pays, drops the connection, no Result | pays, drops the connection, callback still sent |
//! | 11 | Result 1, then Result 0 ~2 s later | callback 1032, then 0 ~2 s later |
//! | 12 | drops the connection; status queries never answered | drops the connection; nothing else |
//!
//! STK push has no client key, so the mock recognises a resend by the attempt id at the end
//! of `CallBackURL`; B2C resends by `OriginatorConversationID`. A resend is answered with the
//! original acknowledgement and never pays twice.
//!
//! Control: `GET /_control/payouts`, `POST /_control/faults`, `GET /_control/statement?format=csv`,
//! `GET /_control/tokens` (issued count), `POST /_control/revoke_tokens`.

// Handlers short-circuit with ready-made responses; boxing them would only add noise.
#![allow(clippy::result_large_err)]

use crate::adapter::stk_password;
use crate::wire::{
    Ack, CallbackMetadata, ErrorEnvelope, Item, OneOrMany, Param, ResultBody, ResultEnvelope,
    ResultParameters, StkAck, StkBody, StkCallback, StkCallbackEnvelope,
};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct MpesaMockConfig {
    pub consumer_key: String,
    pub consumer_secret: String,
    /// How long an issued token is honoured (and what `expires_in` says).
    pub token_lifetime: Duration,
    /// The STK shortcode and passkey the password is checked against.
    pub stk_shortcode: String,
    pub passkey: String,
    pub callback_delay: Duration,
    pub pending_delay: Duration,
    pub conflict_delay: Duration,
    /// Serve HTTPS with this (certificates the test made); `None` serves plain HTTP.
    pub tls: Option<Arc<railgate_rail::tls::rustls::ServerConfig>>,
    /// TLS for the mock's own callbacks to the gateway.
    pub callback_tls: Option<railgate_rail::tls::ClientTls>,
}

impl Default for MpesaMockConfig {
    fn default() -> Self {
        MpesaMockConfig {
            consumer_key: "sandbox-key".into(),
            consumer_secret: "sandbox-secret".into(),
            token_lifetime: Duration::from_secs(3600),
            stk_shortcode: "174379".into(),
            passkey: "sandbox-passkey".into(),
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
    /// STK Query answers name another CheckoutRequestID than the one asked about (a
    /// misrouted answer): the adapter must take it for no answer.
    pub stk_query_other_checkout: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    B2c,
    Stk,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PayState {
    Pending,
    Completed,
    Failed(i64, String),
}

#[derive(Debug, Clone)]
struct Payment {
    kind: Kind,
    attempt: String,
    reference: String,
    amount: i64,
    msisdn: String,
    scenario: u8,
    conversation_id: String,
    merchant_request_id: String,
    receipt: String,
    result_url: String,
    state: PayState,
    ack: Value,
}

#[derive(Debug, Clone)]
struct StatementLine {
    date: String,
    amount: i64,
    direction: &'static str,
    reference: String,
    counterparty: String,
    receipt: String,
}

#[derive(Debug, Default)]
struct MockState {
    faults: Faults,
    seq: u64,
    /// By attempt id (B2C OriginatorConversationID, or the STK callback path's attempt id).
    payments: HashMap<String, Payment>,
    /// STK CheckoutRequestID → attempt id.
    by_checkout: HashMap<String, String>,
    unavailable_served: HashMap<String, u8>,
    payouts: BTreeMap<String, PayoutRow>,
    statement: Vec<StatementLine>,
    tokens: HashMap<String, Instant>,
    tokens_issued: u64,
}

struct Shared {
    config: MpesaMockConfig,
    state: Mutex<MockState>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running mock Daraja; stops when dropped.
pub struct MpesaMock {
    addr: SocketAddr,
    scheme: &'static str,
    task: JoinHandle<()>,
}

impl MpesaMock {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(config: MpesaMockConfig) -> std::io::Result<MpesaMock> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let tls = config.tls.clone();
        let shared = Arc::new(Shared {
            state: Mutex::new(MockState::default()),
            http: railgate_rail::tls::client_builder(config.callback_tls.as_ref())
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(std::io::Error::other)?,
            config,
        });
        let app = Router::new()
            .route("/oauth/v1/generate", get(issue_token))
            .route("/mpesa/b2c/v3/paymentrequest", post(b2c_request))
            .route("/mpesa/b2c/v1/paymentrequest", post(b2c_request))
            .route("/mpesa/stkpush/v1/processrequest", post(stk_push))
            .route("/mpesa/stkpushquery/v1/query", post(stk_query))
            .route(
                "/mpesa/transactionstatus/v1/query",
                post(transaction_status),
            )
            .route("/_control/payouts", get(control_payouts))
            .route("/_control/faults", post(control_faults))
            .route("/_control/statement", get(control_statement))
            .route("/_control/tokens", get(control_tokens))
            .route("/_control/revoke_tokens", post(control_revoke))
            .with_state(shared);
        let task = tokio::spawn(async move {
            let served = match tls {
                Some(tls) => {
                    axum::serve(railgate_rail::tls::TlsListener::new(listener, tls), app).await
                }
                None => axum::serve(listener, app).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "M-Pesa mock stopped");
            }
        });
        Ok(MpesaMock { addr, scheme, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API root to configure the adapter with.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn control_url(&self) -> String {
        format!("{}://{}/_control", self.scheme, self.addr)
    }
}

impl Drop for MpesaMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn request_id() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}-{}-1",
        rng.gen_range(10000..99999),
        rng.gen_range(1_000_000..99_999_999)
    )
}

fn daraja_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(ErrorEnvelope {
            request_id: request_id(),
            error_code: code.into(),
            error_message: message.into(),
        }),
    )
        .into_response()
}

fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "mock dropped the connection",
        ))
    });
    Response::new(Body::from_stream(stream))
}

async fn issue_token(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let expected = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        shared.config.consumer_key, shared.config.consumer_secret
    ));
    let given = headers
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    if given != Some(expected.as_str()) {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.008.01",
            "Invalid Authentication passed",
        );
    }
    let token: String = Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(28)
        .collect();
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
    // Daraja sends `expires_in` as a string.
    Json(serde_json::json!({"access_token": token, "expires_in": lifetime.as_secs().to_string()}))
        .into_response()
}

async fn guard(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let faults = shared.lock().faults.clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let token = headers
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let valid = shared
        .lock()
        .tokens
        .get(token)
        .is_some_and(|exp| Instant::now() < *exp);
    if !valid {
        return Err(daraja_error(
            StatusCode::UNAUTHORIZED,
            "401.002.01",
            "Error Occurred - Invalid Access Token",
        ));
    }
    if faults.error_rate_percent > 0
        && rand::thread_rng().gen_range(0u8..100) < faults.error_rate_percent
    {
        return Err(daraja_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "503.001.01",
            "Service Unavailable",
        ));
    }
    Ok(())
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A whole positive amount given as a number or a digit string; anything else is refused,
/// as Daraja does ("Invalid Amount").
fn whole_amount(v: &Value) -> Option<i64> {
    let s = match v.get("Amount")? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|a| *a > 0)
}

fn valid_msisdn(s: &str) -> bool {
    s.len() == 12 && s.starts_with("254") && s.bytes().all(|b| b.is_ascii_digit())
}

fn scenario_of(msisdn: &str) -> u8 {
    let digits: Vec<u8> = msisdn
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b.saturating_sub(b'0'))
        .collect();
    match digits.as_slice() {
        [.., t, u] => t.saturating_mul(10).saturating_add(*u),
        [u] => *u,
        [] => 0,
    }
}

fn receipt(seq: u64) -> String {
    // M-Pesa receipts are ten upper-case alphanumerics.
    let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..6)
        .map(|_| {
            char::from(
                *alphabet
                    .get(rng.gen_range(0..alphabet.len()))
                    .unwrap_or(&b'X'),
            )
        })
        .collect();
    format!("SK{:02}{tail}", seq.checked_rem(100).unwrap_or(0))
}

/// The steps after an acknowledgement.
#[derive(Debug, Clone)]
enum Step {
    Wait(Duration),
    Complete,
    Fail(i64, &'static str),
    Callback,
    Forged,
}

fn plan(kind: Kind, scenario: u8, c: &MpesaMockConfig) -> Vec<Step> {
    let d = c.callback_delay;
    let (s01, s02, s03) = match kind {
        Kind::B2c => (
            (1, "The balance is insufficient for the transaction."),
            (2040, "Credit Party customer type (Unregistered or Registered Customer) can't be supported by the service."),
            (2028, "The request is not permitted according to product assignment."),
        ),
        Kind::Stk => (
            (1, "The balance is insufficient for the transaction."),
            (1037, "DS timeout user cannot be reached"),
            (1032, "Request cancelled by user"),
        ),
    };
    match scenario {
        1 => vec![Step::Wait(d), Step::Fail(s01.0, s01.1), Step::Callback],
        2 => vec![Step::Wait(d), Step::Fail(s02.0, s02.1), Step::Callback],
        3 => vec![Step::Wait(d), Step::Fail(s03.0, s03.1), Step::Callback],
        4 => vec![Step::Wait(c.pending_delay), Step::Complete, Step::Callback],
        5 => vec![Step::Wait(d), Step::Complete],
        6 => vec![Step::Wait(d), Step::Fail(1032, "Request cancelled by user")],
        7 => vec![
            Step::Wait(d),
            Step::Complete,
            Step::Callback,
            Step::Callback,
            Step::Callback,
        ],
        8 => vec![Step::Wait(d), Step::Complete, Step::Forged],
        10 => match kind {
            Kind::B2c => vec![Step::Complete],
            Kind::Stk => vec![Step::Complete, Step::Wait(d), Step::Callback],
        },
        11 => {
            let first = match kind {
                Kind::B2c => (1, "The balance is insufficient for the transaction."),
                Kind::Stk => (1032, "Request cancelled by user"),
            };
            vec![
                Step::Wait(d),
                Step::Fail(first.0, first.1),
                Step::Callback,
                Step::Wait(c.conflict_delay),
                Step::Complete,
                Step::Callback,
            ]
        }
        12 => Vec::new(),
        _ => vec![Step::Wait(d), Step::Complete, Step::Callback],
    }
}

async fn b2c_request(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = guard(&shared, &headers).await {
        return r;
    }
    let ocid = text(&body, "OriginatorConversationID");
    let Some(amount) = whole_amount(&body) else {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid Amount",
        );
    };
    let msisdn = text(&body, "PartyB");
    if !valid_msisdn(&msisdn) {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid PartyB",
        );
    }
    let result_url = text(&body, "ResultURL");
    if ocid.is_empty() || result_url.is_empty() || text(&body, "QueueTimeOutURL").is_empty() {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Mandatory field missing",
        );
    }
    if !["SalaryPayment", "BusinessPayment", "PromotionPayment"]
        .contains(&text(&body, "CommandID").as_str())
        || text(&body, "SecurityCredential").is_empty()
        || text(&body, "InitiatorName").is_empty()
    {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid Initiator",
        );
    }
    let scenario = scenario_of(&msisdn);
    let ack = {
        let mut st = shared.lock();
        if let Some(p) = st.payments.get(&ocid) {
            // A resend: the original acknowledgement, nothing new.
            let ack = p.ack.clone();
            drop(st);
            return Json(ack).into_response();
        }
        if scenario == 9 {
            let served = st.unavailable_served.entry(ocid.clone()).or_insert(0);
            if *served < 2 {
                *served = served.saturating_add(1);
                drop(st);
                return daraja_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "503.001.01",
                    "Service Unavailable",
                );
            }
        }
        st.seq = st.seq.saturating_add(1);
        let seq = st.seq;
        let conversation_id = format!(
            "AG_{}_{}",
            chrono::Utc::now().format("%Y%m%d"),
            Uuid::new_v4()
                .simple()
                .to_string()
                .chars()
                .take(20)
                .collect::<String>()
        );
        let ack = serde_json::to_value(Ack {
            conversation_id: conversation_id.clone(),
            originator_conversation_id: ocid.clone(),
            response_code: "0".into(),
            response_description: "Accept the service request successfully.".into(),
        })
        .unwrap_or(Value::Null);
        st.payments.insert(
            ocid.clone(),
            Payment {
                kind: Kind::B2c,
                attempt: ocid.clone(),
                reference: text(&body, "Occasion"),
                amount,
                msisdn,
                scenario,
                conversation_id,
                merchant_request_id: String::new(),
                receipt: receipt(seq),
                result_url,
                state: PayState::Pending,
                ack: ack.clone(),
            },
        );
        ack
    };
    respond_after_plan(shared, ocid, Kind::B2c, scenario, ack).await
}

async fn stk_push(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = guard(&shared, &headers).await {
        return r;
    }
    let shortcode = text(&body, "BusinessShortCode");
    let timestamp = text(&body, "Timestamp");
    if shortcode != shared.config.stk_shortcode
        || text(&body, "Password") != stk_password(&shortcode, &shared.config.passkey, &timestamp)
    {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid Password",
        );
    }
    let Some(amount) = whole_amount(&body) else {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid Amount",
        );
    };
    let msisdn = text(&body, "PhoneNumber");
    if !valid_msisdn(&msisdn) || !valid_msisdn(&text(&body, "PartyA")) {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid PhoneNumber",
        );
    }
    let callback_url = text(&body, "CallBackURL");
    if !callback_url.starts_with("http") {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid CallBackURL",
        );
    }
    if text(&body, "AccountReference").chars().count() > 12 {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid AccountReference",
        );
    }
    // The mock's own convention: the attempt id is the last segment of the callback URL.
    let attempt = callback_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let scenario = scenario_of(&msisdn);
    let ack = {
        let mut st = shared.lock();
        if let Some(p) = st.payments.get(&attempt) {
            let ack = p.ack.clone();
            drop(st);
            return Json(ack).into_response();
        }
        if scenario == 9 {
            let served = st.unavailable_served.entry(attempt.clone()).or_insert(0);
            if *served < 2 {
                *served = served.saturating_add(1);
                drop(st);
                return daraja_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "503.001.01",
                    "Service Unavailable",
                );
            }
        }
        st.seq = st.seq.saturating_add(1);
        let seq = st.seq;
        let checkout = format!(
            "ws_CO_{}{seq:06}",
            chrono::Utc::now().format("%d%m%Y%H%M%S")
        );
        let merchant = format!(
            "{}-{}-1",
            29000u64.saturating_add(seq),
            34_620_561u64.saturating_add(seq)
        );
        let ack = serde_json::to_value(StkAck {
            merchant_request_id: merchant.clone(),
            checkout_request_id: checkout.clone(),
            response_code: "0".into(),
            response_description: "Success. Request accepted for processing".into(),
            customer_message: "Success. Request accepted for processing".into(),
        })
        .unwrap_or(Value::Null);
        st.by_checkout.insert(checkout.clone(), attempt.clone());
        st.payments.insert(
            attempt.clone(),
            Payment {
                kind: Kind::Stk,
                attempt: attempt.clone(),
                reference: text(&body, "AccountReference"),
                amount,
                msisdn,
                scenario,
                conversation_id: checkout,
                merchant_request_id: merchant,
                receipt: receipt(seq),
                result_url: callback_url,
                state: PayState::Pending,
                ack: ack.clone(),
            },
        );
        ack
    };
    respond_after_plan(shared, attempt, Kind::Stk, scenario, ack).await
}

/// Starts the scenario's plan and answers (or drops the connection).
async fn respond_after_plan(
    shared: Arc<Shared>,
    key: String,
    kind: Kind,
    scenario: u8,
    ack: Value,
) -> Response {
    let steps = plan(kind, scenario, &shared.config);
    let before_ack = shared.lock().faults.callback_before_ack;
    if before_ack {
        run_steps(shared.clone(), key, steps, true).await;
    } else if scenario == 10 {
        // Acts first (pays), then loses the connection; any callback follows on its own.
        let (now, later): (Vec<Step>, Vec<Step>) = split_first_wait(steps);
        run_steps(shared.clone(), key.clone(), now, true).await;
        tokio::spawn(run_steps(shared.clone(), key, later, false));
    } else {
        tokio::spawn(run_steps(shared.clone(), key, steps, false));
    }
    if scenario == 10 || scenario == 12 {
        return dropped_connection();
    }
    Json(ack).into_response()
}

fn split_first_wait(steps: Vec<Step>) -> (Vec<Step>, Vec<Step>) {
    let i = steps
        .iter()
        .position(|s| matches!(s, Step::Wait(_)))
        .unwrap_or(steps.len());
    let mut now = steps;
    let later = now.split_off(i);
    (now, later)
}

async fn run_steps(shared: Arc<Shared>, key: String, steps: Vec<Step>, immediate: bool) {
    let mut waited = false;
    for step in steps {
        match step {
            Step::Wait(d) => {
                if !immediate || waited {
                    tokio::time::sleep(d).await;
                }
                waited = true;
            }
            Step::Complete => complete(&shared, &key),
            Step::Fail(code, desc) => {
                if let Some(p) = shared.lock().payments.get_mut(&key) {
                    p.state = PayState::Failed(code, desc.to_owned());
                }
            }
            Step::Callback | Step::Forged => {
                let payment = shared.lock().payments.get(&key).cloned();
                if let Some(p) = payment {
                    let body = callback_body(&p);
                    let url = if matches!(step, Step::Forged) {
                        forge_url(&p.result_url)
                    } else {
                        p.result_url.clone()
                    };
                    deliver(&shared, &url, body).await;
                }
            }
        }
    }
}

fn complete(shared: &Shared, key: &str) {
    let mut st = shared.lock();
    let Some(p) = st.payments.get_mut(key) else {
        return;
    };
    if p.state == PayState::Completed {
        return;
    }
    p.state = PayState::Completed;
    let p = p.clone();
    let row = st
        .payouts
        .entry(p.attempt.clone())
        .or_insert_with(|| PayoutRow {
            attempt_id: p.attempt.clone(),
            reference: p.reference.clone(),
            amount: p.amount.to_string(),
            currency: "KES".into(),
            count: 0,
        });
    row.count = row.count.saturating_add(1);
    st.statement.push(StatementLine {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        amount: p.amount,
        direction: match p.kind {
            Kind::B2c => "disbursement",
            Kind::Stk => "collection",
        },
        reference: p.reference.clone(),
        counterparty: p.msisdn.clone(),
        receipt: p.receipt.clone(),
    });
}

fn param(key: &str, value: Value) -> Param {
    Param {
        key: key.into(),
        value: Some(value),
    }
}

fn callback_body(p: &Payment) -> Vec<u8> {
    let (code, desc) = match &p.state {
        PayState::Completed => (
            0,
            "The service request is processed successfully.".to_owned(),
        ),
        PayState::Failed(c, d) => (*c, d.clone()),
        PayState::Pending => (0, String::new()),
    };
    let value = match p.kind {
        Kind::B2c => serde_json::to_value(ResultEnvelope {
            result: ResultBody {
                result_type: Some(Value::from(0)),
                result_code: Value::from(code),
                result_desc: desc,
                originator_conversation_id: p.attempt.clone(),
                conversation_id: p.conversation_id.clone(),
                transaction_id: Some(p.receipt.clone()),
                result_parameters: (code == 0).then(|| ResultParameters {
                    result_parameter: OneOrMany::Many(vec![
                        param("TransactionAmount", Value::from(p.amount)),
                        param("TransactionReceipt", Value::from(p.receipt.clone())),
                        param("B2CRecipientIsRegisteredCustomer", Value::from("Y")),
                        param(
                            "ReceiverPartyPublicName",
                            Value::from(format!("{} - Test Customer", p.msisdn)),
                        ),
                        param(
                            "TransactionCompletedDateTime",
                            Value::from(chrono::Utc::now().format("%d.%m.%Y %H:%M:%S").to_string()),
                        ),
                    ]),
                }),
                reference_data: Some(serde_json::json!({
                    "ReferenceItem": {"Key": "QueueTimeoutURL", "Value": "https://internalsandbox.safaricom.co.ke/mpesa/b2cresults/v1/submit"}
                })),
            },
        }),
        Kind::Stk => serde_json::to_value(StkCallbackEnvelope {
            body: StkBody {
                stk_callback: StkCallback {
                    merchant_request_id: p.merchant_request_id.clone(),
                    checkout_request_id: p.conversation_id.clone(),
                    result_code: Value::from(code),
                    result_desc: desc,
                    callback_metadata: (code == 0).then(|| CallbackMetadata {
                        item: vec![
                            Item {
                                name: "Amount".into(),
                                value: Some(Value::from(p.amount)),
                            },
                            Item {
                                name: "MpesaReceiptNumber".into(),
                                value: Some(Value::from(p.receipt.clone())),
                            },
                            Item {
                                name: "Balance".into(),
                                value: None,
                            },
                            Item {
                                name: "TransactionDate".into(),
                                value: chrono::Utc::now()
                                    .format("%Y%m%d%H%M%S")
                                    .to_string()
                                    .parse::<u64>()
                                    .ok()
                                    .map(Value::from),
                            },
                            Item {
                                name: "PhoneNumber".into(),
                                value: p.msisdn.parse::<u64>().ok().map(Value::from),
                            },
                        ],
                    }),
                },
            },
        }),
    };
    value
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_default()
}

/// The callback URL with its secret segment (third from the end in every Daraja route the
/// adapter registers) replaced: a forger who knows the layout but not the secret.
fn forge_url(url: &str) -> String {
    let mut parts: Vec<&str> = url.split('/').collect();
    if let Some(i) = parts.len().checked_sub(3) {
        if let Some(p) = parts.get_mut(i) {
            *p = "forged-secret-0000000000";
        }
    }
    parts.join("/")
}

/// POSTs a callback, honouring the callback faults. Daraja sends no signature and no auth.
async fn deliver(shared: &Shared, url: &str, body: Vec<u8>) {
    let faults = shared.lock().faults.clone();
    if faults.drop_callbacks {
        return;
    }
    let times = if faults.duplicate_callbacks { 2 } else { 1 };
    for _ in 0..times {
        let sent = shared
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e.without_url(), "M-Pesa mock callback not delivered");
        }
    }
}

async fn stk_query(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = guard(&shared, &headers).await {
        return r;
    }
    let shortcode = text(&body, "BusinessShortCode");
    if text(&body, "Password")
        != stk_password(
            &shortcode,
            &shared.config.passkey,
            &text(&body, "Timestamp"),
        )
    {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid Password",
        );
    }
    let checkout = text(&body, "CheckoutRequestID");
    let st = shared.lock();
    let payment = st
        .by_checkout
        .get(&checkout)
        .and_then(|a| st.payments.get(a))
        .cloned();
    drop(st);
    let Some(p) = payment else {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid CheckoutRequestID",
        );
    };
    let (code, desc) = match (&p.state, p.scenario) {
        (_, 12) | (PayState::Pending, _) => {
            return daraja_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500.001.1001",
                "The transaction is being processed",
            )
        }
        (PayState::Completed, _) => (
            0,
            "The service request is processed successfully.".to_owned(),
        ),
        (PayState::Failed(c, d), _) => (*c, d.clone()),
    };
    let named = if shared.lock().faults.stk_query_other_checkout {
        format!("ws_CO_other_{}", p.conversation_id)
    } else {
        p.conversation_id.clone()
    };
    // STK Query gives ResultCode as a string.
    Json(serde_json::json!({
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successsfully",
        "MerchantRequestID": p.merchant_request_id,
        "CheckoutRequestID": named,
        "ResultCode": code.to_string(),
        "ResultDesc": desc,
    }))
    .into_response()
}

async fn transaction_status(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = guard(&shared, &headers).await {
        return r;
    }
    let result_url = text(&body, "ResultURL");
    if result_url.is_empty() || text(&body, "CommandID") != "TransactionStatusQuery" {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            "Bad Request - Invalid Request",
        );
    }
    let original = text(&body, "OriginatorConversationID");
    let receipt_asked = text(&body, "TransactionID");
    let payment = {
        let st = shared.lock();
        st.payments
            .values()
            .find(|p| {
                p.kind == Kind::B2c
                    && ((!original.is_empty() && p.attempt == original)
                        || p.receipt == receipt_asked)
            })
            .cloned()
    };
    let query_id = Uuid::new_v4().to_string();
    let conversation = format!(
        "AG_{}_{}",
        chrono::Utc::now().format("%Y%m%d"),
        Uuid::new_v4().simple()
    );
    let ack = Ack {
        conversation_id: conversation.clone(),
        originator_conversation_id: query_id.clone(),
        response_code: "0".into(),
        response_description: "Accept the service request successfully.".into(),
    };
    if payment.as_ref().is_none_or(|p| p.scenario != 12) {
        let shared2 = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(shared2.config.callback_delay).await;
            let (code, desc, params) = match &payment {
                None => (2032, "The transaction could not be found.".to_owned(), None),
                Some(p) => {
                    let (status, reason) = match &p.state {
                        PayState::Completed => ("Completed", String::new()),
                        PayState::Failed(_, d) => ("Failed", d.clone()),
                        PayState::Pending => ("Pending", String::new()),
                    };
                    let mut list = vec![
                        param("ReceiptNo", Value::from(p.receipt.clone())),
                        param("ConversationID", Value::from(p.conversation_id.clone())),
                        param("TransactionStatus", Value::from(status)),
                        param("Amount", Value::from(p.amount)),
                        param("OriginatorConversationID", Value::from(p.attempt.clone())),
                        param(
                            "FinalisedTime",
                            Value::from(chrono::Utc::now().format("%Y%m%d%H%M%S").to_string()),
                        ),
                    ];
                    if !reason.is_empty() {
                        list.push(param("ReasonType", Value::from(reason)));
                    }
                    (
                        0,
                        "The service request has been accepted successfully.".to_owned(),
                        Some(ResultParameters {
                            result_parameter: OneOrMany::Many(list),
                        }),
                    )
                }
            };
            let envelope = ResultEnvelope {
                result: ResultBody {
                    result_type: Some(Value::from(0)),
                    result_code: Value::from(code),
                    result_desc: desc,
                    originator_conversation_id: query_id,
                    conversation_id: conversation,
                    transaction_id: payment.as_ref().map(|p| p.receipt.clone()),
                    result_parameters: params,
                    reference_data: None,
                },
            };
            let body = serde_json::to_vec(&envelope).unwrap_or_default();
            deliver(&shared2, &result_url, body).await;
        });
    }
    Json(ack).into_response()
}

async fn control_payouts(State(shared): State<Arc<Shared>>) -> Response {
    let rows: Vec<PayoutRow> = shared.lock().payouts.values().cloned().collect();
    Json(rows).into_response()
}

async fn control_faults(State(shared): State<Arc<Shared>>, Json(faults): Json<Faults>) -> Response {
    shared.lock().faults = faults.clone();
    Json(faults).into_response()
}

async fn control_tokens(State(shared): State<Arc<Shared>>) -> Response {
    let issued = shared.lock().tokens_issued;
    Json(serde_json::json!({ "issued": issued })).into_response()
}

/// Makes every issued token invalid at once (Daraja may drop tokens before their time).
async fn control_revoke(State(shared): State<Arc<Shared>>) -> Response {
    shared.lock().tokens.clear();
    StatusCode::NO_CONTENT.into_response()
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
        let amount = railgate_rail::money::format_minor(
            l.amount.saturating_mul(100),
            railgate_rail::Currency::Kes,
        );
        let fields = [
            l.date.as_str(),
            amount.as_str(),
            "KES",
            l.direction,
            l.reference.as_str(),
            l.counterparty.as_str(),
            l.receipt.as_str(),
            "0.00",
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
