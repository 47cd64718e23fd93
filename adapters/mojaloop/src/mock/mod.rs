//! A mock Mojaloop hub for the sandbox and the tests: in-process, on its own port, it plays the
//! switch and one peer FSP (`peer_fsp_id`), which is the payee's FSP for our disbursements and
//! the payer's FSP for our collections. It speaks FSPIOP v1.1, validates every request Railgate
//! sends (answering `400` with a `3100`-family `errorInformation` when it does not validate)
//! and sends its callbacks to the callback base where Railgate's hub endpoints are registered.
//!
//! Scenarios, by the last two digits of the party's identifier (the payee of a disbursement,
//! the payer of a request-to-pay):
//!
//! | ends in | disbursement (the mock is the payee FSP) | request-to-pay (the mock is the payer FSP) |
//! |---|---|---|
//! | 00, others | `PUT /transfers` COMMITTED within ~50 ms | `PUT /transactionRequests` RECEIVED; the payer pays (`POST /quotes`, `POST /transfers` to us) |
//! | 01 | `PUT /transfers/{id}/error` 4001 | RECEIVED, then `PUT /transactionRequests/{id}/error` 4001 |
//! | 02 | `PUT /parties/…/error` 3204 | same (the payer's lookup) |
//! | 03 | `PUT /transfers/{id}/error` 5105 | RECEIVED, then `PUT /transactionRequests/{id}/error` 4101 |
//! | 04 | COMMITTED after `pending_delay` (3 s) | RECEIVED; the payer approves and pays after `pending_delay` |
//! | 05 | no callback; `GET /transfers` shows COMMITTED | no callback; `GET /transactionRequests` shows ACCEPTED, and the payer pays |
//! | 06 | no callback; `GET /transfers` shows ABORTED | no callback (the payer declined); `GET /transactionRequests` shows REJECTED |
//! | 07 | COMMITTED three times | the payer FSP sends its `POST /transfers` three times (byte-identical) |
//! | 08 | one forged COMMITTED (bad signature, or `FSPIOP-Source: roguefsp` without JWS); `GET` shows COMMITTED | one forged `PUT /transactionRequests` REJECTED (same forgeries); `GET` shows ACCEPTED, and the payer pays |
//! | 09 | `503` twice on `POST /transfers` (nothing recorded), then accepted | `503` twice on `POST /transactionRequests`, then as 00 |
//! | 10 | committed, then the connection drops before the answer | recorded, then the connection drops; `GET` shows ACCEPTED, and the payer pays |
//! | 11 | `…/error` 3303, then COMMITTED `late_success_delay` (2 s) later | `…/error` 4101, then the payer pays `late_success_delay` later |
//! | 12 | accepted; no callback, `GET /transfers` never answered | accepted; no callback, `GET /transactionRequests` never answered |
//! | 13 | as 00 | `PUT /transactionRequests` ACCEPTED with its `transactionId` at once; its `POST /quotes` leaves out the optional `transactionRequestId` |
//!
//! Payrolls through bulk (`/bulkQuotes`, `/bulkTransfers`) answer line by line from the same
//! digits; see the `bulk` module for that column of the table.
//!
//! As payer FSP the mock can only pay with Railgate's fulfilment (the switch commits a transfer
//! when the payee FSP fulfils it), so a request-to-pay that "succeeds by inquiry" (05, 08, 10)
//! is one whose payer FSP says nothing until it is asked: the inquiry's answer is `ACCEPTED`
//! with the `transactionId`, and the payer's quote and transfer follow it.
//!
//! Control endpoints: `GET /_control/payouts`, `POST /_control/faults`,
//! `GET /_control/statement?format=csv`, `POST /_control/push` (play an insuree paying the
//! scheme), `GET /_control/collections`, `PUT /_control/callback-base`.

mod bulk;
mod exchange;
pub mod validate;

use crate::ilp::{self, IlpKey, IlpVersion};
use crate::jws::{JwsSigner, JwsVerifier, Protected};
use crate::wire::{
    self, fspiop_datetime, http_date, id_string, ErrorInformationObject, FspiopMoney,
};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use chrono::Utc;
use exchange::{deliver, handle, Sign};
use railgate_rail::{Currency, Money};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;
use validate::Invalid;

/// The mock's JWS: the key its FSPs sign with, and Railgate's public key to check requests.
#[derive(Debug, Clone)]
pub struct MockJws {
    pub signer: JwsSigner,
    /// When present, every request with a body from Railgate must carry a valid signature.
    pub railgate: Option<JwsVerifier>,
    /// Another key, for scenario 08's forged callback.
    pub forger: JwsSigner,
}

