//! The sandbox Fineract: savings-account deposits and withdrawals with `Idempotency-Key`
//! (a repeated key replays the stored answer with `x-served-from-cache: true`), Basic auth,
//! `Fineract-Platform-TenantId`, domain-rule refusals as 403 `ApiGlobalErrorResponse`, and the
//! account with its transaction list.
//!
//! Scenarios, by the savings account id's last two digits:
//!
//! | ends in | what Fineract does |
//! |---|---|
//! | 00, 07, 08 and any not listed | books at once, 200 (Fineract calls nobody back: there is nothing to repeat or forge) |
//! | 01 | 403 `error.msg.savingsaccount.transaction.insufficient.account.balance` |
//! | 02 | 404 `error.msg.saving.account.id.invalid` |
//! | 03 | 403 `error.msg.savingsaccount.transaction.account.is.not.active` |
//! | 04 | answers after ~3 s, booked |
//! | 05 / 10 | books, then the connection drops before the answer; the transaction is on the account |
//! | 06 | books and undoes it (reversed), the connection drops; the account shows it reversed |
//! | 09 | 503 twice without booking, then books |
//! | 11 | 403 insufficient balance, yet the deposit appears on the account ~2 s later |
//! | 12 | books, the connection drops, and the account lookup answers 500 for ever |

use super::control::{dropped_connection, hit, statement_csv, Faults, PayoutRow, StatementLine};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::Utc;
use railgate_rail::Currency;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct FineractMockConfig {
    pub tenant: String,
    pub username: String,
    pub password: String,
    /// The currency of every savings account.
    pub currency: Currency,
}

impl Default for FineractMockConfig {
    fn default() -> Self {
        FineractMockConfig {
            tenant: "default".into(),
            username: "mifos".into(),
            password: "password".into(),
            currency: Currency::Kes,
        }
    }
}

#[derive(Debug, Clone)]
struct Tx {
    id: i64,
    account: i64,
    deposit: bool,
    amount: String,
    reversed: bool,
    receipt: Option<String>,
    note: Option<String>,
    date: String,
}

#[derive(Default)]
struct Inner {
    txs: Vec<Tx>,
    /// Idempotency-Key → the stored answer (status, body).
    replies: HashMap<String, (u16, String)>,
    unavailable: HashMap<String, u32>,
    faults: Faults,
    calls: u64,
}

#[derive(Clone)]
struct Shared {
    cfg: Arc<FineractMockConfig>,
    inner: Arc<Mutex<Inner>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct FineractMock {
    pub addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl Drop for FineractMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const BASE: &str = "/fineract-provider/api/v1";

impl FineractMock {
    pub async fn start(cfg: FineractMockConfig) -> std::io::Result<FineractMock> {
        let shared = Shared {
            cfg: Arc::new(cfg),
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let app = Router::new()
            .route(
                &format!("{BASE}/savingsaccounts/{{id}}/transactions"),
                post(transaction),
            )
            .route(&format!("{BASE}/savingsaccounts/{{id}}"), get(account))
            .route("/_control/payouts", get(control_payouts))
            .route("/_control/faults", post(control_faults))
            .route("/_control/statement", get(control_statement))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Sandbox Fineract stopped");
            }
        });
        Ok(FineractMock { addr, shared, task })
    }

    /// Up to and including `/fineract-provider/api/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}{BASE}", self.addr)
    }

    pub fn payouts(&self) -> Vec<PayoutRow> {
        payout_rows(&self.shared.lock())
    }

    /// How many transactions (reversed or not) the account holds for a receipt number.
    pub fn bookings_for(&self, receipt: &str) -> usize {
        self.shared
            .lock()
            .txs
            .iter()
            .filter(|t| t.receipt.as_deref() == Some(receipt))
            .count()
    }
}

fn payout_rows(g: &Inner) -> Vec<PayoutRow> {
    let mut rows: Vec<PayoutRow> = Vec::new();
    for t in g.txs.iter().filter(|t| !t.reversed) {
        let id = t.receipt.clone().unwrap_or_default();
        match rows.iter_mut().find(|r| r.attempt_id == id) {
            Some(r) => r.count = r.count.saturating_add(1),
            None => rows.push(PayoutRow {
                attempt_id: id,
                reference: t.note.clone().unwrap_or_default(),
                amount: t.amount.clone(),
                currency: String::new(),
                count: 1,
            }),
        }
    }
    rows
}

