//! Rails' answers to submissions, applied in group commits.
//!
//! Every send's answer goes to one committer task. It takes whatever answers are waiting,
//! applies them all in one transaction, commits, and only then tells each sender that its
//! answer is stored. While one commit is on its way to the disk the next answers gather, so
//! under load many payments share a commit and at rest an answer waits for no one. A send's
//! job is let go only after its answer's commit: nothing the rail said is acknowledged
//! before it is durable.

use super::drive::{self, DriveError};
use crate::domain::Payment;
use crate::rails::Rail;
use crate::store::attempts::AttemptRow;
use crate::store::jobs::Job;
use crate::store::{Db, StoreError};
use railgate_rail::{RailError, Submitted};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The most answers one commit takes: a bound on how long the write lock is held.
const MAX_BATCH: usize = 512;

/// One rail's answer to one send.
pub struct Answer {
    pub job: Job,
    pub rail: Arc<Rail>,
    pub payment: Payment,
    pub attempt: AttemptRow,
    pub outcome: Result<Submitted, RailError>,
}

type Pending = (Answer, oneshot::Sender<Result<(), String>>);

/// The handle senders give their answers to.
#[derive(Clone)]
pub struct Answers {
    /// One committer per writer the store allows ([`Db::writers`]); a payment's answers
    /// always go through the same one.
    shards: Arc<[mpsc::Sender<Pending>]>,
}

impl Answers {
    /// Starts the committers; they run until the last handle is dropped.
    pub fn start(db: Db, max_submit_tries: i64) -> Answers {
        let shards: Vec<mpsc::Sender<Pending>> = (0..db.writers())
            .map(|_| {
                let (tx, rx) = mpsc::channel(MAX_BATCH.saturating_mul(4));
                tokio::spawn(commit_loop(db.clone(), max_submit_tries, rx));
                tx
            })
            .collect();
        Answers {
            shards: shards.into(),
        }
    }

    /// Hands the answer over and waits until it is committed (or its commit failed).
    pub async fn apply(&self, answer: Answer) -> Result<(), DriveError> {
        let (done, wait) = oneshot::channel();
        let shard = crate::store::group::shard_of(&answer.payment.id, self.shards.len());
        self.shards
            .get(shard)
            .ok_or_else(|| DriveError::Setup("the answer committer has stopped".into()))?
            .send((answer, done))
            .await
            .map_err(|_| DriveError::Setup("the answer committer has stopped".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DriveError::Setup(format!(
                "applying the answer failed: {e}"
            ))),
            Err(_) => Err(DriveError::Setup("the answer committer has stopped".into())),
        }
    }
}

async fn commit_loop(db: Db, max_submit_tries: i64, mut rx: mpsc::Receiver<Pending>) {
    while let Some(batch) = crate::store::group::next_batch(&mut rx, MAX_BATCH).await {
        metrics::histogram!("railgate_answer_batch_size")
            .record(f64::from(u32::try_from(batch.len()).unwrap_or(u32::MAX)));
        let (answers, waiting): (Vec<Answer>, Vec<_>) = batch.into_iter().unzip();
        match commit(&db, max_submit_tries, &answers).await {
            Ok(()) => {
                for w in waiting {
                    let _ = w.send(Ok(()));
                }
            }
            Err(e) if answers.len() == 1 => {
                for w in waiting {
                    let _ = w.send(Err(e.to_string()));
                }
            }
            Err(e) => {
                // One answer must not hold back the others: each alone, in its own commit.
                tracing::warn!(error = %e, answers = answers.len(), "A batch of answers failed; applying them one by one");
                for (a, w) in answers.iter().zip(waiting) {
                    let r = commit(&db, max_submit_tries, std::slice::from_ref(a)).await;
                    let _ = w.send(r.map_err(|e| e.to_string()));
                }
            }
        }
    }
}

/// Applies the answers in one transaction: each answer's own writes first, then every change
/// through the engine at once, then every job.
async fn commit(db: &Db, max_submit_tries: i64, answers: &[Answer]) -> Result<(), DriveError> {
    let kind = db.kind();
    let mut tx = db.begin().await?;
    let mut items = Vec::with_capacity(answers.len());
    let mut settle = Vec::with_capacity(answers.len());
    for a in answers {
        let (item, next) = drive::plan_answer(
            &mut tx,
            max_submit_tries,
            &a.job,
            &a.rail,
            &a.payment,
            &a.attempt,
            a.outcome.clone(),
        )
        .await?;
        items.extend(item);
        settle.push((&a.job, next));
    }
    let mut later = crate::engine::Deferred::default();
    crate::engine::apply_many(&mut tx, kind, items, &mut later).await?;
    crate::store::jobs::settle_many(&mut tx, &settle).await?;
    later.run(&mut tx).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}