#[derive(Debug, Clone)]
pub struct MockHubConfig {
    /// The switch's FSP id.
    pub hub_fsp_id: String,
    /// The peer FSP: owner of every party looked up, payee of disbursements, payer of collections.
    pub peer_fsp_id: String,
    /// Railgate's FSP id (the only FSP that may call the mock).
    pub dfsp_id: String,
    /// Railgate's callback base (`{gateway}/rails/{rail_id}`); can be set later.
    pub callback_base: Option<String>,
    pub jws: Option<MockJws>,
    /// The peer FSP's ILP secret (as payee of our disbursements).
    pub ilp_secret: String,
    pub ilp_version: IlpVersion,
    /// Delay of ordinary callbacks.
    pub callback_delay: Duration,
    /// Scenario 04's wait before COMMITTED.
    pub pending_delay: Duration,
    /// Scenario 11's wait between the error and the late COMMITTED.
    pub late_success_delay: Duration,
    /// Serve HTTPS with this (a hub ingress that requires mutual TLS, with certificates the
    /// test made); `None` serves plain HTTP.
    pub tls: Option<Arc<railgate_rail::tls::rustls::ServerConfig>>,
    /// TLS for the hub's own requests to Railgate.
    pub callback_tls: Option<railgate_rail::tls::ClientTls>,
    /// An API gateway in front of the hub: FSPIOP requests need a bearer token from
    /// `POST /oauth2/token`, issued to this client id and secret (Basic or form body).
    pub oauth_client: Option<(String, String)>,
}

impl MockHubConfig {
    pub fn new(dfsp_id: &str) -> Self {
        MockHubConfig {
            hub_fsp_id: "switch".to_owned(),
            peer_fsp_id: "mockdfsp".to_owned(),
            dfsp_id: dfsp_id.to_owned(),
            callback_base: None,
            jws: None,
            ilp_secret: "mock-peer-ilp-secret".to_owned(),
            ilp_version: IlpVersion::V4,
            callback_delay: Duration::from_millis(50),
            pending_delay: Duration::from_secs(3),
            late_success_delay: Duration::from_secs(2),
            tls: None,
            callback_tls: None,
            oauth_client: None,
        }
    }
}

/// `POST /_control/faults`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub drop_callbacks: bool,
    #[serde(default)]
    pub error_rate_percent: u8,
    /// The next this many `PUT /bulkTransfers/{id}` answers are not delivered (the bulk is
    /// recorded; `GET /bulkTransfers/{id}` answers it).
    #[serde(default)]
    pub drop_bulk_answers: u32,
    /// The next this many `POST /bulkTransfers` are recorded (and paid), then their
    /// connection drops before the HTTP answer.
    #[serde(default)]
    pub cut_bulk_connections: u32,
}

/// One line of `GET /_control/payouts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// `disbursement` (we paid the mock's payee) or `collection` (the mock's payer paid us).
    pub direction: String,
    pub attempt_id: String,
    pub transfer_id: String,
    pub reference: String,
    pub amount: String,
    pub currency: String,
    pub count: u32,
}

/// A collection the mock (as payer FSP) paid to Railgate, or tried to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collected {
    pub transfer_id: String,
    pub transaction_request_id: Option<String>,
    pub reference: String,
    pub amount: String,
    pub currency: String,
    /// COMMITTED with a fulfilment matching the condition.
    pub committed: bool,
    /// Railgate's error code, if it refused.
    pub error_code: Option<String>,
}

/// A request Railgate sent the mock, with its exact body (tests compare it with the bytes the
/// gateway stored before sending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Every header as it arrived (names lower-case), to pin what Railgate sends.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A callback the mock delivered to Railgate and the status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub method: String,
    pub path: String,
    pub source: String,
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
struct StatementLine {
    date: String,
    amount: String,
    currency: String,
    direction: &'static str,
    reference: String,
    counterparty: String,
    rail_transaction_id: String,
    fee: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TransferState {
    Pending,
    Committed,
    Aborted,
    Failed { code: String, description: String },
}

#[derive(Debug, Clone)]
struct TransferRec {
    hash: String,
    scenario: u8,
    state: TransferState,
    fulfilment: String,
    amount: FspiopMoney,
    reference: String,
}

/// Where a request-to-pay stands at the mock as payer FSP.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestState {
    Received,
    /// The payer approved; its quote and transfer are (or were) on their way.
    Accepted,
    Rejected,
    Failed {
        code: String,
        description: String,
    },
}

