//! The ledger through the real gateway and mock rail, on both stores: what each outcome posts,
//! the API's view of it, and a callback delivered 100 times at once posting exactly once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use railgate::ledger::balances;
use serde_json::{json, Value};
use std::time::Duration;

/// Transfers of a payment by phase.
async fn phases(app: &TestApp, payment: &str) -> Vec<String> {
    railgate::store::sql::query_scalar(
        "SELECT phase FROM ledger_transfers WHERE payment_id = $1 ORDER BY created_at, phase",
    )
    .bind(payment)
    .fetch_all(app.db.pool())
    .await
    .unwrap()
}

fn account<'a>(accounts: &'a Value, code_suffix: &str) -> &'a Value {
    accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"].as_str().unwrap().ends_with(code_suffix))
        .unwrap_or_else(|| panic!("no account ending {code_suffix} in {accounts}"))
}

both_stores!(outcomes_post_to_the_ledger, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let ok = app.disburse("L-00", "255712345600", "1000.00").await;
    let failed = app.disburse("L-01", "255712345601", "250.00").await;
    let thrice = app.disburse("L-07", "255712345607", "40.50").await;
    let unknown_first = app.disburse("L-10", "255712345610", "7.25").await;
    let (s, coll) = app
        .post(
            "/v1/collections",
            &app.key,
            &json!({"reference": "L-PREM", "amount": {"value": "300.00", "currency": "TZS"},
                    "payer": {"id_type": "MSISDN", "id_value": "255712345600"},
                    "metadata": {"programme": "chf"}}),
            None,
        )
        .await;
    assert_eq!(s, 201, "{coll}");
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    for p in [&ok, &failed, &thrice, &unknown_first, &coll] {
        let done = app.wait_final(&id(p)).await;
        assert!(
            done["state"] == "completed" || done["state"] == "failed",
            "{done}"
        );
    }
    assert_eq!(phases(&app, &id(&ok)).await, ["pending", "posted"]);
    assert_eq!(phases(&app, &id(&failed)).await, ["pending", "voided"]);
    assert_eq!(phases(&app, &id(&thrice)).await, ["pending", "posted"]);
    assert_eq!(
        phases(&app, &id(&unknown_first)).await,
        ["pending", "posted"]
    );
    // A collection is credited when confirmed: one posted transfer, never pending.
    assert_eq!(phases(&app, &id(&coll)).await, ["posted"]);

    let (s, accounts) = app.get("/v1/ledger/accounts", &app.read_key).await;
    assert_eq!(s, 200, "{accounts}");
    let benefits = account(&accounts, ":benefits_payable:maternity");
    assert_eq!(benefits["currency"], "TZS");
    assert_eq!(benefits["normal_side"], "debit");
    // 1000.00 + 40.50 + 7.25 paid; the failed 250.00 was pending and voided.
    assert_eq!(benefits["balance"]["posted"], "1047.75");
    assert_eq!(benefits["balance"]["pending"], "0.00");
    assert_eq!(benefits["totals"]["debits_posted"], "1047.75");
    let clearing = account(&accounts, ":rail:mock:clearing");
    // Out 1047.75, in 300.00: the rail position nets them (credit-normal).
    assert_eq!(clearing["balance"]["posted"], "747.75");
    let premiums = account(&accounts, ":premiums_receivable:chf");
    assert_eq!(premiums["balance"]["posted"], "300.00");

    let (s, tb) = app.get("/v1/ledger/trial-balance", &app.key).await;
    assert_eq!(s, 200, "{tb}");
    assert_eq!(tb["balanced"], true, "{tb}");
    assert_eq!(tb["currencies"][0]["currency"], "TZS");
    assert_eq!(
        tb["currencies"][0]["debits_posted"],
        tb["currencies"][0]["credits_posted"]
    );

    // Entries, paged by cursor, in order; the failed payment's voiding appears.
    let bid = benefits["id"].as_str().unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/ledger/accounts/{bid}/entries?limit=2&cursor={c}"),
            None => format!("/v1/ledger/accounts/{bid}/entries?limit=2"),
        };
        let (s, page) = app.get(&path, &app.read_key).await;
        assert_eq!(s, 200, "{page}");
        for e in page["data"].as_array().unwrap() {
            assert_eq!(e["side"], "debit");
            seen.push(e["phase"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(seen.len() < 50, "pagination does not end");
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert_eq!(seen.iter().filter(|p| *p == "voided").count(), 1);

    // Only the owner sees its accounts; other scopes are refused.
    let (s, theirs) = app.get("/v1/ledger/accounts", &app.other_client_key).await;
    assert_eq!(s, 200);
    assert_eq!(theirs["data"], json!([]));
    let (s, _) = app
        .get(
            &format!("/v1/ledger/accounts/{bid}/entries"),
            &app.other_client_key,
        )
        .await;
    assert_eq!(s, 404);
    let (s, p) = app
        .get("/v1/ledger/trial-balance", &app.other_scope_key)
        .await;
    assert_eq!(s, 403, "{p}");
    let (s, _) = app
        .get(
            &format!("/v1/ledger/accounts/{bid}/entries?cursor=x"),
            &app.key,
        )
        .await;
    assert_eq!(s, 400);
    app.stop().await;
});

/// A success callback for the payment's attempt, signed as the mock rail signs.
fn forged_success(attempt: &str, rail_ref: &str, event_id: uuid::Uuid) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": event_id,
        "request_id": attempt,
        "transaction_id": rail_ref,
        "status": "SUCCESS",
        "code": null,
        "receipt": "RCPT-CONCURRENT",
        "amount": "1000.00",
        "currency": "TZS",
        "occurred_at": chrono::Utc::now(),
    }))
    .unwrap()
}