fn api_error(status: StatusCode, code: &str, message: &str) -> (u16, String) {
    let body = serde_json::json!({
        "developerMessage": "Request was understood but caused a domain rule violation.",
        "httpStatusCode": status.as_u16().to_string(),
        "defaultUserMessage": "Errors contain reason for domain rule violation.",
        "userMessageGlobalisationCode": "validation.msg.domain.rule.violation",
        "errors": [{
            "developerMessage": message,
            "defaultUserMessage": message,
            "userMessageGlobalisationCode": code,
            "parameterName": "id",
            "args": []
        }]
    });
    (status.as_u16(), body.to_string())
}

fn reply(status: u16, body: String, cached: bool) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if cached {
        r.headers_mut()
            .insert("x-served-from-cache", HeaderValue::from_static("true"));
    }
    r
}

fn authorised(s: &Shared, h: &HeaderMap) -> Result<(), Box<Response>> {
    let tenant = h
        .get("Fineract-Platform-TenantId")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if tenant != s.cfg.tenant {
        let (st, b) = api_error(
            StatusCode::UNAUTHORIZED,
            "error.msg.invalid.tenant",
            "Invalid tenant identifier",
        );
        return Err(Box::new(reply(st, b, false)));
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", s.cfg.username, s.cfg.password))
    );
    if h.get("Authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        let (st, b) = api_error(
            StatusCode::UNAUTHORIZED,
            "error.msg.not.authenticated",
            "Unauthenticated. Please login.",
        );
        return Err(Box::new(reply(st, b, false)));
    }
    Ok(())
}

#[derive(Deserialize)]
struct CommandQuery {
    command: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    transaction_date: String,
    date_format: String,
    locale: String,
    transaction_amount: Box<RawValue>,
    #[serde(default)]
    receipt_number: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

async fn transaction(
    State(s): State<Shared>,
    Path(id): Path<i64>,
    Query(q): Query<CommandQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = authorised(&s, &headers) {
        return *r;
    }
    let deposit = match q.command.as_str() {
        "deposit" => true,
        "withdrawal" => false,
        _ => {
            let (st, b) = api_error(
                StatusCode::BAD_REQUEST,
                "error.msg.command.unsupported",
                "Unrecognized command",
            );
            return reply(st, b, false);
        }
    };
    let key = headers
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (latency, unavailable) = {
        let mut g = s.lock();
        g.calls = g.calls.saturating_add(1);
        if let Some((st, b)) = key.as_ref().and_then(|k| g.replies.get(k)).cloned() {
            return reply(st, b, true);
        }
        (
            g.faults.latency_ms,
            hit(g.calls, g.faults.error_rate_percent),
        )
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if unavailable {
        return reply(503, "{}".into(), false);
    }
    let b: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            let (st, body) = api_error(
                StatusCode::BAD_REQUEST,
                "validation.msg.validation.errors.exist",
                &e.to_string(),
            );
            return reply(st, body, false);
        }
    };
    let amount = b.transaction_amount.get().to_owned();
    if b.locale.is_empty()
        || b.date_format.is_empty()
        || b.transaction_date.is_empty()
        || amount.starts_with('-')
    {
        let (st, body) = api_error(
            StatusCode::BAD_REQUEST,
            "validation.msg.validation.errors.exist",
            "invalid parameters",
        );
        return reply(st, body, false);
    }
    let scenario = u8::try_from(id.rem_euclid(100)).unwrap_or(0);
    if scenario == 9 {
        let k = key.clone().unwrap_or_default();
        let mut g = s.lock();
        let n = g.unavailable.entry(k).or_insert(0);
        if *n < 2 {
            *n = n.saturating_add(1);
            return reply(503, "{}".into(), false);
        }
    }
    if scenario == 4 {
        tokio::time::sleep(Duration::from_millis(3000)).await;
    }
    let refusal = match scenario {
        1 | 11 => Some(api_error(
            StatusCode::FORBIDDEN,
            "error.msg.savingsaccount.transaction.insufficient.account.balance",
            "Insufficient account balance.",
        )),
        2 => Some(api_error(
            StatusCode::NOT_FOUND,
            "error.msg.saving.account.id.invalid",
            &format!("Savings account with identifier {id} does not exist"),
        )),
        3 => Some(api_error(
            StatusCode::FORBIDDEN,
            "error.msg.savingsaccount.transaction.account.is.not.active",
            "Transaction is not allowed. Account is not active.",
        )),
        _ => None,
    };
    let tx = Tx {
        id: 0,
        account: id,
        deposit,
        amount,
        reversed: scenario == 6,
        receipt: b.receipt_number,
        note: b.note,
        date: Utc::now().format("%Y-%m-%d").to_string(),
    };
    let (status, answer) = {
        let mut g = s.lock();
        let answer = match refusal {
            Some(r) => r,
            None => {
                let tx_id = book(&mut g, tx.clone());
                let ok = serde_json::json!({"officeId": 1, "clientId": id, "savingsId": id, "resourceId": tx_id});
                (200, ok.to_string())
            }
        };
        if let Some(k) = &key {
            g.replies.insert(k.clone(), answer.clone());
        }
        answer
    };
    if scenario == 11 {
        // The refusal was wrong: the deposit shows up on the account anyway.
        let s2 = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2000)).await;
            let mut g = s2.lock();
            book(&mut g, tx);
        });
    }
    if matches!(scenario, 5 | 6 | 10 | 12) {
        return dropped_connection();
    }
    reply(status, answer, false)
}

