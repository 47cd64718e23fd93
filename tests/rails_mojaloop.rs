//! The Mojaloop rail (FSPIOP v1.1) through the whole gateway against the mock hub, on both
//! stores: the disbursement scenario table, request-to-pay, payments pushed to the scheme
//! (matched, and unmatched), byte-identical resends, inbound idempotency and forged callbacks.
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

fn msisdn(prefix: &'static str) -> impl Fn(&str) -> Value {
    move |digits| json!({"id_type": "MSISDN", "id_value": format!("{prefix}{digits}")})
}

fn hub(app: &TestApp) -> &railgate_mojaloop::MockHub {
    app.mojaloop.as_ref().unwrap()
}

/// Polls `f` until it is true (bounded); returns whether it became true.
async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stored callbacks of the rail for a method and path prefix: (path, body, verdict), oldest first.
async fn stored_callbacks(
    app: &TestApp,
    method: &str,
    path: &str,
) -> Vec<(String, Vec<u8>, String)> {
    let rows: Vec<(String, Vec<u8>, String)> = railgate::store::sql::query_as(
        "SELECT path, body, verdict FROM callbacks WHERE rail = 'mojaloop' AND method = $1 \
         ORDER BY received_at, id",
    )
    .bind(method)
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    rows.into_iter().filter(|r| r.0.starts_with(path)).collect()
}

