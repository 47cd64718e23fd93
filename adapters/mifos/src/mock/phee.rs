//! The sandbox Payment Hub EE: channel connector, operations app and bulk processor on one
//! port, with PH-EE's status semantics and quirks.
//!
//! What it reproduces: `/channel/transfer` and `/channel/collection` answer 200
//! `{"transactionId"}` at once and push nothing; a reused `X-CorrelationID` (per tenant and
//! path) is answered 400 `TransactionExists` without the original id; an unknown tenant is a
//! 500; the channel's status endpoints report anything but `COMPLETED` as `RECEIVED`; the
//! operations app lists transfers with `IN_PROGRESS` → `COMPLETED`/`FAILED` (amount as a
//! string, `clientCorrelationId`, `batchId`, `errorInformation`); `/batchtransactions` takes a
//! multipart CSV, refuses bad columns, types and sizes with 400, answers 202 with a
//! `PollingPath`, reads the payment mode from the first row, drops duplicate payee+amount
//! rows, and forwards each row as a transfer keyed by its `request_id`; batch callbacks carry
//! a percentage only and come twice.
//!
//! Scenarios (payee identifier's last two digits; the payer's for collections), with errors
//! in Mojaloop's FSPIOP codes as PH-EE passes them on:
//!
//! | ends in | what the operations app shows |
//! |---|---|
//! | 00, 05, 07, 08 and any not listed | `IN_PROGRESS`, `COMPLETED` after ~100 ms (PH-EE has no callbacks to repeat or forge) |
//! | 01 / 02 / 03 | `FAILED` with 4001 (payer FSP insufficient liquidity) / 3204 (party not found) / 5101 (payee rejected; 4101 payer rejected for collections) |
//! | 04 | `IN_PROGRESS` for ~3 s, then `COMPLETED` |
//! | 06 | `FAILED` with 5000 (generic payee error) |
//! | 09 | the channel answers 503 twice without recording anything, then accepts |
//! | 10 | the transfer is recorded, then the connection drops before the answer; `COMPLETED` |
//! | 11 | `FAILED` (5101) for `late_success_after` (2 s; the sandbox: 5 s), then `COMPLETED` |
//! | 12 | `UNKNOWN` for ever |

use super::control::{
    dropped_connection, hit, scenario, statement_csv, Faults, PayoutRow, StatementLine,
};
use super::keycloak::{self, Keycloak, KeycloakConfig};
use crate::bulk::COLUMNS;
use crate::wire::{
    BatchSummary, CollectionRequest, OpsTransactionRequest, OpsTransfer, Page, PhError,
    TransactionRequestState, TransferRequest, TransferStatus,
};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct PhEeMockConfig {
    /// The tenants configured (`dfspids`).
    pub tenants: Vec<String>,
    /// Redis idempotency on the channel (PH-EE's default).
    pub idempotency: bool,
    /// Scenario 11: how long the transfer shows `FAILED` before it turns `COMPLETED`. PH-EE
    /// calls nobody back, so the gateway sees the failure only if its first inquiry comes
    /// before this: keep it above the rail's callback grace (and below the gateway's second
    /// look after a failure, `confirm_failure_after_ms`).
    pub late_success_after: std::time::Duration,
    /// Serve HTTPS with this configuration (a server certificate, and the CA whose client
    /// certificates it requires); `None`: plain HTTP.
    pub tls: Option<Arc<railgate_rail::tls::rustls::ServerConfig>>,
    /// Put Keycloak in front: every request but the token endpoint and `/_control` needs a
    /// bearer token it issued (see [`super::keycloak`]).
    pub keycloak: Option<KeycloakConfig>,
}

