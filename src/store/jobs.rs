//! The durable job table (DESIGN §5): written in the same transaction as the state change that
//! calls for it, claimed under a lease, rescheduled by storing the next `run_at`.

use super::{col, now_micros, Db, Kind, Result};
use sqlx::AnyConnection;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Drives one payment: submit, resend, or inquire, whatever its state calls for.
    Payment,
    /// Sends a request an adapter asked for after a callback (Mojaloop's PUT /quotes/{id}).
    FollowUp,
    /// Delivers one webhook.
    Webhook,
    /// Asks a rail once more about a payment it failed (`dispatch::recheck`).
    ConfirmFailure,
    /// Drives one reversal (its id in the payload): send, resend, or inquire.
    Reversal,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Payment => "payment",
            JobKind::FollowUp => "follow_up",
            JobKind::Webhook => "webhook",
            JobKind::ConfirmFailure => "confirm_failure",
            JobKind::Reversal => "reversal",
        }
    }
    fn parse(s: &str) -> Option<JobKind> {
        match s {
            "payment" => Some(JobKind::Payment),
            "follow_up" => Some(JobKind::FollowUp),
            "webhook" => Some(JobKind::Webhook),
            "confirm_failure" => Some(JobKind::ConfirmFailure),
            "reversal" => Some(JobKind::Reversal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub kind: JobKind,
    pub payment_id: Option<Uuid>,
    pub payload: Option<String>,
    /// How many times the job has been claimed, this time included.
    pub tries: i64,
    pub version: i64,
}

/// Makes sure the payment's driving job runs no later than `run_at` (`client_id` is the
/// payment's client).
pub async fn schedule_payment(
    conn: &mut AnyConnection,
    client_id: Uuid,
    payment_id: Uuid,
    run_at: i64,
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE jobs SET run_at = CASE WHEN run_at < $1 AND lease_until IS NULL THEN run_at ELSE $1 END, \
         version = version + 1 WHERE kind = 'payment' AND payment_id = $2",
    )
    .bind(run_at)
    .bind(payment_id.to_string())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        insert(
            conn,
            JobKind::Payment,
            Some(client_id),
            Some(payment_id),
            None,
            run_at,
        )
        .await?;
    }
    Ok(())
}

/// Writes a job. `client_id` is the client the job works for (the payment's, the webhook
/// endpoint's); `None` only for a rail's own work that no client can be named for (a
/// follow-up a rail asked for after a callback).
pub async fn insert(
    conn: &mut AnyConnection,
    kind: JobKind,
    client_id: Option<Uuid>,
    payment_id: Option<Uuid>,
    payload: Option<&str>,
    run_at: i64,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payment_id, payload, run_at, created_at, client_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(kind.as_str())
    .bind(payment_id.map(|p| p.to_string()))
    .bind(payload)
    .bind(run_at)
    .bind(now_micros())
    .bind(client_id.map(|c| c.to_string()))
    .execute(conn)
    .await?;
    Ok(id)
}

/// Claims up to `limit` due jobs for `worker` until `now + lease`.
///
/// PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several instances share the table without
/// waiting on each other. SQLite: one writer, so the immediate transaction is enough.
pub async fn claim(db: &Db, worker: &str, lease_micros: i64, limit: i64) -> Result<Vec<Job>> {
    let now = now_micros();
    let skip_locked = match db.kind() {
        Kind::Postgres => "FOR UPDATE SKIP LOCKED",
        Kind::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET lease_until = $1, leased_by = $2, tries = tries + 1 WHERE id IN \
         (SELECT id FROM jobs WHERE run_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
          ORDER BY run_at LIMIT $4 {skip_locked}) \
         RETURNING id, kind, payment_id, payload, tries, version"
    );
    let mut tx = db.begin().await?;
    let rows = sqlx::query(&sql)
        .bind(now.saturating_add(lease_micros))
        .bind(worker)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    rows.iter()
        .filter_map(|r| {
            let kind: String = col(r, "kind").ok()?;
            Some((|| {
                let pid: Option<String> = col(r, "payment_id")?;
                let id: String = col(r, "id")?;
                Ok(Job {
                    id: Uuid::parse_str(&id).unwrap_or_default(),
                    kind: JobKind::parse(&kind).unwrap_or(JobKind::Payment),
                    payment_id: pid.and_then(|p| Uuid::parse_str(&p).ok()),
                    payload: col(r, "payload")?,
                    tries: col(r, "tries")?,
                    version: col(r, "version")?,
                })
            })())
        })
        .collect()
}

