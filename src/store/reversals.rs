//! Reversals asked of a rail: each is stored (its id is the rail's idempotency key) with its
//! job before anything is sent, and moves `requested → sending → accepted | unknown →
//! completed | failed`. At most one reversal of a payment is live (not failed) at a time.

use super::{col, from_micros, now_micros, uuid_col, Result, StoreError};
use crate::domain::Failure;
use crate::store::Conn;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored with its job; not sent yet.
    Requested,
    /// Being sent, or a send died with its process: the rail is asked before anything else.
    Sending,
    /// The rail refused with nothing done: the same reversal (same id) may be sent again.
    Retry,
    /// The rail took it; its outcome comes by callback or inquiry.
    Accepted,
    /// The answer was lost: only asking the rail may settle it.
    Unknown,
    /// The rail confirmed; the payment is reversed.
    Completed,
    /// The rail refused; the payment stays completed.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Sending => "sending",
            Status::Retry => "retry",
            Status::Accepted => "accepted",
            Status::Unknown => "unknown",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<Status> {
        match s {
            "requested" => Some(Status::Requested),
            "sending" => Some(Status::Sending),
            "retry" => Some(Status::Retry),
            "accepted" => Some(Status::Accepted),
            "unknown" => Some(Status::Unknown),
            "completed" => Some(Status::Completed),
            "failed" => Some(Status::Failed),
            _ => None,
        }
    }
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed)
    }
}

#[derive(Debug, Clone)]
pub struct ReversalRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub client_id: Uuid,
    pub rail: String,
    pub status: Status,
    pub reason: Option<String>,
    pub rail_reference: Option<String>,
    pub failure: Option<Failure>,
    pub last_error: Option<String>,
    pub exception: Option<String>,
    pub deadline_at: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, payment_id, client_id, rail, status, reason, rail_reference, \
    failure_code, failure_reason, failure_rail_code, last_error, exception, deadline_at, \
    created_at, updated_at";

fn from_row(row: &crate::store::Row) -> Result<ReversalRow> {
    let status: String = col(row, "status")?;
    let code: Option<String> = col(row, "failure_code")?;
    let reason: Option<String> = col(row, "failure_reason")?;
    let rail_code: Option<String> = col(row, "failure_rail_code")?;
    let failure = match (
        code.as_deref()
            .and_then(super::payments::parse_failure_code),
        reason,
    ) {
        (Some(code), Some(reason)) => Some(Failure::new(code, reason, rail_code)),
        _ => None,
    };
    Ok(ReversalRow {
        id: uuid_col(row, "id")?,
        payment_id: uuid_col(row, "payment_id")?,
        client_id: uuid_col(row, "client_id")?,
        rail: col(row, "rail")?,
        status: Status::parse(&status).ok_or_else(|| StoreError::Corrupt(status.clone()))?,
        reason: col(row, "reason")?,
        rail_reference: col(row, "rail_reference")?,
        failure,
        last_error: col(row, "last_error")?,
        exception: col(row, "exception")?,
        deadline_at: col(row, "deadline_at")?,
        created_at: from_micros(col(row, "created_at")?),
        updated_at: from_micros(col(row, "updated_at")?),
    })
}

/// Stores a new reversal as `requested`. A second live reversal of the payment is refused by
/// the database (a unique violation), whoever asked first.
pub async fn insert(
    conn: &mut Conn,
    payment_id: Uuid,
    client_id: Uuid,
    rail: &str,
    reason: Option<&str>,
    deadline_at: i64,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let now = now_micros();
    crate::store::sql::query(
        "INSERT INTO reversals (id, payment_id, client_id, rail, status, reason, deadline_at, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(id.to_string())
    .bind(payment_id.to_string())
    .bind(client_id.to_string())
    .bind(rail)
    .bind(Status::Requested.as_str())
    .bind(reason)
    .bind(deadline_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn get(conn: &mut Conn, id: Uuid) -> Result<Option<ReversalRow>> {
    let row = crate::store::sql::query(&format!("SELECT {COLUMNS} FROM reversals WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A payment's reversals, oldest first.
pub async fn of_payment(conn: &mut Conn, payment_id: Uuid) -> Result<Vec<ReversalRow>> {
    let rows = crate::store::sql::query(&format!(
        "SELECT {COLUMNS} FROM reversals WHERE payment_id = $1 ORDER BY created_at, id"
    ))
    .bind(payment_id.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Moves a reversal that is not final yet; false when it already was (a callback or another
/// run settled it first), in which case nothing changed.
pub async fn set_status(
    conn: &mut Conn,
    id: Uuid,
    status: Status,
    rail_reference: Option<&str>,
    last_error: Option<&str>,
) -> Result<bool> {
    let done = crate::store::sql::query(
        "UPDATE reversals SET status = $1, rail_reference = COALESCE($2, rail_reference), \
         last_error = COALESCE($3, last_error), updated_at = $4 \
         WHERE id = $5 AND status NOT IN ('completed', 'failed')",
    )
    .bind(status.as_str())
    .bind(rail_reference)
    .bind(last_error)
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The rail refused: the reversal fails with its reason (unless already final).
pub async fn fail(conn: &mut Conn, id: Uuid, f: &Failure) -> Result<bool> {
    let done = crate::store::sql::query(
        "UPDATE reversals SET status = 'failed', failure_code = $1, failure_reason = $2, \
         failure_rail_code = $3, updated_at = $4 \
         WHERE id = $5 AND status NOT IN ('completed', 'failed')",
    )
    .bind(f.code.as_str())
    .bind(&f.reason)
    .bind(f.rail_code.as_deref())
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// No final answer by the deadline: an operator must settle it with the rail.
pub async fn set_exception(conn: &mut Conn, id: Uuid, why: &str) -> Result<()> {
    crate::store::sql::query("UPDATE reversals SET exception = $1, updated_at = $2 WHERE id = $3")
        .bind(why)
        .bind(now_micros())
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