/// A `POST /transactionRequests` the mock recorded.
#[derive(Debug, Clone)]
struct RequestRec {
    hash: String,
    scenario: u8,
    state: RequestState,
    /// The payer FSP's transaction (and transfer) id for this request.
    transaction_id: String,
    /// The request as received, for the quote the payer FSP sends when it pays.
    body: Value,
    /// The payer's quote went out (it pays at most once per request).
    paying: bool,
}

#[derive(Debug, Clone)]
struct Collection {
    /// How many times the payer FSP sends its `POST /transfers` (scenario 07: three).
    copies: u32,
    quote_id: String,
    transfer_id: String,
    transaction_request_id: Option<String>,
    reference: String,
    amount: FspiopMoney,
    payer_msisdn: String,
    condition: Option<String>,
}

#[derive(Default)]
struct Inner {
    faults: Faults,
    quotes: HashMap<String, String>,
    transfers: HashMap<String, TransferRec>,
    post_attempts: HashMap<String, u32>,
    payouts: BTreeMap<String, Payout>,
    statement: Vec<StatementLine>,
    pushes: HashMap<String, Collection>,
    requests: HashMap<String, RequestRec>,
    collections: HashMap<String, Collection>,
    collected: Vec<Collected>,
    deliveries: Vec<Delivery>,
    rejections: Vec<Invalid>,
    received: Vec<Received>,
    /// Bearer tokens issued by `POST /oauth2/token` (the latest is the only one honoured).
    tokens_issued: u64,
    /// Bulk quotes and transfers by id, and each bulk line's terms by transfer id.
    bulk_quotes: HashMap<String, bulk::Recorded>,
    bulk_transfers: HashMap<String, bulk::Recorded>,
    bulk_lines: HashMap<String, bulk::LineTerms>,
}

struct Shared {
    config: MockHubConfig,
    callback_base: Mutex<Option<String>>,
    http: reqwest::Client,
    /// Callbacks being delivered at once, at most [`CALLBACKS_IN_FLIGHT`], as a hub's
    /// outbound connection pool bounds them; the others queue.
    sending: tokio::sync::Semaphore,
    peer_key: IlpKey,
    inner: Mutex<Inner>,
}

/// Callbacks the hub has on the wire at once.
const CALLBACKS_IN_FLIGHT: usize = 128;

