//! Payrolls as a whole: releasing held items to the dispatcher, in bulk or one at a time,
//! and noticing when the last item of a payroll reaches a final state.

use crate::batches;
use crate::config::{Config, RailConfig};
use crate::domain::State;
use crate::engine::{self, Change};
use crate::rails::{Rail, Rails};
use crate::store::payments;
use crate::store::payrolls::{self, Status};
use crate::store::{now_micros, Db, Result};
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// Items released per transaction: large enough to be quick, small enough that a SQLite
/// write lock is never held for long while the dispatcher also writes.
const RELEASE_CHUNK: i64 = 2_000;

/// How long a released item for a rail with batches on waits for the batch path before the
/// dispatcher may send it on its own. The batch path lets go of what it does not take (and
/// of everything when it fails) at once, so this bound only matters when the process dies
/// between the release and the upload; it is long enough that a loaded machine's uploads
/// of one chunk never race the dispatcher for the same lines.
const BATCH_HOLD_MICROS: i64 = 300_000_000;

/// Releases every item still held: `held` → `released`, then items in chunks, waking the
/// dispatcher after each. Calling it again resumes a release that an earlier process did not
/// finish. Returns how many items this call released, or `None` when the payroll was
/// neither held nor released.
pub async fn release(
    db: &Db,
    wake: &Notify,
    cfg: &Config,
    rails: &Rails,
    payroll_id: Uuid,
    cause: &str,
) -> Result<Option<u64>> {
    {
        let mut tx = db.begin().await?;
        let mut moved =
            payrolls::set_status(&mut tx, payroll_id, Status::Held, Status::Released).await?;
        if !moved
            && payrolls::set_status(&mut tx, payroll_id, Status::Paused, Status::Released).await?
        {
            // Resumed: what the pause kept back is due now.
            payrolls::move_queued_jobs(&mut tx, payroll_id, now_micros()).await?;
            moved = true;
        }
        tx.commit().await?;
        if !moved {
            let mut conn = db.pool().acquire().await?;
            match payrolls::get_in(&mut conn, None, payroll_id)
                .await?
                .map(|p| p.status)
            {
                Some(Status::Released) => {}
                _ => return Ok(None),
            }
        }
    }
    wake.notify_one();
    let batch_rails: Vec<(&RailConfig, Arc<Rail>)> = cfg
        .rails
        .iter()
        .filter_map(|rc| {
            let rail = rails.get(&rc.id)?;
            batches::settings(rc, rail.adapter.as_ref()).map(|_| (rc, rail.clone()))
        })
        .collect();
    let mut released: u64 = 0;
    // Uploads run beside the release of the next chunks, a few at a time: a chunk's attempts
    // are stored and its batch sent while the next chunk is released. Every upload is waited
    // for before this returns, whatever happened (nothing is left half-sent by a return).
    let mut uploads = tokio::task::JoinSet::new();
    let outcome = release_chunks(
        db,
        wake,
        &batch_rails,
        payroll_id,
        cause,
        &mut released,
        &mut uploads,
    )
    .await;
    while uploads.join_next().await.is_some() {
        wake.notify_one();
    }
    if !outcome? {
        return Ok(Some(released));
    }
    // A payroll whose items were all cancelled or released one by one may be done already.
    let mut tx = db.begin().await?;
    engine::settle_payroll(&mut tx, payroll_id).await?;
    tx.commit().await?;
    Ok(Some(released))
}

/// Uploads of a release in flight at once, at most.
const UPLOADS_IN_FLIGHT: usize = 3;