impl Default for PhEeMockConfig {
    fn default() -> Self {
        PhEeMockConfig {
            tenants: vec!["gorilla".into()],
            idempotency: true,
            late_success_after: std::time::Duration::from_secs(2),
            tls: None,
            keycloak: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Transfer,
    Collection,
}

#[derive(Debug, Clone)]
struct Record {
    transaction_id: String,
    workflow_key: i64,
    correlation_id: String,
    client_ref: String,
    batch_id: Option<String>,
    kind: Kind,
    party_type: String,
    party_id: String,
    amount: String,
    currency: String,
    scenario: u8,
    created: Instant,
    /// Scenario 11's `late_success_after`, in milliseconds.
    late_success_ms: u128,
    started_at: DateTime<Utc>,
    /// A bulk row PH-EE failed itself (unknown payment mode, correlation id reused).
    forced_failure: Option<PhError>,
}

struct Batch {
    correlation_id: String,
    rows: Vec<usize>,
    total: u64,
}

#[derive(Default)]
struct Inner {
    records: Vec<Record>,
    by_correlation: HashMap<String, Vec<usize>>,
    keys: HashSet<String>,
    unavailable: HashMap<String, u32>,
    batches: HashMap<String, Batch>,
    faults: Faults,
    calls: u64,
    next_key: i64,
    channel_posts: HashMap<String, u32>,
}

#[derive(Clone)]
struct Shared {
    cfg: Arc<PhEeMockConfig>,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running sandbox PH-EE. Dropping it stops the server.
pub struct PhEeMock {
    pub addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    keycloak: Option<Keycloak>,
    shared: Shared,
    task: JoinHandle<()>,
}

impl Drop for PhEeMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PhEeMock {
    /// Binds 127.0.0.1:0 and serves.
    pub async fn start(cfg: PhEeMockConfig) -> std::io::Result<PhEeMock> {
        let shared = Shared {
            cfg: Arc::new(cfg),
            inner: Arc::new(Mutex::new(Inner::default())),
            http: reqwest::Client::new(),
        };
        let tls = shared.cfg.tls.clone();
        let keycloak = shared.cfg.keycloak.clone().map(Keycloak::new);
        let api = Router::new()
            .route("/channel/transfer", post(channel_transfer))
            .route(
                "/channel/transfer/{transaction_id}",
                get(channel_transfer_status),
            )
            .route("/channel/collection", post(channel_collection))
            .route("/channel/txnState/{correlation_id}", get(channel_txn_state))
            .route("/api/v1/transfers", get(ops_transfers))
            .route("/api/v1/transactionRequests", get(ops_requests))
            .route("/api/v1/batch", get(ops_batch))
            .route("/api/v1/batch/detail", get(ops_batch_detail))
            .route("/batchtransactions", post(bulk_upload));
        let api = match &keycloak {
            Some(kc) => api
                .route_layer(axum::middleware::from_fn_with_state(
                    kc.clone(),
                    keycloak::require_token,
                ))
                .merge(
                    Router::new()
                        .route(keycloak::TOKEN_PATH, post(keycloak::issue_token))
                        .with_state(kc.clone()),
                ),
            None => api,
        };
        let app = api
            .route("/_control/payouts", get(control_payouts))
            .route("/_control/faults", post(control_faults))
            .route("/_control/statement", get(control_statement))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            let served = match tls {
                Some(tls) => {
                    axum::serve(railgate_rail::tls::TlsListener::new(listener, tls), app).await
                }
                None => axum::serve(listener, app).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "Sandbox Payment Hub stopped");
            }
        });
        Ok(PhEeMock {
            addr,
            scheme,
            keycloak,
            shared,
            task,
        })
    }

    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The operations app's API base.
    pub fn operations_url(&self) -> String {
        format!("{}/api/v1", self.base_url())
    }

    /// Keycloak's token endpoint (when `keycloak` is configured).
    pub fn token_url(&self) -> String {
        format!("{}{}", self.base_url(), keycloak::TOKEN_PATH)
    }

    /// Keycloak, when configured: tokens issued and refused, expiring them.
    pub fn keycloak(&self) -> Option<&Keycloak> {
        self.keycloak.as_ref()
    }