/// Removes a job that is done — unless it was rescheduled meanwhile (its version moved),
/// in which case only the lease is released so the new schedule stands.
pub async fn finish(conn: &mut AnyConnection, job: &Job) -> Result<()> {
    let done = sqlx::query("DELETE FROM jobs WHERE id = $1 AND version = $2")
        .bind(job.id.to_string())
        .bind(job.version)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        release_one(conn, job.id).await?;
    }
    Ok(())
}

/// Sets the job's next run, unless it was rescheduled meanwhile to run sooner.
pub async fn retry_at(
    conn: &mut AnyConnection,
    job: &Job,
    run_at: i64,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET run_at = CASE WHEN version = $1 THEN $2 ELSE run_at END, \
         lease_until = NULL, leased_by = NULL, last_error = COALESCE($3, last_error) WHERE id = $4",
    )
    .bind(job.version)
    .bind(run_at)
    .bind(error)
    .bind(job.id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

async fn release_one(conn: &mut AnyConnection, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE jobs SET lease_until = NULL, leased_by = NULL WHERE id = $1")
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Extends the leases of the jobs `worker` has in hand, so that a job waiting for its
/// rail's slot (or on a slow rail) is not taken by another worker, or by this one again,
/// while it is still being run. Only the listed jobs: one this worker let go of, or lost
/// track of, keeps its lease no longer than it would have.
pub async fn renew(db: &Db, worker: &str, ids: &[Uuid], lease_micros: i64) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    super::count_write();
    // `$3, $4, ...`: one placeholder per id (the `Any` driver binds no arrays).
    let list = (3..ids.len().saturating_add(3))
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE jobs SET lease_until = $1 WHERE leased_by = $2 AND lease_until IS NOT NULL \
         AND id IN ({list})"
    );
    let mut q = sqlx::query(&sql)
        .bind(now_micros().saturating_add(lease_micros))
        .bind(worker);
    for id in ids {
        q = q.bind(id.to_string());
    }
    Ok(q.execute(db.pool()).await?.rows_affected())
}

/// Gives back every job a worker holds (graceful shutdown), or every lease at all (`None`,
/// at the start of a single-instance SQLite gateway, whose previous process is gone).
pub async fn release(db: &Db, worker: Option<&str>) -> Result<u64> {
    let done = match worker {
        Some(w) => {
            sqlx::query("UPDATE jobs SET lease_until = NULL, leased_by = NULL WHERE leased_by = $1")
                .bind(w)
                .execute(db.pool())
                .await?
        }
        None => sqlx::query(
            "UPDATE jobs SET lease_until = NULL, leased_by = NULL WHERE lease_until IS NOT NULL",
        )
        .execute(db.pool())
        .await?,
    };
    Ok(done.rows_affected())
}

/// Jobs waiting, for metrics and readiness.
pub async fn depth(db: &Db) -> Result<i64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(db.pool())
        .await?;
    Ok(n)
}

/// Moves a payment's idle driving job to `run_at`, later or earlier (a job being run is left
/// alone). Used while a bulk upload is in flight, so the dispatcher does not ask about lines
/// the rail cannot know yet.
pub async fn postpone_payment(
    conn: &mut AnyConnection,
    payment_id: Uuid,
    run_at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET run_at = $1, version = version + 1 \
         WHERE kind = 'payment' AND payment_id = $2 AND lease_until IS NULL",
    )
    .bind(run_at)
    .bind(payment_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}
