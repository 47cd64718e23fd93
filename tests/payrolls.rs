//! Payrolls through the API on both stores: CSV and JSON files, held and released, every bad
//! line reported with nothing stored, duplicates refused, progress, items, the openIMIS export,
//! and a 100,000-line file accepted.
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

async fn post_csv(app: &TestApp, query: &str, csv: String) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(&format!("/v1/payrolls{query}")))
        .bearer_auth(&app.key)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

async fn wait_payroll(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = app.get(&format!("/v1/payrolls/{id}"), &app.key).await;
        assert_eq!(s, 200, "{v}");
        if done(&v) || tokio::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(v: &Value, state: &str) -> i64 {
    v["states"][state]["count"].as_i64().unwrap_or(0)
}

const HEADER: &str = "reference,amount,currency,payee_id_type,payee_id,name,narrative\n";

both_stores!(
    held_csv_payroll_is_released_and_completes,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        let csv = format!(
            "{HEADER}PR-1,1000.00,TZS,MSISDN,255712345600,Asha Juma,May benefit\n\
         PR-2,2500.50,TZS,MSISDN,255712345601,Juma Ali,May benefit\n\
         PR-3,300,TZS,MSISDN,255712345642,\"Mwajuma, Said\",\n"
        );
        let (s, v) = post_csv(&app, "?hold=true&name=May", csv).await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["status"], "held");
        assert_eq!(v["name"], "May");
        assert_eq!(v["item_count"], 3);
        assert_eq!(count(&v, "received"), 3);
        assert_eq!(
            v["totals"][0],
            json!({"value": "3800.50", "currency": "TZS"})
        );
        let id = v["id"].as_str().unwrap().to_owned();
        // Held: nothing is dispatched.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.count("jobs").await, 0);
        assert!(app.mock.payouts().is_empty());
        let (s, items) = app
            .get(&format!("/v1/payrolls/{id}/items?state=received"), &app.key)
            .await;
        assert_eq!(s, 200, "{items}");
        assert_eq!(items["data"].as_array().unwrap().len(), 3);
        assert_eq!(items["data"][0]["payroll_id"], id.as_str());
        // Another client sees nothing of it.
        let (s, _) = app
            .get(&format!("/v1/payrolls/{id}"), &app.other_client_key)
            .await;
        assert_eq!(s, 404);
        let (s, v) = app
            .post(
                &format!("/v1/payrolls/{id}/release"),
                &app.key,
                &json!({}),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_ne!(v["status"], "held");
        let v = wait_payroll(&app, &id, |v| v["status"] == "completed").await;
        assert_eq!(v["status"], "completed", "{v}");
        assert_eq!(count(&v, "completed"), 2);
        assert_eq!(count(&v, "failed"), 1);
        assert_eq!(v["percent_done"], 100.0);
        assert_eq!(v["estimated_seconds_left"], 0);
        assert_eq!(app.paid("PR-1"), 1);
        assert_eq!(app.paid("PR-2"), 0);
        // Paging through the items.
        let (_, page) = app
            .get(&format!("/v1/payrolls/{id}/items?limit=2"), &app.key)
            .await;
        let cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let (_, rest) = app
            .get(
                &format!("/v1/payrolls/{id}/items?limit=2&cursor={cursor}"),
                &app.key,
            )
            .await;
        assert_eq!(rest["data"].as_array().unwrap().len(), 1);
        assert!(rest["next_cursor"].is_null());
        // The export: Paid = Yes with the rail's receipt for the completed ones only.
        let resp = app
            .http
            .get(app.url(&format!("/v1/payrolls/{id}/export?format=openimis-csv")))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        let headers: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(
            headers,
            [
                "Payroll Name",
                "Payroll Status",
                "First Name",
                "Last Name",
                "Date of Birth",
                "Code",
                "Status",
                "Amount",
                "Type",
                "Receipt",
                "Paid"
            ]
        );
        let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        for r in &rows {
            let (code, receipt, paid) = (&r[5], &r[9], &r[10]);
            let (_, p) = app
                .get(&format!("/v1/payments?reference={code}"), &app.key)
                .await;
            let p = &p["data"][0];
            if p["state"] == "completed" {
                assert_eq!(paid, "Yes");
                assert!(!receipt.is_empty());
                assert_eq!(receipt, p["receipt"].as_str().unwrap());
            } else {
                assert_eq!(paid, "No");
                assert_eq!(receipt, "");
            }
            assert_eq!(&r[0], "May");
        }
        assert_eq!(&rows[2][2], "Mwajuma,");
        assert_eq!(&rows[2][7], "300.00");
        app.stop().await;
    }
);

