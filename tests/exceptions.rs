//! The operator's queue and its actions, through real HTTP against the real gateway and the
//! mock rail: exceptions and contradictions listed oldest first and per client, asking the
//! rail again (an inquiry, never a resend), settling from evidence (the same postings and
//! event as the rail's own answer), and every refusal.
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
use std::time::Duration;

/// Short deadlines, so that an unanswered payment becomes an exception within seconds; the
/// first inquiry waits for the deadline (a long callback grace), so a test can cut the rail
/// off before it.
async fn app_with_short_deadlines(store: Store) -> Option<TestApp> {
    spawn_app_with(store, |cfg| {
        for r in &mut cfg.rails {
            r.deadline_secs = 3;
            r.callback_grace_ms = 10_000;
        }
    })
    .await
}

async fn wait_exception(app: &TestApp, id: &str) -> Value {
    let p = app
        .wait_for(id, Duration::from_secs(40), |p| !p["exception"].is_null())
        .await;
    assert_eq!(p["state"], "unknown", "{p}");
    assert!(!p["exception"].is_null(), "{p}");
    p
}

async fn key_id(app: &TestApp, key: &str) -> String {
    railgate::store::keys::lookup(&app.db, key)
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string()
}

async fn events_of(app: &TestApp, id: &str, kind: &str) -> i64 {
    railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM events WHERE payment_id = $1 AND type = $2",
    )
    .bind(id)
    .bind(kind)
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

/// The payment's transfers as (phase, debit account, credit account, amount), by phase.
async fn transfers(app: &TestApp, id: &str) -> Vec<(String, String, String, i64)> {
    railgate::store::sql::query_as(
        "SELECT phase, debit_account, credit_account, amount_minor FROM ledger_transfers \
         WHERE payment_id = $1 ORDER BY phase",
    )
    .bind(id)
    .fetch_all(app.db.pool())
    .await
    .unwrap()
}

