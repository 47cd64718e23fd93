//! The dispatcher: claims due jobs and drives each payment to its next state (DESIGN §5).
//!
//! A payment has one driving job. Running it looks at the payment and its latest attempt and
//! does what they call for: store a new attempt and send it, resend a stored attempt that
//! moved nothing, or ask the rail about one whose outcome is not known. Nothing is ever sent
//! under a new id while an earlier attempt could still have moved money. Reversals asked
//! through the API have a job each (`reversal`), driven the same way.

pub mod answers;
pub mod backoff;
mod drive;
pub mod recheck;
mod reversal;

use crate::rails::Rails;
use crate::store::{jobs, Db};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use drive::{follow_up_payload, rail_attempt};

type InHand = Arc<Mutex<HashSet<uuid::Uuid>>>;

/// A job in hand: listed for the heartbeat until dropped, however its run ends.
struct Held {
    set: InHand,
    id: uuid::Uuid,
}

impl Held {
    fn new(set: InHand, id: uuid::Uuid) -> Held {
        lock(&set).insert(id);
        Held { set, id }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.set).remove(&self.id);
    }
}

/// The set is only touched in short critical sections that cannot leave it half-changed, so
/// a poisoned lock still guards a consistent set.
fn lock(set: &InHand) -> MutexGuard<'_, HashSet<uuid::Uuid>> {
    set.lock().unwrap_or_else(PoisonError::into_inner)
}

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
    /// Applies the rails' answers in group commits (`answers::Answers::start`).
    pub answers: answers::Answers,
}

impl Dispatcher {
    /// Runs until `stop` is cancelled; then finishes the jobs in hand and releases the rest.
    pub async fn run(self, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.cfg.max_in_flight.max(1)));
        let mut running = JoinSet::new();
        let lease = i64::try_from(self.cfg.lease_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
        tracing::info!(worker = %self.worker_id, "Dispatcher started");
        // The jobs in hand, whose leases the heartbeat keeps alive until they are done.
        let in_hand: InHand = Arc::new(Mutex::new(HashSet::new()));
        let heartbeat_stop = CancellationToken::new();
        let heartbeat = tokio::spawn(self.clone().heartbeat(
            in_hand.clone(),
            lease,
            heartbeat_stop.clone(),
        ));
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
            // First attempts are stored together, in one commit, before any is sent.
            let (ready, claimed) = match drive::first_sends(&self, claimed.clone()).await {
                Ok(split) => split,
                Err(e) => {
                    tracing::error!(error = %e, "Storing a batch of first attempts failed; the jobs run one by one");
                    (Vec::new(), claimed)
                }
            };
            for r in ready {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let me = self.clone();
                let held = Held::new(in_hand.clone(), r.job.id);
                running.spawn(async move {
                    let job = r.job.clone();
                    if let Err(e) = drive::send_ready(&me, r).await {
                        me.failed(&job, &e).await;
                    }
                    drop(held);
                    drop(permit);
                });
            }
            for job in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let me = self.clone();
                let held = Held::new(in_hand.clone(), job.id);
                running.spawn(async move {
                    me.handle(job).await;
                    drop(held);
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
        heartbeat_stop.cancel();
        let _ = heartbeat.await;
        match jobs::release(&self.db, Some(&self.worker_id)).await {
            Ok(n) => tracing::info!(released = n, "Dispatcher stopped"),
            Err(e) => tracing::error!(error = %e, "Releasing leases failed"),
        }
    }

    /// Renews the leases of the jobs in hand every third of a lease. Without it, a job that
    /// waits longer than its lease (for its rail's slot, behind a slow rail) is claimed again
    /// while still running, and two runs drive one payment at once: no money moves twice
    /// (they send the same attempt id), but each writes its own conclusion — a payment
    /// could end failed by one run and flagged as an exception by the other.
    async fn heartbeat(self, in_hand: InHand, lease: i64, stop: CancellationToken) {
        let every = Duration::from_millis((self.cfg.lease_ms / 3).max(10));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let ids: Vec<uuid::Uuid> = lock(&in_hand).iter().copied().collect();
            if let Err(e) = jobs::renew(&self.db, &self.worker_id, &ids, lease).await {
                tracing::error!(error = %e, "Renewing job leases failed");
            }
        }
    }

    async fn handle(&self, job: jobs::Job) {
        let kind = job.kind;
        let result = match kind {
            jobs::JobKind::Payment => drive::payment(self, &job).await,
            jobs::JobKind::FollowUp => drive::follow_up(self, &job).await,
            jobs::JobKind::ConfirmFailure => recheck::run(self, &job).await,
            jobs::JobKind::Reversal => reversal::run(self, &job).await,
            jobs::JobKind::Webhook => crate::notify::deliver::run(&self.db, &self.webhooks, &job)
                .await
                .map_err(drive::DriveError::from),
        };
        if let Err(e) = result {
            self.failed(&job, &e).await;
        }
    }

    /// A job's run failed (not its payment: the run itself, e.g. its rail is not configured):
    /// it is tried again on a backoff, and dead-lettered after `dead_letter_after` failures in
    /// a row.
    async fn failed(&self, job: &jobs::Job, e: &drive::DriveError) {
        let kind = job.kind;
        let at = crate::store::now_micros().saturating_add(backoff::micros(
            job.tries,
            Duration::from_secs(1),
            Duration::from_secs(60),
        ));
        crate::store::count_write();
        let error = e.to_string();
        let max = self.cfg.dead_letter_after;
        let failed = match self.db.pool().acquire().await {
            Ok(mut conn) => jobs::fail(&mut conn, job, at, &error, max).await,
            Err(e) => Err(e.into()),
        };
        match failed {
            Ok(jobs::Failed::Dead) => {
                metrics::counter!("railgate_jobs_dead_lettered_total").increment(1);
                tracing::error!(job = %job.id, kind = kind.as_str(), error = %error, failures = max, "Job dead-lettered; requeue it once its cause is fixed");
            }
            Ok(jobs::Failed::Retrying | jobs::Failed::Gone) => {
                tracing::error!(job = %job.id, kind = kind.as_str(), error = %error, "Job failed; retrying later");
            }
            // Its lease expires and it is claimed again; the failure goes uncounted.
            Err(store) => {
                tracing::error!(job = %job.id, kind = kind.as_str(), error = %error, store_error = %store, "Job failed; recording the failure failed too");
            }
        }
    }
}