    /// What moved, per correlation id (our attempt id).
    pub fn payouts(&self) -> Vec<PayoutRow> {
        payout_rows(&self.shared.lock())
    }

    /// How many times the channel was POSTed for a correlation id (answered or not).
    pub fn channel_posts(&self, correlation_id: &str) -> u32 {
        self.shared
            .lock()
            .channel_posts
            .get(correlation_id)
            .copied()
            .unwrap_or(0)
    }

    pub fn set_faults(&self, f: Faults) {
        self.shared.lock().faults = f;
    }
}

/// What the operations app shows for a record now.
fn state_of(r: &Record) -> (TransferStatus, Option<PhError>) {
    if let Some(e) = &r.forced_failure {
        return (TransferStatus::Failed, Some(e.clone()));
    }
    let ms = r.created.elapsed().as_millis();
    let failed = |code: &str, text: &str| {
        (
            TransferStatus::Failed,
            Some(PhError {
                error_category: Some("Business".into()),
                error_code: Some(code.into()),
                error_description: Some(text.into()),
                ..PhError::default()
            }),
        )
    };
    if ms < 100 {
        return (TransferStatus::InProgress, None);
    }
    match r.scenario {
        1 => failed("4001", "Payer FSP insufficient liquidity"),
        2 => failed("3204", "Party not found"),
        3 if r.kind == Kind::Collection => failed("4101", "Payer rejected transaction request"),
        3 => failed("5101", "Payee rejected the transaction"),
        4 if ms < 3000 => (TransferStatus::InProgress, None),
        6 => failed("5000", "Generic payee error"),
        11 if ms < r.late_success_ms => failed("5101", "Payee rejected the transaction"),
        12 => (TransferStatus::Unknown, None),
        _ => (TransferStatus::Completed, None),
    }
}

fn ops_transfer(r: &Record) -> OpsTransfer {
    let (status, error_information) = state_of(r);
    OpsTransfer {
        workflow_instance_key: Some(serde_json::json!(r.workflow_key)),
        transaction_id: r.transaction_id.clone(),
        started_at: Some(serde_json::json!(r.started_at.timestamp_millis())),
        completed_at: None,
        status,
        status_detail: None,
        payee_party_id: Some(r.party_id.clone()),
        payee_party_id_type: Some(r.party_type.clone()),
        // PH-EE writes BigDecimals without trailing zeros ("#.####").
        amount: Some(trim_amount(&r.amount)),
        currency: Some(r.currency.clone()),
        error_information,
        batch_id: r.batch_id.clone(),
        client_correlation_id: Some(r.correlation_id.clone()),
    }
}

fn trim_amount(a: &str) -> String {
    if a.contains('.') {
        a.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        a.to_owned()
    }
}

fn payout_rows(g: &Inner) -> Vec<PayoutRow> {
    let mut rows: Vec<PayoutRow> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for r in &g.records {
        if state_of(r).0 != TransferStatus::Completed {
            continue;
        }
        match at
            .get(r.correlation_id.as_str())
            .and_then(|i| rows.get_mut(*i))
        {
            Some(p) => p.count = p.count.saturating_add(1),
            None => {
                at.insert(&r.correlation_id, rows.len());
                rows.push(PayoutRow {
                    attempt_id: r.correlation_id.clone(),
                    reference: r.client_ref.clone(),
                    amount: r.amount.clone(),
                    currency: r.currency.clone(),
                    count: 1,
                });
            }
        }
    }
    rows
}

fn error_json(status: StatusCode, code: &str, text: &str) -> Response {
    let body = serde_json::json!({
        "errorCategory": "Validation",
        "errorCode": code,
        "errorDescription": text,
        "developerMessage": text,
        "defaultUserMessage": text,
        "errorParameters": [],
        "errors": [],
    });
    (status, Json(body)).into_response()
}

struct NewRecord {
    kind: Kind,
    tenant: String,
    correlation_id: String,
    client_ref: String,
    batch_id: Option<String>,
    party_type: String,
    party_id: String,
    amount: String,
    currency: String,
    uri: &'static str,
}

