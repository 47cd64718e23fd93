//! Payrolls through a rail's batch API, whatever the rail (see `railgate_rail::batch`).
//!
//! `submit` is what the payroll release (`crate::payrolls::release`) calls for the items of
//! a payroll routed to a rail whose batches are on. In chunks of the rail's `batch_chunk`:
//! 1. each queued payment gets its attempt (id chosen and stored before anything is sent, as
//!    for a single payment), and its driving job waits until the upload must have been
//!    answered. A chunk is one client's: a payment of another client than the chunk's first
//!    is left to the dispatcher, one by one (a batch, and each transaction, stays within one
//!    client: docs/scaling.md);
//! 2. the adapter cuts the chunk into uploads (`plan_batches`: a rail with quirks keeps them to
//!    itself); each batch is stored (`rail_batches`, our id) with its lines before sending;
//!    lines the rail cannot take in a batch go one by one;
//! 3. each upload's answer is written before the next is sent: accepted ⇒ every line
//!    `pending` with the batch's reference, its job pushed past the rail's callback grace;
//!    refused, or an error that moved nothing (after a few tries of the same upload, same id)
//!    ⇒ every line goes to the dispatcher one by one under the same attempt id; an answer lost
//!    ⇒ every line `unknown`, asked about one by one, never resent under a new id.
//!
//! `poll_rail` reads every open batch's results page by page and applies each line through
//! the engine, one transaction per page: a completion, a failure, a duplicate (ignored), a
//! contradiction (a conflict recorded), an amount other than ours (a conflict, never taken as
//! paid as instructed). A batch refused as a whole after acceptance sends its lines one by
//! one. A batch is closed once none of its lines waits for it.
//!
//! Timers: `spawn_poller` reads open batches every `batch_poll_ms`; a rail's "batch moved on"
//! callback (`hint`) reads them at once. One read per rail runs at a time (`Rail::batch_reads`):
//! asked for while one runs, it goes round once more rather than reading the same batches
//! beside it, and lines whose payment holds their result already are passed over, so the
//! cost of a read follows what is new, not how many batches are open. Behind both, each line keeps its dispatcher job, which
//! asks the rail about that one line if no batch result settled it by the grace, and raises
//! the operator exception past the attempt's deadline: a lost callback or a stuck poller
//! delays a line, never loses it.

use crate::config::{Config, RailConfig};
use crate::dispatch::rail_attempt;
use crate::domain::State;
use crate::engine::{self, Applied, Change};
use crate::rails::{Rail, Rails};
use crate::store::attempts::{self, Status};
use crate::store::batches::{self as stored, OpenBatch};

use crate::store::{jobs, now_micros, payments, Db, StoreError};
use railgate_rail::{
    Attempt, BatchAck, BatchMembership, BatchState, RailAdapter, RailError, RailStatus, Settled,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Lines per chunk when the rail's settings do not say.
pub const DEFAULT_CHUNK: usize = 1_000;
/// How often open batches are read when the rail's settings do not say.
pub const DEFAULT_POLL_MS: u64 = 1_000;
/// Open batches looked at per rail per poll, at most.
const MAX_BATCHES_PER_POLL: i64 = 1_000;
/// Result pages read per batch per poll, at most.
const MAX_PAGES: usize = 10_000;
/// Tries of one upload (same batch id) while the rail says "nothing moved, try again".
const UPLOAD_TRIES: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("rail '{0}' has no batch API, or its batches are off")]
    NoBatches(String),
}

type Result<T> = std::result::Result<T, BatchError>;

/// A rail's batch settings (`batch`, `batch_chunk`, `batch_poll_ms`; PH-EE's older
/// `bulk_chunk` is read as `batch_chunk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub name: &'static str,
    pub chunk: usize,
    pub poll: Duration,
    /// Until the upload must have been answered: the lines' jobs wait that long.
    pub upload_window: Duration,
    pub grace: Duration,
    pub deadline: Duration,
}

