//! Write transactions, and SQLite's one writer.
//!
//! SQLite lets one connection write at a time. This process's write transactions therefore
//! take turns ([`Writer`]), in the order they asked, instead of retrying in SQLite's busy
//! handler (which sleeps). A turn ends with a commit, and a commit waits for the disk; while
//! it does, the next writers wait for their turn. So that they wait less, a transaction that
//! finishes while others are queued does not commit: it leaves its transaction open to the
//! next in line (a *chain*), which carries on in it under a savepoint of its own, and so on,
//! until one finishes with no one queued, or the chain is [`MAX_LINKS`] long; that one
//! commits for them all. Each link's `commit` returns only once the shared commit is on disk
//! (or with its error): nothing is acknowledged before it is durable, exactly as if each had
//! committed alone. A link that rolls back, or is dropped unfinished, rolls back to its own
//! savepoint and leaves the others' writes in place.
//!
//! What every link saves is its own `BEGIN IMMEDIATE` and its own commit (the fsync): under
//! load, the group committers of creates, answers, first sends, callbacks and job claims
//! share their commits with each other, as their own pieces already share one within each.
//!
//! PostgreSQL has no single writer: its transactions are plain ones.

use super::sql::{Conn, Pool};
use super::{Result, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

/// The most transactions one SQLite commit carries: a bound on how long the first of them
/// waits for its commit.
pub const MAX_LINKS: usize = 8;

/// How often a link waiting for the shared commit checks that the chain was taken up (the
/// writer it was left to may have stopped waiting).
const RESCUE_EVERY: Duration = Duration::from_millis(25);

/// What a link hears of the shared commit.
type Outcome = std::result::Result<(), String>;

/// A transaction left open for the next writer, with the links waiting for its commit.
struct Chain {
    conn: Conn,
    waiting: Vec<oneshot::Sender<Outcome>>,
}

/// SQLite's writer turn, and the chain the last turn left.
pub struct Writer {
    turn: Arc<Mutex<Option<Chain>>>,
    /// Writers waiting for the turn.
    queued: AtomicUsize,
    /// The writer's own connection (a pool of one): every write transaction runs on it. In WAL mode a connection throws its whole page cache away whenever another
    /// connection committed since its last read, so writes that moved from connection to
    /// connection read each page they touch from the file again; one connection that does all
    /// the writing keeps its cache.
    own: Pool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish()
    }
}

/// Counts a writer as queued for as long as it is, however its wait ends.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(n: &'a AtomicUsize) -> Queued<'a> {
        n.fetch_add(1, Ordering::SeqCst);
        Queued(n)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A SQLite transaction's hold on the writer.
struct Link {
    turn: OwnedMutexGuard<Option<Chain>>,
    writer: Arc<Writer>,
    /// The earlier links of the chain this transaction joined, waiting for its commit.
    waiting: Vec<oneshot::Sender<Outcome>>,
    /// It joined a chain (its writes are under the savepoint `link`), rather than began it.
    joined: bool,
}

/// A write transaction. On SQLite it also holds the process's writer turn until it commits,
/// rolls back or is dropped.
pub struct Tx {
    /// `None` only once `commit` or `rollback` took it.
    inner: Option<Conn>,
    link: Option<Link>,
}

impl Writer {
    /// A writer whose transactions all run on `own`, a pool of one connection.
    pub(super) fn new(own: Pool) -> Writer {
        Writer {
            turn: Arc::default(),
            queued: AtomicUsize::new(0),
            own,
        }
    }

    /// Closes the writer's own connection.
    pub(super) async fn close(&self) {
        self.own.close().await;
    }

    /// Waits for the turn (at most `timeout`), then begins a transaction, or joins the one
    /// the last turn left open.
    pub(super) async fn begin(self: &Arc<Self>, timeout: Duration) -> Result<Tx> {
        let turn = {
            let _queued = Queued::new(&self.queued);
            tokio::time::timeout(timeout, self.turn.clone().lock_owned())
                .await
                .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))?
        };
        let mut link = Link {
            turn,
            writer: self.clone(),
            waiting: Vec::new(),
            joined: false,
        };
        if let Some(chain) = link.turn.take() {
            let mut conn = chain.conn;
            link.waiting = chain.waiting;
            link.joined = true;
            if let Err(e) = conn.execute_script("SAVEPOINT link").await {
                // The chain's connection failed: nothing of it can commit.
                fail_all(link.waiting, &e);
                return Err(e.into());
            }
            return Ok(Tx {
                inner: Some(conn),
                link: Some(link),
            });
        }
        super::count_write();
        let conn = self.own.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Tx {
            inner: Some(conn),
            link: Some(link),
        })
    }
}

