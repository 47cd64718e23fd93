//! What running a job does.

use super::{backoff, Dispatcher};
use crate::domain::{Failure, FailureCode, Payment, State};
use crate::engine::{self, Change};
use crate::rails::Rail;
use crate::store::attempts::{self, AttemptRow, Status};
use crate::store::jobs::{self, Job};
use crate::store::Conn;
use crate::store::{now_micros, payments, Kind, StoreError};
use railgate_rail::{Attempt, Outbound, RailError, RailStatus, Submitted};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Setup(String),
}

type Result<T> = std::result::Result<T, DriveError>;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

pub async fn payment(d: &Dispatcher, job: &Job) -> Result<()> {
    let pid = job
        .payment_id
        .ok_or_else(|| DriveError::Setup("payment job without a payment".into()))?;
    let Some(p) = payments::row(&d.db, pid).await? else {
        return finish(d, job).await;
    };
    if p.state.is_final() {
        return finish(d, job).await;
    }
    let rail_id = p.rail.clone().unwrap_or_default();
    let Some(rail) = d.rails.get(&rail_id).cloned() else {
        return Err(DriveError::Setup(format!(
            "rail '{rail_id}' is not configured"
        )));
    };
    let latest = {
        let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
        attempts::latest(&mut conn, pid).await?
    };
    if p.exception.is_some() {
        // Driven again only because an operator asked the rail again: ask, never send.
        return match latest {
            Some(a) if !matches!(a.status, Status::Completed | Status::Failed) => {
                inquire(d, job, &rail, &p, a).await
            }
            _ => finish(d, job).await,
        };
    }
    match (p.state, latest) {
        (State::Queued, _) => {
            let mut tx = d.db.begin().await?;
            let moved = engine::apply(
                &mut tx,
                d.db.kind(),
                pid,
                Change::Submit,
                // Names the process that stored and sent it (several may share the store).
                &format!("dispatcher {}: first attempt", d.worker_id),
            )
            .await?;
            if !moved.changed() {
                tx.rollback().await.map_err(StoreError::from)?;
                return Ok(());
            }
            let deadline = now_micros().saturating_add(micros(rail.deadline));
            let attempt = attempts::insert(&mut tx, p.client_id, pid, &rail.id, deadline).await?;
            tx.commit().await.map_err(StoreError::from)?;
            send(d, job, &rail, &p, attempt).await
        }
        (State::Received | State::Submitted | State::Pending | State::Unknown, Some(a)) => {
            match a.status {
                Status::Retry | Status::Step => send(d, job, &rail, &p, a).await,
                Status::Sending | Status::Accepted | Status::Unknown => {
                    inquire(d, job, &rail, &p, a).await
                }
                Status::Completed | Status::Failed => finish(d, job).await,
            }
        }
        // An expected collection waits for the payer with no attempt of ours.
        (_, None) => finish(d, job).await,
        (State::Completed | State::Failed | State::Cancelled | State::Reversed, Some(_)) => {
            finish(d, job).await
        }
    }
}

/// A first attempt stored with others in one commit, ready to be sent.
pub(super) struct Ready {
    pub job: Job,
    rail: Arc<Rail>,
    payment: Payment,
    stored: AttemptRow,
    attempt: Attempt,
    /// The rail's slot, taken when the attempt was stored.
    permit: tokio::sync::OwnedSemaphorePermit,
}

/// How long a job whose rail is busy (all its slots taken, or at its rate) waits to be
/// claimed again.
const RAIL_BUSY_MICROS: i64 = 50_000;