/// The batch settings of `rc`, when its adapter has a batch API and its batches are on:
/// `batch = true|false`, or when unset as the adapter's batch support says (on for PH-EE,
/// whose bulk API was always used for payrolls; off for the rest).
pub fn settings(rc: &RailConfig, adapter: &dyn RailAdapter) -> Option<Settings> {
    let support = adapter.batch_support()?;
    if !rc.batch.unwrap_or(support.on_by_default) {
        return None;
    }
    let chunk = rc
        .batch_chunk
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_CHUNK)
        .min(support.max_lines.max(1));
    let poll = rc
        .batch_poll_ms
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_POLL_MS);
    let timeout = Duration::from_millis(rc.request_timeout_ms);
    Some(Settings {
        name: support.name,
        chunk,
        poll: Duration::from_millis(poll),
        upload_window: timeout
            .saturating_mul(UPLOAD_TRIES.saturating_add(1))
            .saturating_add(Duration::from_secs(5)),
        grace: Duration::from_millis(rc.callback_grace_ms),
        deadline: Duration::from_secs(rc.deadline_secs),
    })
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// One upload (or attempted upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Our id for the batch (sent as the upload's idempotency key).
    pub batch_id: Uuid,
    /// The rail's reference; `None` when the upload failed or its answer was lost.
    pub batch_ref: Option<String>,
    pub lines: usize,
    /// Why the upload failed, when it did.
    pub error: Option<String>,
}

/// What `submit` did with the payments it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submission {
    pub batches: Vec<Uploaded>,
    /// Payments left to the dispatcher one by one (not sendable in a batch, their upload was
    /// refused with nothing moved, or its answer was lost).
    pub single: Vec<Uuid>,
    /// Payments not taken: not queued, or not routed to this rail.
    pub skipped: Vec<Uuid>,
}

