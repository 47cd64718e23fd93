//! The durable job table (DESIGN §5): written in the same transaction as the state change that
//! calls for it, claimed under a lease, rescheduled by storing the next `run_at`.
//!
//! Safe across versions: a build claims only the kinds it knows ([`JobKind::ALL`]), so a job
//! written by a newer build sharing the database waits for that build and is never run as
//! another kind. A job whose run keeps failing is dead-lettered (`dead_at`) after a bounded
//! number of failures in a row, and waits there for an operator ([`requeue`]).

use super::{col, from_micros, now_micros, uuid_col, Db, Kind, Result, StoreError};
use crate::store::Conn;
use crate::store::Row;
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
    /// Every kind this build runs: the only ones it claims.
    pub const ALL: [JobKind; 5] = [
        JobKind::Payment,
        JobKind::FollowUp,
        JobKind::Webhook,
        JobKind::ConfirmFailure,
        JobKind::Reversal,
    ];

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
/// payment's client). A dead one stays dead (no second job is written beside it): it runs
/// again when an operator requeues it.
pub async fn schedule_payment(
    conn: &mut Conn,
    client_id: Uuid,
    payment_id: Uuid,
    run_at: i64,
) -> Result<()> {
    let updated = crate::store::sql::query(
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

/// When [`schedule_payments`] makes a job due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// At `run_at`, or earlier where it was due earlier and no dispatcher holds it.
    NoLaterThan(i64),
    /// At `run_at`, even where it was due earlier (the batch path's lines wait for their
    /// upload).
    At(i64),
}

/// [`schedule_payment`] for many payments (client, payment) at once: their jobs moved by one
/// statement (SQLite: per 5,000), the missing ones written by another.
pub async fn schedule_payments(conn: &mut Conn, payments: &[(Uuid, Uuid)], due: Due) -> Result<()> {
    let (run_at, set_run_at) = match due {
        Due::NoLaterThan(at) => (
            at,
            "CASE WHEN run_at < $1 AND lease_until IS NULL THEN run_at ELSE $1 END",
        ),
        Due::At(at) => (at, "$1"),
    };
    use crate::store::sql::{Col, Rows};
    let kind = conn.kind();
    let per_statement = match kind {
        Kind::Postgres => payments.len().max(1),
        Kind::Sqlite => 5_000,
    };
    let mut moved = std::collections::HashSet::with_capacity(payments.len());
    for chunk in payments.chunks(per_statement) {
        let sql = format!(
            "UPDATE jobs SET run_at = {set_run_at}, version = version + 1 \
             WHERE kind = 'payment' AND {} RETURNING payment_id",
            crate::store::sql::in_list(kind, "payment_id", 2, chunk.len())
        );
        let got: Vec<String> = crate::store::sql::query_scalar(&sql)
            .bind(run_at)
            .bind_list(
                kind,
                chunk.iter().map(|(_, p)| p.to_string()).collect::<Vec<_>>(),
            )
            .fetch_all(&mut *conn)
            .await?;
        moved.extend(got);
    }
    let missing: Vec<&(Uuid, Uuid)> = payments
        .iter()
        .filter(|(_, p)| !moved.contains(&p.to_string()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let rows = Rows::new(vec![
        (
            "id",
            Col::Text(
                missing
                    .iter()
                    .map(|_| Some(Uuid::now_v7().to_string()))
                    .collect(),
            ),
        ),
        (
            "payment",
            Col::Text(missing.iter().map(|(_, p)| Some(p.to_string())).collect()),
        ),
        (
            "client",
            Col::Text(missing.iter().map(|(c, _)| Some(c.to_string())).collect()),
        ),
    ]);
    let now = now_micros();
    for part in rows.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} INSERT INTO jobs (id, kind, payment_id, payload, run_at, created_at, \
             client_id) SELECT u.id, 'payment', u.payment, NULL, $1, $2, u.client FROM u \
             WHERE true",
            part.cte(kind, 3)
        ))
        .bind(run_at)
        .bind(now)
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Removes the driving jobs of payments that became final, in their transaction: nothing is
/// left for them to do, and a job left behind would only be claimed to be finished. A job a
/// dispatcher holds (leased) is left to it, and a dead one to the operator's listing.
pub async fn stop_driving(conn: &mut Conn, payments: &[Uuid]) -> Result<()> {
    if payments.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let per_statement = match kind {
        Kind::Postgres => payments.len(),
        Kind::Sqlite => 5_000,
    };
    let now = now_micros();
    for chunk in payments.chunks(per_statement) {
        let sql = format!(
            "DELETE FROM jobs WHERE kind = 'payment' AND {} AND dead_at IS NULL \
             AND (lease_until IS NULL OR lease_until < $1)",
            crate::store::sql::in_list(kind, "payment_id", 2, chunk.len())
        );
        crate::store::sql::query(&sql)
            .bind(now)
            .bind_list(kind, chunk.iter().map(Uuid::to_string).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Writes a job. `client_id` is the client the job works for (the payment's, the webhook
/// endpoint's); `None` only for a rail's own work that no client can be named for (a
/// follow-up a rail asked for after a callback).
pub async fn insert(
    conn: &mut Conn,
    kind: JobKind,
    client_id: Option<Uuid>,
    payment_id: Option<Uuid>,
    payload: Option<&str>,
    run_at: i64,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    crate::store::sql::query(
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

/// Claims up to `limit` due jobs for `worker` until `now + lease`: live ones (not dead) of a
/// kind this build knows. A claimed row this build cannot read (an id or payment id that is
/// not a UUID) is dead-lettered in the same transaction rather than run with a guess.
///
/// PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several instances share the table without
/// waiting on each other. SQLite: one writer, so the immediate transaction is enough.
///
/// A claimed job's `run_at` moves to the end of its lease: when it is due again if its
/// dispatcher dies holding it. The jobs in hand thus leave the range of due jobs this query
/// reads, which otherwise held every one of them (and each claim read past them all).
/// Whoever moves a leased job's `run_at` on purpose (a callback asking for it sooner) also
/// bumps its version, and the run's own conclusion then leaves that time alone.
pub async fn claim(db: &Db, worker: &str, lease_micros: i64, limit: i64) -> Result<Vec<Job>> {
    let now = now_micros();
    let skip_locked = match db.kind() {
        Kind::Postgres => "FOR UPDATE SKIP LOCKED",
        Kind::Sqlite => "",
    };
    // The kinds are this build's own constants, not input: written into the statement, which
    // stays the same for the life of the process.
    let kinds = JobKind::ALL
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE jobs SET lease_until = $1, run_at = $1, leased_by = $2, tries = tries + 1 WHERE id IN \
         (SELECT id FROM jobs WHERE run_at <= $3 AND dead_at IS NULL AND kind IN ({kinds}) \
          AND (lease_until IS NULL OR lease_until < $3) \
          ORDER BY run_at LIMIT $4 {skip_locked}) \
         RETURNING id, kind, payment_id, payload, tries, version"
    );
    let mut tx = db.begin().await?;
    if db.kind() == Kind::Postgres {
        // The claim walks the due index in its order and stops after `limit` rows. The planner
        // would rather read every due job and sort them when its statistics say the table is
        // small, and a queue's statistics are often that stale: a payroll's release adds a
        // million jobs between two ANALYZEs (or with autovacuum off, forever), and each claim
        // then sorted them all (half a second each, spilled to disk, measured). Without sorts
        // the index order is the plan, whatever the statistics say.
        crate::store::sql::query("SET LOCAL enable_sort = off")
            .execute(&mut *tx)
            .await?;
    }
    let rows = crate::store::sql::query(&sql)
        .bind(now.saturating_add(lease_micros))
        .bind(worker)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        match read_claimed(r) {
            Ok(job) => claimed.push(job),
            Err(e) => {
                let id: String = col(r, "id")?;
                tracing::error!(job = %id, error = %e, "Job unreadable; dead-lettered");
                metrics::counter!("railgate_jobs_dead_lettered_total").increment(1);
                crate::store::sql::query(
                    "UPDATE jobs SET dead_at = $1, lease_until = NULL, leased_by = NULL, \
                     last_error = $2 WHERE id = $3",
                )
                .bind(now)
                .bind(format!("unreadable: {e}"))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(claimed)
}

fn read_claimed(r: &Row) -> Result<Job> {
    let kind: String = col(r, "kind")?;
    let pid: Option<String> = col(r, "payment_id")?;
    Ok(Job {
        id: uuid_col(r, "id")?,
        kind: JobKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("job kind '{kind}' is not known")))?,
        payment_id: pid
            .map(|p| Uuid::parse_str(&p))
            .transpose()
            .map_err(|_| StoreError::Corrupt("payment_id is not a UUID".into()))?,
        payload: col(r, "payload")?,
        tries: col(r, "tries")?,
        version: col(r, "version")?,
    })
}

/// Removes a job that is done — unless it was rescheduled meanwhile (its version moved),
/// in which case only the lease is released so the new schedule stands.
pub async fn finish(conn: &mut Conn, job: &Job) -> Result<()> {
    let done = crate::store::sql::query("DELETE FROM jobs WHERE id = $1 AND version = $2")
        .bind(job.id.to_string())
        .bind(job.version)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        release_one(conn, job.id).await?;
    }
    Ok(())
}

/// Sets the job's next run, unless it was rescheduled meanwhile to run sooner. The run that
/// calls it went through, so its failures in a row start again from none.
pub async fn retry_at(conn: &mut Conn, job: &Job, run_at: i64, error: Option<&str>) -> Result<()> {
    crate::store::sql::query(
        "UPDATE jobs SET run_at = CASE WHEN version = $1 THEN $2 ELSE run_at END, \
         lease_until = NULL, leased_by = NULL, last_error = COALESCE($3, last_error), failures = 0 \
         WHERE id = $4",
    )
    .bind(job.version)
    .bind(run_at)
    .bind(error)
    .bind(job.id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// What becomes of a job whose run went through, for [`settle_many`].
#[derive(Debug, Clone)]
pub enum Next {
    /// Done: deleted (let go if it was rescheduled meanwhile).
    Finish,
    /// Run again at this time (unless rescheduled meanwhile), with the error if any.
    RetryAt(i64, Option<String>),
}

/// [`finish`] and [`retry_at`] for many jobs: a statement for those finished, one for those
/// let go of after all, one for those to run again.
pub async fn settle_many(conn: &mut Conn, jobs: &[(&Job, Next)]) -> Result<()> {
    use crate::store::sql::{Col, Rows};
    let kind = conn.kind();
    let finished: Vec<&Job> = jobs
        .iter()
        .filter(|(_, n)| matches!(n, Next::Finish))
        .map(|(j, _)| *j)
        .collect();
    if !finished.is_empty() {
        let rows = Rows::new(vec![
            (
                "id",
                Col::Text(finished.iter().map(|j| Some(j.id.to_string())).collect()),
            ),
            (
                "version",
                Col::Int(finished.iter().map(|j| Some(j.version)).collect()),
            ),
        ]);
        let mut deleted = std::collections::HashSet::with_capacity(finished.len());
        for part in rows.parts(kind) {
            let got: Vec<String> = crate::store::sql::query_scalar(&format!(
                "WITH {} DELETE FROM jobs WHERE (id, version) IN (SELECT u.id, u.version \
                 FROM u){} RETURNING id",
                part.cte(kind, 1),
                crate::store::sql::by_key(kind, "id", 1)
            ))
            .bind_rows(kind, part)
            .fetch_all(&mut *conn)
            .await?;
            deleted.extend(got);
        }
        // Rescheduled meanwhile (a callback asked for it sooner): let go of, to run then.
        let kept: Vec<String> = finished
            .iter()
            .map(|j| j.id.to_string())
            .filter(|id| !deleted.contains(id))
            .collect();
        for chunk in kept.chunks(5_000) {
            let sql = format!(
                "UPDATE jobs SET lease_until = NULL, leased_by = NULL, failures = 0 WHERE {}",
                crate::store::sql::in_list(kind, "id", 1, chunk.len())
            );
            crate::store::sql::query(&sql)
                .bind_list(kind, chunk.to_vec())
                .execute(&mut *conn)
                .await?;
        }
    }
    let again: Vec<(&Job, i64, Option<String>)> = jobs
        .iter()
        .filter_map(|(j, n)| match n {
            Next::RetryAt(at, why) => Some((*j, *at, why.clone())),
            Next::Finish => None,
        })
        .collect();
    if !again.is_empty() {
        let rows = Rows::new(vec![
            (
                "id",
                Col::Text(again.iter().map(|a| Some(a.0.id.to_string())).collect()),
            ),
            (
                "version",
                Col::Int(again.iter().map(|a| Some(a.0.version)).collect()),
            ),
            (
                "run_at",
                Col::Int(again.iter().map(|a| Some(a.1)).collect()),
            ),
            (
                "error",
                Col::Text(again.iter().map(|a| a.2.clone()).collect()),
            ),
        ]);
        for part in rows.parts(kind) {
            crate::store::sql::query(&format!(
                "WITH {} UPDATE jobs SET run_at = CASE WHEN jobs.version = u.version \
                 THEN u.run_at ELSE jobs.run_at END, lease_until = NULL, leased_by = NULL, \
                 last_error = COALESCE(u.error, jobs.last_error), failures = 0 \
                 FROM u WHERE jobs.id = u.id{}",
                part.cte(kind, 1),
                crate::store::sql::by_key(kind, "jobs.id", 1)
            ))
            .bind_rows(kind, part)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn release_one(conn: &mut Conn, id: Uuid) -> Result<()> {
    crate::store::sql::query(
        "UPDATE jobs SET lease_until = NULL, leased_by = NULL, failures = 0 WHERE id = $1",
    )
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
    let kind = db.kind();
    let sql = format!(
        "UPDATE jobs SET run_at = CASE WHEN run_at = lease_until THEN $1 ELSE run_at END, \
         lease_until = $1 WHERE leased_by = $2 AND lease_until IS NOT NULL AND {}",
        crate::store::sql::in_list(kind, "id", 3, ids.len())
    );
    let q = crate::store::sql::query(&sql)
        .bind(now_micros().saturating_add(lease_micros))
        .bind(worker)
        .bind_list(
            kind,
            ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        );
    Ok(q.execute(db.pool()).await?.rows_affected())
}

/// Gives back every job a worker holds (graceful shutdown), or every lease at all (`None`,
/// at the start of a single-instance SQLite gateway, whose previous process is gone). Each is
/// due now at the latest: it was due when it was claimed.
pub async fn release(db: &Db, worker: Option<&str>) -> Result<u64> {
    const RELEASE: &str =
        "UPDATE jobs SET run_at = CASE WHEN run_at > $1 THEN $1 ELSE run_at END, \
         lease_until = NULL, leased_by = NULL WHERE lease_until IS NOT NULL";
    let sql = match worker {
        Some(_) => format!("{RELEASE} AND leased_by = $2"),
        None => RELEASE.to_owned(),
    };
    let mut q = crate::store::sql::query(&sql).bind(now_micros());
    if let Some(w) = worker {
        q = q.bind(w);
    }
    Ok(q.execute(db.pool()).await?.rows_affected())
}

/// The live jobs of one kind, for the gauges operators alert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub kind: String,
    /// Live jobs of the kind (dead ones excepted), due or not.
    pub waiting: i64,
    /// How long the oldest job that is due has been due (0 when none is due).
    pub overdue_micros: i64,
}

/// Live jobs per kind, and how late the oldest due one is, in one pass over the jobs table
/// (which holds only live work: a finished job is deleted).
pub async fn backlog(db: &Db, now: i64) -> Result<Vec<Backlog>> {
    let rows: Vec<(String, i64, i64)> = crate::store::sql::query_as(
        "SELECT kind, COUNT(*), MIN(run_at) FROM jobs WHERE dead_at IS NULL GROUP BY kind",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(kind, waiting, oldest)| Backlog {
            kind,
            waiting,
            overdue_micros: now.saturating_sub(oldest).max(0),
        })
        .collect())
}

/// What became of a job whose run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// It runs again at the time given (or sooner, if it was rescheduled meanwhile).
    Retrying,
    /// That was its `max_failures`-th failure in a row: dead-lettered, never claimed again
    /// until an operator requeues it.
    Dead,
    /// It is gone (finished by the run before it failed).
    Gone,
}

/// Records a failed run (its handler returned an error): one more failure in a row, and the
/// next run at `run_at` — or, at the `max_failures`-th failure in a row, the dead letter.
pub async fn fail(
    conn: &mut Conn,
    job: &Job,
    run_at: i64,
    error: &str,
    max_failures: i64,
) -> Result<Failed> {
    let row = crate::store::sql::query(
        "UPDATE jobs SET failures = failures + 1, last_error = $1, lease_until = NULL, \
         leased_by = NULL, run_at = CASE WHEN version = $2 THEN $3 ELSE run_at END, \
         dead_at = CASE WHEN failures + 1 >= $4 THEN $5 ELSE NULL END \
         WHERE id = $6 RETURNING dead_at",
    )
    .bind(error)
    .bind(job.version)
    .bind(run_at)
    .bind(max_failures.max(1))
    .bind(now_micros())
    .bind(job.id.to_string())
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => Failed::Gone,
        Some(r) => match col::<Option<i64>>(&r, "dead_at")? {
            Some(_) => Failed::Dead,
            None => Failed::Retrying,
        },
    })
}

/// A dead-lettered job, as an operator sees it. Read as stored (text), so that a row this
/// build could not read, or one of a kind only a newer build knows, is listed all the same.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadJob {
    pub id: String,
    pub kind: String,
    pub payment_id: Option<String>,
    /// Times it was claimed.
    pub tries: i64,
    /// Failed runs in a row that put it here.
    pub failures: i64,
    pub last_error: Option<String>,
    pub dead_since: chrono::DateTime<chrono::Utc>,
}

/// Dead jobs in id order (oldest first), after the job `after` when given.
pub async fn dead(db: &Db, after: Option<&str>, limit: i64) -> Result<Vec<DeadJob>> {
    let rows = crate::store::sql::query(
        "SELECT id, kind, payment_id, tries, failures, last_error, dead_at FROM jobs \
         WHERE dead_at IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after.unwrap_or(""))
    .bind(limit.clamp(1, 500))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeadJob {
                id: col(r, "id")?,
                kind: col(r, "kind")?,
                payment_id: col(r, "payment_id")?,
                tries: col(r, "tries")?,
                failures: col(r, "failures")?,
                last_error: col(r, "last_error")?,
                dead_since: from_micros(col(r, "dead_at")?),
            })
        })
        .collect()
}

/// How many jobs are dead, for metrics.
pub async fn dead_count(db: &Db) -> Result<i64> {
    let n: i64 =
        crate::store::sql::query_scalar("SELECT COUNT(*) FROM jobs WHERE dead_at IS NOT NULL")
            .fetch_one(db.pool())
            .await?;
    Ok(n)
}

/// A dead job put back in the queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Requeued {
    pub id: String,
    pub kind: String,
    pub run_at: chrono::DateTime<chrono::Utc>,
}

/// Puts a dead job back in the queue, due now, with a fresh count of tries and failures (an
/// operator fixed what made it fail). `None` when no dead job has this id.
pub async fn requeue(conn: &mut Conn, id: &str) -> Result<Option<Requeued>> {
    let now = now_micros();
    let row = crate::store::sql::query(
        "UPDATE jobs SET dead_at = NULL, failures = 0, tries = 0, run_at = $1, \
         lease_until = NULL, leased_by = NULL, version = version + 1 \
         WHERE id = $2 AND dead_at IS NOT NULL RETURNING id, kind",
    )
    .bind(now)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Requeued {
            id: col(&r, "id")?,
            kind: col(&r, "kind")?,
            run_at: from_micros(now),
        })
    })
    .transpose()
}

/// Gives a claimed job back untouched, to be claimed again at `run_at`: its rail had no
/// slot for it. The claim is not counted as a try (nothing was attempted).
pub async fn defer(conn: &mut Conn, job: &Job, run_at: i64) -> Result<()> {
    crate::store::sql::query(
        "UPDATE jobs SET run_at = CASE WHEN version = $1 THEN $2 ELSE run_at END, \
         lease_until = NULL, leased_by = NULL, tries = tries - 1 WHERE id = $3",
    )
    .bind(job.version)
    .bind(run_at)
    .bind(job.id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}