/// What the channel does with one request, after its own checks; shared by the bulk rows.
enum Outcome {
    Accepted(String, u8),
    Exists,
    Unavailable,
}

fn accept(
    g: &mut Inner,
    cfg: &PhEeMockConfig,
    n: NewRecord,
    forced_failure: Option<PhError>,
) -> Outcome {
    let s = scenario(&n.party_id);
    if s == 9 && n.batch_id.is_none() {
        let seen = g.unavailable.entry(n.correlation_id.clone()).or_insert(0);
        if *seen < 2 {
            *seen = seen.saturating_add(1);
            return Outcome::Unavailable;
        }
    }
    if cfg.idempotency {
        let key = format!("{}_{}_{}", n.correlation_id, n.tenant, n.uri);
        if !g.keys.insert(key) {
            return Outcome::Exists;
        }
    }
    g.next_key = g.next_key.saturating_add(1);
    let transaction_id = Uuid::new_v4().to_string();
    let idx = g.records.len();
    g.by_correlation
        .entry(n.correlation_id.clone())
        .or_default()
        .push(idx);
    g.records.push(Record {
        transaction_id: transaction_id.clone(),
        workflow_key: 2_251_799_813_685_248_i64.saturating_add(g.next_key),
        correlation_id: n.correlation_id,
        client_ref: n.client_ref,
        batch_id: n.batch_id,
        kind: n.kind,
        party_type: n.party_type,
        party_id: n.party_id,
        amount: n.amount,
        currency: n.currency,
        scenario: s,
        created: Instant::now(),
        late_success_ms: cfg.late_success_after.as_millis(),
        started_at: Utc::now(),
        forced_failure,
    });
    Outcome::Accepted(transaction_id, s)
}

/// The checks every channel POST goes through; `Err` is the answer to give.
async fn channel_gate(s: &Shared, headers: &HeaderMap) -> Result<(String, String), Response> {
    let tenant = header(headers, "Platform-TenantId");
    let correlation = header(headers, "X-CorrelationID");
    let (latency, unavailable) = {
        let mut g = s.lock();
        g.calls = g.calls.saturating_add(1);
        let n = g.channel_posts.entry(correlation.clone()).or_insert(0);
        *n = n.saturating_add(1);
        (
            g.faults.latency_ms,
            hit(g.calls, g.faults.error_rate_percent),
        )
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if unavailable {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response());
    }
    if !s.cfg.tenants.contains(&tenant) {
        let body = serde_json::json!({"timestamp": Utc::now().to_rfc3339(), "status": 500, "error": "Internal Server Error",
            "message": format!("Requested tenant {tenant} not configured in the connector")});
        return Err((StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response());
    }
    if s.cfg.idempotency && correlation.trim().is_empty() {
        return Err(error_json(
            StatusCode::BAD_REQUEST,
            "MandatoryValueNotSupplied",
            "X-CorrelationID is mandatory",
        ));
    }
    Ok((tenant, correlation))
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn answer(outcome: Outcome, correlation: &str) -> Response {
    match outcome {
        Outcome::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
        }
        Outcome::Exists => {
            let mut r = error_json(
                StatusCode::BAD_REQUEST,
                crate::wire::TRANSACTION_EXISTS,
                "Transaction already exists",
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(correlation) {
                r.headers_mut().insert("X-CorrelationID", v);
            }
            r
        }
        Outcome::Accepted(_, 10) => dropped_connection(),
        Outcome::Accepted(id, _) => {
            Json(serde_json::json!({ "transactionId": id })).into_response()
        }
    }
}

fn violations(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"violations": [{"message": msg}]})),
    )
        .into_response()
}