/// Takes the claimed jobs that need no rail to be asked first, and does their writes in one
/// transaction: payments still `queued` get their first attempt stored (and its request's
/// exact bytes) before any of them is sent; jobs whose payment is already final are done.
/// Returns the attempts ready to send and the jobs left to run one by one.
pub(super) async fn first_sends(
    d: &Dispatcher,
    claimed: Vec<Job>,
) -> Result<(Vec<Ready>, Vec<Job>)> {
    let ids: Vec<Uuid> = claimed
        .iter()
        .filter(|j| j.kind == jobs::JobKind::Payment)
        .filter_map(|j| j.payment_id)
        .collect();
    if ids.is_empty() {
        return Ok((Vec::new(), claimed));
    }
    let found = {
        let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
        payments::get_many(&mut conn, &ids).await?
    };
    let waiting = lines_awaiting_batch_reads(d, &claimed, &found).await?;
    let kind = d.db.kind();
    let cause = format!("dispatcher {}: first attempt", d.worker_id);
    let mut ready = Vec::new();
    let mut rest = Vec::new();
    let mut wrote = false;
    let mut tx = d.db.begin().await?;
    let mut later = engine::Deferred::default();
    let mut candidates = Vec::new();
    for job in claimed {
        let p = match job.payment_id.and_then(|id| found.get(&id)) {
            Some(p) if job.kind == jobs::JobKind::Payment => p,
            _ => {
                rest.push(job);
                continue;
            }
        };
        if p.state.is_final() {
            jobs::finish(&mut tx, &job).await?;
            wrote = true;
            continue;
        }
        if let Some(at) = waiting.get(&p.id) {
            // Its batch's results are being read: it waits for them, not asked on its own.
            metrics::counter!("railgate_dispatch_batch_waits_total").increment(1);
            jobs::defer(&mut tx, &job, *at).await?;
            wrote = true;
            continue;
        }
        let rail = p.rail.as_deref().and_then(|r| d.rails.get(r)).cloned();
        let (State::Queued, Some(rail)) = (p.state, rail) else {
            rest.push(job);
            continue;
        };
        // The rail's slot is taken now, without waiting: a rail that is busy or at its rate
        // gets its job back a moment later, and the dispatcher's slots stay with the rails
        // that can use them.
        let Some(permit) = rail.try_permit() else {
            metrics::counter!("railgate_dispatch_deferred_total", "rail" => rail.id.clone())
                .increment(1);
            jobs::defer(&mut tx, &job, now_micros().saturating_add(RAIL_BUSY_MICROS)).await?;
            wrote = true;
            continue;
        };
        candidates.push((job, p, rail, permit));
    }
    // Every candidate submitted at once; one moved on since it was read (cancelled) is left
    // to its job, which finds out on its own.
    let items = candidates
        .iter()
        .map(|(_, p, _, _)| engine::Item {
            payment_id: p.id,
            change: Change::Submit,
            cause: cause.clone(),
        })
        .collect();
    let moved = engine::apply_many(&mut tx, kind, items, &mut later).await?;
    let mut submitted = Vec::with_capacity(candidates.len());
    for (c, applied) in candidates.into_iter().zip(moved) {
        if applied.changed() {
            submitted.push(c);
        } else {
            rest.push(c.0);
        }
    }
    wrote = wrote || !submitted.is_empty();
    // Their attempts, a statement per client and rail.
    let mut groups: std::collections::BTreeMap<(Uuid, String), Vec<usize>> =
        std::collections::BTreeMap::new();
    for (i, (_, p, rail, _)) in submitted.iter().enumerate() {
        groups
            .entry((p.client_id, rail.id.clone()))
            .or_default()
            .push(i);
    }
    let mut stored: Vec<Option<AttemptRow>> = submitted.iter().map(|_| None).collect();
    for ((client, rail_id), members) in groups {
        let pids: Vec<Uuid> = members
            .iter()
            .filter_map(|i| submitted.get(*i).map(|c| c.1.id))
            .collect();
        let deadline = members
            .first()
            .and_then(|i| submitted.get(*i))
            .map_or(0, |c| now_micros().saturating_add(micros(c.2.deadline)));
        let rows = attempts::insert_many(&mut tx, client, &pids, &rail_id, deadline).await?;
        for (i, row) in members.into_iter().zip(rows) {
            if let Some(slot) = stored.get_mut(i) {
                *slot = Some(row);
            }
        }
    }
    for ((job, p, rail, permit), stored) in submitted.into_iter().zip(stored) {
        let stored = stored.ok_or_else(|| DriveError::Setup("an attempt was not stored".into()))?;
        let mut payment = p.clone();
        payment.state = State::Submitted;
        match store_for_send(&mut tx, kind, &rail, &payment, &stored).await? {
            Ok(attempt) => ready.push(Ready {
                job,
                rail,
                payment,
                stored,
                attempt,
                permit,
            }),
            Err(e) => {
                // The adapter cannot build the request: the refusal is its answer.
                apply_answer(
                    &mut tx,
                    kind,
                    d.cfg.max_submit_tries,
                    &job,
                    &rail,
                    &payment,
                    &stored,
                    Err(e),
                    &mut later,
                )
                .await?;
            }
        }
    }
    if wrote {
        later.run(&mut tx).await?;
        tx.commit().await.map_err(StoreError::from)?;
    } else {
        tx.rollback().await.map_err(StoreError::from)?;
    }
    Ok((ready, rest))
}