fn fail_all(waiting: Vec<oneshot::Sender<Outcome>>, e: &sqlx::Error) {
    let why = e.to_string();
    for w in waiting {
        let _ = w.send(Err(why.clone()));
    }
}

fn shared_commit_failed(why: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the shared commit failed: {why}"
    )))
}

impl Tx {
    /// A plain transaction (PostgreSQL's).
    pub(super) fn plain(conn: Conn) -> Tx {
        Tx {
            inner: Some(conn),
            link: None,
        }
    }

    /// Commits; returns once the commit is on disk (on SQLite it may be shared with the
    /// writers queued behind this one).
    pub async fn commit(mut self) -> std::result::Result<(), sqlx::Error> {
        let Some(conn) = self.inner.take() else {
            return Ok(());
        };
        match self.link.take() {
            None => conn.commit().await,
            Some(link) => end(conn, link, true).await,
        }
    }

    /// Rolls back what this transaction wrote (on SQLite, only its own link of a chain).
    pub async fn rollback(mut self) -> std::result::Result<(), sqlx::Error> {
        let Some(mut conn) = self.inner.take() else {
            return Ok(());
        };
        match self.link.take() {
            Some(link) if link.joined => {
                if let Err(e) = conn.execute_script("ROLLBACK TO SAVEPOINT link").await {
                    fail_all(link.waiting, &e);
                    return Err(e);
                }
                end(conn, link, false).await
            }
            _ => conn.rollback().await,
        }
    }
}

/// Ends a link: leaves the transaction to the next writer in line, or commits it. With
/// `wait`, returns once the commit (shared or its own) is durable.
async fn end(conn: Conn, link: Link, wait: bool) -> std::result::Result<(), sqlx::Error> {
    let Link {
        mut turn,
        writer,
        mut waiting,
        ..
    } = link;
    if writer.queued.load(Ordering::SeqCst) > 0 && waiting.len() < MAX_LINKS.saturating_sub(1) {
        let (done, outcome) = oneshot::channel();
        if wait {
            waiting.push(done);
        }
        *turn = Some(Chain { conn, waiting });
        drop(turn);
        if !wait {
            return Ok(());
        }
        return await_commit(&writer, outcome).await;
    }
    let result = commit_for_all(conn, waiting).await;
    drop(turn);
    result
}

/// Commits a chain's transaction and tells every link waiting on it how that went.
async fn commit_for_all(
    conn: Conn,
    waiting: Vec<oneshot::Sender<Outcome>>,
) -> std::result::Result<(), sqlx::Error> {
    let result = conn.commit().await;
    match &result {
        Ok(()) => waiting.into_iter().for_each(|w| {
            let _ = w.send(Ok(()));
        }),
        Err(e) => fail_all(waiting, e),
    }
    result
}

/// Waits for the commit of the chain this link joined. Should the chain lie untaken (the
/// writer it was left to stopped waiting, and no other came), commits it.
async fn await_commit(
    writer: &Arc<Writer>,
    mut outcome: oneshot::Receiver<Outcome>,
) -> std::result::Result<(), sqlx::Error> {
    loop {
        tokio::select! {
            heard = &mut outcome => {
                return match heard {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(why)) => Err(shared_commit_failed(&why)),
                    Err(_) => Err(shared_commit_failed("its connection was dropped")),
                };
            }
            () = tokio::time::sleep(RESCUE_EVERY) => {
                if let Ok(mut turn) = writer.turn.clone().try_lock_owned() {
                    if let Some(chain) = turn.take() {
                        // Its outcome reaches this link through `outcome`, as every other's.
                        let _ = commit_for_all(chain.conn, chain.waiting).await;
                    }
                }
            }
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let (Some(mut conn), Some(link)) = (self.inner.take(), self.link.take()) else {
            // Finished, or PostgreSQL's: dropping the connection rolls back what is open.
            return;
        };
        if !link.joined {
            // It began the transaction and no one joined it yet: the connection rolls it back.
            return;
        }
        // A link of a chain: its own part is undone and the others' go on to their commit.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    match conn.execute_script("ROLLBACK TO SAVEPOINT link").await {
                        Ok(()) => {
                            let _ = end(conn, link, false).await;
                        }
                        Err(e) => fail_all(link.waiting, &e),
                    }
                });
            }
            // No runtime to finish it on: the whole chain is rolled back and its links hear so.
            Err(_) => drop((conn, link)),
        }
    }
}