both_stores!(
    bad_lines_are_all_reported_and_nothing_is_stored,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        let csv = format!(
            "{HEADER}OK-1,1000.00,TZS,MSISDN,255712345600,Asha,\n\
         OK-2,10.005,TZS,MSISDN,255712345600,Asha,\n\
         OK-3,1000.00,XXX,MSISDN,255712345600,Asha,\n\
         OK-4,1000.00,TZS,PIGEON,255712345600,Asha,\n\
         OK-1,5.00,TZS,MSISDN,255712345600,Asha,\n\
         OK-6,1000.00,TZS,MSISDN,255712345600\n\
         ,-3,TZS,MSISDN,12,Asha,\n"
        );
        let (s, v) = post_csv(&app, "", csv).await;
        assert_eq!(s, 422, "{v}");
        assert_eq!(v["type"], "/problems/payroll-invalid");
        let errors = v["errors"].as_array().unwrap();
        let has = |line: u64, field: &str| {
            errors
                .iter()
                .any(|e| e["line"] == line && e["field"] == field && e["reason"].is_string())
        };
        assert!(has(3, "amount"), "{v}");
        assert!(has(4, "currency"), "{v}");
        assert!(has(5, "payee_id_type"), "{v}");
        assert!(has(6, "reference"), "{v}");
        assert!(has(7, ""), "{v}");
        assert!(has(8, "reference"), "{v}");
        assert!(has(8, "amount"), "{v}");
        assert!(!errors.iter().any(|e| e["line"] == 2), "{v}");
        assert_eq!(app.count("payrolls").await, 0);
        assert_eq!(app.count("payments").await, 0);
        // Missing columns are named on line 1.
        let (s, v) = post_csv(&app, "", "reference,currency\nX,TZS\n".into()).await;
        assert_eq!(s, 422, "{v}");
        let fields: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["amount", "payee_id"]);
        // The wrong content type, and an empty file.
        let resp = app
            .http
            .post(app.url("/v1/payrolls"))
            .bearer_auth(&app.key)
            .header("Content-Type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415);
        let (s, _) = post_csv(&app, "", HEADER.into()).await;
        assert_eq!(s, 422);
        // A read-only key may not submit.
        let resp = app
            .http
            .post(app.url("/v1/payrolls"))
            .bearer_auth(&app.read_key)
            .header("Content-Type", "text/csv")
            .body(format!("{HEADER}R-1,1.00,TZS,MSISDN,255712345600,A,\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(app.count("payments").await, 0);
        app.stop().await;
    }
);

both_stores!(references_used_before_are_refused, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    app.disburse("USED-1", "255712345600", "10.00").await;
    let before = app.count("payments").await;
    let csv = format!(
        "{HEADER}NEW-1,1000.00,TZS,MSISDN,255712345600,Asha,\n\
         USED-1,1000.00,TZS,MSISDN,255712345600,Asha,\n"
    );
    let (s, v) = post_csv(&app, "?hold=true", csv.clone()).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["errors"][0]["line"], 3);
    assert_eq!(v["errors"][0]["field"], "reference");
    assert_eq!(app.count("payments").await, before);
    assert_eq!(app.count("payrolls").await, 0);
    // An accepted file cannot be sent twice either.
    let csv = format!("{HEADER}NEW-1,1000.00,TZS,MSISDN,255712345600,Asha,\n");
    let (s, _) = post_csv(&app, "?hold=true", csv.clone()).await;
    assert_eq!(s, 201);
    let (s, v) = post_csv(&app, "?hold=true", csv).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(app.count("payrolls").await, 1);
    app.stop().await;
});

both_stores!(json_payroll_released_at_once, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let body = json!({
        "name": "June",
        "items": [
            disbursement("J-1", "255712345600", "100.00"),
            disbursement("J-2", "255712345603", "200.00"),
        ]
    });
    let (s, v) = app
        .post("/v1/payrolls", &app.key, &body, Some("payroll-june"))
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // The same key and body replay the first answer; nothing is stored twice.
    let (s, again) = app
        .post("/v1/payrolls", &app.key, &body, Some("payroll-june"))
        .await;
    assert_eq!(s, 201);
    assert_eq!(again["id"], v["id"]);
    let v = wait_payroll(&app, &id, |v| v["status"] == "completed").await;
    assert_eq!(count(&v, "completed"), 1, "{v}");
    assert_eq!(count(&v, "failed"), 1, "{v}");
    // A bad item is reported by its position, with the API's field names.
    let body = json!({"items": [
        disbursement("J-3", "255712345600", "100.00"),
        {"reference": "J-4", "amount": {"value": 5, "currency": "TZS"}},
    ]});
    let (s, v) = app.post("/v1/payrolls", &app.key, &body, None).await;
    assert_eq!(s, 422, "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert!(errors
        .iter()
        .any(|e| e["line"] == 2 && e["field"] == "amount.value"));
    assert!(errors
        .iter()
        .any(|e| e["line"] == 2 && e["field"] == "payee"));
    assert_eq!(app.count("payments").await, 2);
    app.stop().await;
});