fn receipt(reference: &str, reason: &str, outcome: &str) -> Value {
    json!({
        "outcome": outcome,
        "evidence": {"type": "receipt", "reference": reference},
        "reason": reason,
    })
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

both_stores!(
    exceptions_are_listed_and_settled_from_evidence,
    |store| async move {
        let Some(app) = app_with_short_deadlines(store).await else {
            return;
        };
        // 12: the rail accepts, then never answers an inquiry. 11: failed, then a success.
        let paid = app.disburse("EXC-PAID", "255712345612", "2500.00").await;
        let failed = app.disburse("EXC-FAIL", "255712345612", "1200.00").await;
        let contradicted = app.disburse("EXC-CONTRA", "255712345611", "300.00").await;
        let normal = app.disburse("EXC-NORMAL", "255712345600", "2500.00").await;
        let (paid, failed) = (paid["id"].as_str().unwrap(), failed["id"].as_str().unwrap());
        let contradicted = contradicted["id"].as_str().unwrap();
        let normal = normal["id"].as_str().unwrap();
        wait_exception(&app, paid).await;
        wait_exception(&app, failed).await;
        app.wait_for(contradicted, Duration::from_secs(30), |p| {
            !p["conflict"].is_null()
        })
        .await;
        let n = app.wait_final(normal).await;
        assert_eq!(n["state"], "completed", "{n}");
        assert_eq!(events_of(&app, paid, "payment.exception").await, 1);

        // The queue: oldest first, each item with what its state allows.
        let (s, q) = app.get("/v1/admin/exceptions", &app.key).await;
        assert_eq!(s, 200, "{q}");
        let items = q["data"].as_array().unwrap();
        let about = |id: &str| {
            items
                .iter()
                .find(|i| i["payment"]["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("{id} is not in the queue: {q}"))
        };
        let e = about(paid);
        assert_eq!(e["kind"], "exception");
        assert_eq!(e["actions"], json!(["ask_rail", "settle"]));
        assert_eq!(
            e["payment"]["amount"],
            json!({"value": "2500.00", "currency": "TZS"})
        );
        assert!(e["payment"].get("payee").is_none(), "no party data: {e}");
        let c = about(contradicted);
        assert_eq!(c["kind"], "conflict");
        assert_eq!(c["claimed"], "completed");
        assert_eq!(c["payment"]["state"], "failed");
        assert_eq!(c["actions"], json!(["resolve_break"]));
        let since: Vec<&str> = items.iter().map(|i| i["since"].as_str().unwrap()).collect();
        let mut sorted = since.clone();
        sorted.sort();
        assert_eq!(since, sorted, "oldest first");

        // Paged by the cursor: one at a time, every item once, in the same order.
        let mut cursor: Option<String> = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let path = match &cursor {
                Some(c) => format!("/v1/admin/exceptions?limit=1&cursor={c}"),
                None => "/v1/admin/exceptions?limit=1".to_owned(),
            };
            let (s, page) = app.get(&path, &app.key).await;
            assert_eq!(s, 200, "{page}");
            seen.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].clone()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let all: Vec<Value> = items.iter().map(|i| i["id"].clone()).collect();
        assert_eq!(seen, all);

        // Another client sees none of it; refusals of the query name the field.
        let (_, theirs) = app.get("/v1/admin/exceptions", &app.other_client_key).await;
        assert_eq!(theirs["data"], json!([]), "{theirs}");
        let (s, bad) = app
            .get("/v1/admin/exceptions?kind=x&cursor=nope", &app.key)
            .await;
        assert_eq!(s, 400);
        assert_eq!(fields(&bad), vec!["kind", "cursor"]);
        let (s, _) = app
            .get("/v1/admin/exceptions?kind=dead_job", &app.read_key)
            .await;
        assert_eq!(s, 403, "the dead letter is the operator's");

        // Settling: recon:write only, a reason and evidence required, the client's own only.
        let path = format!("/v1/payments/{paid}/settlements");
        let body = receipt("MP-RCPT-77", "the payee's receipt matches", "completed");
        let (s, p) = app.post(&path, &app.read_key, &body, None).await;
        assert_eq!(s, 403, "{p}");
        let (s, p) = app
            .post(
                &path,
                &app.key,
                &json!({"outcome": "done", "evidence": {}}),
                None,
            )
            .await;
        assert_eq!(s, 422, "{p}");
        assert_eq!(fields(&p), vec!["outcome", "evidence.type", "reason"]);
        let line = json!({
            "outcome": "completed",
            "evidence": {"type": "statement_line",
                         "statement_id": uuid::Uuid::new_v4(), "line_no": 1},
            "reason": "on the bank statement",
        });
        let (s, p) = app.post(&path, &app.key, &line, None).await;
        assert_eq!(s, 422, "{p}");
        assert_eq!(fields(&p), vec!["evidence.statement_id"]);
        let (s, p) = app.post(&path, &app.other_client_key, &body, None).await;
        assert_eq!(s, 404, "{p}");
        assert_eq!(
            app.payment(paid).await["state"],
            "unknown",
            "refusals change nothing"
        );

        let officer = key_id(&app, &app.other_scope_key).await;
        let (s, p) = app
            .post(&path, &app.other_scope_key, &body, Some("settle-1"))
            .await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(p["state"], "completed");
        assert_eq!(p["receipt"], "MP-RCPT-77");
        assert!(p["exception"].is_null());
        let line = p["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(line["from"], "unknown");
        assert_eq!(line["to"], "completed");
        let cause = line["cause"].as_str().unwrap();
        assert!(cause.contains(&officer), "who: {cause}");
        assert!(
            cause.contains("the payee's receipt matches"),
            "why: {cause}"
        );
        assert!(cause.contains("receipt MP-RCPT-77"), "evidence: {cause}");
        // The same books as the rail's own confirmation (the same accounts, posted once),
        // and the core told as for any completion.
        let settled = transfers(&app, paid).await;
        assert_eq!(settled, transfers(&app, normal).await);
        assert_eq!(
            settled.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
            ["pending", "posted"]
        );
        assert_eq!(events_of(&app, paid, "payment.completed").await, 1);
        // A replay answers the same; a second settlement is refused.
        let (s, again) = app
            .post(&path, &app.other_scope_key, &body, Some("settle-1"))
            .await;
        assert_eq!((s, &again["state"]), (200, &json!("completed")));
        let (s, p) = app.post(&path, &app.key, &body, None).await;
        assert_eq!(s, 409, "{p}");
        assert_eq!(p["type"], "/problems/not-awaiting-operator");
        assert_eq!(p["state"], "completed");
        let (s, _) = app
            .post(
                &format!("/v1/payments/{normal}/settlements"),
                &app.key,
                &body,
                None,
            )
            .await;
        assert_eq!(s, 409, "a payment the rail settled is not the operator's");

        // Failed: the pending transfer voided, `payment.failed` for the core.
        let (s, p) = app
            .post(
                &format!("/v1/payments/{failed}/settlements"),
                &app.key,
                &receipt("BANK-RET-9", "returned by the bank", "failed"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(p["state"], "failed");
        assert!(p["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("returned by the bank"));
        let phases: Vec<String> = transfers(&app, failed)
            .await
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(phases, ["pending", "voided"]);
        assert_eq!(events_of(&app, failed, "payment.failed").await, 1);

        // Settled payments leave the queue; the rail paid each at most once.
        let (_, q) = app
            .get("/v1/admin/exceptions?kind=exception", &app.key)
            .await;
        assert!(
            !q["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["id"] == paid || i["id"] == failed),
            "{q}"
        );
        for r in ["EXC-PAID", "EXC-FAIL", "EXC-CONTRA", "EXC-NORMAL"] {
            assert!(app.paid(r) <= 1, "{r} paid {} times", app.paid(r));
        }
        app.stop().await;
    }
);

both_stores!(
    asking_the_rail_again_settles_by_inquiry_never_a_resend,
    |store| async move {
        let Some(app) = app_with_short_deadlines(store).await else {
            return;
        };
        // 05: accepted, no callback ever; an inquiry shows success.
        let p = app.disburse("ASK-AGAIN", "255712345605", "750.00").await;
        let id = p["id"].as_str().unwrap().to_owned();
        app.wait_for(&id, Duration::from_secs(20), |p| p["state"] == "pending")
            .await;
        // The rail stops answering before the first inquiry (at the deadline): exception.
        app.mock.set_faults(railgate_mock::Faults {
            latency_ms: 3_000,
            ..Default::default()
        });
        wait_exception(&app, &id).await;
        app.mock.set_faults(railgate_mock::Faults::default());

        let path = format!("/v1/payments/{id}/inquiries");
        let why = json!({"reason": "the rail is back; ask it"});
        let (s, p) = app.post(&path, &app.read_key, &why, None).await;
        assert_eq!(s, 403, "{p}");
        let (s, p) = app
            .post(&path, &app.key, &json!({"reason": " "}), None)
            .await;
        assert_eq!(s, 422, "{p}");
        assert_eq!(fields(&p), vec!["reason"]);
        let (s, p) = app.post(&path, &app.other_client_key, &why, None).await;
        assert_eq!(s, 404, "{p}");

        let asker = key_id(&app, &app.key).await;
        let (s, p) = app.post(&path, &app.key, &why, None).await;
        assert_eq!(s, 202, "{p}");
        let note = p["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (&note["from"], &note["to"]),
            (&json!("unknown"), &json!("unknown"))
        );
        let cause = note["cause"].as_str().unwrap();
        assert!(
            cause.contains(&asker) && cause.contains("the rail is back"),
            "{cause}"
        );

        let done = app
            .wait_for(&id, Duration::from_secs(30), |p| p["state"] == "completed")
            .await;
        assert_eq!(done["state"], "completed", "{done}");
        assert!(done["exception"].is_null());
        let last = done["history"].as_array().unwrap().last().unwrap().clone();
        let cause = last["cause"].as_str().unwrap();
        assert!(cause.contains("inquiry"), "{cause}");
        assert!(cause.contains("settles the exception"), "{cause}");
        assert_eq!(app.paid("ASK-AGAIN"), 1, "paid once: asked, never resent");
        assert_eq!(
            app.mock
                .payouts()
                .iter()
                .filter(|p| p.reference == "ASK-AGAIN")
                .count(),
            1,
            "one attempt at the rail"
        );
        assert_eq!(events_of(&app, &id, "payment.completed").await, 1);

        // Nothing awaits an operator any more: asking again is refused.
        let (s, p) = app.post(&path, &app.key, &why, None).await;
        assert_eq!(s, 409, "{p}");
        assert_eq!(p["type"], "/problems/not-awaiting-operator");
        app.stop().await;
    }
);

// The console's queue for the gateway's operator: a key with `operator` (and `reports:read`
// to sign in) but no payment scope sees the dead letter there, and nothing of a client's
// payments; a key with neither is refused.
both_stores!(
    the_operator_sees_the_dead_letter_on_the_console,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        let client = railgate::store::keys::ensure_client(&app.db, "acme")
            .await
            .unwrap();
        let mut keys = Vec::new();
        for scopes in [&["reports:read", "operator"][..], &["reports:read"][..]] {
            let k = railgate::store::keys::generate_key();
            railgate::store::keys::insert_key(&app.db, client, &k, scopes, None)
                .await
                .unwrap();
            keys.push(k);
        }
        let dead = uuid::Uuid::now_v7().to_string();
        railgate::store::sql::query(
            "INSERT INTO jobs (id, kind, payload, run_at, created_at, dead_at, last_error) \
             VALUES ($1, 'follow_up', '{}', 0, 0, 1, 'the rail kept refusing it')",
        )
        .bind(&dead)
        .execute(app.db.pool())
        .await
        .unwrap();
        let page = |key: String| {
            let http = app.http.clone();
            let url = app.url("/reports/exceptions");
            async move {
                let resp = http
                    .get(url)
                    .basic_auth("officer", Some(key))
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            }
        };
        let (s, body) = page(keys[0].clone()).await;
        assert_eq!(s, 200, "{body}");
        assert!(
            body.contains(&dead),
            "the dead job is on the operator's page"
        );
        let (s, _) = page(keys[1].clone()).await;
        assert_eq!(s, 403);
        app.stop().await;
    }
);