impl std::ops::Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        match &self.inner {
            Some(c) => c,
            None => unreachable!("a transaction is used after its commit or rollback"),
        }
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        match &mut self.inner {
            Some(c) => c,
            None => unreachable!("a transaction is used after its commit or rollback"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{sql, Db};

    async fn store() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let url = format!("sqlite://{}", dir.path().join("chain.db").display());
        let db = Db::connect(&url, 4)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut conn = db
            .pool()
            .acquire()
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        conn.execute_script("CREATE TABLE t (v INTEGER NOT NULL)")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        (dir, db)
    }

    async fn insert(tx: &mut Tx, v: i64) {
        sql::query("INSERT INTO t (v) VALUES ($1)")
            .bind(v)
            .execute(tx)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
    }

    async fn stored(db: &Db) -> Vec<i64> {
        sql::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(db.pool())
            .await
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// The store's writer (SQLite always has one).
    fn writer(db: &Db) -> &Writer {
        db.writer
            .as_deref()
            .unwrap_or_else(|| unreachable!("a SQLite store has a writer"))
    }

    /// Waits until `n` writers queue for the turn.
    async fn queued(db: &Db, n: usize) {
        while writer(db).queued.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writers_share_one_commit_and_a_rolled_back_link_loses_only_its_own() {
        let (_dir, db) = store().await;
        let mut first = db.begin().await.unwrap_or_else(|e| unreachable!("{e}"));
        insert(&mut first, 1).await;
        let (d2, d3) = (db.clone(), db.clone());
        let second = tokio::spawn(async move {
            let mut tx = d2.begin().await?;
            insert(&mut tx, 2).await;
            tx.rollback().await.map_err(crate::store::StoreError::from)
        });
        queued(&db, 1).await;
        let third = tokio::spawn(async move {
            let mut tx = d3.begin().await?;
            insert(&mut tx, 3).await;
            tx.commit().await.map_err(crate::store::StoreError::from)
        });
        queued(&db, 2).await;
        // The first leaves its transaction to the queued writers and returns only once the
        // commit they share is durable.
        first.commit().await.unwrap_or_else(|e| unreachable!("{e}"));
        assert!(second.await.is_ok_and(|r| r.is_ok()));
        assert!(third.await.is_ok_and(|r| r.is_ok()));
        assert_eq!(stored(&db).await, vec![1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_dropped_unfinished_leaves_the_others_to_commit() {
        let (_dir, db) = store().await;
        let mut first = db.begin().await.unwrap_or_else(|e| unreachable!("{e}"));
        insert(&mut first, 1).await;
        let d2 = db.clone();
        let (joined, wait_joined) = oneshot::channel::<()>();
        let second = tokio::spawn(async move {
            let mut tx = d2.begin().await?;
            insert(&mut tx, 2).await;
            let _ = joined.send(());
            // Never finished: its task ends here (a cancelled request, an error's `?`).
            drop(tx);
            Ok::<(), crate::store::StoreError>(())
        });
        queued(&db, 1).await;
        let committed = tokio::spawn(async move { first.commit().await });
        assert!(wait_joined.await.is_ok());
        assert!(second.await.is_ok_and(|r| r.is_ok()));
        assert!(committed.await.is_ok_and(|r| r.is_ok()));
        assert_eq!(stored(&db).await, vec![1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chain_whose_next_writer_gave_up_is_still_committed() {
        let (_dir, db) = store().await;
        let mut first = db.begin().await.unwrap_or_else(|e| unreachable!("{e}"));
        insert(&mut first, 1).await;
        // A writer counted as queued that never takes its turn (its wait timed out after the
        // first looked).
        writer(&db).queued.fetch_add(1, Ordering::SeqCst);
        let committed = tokio::spawn(async move { first.commit().await });
        while writer(&db).turn.try_lock().map_or(true, |c| c.is_none()) {
            tokio::task::yield_now().await;
        }
        writer(&db).queued.fetch_sub(1, Ordering::SeqCst);
        assert!(committed.await.is_ok_and(|r| r.is_ok()));
        assert_eq!(stored(&db).await, vec![1]);
        // And the turn is free again.
        let next = db.begin().await.map(drop);
        assert!(next.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_writer_commits_on_its_own() {
        let (_dir, db) = store().await;
        let mut tx = db.begin().await.unwrap_or_else(|e| unreachable!("{e}"));
        insert(&mut tx, 7).await;
        tx.commit().await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(stored(&db).await, vec![7]);
        assert!(writer(&db).turn.try_lock().is_ok_and(|c| c.is_none()));
    }
}
