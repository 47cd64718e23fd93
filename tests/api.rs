//! The payments API over real HTTP, on both stores: create, read, list, cancel, idempotency,
//! the authorisation matrix and every kind of bad input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;

/// The gateway without a dispatcher, so payments stay queued (cancel, pagination).
async fn app_without_dispatch(store: Store) -> Option<TestApp> {
    spawn_app_with(store, |c| c.dispatch.enabled = false).await
}

both_stores!(create_get_list_cancel_both_directions, |store| async move {
    let Some(app) = app_without_dispatch(store).await else {
        return;
    };
    let d = app
        .disburse("BEN-2026-000123", "255712345600", "15000.00")
        .await;
    assert_eq!(d["state"], "queued");
    assert_eq!(d["direction"], "disbursement");
    assert_eq!(d["amount"], json!({"value": "15000.00", "currency": "TZS"}));
    assert_eq!(d["payee"]["id_value"], "255712345600");
    assert_eq!(d["rail"], "mock");
    let hist: Vec<&str> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(hist, ["received", "queued"]);

    let (s, c) = app
        .post(
            "/v1/collections",
            &app.key,
            &json!({
        "reference": "PREM-1", "amount": {"value": "5000", "currency": "UGX"},
        "payer": {"id_type": "MSISDN", "id_value": "256772123400"}, "mode": "request_to_pay"}),
            None,
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["payer"]["id_value"], "256772123400");
    assert_eq!(c["mode"], "request_to_pay");
    let (s, e) = app
        .post(
            "/v1/collections",
            &app.key,
            &json!({
        "reference": "PREM-2", "amount": {"value": "5000.00", "currency": "TZS"},
        "payer": {"id_type": "MSISDN", "id_value": "255712345600"}, "mode": "expected"}),
            None,
        )
        .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["state"], "pending");
    let cn = e["payment_reference"].as_str().unwrap();
    assert!(railgate::domain::payment::valid_control_number(cn), "{cn}");

    let got = app.payment(d["id"].as_str().unwrap()).await;
    assert_eq!(got["id"], d["id"]);
    let (_, list) = app.get("/v1/payments?direction=collection", &app.key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (_, list) = app
        .get("/v1/payments?reference=BEN-2026-000123", &app.key)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, list) = app.get("/v1/payments?state=pending", &app.key).await;
    assert_eq!(list["data"][0]["id"], e["id"]);

    let (s, cancelled) = app
        .post(
            &format!("/v1/payments/{}/cancel", d["id"].as_str().unwrap()),
            &app.key,
            &json!({}),
            None,
        )
        .await;
    assert_eq!(s, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let (s, again) = app
        .post(
            &format!("/v1/payments/{}/cancel", d["id"].as_str().unwrap()),
            &app.key,
            &json!({}),
            None,
        )
        .await;
    assert_eq!(s, 409, "{again}");
    app.stop().await;
});

both_stores!(cancel_after_submission_is_a_conflict, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let p = app.disburse("BEN-C", "255712345600", "10.00").await;
    let id = p["id"].as_str().unwrap();
    app.wait_final(id).await;
    let resp = app
        .http
        .post(app.url(&format!("/v1/payments/{id}/cancel")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "/problems/not-cancellable");
    assert_eq!(body["state"], "completed");
    app.stop().await;
});

