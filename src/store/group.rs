//! Group commit: many callers' writes in one transaction, each answered after the commit.
//!
//! A caller hands [`Group::run`] the work it would have done in a transaction of its own.
//! One task takes whatever work is waiting, runs each piece in a savepoint of one shared
//! transaction, commits once, and only then gives each caller its result. Work that fails
//! is rolled back to its savepoint and fails alone; the others still commit. Nothing is
//! acknowledged before it is durable, and while one commit is on its way to the disk the
//! next callers gather behind it, so under load many writes share one fsync.
//!
//! A piece may also leave work for the end of its batch (a [`Tail`]: the callbacks' payment
//! changes, applied together by set-based statements after every piece ran). A piece that
//! fails takes back what it left. If the tail fails, the whole batch fails (nothing of it is
//! written, every caller hears so and a rail sends again), and the next batches run their
//! pieces' tails one piece at a time, so that one bad change fails alone.

use super::{Db, StoreError};
use crate::store::Conn;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

/// The most pieces of work one commit takes: a bound on how long the write lock is held.
const MAX_BATCH: usize = 256;

/// Called after the commit with its outcome; sends the caller its result.
type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One piece of work: runs in a savepoint, says whether to keep it, and how to answer.
type Work<T> =
    Box<dyn for<'c> FnOnce(&'c mut Conn, &'c mut T) -> BoxFuture<'c, (bool, Finish)> + Send>;

/// Work the pieces of one batch leave for its end.
pub trait Tail: Default + Send + 'static {
    /// Where the tail stands, to take back what a failed piece left after it.
    type Mark: Copy + Send;
    fn mark(&self) -> Self::Mark;
    fn rewind(&mut self, mark: Self::Mark);
    /// From now on, each piece's part runs when it is left (the batches after a failed tail).
    fn one_by_one(&mut self);
    /// Runs what was left, in the batch's transaction, before its commit.
    fn finish(self, conn: &mut Conn) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// A tail that holds nothing.
#[derive(Default)]
pub struct NoTail;

impl Tail for NoTail {
    type Mark = ();
    fn mark(&self) {}
    fn rewind(&mut self, _mark: ()) {}
    fn one_by_one(&mut self) {}
    fn finish(self, _conn: &mut Conn) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Batches run one piece at a time after a tail failed.
const CAREFUL_BATCHES: u32 = 8;

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

pub struct Group<T: Tail = NoTail> {
    /// One committer per writer ([`Db::writers`]).
    shards: std::sync::Arc<[mpsc::Sender<Work<T>>]>,
}

impl<T: Tail> Clone for Group<T> {
    fn clone(&self) -> Self {
        Group {
            shards: self.shards.clone(),
        }
    }
}

impl<T: Tail> std::fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("committers", &self.shards.len())
            .finish()
    }
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

impl<T: Tail> Group<T> {
    /// Starts the committers on `db` (one per writer it allows); they run until the last
    /// handle is dropped.
    pub fn start(db: Db) -> Group<T> {
        let shards: Vec<mpsc::Sender<Work<T>>> = (0..db.writers())
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
    pub async fn run<R, E, F>(
        &self,
        key: &impl std::hash::Hash,
        work: F,
    ) -> Result<R, GroupError<E>>
    where
        R: Send + 'static,
        E: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn, &'c mut T) -> BoxFuture<'c, Result<R, E>> + Send + 'static,
    {
        let (done, wait) = oneshot::channel::<Result<R, GroupError<E>>>();
        let piece: Work<T> = Box::new(move |conn, tail| {
            Box::pin(async move {
                let result = work(conn, tail).await;
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

async fn commit_loop<T: Tail>(db: Db, mut rx: mpsc::Receiver<Work<T>>) {
    let mut careful: u32 = 0;
    while let Some(batch) = next_batch(&mut rx, MAX_BATCH).await {
        metrics::histogram!("railgate_group_commit_size")
            .record(f64::from(u32::try_from(batch.len()).unwrap_or(u32::MAX)));
        let mut finishes: Vec<Finish> = Vec::with_capacity(batch.len());
        let mut tail = T::default();
        if careful > 0 {
            careful = careful.saturating_sub(1);
            tail.one_by_one();
        }
        let outcome = run_batch(&db, batch, tail, &mut finishes).await;
        let committed = outcome.map_err(|e| {
            tracing::error!(error = %e, pieces = finishes.len(), "A group commit failed");
            if matches!(e, BatchError::Tail(_)) {
                careful = CAREFUL_BATCHES;
            }
            e.to_string()
        });
        for f in finishes {
            f(committed.clone());
        }
    }
}

/// Why a batch did not commit.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the batch's tail failed: {0}")]
    Tail(StoreError),
}

/// Runs every piece in its own savepoint of one transaction, then the tail they left, and
/// commits. A piece that never ran (the transaction failed first) is dropped, and its caller
/// hears that the committer could not take it.
///
/// A piece's savepoint is taken just before its first statement, in the same round trip as
/// what ends the previous one (`Conn::defer_script`): a piece that only leaves work to the
/// tail (a callback settled in memory) costs no round trip at all.
async fn run_batch<T: Tail>(
    db: &Db,
    batch: Vec<Work<T>>,
    mut tail: T,
    finishes: &mut Vec<Finish>,
) -> Result<(), BatchError> {
    let mut tx = db.begin().await?;
    // What ends the last savepoint taken, still to run (with the next one taken).
    let mut carry: Option<&str> = None;
    for work in batch {
        let take = carry.map_or_else(
            || "SAVEPOINT piece".to_owned(),
            |end| format!("{end}; SAVEPOINT piece"),
        );
        tx.defer_script(take);
        let mark = tail.mark();
        let (keep, finish) = work(&mut tx, &mut tail).await;
        finishes.push(finish);
        let took = tx.take_deferred().is_none();
        if !keep {
            tail.rewind(mark);
        }
        if took {
            carry = Some(if keep {
                "RELEASE SAVEPOINT piece"
            } else {
                "ROLLBACK TO SAVEPOINT piece; RELEASE SAVEPOINT piece"
            });
        }
    }
    // A savepoint released at the commit needs no statement of its own; one rolled back does.
    if let Some(end) = carry.filter(|e| e.starts_with("ROLLBACK")) {
        tx.execute_script(end).await?;
    }
    tail.finish(&mut tx).await.map_err(BatchError::Tail)?;
    tx.commit().await?;
    Ok(())
}