both_stores!(
    a_hundred_concurrent_callbacks_post_once,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        // Scenario 12: accepted, and the rail never says more; our forged callback settles it.
        let p = app.disburse("CONC-12", "255712345612", "1000.00").await;
        let pid = p["id"].as_str().unwrap().to_owned();
        app.wait_for(&pid, Duration::from_secs(20), |p| {
            p["rail_reference"].is_string()
        })
        .await;
        let (attempt, rail_ref): (String, String) = railgate::store::sql::query_as(
        "SELECT id, rail_reference FROM attempts WHERE payment_id = $1 AND rail_reference IS NOT NULL",
    )
    .bind(&pid)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
        let body = forged_success(&attempt, &rail_ref, uuid::Uuid::new_v4());
        let event_id = serde_json::from_slice::<Value>(&body).unwrap()["event_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let http = app.http.clone();
            let url = app.url("/rails/mock/callback");
            let body = body.clone();
            let event_id = event_id.clone();
            set.spawn(async move {
                let sig = railgate_mock::sign(MOCK_SECRET, chrono::Utc::now().timestamp(), &body);
                http.post(url)
                    .header("content-type", "application/json")
                    .header(railgate_mock::SIGNATURE_HEADER, sig)
                    .header(railgate_mock::EVENT_ID_HEADER, event_id)
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
        }
        let mut statuses = Vec::new();
        while let Some(s) = set.join_next().await {
            statuses.push(s.unwrap());
        }
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        let done = app.wait_final(&pid).await;
        assert_eq!(done["state"], "completed", "{done}");
        assert_eq!(phases(&app, &pid).await, ["pending", "posted"]);
        let entries: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id \
         WHERE t.payment_id = $1",
    )
    .bind(&pid)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
        assert_eq!(entries, 4);
        let applied: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM callback_events WHERE payment_id = $1 AND effect = 'applied'",
        )
        .bind(&pid)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(applied, 1);
        let completed_events: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM events WHERE payment_id = $1 AND type = 'payment.completed'",
        )
        .bind(&pid)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(completed_events, 1);
        let (_, tb) = app.get("/v1/ledger/trial-balance", &app.key).await;
        assert_eq!(tb["balanced"], true, "{tb}");
        app.stop().await;
    }
);

/// A rail that pushes money to the scheme's account, naming a payment reference: what the
/// inbox does with money that matches a payment, its amount, or nothing.
struct PushRail;