fn book(g: &mut Inner, mut tx: Tx) -> i64 {
    let id = i64::try_from(g.txs.len())
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    tx.id = id;
    g.txs.push(tx);
    id
}

#[derive(Deserialize)]
struct AccountQuery {
    #[serde(default)]
    associations: Option<String>,
}

async fn account(
    State(s): State<Shared>,
    Path(id): Path<i64>,
    Query(q): Query<AccountQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorised(&s, &headers) {
        return *r;
    }
    if id.rem_euclid(100) == 12 {
        return reply(
            500,
            r#"{"developerMessage":"Internal error"}"#.into(),
            false,
        );
    }
    if id.rem_euclid(100) == 2 {
        let (st, b) = api_error(
            StatusCode::NOT_FOUND,
            "error.msg.saving.account.id.invalid",
            &format!("Savings account with identifier {id} does not exist"),
        );
        return reply(st, b, false);
    }
    let g = s.lock();
    let with_txs = q
        .associations
        .as_deref()
        .is_some_and(|a| a.contains("transactions"));
    let mut txs: Vec<String> = Vec::new();
    if with_txs {
        // Newest first, as Fineract lists them; amounts are JSON numbers.
        for t in g.txs.iter().rev().filter(|t| t.account == id) {
            let ty = if t.deposit {
                r#"{"id":1,"code":"savingsAccountTransactionType.deposit","value":"Deposit","deposit":true,"withdrawal":false}"#
            } else {
                r#"{"id":2,"code":"savingsAccountTransactionType.withdrawal","value":"Withdrawal","deposit":false,"withdrawal":true}"#
            };
            let detail = serde_json::json!({"receiptNumber": t.receipt});
            txs.push(format!(
                r#"{{"id":{},"transactionType":{ty},"accountId":{id},"date":{},"amount":{},"reversed":{},"paymentDetailData":{detail},"note":{}}}"#,
                t.id,
                serde_json::json!(t.date),
                t.amount,
                t.reversed,
                serde_json::json!(t.note),
            ));
        }
    }
    let body = format!(
        r#"{{"id":{id},"accountNo":"{id:09}","status":{{"id":300,"code":"savingsAccountStatusType.active","active":true}},"currency":{{"code":"{}","decimalPlaces":{}}},"transactions":[{}]}}"#,
        s.cfg.currency.code(),
        s.cfg.currency.exponent(),
        txs.join(",")
    );
    reply(200, body, false)
}

async fn control_payouts(State(s): State<Shared>) -> Json<Vec<PayoutRow>> {
    let code = s.cfg.currency.code().to_owned();
    Json(
        payout_rows(&s.lock())
            .into_iter()
            .map(|mut r| {
                r.currency = code.clone();
                r
            })
            .collect(),
    )
}

async fn control_faults(State(s): State<Shared>, Json(f): Json<Faults>) -> Json<Faults> {
    s.lock().faults = f.clone();
    Json(f)
}

async fn control_statement(State(s): State<Shared>) -> Response {
    let g = s.lock();
    let lines: Vec<StatementLine> = g
        .txs
        .iter()
        .filter(|t| !t.reversed)
        .map(|t| StatementLine {
            date: t.date.clone(),
            amount: t.amount.clone(),
            currency: s.cfg.currency.code().to_owned(),
            direction: if t.deposit { "debit" } else { "credit" },
            reference: t.receipt.clone().unwrap_or_default(),
            counterparty: railgate_rail::mask(&t.account.to_string()),
            rail_transaction_id: t.id.to_string(),
        })
        .collect();
    (
        [(axum::http::header::CONTENT_TYPE, "text/csv")],
        statement_csv(&lines),
    )
        .into_response()
}