async fn channel_transfer(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (tenant, correlation) = match channel_gate(&s, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let req: TransferRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return violations(e.to_string()),
    };
    if req.amount.currency.len() != 3 {
        return violations("amount.currency: size must be 3".into());
    }
    let outcome = {
        let mut g = s.lock();
        accept(
            &mut g,
            &s.cfg,
            NewRecord {
                kind: Kind::Transfer,
                tenant,
                correlation_id: correlation.clone(),
                client_ref: req.client_ref_id,
                batch_id: None,
                party_type: req.payee.party_id_info.party_id_type,
                party_id: req.payee.party_id_info.party_identifier,
                amount: req.amount.amount,
                currency: req.amount.currency,
                uri: "/channel/transfer",
            },
            None,
        )
    };
    answer(outcome, &correlation)
}

async fn channel_collection(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (tenant, correlation) = match channel_gate(&s, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let req: CollectionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return violations(e.to_string()),
    };
    let Some(primary) = req.payer.first().cloned() else {
        return violations("payer: must not be empty".into());
    };
    let outcome = {
        let mut g = s.lock();
        accept(
            &mut g,
            &s.cfg,
            NewRecord {
                kind: Kind::Collection,
                tenant,
                correlation_id: correlation.clone(),
                client_ref: req
                    .payer
                    .get(1)
                    .map(|kv| kv.value.clone())
                    .unwrap_or_default(),
                batch_id: None,
                party_type: primary.key,
                party_id: primary.value,
                amount: req.amount.amount,
                currency: req.amount.currency,
                uri: "/channel/collection",
            },
            None,
        )
    };
    answer(outcome, &correlation)
}

/// The channel's own status: `COMMITTED` only for `COMPLETED`, `RECEIVED` for everything
/// else, failures included (PH-EE's lossy mapping).
fn lossy(r: Option<&Record>) -> &'static str {
    match r.map(|r| state_of(r).0) {
        Some(TransferStatus::Completed) => "COMMITTED",
        Some(
            TransferStatus::Failed
            | TransferStatus::InProgress
            | TransferStatus::Unknown
            | TransferStatus::Exception,
        )
        | None => "RECEIVED",
    }
}

async fn channel_transfer_status(
    State(s): State<Shared>,
    Path(transaction_id): Path<String>,
) -> Response {
    let g = s.lock();
    let r = g
        .records
        .iter()
        .find(|r| r.transaction_id == transaction_id);
    Json(serde_json::json!({
        "clientRefId": r.map(|r| r.client_ref.clone()).unwrap_or_else(|| "000000".into()),
        "transactionId": transaction_id,
        "completedTimestamp": null,
        "transferId": r.map(|r| r.transaction_id.clone()),
        "transferState": lossy(r),
    }))
    .into_response()
}

