//! Payrolls through Payment Hub EE's bulk API.
//!
//! `submit_phee_bulk` is the entry point the payroll path calls for the released items of a
//! payroll routed to a `phee` rail: in rail-sized chunks (`bulk_chunk`), each queued payment
//! gets its attempt (id chosen and stored before anything is sent, as for a single
//! transfer), the chunk is planned into PH-EE CSV files (`railgate_mifos::bulk::plan`, which
//! keeps PH-EE's quirks from losing or merging lines), and each file is uploaded with the
//! batch callback URL. Each line's `request_id` is its attempt id, so PH-EE's own idempotency
//! and the dispatcher's single-line inquiry work for bulk lines exactly as for single ones.
//!
//! `poll_phee_batches` reads every open batch's per-line results (`bulk_results`) and applies
//! them item by item through `outcomes`. PH-EE's batch callback (a percentage, unsigned,
//! repeated) is only a hint to run it now; the dispatcher's per-payment inquiries are the
//! timer behind it, so a lost callback delays nothing past the rail's callback grace.
//!
//! What cannot go in a file (a non-MSISDN payee in `mojaloop` mode, an identifier PH-EE's CSV
//! reader would split) and what an upload refused with nothing moved are left to the
//! dispatcher, which sends them one by one under the same attempt ids. An upload whose answer
//! was lost is `unknown`: the dispatcher asks about each line, and resends only what PH-EE has
//! no record of — under the same id, which PH-EE refuses as `TransactionExists` if the file
//! did reach it.

use crate::config::{Config, RailConfig};
use crate::dispatch::rail_attempt;
use crate::domain::{Event, State};
use crate::outcomes::{self, Applied};
use crate::store::attempts::{self, Status};
use crate::store::{jobs, now_micros, payments, Db, StoreError};
use railgate_mifos::bulk::{self, BulkBatch, BulkLine, BulkOptions};
use railgate_mifos::PhEeAdapter;
use railgate_rail::{RailError, RailStatus, Settled};
use std::time::Duration;
use uuid::Uuid;

/// The marker stored in a bulk line's `rail_state` (with its batch's correlation id).
pub const BULK_MARKER: &str = "phee_bulk";

/// Lines per chunk when the rail does not say (`bulk_chunk`).
pub const DEFAULT_CHUNK: usize = 1_000;

/// Open batches looked at per poll, at most.
const MAX_BATCHES_PER_POLL: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("rail '{0}' is not a configured Payment Hub rail")]
    NotPhEe(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("rail {rail}: {why}")]
    Rail { rail: String, why: String },
}

type Result<T> = std::result::Result<T, BulkError>;

/// One uploaded (or attempted) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedBatch {
    pub correlation_id: Uuid,
    /// PH-EE's batch id; `None` when the upload failed.
    pub batch_id: Option<String>,
    pub lines: usize,
    /// Why the upload failed, when it did (its lines went to the dispatcher).
    pub error: Option<String>,
}

/// What `submit_phee_bulk` did with the payments it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkSubmission {
    pub batches: Vec<UploadedBatch>,
    /// Payments left to the dispatcher, one by one (refused by the planner, or their file
    /// was refused with nothing moved, or its answer was lost).
    pub single: Vec<Uuid>,
    /// Payments not taken: not queued, or not routed to this rail.
    pub skipped: Vec<Uuid>,
}

