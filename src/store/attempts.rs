//! Attempts: each send of a payment to a rail, stored before anything is sent.

use super::{col, from_micros, now_micros, uuid_col, Result, StoreError};
use crate::store::Conn;
use railgate_rail::PreparedRequest;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Stored; a send may be under way or may have died with the process.
    Sending,
    /// The rail refused with nothing moved: the same attempt may be sent again.
    Retry,
    /// A multi-step rail moved on (a callback said so): the next step is to be sent.
    Step,
    Accepted,
    Unknown,
    Completed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sending => "sending",
            Status::Retry => "retry",
            Status::Step => "step",
            Status::Accepted => "accepted",
            Status::Unknown => "unknown",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<Status> {
        match s {
            "sending" => Some(Status::Sending),
            "retry" => Some(Status::Retry),
            "step" => Some(Status::Step),
            "accepted" => Some(Status::Accepted),
            "unknown" => Some(Status::Unknown),
            "completed" => Some(Status::Completed),
            "failed" => Some(Status::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    /// The payment's client.
    pub client_id: Uuid,
    pub rail: String,
    pub seq: i64,
    pub status: Status,
    pub request: Option<PreparedRequest>,
    pub rail_reference: Option<String>,
    pub rail_state: Option<serde_json::Value>,
    pub deadline_at: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The latest interim status the rail reported (a bank's pain.002 `ACSC`), if any.
    pub rail_status: Option<String>,
    /// Its reason code, when the rail gave one.
    pub rail_status_reason: Option<String>,
}

const COLUMNS: &str = "id, payment_id, rail, seq, status, request_step, request_body, \
    rail_reference, rail_state, deadline_at, created_at, rail_status, rail_status_reason, \
    client_id";

/// The payment's next attempt on `rail`, `sending` (one statement; see [`insert_many`]).
pub async fn insert(
    conn: &mut Conn,
    client_id: Uuid,
    payment_id: Uuid,
    rail: &str,
    deadline_at: i64,
) -> Result<AttemptRow> {
    insert_many(conn, client_id, &[payment_id], rail, deadline_at)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("an attempt was not stored".into()))
}

fn from_row(row: &crate::store::Row) -> Result<AttemptRow> {
    let status: String = col(row, "status")?;
    let step: Option<String> = col(row, "request_step")?;
    let body: Option<Vec<u8>> = col(row, "request_body")?;
    let state: Option<String> = col(row, "rail_state")?;
    Ok(AttemptRow {
        id: uuid_col(row, "id")?,
        payment_id: uuid_col(row, "payment_id")?,
        client_id: uuid_col(row, "client_id")?,
        rail: col(row, "rail")?,
        seq: col(row, "seq")?,
        status: Status::parse(&status).ok_or_else(|| StoreError::Corrupt(status.clone()))?,
        request: match (step, body) {
            (Some(step), Some(body)) => Some(PreparedRequest { step, body }),
            _ => None,
        },
        rail_reference: col(row, "rail_reference")?,
        rail_state: state.and_then(|s| serde_json::from_str(&s).ok()),
        deadline_at: col(row, "deadline_at")?,
        created_at: from_micros(col(row, "created_at")?),
        rail_status: col(row, "rail_status")?,
        rail_status_reason: col(row, "rail_status_reason")?,
    })
}

/// The latest attempt of a payment.
pub async fn latest(conn: &mut Conn, payment_id: Uuid) -> Result<Option<AttemptRow>> {
    let row = crate::store::sql::query(&format!(
        "SELECT {COLUMNS} FROM attempts WHERE payment_id = $1 ORDER BY seq DESC LIMIT 1"
    ))
    .bind(payment_id.to_string())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn get(conn: &mut Conn, id: Uuid) -> Result<Option<AttemptRow>> {
    let row = crate::store::sql::query(&format!("SELECT {COLUMNS} FROM attempts WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// [`get`] for many attempts at once, by id (those that exist).
pub async fn get_many(
    conn: &mut Conn,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, AttemptRow>> {
    let mut found = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(100) {
        let kind = conn.kind();
        let sql = format!(
            "SELECT {COLUMNS} FROM attempts WHERE {}",
            crate::store::sql::in_list(kind, "id", 1, chunk.len())
        );
        let q = crate::store::sql::query(&sql)
            .bind_list(kind, chunk.iter().map(Uuid::to_string).collect::<Vec<_>>());
        for row in q.fetch_all(&mut *conn).await? {
            let a = from_row(&row)?;
            found.insert(a.id, a);
        }
    }
    Ok(found)
}

pub async fn find_by_rail_reference(
    conn: &mut Conn,
    rail: &str,
    rail_reference: &str,
) -> Result<Option<AttemptRow>> {
    let row = crate::store::sql::query(&format!(
        "SELECT {COLUMNS} FROM attempts WHERE rail = $1 AND rail_reference = $2 \
         ORDER BY seq DESC LIMIT 1"
    ))
    .bind(rail)
    .bind(rail_reference)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The attempts of a rail still waiting on `rail_reference` (not completed or failed), oldest
/// first: one answer may serve several (Mojaloop: one party lookup for several payments).
pub async fn waiting_by_rail_reference(
    conn: &mut Conn,
    rail: &str,
    rail_reference: &str,
) -> Result<Vec<AttemptRow>> {
    let rows = crate::store::sql::query(&format!(
        "SELECT {COLUMNS} FROM attempts WHERE rail = $1 AND rail_reference = $2 \
         AND status NOT IN ('completed', 'failed') ORDER BY created_at, id"
    ))
    .bind(rail)
    .bind(rail_reference)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Records the reference an answer will be keyed by, before the request goes out.
pub async fn set_rail_reference(conn: &mut Conn, id: Uuid, rail_reference: &str) -> Result<()> {
    crate::store::sql::query(
        "UPDATE attempts SET rail_reference = $1, updated_at = $2 WHERE id = $3",
    )
    .bind(rail_reference)
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the reference the rail's later messages for an attempt still open will carry.
pub async fn link_rail_reference(conn: &mut Conn, id: Uuid, rail_reference: &str) -> Result<()> {
    crate::store::sql::query(
        "UPDATE attempts SET rail_reference = $1, updated_at = $2 \
         WHERE id = $3 AND status NOT IN ('completed', 'failed')",
    )
    .bind(rail_reference)
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores the state a step's answer left, unless a callback already moved the attempt on
/// while the step was being sent (its answer beat ours). True when stored.
pub async fn step_sent(conn: &mut Conn, id: Uuid, state: &serde_json::Value) -> Result<bool> {
    let done = crate::store::sql::query(
        "UPDATE attempts SET rail_state = $1, updated_at = $2 WHERE id = $3 AND status = 'sending'",
    )
    .bind(state.to_string())
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// [`insert`] for many payments of one client on one rail: each gets its next attempt,
/// `sending`, by one statement (SQLite: per 5,000). Returns the attempts in the order given.
pub async fn insert_many(
    conn: &mut Conn,
    client_id: Uuid,
    payment_ids: &[Uuid],
    rail: &str,
    deadline_at: i64,
) -> Result<Vec<AttemptRow>> {
    use crate::store::sql::{Col, Rows};
    let kind = conn.kind();
    let now = now_micros();
    let ids: Vec<Uuid> = payment_ids.iter().map(|_| Uuid::new_v4()).collect();
    let rows = Rows::new(vec![
        (
            "id",
            Col::Text(ids.iter().map(|i| Some(i.to_string())).collect()),
        ),
        (
            "payment",
            Col::Text(payment_ids.iter().map(|p| Some(p.to_string())).collect()),
        ),
    ]);
    let mut seqs: std::collections::HashMap<String, i64> =
        std::collections::HashMap::with_capacity(ids.len());
    for part in rows.parts(kind) {
        let got = crate::store::sql::query_as::<(String, i64)>(&format!(
            "WITH {} INSERT INTO attempts (id, payment_id, rail, seq, status, deadline_at, \
             created_at, updated_at, client_id) SELECT u.id, u.payment, $1, \
             COALESCE((SELECT MAX(a.seq) FROM attempts a WHERE a.payment_id = u.payment), 0) + 1, \
             $2, $3, $4, $4, $5 FROM u WHERE true RETURNING id, seq",
            part.cte(kind, 6)
        ))
        .bind(rail)
        .bind(Status::Sending.as_str())
        .bind(deadline_at)
        .bind(now)
        .bind(client_id.to_string())
        .bind_rows(kind, part)
        .fetch_all(&mut *conn)
        .await?;
        seqs.extend(got);
    }
    ids.iter()
        .zip(payment_ids)
        .map(|(id, payment_id)| {
            let seq = *seqs
                .get(&id.to_string())
                .ok_or_else(|| StoreError::Corrupt("an attempt was not stored".into()))?;
            Ok(AttemptRow {
                id: *id,
                payment_id: *payment_id,
                client_id,
                rail: rail.to_owned(),
                seq,
                status: Status::Sending,
                request: None,
                rail_reference: None,
                rail_state: None,
                deadline_at,
                created_at: from_micros(now),
                rail_status: None,
                rail_status_reason: None,
            })
        })
        .collect()
}

/// Marks an attempt accepted, unless a callback already settled it or moved it to its next step.
pub async fn mark_accepted(conn: &mut Conn, id: Uuid, rail_reference: Option<&str>) -> Result<()> {
    crate::store::sql::query(
        "UPDATE attempts SET status = 'accepted', rail_reference = COALESCE($1, rail_reference), \
         updated_at = $2 WHERE id = $3 AND status NOT IN ('completed', 'failed', 'step')",
    )
    .bind(rail_reference)
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn store_request(conn: &mut Conn, id: Uuid, req: &PreparedRequest) -> Result<()> {
    crate::store::sql::query(
        "UPDATE attempts SET request_step = $1, request_body = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(&req.step)
    .bind(req.body.clone())
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_status(
    conn: &mut Conn,
    id: Uuid,
    status: Status,
    rail_reference: Option<&str>,
    last_error: Option<&str>,
) -> Result<()> {
    crate::store::sql::query(
        "UPDATE attempts SET status = $1, rail_reference = COALESCE($2, rail_reference), \
         last_error = COALESCE($3, last_error), updated_at = $4 WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(rail_reference)
    .bind(last_error)
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// One attempt's new status, for [`set_status_many`].
#[derive(Debug, Clone)]
pub struct StatusWrite {
    pub id: Uuid,
    pub status: Status,
    pub rail_reference: Option<String>,
    pub why: Option<String>,
}

/// [`set_status`] for many attempts, one statement (SQLite: per 7,500).
pub async fn set_status_many(conn: &mut Conn, writes: Vec<StatusWrite>) -> Result<()> {
    use crate::store::sql::{Col, Rows};
    if writes.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let rows = Rows::new(vec![
        (
            "id",
            Col::Text(writes.iter().map(|w| Some(w.id.to_string())).collect()),
        ),
        (
            "status",
            Col::Text(
                writes
                    .iter()
                    .map(|w| Some(w.status.as_str().to_owned()))
                    .collect(),
            ),
        ),
        (
            "rail_reference",
            Col::Text(writes.iter().map(|w| w.rail_reference.clone()).collect()),
        ),
        (
            "why",
            Col::Text(writes.into_iter().map(|w| w.why).collect()),
        ),
    ]);
    let now = now_micros();
    for part in rows.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} UPDATE attempts SET status = u.status, \
             rail_reference = COALESCE(u.rail_reference, attempts.rail_reference), \
             last_error = COALESCE(u.why, attempts.last_error), updated_at = $1 \
             FROM u WHERE attempts.id = u.id{}",
            part.cte(kind, 2),
            crate::store::sql::by_key(kind, "attempts.id", 2)
        ))
        .bind(now)
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// [`mark_accepted`] for many attempts (id, the rail's reference if it gave one).
pub async fn mark_accepted_many(
    conn: &mut Conn,
    accepted: Vec<(Uuid, Option<String>)>,
) -> Result<()> {
    use crate::store::sql::{Col, Rows};
    if accepted.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let (ids, refs): (Vec<_>, Vec<_>) = accepted
        .into_iter()
        .map(|(id, r)| (Some(id.to_string()), r))
        .unzip();
    let rows = Rows::new(vec![
        ("id", Col::Text(ids)),
        ("rail_reference", Col::Text(refs)),
    ]);
    let now = now_micros();
    for part in rows.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} UPDATE attempts SET status = 'accepted', \
             rail_reference = COALESCE(u.rail_reference, attempts.rail_reference), \
             updated_at = $1 FROM u WHERE attempts.id = u.id{} \
             AND attempts.status NOT IN ('completed', 'failed', 'step')",
            part.cte(kind, 2),
            crate::store::sql::by_key(kind, "attempts.id", 2)
        ))
        .bind(now)
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Records one refusal of the attempt by its rail (nothing moved): the attempt goes back to
/// `retry` with the reason, and the number of refusals so far, this one included, is returned.
/// The dispatcher gives up on the attempt by this count, not by how often its job was claimed
/// (restarts claim jobs too).
pub async fn record_refusal(conn: &mut Conn, id: Uuid, why: &str) -> Result<i64> {
    let row = crate::store::sql::query(
        "UPDATE attempts SET status = $1, last_error = $2, refusals = refusals + 1, \
         updated_at = $3 WHERE id = $4 RETURNING refusals",
    )
    .bind(Status::Retry.as_str())
    .bind(why)
    .bind(now_micros())
    .bind(id.to_string())
    .fetch_one(conn)
    .await?;
    col(&row, "refusals")
}

pub async fn set_rail_state(conn: &mut Conn, id: Uuid, state: &serde_json::Value) -> Result<()> {
    crate::store::sql::query("UPDATE attempts SET rail_state = $1, updated_at = $2 WHERE id = $3")
        .bind(state.to_string())
        .bind(now_micros())
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Up to `limit` rail references of attempts on `rail` still waiting for an outcome whose
/// rail state carries `marker` (PH-EE bulk lines: the batch ids still open).
pub async fn open_references_marked(
    conn: &mut Conn,
    rail: &str,
    marker: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let rows: Vec<Option<String>> = crate::store::sql::query_scalar(
        "SELECT DISTINCT rail_reference FROM attempts WHERE rail = $1 \
         AND status IN ('accepted', 'unknown') AND rail_reference IS NOT NULL \
         AND rail_state LIKE $2 LIMIT $3",
    )
    .bind(rail)
    .bind(format!("%{marker}%"))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// The attempts on `rail` with this rail reference that still wait for an outcome.
pub async fn open_by_rail_reference(
    conn: &mut Conn,
    rail: &str,
    rail_reference: &str,
) -> Result<Vec<AttemptRow>> {
    let rows = crate::store::sql::query(&format!(
        "SELECT {COLUMNS} FROM attempts WHERE rail = $1 AND rail_reference = $2 \
         AND status IN ('accepted', 'unknown') ORDER BY id"
    ))
    .bind(rail)
    .bind(rail_reference)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Records the interim status the rail reported for an attempt (a bank's pain.002 `ACSC`) and
/// its reason code. True when it changed what was recorded.
pub async fn set_rail_status(
    conn: &mut Conn,
    id: Uuid,
    status: &str,
    reason: Option<&str>,
) -> Result<bool> {
    // `COALESCE(..., '')` compares NULLs as equal on both stores.
    let done = crate::store::sql::query(
        "UPDATE attempts SET rail_status = $1, rail_status_reason = $2, rail_status_at = $3, \
         updated_at = $3 WHERE id = $4 \
         AND (COALESCE(rail_status, '') <> $1 OR COALESCE(rail_status_reason, '') <> COALESCE($2, ''))",
    )
    .bind(status)
    .bind(reason)
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Up to `limit` attempts on `rail` that still wait for an outcome (their payment is not
/// final), oldest first: what a file rail's watcher reads the inbound folder for.
pub async fn open_on_rail(conn: &mut Conn, rail: &str, limit: i64) -> Result<Vec<AttemptRow>> {
    let cols = COLUMNS
        .split(", ")
        .map(|c| format!("a.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = crate::store::sql::query(&format!(
        "SELECT {cols} FROM attempts a JOIN payments p ON p.id = a.payment_id \
         WHERE a.rail = $1 AND a.status IN ('sending', 'accepted', 'unknown') \
         AND p.state IN ('submitted', 'pending', 'unknown') ORDER BY a.created_at LIMIT $2"
    ))
    .bind(rail)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}
