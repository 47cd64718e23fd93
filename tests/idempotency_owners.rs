//! An idempotency key left in flight by a dead process (killed mid-request) is retryable at
//! once, on both stores; one held by a live request still answers 409.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use railgate::store::{keys, now_micros, Kind};
use sha2::{Digest, Sha256};

/// The request's bytes and the fingerprint the gateway binds its key to.
fn request(reference: &str) -> (String, String) {
    let raw = disbursement(reference, "255712345600", "100.00").to_string();
    let mut h = Sha256::new();
    h.update(b"disbursement");
    h.update([0]);
    h.update(raw.as_bytes());
    (raw, hex::encode(h.finalize()))
}

/// A key in flight, as a request of `owner` that never finished leaves it.
async fn in_flight(app: &TestApp, key: &str, hash: &str, owner: &str) {
    let client = keys::ensure_client(&app.db, "acme").await.unwrap();
    railgate::store::sql::query(
        "INSERT INTO idempotency_keys (client_id, key, request_hash, created_at, owner) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(client.to_string())
    .bind(key)
    .bind(hash)
    .bind(now_micros())
    .bind(owner)
    .execute(app.db.pool())
    .await
    .unwrap();
}

async fn send(app: &TestApp, key: &str, raw: &str) -> (u16, serde_json::Value, bool) {
    let r = app
        .http
        .post(app.url("/v1/disbursements"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(raw.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let replayed = r.headers().contains_key("idempotent-replayed");
    (status, r.json().await.unwrap_or_default(), replayed)
}

both_stores!(a_dead_owners_key_is_retryable_at_once, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let (raw, hash) = request("IDEM-DEAD");
    // Its owner, another process, is gone: no heartbeat (PostgreSQL), not the running
    // instance (SQLite).
    let dead = uuid::Uuid::new_v4().to_string();
    in_flight(&app, "dead-owner", &hash, &dead).await;
    let (s, v, replayed) = send(&app, "dead-owner", &raw).await;
    assert_eq!(s, 201, "{v}");
    assert!(!replayed);
    // Its answer is now the key's.
    let (s, again, replayed) = send(&app, "dead-owner", &raw).await;
    assert_eq!(s, 201, "{again}");
    assert!(replayed);
    assert_eq!(again["id"], v["id"]);
    app.stop().await;
});

both_stores!(a_live_owners_key_is_still_in_flight, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let (raw, hash) = request("IDEM-LIVE");
    // Held by a request of the running gateway.
    let me = app.db.instance().to_string();
    in_flight(&app, "live-owner", &hash, &me).await;
    let (s, v, _) = send(&app, "live-owner", &raw).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["type"], "/problems/idempotency-in-flight", "{v}");
    app.stop().await;
});

// PostgreSQL, several instances: another live instance's key is its own; a stale one's is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instances_key_depends_on_its_heartbeat() {
    let Some(app) = spawn_app(Store::Postgres).await else {
        return;
    };
    assert_eq!(app.db.kind(), Kind::Postgres);
    let beat = |id: String, seen: i64| {
        let db = app.db.clone();
        async move {
            railgate::store::sql::query(
                "INSERT INTO instances (id, started_at, seen_at) VALUES ($1, $2, $2)",
            )
            .bind(id)
            .bind(seen)
            .execute(db.pool())
            .await
            .unwrap();
        }
    };
    let (raw, hash) = request("IDEM-OTHER");
    let alive = uuid::Uuid::new_v4().to_string();
    beat(alive.clone(), now_micros()).await;
    in_flight(&app, "other-alive", &hash, &alive).await;
    let (s, v, _) = send(&app, "other-alive", &raw).await;
    assert_eq!(s, 409, "{v}");

    // Not heard of for a minute: dead.
    let (raw, hash) = request("IDEM-STALE");
    let stale = uuid::Uuid::new_v4().to_string();
    beat(stale.clone(), now_micros() - 60_000_000).await;
    in_flight(&app, "other-stale", &hash, &stale).await;
    let (s, v, _) = send(&app, "other-stale", &raw).await;
    assert_eq!(s, 201, "{v}");

    // The gateway's own heartbeat is fresh while it runs.
    let seen: i64 =
        railgate::store::sql::query_scalar("SELECT seen_at FROM instances WHERE id = $1")
            .bind(app.db.instance().to_string())
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert!(now_micros() - seen < 5_000_000);
    app.stop().await;
}