async fn channel_txn_state(
    State(s): State<Shared>,
    Path(correlation_id): Path<String>,
) -> Response {
    let g = s.lock();
    let r = g
        .by_correlation
        .get(&correlation_id)
        .and_then(|v| v.first())
        .and_then(|i| g.records.get(*i));
    Json(serde_json::json!({
        "transactionId": r.map(|r| r.transaction_id.clone()),
        "transferState": lossy(r),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpsQuery {
    #[serde(default)]
    client_correlation_id: Option<String>,
    #[serde(default)]
    transaction_id: Option<String>,
    #[serde(default)]
    page: Option<u64>,
    #[serde(default)]
    size: Option<u64>,
}

fn page<T>(all: Vec<T>, page: u64, size: u64) -> Page<T> {
    let size = size.clamp(1, 2000);
    let total = u64::try_from(all.len()).unwrap_or(u64::MAX);
    let skip = usize::try_from(page.saturating_mul(size)).unwrap_or(usize::MAX);
    let take = usize::try_from(size).unwrap_or(usize::MAX);
    Page {
        content: all.into_iter().skip(skip).take(take).collect(),
        total_elements: total,
        total_pages: total.div_ceil(size),
        number: page,
    }
}

fn records_for(g: &Inner, q: &OpsQuery, kind: Kind) -> Vec<Record> {
    let idx: Vec<usize> = match &q.client_correlation_id {
        Some(c) => g.by_correlation.get(c).cloned().unwrap_or_default(),
        None => (0..g.records.len()).collect(),
    };
    idx.into_iter()
        .filter_map(|i| g.records.get(i))
        .filter(|r| r.kind == kind)
        .filter(|r| {
            q.transaction_id
                .as_ref()
                .is_none_or(|t| *t == r.transaction_id)
        })
        .cloned()
        .collect()
}

async fn ops_transfers(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<OpsQuery>,
) -> Response {
    if header(&headers, "Platform-TenantId").is_empty() {
        return (StatusCode::BAD_REQUEST, "Platform-TenantId is required").into_response();
    }
    let rows: Vec<OpsTransfer> = records_for(&s.lock(), &q, Kind::Transfer)
        .iter()
        .map(ops_transfer)
        .collect();
    Json(page(rows, q.page.unwrap_or(0), q.size.unwrap_or(20))).into_response()
}

async fn ops_requests(State(s): State<Shared>, Query(q): Query<OpsQuery>) -> Response {
    let rows: Vec<OpsTransactionRequest> = records_for(&s.lock(), &q, Kind::Collection)
        .iter()
        .map(|r| {
            let (status, error_information) = state_of(r);
            let state = match status {
                TransferStatus::Completed => TransactionRequestState::Success,
                TransferStatus::Failed if r.scenario == 3 => TransactionRequestState::Rejected,
                TransferStatus::Failed => TransactionRequestState::Failed,
                TransferStatus::InProgress
                | TransferStatus::Unknown
                | TransferStatus::Exception => TransactionRequestState::InProgress,
            };
            OpsTransactionRequest {
                transaction_id: r.transaction_id.clone(),
                state,
                amount: Some(trim_amount(&r.amount)),
                currency: Some(r.currency.clone()),
                error_information,
                client_correlation_id: Some(r.correlation_id.clone()),
            }
        })
        .collect();
    Json(page(rows, q.page.unwrap_or(0), q.size.unwrap_or(20))).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchQuery {
    batch_id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    page_no: Option<u64>,
    #[serde(default)]
    page_size: Option<u64>,
}

fn summary(g: &Inner, batch_id: &str) -> Option<BatchSummary> {
    let b = g.batches.get(batch_id)?;
    let (mut ok, mut failed, mut ongoing) = (0u64, 0u64, 0u64);
    for r in b.rows.iter().filter_map(|i| g.records.get(*i)) {
        match state_of(r).0 {
            TransferStatus::Completed => ok = ok.saturating_add(1),
            TransferStatus::Failed => failed = failed.saturating_add(1),
            TransferStatus::InProgress | TransferStatus::Unknown | TransferStatus::Exception => {
                ongoing = ongoing.saturating_add(1)
            }
        }
    }
    let status = if ok == b.total {
        "COMPLETED"
    } else if ongoing > 0 {
        "IN_PROGRESS"
    } else {
        "FAILED"
    };
    Some(BatchSummary {
        batch_id: batch_id.to_owned(),
        request_id: Some(b.correlation_id.clone()),
        total: b.total,
        ongoing,
        failed,
        successful: ok,
        status: Some(status.into()),
    })
}

async fn ops_batch(State(s): State<Shared>, Query(q): Query<BatchQuery>) -> Response {
    match summary(&s.lock(), &q.batch_id) {
        Some(b) => Json(b).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("Batch with id {} not found", q.batch_id),
        )
            .into_response(),
    }
}

async fn ops_batch_detail(State(s): State<Shared>, Query(q): Query<BatchQuery>) -> Response {
    let g = s.lock();
    let Some(b) = g.batches.get(&q.batch_id) else {
        return (StatusCode::NOT_FOUND, "Batch not found").into_response();
    };
    let want = q.status.clone().unwrap_or_else(|| "ALL".into());
    let rows: Vec<OpsTransfer> = b
        .rows
        .iter()
        .filter_map(|i| g.records.get(*i))
        .map(ops_transfer)
        .filter(|t| {
            want == "ALL"
                || matches!(
                    (want.as_str(), t.status),
                    ("COMPLETED", TransferStatus::Completed)
                        | ("FAILED", TransferStatus::Failed)
                        | ("IN_PROGRESS", TransferStatus::InProgress)
                )
        })
        .collect();
    Json(page(
        rows,
        q.page_no.unwrap_or(0),
        q.page_size.unwrap_or(10),
    ))
    .into_response()
}

fn bad_file(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"Error Information: ": "Invalid file", "Error Description : ": description})),
    )
        .into_response()
}