/// How many graces a line of an open batch waits for the batch's reads before it is asked
/// about on its own (never past its rail's deadline).
const BATCH_WAIT_GRACES: u32 = 10;

/// Of the claimed payment jobs, those of batch lines that should wait for their batch's
/// reads rather than ask the rail about the line, with when to look again: the payment is
/// pending on an accepted line of an open batch, this process read that rail's open batches
/// within the grace (the reads go on, however far behind), and the batch was opened less
/// than `BATCH_WAIT_GRACES` graces ago. A stuck or failing read, or a batch that stays open
/// too long, leaves the line to its inquiry: a read that falls behind delays a line, it never
/// keeps it from being asked about.
async fn lines_awaiting_batch_reads(
    d: &Dispatcher,
    claimed: &[Job],
    found: &std::collections::HashMap<Uuid, Payment>,
) -> Result<std::collections::HashMap<Uuid, i64>> {
    let now = now_micros();
    let mut rails_of = std::collections::HashMap::new();
    for job in claimed.iter().filter(|j| j.kind == jobs::JobKind::Payment) {
        let Some(p) = job.payment_id.and_then(|id| found.get(&id)) else {
            continue;
        };
        if p.state != State::Pending || p.exception.is_some() {
            continue;
        }
        let Some(rail) = p.rail.as_deref().and_then(|r| d.rails.get(r)) else {
            continue;
        };
        if rail.batches_read_lately(now) {
            rails_of.insert(p.id, rail.clone());
        }
    }
    if rails_of.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let pids: Vec<Uuid> = rails_of.keys().copied().collect();
    let opened = {
        let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
        crate::store::batches::awaiting_open_batch(&mut conn, &pids).await?
    };
    Ok(opened
        .into_iter()
        .filter_map(|(pid, opened_at)| {
            let rail = rails_of.get(&pid)?;
            let grace = micros(rail.callback_grace);
            let bound = micros(rail.callback_grace.saturating_mul(BATCH_WAIT_GRACES))
                .min(micros(rail.deadline));
            let until = opened_at.saturating_add(bound);
            (now < until).then(|| (pid, now.saturating_add(grace).min(until)))
        })
        .collect())
}

/// Sends an attempt `first_sends` stored.
pub(super) async fn send_ready(d: &Dispatcher, r: Ready) -> Result<()> {
    transmit(
        d,
        &r.job,
        &r.rail,
        &r.payment,
        &r.stored,
        r.attempt,
        Some(r.permit),
    )
    .await
}

pub fn rail_attempt(p: &Payment, a: &AttemptRow) -> Attempt {
    Attempt {
        attempt_id: a.id,
        payment_id: p.id,
        direction: p.direction,
        amount: p.amount,
        party: p.party.clone(),
        reference: p
            .payment_reference
            .clone()
            .unwrap_or_else(|| p.reference.clone()),
        narrative: p.narrative.clone(),
        rail_reference: a.rail_reference.clone(),
        rail_state: a.rail_state.clone(),
        request: a.request.clone(),
        created_at: a.created_at,
    }
}

/// Sends a stored attempt (or its next step). The exact bytes are stored before sending.
async fn send(
    d: &Dispatcher,
    job: &Job,
    rail: &Arc<Rail>,
    p: &Payment,
    a: AttemptRow,
) -> Result<()> {
    let mut tx = d.db.begin().await?;
    let stored = store_for_send(&mut tx, d.db.kind(), rail, p, &a).await?;
    match stored {
        Ok(attempt) => {
            tx.commit().await.map_err(StoreError::from)?;
            transmit(d, job, rail, p, &a, attempt, None).await
        }
        Err(e) => {
            tx.rollback().await.map_err(StoreError::from)?;
            apply_submit(d, job, rail, p, &a, Err(e)).await
        }
    }
}

