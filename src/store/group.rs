//! Group commit: many callers' writes in one transaction, each answered after the commit.
//!
//! A caller hands [`Group::run`] the work it would have done in a transaction of its own.
//! One task takes whatever work is waiting, runs each piece in a savepoint of one shared
//! transaction, commits once, and only then gives each caller its result. Work that fails
//! is rolled back to its savepoint and fails alone; the others still commit. Nothing is
//! acknowledged before it is durable, and while one commit is on its way to the disk the
//! next callers gather behind it, so under load many writes share one fsync.

use super::{Db, StoreError};
use crate::store::Conn;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

/// The most pieces of work one commit takes: a bound on how long the write lock is held.
const MAX_BATCH: usize = 256;

/// Called after the commit with its outcome; sends the caller its result.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One piece of work: runs in a savepoint, says whether to keep it, and how to answer.
type Work = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, (bool, Finish)> + Send>;

/// Why a piece of work did not commit.
#[derive(Debug, thiserror::Error)]
pub enum GroupError<E> {
    /// The work itself failed (its savepoint was rolled back; nothing of it was written).
    #[error(transparent)]
    Work(E),
    /// The shared transaction failed to commit (nothing of it was written).
    #[error("the commit failed: {0}")]
    Commit(String),
    #[error("the group committer has stopped")]
    Stopped,
}

#[derive(Clone, Debug)]
pub struct Group {
    /// One committer per writer ([`Db::writers`]).
    shards: std::sync::Arc<[mpsc::Sender<Work>]>,
}

/// Which of `n` committers takes the work of `key`.
pub fn shard_of(key: &impl std::hash::Hash, n: usize) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h =
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key);
    usize::try_from(h)
        .unwrap_or(0)
        .checked_rem(n.max(1))
        .unwrap_or(0)
}

impl Group {
    /// Starts the committers on `db` (one per writer it allows); they run until the last
    /// handle is dropped.
    pub fn start(db: Db) -> Group {
        let shards: Vec<mpsc::Sender<Work>> = (0..db.writers())
            .map(|_| {
                let (tx, rx) = mpsc::channel(MAX_BATCH.saturating_mul(4));
                tokio::spawn(commit_loop(db.clone(), rx));
                tx
            })
            .collect();
        Group {
            shards: shards.into(),
        }
    }

    /// Runs `work` in the next group commit of the committer that takes `key`'s work, and
    /// returns its result once that commit is durable (or the work's error, with nothing of
    /// it written).
    pub async fn run<T, E, F>(
        &self,
        key: &impl std::hash::Hash,
        work: F,
    ) -> Result<T, GroupError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        let (done, wait) = oneshot::channel::<Result<T, GroupError<E>>>();
        let piece: Work = Box::new(move |conn| {
            Box::pin(async move {
                let result = work(conn).await;
                let keep = result.is_ok();
                let finish: Finish = Box::new(move |committed| {
                    let answer = match (result, committed) {
                        (Ok(v), Ok(())) => Ok(v),
                        (Ok(_), Err(e)) => Err(GroupError::Commit(e)),
                        (Err(e), _) => Err(GroupError::Work(e)),
                    };
                    let _ = done.send(answer);
                });
                (keep, finish)
            })
        });
        let shard = self
            .shards
            .get(shard_of(key, self.shards.len()))
            .ok_or(GroupError::Stopped)?;
        shard.send(piece).await.map_err(|_| GroupError::Stopped)?;
        wait.await.unwrap_or(Err(GroupError::Stopped))
    }
}

/// Waits for the next caller, then takes every one already waiting behind it, up to `max`:
/// the batch a group commit writes. Under load the batch is whatever gathered during the
/// previous commit; at rest it is one caller, who waits for no one.
pub async fn next_batch<T>(rx: &mut mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

async fn commit_loop(db: Db, mut rx: mpsc::Receiver<Work>) {
    while let Some(batch) = next_batch(&mut rx, MAX_BATCH).await {
        metrics::histogram!("railgate_group_commit_size")
            .record(f64::from(u32::try_from(batch.len()).unwrap_or(u32::MAX)));
        let mut finishes: Vec<Finish> = Vec::with_capacity(batch.len());
        let outcome = run_batch(&db, batch, &mut finishes).await;
        let committed = outcome.map_err(|e| {
            tracing::error!(error = %e, pieces = finishes.len(), "A group commit failed");
            e.to_string()
        });
        for f in finishes {
            f(committed.clone());
        }
    }
}

/// Runs every piece in its own savepoint of one transaction and commits. A piece that never
/// ran (the transaction failed first) is dropped, and its caller hears that the committer
/// could not take it.
async fn run_batch(
    db: &Db,
    batch: Vec<Work>,
    finishes: &mut Vec<Finish>,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    // One round trip between two pieces: the last one's savepoint released (or rolled back)
    // and the next one's taken in the same script. The commit releases the last.
    let mut between = "SAVEPOINT piece";
    for work in batch {
        tx.execute_script(between).await?;
        let (keep, finish) = work(&mut tx).await;
        finishes.push(finish);
        between = if keep {
            "RELEASE SAVEPOINT piece; SAVEPOINT piece"
        } else {
            "ROLLBACK TO SAVEPOINT piece; RELEASE SAVEPOINT piece; SAVEPOINT piece"
        };
    }
    if between.starts_with("ROLLBACK") {
        tx.execute_script("ROLLBACK TO SAVEPOINT piece; RELEASE SAVEPOINT piece")
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
