//! Confirming a failure: on rails whose "failed" is not the last word, a failed payment is
//! asked about once more after a delay.
//!
//! Payment Hub EE's operations app may show `FAILED` and then `COMPLETED` for the same
//! transfer, and Fineract may refuse a deposit (403) and book it all the same; neither calls
//! anyone back when it changes its mind. For such rails (`confirm_failures`, on by default where
//! the adapter says its failures are not final: `RailAdapter::failures_final`) the failure writes a `confirm_failure` job, an effect the engine runs
//! in the transaction that fails the payment, due `confirm_failure_after_ms` later. The job asks
//! the rail (`inquire`, never a resend: nothing is ever deposited twice). When the rail now
//! reports success, the payment stays failed and the contradiction is recorded as a conflict,
//! exactly as a late success callback after a failure is (the engine): it shows on
//! the payment and becomes a break in the next reconciliation run. Any other answer confirms
//! the failure and changes nothing. Only a rail that does not answer is asked again, on a
//! backoff, a bounded number of times.
//!
//! The policy per rail lives in the store (`failure_rechecks`, written from the configuration
//! at start-up by `sync_policies`), so that the job is written in the failing transaction by
//! whichever path failed the payment (dispatcher, bulk results, callbacks, bank watcher).

use super::drive::{rail_attempt, DriveError};
use super::{backoff, Dispatcher};
use crate::config::{Config, ConfigError, RailConfig};
use crate::domain::State;
use crate::engine::{self, Applied, Change};
use crate::rails::Rails;
use crate::store::jobs::{self, Job};
use crate::store::{attempts, now_micros, payments, Db, StoreError};
use railgate_rail::{RailAdapter, RailError, RailStatus};
use std::time::Duration;
use uuid::Uuid;

/// The delay when the configuration gives none: long enough for a hub's status to settle.
pub const DEFAULT_DELAY_MS: u64 = 600_000;

/// Tries of a re-check the rail does not answer, at most.
const MAX_TRIES: i64 = 8;

/// A rail's policy: the delay after which its failures are asked about again, or `None`.
/// `confirm_failures` unset: on where the adapter says its failures are not final.
pub fn policy(rc: &RailConfig, adapter: &dyn RailAdapter) -> Option<Duration> {
    if !rc.confirm_failures.unwrap_or(!adapter.failures_final()) {
        return None;
    }
    Some(Duration::from_millis(
        rc.confirm_failure_after_ms.unwrap_or(DEFAULT_DELAY_MS),
    ))
}

/// Every configured rail's policy.
pub fn policies(
    cfg: &Config,
    rails: &Rails,
) -> Result<Vec<(String, Option<Duration>)>, ConfigError> {
    cfg.rails
        .iter()
        .map(|rc| {
            let rail = rails.get(&rc.id).ok_or_else(|| {
                ConfigError::Invalid(format!("rail {}: its adapter was not built", rc.id))
            })?;
            Ok((rc.id.clone(), policy(rc, rail.adapter.as_ref())))
        })
        .collect()
}

/// Writes the rails' policies to the store (and forgets rails no longer re-checked).
pub async fn sync_policies(
    db: &Db,
    policies: &[(String, Option<Duration>)],
) -> crate::store::Result<()> {
    let mut tx = db.begin().await?;
    crate::store::sql::query("DELETE FROM failure_rechecks")
        .execute(&mut *tx)
        .await?;
    for (rail, delay) in policies {
        if let Some(delay) = delay {
            crate::store::sql::query(
                "INSERT INTO failure_rechecks (rail, delay_micros, updated_at) VALUES ($1, $2, $3)",
            )
            .bind(rail)
            .bind(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX))
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    attempt_id: Uuid,
}

/// Runs a `confirm_failure` job: asks the rail once more about the failed attempt.
pub async fn run(d: &Dispatcher, job: &Job) -> Result<(), DriveError> {
    let Some(payload) = job
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<Payload>(p).ok())
    else {
        tracing::error!(job = %job.id, "Re-check job without its attempt; dropped");
        return finish(d, job).await;
    };
    let Some(p) = (match job.payment_id {
        Some(pid) => payments::row(&d.db, pid).await?,
        None => None,
    }) else {
        return finish(d, job).await;
    };
    // Settled otherwise meanwhile, or already known to be contradicted.
    if p.state != State::Failed || p.conflict.is_some() {
        return finish(d, job).await;
    }
    let a = {
        let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
        attempts::get(&mut conn, payload.attempt_id).await?
    };
    let Some(a) = a.filter(|a| a.payment_id == p.id) else {
        return finish(d, job).await;
    };
    let Some(rail) = d.rails.get(&a.rail).cloned() else {
        tracing::warn!(payment = %p.id, rail = %a.rail, "Re-check for a rail no longer configured; dropped");
        return finish(d, job).await;
    };
    let attempt = rail_attempt(&p, &a);
    let answer = {
        let _permit = rail.permit().await;
        match tokio::time::timeout(
            rail.request_timeout.saturating_add(Duration::from_secs(1)),
            rail.adapter.inquire(&attempt),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(RailError::Unknown("no answer to the re-check".into())),
        }
    };
    match answer {
        Ok(RailStatus::Completed(settled)) => {
            let cause = format!(
                "rail {}: re-check of the failure of attempt {}",
                rail.id, a.id
            );
            let mut tx = d.db.begin().await?;
            let applied = engine::apply(
                &mut tx,
                d.db.kind(),
                p.id,
                Change::Complete {
                    attempt: Some(a.id),
                    settled: settled.clone(),
                },
                &cause,
            )
            .await?;
            jobs::finish(&mut tx, job).await?;
            tx.commit().await.map_err(StoreError::from)?;
            if applied == Applied::Conflict {
                metrics::counter!("railgate_failure_rechecks_total", "result" => "contradicted")
                    .increment(1);
                tracing::warn!(payment = %p.id, attempt = %a.id, rail = %rail.id, "The rail now reports a failed payment as paid; conflict recorded");
            }
            Ok(())
        }
        Ok(RailStatus::Failed(_) | RailStatus::Pending | RailStatus::NotFound) => {
            metrics::counter!("railgate_failure_rechecks_total", "result" => "confirmed")
                .increment(1);
            tracing::info!(payment = %p.id, attempt = %a.id, rail = %rail.id, "Failure confirmed by the rail");
            finish(d, job).await
        }
        Err(e) if job.tries < MAX_TRIES => {
            let at = now_micros().saturating_add(backoff::micros(
                job.tries,
                Duration::from_secs(1),
                Duration::from_secs(300),
            ));
            let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
            jobs::retry_at(&mut conn, job, at, Some(&e.to_string())).await?;
            Ok(())
        }
        Err(e) => {
            metrics::counter!("railgate_failure_rechecks_total", "result" => "unanswered")
                .increment(1);
            tracing::warn!(payment = %p.id, attempt = %a.id, rail = %rail.id, error = %e, "The rail never answered the re-check of a failure; given up");
            finish(d, job).await
        }
    }
}

async fn finish(d: &Dispatcher, job: &Job) -> Result<(), DriveError> {
    let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
    jobs::finish(&mut conn, job).await?;
    Ok(())
}
