//! Batches sent to a rail's batch API: stored before the upload, with their lines (attempts
//! carrying the batch's id), so a batch's open lines are one indexed read away.

use super::{col, now_micros, uuid_col, Result};
use crate::domain::{Currency, Money};
use crate::store::Conn;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Stored; the upload may be under way or may have died with the process.
    Sending,
    /// The rail took it: read its results.
    Open,
    /// The upload's answer was lost: its lines are asked about one by one.
    Unknown,
    /// The rail refused it with nothing moved: its lines went one by one.
    Refused,
    /// No line of it waits for the batch any more.
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sending => "sending",
            Status::Open => "open",
            Status::Unknown => "unknown",
            Status::Refused => "refused",
            Status::Closed => "closed",
        }
    }
}

/// An open batch: our id and the rail's reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenBatch {
    pub id: Uuid,
    pub batch_ref: String,
}

/// A line of a batch, with where its payment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub attempt_id: Uuid,
    pub payment_id: Uuid,
    /// The payment's client.
    pub client_id: Uuid,
    pub amount: Money,
    /// Where the payment stands (`None` for a state this build does not know).
    pub state: Option<crate::domain::State>,
    /// The payment is in a final state, or waits for an operator: the batch need not wait.
    pub done: bool,
    /// A conflict is recorded on the payment already: a contradiction read again is not new.
    pub conflicted: bool,
}

/// Stores a batch of `client_id`'s payments (a batch never mixes clients).
pub async fn insert(
    conn: &mut Conn,
    client_id: Uuid,
    id: Uuid,
    rail: &str,
    lines: usize,
) -> Result<()> {
    let now = now_micros();
    crate::store::sql::query(
        "INSERT INTO rail_batches (id, rail, status, lines, created_at, updated_at, client_id) \
         VALUES ($1, $2, $3, $4, $5, $5, $6)",
    )
    .bind(id.to_string())
    .bind(rail)
    .bind(Status::Sending.as_str())
    .bind(i64::try_from(lines).unwrap_or(i64::MAX))
    .bind(now)
    .bind(client_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_status(
    conn: &mut Conn,
    id: Uuid,
    status: Status,
    batch_ref: Option<&str>,
) -> Result<()> {
    crate::store::sql::query(
        "UPDATE rail_batches SET status = $1, batch_ref = COALESCE($2, batch_ref), updated_at = $3 \
         WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(batch_ref)
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks many attempts as lines of `batch_id` (one statement per hundred lines).
pub async fn add_lines(
    conn: &mut Conn,
    batch_id: Uuid,
    attempt_ids: &[Uuid],
    rail_state: &serde_json::Value,
) -> Result<()> {
    let state = rail_state.to_string();
    for chunk in attempt_ids.chunks(100) {
        let kind = conn.kind();
        let sql = format!(
            "UPDATE attempts SET batch_id = $1, rail_state = $2, updated_at = $3 WHERE {}",
            crate::store::sql::in_list(kind, "id", 4, chunk.len())
        );
        crate::store::sql::query(&sql)
            .bind(batch_id.to_string())
            .bind(state.as_str())
            .bind(now_micros())
            .bind_list(kind, chunk.iter().map(Uuid::to_string).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Gives every line of a batch the same rail state (the batch's reference, once known).
pub async fn set_lines_state(
    conn: &mut Conn,
    batch_id: Uuid,
    rail_state: &serde_json::Value,
) -> Result<()> {
    crate::store::sql::query(
        "UPDATE attempts SET rail_state = $1, updated_at = $2 WHERE batch_id = $3",
    )
    .bind(rail_state.to_string())
    .bind(now_micros())
    .bind(batch_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Up to `limit` batches of `rail` to read, oldest first: open ones, and those whose upload
/// answer was lost but which the rail can be asked about by our id.
pub async fn open(conn: &mut Conn, rail: &str, limit: i64) -> Result<Vec<OpenBatch>> {
    let rows = crate::store::sql::query(
        "SELECT id, batch_ref FROM rail_batches WHERE rail = $1 AND status IN ('open', 'unknown') \
         AND batch_ref IS NOT NULL ORDER BY created_at, id LIMIT $2",
    )
    .bind(rail)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OpenBatch {
                id: uuid_col(r, "id")?,
                batch_ref: col(r, "batch_ref")?,
            })
        })
        .collect()
}

/// Of `payments`, those whose attempt is an accepted line of an open batch, with when the
/// batch was opened (micros): their results are to come with the batch's.
pub async fn awaiting_open_batch(
    conn: &mut Conn,
    payments: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, i64>> {
    let mut out = std::collections::HashMap::new();
    let kind = conn.kind();
    let per_statement = match kind {
        super::Kind::Postgres => payments.len().max(1),
        super::Kind::Sqlite => 500,
    };
    for chunk in payments.chunks(per_statement) {
        let sql = format!(
            "SELECT a.payment_id, b.updated_at FROM attempts a \
             JOIN rail_batches b ON b.id = a.batch_id \
             WHERE {} AND a.status = 'accepted' AND b.status = 'open'",
            crate::store::sql::in_list(kind, "a.payment_id", 1, chunk.len())
        );
        let rows = crate::store::sql::query(&sql)
            .bind_list(kind, chunk.iter().map(Uuid::to_string).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        for r in &rows {
            out.insert(uuid_col(r, "payment_id")?, col(r, "updated_at")?);
        }
    }
    Ok(out)
}

/// Every line of a batch, with where its payment stands.
pub async fn lines(conn: &mut Conn, batch_id: Uuid) -> Result<Vec<Line>> {
    let rows = crate::store::sql::query(
        "SELECT a.id, a.payment_id, p.client_id, p.amount_minor, p.currency, p.state, \
         p.conflict, p.exception FROM attempts a JOIN payments p ON p.id = a.payment_id WHERE a.batch_id = $1",
    )
    .bind(batch_id.to_string())
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let currency: String = col(r, "currency")?;
        let currency: Currency = currency
            .parse()
            .map_err(|_| super::StoreError::Corrupt(format!("currency {currency}")))?;
        let amount = Money::from_minor(col(r, "amount_minor")?, currency)
            .map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
        let state: String = col(r, "state")?;
        let conflict: Option<String> = col(r, "conflict")?;
        let exception: Option<String> = col(r, "exception")?;
        let state = crate::domain::State::parse(&state);
        let done = exception.is_some() || state.is_some_and(|s| s.is_final());
        out.push(Line {
            attempt_id: uuid_col(r, "id")?,
            payment_id: uuid_col(r, "payment_id")?,
            client_id: uuid_col(r, "client_id")?,
            amount,
            state,
            done,
            conflicted: conflict.is_some(),
        });
    }
    Ok(out)
}
