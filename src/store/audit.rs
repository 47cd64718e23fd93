//! The console's audit trail: who did what, on what, when and why. Append-only: a row is
//! written once and never changed, so the trail is evidence, not state.

use super::{col, count_write, from_micros, now_micros, uuid_col, Db, Result, StoreError};
use crate::store::Conn;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Not allowed: a missing scope, a bad form token, a state that forbids it.
    Refused,
    /// Allowed, but it did not go through (the store failed, the rail could not be asked).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        match s {
            "done" => Some(Outcome::Done),
            "refused" => Some(Outcome::Refused),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// One action, as written.
#[derive(Debug, Clone)]
pub struct Entry {
    pub client_id: Uuid,
    pub key_id: Uuid,
    /// The key's owner as people read it (`client (key label)`).
    pub actor: String,
    /// What was done, a stable name (`payroll.release`, `statement.upload`, ...).
    pub action: &'static str,
    /// What it was done to (`payroll:<id>`, `break:<id>`, ...): never personal data.
    pub subject: String,
    pub reason: Option<String>,
    pub outcome: Outcome,
    /// What the gateway said, shortly (a count, a refusal's reason).
    pub detail: Option<String>,
}

/// One row of the trail, as read back.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: Uuid,
    pub key_id: Uuid,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub reason: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// The longest reason or detail kept, in characters: a reason is a sentence, not a file.
pub const MAX_TEXT: usize = 2_000;

fn bounded(s: Option<&str>) -> Option<String> {
    s.map(|t| t.chars().take(MAX_TEXT).collect())
}

/// Writes one entry; returns its id.
pub async fn record(db: &Db, e: &Entry) -> Result<Uuid> {
    count_write();
    let mut conn = db.pool().acquire().await?;
    record_in(&mut conn, e).await
}

/// Writes one entry in the caller's transaction: the action and its row commit together.
pub async fn record_in(conn: &mut Conn, e: &Entry) -> Result<Uuid> {
    let id = Uuid::now_v7();
    crate::store::sql::query(
        "INSERT INTO audit_log (id, client_id, key_id, actor, action, subject, reason, outcome, \
         detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id.to_string())
    .bind(e.client_id.to_string())
    .bind(e.key_id.to_string())
    .bind(&e.actor)
    .bind(e.action)
    .bind(&e.subject)
    .bind(bounded(e.reason.as_deref()))
    .bind(e.outcome.as_str())
    .bind(bounded(e.detail.as_deref()))
    .bind(now_micros())
    .execute(conn)
    .await?;
    Ok(id)
}

/// A page of the client's trail, newest first, before the row `before` (keyset), optionally
/// for one subject.
pub async fn page(
    db: &Db,
    client_id: Uuid,
    subject: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Row>> {
    let mut sql = String::from(
        "SELECT id, client_id, key_id, actor, action, subject, reason, outcome, detail, at \
         FROM audit_log WHERE client_id = $1",
    );
    let mut binds = vec![client_id.to_string()];
    if let Some(s) = subject {
        binds.push(s.to_owned());
        sql.push_str(&format!(" AND subject = ${}", binds.len()));
    }
    if let Some(b) = before {
        binds.push(b.to_string());
        sql.push_str(&format!(" AND id < ${}", binds.len()));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit.clamp(1, 500)));
    let mut q = crate::store::sql::query(&sql);
    for b in binds {
        q = q.bind(b);
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            let outcome: String = col(r, "outcome")?;
            Ok(Row {
                id: uuid_col(r, "id")?,
                key_id: uuid_col(r, "key_id")?,
                actor: col(r, "actor")?,
                action: col(r, "action")?,
                subject: col(r, "subject")?,
                reason: col(r, "reason")?,
                outcome: Outcome::parse(&outcome)
                    .ok_or_else(|| StoreError::Corrupt(format!("audit outcome {outcome}")))?,
                detail: col(r, "detail")?,
                at: from_micros(col(r, "at")?),
            })
        })
        .collect()
}
