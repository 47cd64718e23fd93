//! Running gateways sharing a PostgreSQL database, each with a heartbeat, so that what a dead
//! one held (its in-flight idempotency keys) can be taken over within seconds. SQLite has one
//! instance per file and needs none of this: there, any owner but the running one is dead.

use super::{now_micros, Db, Result};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Rows of instances not seen for this long are removed (they hold nothing by then).
const FORGET_AFTER_MICROS: i64 = 24 * 3600 * 1_000_000;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Records the instance as alive now.
pub async fn beat(db: &Db, id: Uuid) -> Result<()> {
    let now = now_micros();
    crate::store::sql::query(
        "INSERT INTO instances (id, started_at, seen_at) VALUES ($1, $2, $2) \
         ON CONFLICT (id) DO UPDATE SET seen_at = $2",
    )
    .bind(id.to_string())
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Whether the instance has beaten within `stale`.
pub async fn alive(db: &Db, id: &str, stale: Duration) -> Result<bool> {
    let seen: Option<i64> =
        crate::store::sql::query_scalar("SELECT seen_at FROM instances WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    let since = now_micros().saturating_sub(micros(stale));
    Ok(seen.is_some_and(|s| s >= since))
}

/// Removes the instance (a clean stop: it holds nothing any more).
pub async fn forget(db: &Db, id: Uuid) -> Result<()> {
    crate::store::sql::query("DELETE FROM instances WHERE id = $1")
        .bind(id.to_string())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Beats every `every` until `stop`, then forgets the instance. `db` should be a pool of its
/// own (one connection): a heartbeat that waited behind busy work would let a live instance
/// pass for dead.
pub async fn heartbeat(db: Db, id: Uuid, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beats: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = beat(&db, id).await {
            tracing::error!(error = %e, "Instance heartbeat failed");
        }
        beats = beats.wrapping_add(1);
        if beats.checked_rem(3600) == Some(1) {
            let old = now_micros().saturating_sub(FORGET_AFTER_MICROS);
            if let Err(e) = crate::store::sql::query("DELETE FROM instances WHERE seen_at < $1")
                .bind(old)
                .execute(db.pool())
                .await
            {
                tracing::warn!(error = %e, "Forgetting old instances failed");
            }
        }
    }
    if let Err(e) = forget(&db, id).await {
        tracing::warn!(error = %e, "Removing this instance's heartbeat failed");
    }
    db.close().await;
}