/// Inside the caller's transaction: stores what is about to be sent (the request's exact
/// bytes, the reference the rail will key its answer by, the attempt back to `sending`).
/// Returns the attempt to send, or the adapter's refusal to prepare it (nothing is written
/// then: the caller rolls back or applies the refusal).
pub(super) async fn store_for_send(
    tx: &mut Conn,
    kind: Kind,
    rail: &Rail,
    p: &Payment,
    a: &AttemptRow,
) -> Result<std::result::Result<Attempt, RailError>> {
    let mut attempt = rail_attempt(p, a);
    match rail.adapter.prepare(&attempt) {
        Ok(Some(req)) => {
            let reuse = a
                .request
                .as_ref()
                .is_some_and(|stored| stored.step == req.step);
            if !reuse {
                attempts::store_request(tx, a.id, &req).await?;
                attempt.request = Some(req);
            }
        }
        Ok(None) => {}
        Err(e) => return Ok(Err(e)),
    }
    if let Some(r) = rail.adapter.reference_before_send(&attempt) {
        // The rail's answer may be keyed by it and arrive before `submit` returns.
        if attempt.rail_reference.as_deref() != Some(r.as_str()) {
            attempts::set_rail_reference(tx, a.id, &r).await?;
            attempt.rail_reference = Some(r);
        }
    }
    if a.status != Status::Sending {
        attempts::set_status(tx, a.id, Status::Sending, None, None).await?;
        if p.state == State::Unknown {
            engine::apply(
                tx,
                kind,
                p.id,
                Change::Submit,
                "dispatcher: resend of the same attempt",
            )
            .await?;
        }
    }
    Ok(Ok(attempt))
}

/// Sends a stored attempt and has its answer applied. The rail's slot is held for the
/// request only, not while the answer waits for its commit.
pub(super) async fn transmit(
    d: &Dispatcher,
    job: &Job,
    rail: &Arc<Rail>,
    p: &Payment,
    a: &AttemptRow,
    attempt: Attempt,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<()> {
    let outcome = {
        let _permit = match permit {
            Some(p) => Some(p),
            None => rail.permit().await,
        };
        tracing::info!(payment = %p.id, attempt = %a.id, rail = %rail.id, party = %p.party.masked(), "Submitting");
        match tokio::time::timeout(
            rail.request_timeout.saturating_add(Duration::from_secs(1)),
            rail.adapter.submit(&attempt),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(RailError::Unknown(
                "no answer within the request timeout".into(),
            )),
        }
    };
    apply_submit(d, job, rail, p, a, outcome).await
}

/// Has a rail's answer applied by the group committer (`answers`), and waits for its commit.
async fn apply_submit(
    d: &Dispatcher,
    job: &Job,
    rail: &Arc<Rail>,
    p: &Payment,
    a: &AttemptRow,
    outcome: std::result::Result<Submitted, RailError>,
) -> Result<()> {
    d.answers
        .apply(super::answers::Answer {
            job: job.clone(),
            rail: rail.clone(),
            payment: p.clone(),
            attempt: a.clone(),
            outcome,
        })
        .await
}

/// Applies a rail's answer to a submission inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub(super) async fn apply_answer(
    tx: &mut Conn,
    kind: Kind,
    max_submit_tries: i64,
    job: &Job,
    rail: &Rail,
    p: &Payment,
    a: &AttemptRow,
    outcome: std::result::Result<Submitted, RailError>,
    later: &mut engine::Deferred,
) -> Result<()> {
    let (item, next) = plan_answer(tx, max_submit_tries, job, rail, p, a, outcome).await?;
    if let Some(item) = item {
        engine::apply_many(&mut *tx, kind, vec![item], later).await?;
    }
    jobs::settle_many(tx, &[(job, next)]).await?;
    Ok(())
}

