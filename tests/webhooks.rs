//! Notifications to the core over real HTTP, on both stores: the event feed, webhook endpoints,
//! and deliveries to a receiver that checks every signature, is down for a while, and returns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use railgate::engine::Change;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// What the core's receiver got, in arrival order.
#[derive(Default)]
struct Inbox {
    secret: Option<String>,
    received: Vec<Received>,
    refused: usize,
}

#[derive(Debug, Clone)]
struct Received {
    id: String,
    kind: String,
    payment: Option<String>,
}

/// Verifies as a Standard Webhooks receiver does, written here independently of the gateway.
fn verified(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let Ok(ts_n) = ts.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - ts_n).abs() > 300 {
        return false;
    }
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    sig.split(' ').any(|s| s == expected)
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut inbox = inbox.lock().unwrap();
    let Some(secret) = inbox.secret.clone() else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    if !verified(&secret, &headers, &body) {
        inbox.refused += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        headers["webhook-id"].to_str().unwrap(),
        v["id"].as_str().unwrap()
    );
    inbox.received.push(Received {
        id: v["id"].as_str().unwrap().to_owned(),
        kind: v["type"].as_str().unwrap().to_owned(),
        payment: v["data"]["payment_id"].as_str().map(str::to_owned),
    });
    StatusCode::NO_CONTENT
}

async fn serve(listener: TcpListener, inbox: Arc<Mutex<Inbox>>) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(inbox);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

async fn fast_retries(store: Store) -> Option<TestApp> {
    spawn_app_with(store, |c| {
        c.notify.retry_min_ms = 100;
        c.notify.retry_max_ms = 600;
        c.notify.timeout_ms = 2_000;
    })
    .await
}

/// Every event of the feed, through its cursor, `limit` at a time.
async fn feed(app: &TestApp, key: &str, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let path = if after.is_empty() {
            format!("/v1/events?limit={limit}")
        } else {
            format!("/v1/events?limit={limit}&after={after}")
        };
        let (s, page) = app.get(&path, key).await;
        assert_eq!(s, 200, "{page}");
        let data = page["data"].as_array().unwrap().clone();
        after = page["next_cursor"].as_str().unwrap().to_owned();
        if data.is_empty() {
            return all;
        }
        all.extend(data);
        assert!(all.len() < 1000);
    }
}

