//! What waits for an operator, read from where each kind is kept: payments with an exception
//! raised (`payments.exception`), the rails' contradictions (`conflicts`) and the dispatcher's
//! dead letter (`jobs.dead_at`). Each source is read oldest first after a place `(at, id)`,
//! so the caller can merge them into one keyset-paged queue.
//!
//! Cheap on a large store: an exception is a payment in `unknown` (the client's
//! `payments_client_state` index finds the few there); contradictions and dead jobs are rare
//! rows of small tables (dead jobs have their own partial index, `jobs_dead`).

use super::{col, Db, Result};
use crate::store::Conn;
use crate::store::Row;
use uuid::Uuid;

/// A place in a source: strictly after this time (microseconds) and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct After {
    pub at: i64,
    pub id: String,
}

impl After {
    /// Before everything.
    pub fn start() -> After {
        After {
            at: i64::MIN,
            id: String::new(),
        }
    }
}

/// The payment an item is about, as the queue shows it (no party data).
#[derive(Debug, Clone)]
pub struct PaymentSide {
    pub id: String,
    pub client_id: String,
    pub reference: String,
    pub state: String,
    pub direction: String,
    pub rail: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub exception: Option<String>,
    pub conflict: Option<String>,
}

fn payment_side(r: &Row) -> Result<PaymentSide> {
    Ok(PaymentSide {
        id: col(r, "p_id")?,
        client_id: col(r, "p_client_id")?,
        reference: col(r, "p_reference")?,
        state: col(r, "p_state")?,
        direction: col(r, "p_direction")?,
        rail: col(r, "p_rail")?,
        amount_minor: col(r, "p_amount_minor")?,
        currency: col(r, "p_currency")?,
        exception: col(r, "p_exception")?,
        conflict: col(r, "p_conflict")?,
    })
}

const PAYMENT_SIDE: &str = "p.id AS p_id, p.client_id AS p_client_id, p.reference AS \
    p_reference, p.state AS p_state, p.direction AS p_direction, p.rail AS p_rail, \
    p.amount_minor AS p_amount_minor, p.currency AS p_currency, p.exception AS p_exception, \
    p.conflict AS p_conflict";

/// A payment whose outcome stayed unknown past its deadline. `at` is when the exception was
/// raised (the payment's last write: nothing else writes a payment in that state).
#[derive(Debug, Clone)]
pub struct ExceptionRow {
    pub at: i64,
    pub payment: PaymentSide,
}

/// A client's payments with an exception raised, oldest first, after `after`.
pub async fn exceptions(
    db: &Db,
    client_id: Uuid,
    after: &After,
    limit: i64,
) -> Result<Vec<ExceptionRow>> {
    let rows = crate::store::sql::query(&format!(
        "SELECT {PAYMENT_SIDE}, p.updated_at AS at FROM payments p \
         WHERE p.state = 'unknown' AND p.exception IS NOT NULL AND p.client_id = $1 \
         AND (p.updated_at > $2 OR (p.updated_at = $2 AND p.id > $3)) \
         ORDER BY p.updated_at, p.id LIMIT $4"
    ))
    .bind(client_id.to_string())
    .bind(after.at)
    .bind(&after.id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ExceptionRow {
                at: col(r, "at")?,
                payment: payment_side(r)?,
            })
        })
        .collect()
}

/// A contradiction a rail (or a bank file) made about a payment.
#[derive(Debug, Clone)]
pub struct ConflictRow {
    pub id: String,
    pub at: i64,
    /// The payment's state when the rail contradicted it.
    pub held_state: String,
    /// What the rail said (`completed`, `failed`, ...).
    pub claimed: String,
    /// Who said it (the cause the engine recorded).
    pub source: String,
    pub detail: Option<String>,
    pub payment: PaymentSide,
}

/// A client's open contradictions, oldest first, after `after`: those on payments that still
/// carry one (an operator's settlement clears it) and whose reconciliation break, if a run
/// raised one, is not resolved.
pub async fn conflicts(
    db: &Db,
    client_id: Uuid,
    after: &After,
    limit: i64,
) -> Result<Vec<ConflictRow>> {
    let rows = crate::store::sql::query(&format!(
        "SELECT {PAYMENT_SIDE}, c.id AS id, c.at AS at, c.held_state AS held_state, \
         c.claimed AS claimed, c.source AS source, c.detail AS detail \
         FROM conflicts c JOIN payments p ON p.id = c.payment_id \
         WHERE c.client_id = $1 AND p.conflict IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM recon_breaks b WHERE b.client_id = $1 \
             AND b.dedupe_key = 'conflict:' || c.payment_id AND b.status <> 'open') \
         AND (c.at > $2 OR (c.at = $2 AND c.id > $3)) \
         ORDER BY c.at, c.id LIMIT $4"
    ))
    .bind(client_id.to_string())
    .bind(after.at)
    .bind(&after.id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ConflictRow {
                id: col(r, "id")?,
                at: col(r, "at")?,
                held_state: col(r, "held_state")?,
                claimed: col(r, "claimed")?,
                source: col(r, "source")?,
                detail: col(r, "detail")?,
                payment: payment_side(r)?,
            })
        })
        .collect()
}

/// A dead-lettered job, read as stored (text), so that one of a kind only a newer build knows
/// is listed all the same.
#[derive(Debug, Clone)]
pub struct DeadJobRow {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub payment_id: Option<String>,
    pub client_id: Option<String>,
    pub tries: i64,
    pub failures: i64,
    pub last_error: Option<String>,
}

/// Dead jobs of every client (the operator's), oldest death first, after `after`.
pub async fn dead_jobs(db: &Db, after: &After, limit: i64) -> Result<Vec<DeadJobRow>> {
    let rows = crate::store::sql::query(
        "SELECT id, kind, payment_id, client_id, tries, failures, last_error, dead_at FROM jobs \
         WHERE dead_at IS NOT NULL AND (dead_at > $1 OR (dead_at = $1 AND id > $2)) \
         ORDER BY dead_at, id LIMIT $3",
    )
    .bind(after.at)
    .bind(&after.id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeadJobRow {
                id: col(r, "id")?,
                at: col(r, "dead_at")?,
                kind: col(r, "kind")?,
                payment_id: col(r, "payment_id")?,
                client_id: col(r, "client_id")?,
                tries: col(r, "tries")?,
                failures: col(r, "failures")?,
                last_error: col(r, "last_error")?,
            })
        })
        .collect()
}

/// A statement line as evidence of a payment's outcome.
#[derive(Debug, Clone)]
pub struct EvidenceLine {
    pub amount_minor: i64,
    pub currency: String,
    /// `debit` (money out of the account) or `credit`.
    pub direction: String,
    pub receipt: Option<String>,
    pub rail_transaction_id: Option<String>,
}

/// One of the client's statement lines, `None` when the client has no such line.
pub async fn statement_line(
    conn: &mut Conn,
    client_id: Uuid,
    statement_id: Uuid,
    line_no: i64,
) -> Result<Option<EvidenceLine>> {
    let row = crate::store::sql::query(
        "SELECT amount_minor, currency, direction, receipt, rail_transaction_id \
         FROM statement_lines WHERE statement_id = $1 AND line_no = $2 AND client_id = $3",
    )
    .bind(statement_id.to_string())
    .bind(line_no)
    .bind(client_id.to_string())
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(EvidenceLine {
            amount_minor: col(&r, "amount_minor")?,
            currency: col(&r, "currency")?,
            direction: col(&r, "direction")?,
            receipt: col(&r, "receipt")?,
            rail_transaction_id: col(&r, "rail_transaction_id")?,
        })
    })
    .transpose()
}