async fn bulk_upload(
    State(s): State<Shared>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let correlation = header(&headers, "X-CorrelationID");
    let tenant = header(&headers, "Platform-TenantId");
    if correlation.is_empty()
        || header(&headers, "Purpose").is_empty()
        || header(&headers, "filename").is_empty()
    {
        return bad_file("X-CorrelationID, Purpose and filename are required");
    }
    if !header(&headers, "Type").eq_ignore_ascii_case("csv") {
        return bad_file("Type must be csv for a multipart upload");
    }
    let mut data = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some("data") {
            data = field.bytes().await.ok();
        }
    }
    let Some(data) = data else {
        return bad_file("no file in part 'data'");
    };
    if data.len() > crate::bulk::PHEE_MAX_FILE_BYTES {
        return bad_file("file is larger than the configured csv.size");
    }
    let Ok(text) = String::from_utf8(data.to_vec()) else {
        return bad_file("file is not text/csv");
    };
    let mut lines = text.lines();
    let columns: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    if columns.iter().any(|c| !COLUMNS.contains(c)) {
        return bad_file("unknown column names");
    }
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (
        Some(c_req),
        Some(c_mode),
        Some(c_ptype),
        Some(c_payee),
        Some(c_amount),
        Some(c_ccy),
        Some(c_note),
    ) = (
        col("request_id"),
        col("payment_mode"),
        col("payee_identifier_type"),
        col("payee_identifier"),
        col("amount"),
        col("currency"),
        col("note"),
    )
    else {
        return bad_file("missing columns");
    };
    // Naive split, as PH-EE does; rows whose field count differs are not processed.
    let rows: Vec<Vec<&str>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|r| r.len() == columns.len())
        .collect();
    let batch_id = Uuid::new_v4().to_string();
    let mode = rows
        .first()
        .and_then(|r| r.get(c_mode))
        .map(|m| m.to_ascii_lowercase())
        .unwrap_or_default();
    let known_mode = matches!(mode.as_str(), "mojaloop" | "gsma" | "closedloop" | "slcb");
    let mut dedup = HashSet::new();
    {
        let mut g = s.lock();
        let mut idx = Vec::new();
        for r in &rows {
            let f = |i: usize| r.get(i).copied().unwrap_or("").to_owned();
            let key = (f(c_payee), f(c_ptype), f(c_amount), f(c_ccy));
            if !dedup.insert(key) {
                // "Duplicate transaction.": dropped silently from the batch.
                continue;
            }
            let forced = (!known_mode).then(|| PhError {
                error_code: Some("404".into()),
                error_description: Some("Payment mode not configured".into()),
                ..PhError::default()
            });
            let n = NewRecord {
                kind: Kind::Transfer,
                tenant: tenant.clone(),
                correlation_id: f(c_req),
                client_ref: f(c_note),
                batch_id: Some(batch_id.clone()),
                party_type: "MSISDN".into(),
                party_id: f(c_payee),
                amount: f(c_amount),
                currency: f(c_ccy),
                uri: "/channel/transfer",
            };
            let before = g.records.len();
            match accept(&mut g, &s.cfg, n, forced) {
                Outcome::Accepted(..) => idx.push(before),
                Outcome::Exists => {
                    // The channel refused the row: PH-EE records it as a failed transfer of the batch.
                    g.next_key = g.next_key.saturating_add(1);
                    let rec = Record {
                        transaction_id: Uuid::new_v4().to_string(),
                        workflow_key: g.next_key,
                        correlation_id: f(c_req),
                        client_ref: f(c_note),
                        batch_id: Some(batch_id.clone()),
                        kind: Kind::Transfer,
                        party_type: "MSISDN".into(),
                        party_id: f(c_payee),
                        amount: f(c_amount),
                        currency: f(c_ccy),
                        scenario: 0,
                        created: Instant::now(),
                        late_success_ms: s.cfg.late_success_after.as_millis(),
                        started_at: Utc::now(),
                        forced_failure: Some(PhError {
                            error_code: Some(crate::wire::TRANSACTION_EXISTS.into()),
                            error_description: Some("Transaction already exists".into()),
                            ..PhError::default()
                        }),
                    };
                    let i = g.records.len();
                    g.records.push(rec);
                    idx.push(i);
                }
                Outcome::Unavailable => {}
            }
        }
        let total = u64::try_from(idx.len()).unwrap_or(0);
        g.batches.insert(
            batch_id.clone(),
            Batch {
                correlation_id: correlation.clone(),
                rows: idx,
                total,
            },
        );
    }
    let callback = header(&headers, "X-CallbackURL");
    if !callback.is_empty() {
        tokio::spawn(batch_callbacks(
            s.clone(),
            batch_id.clone(),
            correlation,
            callback,
        ));
    }
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"PollingPath": format!("/batch/Summary/{batch_id}"), "SuggestedCallbackSeconds": "120"})),
    )
        .into_response()
}