/// Sends a request to the gateway's Mojaloop callback endpoint as `source` would, dated now.
async fn call_gateway(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    resource: &str,
    source: &str,
    body: Vec<u8>,
) -> u16 {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    app.http
        .request(method, app.url(&format!("/rails/mojaloop{path}")))
        .header(
            "Content-Type",
            format!("application/vnd.interoperability.{resource}+json;version=1.1"),
        )
        .header("Date", date)
        .header("FSPIOP-Source", source)
        .header("FSPIOP-Destination", railgate::sandbox::MOJALOOP_FSP_ID)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn push(app: &TestApp, reference: &str, amount: &str) {
    let resp = app
        .http
        .post(format!("{}/_control/push", hub(app).base_url()))
        .json(&json!({
            "id_type": "BUSINESS", "id_value": "NHIF", "reference": reference,
            "amount": amount, "currency": "TZS", "payer_msisdn": "255712345600"
        }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

both_stores!(mojaloop_disbursement_scenarios, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let control = format!("{}/_control", hub(&app).base_url());
    app.run_scenario_table(
        "mojaloop",
        "disbursement",
        "TZS",
        "1500.50",
        msisdn("2557123458"),
        &control,
    )
    .await;
    // Everything Railgate sent validated against the FSPIOP v1.1 schemas.
    assert!(
        hub(&app).rejections().is_empty(),
        "{:?}",
        hub(&app).rejections()
    );
    app.stop().await;
});

/// The collection of the request-to-pay table whose payer ends in `digits` (its full view).
async fn r2p_payment(app: &TestApp, digits: &str) -> Value {
    let (s, list) = app
        .get(
            &format!("/v1/payments?reference=mojalo-c-{digits}&direction=collection"),
            &app.key,
        )
        .await;
    assert_eq!(s, 200, "{list}");
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    app.payment(&id).await
}

/// The payment's one attempt: its id (= the `transactionRequestId`), stored step and bytes.
async fn only_attempt(app: &TestApp, payment: &Value) -> (String, String, Vec<u8>) {
    railgate::store::sql::query_as(
        "SELECT id, request_step, request_body FROM attempts WHERE payment_id = $1",
    )
    .bind(payment["id"].as_str().unwrap())
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

fn sent_to_hub(app: &TestApp, method: &str, path: &str) -> Vec<Vec<u8>> {
    hub(app)
        .received()
        .into_iter()
        .filter(|r| r.method == method && r.path == path)
        .map(|r| r.body)
        .collect()
}

fn states_of(p: &Value) -> Vec<String> {
    p["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap().to_owned())
        .collect()
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

// The whole scenario table as request-to-pay (Railgate is the payee FSP, the mock hub plays
// the payer's FSP), then what each row must have done on the wire and in the store.
both_stores!(mojaloop_request_to_pay_scenarios, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let control = format!("{}/_control", hub(&app).base_url());
    app.run_scenario_table(
        "mojaloop",
        "collection",
        "TZS",
        "2500.50",
        msisdn("2557123459"),
        &control,
    )
    .await;
    assert!(
        hub(&app).rejections().is_empty(),
        "{:?}",
        hub(&app).rejections()
    );

    // 01–03: the payer FSP's codes are kept.
    for (digits, code) in [("01", "4001"), ("02", "3204"), ("03", "4101")] {
        let p = r2p_payment(&app, digits).await;
        assert_eq!(p["failure"]["rail_code"], code, "{digits}: {p}");
    }
    let p = r2p_payment(&app, "03").await;
    assert_eq!(p["failure"]["code"], "declined", "{p}");

    // 04: RECEIVED first, the payer's transfer only later.
    let p = r2p_payment(&app, "04").await;
    let (trid, _, _) = only_attempt(&app, &p).await;
    let puts = stored_callbacks(&app, "PUT", &format!("/transactionRequests/{trid}")).await;
    assert_eq!(json_of(&puts[0].1)["transactionRequestState"], "RECEIVED");
    let transfer = p["rail_reference"].as_str().unwrap().to_owned();
    let rows: Vec<(String, String, Vec<u8>)> = railgate::store::sql::query_as(
        "SELECT method, path, body FROM callbacks WHERE rail = 'mojaloop' \
         ORDER BY received_at, id",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    let received = rows
        .iter()
        .position(|r| r.0 == "PUT" && r.1 == format!("/transactionRequests/{trid}"))
        .unwrap();
    let quoted = rows
        .iter()
        .position(|r| r.0 == "POST" && json_of(&r.2)["transactionRequestId"] == trid.as_str())
        .unwrap();
    assert!(received < quoted, "RECEIVED before the payer's quote");
    let posts = stored_callbacks(&app, "POST", "/transfers").await;
    assert!(posts
        .iter()
        .any(|r| json_of(&r.1)["transferId"] == transfer.as_str()));

    // 05 / 06: nothing until the gateway asked; the answer settled it.
    for (digits, state) in [("05", "ACCEPTED"), ("06", "REJECTED")] {
        let p = r2p_payment(&app, digits).await;
        let (trid, _, _) = only_attempt(&app, &p).await;
        let path = format!("/transactionRequests/{trid}");
        assert!(
            !sent_to_hub(&app, "GET", &path).is_empty(),
            "{digits}: asked"
        );
        let puts = stored_callbacks(&app, "PUT", &path).await;
        assert!(!puts.is_empty(), "{digits}");
        for (_, body, _) in &puts {
            assert_eq!(
                json_of(body)["transactionRequestState"],
                state,
                "{digits}: only the inquiry's answer"
            );
        }
    }
    // 05 was settled by the payer's transfer that followed the inquiry's ACCEPTED.
    let p = r2p_payment(&app, "05").await;
    let transfer = p["rail_reference"].as_str().unwrap().to_owned();
    let applied = stored_callbacks(&app, "POST", "/transfers")
        .await
        .into_iter()
        .filter(|r| json_of(&r.1)["transferId"] == transfer.as_str() && r.2 == "applied")
        .count();
    assert_eq!(applied, 1, "{p}");
    let p = r2p_payment(&app, "06").await;
    assert_eq!(p["failure"]["rail_code"], "REJECTED", "{p}");

    // 07: the payer FSP sent its POST /transfers three times: applied once, answered each time
    // with the same COMMITTED, and the ledger posted once.
    let p = r2p_payment(&app, "07").await;
    let transfer = p["rail_reference"].as_str().unwrap().to_owned();
    let mut verdicts: Vec<String> = stored_callbacks(&app, "POST", "/transfers")
        .await
        .into_iter()
        .filter(|r| json_of(&r.1)["transferId"] == transfer.as_str())
        .map(|r| r.2)
        .collect();
    verdicts.sort();
    assert_eq!(
        verdicts,
        ["applied", "resent_answer", "resent_answer"],
        "{verdicts:?}"
    );
    let put_path = format!("/transfers/{transfer}");
    let answered = || sent_to_hub(&app, "PUT", &put_path).len();
    assert!(
        eventually(Duration::from_secs(10), || answered() >= 3).await,
        "each resend answered"
    );
    let answers = sent_to_hub(&app, "PUT", &put_path);
    assert!(answers.iter().all(|a| a == &answers[0]), "the same answer");
    let posted: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM ledger_transfers WHERE payment_id = $1 AND phase = 'posted'",
    )
    .bind(p["id"].as_str().unwrap())
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(posted, 1);

    // 08: the forged REJECTED was refused (and logged with its reason); the inquiry settled it.
    let p = r2p_payment(&app, "08").await;
    let (trid, _, _) = only_attempt(&app, &p).await;
    let path = format!("/transactionRequests/{trid}");
    let refused: Vec<(Option<String>, Vec<u8>)> = railgate::store::sql::query_as(
        "SELECT reason, body FROM callbacks WHERE rail = 'mojaloop' AND path = $1 \
         AND verdict = 'refused'",
    )
    .bind(&path)
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].0.as_deref().unwrap_or("").contains("roguefsp"),
        "{refused:?}"
    );
    assert_eq!(
        json_of(&refused[0].1)["transactionRequestState"],
        "REJECTED"
    );
    assert!(!sent_to_hub(&app, "GET", &path).is_empty());

    // 09: refused twice with 503, then accepted: the same stored bytes every time.
    let p = r2p_payment(&app, "09").await;
    let (trid, step, stored) = only_attempt(&app, &p).await;
    assert_eq!(step, "transaction_request");
    let sent: Vec<Vec<u8>> = sent_to_hub(&app, "POST", "/transactionRequests")
        .into_iter()
        .filter(|b| json_of(b)["transactionRequestId"] == trid.as_str())
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|b| b == &stored), "byte-identical resends");

    // 10: the connection dropped after the payer FSP took the request: unknown, asked, never
    // resent (the inquiry found it), completed.
    let p = r2p_payment(&app, "10").await;
    let states = states_of(&p);
    let unknown = states
        .iter()
        .position(|s| s == "unknown")
        .expect("went unknown");
    assert!(
        states[unknown..].contains(&"completed".to_owned()),
        "{states:?}"
    );
    let (trid, _, _) = only_attempt(&app, &p).await;
    let sent = sent_to_hub(&app, "POST", "/transactionRequests")
        .into_iter()
        .filter(|b| json_of(b)["transactionRequestId"] == trid.as_str())
        .count();
    assert_eq!(sent, 1);
    assert!(!sent_to_hub(&app, "GET", &format!("/transactionRequests/{trid}")).is_empty());

    // 11: failed on the payer FSP's 4101, then its transfer came: a recorded conflict.
    let p = r2p_payment(&app, "11").await;
    assert_eq!(p["state"], "failed", "{p}");
    assert_eq!(p["failure"]["rail_code"], "4101", "{p}");
    let conflicts: i64 =
        railgate::store::sql::query_scalar("SELECT COUNT(*) FROM conflicts WHERE payment_id = $1")
            .bind(p["id"].as_str().unwrap())
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(conflicts, 1);

    // 12: asked, never answered.
    let p = r2p_payment(&app, "12").await;
    let (trid, _, _) = only_attempt(&app, &p).await;
    assert!(!sent_to_hub(&app, "GET", &format!("/transactionRequests/{trid}")).is_empty());
    assert!(
        stored_callbacks(&app, "PUT", &format!("/transactionRequests/{trid}"))
            .await
            .is_empty()
    );
    app.stop().await;
});

both_stores!(
    mojaloop_pushed_payment_matches_expected_collection,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let (s, p) = app
            .post(
                "/v1/collections",
                &app.key,
                &json!({"reference": "PREM-ML-1", "amount": {"value": "5000.00", "currency": "TZS"},
                   "payer": {"id_type": "MSISDN", "id_value": "255712345600"}, "mode": "expected"}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{p}");
        let id = p["id"].as_str().unwrap().to_owned();
        let reference = p["payment_reference"].as_str().unwrap().to_owned();
        push(&app, &reference, "5000").await;
        let p = app.wait_final(&id).await;
        assert_eq!(p["state"], "completed", "{p}");
        assert!(
            eventually(Duration::from_secs(10), || hub(&app)
                .collected()
                .iter()
                .any(|c| c.reference == reference && c.committed))
            .await,
            "the payer FSP got our COMMITTED: {:?}",
            hub(&app).collected()
        );

        // The payer FSP resends the same POST /transfers: answered as before, applied once.
        let transfers = stored_callbacks(&app, "POST", "/transfers").await;
        assert_eq!(transfers.len(), 1);
        let (_, body, _) = transfers[0].clone();
        let transfer: Value = serde_json::from_slice(&body).unwrap();
        let transfer_id = transfer["transferId"].as_str().unwrap().to_owned();
        let put_path = format!("/transfers/{transfer_id}");
        let puts = |app: &TestApp, path: &str| {
            hub(app)
                .received()
                .iter()
                .filter(|r| r.method == "PUT" && r.path == path)
                .count()
        };
        assert_eq!(puts(&app, &put_path), 1);
        let s = call_gateway(
            &app,
            reqwest::Method::POST,
            "/transfers",
            "transfers",
            "mockdfsp",
            body.clone(),
        )
        .await;
        assert_eq!(s, 202);
        assert!(
            eventually(Duration::from_secs(10), || puts(&app, &put_path) == 2).await,
            "the resend got the stored answer again"
        );
        let resent = hub(&app)
            .received()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path == put_path)
            .collect::<Vec<_>>();
        assert_eq!(resent[0].body, resent[1].body, "the same COMMITTED answer");

        // The same transferId with another body: 3106, nothing applied.
        let mut modified = transfer.clone();
        modified["extensionList"] = json!({"extension": [{"key": "k", "value": "v"}]});
        let s = call_gateway(
            &app,
            reqwest::Method::POST,
            "/transfers",
            "transfers",
            "mockdfsp",
            serde_json::to_vec(&modified).unwrap(),
        )
        .await;
        assert_eq!(s, 202);
        let error_path = format!("{put_path}/error");
        assert!(
            eventually(Duration::from_secs(10), || puts(&app, &error_path) == 1).await,
            "3106 sent back"
        );
        let err = hub(&app)
            .received()
            .into_iter()
            .find(|r| r.path == error_path)
            .unwrap();
        let err: Value = serde_json::from_slice(&err.body).unwrap();
        assert_eq!(err["errorInformation"]["errorCode"], "3106");
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "completed");
        assert!(p["conflict"].is_null(), "{p}");
        let verdicts: Vec<String> = stored_callbacks(&app, "POST", "/transfers")
            .await
            .into_iter()
            .map(|r| r.2)
            .collect();
        assert_eq!(
            verdicts,
            ["applied", "resent_answer", "modified_request"],
            "{verdicts:?}"
        );
        app.stop().await;
    }
);