both_stores!(pagination_walks_every_row_once, |store| async move {
    let Some(app) = app_without_dispatch(store).await else {
        return;
    };
    let mut created = HashSet::new();
    for i in 0..23 {
        let p = app
            .disburse(&format!("PG-{i:03}"), "255712345600", "1.00")
            .await;
        created.insert(p["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/v1/payments?limit=5&cursor={c}"),
            None => "/v1/payments?limit=5".to_owned(),
        };
        let (s, page) = app.get(&path, &app.key).await;
        assert_eq!(s, 200, "{page}");
        for p in page["data"].as_array().unwrap() {
            seen.push(p["id"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "stable creation order");
    app.stop().await;
});

both_stores!(idempotent_replay_and_key_reuse, |store| async move {
    let Some(app) = app_without_dispatch(store).await else {
        return;
    };
    let body = disbursement("IDEM-1", "255712345600", "100.00");
    let (s1, b1) = app
        .post("/v1/disbursements", &app.key, &body, Some("key-1"))
        .await;
    let (s2, b2) = app
        .post("/v1/disbursements", &app.key, &body, Some("key-1"))
        .await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(b1, b2, "the replay is the first response");
    let other = disbursement("IDEM-2", "255712345600", "100.00");
    let (s3, b3) = app
        .post("/v1/disbursements", &app.key, &other, Some("key-1"))
        .await;
    assert_eq!(s3, 422, "{b3}");
    assert_eq!(b3["type"], "/problems/idempotency-key-reused");
    assert_eq!(app.count("payments").await, 1);
    // Another client may use the same key for its own request.
    let (s4, _) = app
        .post(
            "/v1/disbursements",
            &app.other_client_key,
            &other,
            Some("key-1"),
        )
        .await;
    assert_eq!(s4, 201);
    app.stop().await;
});

both_stores!(
    fifty_concurrent_requests_one_key_make_one_payment,
    |store| async move {
        let Some(app) = app_without_dispatch(store).await else {
            return;
        };
        let body = disbursement("CONC-KEY", "255712345600", "100.00");
        let futs =
            (0..50).map(|_| app.post("/v1/disbursements", &app.key, &body, Some("same-key")));
        let results = futures_util::future::join_all(futs).await;
        let ok = results.iter().filter(|(s, _)| *s == 201).count();
        assert!(ok >= 1);
        for (s, b) in &results {
            assert!(*s == 201 || *s == 409, "{s} {b}");
        }
        let ids: HashSet<&str> = results
            .iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, b)| b["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(app.count("payments").await, 1);
        app.stop().await;
    }
);

both_stores!(
    fifty_concurrent_requests_one_reference_make_one_payment,
    |store| async move {
        let Some(app) = app_without_dispatch(store).await else {
            return;
        };
        let body = disbursement("CONC-REF", "255712345600", "100.00");
        let futs = (0..50).map(|i| {
            let k = format!("k-{i}");
            let app = &app;
            let body = &body;
            async move {
                app.post("/v1/disbursements", &app.key, body, Some(&k))
                    .await
            }
        });
        let results = futures_util::future::join_all(futs).await;
        let created: Vec<&Value> = results
            .iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(created.len(), 1, "{results:?}");
        let id = created[0]["id"].clone();
        for (s, b) in &results {
            if *s != 201 {
                assert_eq!(*s, 409, "{b}");
                assert_eq!(b["type"], "/problems/duplicate-reference");
                assert_eq!(b["existing_payment_id"], id);
            }
        }
        assert_eq!(app.count("payments").await, 1);
        app.stop().await;
    }
);

both_stores!(authorisation_matrix, |store| async move {
    let Some(app) = app_without_dispatch(store).await else {
        return;
    };
    let mine = app.disburse("AUTH-1", "255712345600", "1.00").await;
    let id = mine["id"].as_str().unwrap().to_owned();
    // (method, path, body, scope needed)
    let routes: Vec<(&str, String, Option<Value>, &str)> = vec![
        (
            "POST",
            "/v1/disbursements".into(),
            Some(disbursement("AUTH-X", "255712345600", "1.00")),
            "payments:write",
        ),
        (
            "POST",
            "/v1/collections".into(),
            Some(
                json!({"reference": "AUTH-Y", "amount": {"value": "1.00", "currency": "TZS"}, "payer": {"id_type": "MSISDN", "id_value": "255712345600"}}),
            ),
            "payments:write",
        ),
        ("GET", "/v1/payments".into(), None, "payments:read"),
        ("GET", format!("/v1/payments/{id}"), None, "payments:read"),
        (
            "POST",
            format!("/v1/payments/{id}/cancel"),
            Some(json!({})),
            "payments:write",
        ),
    ];
    let send = |method: &str, path: &str, body: &Option<Value>, key: Option<&str>| {
        let mut req = app.http.request(method.parse().unwrap(), app.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send()
    };
    for (m, path, body, scope) in &routes {
        for (who, key, want) in [
            ("no key", None, 401u16),
            ("bad key", Some("rg_not_a_key"), 401),
            ("revoked key", Some(app.revoked_key.as_str()), 401),
            ("wrong scope", Some(app.other_scope_key.as_str()), 403),
        ] {
            let r = send(m, path, body, key).await.unwrap();
            assert_eq!(r.status().as_u16(), want, "{m} {path} with {who}");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
        if *scope == "payments:write" {
            let r = send(m, path, body, Some(&app.read_key)).await.unwrap();
            assert_eq!(r.status().as_u16(), 403, "{m} {path} with a read-only key");
        }
        // Another client never sees this client's payment.
        if path.contains(&id) {
            let r = send(m, path, body, Some(&app.other_client_key))
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 404, "{m} {path} as another client");
        }
    }
    let (_, theirs) = app.get("/v1/payments", &app.other_client_key).await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
    // The right scope works (last, since cancel changes state).
    for (m, path, body, _) in &routes {
        let r = send(m, path, body, Some(&app.key)).await.unwrap();
        assert!(r.status().is_success(), "{m} {path}: {}", r.status());
    }
    app.stop().await;
});

both_stores!(
    bad_input_is_a_problem_and_changes_nothing,
    |store| async move {
        let Some(app) = app_without_dispatch(store).await else {
            return;
        };
        app.disburse("EXISTING", "255712345600", "1.00").await;
        let base = disbursement("BAD-1", "255712345600", "100.00");
        let with = |f: &dyn Fn(&mut Value)| {
            let mut b = base.clone();
            f(&mut b);
            b
        };
        let cases: Vec<(&str, Value, u16, &str)> = vec![
            (
                "missing field",
                with(&|b| {
                    b.as_object_mut().unwrap().remove("payee");
                }),
                422,
                "payee",
            ),
            (
                "unknown field",
                with(&|b| b["colour"] = json!("red")),
                422,
                "colour",
            ),
            (
                "too many decimals",
                with(&|b| b["amount"]["value"] = json!("100.001")),
                422,
                "amount.value",
            ),
            (
                "decimals on UGX",
                with(&|b| b["amount"] = json!({"value": "100.50", "currency": "UGX"})),
                422,
                "amount.value",
            ),
            (
                "number not string",
                with(&|b| b["amount"]["value"] = json!(100.5)),
                422,
                "amount.value",
            ),
            (
                "zero",
                with(&|b| b["amount"]["value"] = json!("0.00")),
                422,
                "amount.value",
            ),
            (
                "negative",
                with(&|b| b["amount"]["value"] = json!("-5.00")),
                422,
                "amount.value",
            ),
            (
                "unknown currency",
                with(&|b| b["amount"]["currency"] = json!("XYZ")),
                422,
                "amount.currency",
            ),
            (
                "invalid msisdn",
                with(&|b| b["payee"]["id_value"] = json!("0712")),
                422,
                "payee.id_value",
            ),
            (
                "invalid iban",
                with(&|b| {
                    b["payee"] = json!({"id_type": "IBAN", "id_value": "GB82WEST12345698765433"})
                }),
                422,
                "payee.id_value",
            ),
            (
                "unknown id type",
                with(&|b| b["payee"]["id_type"] = json!("EMAIL")),
                422,
                "payee.id_type",
            ),
            (
                "unknown rail",
                with(&|b| b["rail"] = json!("nope")),
                422,
                "rail",
            ),
            (
                "used reference",
                with(&|b| b["reference"] = json!("EXISTING")),
                409,
                "",
            ),
        ];
        let before = app.count("payments").await;
        let jobs_before = app.count("jobs").await;
        let keys_before = app.count("idempotency_keys").await;
        for (name, body, status, field) in &cases {
            let r = app
                .http
                .post(app.url("/v1/disbursements"))
                .bearer_auth(&app.key)
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), *status, "{name}");
            assert_eq!(
                r.headers()["content-type"],
                "application/problem+json",
                "{name}"
            );
            let p: Value = r.json().await.unwrap();
            assert!(
                p["type"].as_str().unwrap().starts_with("/problems/"),
                "{name}: {p}"
            );
            assert_eq!(p["status"], *status);
            if !field.is_empty() {
                let fields: Vec<&str> = p["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["field"].as_str().unwrap())
                    .collect();
                assert!(fields.contains(field), "{name}: {fields:?}");
            }
        }
        // Malformed JSON, wrong content type, too large.
        let raw = |ct: &'static str, body: Vec<u8>| {
            app.http
                .post(app.url("/v1/disbursements"))
                .bearer_auth(&app.key)
                .header("content-type", ct)
                .body(body)
                .send()
        };
        let r = raw("application/json", b"{\"reference\": ".to_vec())
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let r = raw("text/plain", serde_json::to_vec(&base).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), 415);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let mut huge = base.clone();
        huge["metadata"] = json!({"blob": "x".repeat(200 * 1024)});
        let r = raw("application/json", serde_json::to_vec(&huge).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let r = app
            .http
            .get(app.url("/v1/payments?state=lost"))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = app
            .http
            .get(app.url("/v1/nothing-here"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(
            app.count("payments").await,
            before,
            "bad input changed nothing"
        );
        assert_eq!(app.count("jobs").await, jobs_before);
        assert_eq!(app.count("idempotency_keys").await, keys_before);
        app.stop().await;
    }
);

both_stores!(health_readiness_and_metrics, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let p = app.disburse("MET-1", "255712345600", "1.00").await;
    app.wait_final(p["id"].as_str().unwrap()).await;
    let text = app.metrics().await;
    assert!(
        text.contains("railgate_payment_transitions_total"),
        "{text}"
    );
    assert!(
        !text.contains("255712345600"),
        "no personal data in metrics"
    );
    // A request id comes back on every answer.
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(r.headers().contains_key("x-request-id"));
    app.stop().await;
});

both_stores!(
    a_revoked_key_stops_working_within_the_key_cache_ttl,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        // Used once, the key is held by the gateway's cache of keys read recently.
        let (status, _) = app.get("/v1/payments", &app.read_key).await;
        assert_eq!(status, 200);
        let id = railgate::store::keys::lookup(&app.db, &app.read_key)
            .await
            .unwrap()
            .unwrap()
            .id;
        // Revoked by another process (`railgate keys revoke`), through the store alone.
        railgate::store::keys::revoke(&app.db, &id.to_string())
            .await
            .unwrap();
        tokio::time::sleep(
            railgate::api::auth::KEY_CACHE_TTL + std::time::Duration::from_millis(100),
        )
        .await;
        let (status, body) = app.get("/v1/payments", &app.read_key).await;
        assert_eq!(status, 401, "a revoked key still works: {body}");
        // An unknown key is refused (the cache holds valid keys only).
        let (status, _) = app.get("/v1/payments", "rg_not_yet_a_key").await;
        assert_eq!(status, 401);
        app.stop().await;
    }
);