// 100,000 lines accepted, validated and stored on both stores, then released (jobs written
// in batches); the dispatcher is off so that CI does not pay all of them.
both_stores!(hundred_thousand_lines, |store| async move {
    // The release alone: no dispatcher, and no batch uploads (tests/payroll_batches.rs).
    let Some(app) = spawn_app_with(store, |c| {
        c.dispatch.enabled = false;
        for r in &mut c.rails {
            r.batch = Some(false);
        }
    })
    .await
    else {
        return;
    };
    let n = 100_000;
    let mut csv = String::with_capacity(n * 60);
    csv.push_str("Code,Amount,phone_number,First Name,Last Name\n");
    for i in 0..n {
        csv.push_str(&format!(
            "BEN-{i:07},{}.{:02},2557{:08},Asha,Juma\n",
            1000 + i % 500,
            i % 100,
            i
        ));
    }
    let started = std::time::Instant::now();
    let (s, v) = post_csv(&app, "?hold=true&currency=TZS", csv).await;
    eprintln!(
        "{store:?}: 100,000 lines accepted in {:?}",
        started.elapsed()
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["item_count"], n);
    assert_eq!(count(&v, "received"), 100_000);
    assert_eq!(app.count("payments").await, 100_000);
    assert_eq!(app.count("payment_transitions").await, 100_000);
    let id = v["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let (s, v) = app
        .post(
            &format!("/v1/payrolls/{id}/release"),
            &app.key,
            &json!({}),
            None,
        )
        .await;
    eprintln!(
        "{store:?}: 100,000 items released in {:?}",
        started.elapsed()
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "released");
    assert_eq!(count(&v, "queued"), 100_000);
    assert_eq!(app.count("jobs").await, 100_000);
    assert_eq!(app.count("payment_transitions").await, 200_000);
    let url = app.database_url.clone();
    app.stop().await;
    drop_database(&url).await;
});

/// This test's database is large: it is removed once the test passed.
async fn drop_database(url: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(dir) = std::path::Path::new(path).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    } else if let Some((_, schema)) = url.split_once("search_path%3D") {
        let admin = railgate::store::Db::connect(&postgres_base(), 1)
            .await
            .unwrap();
        railgate::store::sql::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(admin.pool())
            .await
            .unwrap();
        admin.close().await;
    }
}

/// `railgate payroll submit` against a running gateway: uploads, follows to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_submit_follows_the_payroll_to_the_end() {
    let Some(app) = spawn_app(Store::Sqlite).await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("railgate-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("may.csv");
    std::fs::write(
        &file,
        "Code,Amount,phone_number\nCLI-1,10.00,255712345600\nCLI-2,10.00,255712345601\nCLI-3,10.00,255712345604\n",
    )
    .unwrap();
    let submit = railgate::payroll_cli::submit(railgate::payroll_cli::Submit {
        file: file.clone(),
        url: app.base.clone(),
        key: app.key.clone(),
        hold: false,
        currency: Some("TZS".into()),
        name: Some("CLI".into()),
    });
    tokio::time::timeout(Duration::from_secs(60), submit)
        .await
        .expect("the CLI follows the payroll to its end")
        .unwrap();
    let (_, page) = app.get("/v1/payments?reference=CLI-3", &app.key).await;
    assert_eq!(page["data"][0]["state"], "completed");
    let payroll = page["data"][0]["payroll_id"].as_str().unwrap().to_owned();
    let (_, v) = app.get(&format!("/v1/payrolls/{payroll}"), &app.key).await;
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["name"], "CLI");
    // A bad file is refused with an error, and held files return at once.
    std::fs::write(&file, "Code,Amount,phone_number\nCLI-4,abc,255712345600\n").unwrap();
    let refused = railgate::payroll_cli::submit(railgate::payroll_cli::Submit {
        file: file.clone(),
        url: app.base.clone(),
        key: app.key.clone(),
        hold: true,
        currency: Some("TZS".into()),
        name: None,
    })
    .await;
    assert!(refused.is_err());
    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await;
}