both_stores!(
    mojaloop_pushed_payment_with_unknown_reference_goes_to_suspense,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let (s, p) = app
            .post(
                "/v1/collections",
                &app.key,
                &json!({"reference": "PREM-ML-2", "amount": {"value": "700", "currency": "TZS"},
                   "payer": {"id_type": "MSISDN", "id_value": "255712345600"}, "mode": "expected"}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{p}");
        let id = p["id"].as_str().unwrap().to_owned();
        push(&app, "000000000017", "700").await;
        // The money was taken (COMMITTED to the payer's FSP) and recorded as matching nothing.
        assert!(
            eventually(Duration::from_secs(10), || hub(&app)
                .collected()
                .iter()
                .any(|c| c.reference == "000000000017" && c.committed))
            .await,
            "{:?}",
            hub(&app).collected()
        );
        let transfers = stored_callbacks(&app, "POST", "/transfers").await;
        assert_eq!(transfers.len(), 1);
        assert_eq!(transfers[0].2, "unmatched");
        let p = app.payment(&id).await;
        assert_eq!(
            p["state"], "pending",
            "the expected collection still waits: {p}"
        );
        let completed: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM payments WHERE state = 'completed'",
        )
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(completed, 0);
        // Held in the gateway's suspense, once, against the Mojaloop rail's clearing account.
        let held: Vec<(String, i64)> = railgate::store::sql::query_as(
            "SELECT a.code, CAST(SUM(e.credits_posted) - SUM(e.debits_posted) AS BIGINT) \
             FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id \
             WHERE a.client_id IS NULL GROUP BY a.code ORDER BY a.code",
        )
        .fetch_all(app.db.pool())
        .await
        .unwrap();
        assert_eq!(
            held,
            [
                ("rail:mojaloop:clearing".to_owned(), -70_000),
                ("suspense".to_owned(), 70_000)
            ]
        );
        app.stop().await;
    }
);

