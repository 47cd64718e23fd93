//! Group commits: many callers' writes share one transaction, each answered after the commit.
//! What they must keep: a caller's failure is its own (the others still commit), and
//! concurrent creates with one reference still make exactly one payment.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use futures_util::future::BoxFuture;
use railgate::store::group::{Group, GroupError, NoTail, Tail};
use railgate::store::{Conn, Db, StoreError};

/// A tail that writes the rows its pieces leave at the end of their batch, and fails the
/// whole batch on a row named "poison" (as a bad change fails `engine::apply_many`).
#[derive(Default)]
struct Probe {
    now: bool,
    rows: Vec<String>,
}

impl Probe {
    async fn write(rows: Vec<String>, conn: &mut Conn) -> Result<(), StoreError> {
        for id in rows {
            if id == "poison" {
                return Err(StoreError::Corrupt("a poisoned row".into()));
            }
            railgate::store::sql::query("INSERT INTO group_probe (id) VALUES ($1)")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn leave(&mut self, conn: &mut Conn, id: String) -> Result<(), StoreError> {
        if self.now {
            return Probe::write(vec![id], conn).await;
        }
        self.rows.push(id);
        Ok(())
    }
}

impl Tail for Probe {
    type Mark = usize;
    fn mark(&self) -> usize {
        self.rows.len()
    }
    fn rewind(&mut self, mark: usize) {
        self.rows.truncate(mark);
    }
    fn one_by_one(&mut self) {
        self.now = true;
    }
    fn finish(self, conn: &mut Conn) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(Probe::write(self.rows, conn))
    }
}

/// A migrated database with an empty `group_probe` table; `None` where the store is absent.
async fn probe_db(store: Store) -> Option<Db> {
    let url = database_url(store).await?;
    let db = Db::connect(&url, 4).await.unwrap();
    db.migrate().await.unwrap();
    railgate::store::sql::query("CREATE TABLE group_probe (id TEXT PRIMARY KEY)")
        .execute(db.pool())
        .await
        .unwrap();
    Some(db)
}

both_stores!(
    a_failing_piece_fails_alone_and_the_others_commit,
    |store| async move {
        let Some(db) = probe_db(store).await else {
            return;
        };
        let group = Group::<NoTail>::start(db.clone());
        // Sixty writers at once; number 13 writes a row that is already there.
        railgate::store::sql::query("INSERT INTO group_probe (id) VALUES ('taken')")
            .execute(db.pool())
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..60 {
            let group = group.clone();
            tasks.spawn(async move {
                let id = if i == 13 {
                    "taken".to_owned()
                } else {
                    format!("row-{i}")
                };
                let r = group
                    .run(&i, move |conn, _tail| {
                        Box::pin(async move {
                            railgate::store::sql::query("INSERT INTO group_probe (id) VALUES ($1)")
                                .bind(id)
                                .execute(conn)
                                .await
                                .map(|_| i)
                        })
                    })
                    .await;
                (i, r)
            });
        }
        let mut ok = 0;
        while let Some(done) = tasks.join_next().await {
            let (i, r) = done.unwrap();
            match r {
                Ok(n) => {
                    assert_eq!(n, i);
                    ok += 1;
                }
                Err(GroupError::Work(e)) => {
                    assert_eq!(i, 13, "only the duplicate fails: {e}");
                }
                Err(e) => panic!("piece {i}: {e}"),
            }
        }
        assert_eq!(ok, 59);
        // Every answered piece is durable: its row is there, and the failed one left nothing.
        let rows: i64 = railgate::store::sql::query_scalar("SELECT COUNT(*) FROM group_probe")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(rows, 60, "59 new rows and the one that was there");
        db.close().await;
    }
);

both_stores!(
    pieces_that_write_nothing_share_the_batch_with_those_that_do,
    |store| async move {
        let Some(db) = probe_db(store).await else {
            return;
        };
        // A piece's savepoint is taken only before its first statement: pieces that run none
        // (some failing) sit between ones that write (one failing on a duplicate), in batches.
        let group = Group::<NoTail>::start(db.clone());
        railgate::store::sql::query("INSERT INTO group_probe (id) VALUES ('taken')")
            .execute(db.pool())
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..90 {
            let group = group.clone();
            tasks.spawn(async move {
                let r = group
                    .run(&0, move |conn, _tail| {
                        Box::pin(async move {
                            match i % 3 {
                                // Writes nothing and succeeds.
                                0 => Ok(i),
                                // Writes nothing and fails.
                                1 => Err(format!("piece {i} refused")),
                                // Writes a row, then fails when it is 14's (a duplicate).
                                _ => {
                                    let id = if i == 14 {
                                        "taken".to_owned()
                                    } else {
                                        format!("row-{i}")
                                    };
                                    railgate::store::sql::query(
                                        "INSERT INTO group_probe (id) VALUES ($1)",
                                    )
                                    .bind(id)
                                    .execute(&mut *conn)
                                    .await
                                    .map_err(|e| e.to_string())?;
                                    if i == 20 {
                                        // Wrote, then fails: its row must go.
                                        return Err("piece 20 changed its mind".to_owned());
                                    }
                                    Ok(i)
                                }
                            }
                        })
                    })
                    .await;
                (i, r)
            });
        }
        let mut ok = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (i, r) = done.unwrap();
            match r {
                Ok(n) => {
                    assert_eq!(n, i);
                    ok.push(i);
                }
                Err(GroupError::Work(_)) => {
                    assert!(i % 3 == 1 || i == 14 || i == 20, "piece {i} failed");
                }
                Err(e) => panic!("piece {i}: {e}"),
            }
        }
        assert_eq!(ok.len(), 30 + 28);
        let mut rows: Vec<String> =
            railgate::store::sql::query_scalar("SELECT id FROM group_probe WHERE id <> 'taken'")
                .fetch_all(db.pool())
                .await
                .unwrap();
        rows.sort();
        let mut want: Vec<String> = (0..90)
            .filter(|i| i % 3 == 2 && *i != 14 && *i != 20)
            .map(|i| format!("row-{i}"))
            .collect();
        want.sort();
        assert_eq!(
            rows, want,
            "every written piece that succeeded, and nothing else"
        );
        db.close().await;
    }
);