impl Shared {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a test task panicked; the data is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Closes the connection a request came on, without an answer (scenario 10).
#[derive(Clone)]
struct ConnKill(Arc<Notify>);

/// A running mock hub.
pub struct MockHub {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn digits(id: &str) -> u8 {
    let d: Vec<u8> = id
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b.saturating_sub(b'0'))
        .collect();
    match d.as_slice() {
        [.., t, u] => t.saturating_mul(10).saturating_add(*u),
        [u] => *u,
        [] => 0,
    }
}

fn body_hash(v: &Value) -> String {
    hex::encode(Sha256::digest(ilp::canonical_json(v).as_bytes()))
}

fn media(resource: &str) -> String {
    format!("application/vnd.interoperability.{resource}+json;version=1.1")
}

fn refuse(resource: &str, status: StatusCode, invalid: &Invalid) -> Response {
    let body = ErrorInformationObject::new(
        wire::ErrorCode::parse(invalid.code).unwrap_or(wire::ErrorCode::GenericValidationError),
        invalid.description.chars().take(128).collect::<String>(),
    );
    let mut r = (status, Json(body)).into_response();
    if let Ok(v) = http::HeaderValue::from_str(&media(resource)) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

fn money_of(m: &FspiopMoney) -> Option<Money> {
    Money::try_from(m).ok()
}

impl MockHub {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(config: MockHubConfig) -> std::io::Result<MockHub> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let tls = config.tls.clone();
        let shared = Arc::new(Shared {
            callback_base: Mutex::new(config.callback_base.clone()),
            peer_key: IlpKey::from_secret(&config.ilp_secret),
            // Railgate answers a callback only once it is durable; on a loaded machine, with
            // thousands of callbacks queued for one SQLite writer, that can take over ten
            // seconds, which is not what the hub's tests are about.
            http: railgate_rail::tls::client_builder(config.callback_tls.as_ref())
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(std::io::Error::other)?,
            config,
            sending: tokio::sync::Semaphore::new(CALLBACKS_IN_FLIGHT),
            inner: Mutex::new(Inner::default()),
        });
        let router = Router::new()
            .route("/_control/payouts", get(control_payouts))
            .route("/_control/faults", post(control_faults))
            .route("/_control/statement", get(control_statement))
            .route("/_control/push", post(control_push))
            .route("/_control/collections", get(control_collections))
            .route("/_control/callback-base", put(control_callback_base))
            .route("/_control/tokens", get(control_tokens))
            .route("/_control/revoke-tokens", post(control_revoke_tokens))
            .route("/oauth2/token", post(issue_token))
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(serve(listener, router, tls));
        Ok(MockHub {
            addr,
            scheme,
            shared,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The API gateway's token endpoint (see `MockHubConfig::oauth_client`).
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.base_url())
    }

    /// An adapter configuration that talks to this mock (JWS off): our FSP id, the hub at the
    /// mock's address, the peer FSP allowed to call us, and the scheme's `BUSINESS` id.
    pub fn adapter_config(
        &self,
        callback_base: &str,
        scheme_id: &str,
        scheme_name: &str,
    ) -> crate::MojaloopConfig {
        let mut config = crate::MojaloopConfig::new(
            &self.shared.config.dfsp_id,
            &self.base_url(),
            callback_base,
            crate::IlpSecret::new("railgate-sandbox-ilp-secret"),
            vec![crate::OwnParty {
                id_type: railgate_rail::PartyIdType::Business,
                id_value: scheme_id.to_owned(),
                name: scheme_name.to_owned(),
            }],
        );
        config.hub_fsp_id = self.shared.config.hub_fsp_id.clone();
        config.peers = vec![self.shared.config.peer_fsp_id.clone()];
        config
    }

    pub fn set_callback_base(&self, base: &str) {
        if let Ok(mut b) = self.shared.callback_base.lock() {
            *b = Some(base.trim_end_matches('/').to_owned());
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.inner().faults = faults;
    }

    pub fn payouts(&self) -> Vec<Payout> {
        self.shared.inner().payouts.values().cloned().collect()
    }

    pub fn collected(&self) -> Vec<Collected> {
        self.shared.inner().collected.clone()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.inner().deliveries.clone()
    }

    /// Every request Railgate sent, in order, with its exact body.
    pub fn received(&self) -> Vec<Received> {
        self.shared.inner().received.clone()
    }

    /// Bearer tokens the API gateway issued (see `MockHubConfig::oauth_client`).
    pub fn tokens_issued(&self) -> u64 {
        self.shared.inner().tokens_issued
    }

    /// The API gateway forgets every token it issued: the next request with one gets 401.
    pub fn revoke_tokens(&self) {
        let mut inner = self.shared.inner();
        inner.tokens_issued = inner.tokens_issued.saturating_add(1000);
    }

    /// The next `n` answers to `POST /bulkTransfers` are not delivered (see `Faults`).
    pub fn drop_bulk_answers(&self, n: u32) {
        self.shared.inner().faults.drop_bulk_answers = n;
    }

    /// The next `n` `POST /bulkTransfers` lose their HTTP answer (see `Faults`).
    pub fn cut_bulk_connections(&self, n: u32) {
        self.shared.inner().faults.cut_bulk_connections = n;
    }

    /// Requests of Railgate's the mock refused, with the FSPIOP error it answered.
    pub fn rejections(&self) -> Vec<Invalid> {
        self.shared.inner().rejections.clone()
    }

    /// Plays an insuree paying the scheme from the peer FSP: `GET /parties/{type}/{id}/{reference}`
    /// to Railgate, then `POST /quotes` and `POST /transfers` as its answers come. Returns the
    /// transfer id.
    pub async fn push_payment(&self, request: PushRequest) -> String {
        push(&self.shared, request).await
    }
}

/// Serves HTTP/1.1 (over TLS when `tls` is given) connection by connection, so that a handler
/// can drop its own connection.
async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<railgate_rail::tls::rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let kill = ConnKill(Arc::new(Notify::new()));
        let router = router.clone();
        let conn_kill = kill.clone();
        let service = tower::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(conn_kill.clone());
            let router = router.clone();
            async move { tower::ServiceExt::oneshot(router, req.map(axum::body::Body::new)).await }
        });
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let builder = hyper::server::conn::http1::Builder::new();
            let service = hyper_util::service::TowerToHyperService::new(service);
            match acceptor {
                Some(acceptor) => {
                    // A refused handshake (a client certificate from elsewhere) ends here.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = kill.0.notified() => {}
                    }
                }
                None => {
                    let conn =
                        builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = kill.0.notified() => {}
                    }
                }
            }
        });
    }
}