both_stores!(mojaloop_resends_are_byte_identical, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    // Ends in 09: the hub answers 503 to the first two POST /transfers.
    let body = json!({"reference": "ML-BYTES-09", "amount": {"value": "1200.25", "currency": "TZS"},
            "payee": {"id_type": "MSISDN", "id_value": "255712349909"}, "rail": "mojaloop"});
    let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
    assert_eq!(s, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let p = app.wait_final(&id).await;
    assert_eq!(p["state"], "completed", "{p}");
    let (step, stored): (String, Vec<u8>) = railgate::store::sql::query_as(
        "SELECT request_step, request_body FROM attempts WHERE payment_id = $1",
    )
    .bind(&id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(step, "transfer");
    let sent: Vec<Vec<u8>> = hub(&app)
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/transfers")
        .map(|r| r.body)
        .filter(|b| {
            let v: Value = serde_json::from_slice(b).unwrap_or(Value::Null);
            let s: Value = serde_json::from_slice(&stored).unwrap_or(Value::Null);
            v["transferId"] == s["transferId"]
        })
        .collect();
    assert_eq!(sent.len(), 3, "two refused with 503, then accepted");
    for b in &sent {
        assert_eq!(b, &stored, "every send is the stored bytes");
    }
    assert_eq!(
        app.paid_at(&format!("{}/_control", hub(&app).base_url()), "ML-BYTES-09")
            .await,
        1
    );
    app.stop().await;
});

both_stores!(
    mojaloop_forged_and_tampered_callbacks_refused,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let body = json!({"reference": "ML-FORGE-00", "amount": {"value": "300", "currency": "TZS"},
        "payee": {"id_type": "MSISDN", "id_value": "255712349800"}, "rail": "mojaloop"});
        let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        let id = p["id"].as_str().unwrap().to_owned();
        let p = app.wait_final(&id).await;
        assert_eq!(p["state"], "completed", "{p}");
        let puts = stored_callbacks(&app, "PUT", "/transfers/").await;
        let (path, genuine, verdict) = puts[0].clone();
        assert_eq!(verdict, "applied");
        let before = puts.len();

        // The same COMMITTED from an FSP the scheme did not name: refused before anything.
        let s = call_gateway(
            &app,
            reqwest::Method::PUT,
            &path,
            "transfers",
            "roguefsp",
            genuine.clone(),
        )
        .await;
        assert_eq!(s, 401);

        // A COMMITTED whose fulfilment does not hash to our condition: refused on review.
        let mut tampered: Value = serde_json::from_slice(&genuine).unwrap();
        tampered["fulfilment"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let s = call_gateway(
            &app,
            reqwest::Method::PUT,
            &path,
            "transfers",
            "mockdfsp",
            serde_json::to_vec(&tampered).unwrap(),
        )
        .await;
        assert_eq!(s, 200);
        let verdicts: Vec<String> = stored_callbacks(&app, "PUT", "/transfers/")
            .await
            .into_iter()
            .skip(before)
            .map(|r| r.2)
            .collect();
        assert_eq!(verdicts, ["refused", "refused"], "{verdicts:?}");
        let refused: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM callback_events WHERE rail = 'mojaloop' AND effect = 'refused'",
        )
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(refused, 1);
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "completed");
        assert!(p["conflict"].is_null(), "{p}");
        app.stop().await;
    }
);