both_stores!(
    concurrent_creates_with_one_reference_make_one_payment,
    |store| async move {
        let Some(app) = spawn_app_with(store, |cfg| cfg.dispatch.enabled = false).await else {
            return;
        };
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let http = app.http.clone();
            let url = app.url("/v1/disbursements");
            let key = app.key.clone();
            tasks.spawn(async move {
                let resp = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&disbursement("SAME-REF", "255712345601", "10.00"))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let v: serde_json::Value = resp.json().await.unwrap();
                (status, v)
            });
        }
        let mut created = Vec::new();
        let mut refused = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (status, v) = done.unwrap();
            match status {
                201 => created.push(v),
                409 => refused.push(v),
                other => panic!("{other}: {v}"),
            }
        }
        assert_eq!(created.len(), 1, "{created:?}");
        let id = created[0]["id"].as_str().unwrap();
        for r in &refused {
            assert_eq!(r["existing_payment_id"], id, "{r}");
        }
        // The one created is queued with its two history lines and its dispatch job.
        let p = app.payment(id).await;
        assert_eq!(p["state"], "queued", "{p}");
        assert_eq!(p["history"].as_array().unwrap().len(), 2, "{p}");
        assert_eq!(p["history"][0]["to"], "received", "{p}");
        assert_eq!(app.count("payments").await, 1);
        assert_eq!(app.count("jobs").await, 1);
        app.stop().await;
    }
);

// What pieces leave for the end of their batch is written with it; a tail that fails fails
// its whole batch (nothing of it written, every caller told), and the batches after it run
// each piece's part as it is left, so that a caller sending again gets its row written while
// the poisoned one fails alone.
both_stores!(
    a_failing_tail_fails_its_batch_and_then_only_its_piece,
    |store| async move {
        let Some(db) = probe_db(store).await else {
            return;
        };
        let group = Group::<Probe>::start(db.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let group = group.clone();
            tasks.spawn(async move {
                let id = if i == 7 {
                    "poison".to_owned()
                } else {
                    format!("row-{i}")
                };
                // A caller told the commit failed sends again, as a rail does.
                let mut tries = 0;
                loop {
                    tries += 1;
                    let id = id.clone();
                    let r = group
                        .run(&0, move |conn, tail: &mut Probe| {
                            Box::pin(async move { tail.leave(conn, id).await })
                        })
                        .await;
                    match r {
                        Err(GroupError::Commit(_)) if tries < 5 => continue,
                        other => return (i, other),
                    }
                }
            });
        }
        let mut ok = 0;
        while let Some(done) = tasks.join_next().await {
            let (i, r) = done.unwrap();
            match r {
                Ok(()) => ok += 1,
                Err(GroupError::Work(e)) => assert_eq!(i, 7, "only the poison fails: {e}"),
                Err(e) => panic!("piece {i}: {e}"),
            }
        }
        assert_eq!(ok, 39);
        let rows: Vec<String> =
            railgate::store::sql::query_scalar("SELECT id FROM group_probe ORDER BY id")
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(rows.len(), 39, "{rows:?}");
        assert!(!rows.contains(&"poison".to_owned()));
        db.close().await;
    }
);
