//! Everything recorded about one payment, for the console's payment page: its attempts with
//! what was sent and what the rail answered, the callbacks that concerned it, its ledger
//! transfers and its webhook deliveries. Each list is read by the payment through an index
//! and bounded by [`MAX_ROWS`]: a payment has a handful of each, never thousands.
//!
//! Bodies come back as stored; the console masks them before showing them.

use super::{col, from_micros, uuid_col, Db, Result};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The most rows of one kind shown for one payment.
pub const MAX_ROWS: i64 = 200;

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: Uuid,
    pub seq: i64,
    pub rail: String,
    pub status: String,
    pub request_step: Option<String>,
    pub request_body: Option<Vec<u8>>,
    pub rail_reference: Option<String>,
    pub rail_state: Option<String>,
    pub rail_status: Option<String>,
    pub rail_status_reason: Option<String>,
    pub last_error: Option<String>,
    pub refusals: i64,
    pub deadline_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Callback {
    pub id: Uuid,
    pub rail: String,
    pub method: String,
    pub path: String,
    pub headers: String,
    pub body: Vec<u8>,
    pub verdict: String,
    pub reason: Option<String>,
    pub effect: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Transfer {
    pub id: Uuid,
    pub phase: String,
    pub debit: String,
    pub credit: String,
    pub amount_minor: i64,
    pub currency: String,
    pub cause: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub event_type: String,
    pub endpoint_id: Uuid,
    pub status: String,
    pub tries: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct Dossier {
    pub attempts: Vec<Attempt>,
    pub callbacks: Vec<Callback>,
    pub transfers: Vec<Transfer>,
    pub deliveries: Vec<Delivery>,
}

/// The payment's dossier. The caller has checked that the payment is the client's.
pub async fn read(db: &Db, payment_id: Uuid) -> Result<Dossier> {
    Ok(Dossier {
        attempts: attempts(db, payment_id).await?,
        callbacks: callbacks(db, payment_id).await?,
        transfers: transfers(db, payment_id).await?,
        deliveries: deliveries(db, payment_id).await?,
    })
}

async fn attempts(db: &Db, payment_id: Uuid) -> Result<Vec<Attempt>> {
    let rows = crate::store::sql::query(
        "SELECT id, seq, rail, status, request_step, request_body, rail_reference, rail_state, \
         rail_status, rail_status_reason, last_error, refusals, deadline_at, created_at \
         FROM attempts WHERE payment_id = $1 ORDER BY seq LIMIT $2",
    )
    .bind(payment_id.to_string())
    .bind(MAX_ROWS)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Attempt {
                id: uuid_col(r, "id")?,
                seq: col(r, "seq")?,
                rail: col(r, "rail")?,
                status: col(r, "status")?,
                request_step: col(r, "request_step")?,
                request_body: col(r, "request_body")?,
                rail_reference: col(r, "rail_reference")?,
                rail_state: col(r, "rail_state")?,
                rail_status: col(r, "rail_status")?,
                rail_status_reason: col(r, "rail_status_reason")?,
                last_error: col(r, "last_error")?,
                refusals: col(r, "refusals")?,
                deadline_at: from_micros(col(r, "deadline_at")?),
                created_at: from_micros(col(r, "created_at")?),
            })
        })
        .collect()
}

async fn callbacks(db: &Db, payment_id: Uuid) -> Result<Vec<Callback>> {
    let rows = crate::store::sql::query(
        "SELECT c.id, c.rail, c.method, c.path, c.headers, c.body, c.verdict, c.reason, \
         c.received_at, e.effect FROM callback_events e JOIN callbacks c ON c.id = e.callback_row \
         WHERE e.payment_id = $1 ORDER BY c.received_at LIMIT $2",
    )
    .bind(payment_id.to_string())
    .bind(MAX_ROWS)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Callback {
                id: uuid_col(r, "id")?,
                rail: col(r, "rail")?,
                method: col(r, "method")?,
                path: col(r, "path")?,
                headers: col(r, "headers")?,
                body: col(r, "body")?,
                verdict: col(r, "verdict")?,
                reason: col(r, "reason")?,
                effect: col(r, "effect")?,
                received_at: from_micros(col(r, "received_at")?),
            })
        })
        .collect()
}

async fn transfers(db: &Db, payment_id: Uuid) -> Result<Vec<Transfer>> {
    let rows = crate::store::sql::query(
        "SELECT t.id, t.phase, d.code AS debit, c.code AS credit, t.amount_minor, t.currency, \
         t.cause, t.created_at FROM ledger_transfers t \
         JOIN ledger_accounts d ON d.id = t.debit_account \
         JOIN ledger_accounts c ON c.id = t.credit_account \
         WHERE t.payment_id = $1 ORDER BY t.created_at LIMIT $2",
    )
    .bind(payment_id.to_string())
    .bind(MAX_ROWS)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Transfer {
                id: uuid_col(r, "id")?,
                phase: col(r, "phase")?,
                debit: col(r, "debit")?,
                credit: col(r, "credit")?,
                amount_minor: col(r, "amount_minor")?,
                currency: col(r, "currency")?,
                cause: col(r, "cause")?,
                created_at: from_micros(col(r, "created_at")?),
            })
        })
        .collect()
}

async fn deliveries(db: &Db, payment_id: Uuid) -> Result<Vec<Delivery>> {
    let rows = crate::store::sql::query(
        "SELECT d.id, e.type, d.endpoint_id, d.status, d.tries, d.last_status, d.last_error, \
         d.created_at, d.delivered_at FROM events e JOIN webhook_deliveries d ON d.event_id = e.id \
         WHERE e.payment_id = $1 ORDER BY e.seq, d.id LIMIT $2",
    )
    .bind(payment_id.to_string())
    .bind(MAX_ROWS)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let delivered: Option<i64> = col(r, "delivered_at")?;
            Ok(Delivery {
                id: uuid_col(r, "id")?,
                event_type: col(r, "type")?,
                endpoint_id: uuid_col(r, "endpoint_id")?,
                status: col(r, "status")?,
                tries: col(r, "tries")?,
                last_status: col(r, "last_status")?,
                last_error: col(r, "last_error")?,
                created_at: from_micros(col(r, "created_at")?),
                delivered_at: delivered.map(from_micros),
            })
        })
        .collect()
}