/// Sends queued payments routed to `rail_id` through its batch API, in chunks. Payments not
/// queued on that rail are skipped.
pub async fn submit(
    db: &Db,
    rc: &RailConfig,
    adapter: &dyn RailAdapter,
    payment_ids: &[Uuid],
) -> Result<Submission> {
    let set = settings(rc, adapter).ok_or_else(|| BatchError::NoBatches(rc.id.clone()))?;
    let rail_id = rc.id.as_str();
    let cause = format!("payroll: {}", set.name);
    let mut out = Submission::default();
    for ids in payment_ids.chunks(set.chunk) {
        let Some((client, taken)) =
            store_attempts(db, rail_id, &set, &cause, ids, &mut out).await?
        else {
            continue;
        };
        let plan = adapter.plan_batches(&taken, set.chunk);
        let by_attempt: HashMap<Uuid, &Attempt> = taken.iter().map(|a| (a.attempt_id, a)).collect();
        // The batches and their lines, stored before any upload.
        {
            let mut tx = db.begin().await?;
            for (aid, reason) in &plan.refused {
                tracing::info!(rail = %rail_id, attempt = %aid, reason = %reason, "Not sendable in a batch; sent on its own");
                attempts::set_status(&mut tx, *aid, Status::Retry, None, Some(reason)).await?;
                if let Some(a) = by_attempt.get(aid) {
                    jobs::schedule_payment(&mut tx, client, a.payment_id, now_micros()).await?;
                    out.single.push(a.payment_id);
                }
            }
            for b in &plan.batches {
                stored::insert(&mut tx, client, b.batch_id, rail_id, b.lines.len()).await?;
                let state = BatchMembership {
                    batch_id: b.batch_id,
                    batch_ref: None,
                }
                .to_rail_state();
                stored::add_lines(&mut tx, b.batch_id, &b.lines, &state).await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
        }
        for b in &plan.batches {
            let lines: Vec<Attempt> = b
                .lines
                .iter()
                .filter_map(|aid| by_attempt.get(aid).map(|a| (*a).clone()))
                .collect();
            let answer = match upload(adapter, b.batch_id, &lines).await {
                Ok(BatchAck::Accepted { batch_ref }) => Answer::Accepted(batch_ref),
                Ok(BatchAck::Refused(f)) => {
                    Answer::NothingMoved(format!("batch refused: {}", f.reason))
                }
                Err(RailError::Retryable(why) | RailError::Permanent(why)) => {
                    Answer::NothingMoved(why)
                }
                Err(RailError::Unknown(why)) => Answer::Lost {
                    why,
                    // The rail knows the batch by our id: read it as well as ask each line.
                    readable_as: adapter.batch_ref_for(b.batch_id),
                },
            };
            let batch = (client, b.batch_id);
            let up = record_upload(db, rail_id, &set, batch, &lines, answer, &mut out).await?;
            tracing::info!(rail = %rail_id, batch = %b.batch_id, lines = lines.len(), batch_ref = ?up.batch_ref, error = ?up.error, "Batch uploaded");
            out.batches.push(up);
        }
    }
    Ok(out)
}

/// Step 1: the attempts, stored before anything is sent; each line's job waits for the upload.
/// Returns the chunk's client with its attempts (`None` when none was taken). Payments of
/// another client than the first taken keep their job and go one by one.
async fn store_attempts(
    db: &Db,
    rail_id: &str,
    set: &Settings,
    cause: &str,
    ids: &[Uuid],
    out: &mut Submission,
) -> Result<Option<(Uuid, Vec<Attempt>)>> {
    let mut client: Option<Uuid> = None;
    let mut tx = db.begin().await?;
    let after_upload = now_micros().saturating_add(micros(set.upload_window));
    let found = payments::get_many(&mut tx, ids).await?;
    let mut candidates = Vec::with_capacity(ids.len());
    for pid in ids {
        let Some(p) = found.get(pid) else {
            out.skipped.push(*pid);
            continue;
        };
        if p.state != State::Queued || p.rail.as_deref() != Some(rail_id) {
            out.skipped.push(*pid);
            continue;
        }
        if *client.get_or_insert(p.client_id) != p.client_id {
            out.single.push(*pid);
            continue;
        }
        candidates.push(p);
    }
    let Some(client) = client else {
        tx.rollback().await.map_err(StoreError::from)?;
        return Ok(None);
    };
    // Every candidate submitted at once; one moved on since it was read (cancelled) is skipped.
    let items = candidates
        .iter()
        .map(|p| engine::Item {
            payment_id: p.id,
            change: Change::Submit,
            cause: cause.to_owned(),
        })
        .collect();
    let mut later = engine::Deferred::default();
    let moved = engine::apply_many(&mut tx, db.kind(), items, &mut later).await?;
    later.run(&mut tx).await?;
    let mut submitted = Vec::with_capacity(candidates.len());
    for (p, applied) in candidates.into_iter().zip(moved) {
        if applied.changed() {
            submitted.push(p);
        } else {
            out.skipped.push(p.id);
        }
    }
    let pids: Vec<Uuid> = submitted.iter().map(|p| p.id).collect();
    let deadline = now_micros().saturating_add(micros(set.deadline));
    let stored = attempts::insert_many(&mut tx, client, &pids, rail_id, deadline).await?;
    // Every line keeps a driving job: after the upload it asks about the line if no batch
    // result settled it; pushed to after the upload even where it was due earlier.
    let owned: Vec<(Uuid, Uuid)> = pids.iter().map(|p| (client, *p)).collect();
    jobs::schedule_payments(&mut tx, &owned, jobs::Due::At(after_upload)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let taken: Vec<Attempt> = submitted
        .iter()
        .zip(&stored)
        .map(|(p, a)| rail_attempt(p, a))
        .collect();
    Ok((!taken.is_empty()).then_some((client, taken)))
}

/// Uploads one batch, trying the same upload again (same id) while the rail says nothing
/// moved and to try later (a 503), a bounded number of times.
async fn upload(
    adapter: &dyn RailAdapter,
    batch_id: Uuid,
    lines: &[Attempt],
) -> std::result::Result<BatchAck, RailError> {
    let mut wait = Duration::from_millis(200);
    let mut tries: u32 = 1;
    loop {
        match adapter.submit_batch(batch_id, lines).await {
            Err(RailError::Retryable(why)) if tries < UPLOAD_TRIES => {
                tracing::info!(batch = %batch_id, reason = %why, "Batch upload refused for now; same upload again");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
                tries = tries.saturating_add(1);
            }
            other => return other,
        }
    }
}

/// What became of one upload.
enum Answer {
    Accepted(String),
    /// Refused, or failed before anything moved.
    NothingMoved(String),
    /// Anything may have moved; `readable_as` is the batch's reference when the rail can be
    /// asked about it by our id.
    Lost {
        why: String,
        readable_as: Option<String>,
    },
}

/// Step 3: the upload's answer, applied to each line in one transaction. `batch` is the
/// batch's client and id.
async fn record_upload(
    db: &Db,
    rail_id: &str,
    set: &Settings,
    (client, batch_id): (Uuid, Uuid),
    lines: &[Attempt],
    answer: Answer,
    out: &mut Submission,
) -> Result<Uploaded> {
    let cause = format!("rail {rail_id}: {} {batch_id}", set.name);
    let mut tx = db.begin().await?;
    let up = match answer {
        Answer::Accepted(batch_ref) => {
            stored::set_status(&mut tx, batch_id, stored::Status::Open, Some(&batch_ref)).await?;
            let state = BatchMembership {
                batch_id,
                batch_ref: Some(batch_ref.clone()),
            }
            .to_rail_state();
            let after_grace = now_micros().saturating_add(micros(set.grace));
            let items = lines
                .iter()
                .map(|a| engine::Item {
                    payment_id: a.payment_id,
                    change: Change::Accept {
                        attempt: Some(a.attempt_id),
                        rail_reference: None,
                    },
                    cause: cause.clone(),
                })
                .collect();
            let mut later = engine::Deferred::default();
            engine::apply_many(&mut tx, db.kind(), items, &mut later).await?;
            later.run(&mut tx).await?;
            stored::set_lines_state(&mut tx, batch_id, &state).await?;
            let pids: Vec<Uuid> = lines.iter().map(|a| a.payment_id).collect();
            crate::store::payrolls::hold_jobs(&mut tx, &pids, after_grace).await?;
            Uploaded {
                batch_id,
                batch_ref: Some(batch_ref),
                lines: lines.len(),
                error: None,
            }
        }
        Answer::NothingMoved(why) => {
            // Nothing moved: the dispatcher sends each line on its own, same ids.
            one_by_one(&mut tx, (client, batch_id), lines, &why, out).await?;
            failed_upload(batch_id, lines, why)
        }
        Answer::Lost { why, readable_as } => {
            tracing::warn!(rail = %rail_id, batch = %batch_id, reason = %why, "Batch upload answer lost; each line will be asked about");
            stored::set_status(
                &mut tx,
                batch_id,
                stored::Status::Unknown,
                readable_as.as_deref(),
            )
            .await?;
            if let Some(r) = &readable_as {
                let state = BatchMembership {
                    batch_id,
                    batch_ref: Some(r.clone()),
                }
                .to_rail_state();
                stored::set_lines_state(&mut tx, batch_id, &state).await?;
            }
            let items = lines
                .iter()
                .map(|a| engine::Item {
                    payment_id: a.payment_id,
                    change: Change::LoseTrack {
                        attempt: a.attempt_id,
                        why: why.to_string(),
                    },
                    cause: cause.clone(),
                })
                .collect();
            let mut later = engine::Deferred::default();
            engine::apply_many(&mut tx, db.kind(), items, &mut later).await?;
            later.run(&mut tx).await?;
            let owned: Vec<(Uuid, Uuid)> = lines.iter().map(|a| (client, a.payment_id)).collect();
            jobs::schedule_payments(&mut tx, &owned, jobs::Due::NoLaterThan(now_micros())).await?;
            out.single.extend(lines.iter().map(|a| a.payment_id));
            failed_upload(batch_id, lines, why)
        }
    };
    tx.commit().await.map_err(StoreError::from)?;
    Ok(up)
}

fn failed_upload(batch_id: Uuid, lines: &[Attempt], why: String) -> Uploaded {
    Uploaded {
        batch_id,
        batch_ref: None,
        lines: lines.len(),
        error: Some(why),
    }
}

/// Nothing of the batch moved: each line goes to the dispatcher on its own, same attempt id.
async fn one_by_one(
    conn: &mut crate::store::Conn,
    (client, batch_id): (Uuid, Uuid),
    lines: &[Attempt],
    why: &str,
    out: &mut Submission,
) -> Result<()> {
    stored::set_status(conn, batch_id, stored::Status::Refused, None).await?;
    let retry = lines
        .iter()
        .map(|a| attempts::StatusWrite {
            id: a.attempt_id,
            status: Status::Retry,
            rail_reference: None,
            why: Some(why.to_owned()),
        })
        .collect();
    attempts::set_status_many(conn, retry).await?;
    let owned: Vec<(Uuid, Uuid)> = lines.iter().map(|a| (client, a.payment_id)).collect();
    jobs::schedule_payments(conn, &owned, jobs::Due::NoLaterThan(now_micros())).await?;
    out.single.extend(lines.iter().map(|a| a.payment_id));
    Ok(())
}

/// What one poll of a rail applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Poll {
    pub batches: usize,
    pub closed: usize,
    pub completed: usize,
    pub failed: usize,
    pub pending: usize,
    pub conflicts: usize,
    pub duplicates: usize,
}

/// Reads every open batch of `rail_id` and applies each line's outcome, one transaction per
/// page of results.
pub async fn poll_rail(db: &Db, adapter: &dyn RailAdapter, rail_id: &str) -> Result<Poll> {
    let open = {
        let mut conn = db.pool().acquire().await.map_err(StoreError::from)?;
        stored::open(&mut conn, rail_id, MAX_BATCHES_PER_POLL).await?
    };
    let mut out = Poll::default();
    for b in open {
        out.batches = out.batches.saturating_add(1);
        poll_batch(db, adapter, rail_id, &b, &mut out).await?;
    }
    Ok(out)
}

async fn poll_batch(
    db: &Db,
    adapter: &dyn RailAdapter,
    rail_id: &str,
    b: &OpenBatch,
    out: &mut Poll,
) -> Result<()> {
    // Every line, settled or not: a result that contradicts a line its own inquiry settled
    // meanwhile is a conflict to record (once), as a contradicting callback would be.
    let lines: HashMap<Uuid, stored::Line> = {
        let mut conn = db.pool().acquire().await.map_err(StoreError::from)?;
        stored::lines(&mut conn, b.id)
            .await?
            .into_iter()
            .map(|l| (l.attempt_id, l))
            .collect()
    };
    let waiting = lines.values().filter(|l| !l.done).count();
    if waiting == 0 {
        close(db, b.id, out).await?;
        return Ok(());
    }
    let cause = format!("rail {rail_id}: results of batch {}", b.id);
    let mut settled: usize = 0;
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = match adapter.batch_results(&b.batch_ref, cursor.as_deref()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(rail = %rail_id, batch = %b.id, error = %e, "Batch results unavailable; the lines' inquiries go on");
                return Ok(());
            }
        };
        if let BatchState::Refused(f) = &page.state {
            tracing::warn!(rail = %rail_id, batch = %b.id, reason = %f.reason, "Batch refused as a whole; its lines go one by one");
            let mut tx = db.begin().await?;
            for l in lines.values().filter(|l| !l.done) {
                let why = format!("batch refused: {}", f.reason);
                attempts::set_status(&mut tx, l.attempt_id, Status::Retry, None, Some(&why))
                    .await?;
                jobs::schedule_payment(&mut tx, l.client_id, l.payment_id, now_micros()).await?;
            }
            stored::set_status(&mut tx, b.id, stored::Status::Closed, None).await?;
            tx.commit().await.map_err(StoreError::from)?;
            out.closed = out.closed.saturating_add(1);
            return Ok(());
        }
        // The page's outcomes, applied together: what each line's result says, in one
        // transaction.
        let mut items = Vec::with_capacity(page.lines.len());
        let mut completes = Vec::with_capacity(page.lines.len());
        for r in &page.lines {
            let Some(line) = lines.get(&r.attempt_id) else {
                continue;
            };
            if line.conflicted {
                continue;
            }
            let amount_differs = r.amount.is_some_and(|m| m != line.amount);
            if !amount_differs && already(line, &r.status) {
                // What the payment holds already (an earlier page, poll or inquiry settled
                // it): nothing to write, as the engine would find.
                out.duplicates = out.duplicates.saturating_add(1);
                continue;
            }
            let change = if amount_differs {
                // The rail recorded another amount than we sent: never paid as instructed.
                out.conflicts = out.conflicts.saturating_add(1);
                Change::Contradict {
                    claimed: "amount differs",
                    detail: Some("the rail recorded another amount for this line".to_owned()),
                }
            } else {
                match &r.status {
                    RailStatus::Completed(s) => Change::Complete {
                        attempt: Some(line.attempt_id),
                        settled: Settled {
                            rail_reference: s
                                .rail_reference
                                .clone()
                                .or_else(|| Some(b.batch_ref.clone())),
                            // Where the line named its amount it was compared above with
                            // the one read with the batch: spare every line of a payroll a
                            // second read.
                            amount: if r.amount.is_some() { None } else { s.amount },
                            ..s.clone()
                        },
                    },
                    RailStatus::Failed(f) => Change::Fail {
                        attempt: Some(line.attempt_id),
                        failure: f.clone(),
                    },
                    RailStatus::Pending | RailStatus::NotFound => {
                        out.pending = out.pending.saturating_add(1);
                        continue;
                    }
                }
            };
            completes.push(match &change {
                Change::Complete { .. } => Some(true),
                Change::Fail { .. } => Some(false),
                _ => None,
            });
            items.push(engine::Item {
                payment_id: line.payment_id,
                change,
                cause: cause.clone(),
            });
        }
        let mut tx = db.begin().await?;
        let mut later = engine::Deferred::default();
        let applied = engine::apply_many(&mut tx, db.kind(), items, &mut later).await?;
        later.run(&mut tx).await?;
        for (applied, completes) in applied.into_iter().zip(completes) {
            // A contradiction of the amount was counted above.
            let Some(completes) = completes else { continue };
            match applied {
                Applied::Changed { .. } if completes => {
                    out.completed = out.completed.saturating_add(1);
                    settled = settled.saturating_add(1);
                }
                Applied::Changed { .. } => {
                    out.failed = out.failed.saturating_add(1);
                    settled = settled.saturating_add(1);
                }
                Applied::Conflict => out.conflicts = out.conflicts.saturating_add(1),
                Applied::Duplicate => {
                    // Settled meanwhile by another path: the batch need not wait for it.
                    out.duplicates = out.duplicates.saturating_add(1);
                    settled = settled.saturating_add(1);
                }
                Applied::Ignored | Applied::Noted => {}
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if settled >= waiting {
        close(db, b.id, out).await?;
    }
    Ok(())
}

/// The line's payment holds this result already: a completion of a completed (or reversed)
/// payment, a failure of a failed (or cancelled) one. The engine calls these duplicates and
/// writes nothing; leaving them out spares every poll of a large batch the lines it settled.
fn already(line: &stored::Line, status: &RailStatus) -> bool {
    matches!(
        (status, line.state),
        (
            RailStatus::Completed(_),
            Some(State::Completed | State::Reversed)
        ) | (
            RailStatus::Failed(_),
            Some(State::Failed | State::Cancelled)
        )
    )
}

async fn close(db: &Db, batch_id: Uuid, out: &mut Poll) -> Result<()> {
    // Through the store's writer turn, as every write: on SQLite it queues, never sleeps.
    let mut tx = db.begin().await?;
    stored::set_status(&mut tx, batch_id, stored::Status::Closed, None).await?;
    tx.commit().await.map_err(StoreError::from)?;
    out.closed = out.closed.saturating_add(1);
    Ok(())
}

/// Reads `rail`'s open batches and applies their results, at most one read per rail at a
/// time: asked for while one runs, the running read goes round once more. Errors are logged;
/// the lines' own jobs cover anything a read misses.
async fn read_open_batches(db: &Db, rail: &Rail, why: &'static str) {
    rail.batch_reads
        .run(|| async {
            let read = poll_rail(db, rail.adapter.as_ref(), &rail.id).await;
            if read.is_ok() {
                rail.batch_read_at
                    .store(now_micros(), std::sync::atomic::Ordering::Relaxed);
            }
            match read {
                Ok(p) if p.completed > 0 || p.failed > 0 || p.conflicts > 0 => {
                    tracing::info!(rail = %rail.id, why, batches = p.batches, closed = p.closed, completed = p.completed, failed = p.failed, pending = p.pending, conflicts = p.conflicts, "Batch results applied")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(rail = %rail.id, why, error = %e, "Batch poll failed"),
            }
        })
        .await;
}

/// Reads `rail_id`'s open batches now, in the background (a batch callback is answered at
/// once).
pub fn hint(db: Db, rails: Arc<Rails>, rail_id: String) {
    tokio::spawn(async move {
        let Some(rail) = rails.get(&rail_id).cloned() else {
            return;
        };
        read_open_batches(&db, &rail, "batch callback").await;
    });
}

/// Reads the open batches of every rail whose batches are on, each at its `batch_poll_ms`,
/// until `stop`.
pub fn spawn_poller(
    db: &Db,
    cfg: &Config,
    rails: &Arc<Rails>,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    for rc in &cfg.rails {
        let Some(rail) = rails.get(&rc.id).cloned() else {
            continue;
        };
        let Some(set) = settings(rc, rail.adapter.as_ref()) else {
            continue;
        };
        let db = db.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(set.poll) => {}
                }
                read_open_batches(&db, &rail, "timer").await;
            }
        });
    }
}
