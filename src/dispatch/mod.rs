//! The dispatcher: claims due jobs and drives each payment to its next state (DESIGN §5).
//!
//! A payment has one driving job. Running it looks at the payment and its latest attempt and
//! does what they call for: store a new attempt and send it, resend a stored attempt that
//! moved nothing, or ask the rail about one whose outcome is not known. Nothing is ever sent
//! under a new id while an earlier attempt could still have moved money.

pub mod backoff;
mod drive;

use crate::rails::Rails;
use crate::store::{jobs, Db};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use drive::{follow_up_payload, rail_attempt};

#[derive(Clone)]
pub struct Dispatcher {
    pub db: Db,
    pub rails: Arc<Rails>,
    pub cfg: crate::config::DispatchConfig,
    pub worker_id: String,
    /// Woken when a job is written in this process, so the loop need not wait a poll.
    pub wake: Arc<Notify>,
    /// Sends webhook deliveries.
    pub webhooks: crate::notify::Sender,
}

impl Dispatcher {
    /// Runs until `stop` is cancelled; then finishes the jobs in hand and releases the rest.
    pub async fn run(self, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.cfg.max_in_flight.max(1)));
        let mut running = JoinSet::new();
        let lease = i64::try_from(self.cfg.lease_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
        tracing::info!(worker = %self.worker_id, "Dispatcher started");
        while !stop.is_cancelled() {
            while running.try_join_next().is_some() {}
            let free = i64::try_from(slots.available_permits())
                .unwrap_or(0)
                .min(self.cfg.batch);
            let claimed = if free > 0 {
                match jobs::claim(&self.db, &self.worker_id, lease, free).await {
                    Ok(j) => j,
                    Err(e) => {
                        tracing::error!(error = %e, "Claiming jobs failed");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let idle = claimed.is_empty();
            for job in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let me = self.clone();
                running.spawn(async move {
                    me.handle(job).await;
                    drop(permit);
                });
            }
            if idle {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(self.cfg.poll_ms)) => {}
                }
            }
        }
        // Graceful shutdown: let in-flight sends finish (bounded), then give back the leases.
        let drain = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(20), drain)
            .await
            .is_err()
        {
            tracing::warn!("Shutdown: some jobs did not finish in time; their leases will expire");
        }
        match jobs::release(&self.db, Some(&self.worker_id)).await {
            Ok(n) => tracing::info!(released = n, "Dispatcher stopped"),
            Err(e) => tracing::error!(error = %e, "Releasing leases failed"),
        }
    }

    async fn handle(&self, job: jobs::Job) {
        let kind = job.kind;
        let result = match kind {
            jobs::JobKind::Payment => drive::payment(self, &job).await,
            jobs::JobKind::FollowUp => drive::follow_up(self, &job).await,
            jobs::JobKind::Webhook => crate::notify::deliver::run(&self.db, &self.webhooks, &job)
                .await
                .map_err(drive::DriveError::from),
        };
        if let Err(e) = result {
            tracing::error!(job = %job.id, kind = kind.as_str(), error = %e, "Job failed; retrying later");
            let at = crate::store::now_micros().saturating_add(backoff::micros(
                job.tries,
                Duration::from_secs(1),
                Duration::from_secs(60),
            ));
            if let Ok(mut conn) = self.db.pool().acquire().await {
                let _ = jobs::retry_at(&mut conn, &job, at, Some(&e.to_string())).await;
            }
        }
    }
}
