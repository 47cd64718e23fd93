//! Payrolls as a whole: releasing held items to the dispatcher, in bulk or one at a time,
//! and noticing when the last item of a payroll reaches a final state.

use crate::batches;
use crate::config::{Config, RailConfig};
use crate::domain::{Event, State};
use crate::notify;
use crate::outcomes;
use crate::rails::{Rail, Rails};
use crate::store::payments::{self, Moved};
use crate::store::payrolls::{self, Status};
use crate::store::{jobs, now_micros, Db, Result};
use serde_json::json;
use sqlx::AnyConnection;
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// Items released per transaction: large enough to be quick, small enough that a SQLite
/// write lock is never held for long while the dispatcher also writes.
const RELEASE_CHUNK: i64 = 2_000;

/// How long a released item for a rail with batches on waits for the batch path before the
/// dispatcher may send it on its own.
const BATCH_HOLD_MICROS: i64 = 30_000_000;

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
        let mut conn = db.pool().acquire().await?;
        let moved =
            payrolls::set_status(&mut conn, payroll_id, Status::Held, Status::Released).await?;
        if !moved {
            match payrolls::get_in(&mut conn, None, payroll_id)
                .await?
                .map(|p| p.status)
            {
                Some(Status::Released) => {}
                _ => return Ok(None),
            }
        }
    }
    let batch_rails: Vec<(&RailConfig, Arc<Rail>)> = cfg
        .rails
        .iter()
        .filter_map(|rc| {
            let rail = rails.get(&rc.id)?;
            batches::settings(rc, rail.adapter.as_ref()).map(|_| (rc, rail.clone()))
        })
        .collect();
    let mut released: u64 = 0;
    loop {
        let mut tx = db.begin().await?;
        let ids = payrolls::release_chunk(&mut tx, payroll_id, RELEASE_CHUNK, cause).await?;
        if ids.is_empty() {
            tx.commit().await?;
            break;
        }
        for id in &ids {
            outcomes::after_transition(&mut tx, *id, State::Received, State::Queued, cause).await?;
        }
        // Items for a rail with batches on wait for the batch path below (at most this long,
        // if it fails before taking them).
        let mut on_batch_rails: Vec<(&RailConfig, Arc<Rail>, Vec<Uuid>)> = Vec::new();
        if !batch_rails.is_empty() {
            let by_rail = payrolls::rails_of(&mut tx, &ids).await?;
            let until = now_micros().saturating_add(BATCH_HOLD_MICROS);
            for (rc, rail) in &batch_rails {
                let mine: Vec<Uuid> = by_rail
                    .iter()
                    .filter(|(_, r)| r.as_deref() == Some(rc.id.as_str()))
                    .map(|(id, _)| *id)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                payrolls::hold_jobs(&mut tx, &mine, until).await?;
                on_batch_rails.push((rc, rail.clone(), mine));
            }
        }
        tx.commit().await?;
        released = released.saturating_add(u64::try_from(ids.len()).unwrap_or(0));
        // The rest goes to the dispatcher now; the batch rails' items after their uploads.
        wake.notify_one();
        for (rc, rail, mine) in on_batch_rails {
            send_batches(db, rc, rail.adapter.as_ref(), payroll_id, &mine).await;
        }
        wake.notify_one();
    }
    // A payroll whose items were all cancelled or released one by one may be done already.
    let mut tx = db.begin().await?;
    if payrolls::complete_if_done(&mut tx, payroll_id).await? {
        payroll_completed(&mut tx, payroll_id).await?;
    }
    tx.commit().await?;
    Ok(Some(released))
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
    match payments::transition(&mut tx, db.kind(), payment_id, Event::Queue, cause).await? {
        Moved::To { from, to } => {
            outcomes::after_transition(&mut tx, payment_id, from, to, cause).await?;
            jobs::schedule_payment(&mut tx, payment_id, now_micros()).await?;
            tx.commit().await?;
            wake.notify_one();
            Ok(Ok(()))
        }
        Moved::Refused { held } => {
            tx.rollback().await?;
            Ok(Err(NotReleased::AlreadyReleased(held)))
        }
    }
}

/// Called for every payroll item that reached a final state, inside that transaction:
/// completes the payroll if it was the last open item.
pub async fn item_final(conn: &mut AnyConnection, payroll_id: Uuid) -> Result<()> {
    if payrolls::complete_if_done(conn, payroll_id).await? {
        payroll_completed(conn, payroll_id).await?;
    }
    Ok(())
}

/// Inside the transaction that completed the payroll: the `payroll.completed` event for the
/// core, with the payroll's counts and totals per state.
pub async fn payroll_completed(conn: &mut AnyConnection, payroll_id: Uuid) -> Result<()> {
    let Some(p) = payrolls::get_in(conn, None, payroll_id).await? else {
        return Ok(());
    };
    let counts = payrolls::counts_in(conn, payroll_id).await?;
    let mut states = serde_json::Map::new();
    for c in &counts {
        let entry = states
            .entry(c.state.as_str().to_owned())
            .or_insert_with(|| json!({"count": 0, "totals": []}));
        let n = entry["count"].as_i64().unwrap_or(0).saturating_add(c.count);
        entry["count"] = json!(n);
        if let Some(t) = entry["totals"].as_array_mut() {
            t.push(money_json(c.total_minor, &c.currency));
        }
    }
    let summary = json!({
        "name": p.name,
        "item_count": p.item_count,
        "states": states,
    });
    notify::events::payroll_completed(conn, p.client_id, payroll_id, summary).await?;
    tracing::info!(payroll = %payroll_id, items = p.item_count, "Payroll completed");
    metrics::counter!("railgate_payrolls_completed_total").increment(1);
    Ok(())
}

fn money_json(minor: i64, currency: &str) -> serde_json::Value {
    match currency.parse::<crate::domain::Currency>() {
        Ok(c) => {
            json!({"value": railgate_rail::money::format_minor(minor, c), "currency": currency})
        }
        Err(_) => json!({"minor": minor, "currency": currency}),
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
            tracing::error!(payroll = %payroll_id, rail = %rc.id, error = %e, "Batch path failed; the items go one by one")
        }
    }
}