/// The release's chunks: each released in a transaction, its items for batch rails handed to
/// an upload task (`uploads`, at most [`UPLOADS_IN_FLIGHT`]). False when a pause stopped it.
async fn release_chunks(
    db: &Db,
    wake: &Notify,
    batch_rails: &[(&RailConfig, Arc<Rail>)],
    payroll_id: Uuid,
    cause: &str,
    released: &mut u64,
    uploads: &mut tokio::task::JoinSet<()>,
) -> Result<bool> {
    loop {
        let mut tx = db.begin().await?;
        // A pause between two chunks stops the release; releasing again goes on from here.
        if payrolls::get_in(&mut tx, None, payroll_id)
            .await?
            .map(|p| p.status)
            != Some(Status::Released)
        {
            tx.commit().await?;
            return Ok(false);
        }
        let ids = engine::release_payroll_chunk(&mut tx, payroll_id, RELEASE_CHUNK, cause).await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(true);
        }
        // Items for a rail with batches on wait for the batch path below (at most this long,
        // if it fails before taking them).
        let mut on_batch_rails: Vec<(RailConfig, Arc<Rail>, Vec<Uuid>)> = Vec::new();
        if !batch_rails.is_empty() {
            let by_rail = payrolls::rails_of(&mut tx, &ids).await?;
            let until = now_micros().saturating_add(BATCH_HOLD_MICROS);
            for (rc, rail) in batch_rails {
                let mine: Vec<Uuid> = by_rail
                    .iter()
                    .filter(|(_, r)| r.as_deref() == Some(rc.id.as_str()))
                    .map(|(id, _)| *id)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                payrolls::hold_jobs(&mut tx, &mine, until).await?;
                on_batch_rails.push(((*rc).clone(), rail.clone(), mine));
            }
        }
        tx.commit().await?;
        *released = released.saturating_add(u64::try_from(ids.len()).unwrap_or(0));
        // The rest goes to the dispatcher now; the batch rails' items after their uploads.
        wake.notify_one();
        for (rc, rail, mine) in on_batch_rails {
            while uploads.len() >= UPLOADS_IN_FLIGHT {
                uploads.join_next().await;
                wake.notify_one();
            }
            let db = db.clone();
            uploads.spawn(async move {
                send_batches(&db, &rc, rail.adapter.as_ref(), payroll_id, &mine).await;
            });
        }
    }
}

/// What a pause held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paused {
    /// Items queued for the dispatcher that now wait for the payroll's release.
    pub held_back: u64,
}

/// Pauses a released payroll: `released` → `paused`, and the jobs of its items still queued
/// (never sent, not in a dispatcher's hands) wait until it is released again. Items a
/// dispatcher already took finish their try; nothing sent is called back (a rail has no
/// "unsend"), and no item changes state. `None` when the payroll was not released.
pub async fn pause(db: &Db, payroll_id: Uuid) -> Result<Option<Paused>> {
    let mut tx = db.begin().await?;
    if !payrolls::set_status(&mut tx, payroll_id, Status::Released, Status::Paused).await? {
        tx.commit().await?;
        return Ok(None);
    }
    let held_back = payrolls::move_queued_jobs(&mut tx, payroll_id, payrolls::PAUSED_UNTIL).await?;
    tx.commit().await?;
    tracing::info!(payroll = %payroll_id, held_back, "Payroll paused");
    Ok(Some(Paused { held_back }))
}

/// Why one item could not be released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReleased {
    /// The item is past `received`: it was released (or cancelled) before.
    AlreadyReleased(State),
}

/// Releases one held item (the openIMIS facade's payment call), inside one transaction.
pub async fn release_item(
    db: &Db,
    wake: &Notify,
    payment_id: Uuid,
    cause: &str,
) -> Result<std::result::Result<(), NotReleased>> {
    let mut tx = db.begin().await?;
    let applied = engine::apply(&mut tx, db.kind(), payment_id, Change::Queue, cause).await?;
    if applied.changed() {
        tx.commit().await?;
        wake.notify_one();
        Ok(Ok(()))
    } else {
        let held = payments::lock_state(&mut tx, db.kind(), payment_id).await?;
        tx.rollback().await?;
        Ok(Err(NotReleased::AlreadyReleased(held)))
    }
}

/// Items routed to a rail with batches on go through its batch API (`crate::batches`), in
/// the rail's chunks. Whatever the batch path does not take (or cannot, when it fails) stays
/// queued with its job and is sent one by one, under the same attempt discipline, so a
/// failure here delays nothing and pays nothing twice.
async fn send_batches(
    db: &Db,
    rc: &RailConfig,
    adapter: &dyn railgate_rail::RailAdapter,
    payroll_id: Uuid,
    ids: &[Uuid],
) {
    match batches::submit(db, rc, adapter, ids).await {
        Ok(sent) => {
            tracing::info!(payroll = %payroll_id, rail = %rc.id, batches = sent.batches.len(), single = sent.single.len(), skipped = sent.skipped.len(), "Payroll items sent through the rail's batch API")
        }
        Err(e) => {
            tracing::error!(payroll = %payroll_id, rail = %rc.id, error = %e, "Batch path failed; the items go one by one");
            // Not left waiting for the hold: the dispatcher takes them now (a line the batch
            // path stored before failing is asked about by its attempt id, never resent).
            let released = async {
                let mut conn = db.pool().acquire().await?;
                crate::store::payrolls::hold_jobs(&mut conn, ids, now_micros()).await
            };
            if let Err(e) = released.await {
                tracing::error!(payroll = %payroll_id, error = %e, "Letting the dispatcher have the items failed; they wait for the hold");
            }
        }
    }
}