/// Waits until no row of the batch is in progress, then sends the percentage callback twice
/// (PH-EE sends one per phase), up to three tries each, unsigned.
async fn batch_callbacks(s: Shared, batch_id: String, correlation: String, url: String) {
    for _ in 0..600 {
        let done = summary(&s.lock(), &batch_id).is_some_and(|b| b.ongoing == 0);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if s.lock().faults.drop_callbacks {
        return;
    }
    let pct = summary(&s.lock(), &batch_id)
        .and_then(|b| b.successful.saturating_mul(100).checked_div(b.total))
        .unwrap_or(0);
    let body = serde_json::json!({
        "clientCorrelationId": correlation,
        "batchId": batch_id,
        "message": format!("The Batch Aggregation API was complete with : {pct}"),
    });
    for _ in 0..2 {
        for _ in 0..3 {
            let ok = s
                .http
                .post(&url)
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
        }
    }
}

async fn control_payouts(State(s): State<Shared>) -> Json<Vec<PayoutRow>> {
    Json(payout_rows(&s.lock()))
}

async fn control_faults(State(s): State<Shared>, Json(f): Json<Faults>) -> Json<Faults> {
    s.lock().faults = f.clone();
    Json(f)
}

#[derive(Deserialize)]
struct StatementQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn control_statement(State(s): State<Shared>, Query(q): Query<StatementQuery>) -> Response {
    if q.format.as_deref().unwrap_or("csv") != "csv" {
        return (StatusCode::BAD_REQUEST, "only format=csv").into_response();
    }
    let g = s.lock();
    let lines: Vec<StatementLine> = g
        .records
        .iter()
        .filter(|r| state_of(r).0 == TransferStatus::Completed)
        .map(|r| StatementLine {
            date: r.started_at.format("%Y-%m-%d").to_string(),
            amount: r.amount.clone(),
            currency: r.currency.clone(),
            direction: match r.kind {
                Kind::Transfer => "debit",
                Kind::Collection => "credit",
            },
            reference: r.correlation_id.clone(),
            counterparty: railgate_rail::mask(&r.party_id),
            rail_transaction_id: r.transaction_id.clone(),
        })
        .collect();
    (
        [(axum::http::header::CONTENT_TYPE, "text/csv")],
        statement_csv(&lines),
    )
        .into_response()
}