/// What a rail's answer to a submission does: the change for the engine (if any) and what
/// becomes of the send's job. The writes an answer needs before its change (a step's state,
/// a refusal counted) are done here, in the caller's transaction; the change and the job are
/// the caller's to apply, with other answers' (`answers`).
pub(super) async fn plan_answer(
    tx: &mut Conn,
    max_submit_tries: i64,
    job: &Job,
    rail: &Rail,
    p: &Payment,
    a: &AttemptRow,
    outcome: std::result::Result<Submitted, RailError>,
) -> Result<(Option<engine::Item>, jobs::Next)> {
    let cause = format!("rail {}: answer to attempt {}", rail.id, a.id);
    let item = |change: Change| {
        Some(engine::Item {
            payment_id: p.id,
            change,
            cause: cause.clone(),
        })
    };
    let after_grace = || {
        now_micros()
            .saturating_add(micros(rail.callback_grace))
            .min(a.deadline_at.saturating_add(1_000))
    };
    Ok(match outcome {
        Ok(Submitted::Accepted { rail_reference }) => (
            item(Change::Accept {
                attempt: Some(a.id),
                rail_reference,
            }),
            jobs::Next::RetryAt(after_grace(), None),
        ),
        Ok(Submitted::Step {
            rail_state,
            rail_reference,
        }) => {
            if attempts::step_sent(&mut *tx, a.id, &rail_state).await? {
                (
                    item(Change::Accept {
                        attempt: Some(a.id),
                        rail_reference,
                    }),
                    jobs::Next::RetryAt(after_grace(), None),
                )
            } else {
                // The step's callback beat this answer and already stored the next state.
                tracing::debug!(payment = %p.id, attempt = %a.id, "Step answered before its acceptance; keeping the callback's state");
                (None, jobs::Next::RetryAt(now_micros(), None))
            }
        }
        Ok(Submitted::Completed(settled)) => (
            item(Change::Complete {
                attempt: Some(a.id),
                settled,
            }),
            jobs::Next::Finish,
        ),
        Ok(Submitted::Rejected(failure)) => (
            item(Change::Fail {
                attempt: Some(a.id),
                failure,
            }),
            jobs::Next::Finish,
        ),
        Err(RailError::Retryable(why)) => {
            let refusals = attempts::record_refusal(&mut *tx, a.id, &why).await?;
            if refusals >= max_submit_tries {
                let f = Failure::new(
                    FailureCode::RailUnavailable,
                    format!("the rail refused {refusals} times with nothing moved: {why}"),
                    None,
                );
                (
                    item(Change::Fail {
                        attempt: Some(a.id),
                        failure: f,
                    }),
                    jobs::Next::Finish,
                )
            } else {
                let at = now_micros().saturating_add(backoff::micros(
                    refusals,
                    Duration::from_millis(200),
                    Duration::from_secs(300),
                ));
                (None, jobs::Next::RetryAt(at, Some(why)))
            }
        }
        Err(RailError::Permanent(why)) => (
            item(Change::Fail {
                attempt: Some(a.id),
                failure: Failure::new(FailureCode::InvalidRequest, why, None),
            }),
            jobs::Next::Finish,
        ),
        Err(RailError::Unknown(why)) => {
            tracing::warn!(payment = %p.id, attempt = %a.id, rail = %rail.id, reason = %why, "Outcome unknown; will ask the rail");
            (
                item(Change::LoseTrack {
                    attempt: a.id,
                    why: why.to_string(),
                }),
                jobs::Next::RetryAt(next_inquiry(job, a), Some(why)),
            )
        }
    })
}

/// When to ask the rail again about an attempt: on the backoff schedule, but never later
/// than just past the attempt's deadline, so the exception is raised when it falls due rather
/// than up to a whole backoff step (minutes) after it.
fn next_inquiry(job: &Job, a: &AttemptRow) -> i64 {
    now_micros()
        .saturating_add(backoff::micros(
            job.tries,
            Duration::from_millis(500),
            Duration::from_secs(300),
        ))
        .min(a.deadline_at.saturating_add(1_000))
}