#[async_trait::async_trait]
impl railgate_rail::RailAdapter for PushRail {
    fn id(&self) -> &str {
        // The rail's id as configured in the test configuration.
        "mock"
    }
    fn capabilities(&self) -> railgate_rail::Capabilities {
        railgate_rail::Capabilities {
            disbursement: false,
            request_to_pay: false,
            currencies: vec!["TZS".parse().unwrap()],
            bulk: false,
            inquiry: false,
            reversal: false,
            max_amount: None,
            whole_units_only: false,
        }
    }
    async fn submit(
        &self,
        _: &railgate_rail::Attempt,
    ) -> Result<railgate_rail::Submitted, railgate_rail::RailError> {
        Err(railgate_rail::RailError::Permanent("push only".into()))
    }
    async fn inquire(
        &self,
        _: &railgate_rail::Attempt,
    ) -> Result<railgate_rail::RailStatus, railgate_rail::RailError> {
        Ok(railgate_rail::RailStatus::NotFound)
    }
    fn callback(
        &self,
        req: &railgate_rail::InboundRequest,
    ) -> Result<railgate_rail::CallbackReply, railgate_rail::CallbackError> {
        let v: Value = serde_json::from_slice(&req.body).unwrap();
        let tzs = "TZS".parse().unwrap();
        let event = railgate_rail::CallbackEvent {
            callback_id: v["id"].as_str().unwrap().to_owned(),
            attempt: railgate_rail::AttemptRef::PaymentReference(
                v["reference"].as_str().unwrap().to_owned(),
            ),
            outcome: railgate_rail::CallbackOutcome::Received {
                amount: railgate::domain::Money::parse(v["amount"].as_str().unwrap(), tzs).unwrap(),
                payer: None,
                settled: railgate_rail::Settled {
                    rail_reference: Some(format!("PUSH-{}", v["id"].as_str().unwrap())),
                    receipt: None,
                    amount: None,
                },
            },
        };
        Ok(railgate_rail::CallbackReply::ok_json(
            vec![event],
            &json!({"ok": true}),
        ))
    }
}

