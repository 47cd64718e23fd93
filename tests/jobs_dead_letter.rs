//! Jobs across versions and the dead letter. A job of a kind this build does not know (written
//! by a newer build sharing the database) is never claimed: it waits, untouched, for the build
//! that knows it. A job whose run keeps failing is dead-lettered after `dead_letter_after`
//! failures in a row, shown to the operator (`/v1/admin/jobs/dead`, `/metrics`), never claimed
//! again, and requeued on the operator's word.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use railgate::store::jobs::{self, JobKind};
use railgate::store::{keys, now_micros};
use serde_json::{json, Value};
use std::time::Duration;

/// The columns of a job's row that a claim or a run would change.
#[derive(sqlx::FromRow)]
struct JobRow {
    tries: i64,
    failures: i64,
    version: i64,
    lease_until: Option<i64>,
    leased_by: Option<String>,
    last_error: Option<String>,
    dead_at: Option<i64>,
}

/// The job's row as stored, as JSON (easy to compare and to print).
async fn row(app: &TestApp, id: &str) -> Option<Value> {
    let r: Option<JobRow> = railgate::store::sql::query_as(
        "SELECT tries, failures, version, lease_until, leased_by, last_error, dead_at \
         FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(app.db.pool())
    .await
    .unwrap();
    r.map(|r| {
        json!({"tries": r.tries, "failures": r.failures, "version": r.version,
               "lease_until": r.lease_until, "leased_by": r.leased_by,
               "last_error": r.last_error, "dead_at": r.dead_at})
    })
}

/// Polls (bounded) until the job's row satisfies `done`; returns the last row either way.
async fn wait_row(app: &TestApp, id: &str, done: impl Fn(&Option<Value>) -> bool) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = row(app, id).await;
        if done(&r) || tokio::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Jobs waiting, polled (bounded) until it is `n`: a finished payment's job may run once more
/// (to find it final) before it is gone.
async fn depth_settles_at(app: &TestApp, n: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d: i64 = jobs::backlog(&app.db, railgate::store::now_micros())
            .await
            .unwrap()
            .iter()
            .map(|b| b.waiting)
            .sum();
        if d == n || tokio::time::Instant::now() > deadline {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn insert_raw(app: &TestApp, id: &str, kind: &str, payment_id: Option<&str>, payload: &str) {
    railgate::store::sql::query(
        "INSERT INTO jobs (id, kind, payment_id, payload, run_at, created_at) \
         VALUES ($1, $2, $3, $4, 0, 0)",
    )
    .bind(id)
    .bind(kind)
    .bind(payment_id)
    .bind(payload)
    .execute(app.db.pool())
    .await
    .unwrap();
}

async fn insert_follow_up(app: &TestApp, payload: &str) -> String {
    let mut conn = app.db.pool().acquire().await.unwrap();
    jobs::insert(
        &mut conn,
        JobKind::FollowUp,
        None,
        None,
        Some(payload),
        now_micros(),
    )
    .await
    .unwrap()
    .to_string()
}

fn follow_up_to(rail: &str) -> String {
    json!({"rail": rail, "outbound": {"method": "PUT", "url": "http://127.0.0.1:9/quotes/1",
           "headers": [], "body": []}})
    .to_string()
}

both_stores!(
    jobs_of_unknown_kinds_are_never_claimed,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        // Due since the epoch, so that it comes first in every claim's order.
        let id = uuid::Uuid::now_v7().to_string();
        insert_raw(&app, &id, "from_a_newer_build", None, "{}").await;
        let before = row(&app, &id).await.unwrap();
        // The dispatcher runs: claims, drives and completes payments while the job is due.
        for i in 0..3 {
            let p = app
                .disburse(&format!("NEWER-{i}"), "255712345600", "10.00")
                .await;
            let p = app.wait_final(p["id"].as_str().unwrap()).await;
            assert_eq!(p["state"], "completed", "{p}");
        }
        let after = row(&app, &id).await.unwrap();
        assert_eq!(after, before, "the unknown job was touched");
        assert_eq!(after["tries"], 0);
        assert!(after["lease_until"].is_null() && after["dead_at"].is_null());
        // It waits for the build that knows it: not dead, still counted as waiting.
        let (s, v) = app.get("/v1/admin/jobs/dead", &app.key).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["data"], json!([]));
        assert_eq!(depth_settles_at(&app, 1).await, 1);
        app.stop().await;
    }
);

both_stores!(
    failing_jobs_are_dead_lettered_and_requeued,
    |store| async move {
        let Some(app) = spawn_app_with(store, |cfg| cfg.dispatch.dead_letter_after = 3).await
        else {
            return;
        };
        // Two runs that always err: a payload that does not parse, a rail that is not configured.
        let unparsable = insert_follow_up(&app, "{not json").await;
        let no_rail = insert_follow_up(&app, &follow_up_to("gone")).await;
        // And a row this build cannot read (its payment id is no UUID): dead at its first claim,
        // never run with a guess.
        let unreadable = uuid::Uuid::now_v7().to_string();
        insert_raw(&app, &unreadable, "payment", Some("not-a-uuid"), "").await;

        for id in [&unparsable, &no_rail, &unreadable] {
            let r = wait_row(&app, id, |r| {
                r.as_ref().is_some_and(|r| !r["dead_at"].is_null())
            })
            .await;
            assert!(
                r.as_ref().is_some_and(|r| !r["dead_at"].is_null()),
                "{id} not dead: {r:?}"
            );
        }
        let r = row(&app, &no_rail).await.unwrap();
        assert_eq!(
            (r["failures"].as_i64(), r["tries"].as_i64()),
            (Some(3), Some(3)),
            "{r}"
        );
        assert!(r["lease_until"].is_null(), "{r}");
        assert!(
            r["last_error"]
                .as_str()
                .unwrap()
                .contains("rail 'gone' is not configured"),
            "{r}"
        );
        let r = row(&app, &unparsable).await.unwrap();
        assert_eq!(r["failures"], 3, "{r}");
        assert!(
            r["last_error"]
                .as_str()
                .unwrap()
                .contains("bad follow-up payload"),
            "{r}"
        );
        let r = row(&app, &unreadable).await.unwrap();
        assert_eq!(
            (r["failures"].as_i64(), r["tries"].as_i64()),
            (Some(0), Some(1)),
            "{r}"
        );
        assert!(
            r["last_error"]
                .as_str()
                .unwrap()
                .contains("payment_id is not a UUID"),
            "{r}"
        );

        // Dead means never claimed: payments flow, the dead stay as they are.
        let dead_rows = [
            row(&app, &unparsable).await,
            row(&app, &no_rail).await,
            row(&app, &unreadable).await,
        ];
        let p = app.disburse("DEAD-1", "255712345600", "10.00").await;
        let p = app.wait_final(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "completed", "{p}");
        let now_rows = [
            row(&app, &unparsable).await,
            row(&app, &no_rail).await,
            row(&app, &unreadable).await,
        ];
        assert_eq!(now_rows, dead_rows);
        assert_eq!(
            depth_settles_at(&app, 0).await,
            0,
            "dead jobs are not waiting"
        );

        // The operator's listing, oldest first, a page at a time.
        let (s, v) = app.get("/v1/admin/jobs/dead", &app.key).await;
        assert_eq!(s, 200, "{v}");
        let data = v["data"].as_array().unwrap();
        let ids: Vec<&str> = data.iter().map(|j| j["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            [unparsable.as_str(), no_rail.as_str(), unreadable.as_str()]
        );
        let j = &data[1];
        assert_eq!(j["kind"], "follow_up");
        assert!(j["payment_id"].is_null());
        assert_eq!(
            (j["tries"].as_i64(), j["failures"].as_i64()),
            (Some(3), Some(3))
        );
        assert!(j["last_error"].as_str().unwrap().contains("not configured"));
        assert!(
            j["dead_since"].as_str().is_some_and(|t| t.len() >= 20),
            "{j}"
        );
        assert_eq!(data[2]["kind"], "payment");
        assert_eq!(data[2]["payment_id"], "not-a-uuid");
        assert!(v["next_cursor"].is_null());
        let (s, v) = app.get("/v1/admin/jobs/dead?limit=2", &app.key).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        let cursor = v["next_cursor"].as_str().unwrap().to_owned();
        let (s, v) = app
            .get(
                &format!("/v1/admin/jobs/dead?limit=2&cursor={cursor}"),
                &app.key,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["data"][0]["id"], unreadable.as_str());
        let (s, v) = app.get("/v1/admin/jobs/dead?limit=0", &app.key).await;
        assert_eq!(
            (s, v["errors"][0]["field"].as_str()),
            (400, Some("limit")),
            "{v}"
        );

        // Jobs are the gateway's, not a client's: a client's admin key does not reach them.
        let acme = keys::ensure_client(&app.db, "acme").await.unwrap();
        let admin = keys::generate_key();
        keys::insert_key(&app.db, acme, &admin, &["admin"], None)
            .await
            .unwrap();
        let (s, v) = app.get("/v1/admin/jobs/dead", &admin).await;
        assert_eq!(
            (s, v["type"].as_str()),
            (403, Some("/problems/forbidden")),
            "{v}"
        );
        let (s, _) = app
            .post(
                &format!("/v1/admin/jobs/dead/{no_rail}/retry"),
                &admin,
                &json!({}),
                None,
            )
            .await;
        assert_eq!(s, 403);

        // In /metrics: how many are dead now, and how many were ever moved there.
        let mut text = String::new();
        for _ in 0..20 {
            // The gauge is process-wide and the other store's test sets it too (to the same 3).
            text = app.metrics().await;
            if text.contains("railgate_jobs_dead_letter 3") {
                break;
            }
        }
        assert!(text.contains("railgate_jobs_dead_letter 3"), "{text}");
        let moved: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("railgate_jobs_dead_lettered_total "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(moved >= 3.0, "{text}");

        // Bad ids are problems, and nothing moves.
        for bad in ["no-such-job", &uuid::Uuid::now_v7().to_string()] {
            let r = app
                .http
                .post(app.url(&format!("/v1/admin/jobs/dead/{bad}/retry")))
                .bearer_auth(&app.key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404);
            assert_eq!(
                r.headers()["content-type"].to_str().unwrap(),
                "application/problem+json"
            );
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["type"], "/problems/not-found", "{v}");
        }

        // The operator fixes the cause (here: the follow-up now names a configured rail) and
        // requeues it; it runs at once and is done. The same request again is replayed.
        railgate::store::sql::query("UPDATE jobs SET payload = $1 WHERE id = $2")
            .bind(follow_up_to("mock"))
            .bind(&no_rail)
            .execute(app.db.pool())
            .await
            .unwrap();
        let path = format!("/v1/admin/jobs/dead/{no_rail}/retry");
        let (s, v) = app
            .post(&path, &app.key, &json!({}), Some("requeue-1"))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (v["id"].as_str(), v["kind"].as_str()),
            (Some(no_rail.as_str()), Some("follow_up"))
        );
        let (s, again) = app
            .post(&path, &app.key, &json!({}), Some("requeue-1"))
            .await;
        assert_eq!((s, &again), (200, &v));
        let gone = wait_row(&app, &no_rail, Option::is_none).await;
        assert!(gone.is_none(), "the requeued job did not run: {gone:?}");
        // Requeued without a fix, a job fails its way back to the dead letter, counted afresh.
        let (s, _) = app
            .post(
                &format!("/v1/admin/jobs/dead/{unparsable}/retry"),
                &app.key,
                &json!({}),
                None,
            )
            .await;
        assert_eq!(s, 200);
        let r = wait_row(&app, &unparsable, |r| {
            r.as_ref().is_some_and(|r| !r["dead_at"].is_null())
        })
        .await
        .unwrap();
        assert_eq!(
            (r["failures"].as_i64(), r["tries"].as_i64()),
            (Some(3), Some(3)),
            "{r}"
        );
        // A live job (due in an hour) is not in the dead letter.
        let live = {
            let mut conn = app.db.pool().acquire().await.unwrap();
            let at = now_micros() + 3_600_000_000;
            jobs::insert(&mut conn, JobKind::FollowUp, None, None, Some("{}"), at)
                .await
                .unwrap()
        };
        let (s, _) = app
            .post(
                &format!("/v1/admin/jobs/dead/{live}/retry"),
                &app.key,
                &json!({}),
                None,
            )
            .await;
        assert_eq!(s, 404);
        let (_, v) = app.get("/v1/admin/jobs/dead", &app.key).await;
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [unparsable.as_str(), unreadable.as_str()]);
        app.stop().await;
    }
);

both_stores!(
    a_build_starts_on_a_database_a_newer_build_migrated,
    |store| async move {
        let Some(url) = database_url(store).await else {
            return;
        };
        let db = railgate::store::Db::connect(&url, 2).await.unwrap();
        db.migrate().await.unwrap();
        // A newer build applied a migration this one does not know.
        railgate::store::sql::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99999, 'from a newer build', TRUE, $1, 1)",
        )
        .bind(vec![0u8; 48])
        .execute(db.pool())
        .await
        .unwrap();
        db.migrate().await.unwrap();
        assert!(db.migrations_applied().await.unwrap());
        db.close().await;
    }
);