fn phee(cfg: &Config, rail_id: &str) -> Result<(RailConfig, PhEeAdapter)> {
    let rc = cfg
        .rails
        .iter()
        .find(|r| r.id == rail_id && r.kind == "phee")
        .cloned()
        .ok_or_else(|| BulkError::NotPhEe(rail_id.to_owned()))?;
    let timeout = Duration::from_millis(rc.request_timeout_ms);
    let adapter =
        PhEeAdapter::new(crate::adapters::mifos::phee_config(&rc, timeout)?).map_err(|e| {
            BulkError::Rail {
                rail: rail_id.to_owned(),
                why: e.to_string(),
            }
        })?;
    Ok((rc, adapter))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Sends queued payments routed to the PH-EE rail `rail_id` through its bulk API, in chunks
/// of the rail's `bulk_chunk` lines. Payments that are not queued on that rail are skipped.
pub async fn submit_phee_bulk(
    db: &Db,
    cfg: &Config,
    rail_id: &str,
    payment_ids: &[Uuid],
) -> Result<BulkSubmission> {
    let (rc, adapter) = phee(cfg, rail_id)?;
    let chunk = rc
        .setting("bulk_chunk")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_CHUNK);
    let mode = rc
        .setting("bulk_payment_mode")
        .unwrap_or_else(|| "mojaloop".into());
    let opts = BulkOptions {
        payer_id_type: adapter.config().payer_id_type.clone(),
        payer_identifier: adapter.config().payer_identifier.clone(),
        purpose: rc
            .setting("bulk_purpose")
            .unwrap_or_else(|| "payroll".into()),
        max_file_bytes: bulk::PHEE_MAX_FILE_BYTES,
    };
    let callback_url = adapter
        .config()
        .callback_token
        .as_ref()
        .map(|t| railgate_mifos::adapter::batch_callback_url(&cfg.public_url(), rail_id, t));
    let upload_window = Duration::from_millis(rc.request_timeout_ms)
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(5));
    let grace = Duration::from_millis(rc.callback_grace_ms);
    let deadline = Duration::from_secs(rc.deadline_secs);
    let mut out = BulkSubmission::default();
    for ids in payment_ids.chunks(chunk) {
        // 1. The attempts, stored before anything is sent; the lines' jobs wait for the upload.
        let mut taken = Vec::new();
        {
            let mut tx = db.begin().await?;
            for pid in ids {
                let Some(p) = payments::get_in(&mut tx, None, *pid).await? else {
                    out.skipped.push(*pid);
                    continue;
                };
                if p.state != State::Queued || p.rail.as_deref() != Some(rail_id) {
                    out.skipped.push(*pid);
                    continue;
                }
                let moved = payments::transition(
                    &mut tx,
                    db.kind(),
                    *pid,
                    Event::Submit,
                    "payroll: Payment Hub bulk",
                )
                .await?;
                if !matches!(moved, payments::Moved::To { .. }) {
                    out.skipped.push(*pid);
                    continue;
                }
                let a = attempts::insert(
                    &mut tx,
                    *pid,
                    rail_id,
                    now_micros().saturating_add(micros(deadline)),
                )
                .await?;
                outcomes::after_transition(
                    &mut tx,
                    *pid,
                    State::Queued,
                    State::Submitted,
                    "payroll: Payment Hub bulk",
                )
                .await?;
                // Every line keeps a driving job (created here when the payroll released its
                // items without one): after the upload it asks about the line if no batch
                // result has settled it.
                let after_upload = now_micros().saturating_add(micros(upload_window));
                jobs::schedule_payment(&mut tx, *pid, after_upload).await?;
                jobs::postpone_payment(&mut tx, *pid, after_upload).await?;
                taken.push(rail_attempt(&p, &a));
            }
            tx.commit().await.map_err(StoreError::from)?;
        }
        if taken.is_empty() {
            continue;
        }
        // 2. The files, and which batch each line travels in.
        let plan = bulk::plan(&taken, &opts, |_| mode.clone());
        {
            let mut tx = db.begin().await?;
            for b in &plan.batches {
                let state = serde_json::json!({ BULK_MARKER: b.correlation_id.to_string() });
                for line in &b.lines {
                    attempts::set_rail_state(&mut tx, line.attempt_id, &state).await?;
                }
            }
            for r in &plan.refused {
                tracing::info!(attempt = %r.attempt_id, reason = %r.reason, "Not sendable in a Payment Hub file; sent on its own");
                attempts::set_status(&mut tx, r.attempt_id, Status::Retry, None, Some(&r.reason))
                    .await?;
                if let Some(a) = taken.iter().find(|a| a.attempt_id == r.attempt_id) {
                    jobs::schedule_payment(&mut tx, a.payment_id, now_micros()).await?;
                    out.single.push(a.payment_id);
                }
            }
            tx.commit().await.map_err(StoreError::from)?;
        }
        // 3. The uploads, one file at a time; each answer is written before the next file.
        for b in &plan.batches {
            let answer = adapter.submit_bulk(b, callback_url.as_deref()).await;
            let payment_of = |aid: Uuid| {
                taken
                    .iter()
                    .find(|a| a.attempt_id == aid)
                    .map(|a| a.payment_id)
            };
            let mut tx = db.begin().await?;
            let cause = format!("rail {rail_id}: bulk file {}", b.correlation_id);
            let (batch_id, error) = match &answer {
                Ok(batch_id) => {
                    for line in &b.lines {
                        let Some(pid) = payment_of(line.attempt_id) else {
                            continue;
                        };
                        outcomes::accept(
                            &mut tx,
                            db.kind(),
                            pid,
                            line.attempt_id,
                            Some(batch_id),
                            &cause,
                        )
                        .await?;
                        jobs::postpone_payment(
                            &mut tx,
                            pid,
                            now_micros().saturating_add(micros(grace)),
                        )
                        .await?;
                    }
                    (Some(batch_id.clone()), None)
                }
                Err(RailError::Retryable(why) | RailError::Permanent(why)) => {
                    // Nothing moved: the dispatcher sends each line on its own, same ids.
                    for line in &b.lines {
                        let Some(pid) = payment_of(line.attempt_id) else {
                            continue;
                        };
                        attempts::set_status(
                            &mut tx,
                            line.attempt_id,
                            Status::Retry,
                            None,
                            Some(why),
                        )
                        .await?;
                        jobs::schedule_payment(&mut tx, pid, now_micros()).await?;
                        out.single.push(pid);
                    }
                    (None, Some(why.clone()))
                }
                Err(RailError::Unknown(why)) => {
                    tracing::warn!(rail = %rail_id, file = %b.correlation_id, reason = %why, "Bulk upload answer lost; each line will be asked about");
                    for line in &b.lines {
                        let Some(pid) = payment_of(line.attempt_id) else {
                            continue;
                        };
                        outcomes::lose_track(&mut tx, db.kind(), pid, line.attempt_id, why, &cause)
                            .await?;
                        jobs::schedule_payment(&mut tx, pid, now_micros()).await?;
                        out.single.push(pid);
                    }
                    (None, Some(why.clone()))
                }
            };
            tx.commit().await.map_err(StoreError::from)?;
            tracing::info!(rail = %rail_id, file = %b.correlation_id, lines = b.lines.len(), batch = ?batch_id, "Payment Hub bulk file uploaded");
            out.batches.push(UploadedBatch {
                correlation_id: b.correlation_id,
                batch_id,
                lines: b.lines.len(),
                error,
            });
        }
    }
    Ok(out)
}