both_stores!(
    pushed_money_is_posted_or_held_in_suspense,
    |store| async move {
        let Some(app) = spawn_app_with(store, |c| c.dispatch.enabled = false).await else {
            return;
        };
        let db = app.db.clone();
        let rails = railgate::rails::Rails::from_config(&app.gateway.state.cfg, |_, _| {
            let adapter: std::sync::Arc<dyn railgate_rail::RailAdapter> =
                std::sync::Arc::new(PushRail);
            Ok(adapter)
        })
        .unwrap();
        let wake = tokio::sync::Notify::new();
        let group = railgate::callbacks::CallbackGroup::start(db.clone());
        let push = |id: &str, reference: &str, amount: &str| {
            let body = json!({"id": id, "reference": reference, "amount": amount}).to_string();
            railgate_rail::InboundRequest {
                method: http::Method::POST,
                path: "/push".into(),
                query: None,
                headers: http::HeaderMap::new(),
                body: body.into_bytes().into(),
                received_at: chrono::Utc::now(),
                peer: None,
            }
        };
        let (s, expected) = app
            .post(
                "/v1/collections",
                &app.key,
                &json!({"reference": "EXP-1", "amount": {"value": "500.00", "currency": "TZS"},
                    "payer": {"id_type": "MSISDN", "id_value": "255712345600"}, "mode": "expected",
                    "metadata": {"programme": "chf"}}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{expected}");
        let control = expected["payment_reference"].as_str().unwrap().to_owned();
        let (s, short) = app
        .post(
            "/v1/collections",
            &app.key,
            &json!({"reference": "EXP-2", "amount": {"value": "500.00", "currency": "TZS"},
                    "payer": {"id_type": "MSISDN", "id_value": "255712345600"}, "mode": "expected"}),
            None,
        )
        .await;
        assert_eq!(s, 201, "{short}");
        let short_control = short["payment_reference"].as_str().unwrap().to_owned();
        for _ in 0..2 {
            for req in [
                push("c1", &control, "500.00"),
                push("c2", &short_control, "499.00"),
                push("c3", "NO-SUCH-REFERENCE", "12.00"),
                // The payer pays the same control number a second time.
                push("c4", &control, "500.00"),
            ] {
                railgate::callbacks::receive(&db, &group, &rails, &wake, "mock", req)
                    .await
                    .unwrap();
            }
        }
        let done = app.payment(expected["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "completed", "{done}");
        assert_eq!(done["rail"], "mock");
        assert_eq!(
            phases(&app, expected["id"].as_str().unwrap()).await,
            ["posted"]
        );
        let short_now = app.payment(short["id"].as_str().unwrap()).await;
        assert!(short_now["conflict"].is_string(), "{short_now}");
        assert!(phases(&app, short["id"].as_str().unwrap()).await.is_empty());

        let (_, accounts) = app.get("/v1/ledger/accounts", &app.key).await;
        assert_eq!(
            account(&accounts, ":premiums_receivable:chf")["balance"]["posted"],
            "500.00"
        );
        // Money for a known payment but not its amount, or paid a second time: the client's
        // suspense, once each.
        assert_eq!(
            account(&accounts, ":suspense")["balance"]["posted"],
            "999.00"
        );
        assert_eq!(
            account(&accounts, ":rail:mock:clearing")["balance"]["posted"],
            "-1499.00"
        );
        // Money for no payment at all: the gateway's own suspense, once; clients do not see it.
        let gateway: Vec<(String, i64)> = railgate::store::sql::query_as(
            "SELECT a.code, CAST(SUM(e.credits_posted) - SUM(e.debits_posted) AS BIGINT) \
         FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id \
         WHERE a.client_id IS NULL GROUP BY a.code ORDER BY a.code",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        assert_eq!(
            gateway,
            [
                ("rail:mock:clearing".to_owned(), -1200),
                ("suspense".to_owned(), 1200)
            ]
        );
        assert!(accounts["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["code"].as_str().unwrap().starts_with("client:")));
        assert!(railgate::ledger::balances::unbalanced_transfers(&db)
            .await
            .unwrap()
            .is_empty());
        for t in railgate::ledger::balances::trial_balance(&db, None)
            .await
            .unwrap()
        {
            assert!(t.balanced(), "{t:?}");
        }
        app.stop().await;
    }
);

both_stores!(
    many_payments_at_once_on_fresh_accounts,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        // Forty payments at once, creating their accounts as they go: none may wait forever on
        // another, and the books must come out exact.
        let mut set = tokio::task::JoinSet::new();
        for i in 0..40 {
            let http = app.http.clone();
            let url = app.base.clone();
            let key = app.key.clone();
            set.spawn(async move {
            let programme = ["maternity", "chf", "opd", "ipd"][i % 4];
            let (path, party) = if i % 5 == 0 {
                ("/v1/collections", "payer")
            } else {
                ("/v1/disbursements", "payee")
            };
            let body = json!({
                "reference": format!("MANY-{i}"),
                "amount": {"value": format!("{}.00", 100 + i), "currency": "TZS"},
                party: {"id_type": "MSISDN", "id_value": format!("2557123456{:02}", if i % 7 == 0 { 1 } else { 0 })},
                "metadata": {"programme": programme},
            });
            let resp = http
                .post(format!("{url}{path}"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.unwrap();
            v["id"].as_str().unwrap().to_owned()
        });
        }
        let mut ids = Vec::new();
        while let Some(id) = set.join_next().await {
            ids.push(id.unwrap());
        }
        let mut paid = std::collections::HashMap::<String, i64>::new();
        let mut collected = std::collections::HashMap::<String, i64>::new();
        for id in &ids {
            let p = app.wait_final(id).await;
            let minor = p["amount"]["value"]
                .as_str()
                .unwrap()
                .replace('.', "")
                .parse::<i64>()
                .unwrap();
            let programme = p["metadata"]["programme"].as_str().unwrap().to_owned();
            match (
                p["direction"].as_str().unwrap(),
                p["state"].as_str().unwrap(),
            ) {
                ("disbursement", "completed") => *paid.entry(programme).or_default() += minor,
                ("collection", "completed") => *collected.entry(programme).or_default() += minor,
                (_, "failed") => {}
                other => panic!("{other:?}: {p}"),
            }
        }
        assert!(!paid.is_empty() && !collected.is_empty());
        let accounts = balances::accounts(&app.db, None).await.unwrap();
        for a in &accounts {
            let programme = a.code.rsplit(':').next().unwrap();
            let want = match a.kind.as_str() {
                "benefits_payable" => paid.get(programme).copied().unwrap_or(0),
                "premiums_receivable" => collected.get(programme).copied().unwrap_or(0),
                _ => continue,
            };
            assert_eq!(a.balance.posted(a.normal_side), want, "{}", a.code);
            assert_eq!(a.balance.pending(a.normal_side), 0, "{}", a.code);
        }
        assert!(balances::unbalanced_transfers(&app.db)
            .await
            .unwrap()
            .is_empty());
        for t in balances::trial_balance(&app.db, None).await.unwrap() {
            assert!(t.balanced(), "{t:?}");
        }
        app.stop().await;
    }
);