/// The feed once it holds `n` events (on PostgreSQL an event shows once every transaction
/// older than its own has ended, which a busy shared server can delay).
async fn feed_of(app: &TestApp, key: &str, limit: usize, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let all = feed(app, key, limit).await;
        if all.len() >= n || tokio::time::Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn deliveries(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let (s, v) = app
        .get(&format!("/v1/webhooks/{endpoint}/deliveries"), &app.key)
        .await;
    assert_eq!(s, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

both_stores!(
    a_down_receiver_gets_every_event_signed_and_in_order,
    |store| async move {
        let Some(app) = fast_retries(store).await else {
            return;
        };
        // The receiver's port, with nothing listening on it yet: connections are refused.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let (s, hook) = app
            .post(
                "/v1/webhooks",
                &app.key,
                &json!({"url": format!("http://127.0.0.1:{port}/hooks"), "description": "core"}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{hook}");
        let secret = hook["secret"].as_str().unwrap().to_owned();
        let endpoint = hook["id"].as_str().unwrap().to_owned();

        let ok = app.disburse("W-00", "255712345600", "100.00").await;
        let failed = app.disburse("W-01", "255712345601", "100.00").await;
        let unknown_first = app.disburse("W-10", "255712345610", "100.00").await;
        let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
        for p in [&ok, &failed, &unknown_first] {
            app.wait_final(&id(p)).await;
        }
        // A refund of the completed one: payment.reversed follows payment.completed.
        let ok_id = uuid::Uuid::parse_str(&id(&ok)).unwrap();
        let mut tx = app.db.begin().await.unwrap();
        railgate::engine::apply(
            &mut tx,
            app.db.kind(),
            ok_id,
            Change::Reverse,
            "test: refunded",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();

        // Down: every delivery is tried and retried, none delivered.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ds = deliveries(&app, &endpoint).await;
            let retried = ds
                .iter()
                .filter(|d| d["tries"].as_i64().unwrap() >= 2)
                .count();
            if retried >= 1 && ds.len() == 5 {
                assert!(ds.iter().all(|d| d["status"] == "pending"), "{ds:?}");
                let tried = ds
                    .iter()
                    .find(|d| d["tries"].as_i64().unwrap() >= 2)
                    .unwrap();
                assert_eq!(tried["last_error"], "could not connect", "{tried}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no retries seen: {ds:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Back up.
        let inbox = Arc::new(Mutex::new(Inbox {
            secret: Some(secret),
            ..Inbox::default()
        }));
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let server = serve(listener, inbox.clone()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ds = deliveries(&app, &endpoint).await;
            if ds.iter().all(|d| d["status"] == "delivered") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not delivered: {ds:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let events = feed_of(&app, &app.key, 2, 5).await;
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        for k in [
            "payment.completed",
            "payment.failed",
            "payment.unknown",
            "payment.reversed",
        ] {
            assert!(kinds.contains(&k), "{kinds:?}");
        }
        assert_eq!(events.len(), 5, "{kinds:?}");
        let got = inbox.lock().unwrap().received.clone();
        assert_eq!(inbox.lock().unwrap().refused, 0);
        // Every event arrived, verified; a repeat would carry the same webhook-id.
        for e in &events {
            assert!(
                got.iter().any(|r| r.id == e["id"].as_str().unwrap()),
                "{e} never arrived"
            );
        }
        // Per payment, the first arrivals follow the order the events happened in.
        for p in [&ok, &failed, &unknown_first] {
            let pid = id(p);
            let want: Vec<&str> = events
                .iter()
                .filter(|e| e["data"]["payment_id"] == pid.as_str())
                .map(|e| e["type"].as_str().unwrap())
                .collect();
            let mut arrived: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for r in got
                .iter()
                .filter(|r| r.payment.as_deref() == Some(pid.as_str()))
            {
                if seen.insert(r.id.clone()) {
                    arrived.push(r.kind.clone());
                }
            }
            assert_eq!(arrived, want, "payment {pid}");
        }
        let unknown_order: Vec<&str> = events
            .iter()
            .filter(|e| e["data"]["payment_id"] == id(&unknown_first).as_str())
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(unknown_order, ["payment.unknown", "payment.completed"]);
        let ds = deliveries(&app, &endpoint).await;
        assert!(
            ds.iter().any(|d| d["tries"].as_i64().unwrap() >= 2),
            "{ds:?}"
        );
        assert!(ds.iter().all(|d| d["last_status"] == 204), "{ds:?}");
        // The history of each: every try, the refused ones first, the delivery last.
        for d in &ds {
            let tries = d["attempts"].as_array().unwrap();
            assert_eq!(
                i64::try_from(tries.len()).unwrap(),
                d["tries"].as_i64().unwrap(),
                "{d}"
            );
            let (last, earlier) = tries.split_last().unwrap();
            assert_eq!(last["status_code"], 204, "{d}");
            for t in earlier {
                assert_eq!(t["status_code"], Value::Null, "{d}");
                assert_eq!(t["error"], "could not connect", "{d}");
            }
        }
        server.abort();
        app.stop().await;
    }
);

both_stores!(the_event_feed_pages_by_cursor, |store| async move {
    // A short deadline, so that scenario 12 (the rail never answers) raises its exception soon.
    let Some(app) = spawn_app_with(store, |c| {
        for r in &mut c.rails {
            r.deadline_secs = 2;
        }
    })
    .await
    else {
        return;
    };
    let a = app.disburse("F-00", "255712345600", "10.00").await;
    let b = app.disburse("F-03", "255712345603", "10.00").await;
    let c = app.disburse("F-12", "255712345612", "10.00").await;
    app.wait_final(a["id"].as_str().unwrap()).await;
    app.wait_final(b["id"].as_str().unwrap()).await;
    let c = app.wait_final(c["id"].as_str().unwrap()).await;
    assert!(c["exception"].is_string(), "{c}");
    let one_by_one = feed_of(&app, &app.read_key, 1, 4).await;
    let all = feed(&app, &app.key, 100).await;
    assert_eq!(one_by_one, all);
    let kinds: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(kinds.contains(&"payment.completed") && kinds.contains(&"payment.failed"));
    // The silent rail's payment: unknown, then the operator exception, in that order.
    let of_c: Vec<&str> = all
        .iter()
        .filter(|e| e["data"]["reference"] == "F-12")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(of_c, ["payment.unknown", "payment.exception"]);
    let failed = all.iter().find(|e| e["type"] == "payment.failed").unwrap();
    assert_eq!(failed["data"]["failure"]["code"], "declined");
    assert_eq!(failed["data"]["reference"], "F-03");
    assert!(
        failed["data"].get("payee").is_none(),
        "events carry no party"
    );
    // Reading from the last cursor gives nothing new, and the cursor stays put.
    let last = all.last().unwrap()["cursor"].as_str().unwrap().to_owned();
    let (_, page) = app.get(&format!("/v1/events?after={last}"), &app.key).await;
    assert_eq!(page["data"], json!([]));
    assert_eq!(page["next_cursor"], last.as_str());
    // Another client sees none of it; bad input is refused.
    assert!(feed(&app, &app.other_client_key, 10).await.is_empty());
    let (s, _) = app.get("/v1/events?after=nonsense", &app.key).await;
    assert_eq!(s, 400);
    let (s, _) = app.get("/v1/events?limit=0", &app.key).await;
    assert_eq!(s, 400);
    let (s, _) = app.get("/v1/events", &app.other_scope_key).await;
    assert_eq!(s, 403);
    app.stop().await;
});

both_stores!(
    webhook_endpoints_are_managed_by_admins,
    |store| async move {
        let Some(app) = spawn_app_with(store, |c| c.dispatch.enabled = false).await else {
            return;
        };
        let body = json!({"url": "https://core.example/hooks", "events": ["payment.completed"]});
        let (s, p) = app.post("/v1/webhooks", &app.read_key, &body, None).await;
        assert_eq!(s, 403, "{p}");
        for bad in [
            json!({"url": "ftp://core.example/x"}),
            json!({"url": "not a url"}),
            json!({}),
            json!({"url": "https://core.example", "events": ["payment.nonsense"]}),
            json!({"url": "https://core.example", "colour": "red"}),
        ] {
            let (s, p) = app.post("/v1/webhooks", &app.key, &bad, None).await;
            assert_eq!(s, 422, "{bad} → {p}");
        }
        let (s, created) = app
            .post("/v1/webhooks", &app.key, &body, Some("wh-1"))
            .await;
        assert_eq!(s, 201, "{created}");
        let secret = created["secret"].as_str().unwrap();
        assert!(secret.starts_with("whsec_"), "{secret}");
        assert_eq!(created["events"], json!(["payment.completed"]));
        // The same key replays the first answer rather than creating a second endpoint.
        let (s, again) = app
            .post("/v1/webhooks", &app.key, &body, Some("wh-1"))
            .await;
        assert_eq!(s, 201);
        assert_eq!(again["id"], created["id"]);
        let (s, list) = app.get("/v1/webhooks", &app.key).await;
        assert_eq!(s, 200);
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert!(list["data"][0].get("secret").is_none(), "{list}");
        let id = created["id"].as_str().unwrap();
        let (s, _) = app
            .get(
                &format!("/v1/webhooks/{id}/deliveries"),
                &app.other_client_key,
            )
            .await;
        assert_eq!(s, 404);
        let (s, ds) = app
            .get(&format!("/v1/webhooks/{id}/deliveries"), &app.key)
            .await;
        assert_eq!((s, ds["data"].clone()), (200, json!([])));
        let del = |key: &str| {
            app.http
                .delete(app.url(&format!("/v1/webhooks/{id}")))
                .bearer_auth(key.to_owned())
                .send()
        };
        assert_eq!(del(&app.other_client_key).await.unwrap().status(), 404);
        assert_eq!(del(&app.key).await.unwrap().status(), 204);
        assert_eq!(del(&app.key).await.unwrap().status(), 404);
        let (_, list) = app.get("/v1/webhooks", &app.key).await;
        assert_eq!(list["data"], json!([]));
        app.stop().await;
    }
);

/// A port with nothing listening on it (connections are refused until something binds it).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

both_stores!(deliveries_survive_a_restart, |store| async move {
    let tweak = |c: &mut railgate::config::Config| {
        c.notify.retry_min_ms = 100;
        c.notify.retry_max_ms = 400;
        c.notify.timeout_ms = 2_000;
    };
    let Some(app) = spawn_app_with(store, tweak).await else {
        return;
    };
    let port = closed_port().await;
    let (s, hook) = app
        .post(
            "/v1/webhooks",
            &app.key,
            &json!({"url": format!("http://127.0.0.1:{port}/hooks")}),
            None,
        )
        .await;
    assert_eq!(s, 201, "{hook}");
    let endpoint = hook["id"].as_str().unwrap().to_owned();
    let p = app.disburse("R-00", "255712345600", "5.00").await;
    app.wait_final(p["id"].as_str().unwrap()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while deliveries(&app, &endpoint)
        .await
        .first()
        .map(|d| d["tries"].as_i64().unwrap())
        < Some(1)
    {
        assert!(tokio::time::Instant::now() < deadline, "never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The gateway stops while the delivery waits for its next try; another starts on the
    // same database; the receiver comes up.
    let TestApp {
        gateway,
        mock,
        http,
        key,
        database_url,
        ..
    } = app;
    gateway.shutdown().await;
    let mut cfg = test_config(database_url, &mock.base_url());
    tweak(&mut cfg);
    let gateway = railgate::app::start(cfg, None).await.unwrap();
    let inbox = Arc::new(Mutex::new(Inbox {
        secret: Some(hook["secret"].as_str().unwrap().to_owned()),
        ..Inbox::default()
    }));
    let server = serve(
        TcpListener::bind(("127.0.0.1", port)).await.unwrap(),
        inbox.clone(),
    )
    .await;
    let url = format!("{}/v1/webhooks/{endpoint}/deliveries", gateway.base_url());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = http
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["data"][0]["status"] == "delivered" {
            assert!(v["data"][0]["tries"].as_i64().unwrap() >= 2, "{v}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered after the restart: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = inbox.lock().unwrap().received.clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].kind, "payment.completed");
    server.abort();
    gateway.shutdown().await;
    let _ = mock.shutdown().await;
});

both_stores!(
    deliveries_are_abandoned_after_their_retry_period,
    |store| async move {
        let Some(app) = spawn_app_with(store, |c| {
            c.notify.retry_min_ms = 100;
            c.notify.retry_max_ms = 300;
            c.notify.give_up_after_secs = 1;
        })
        .await
        else {
            return;
        };
        let port = closed_port().await;
        let (_, hook) = app
            .post(
                "/v1/webhooks",
                &app.key,
                &json!({"url": format!("http://127.0.0.1:{port}/hooks")}),
                None,
            )
            .await;
        let endpoint = hook["id"].as_str().unwrap().to_owned();
        // Scenario 10: payment.unknown, then payment.completed, for the same payment.
        let p = app.disburse("A-10", "255712345610", "5.00").await;
        app.wait_final(p["id"].as_str().unwrap()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ds = deliveries(&app, &endpoint).await;
            if ds.len() == 2 && ds.iter().all(|d| d["status"] == "abandoned") {
                // The later one waited for the earlier one to be given up before its own tries.
                assert!(
                    ds.iter().all(|d| d["tries"].as_i64().unwrap() >= 1),
                    "{ds:?}"
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not abandoned: {ds:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Once the endpoint is deleted, new events are not delivered to it.
        let del = app
            .http
            .delete(app.url(&format!("/v1/webhooks/{endpoint}")))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(del.status(), 204);
        let q = app.disburse("A-00", "255712345600", "5.00").await;
        app.wait_final(q["id"].as_str().unwrap()).await;
        assert_eq!(deliveries(&app, &endpoint).await.len(), 2);
        app.stop().await;
    }
);