// Hold after release: the items no dispatcher has taken wait, even with a dispatcher running
// (a second gateway on the same store), until the payroll is released again; then each is paid
// once. The first gateway's dispatcher is off, so that every item is still queued when the
// pause comes (nothing here depends on timing to be taken or left).
both_stores!(
    a_released_payroll_is_held_and_released_again,
    |store| async move {
        // One by one through the mock rail (its batch API would take every item at the
        // release).
        let one_by_one = |cfg: &mut railgate::config::Config| {
            for r in &mut cfg.rails {
                r.batch = Some(false);
            }
        };
        let Some(app) = spawn_app_with(store, |cfg| {
            cfg.dispatch.enabled = false;
            one_by_one(cfg);
        })
        .await
        else {
            return;
        };
        let refs: Vec<String> = (0..6).map(|i| format!("HOLD-{i}")).collect();
        let items: Vec<Value> = refs
            .iter()
            .map(|r| disbursement(r, "255712345600", "10.00"))
            .collect();
        let (s, v) = app
            .post(
                "/v1/payrolls",
                &app.key,
                &json!({"name": "Paused", "hold": true, "items": items}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        assert_eq!(
            wait_payroll(&app, &id, |v| v["status"] == "held").await["status"],
            "held"
        );

        // Holding a held payroll changes nothing.
        let hold = format!("/v1/payrolls/{id}/hold");
        let release = format!("/v1/payrolls/{id}/release");
        let (s, v) = app.post(&hold, &app.key, &json!({}), None).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("held")), "{v}");
        // Only a key that may move payments holds one.
        let (s, _) = app.post(&hold, &app.read_key, &json!({}), None).await;
        assert_eq!(s, 403);

        let (s, v) = app.post(&release, &app.key, &json!({}), None).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("released")), "{v}");
        assert_eq!(v["finished"], 0, "{v}");
        let (s, v) = app.post(&hold, &app.key, &json!({}), None).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("paused")), "{v}");
        let (s, v) = app.post(&hold, &app.key, &json!({}), None).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("paused")), "{v}");
        let waiting: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM jobs j JOIN payments p ON p.id = j.payment_id \
         WHERE p.payroll_id = $1 AND j.run_at >= $2",
        )
        .bind(&id)
        .bind(railgate::store::payrolls::PAUSED_UNTIL)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(waiting, 6, "every queued item's job waits for the release");

        // The console's hold and release forms do the same, each written to the audit trail.
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let csrf = console_form_token(&app.key);
        let form = |action: &str| {
            no_redirects
                .post(app.url(&format!("/reports/payrolls/{id}/{action}")))
                .basic_auth("officer", Some(&app.key))
                .form(&[("csrf", csrf.as_str()), ("reason", "the programme asked")])
        };
        let resp = form("release").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 303);
        let resp = form("hold").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 303);
        assert!(resp.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("?held=1"));
        let (_, v) = app.get(&format!("/v1/payrolls/{id}"), &app.key).await;
        assert_eq!(v["status"], "paused", "{v}");
        let holds: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'payroll.hold' AND outcome = 'done'",
        )
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(holds, 1);

        // A gateway whose dispatcher runs, on the same store: it takes nothing of the paused payroll.
        let mut cfg = test_config(app.database_url.clone(), &app.mock.base_url());
        cfg.dispatch.enabled = true;
        one_by_one(&mut cfg);
        let worker = railgate::app::start(cfg, None).await.unwrap();
        // Meanwhile a payment of its own goes through that dispatcher: it is polling.
        let lone = app.disburse("HOLD-LONE", "255712345600", "5.00").await;
        let lone = app.wait_final(lone["id"].as_str().unwrap()).await;
        assert_eq!(lone["state"], "completed", "{lone}");
        let v = wait_payroll(&app, &id, |_| true).await;
        assert_eq!(v["finished"], 0, "a paused payroll's items were taken: {v}");
        let queued: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM payments WHERE payroll_id = $1 AND state = 'queued'",
        )
        .bind(&id)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(queued, 6, "a paused payroll's items were taken");
        for r in &refs {
            assert_eq!(app.paid(r), 0, "{r} was sent while paused");
        }

        // Released again: every item goes, each paid once.
        let (s, v) = app.post(&release, &app.key, &json!({}), None).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("released")), "{v}");
        let v = wait_payroll(&app, &id, |v| v["status"] == "completed").await;
        assert_eq!(count(&v, "completed"), 6, "{v}");
        for r in &refs {
            assert_eq!(app.paid(r), 1, "{r}");
        }
        // A completed payroll is not held.
        let (s, v) = app.post(&hold, &app.key, &json!({}), None).await;
        assert_eq!(s, 409, "{v}");
        worker.shutdown().await;
        app.stop().await;
    }
);