/// What one poll applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Poll {
    pub batches: usize,
    pub completed: usize,
    pub failed: usize,
    pub pending: usize,
    /// Lines PH-EE has no record of yet (left to the dispatcher's inquiries).
    pub missing: usize,
    pub conflicts: usize,
}

/// Reads every open batch of the PH-EE rail `rail_id` (`bulk_results`) and applies each
/// line's outcome to its payment, one transaction per batch.
pub async fn poll_phee_batches(db: &Db, cfg: &Config, rail_id: &str) -> Result<Poll> {
    let (_, adapter) = phee(cfg, rail_id)?;
    let open = {
        let mut conn = db.pool().acquire().await.map_err(StoreError::from)?;
        attempts::open_references_marked(&mut conn, rail_id, BULK_MARKER, MAX_BATCHES_PER_POLL)
            .await?
    };
    let mut out = Poll::default();
    for batch_id in open {
        let results = match adapter.bulk_results(&batch_id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(rail = %rail_id, batch = %batch_id, error = %e, "Payment Hub batch results unavailable; the lines' inquiries go on");
                continue;
            }
        };
        out.batches = out.batches.saturating_add(1);
        let mut tx = db.begin().await?;
        let rows = attempts::open_by_rail_reference(&mut tx, rail_id, &batch_id).await?;
        let mut lines = Vec::new();
        let mut payment_of = std::collections::HashMap::new();
        for a in &rows {
            if let Some(p) = payments::get_in(&mut tx, None, a.payment_id).await? {
                lines.push(BulkLine {
                    attempt_id: a.id,
                    amount: p.amount,
                });
                payment_of.insert(a.id, p.id);
            }
        }
        let batch = BulkBatch {
            correlation_id: Uuid::nil(),
            payment_mode: String::new(),
            purpose: String::new(),
            file_name: String::new(),
            csv: String::new(),
            lines,
        };
        let acc = bulk::account_for(&batch, &results);
        out.missing = out.missing.saturating_add(acc.missing.len());
        let cause = format!("rail {rail_id}: bulk results of batch {batch_id}");
        for (aid, status) in &acc.reported {
            let Some(pid) = payment_of.get(aid).copied() else {
                continue;
            };
            if acc.amount_mismatch.contains(aid) {
                // PH-EE recorded another amount than we sent: never taken as paid as instructed.
                let held = payments::lock_state(&mut tx, db.kind(), pid).await?;
                payments::record_conflict(
                    &mut tx,
                    pid,
                    held,
                    "amount differs",
                    &cause,
                    Some("Payment Hub recorded another amount for this line"),
                )
                .await?;
                out.conflicts = out.conflicts.saturating_add(1);
                continue;
            }
            let applied = match status {
                RailStatus::Completed(s) => {
                    let settled = Settled {
                        rail_reference: s.rail_reference.clone().or_else(|| Some(batch_id.clone())),
                        ..s.clone()
                    };
                    out.completed = out.completed.saturating_add(1);
                    outcomes::complete(&mut tx, db.kind(), pid, Some(*aid), &settled, &cause)
                        .await?
                }
                RailStatus::Failed(f) => {
                    out.failed = out.failed.saturating_add(1);
                    outcomes::fail(&mut tx, db.kind(), pid, Some(*aid), f, &cause).await?
                }
                RailStatus::Pending | RailStatus::NotFound => {
                    out.pending = out.pending.saturating_add(1);
                    Applied::Ignored
                }
            };
            if applied == Applied::Conflict {
                out.conflicts = out.conflicts.saturating_add(1);
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
    }
    Ok(out)
}

/// The batch callback's effect: poll now, in the background (the callback is answered at
/// once). Errors are logged; the dispatcher's inquiries cover anything a poll misses.
pub fn hint(db: Db, cfg: std::sync::Arc<Config>, rail_id: String) {
    tokio::spawn(async move {
        match poll_phee_batches(&db, &cfg, &rail_id).await {
            Ok(p) => {
                tracing::info!(rail = %rail_id, batches = p.batches, completed = p.completed, failed = p.failed, pending = p.pending, missing = p.missing, "Payment Hub batch callback: results applied")
            }
            Err(e) => tracing::error!(rail = %rail_id, error = %e, "Payment Hub batch poll failed"),
        }
    });
}