/// `POST /oauth2/token`: client credentials, Basic or in the form body.
async fn issue_token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let Some((id, secret)) = s.config.oauth_client.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let basic = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let by_basic = basic.as_deref() == Some(format!("{id}:{secret}").as_str());
    let by_body = form.get("client_id") == Some(&id) && form.get("client_secret") == Some(&secret);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || !(by_basic || by_body)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let n = {
        let mut inner = s.inner();
        inner.tokens_issued = inner.tokens_issued.saturating_add(1);
        inner.tokens_issued
    };
    Json(serde_json::json!({
        "access_token": format!("hub-token-{n}"),
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
    .into_response()
}

/// `GET /_control/tokens`: how many tokens were issued.
async fn control_tokens(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(serde_json::json!({"issued": s.inner().tokens_issued}))
}

/// `POST /_control/revoke-tokens`: the gateway forgets every token it issued, as when its
/// signing key rotates; the next FSPIOP request with an old one gets 401.
async fn control_revoke_tokens(State(s): State<Arc<Shared>>) -> StatusCode {
    let mut inner = s.inner();
    // Past the latest: no token issued so far is honoured any more.
    inner.tokens_issued = inner.tokens_issued.saturating_add(1000);
    StatusCode::NO_CONTENT
}

/// Whether a request passes the API gateway: with `oauth_client` set, it must bear the latest
/// token issued.
fn gateway_admits(s: &Shared, headers: &HeaderMap) -> bool {
    if s.config.oauth_client.is_none() {
        return true;
    }
    let latest = format!("Bearer hub-token-{}", s.inner().tokens_issued);
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == latest)
}

// ---------------------------------------------------------------------------------------------
// Control

async fn control_payouts(State(s): State<Arc<Shared>>) -> Json<Vec<Payout>> {
    Json(s.inner().payouts.values().cloned().collect())
}

async fn control_faults(State(s): State<Arc<Shared>>, Json(f): Json<Faults>) -> Json<Faults> {
    s.inner().faults = f.clone();
    Json(f)
}

async fn control_collections(State(s): State<Arc<Shared>>) -> Json<Vec<Collected>> {
    Json(s.inner().collected.clone())
}

async fn control_callback_base(State(s): State<Arc<Shared>>, Json(v): Json<Value>) -> StatusCode {
    match (
        v.get("callback_base").and_then(Value::as_str),
        s.callback_base.lock(),
    ) {
        (Some(b), Ok(mut base)) => {
            *base = Some(b.trim_end_matches('/').to_owned());
            StatusCode::NO_CONTENT
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

async fn control_statement(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lines = s.inner().statement.clone();
    if q.get("format").map(String::as_str) == Some("json") {
        return Json(lines).into_response();
    }
    let mut out = String::from(
        "date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n",
    );
    for l in lines {
        let row = [
            l.date,
            l.amount,
            l.currency,
            l.direction.to_owned(),
            l.reference,
            l.counterparty,
            l.rail_transaction_id,
            l.fee,
        ];
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    ([(http::header::CONTENT_TYPE, "text/csv")], out).into_response()
}

/// `POST /_control/push`: an insuree pays the scheme.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRequest {
    /// "BUSINESS" or "ALIAS".
    pub id_type: String,
    pub id_value: String,
    /// The payment reference (control number), sent as `partySubIdOrType`.
    pub reference: String,
    pub amount: String,
    pub currency: String,
    pub payer_msisdn: String,
}

async fn control_push(State(s): State<Arc<Shared>>, Json(p): Json<PushRequest>) -> Json<Value> {
    let transfer_id = push(&s, p).await;
    Json(json!({ "transfer_id": transfer_id }))
}

async fn push(s: &Arc<Shared>, p: PushRequest) -> String {
    let quote_id = id_string(Uuid::new_v4());
    let transfer_id = id_string(Uuid::new_v4());
    let path = format!("/parties/{}/{}/{}", p.id_type, p.id_value, p.reference);
    s.inner().pushes.insert(
        path.clone(),
        Collection {
            copies: 1,
            quote_id,
            transfer_id: transfer_id.clone(),
            transaction_request_id: None,
            reference: p.reference,
            amount: FspiopMoney {
                amount: p.amount,
                currency: p.currency,
            },
            payer_msisdn: p.payer_msisdn,
            condition: None,
        },
    );
    let s2 = s.clone();
    tokio::spawn(async move {
        let peer = s2.config.peer_fsp_id.clone();
        deliver(
            &s2,
            Method::GET,
            path,
            "parties",
            &peer,
            None,
            Sign::Genuine,
        )
        .await;
    });
    transfer_id
}