both_stores!(mojaloop_routes_alias_parties, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let body = json!({"reference": "ML-ALIAS-00", "amount": {"value": "100", "currency": "TZS"},
        "payee": {"id_type": "ALIAS", "id_value": "asha.juma.00"}});
    let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["rail"], "mojaloop");
    let p = app.wait_final(p["id"].as_str().unwrap()).await;
    assert_eq!(p["state"], "completed", "{p}");
    app.stop().await;
});

// JWS on both ways: our requests signed with the configured key (the hub refuses unsigned or
// badly signed ones), the hub's and the peer's callbacks verified with their public keys, and
// scenario 08's forged signature refused while the inquiry settles the payment.
both_stores!(mojaloop_with_jws_signatures, |store| async move {
    use railgate_mojaloop::jws::{generate_key, JwsSigner};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let ours = generate_key().unwrap();
    let theirs = generate_key().unwrap();
    let forger = generate_key().unwrap();
    let dir = std::env::temp_dir().join(format!("railgate-jws-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let our_key = dir.join("railgate.key");
    let their_pub = dir.join("hub.pem");
    std::fs::write(
        &our_key,
        ours.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(
        &their_pub,
        theirs
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let our_signer = JwsSigner::new(ours).unwrap();
    let mut cfg = railgate_mojaloop::MockHubConfig::new(railgate::sandbox::MOJALOOP_FSP_ID);
    cfg.callback_delay = Duration::from_millis(20);
    cfg.jws = Some(railgate_mojaloop::mock::MockJws {
        signer: JwsSigner::new(theirs).unwrap(),
        railgate: Some(our_signer.verifier()),
        forger: JwsSigner::new(forger).unwrap(),
    });
    let hub = railgate_mojaloop::MockHub::start(cfg).await.unwrap();
    let pem = their_pub.display().to_string();
    let settings: toml::Table = toml::from_str(&format!(
        r#"
        hub_url = "{}"
        fsp_id = "{}"
        peers = "mockdfsp"
        ilp_secret = "jws-test-ilp-secret"
        scheme_party = "BUSINESS:NHIF"
        jws_signing_key_file = "{}"
        jws_peer_keys = "switch={pem},mockdfsp={pem}"
        "#,
        hub.base_url(),
        railgate::sandbox::MOJALOOP_FSP_ID,
        our_key.display(),
    ))
    .unwrap();
    let Some(app) = spawn_app_with(store, |c| {
        c.rails.push(railgate::config::RailConfig {
            concurrency: 16,
            request_timeout_ms: 1_000,
            deadline_secs: 8,
            callback_grace_ms: 400,
            settings,
            ..railgate::config::RailConfig::new("mojaloop", "mojaloop")
        });
    })
    .await
    else {
        return;
    };
    hub.set_callback_base(&format!("{}/rails/mojaloop", app.base));
    let mut ids = Vec::new();
    for digits in ["00", "08"] {
        let body = json!({"reference": format!("ML-JWS-{digits}"),
            "amount": {"value": "450", "currency": "TZS"},
            "payee": {"id_type": "MSISDN", "id_value": format!("2557123497{digits}")},
            "rail": "mojaloop"});
        let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        ids.push(p["id"].as_str().unwrap().to_owned());
        // The same endings as request-to-pay: the payer FSP's quote and transfer are signed,
        // so are our answers; 08's forged REJECTED is refused.
        let body = json!({"reference": format!("ML-JWS-C-{digits}"),
            "amount": {"value": "450", "currency": "TZS"},
            "payer": {"id_type": "MSISDN", "id_value": format!("2557123496{digits}")},
            "mode": "request_to_pay", "rail": "mojaloop"});
        let (s, p) = app.post("/v1/collections", &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let p = app.wait_final(id).await;
        assert_eq!(p["state"], "completed", "{p}");
    }
    assert!(hub.rejections().is_empty(), "{:?}", hub.rejections());
    let refused: Vec<(String, Option<String>, String)> = railgate::store::sql::query_as(
        "SELECT verdict, reason, path FROM callbacks WHERE rail = 'mojaloop' \
         AND verdict = 'refused' ORDER BY path",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(refused.len(), 2, "only the forged callbacks: {refused:?}");
    assert!(
        refused[0].2.starts_with("/transactionRequests/"),
        "{refused:?}"
    );
    assert!(refused[1].2.starts_with("/transfers/"), "{refused:?}");
    for r in &refused {
        assert!(
            r.1.as_deref().unwrap_or("").contains("signature"),
            "{refused:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await;
});

// `PUT /parties` names only the party: one answer serves every attempt waiting on that lookup,
// and a later payment to the same party is not taken for a replay of the earlier answer.
both_stores!(mojaloop_one_party_several_payments, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let pay = |reference: &str| {
        json!({"reference": reference, "amount": {"value": "90", "currency": "TZS"},
            "payee": {"id_type": "MSISDN", "id_value": "255712349600"}, "rail": "mojaloop"})
    };
    let (body_a, body_b) = (pay("ML-SAME-A"), pay("ML-SAME-B"));
    let (a, b) = tokio::join!(
        app.post("/v1/disbursements", &app.key, &body_a, None),
        app.post("/v1/disbursements", &app.key, &body_b, None)
    );
    assert_eq!(a.0, 201, "{}", a.1);
    assert_eq!(b.0, 201, "{}", b.1);
    for p in [&a.1, &b.1] {
        let p = app.wait_final(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "completed", "{p}");
    }
    let (s, c) = app
        .post("/v1/disbursements", &app.key, &pay("ML-SAME-C"), None)
        .await;
    assert_eq!(s, 201, "{c}");
    let c = app.wait_final(c["id"].as_str().unwrap()).await;
    assert_eq!(c["state"], "completed", "{c}");
    let control = format!("{}/_control", hub(&app).base_url());
    for r in ["ML-SAME-A", "ML-SAME-B", "ML-SAME-C"] {
        assert_eq!(app.paid_at(&control, r).await, 1, "{r}");
    }
    app.stop().await;
});

// `railgate sandbox` itself: the hub learns where the gateway listens, ALIAS parties route to
// it, and an insuree's push completes an expected collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_runs_the_mojaloop_hub() {
    let sb = railgate::sandbox::start(railgate::sandbox::SandboxOptions {
        port: 0,
        db: None,
        api_key: None,
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let base = sb.gateway.base_url();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&sb.api_key)
            .json(&body)
            .send()
    };
    let get = |id: String| {
        let http = http.clone();
        let url = format!("{base}/v1/payments/{id}");
        let key = sb.api_key.clone();
        async move {
            let v: Value = http
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let d: Value = post(
        "/v1/disbursements",
        json!({"reference": "SB-ML-1", "amount": {"value": "100", "currency": "TZS"},
            "payee": {"id_type": "ALIAS", "id_value": "asha.juma.00"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(d["rail"], "mojaloop", "{d}");
    let c: Value = post(
        "/v1/collections",
        json!({"reference": "SB-ML-2", "amount": {"value": "5000", "currency": "TZS"},
            "payer": {"id_type": "MSISDN", "id_value": "255712345600"}, "mode": "expected"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let reference = c["payment_reference"].as_str().unwrap().to_owned();
    let hub = sb.rails.mojaloop.base_url();
    let pushed = http
        .post(format!("{hub}/_control/push"))
        .json(
            &json!({"id_type": "BUSINESS", "id_value": "NHIF", "reference": reference,
            "amount": "5000", "currency": "TZS", "payer_msisdn": "255712345600"}),
        )
        .send()
        .await
        .unwrap();
    assert!(pushed.status().is_success());
    for id in [&d["id"], &c["id"]] {
        let id = id.as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let p = loop {
            let p = get(id.clone()).await;
            if p["state"] == "completed" || tokio::time::Instant::now() > deadline {
                break p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(p["state"], "completed", "{p}");
    }
    sb.gateway.shutdown().await;
}

// A payer FSP that leaves out the (optional) `transactionRequestId` from its quote: its
// transfer is matched to our request-to-pay by the `transactionId` it named in
// `PUT /transactionRequests`; nothing goes to suspense.
both_stores!(
    mojaloop_request_to_pay_matched_by_transaction_id,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let body = json!({
            "reference": "R2P-NO-TRID",
            "amount": {"value": "2500.50", "currency": "TZS"},
            "payer": msisdn("2557123459")("13"),
            "rail": "mojaloop",
        });
        let (s, p) = app.post("/v1/collections", &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        let id = p["id"].as_str().unwrap().to_owned();
        let p = app
            .wait_for(&id, Duration::from_secs(40), |p| {
                p["state"] == "completed" || p["state"] == "failed"
            })
            .await;
        assert_eq!(p["state"], "completed", "{p}");
        let quotes = stored_callbacks(&app, "POST", "/quotes").await;
        assert_eq!(quotes.len(), 1);
        assert!(json_of(&quotes[0].1).get("transactionRequestId").is_none());
        let linked = stored_callbacks(&app, "PUT", "/transactionRequests/").await;
        let transaction_id = json_of(&linked[0].1)["transactionId"].clone();
        assert_eq!(json_of(&quotes[0].1)["transactionId"], transaction_id);
        let suspense: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM ledger_entries e JOIN ledger_accounts a ON e.account_id = a.id \
             WHERE a.code = 'suspense'",
        )
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(suspense, 0);
        assert!(
            hub(&app).rejections().is_empty(),
            "{:?}",
            hub(&app).rejections()
        );
        app.stop().await;
    }
);