/// Asks the rail about an attempt whose outcome we do not have.
///
/// The rail is asked even past the attempt's deadline: a final answer settles the payment
/// (an outage of the gateway longer than the deadline must not turn payments the rail can
/// account for into exceptions). Only when it still gives none is the operator called in.
async fn inquire(
    d: &Dispatcher,
    job: &Job,
    rail: &Arc<Rail>,
    p: &Payment,
    a: AttemptRow,
) -> Result<()> {
    let kind = d.db.kind();
    let past_deadline = now_micros() > a.deadline_at;
    let attempt = rail_attempt(p, &a);
    let answer = {
        // Held for the inquiry only. A resend below takes a permit of its own; holding this
        // one across it deadlocks the rail as soon as `concurrency` resends wait at once
        // (after a crash, every attempt stored but never sent comes back this way).
        let _permit = rail.permit().await;
        match tokio::time::timeout(
            rail.request_timeout.saturating_add(Duration::from_secs(1)),
            rail.adapter.inquire(&attempt),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(RailError::Unknown("no answer to the inquiry".into())),
        }
    };
    let cause = format!("rail {}: inquiry about attempt {}", rail.id, a.id);
    let tx = match answer {
        // Never with an exception raised: its deadline is past, and an operator's inquiry
        // only asks.
        Ok(RailStatus::NotFound) if !past_deadline && p.exception.is_none() => {
            // Nothing moved under this id: send the same attempt again (same id, same bytes).
            tracing::info!(payment = %p.id, attempt = %a.id, "Rail has no record of the attempt; resending it");
            return send(d, job, rail, p, a).await;
        }
        Ok(RailStatus::Completed(s)) => {
            let mut tx = d.db.begin().await?;
            engine::apply(
                &mut tx,
                kind,
                p.id,
                Change::Complete {
                    attempt: Some(a.id),
                    settled: s.clone(),
                },
                &cause,
            )
            .await?;
            jobs::finish(&mut tx, job).await?;
            tx
        }
        Ok(RailStatus::Failed(f)) => {
            let mut tx = d.db.begin().await?;
            engine::apply(
                &mut tx,
                kind,
                p.id,
                Change::Fail {
                    attempt: Some(a.id),
                    failure: f.clone(),
                },
                &cause,
            )
            .await?;
            jobs::finish(&mut tx, job).await?;
            tx
        }
        _ if past_deadline => {
            let why = format!(
                "no final answer from rail {} by the attempt's deadline: an operator must settle it",
                rail.id
            );
            tracing::error!(payment = %p.id, attempt = %a.id, rail = %rail.id, "Unknown outcome past its deadline");
            let mut tx = d.db.begin().await?;
            // Unless the payment was settled meanwhile (a callback): no exception on it then.
            let change = Change::RaiseException { attempt: a.id, why };
            engine::apply(&mut tx, kind, p.id, change, "dispatcher: deadline passed").await?;
            jobs::finish(&mut tx, job).await?;
            tx
        }
        Ok(RailStatus::Pending) | Ok(RailStatus::NotFound) => {
            let mut tx = d.db.begin().await?;
            jobs::retry_at(&mut tx, job, next_inquiry(job, &a), None).await?;
            tx
        }
        Err(e) => {
            // No answer: whatever we thought, we now do not know.
            let mut tx = d.db.begin().await?;
            engine::apply(
                &mut tx,
                kind,
                p.id,
                Change::LoseTrack {
                    attempt: a.id,
                    why: e.to_string().to_string(),
                },
                &cause,
            )
            .await?;
            jobs::retry_at(&mut tx, job, next_inquiry(job, &a), Some(&e.to_string())).await?;
            tx
        }
    };
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

async fn finish(d: &Dispatcher, job: &Job) -> Result<()> {
    crate::store::count_write();
    let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
    jobs::finish(&mut conn, job).await?;
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FollowUp {
    rail: String,
    outbound: Outbound,
}

pub fn follow_up_payload(rail: &str, outbound: &Outbound) -> String {
    serde_json::to_string(&FollowUp {
        rail: rail.to_owned(),
        outbound: outbound.clone(),
    })
    .unwrap_or_default()
}

const MAX_FOLLOW_UP_TRIES: i64 = 12;

pub async fn follow_up(d: &Dispatcher, job: &Job) -> Result<()> {
    let f: FollowUp = serde_json::from_str(job.payload.as_deref().unwrap_or(""))
        .map_err(|e| DriveError::Setup(format!("bad follow-up payload: {e}")))?;
    let rail = d
        .rails
        .get(&f.rail)
        .ok_or_else(|| DriveError::Setup(format!("rail '{}' is not configured", f.rail)))?;
    let _permit = rail.permit().await;
    match rail.adapter.send_follow_up(&f.outbound).await {
        Ok(()) => finish(d, job).await,
        Err(RailError::Permanent(why)) => {
            tracing::error!(rail = %f.rail, reason = %why, "Follow-up refused; dropped");
            finish(d, job).await
        }
        Err(e) if job.tries >= MAX_FOLLOW_UP_TRIES => {
            tracing::error!(rail = %f.rail, error = %e, "Follow-up gave up after its last try");
            finish(d, job).await
        }
        Err(e) => {
            let at = now_micros().saturating_add(backoff::micros(
                job.tries,
                Duration::from_millis(200),
                Duration::from_secs(60),
            ));
            let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
            jobs::retry_at(&mut conn, job, at, Some(&e.to_string())).await?;
            Ok(())
        }
    }
}
