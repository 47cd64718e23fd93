//! Ambiguous and unstorable input is refused at every entry point, before it reaches a store:
//! repeated JSON keys (422 naming the key's path), and control characters in JSON, query,
//! path, form, CSV and XML (a 4xx naming the field). The same answers on both stores, and no
//! row written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use serde_json::Value;

/// Posts raw bytes as JSON (a JSON library cannot write a repeated key).
async fn post_raw(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn first_field(v: &Value) -> &str {
    v["errors"][0]["field"].as_str().unwrap_or("<none>")
}

/// A disbursement body with `extra` spliced in just before the closing brace.
fn disbursement_with(extra: &str) -> String {
    format!(
        r#"{{"reference":"DUP-1","amount":{{"value":"1.00","currency":"TZS"}},"payee":{{"id_type":"MSISDN","id_value":"255712345600"}}{extra}}}"#
    )
}

both_stores!(
    repeated_json_keys_are_refused_naming_the_key,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        let cases = [
        (
            disbursement_with(r#","amount":{"value":"900000.00","currency":"TZS"}"#),
            "amount",
        ),
        (disbursement_with(r#","reference":"DUP-2""#), "reference"),
        (
            r#"{"reference":"DUP-3","amount":{"value":"1.00","currency":"TZS"},"payee":{"id_type":"MSISDN","id_value":"255712345600","id_value":"255799999999"}}"#.to_owned(),
            "payee.id_value",
        ),
        (
            r#"{"reference":"DUP-4","amount":{"value":"1.00","value":"2.00","currency":"TZS"},"payee":{"id_type":"MSISDN","id_value":"255712345600"}}"#.to_owned(),
            "amount.value",
        ),
    ];
        for (body, field) in &cases {
            let (s, v) = post_raw(&app, "/v1/disbursements", body).await;
            assert_eq!(s, 422, "{body}: {v}");
            assert_eq!(v["type"], "/problems/duplicate-key", "{v}");
            assert_eq!(first_field(&v), *field, "{v}");
        }
        assert_eq!(app.count("payments").await, 0);

        // Payroll JSON: at the top and inside an item.
        let item = r#"{"reference":"PR-1","amount":{"value":"1.00","currency":"TZS"},"payee":{"id_type":"MSISDN","id_value":"255712345600"}}"#;
        let dup_item = r#"{"reference":"PR-2","reference":"PR-3","amount":{"value":"1.00","currency":"TZS"},"payee":{"id_type":"MSISDN","id_value":"255712345600"}}"#;
        for (body, field) in [
            (
                format!(r#"{{"name":"a","name":"b","items":[{item}]}}"#),
                "name",
            ),
            (
                format!(r#"{{"items":[{item},{dup_item}]}}"#),
                "items[1].reference",
            ),
        ] {
            let (s, v) = post_raw(&app, "/v1/payrolls", &body).await;
            assert_eq!(s, 422, "{body}: {v}");
            assert_eq!(v["type"], "/problems/duplicate-key", "{v}");
            assert_eq!(first_field(&v), field, "{v}");
        }
        assert_eq!(app.count("payrolls").await, 0);
        assert_eq!(app.count("payments").await, 0);

        // Webhooks.
        let (s, v) = post_raw(
            &app,
            "/v1/webhooks",
            r#"{"url":"https://example.org/a","url":"https://example.org/b"}"#,
        )
        .await;
        assert_eq!(s, 422, "{v}");
        assert_eq!(first_field(&v), "url", "{v}");
        assert_eq!(app.count("webhook_endpoints").await, 0);

        // Reconciliation: a break's resolution.
        let (s, v) = post_raw(
            &app,
            "/v1/reconciliation/breaks/0190a1b2-0000-7000-8000-000000000001/resolve",
            r#"{"resolution":"write_off_difference","reason":"a","reason":"b"}"#,
        )
        .await;
        assert_eq!(s, 422, "{v}");
        assert_eq!(first_field(&v), "reason", "{v}");

        // The openIMIS facade answers in plain text.
        let resp = app
            .http
            .post(app.url("/openimis/payment"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(r#"{"invoiceId":"INV-1","amount":"1.00","invoiceId":"INV-2"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422);
        let text = resp.text().await.unwrap();
        assert!(text.starts_with("invoiceId:"), "{text}");
        app.stop().await;
    }
);

both_stores!(
    a_signed_callback_with_a_repeated_key_is_refused_and_changes_nothing,
    |store| async move {
        // A long grace keeps the dispatcher from asking the rail during the test.
        let Some(app) = spawn_app_with(store, |c| c.rails[0].callback_grace_ms = 120_000).await
        else {
            return;
        };
        let p = app.disburse("CB-DUP", "255712345605", "10.00").await; // 05: never calls back
        let id = p["id"].as_str().unwrap().to_owned();
        let p = app
            .wait_for(&id, std::time::Duration::from_secs(10), |p| {
                p["state"] == "pending"
            })
            .await;
        assert_eq!(p["state"], "pending");
        let attempt: String =
            railgate::store::sql::query_scalar("SELECT id FROM attempts WHERE payment_id = $1")
                .bind(&id)
                .fetch_one(app.db.pool())
                .await
                .unwrap();
        let at = chrono::Utc::now().to_rfc3339();
        // A key repeated that the adapter's own reader skips: before the gateway checked,
        // the callback was applied (the payment failed) though two readers could differ on it.
        let body = format!(
            r#"{{"event_id":"22222222-2222-4222-8222-222222222222","request_id":"{attempt}","transaction_id":"MRX9","status":"FAILED","code":"DECLINED","receipt":null,"amount":"10.00","currency":"TZS","occurred_at":"{at}","note":"a","note":"b"}}"#
        );
        let now = chrono::Utc::now().timestamp();
        let sig = railgate_mock::sign(MOCK_SECRET, now, body.as_bytes());
        let resp = app
            .http
            .post(app.url("/rails/mock/callback"))
            .header("content-type", "application/json")
            .header(railgate_mock::SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let v: Value = resp.json().await.unwrap();
        assert!(
            v["detail"].as_str().unwrap().contains("note"),
            "names the key: {v}"
        );
        let verdict: String = railgate::store::sql::query_scalar("SELECT verdict FROM callbacks")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
        assert_eq!(verdict, "refused");
        assert_eq!(app.count("callback_events").await, 0);
        assert_eq!(app.payment(&id).await["state"], "pending");
        app.stop().await;
    }
);

async fn get_status(app: &TestApp, path: &str) -> (u16, Value) {
    let resp = app
        .http
        .get(app.url(path))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

both_stores!(
    control_characters_are_refused_naming_the_field,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        // Query parameters.
        for (path, field) in [
            ("/v1/payments?reference=a%00b", "reference"),
            ("/v1/payments?rail=a%00b", "rail"),
            ("/v1/payments?reference=a%01b", "reference"),
            (
                "/v1/reports/reconciliation?from=2026-01-01&to=2026-01-31&rail=a%00b",
                "rail",
            ),
            ("/v1/reconciliation/breaks?status=a%00b", "status"),
        ] {
            let (s, v) = get_status(&app, path).await;
            assert_eq!(s, 400, "{path}: {v}");
            assert_eq!(first_field(&v), field, "{path}: {v}");
        }

        // A path parameter: no resource has such a name.
        let (s, v) = get_status(&app, "/v1/payments/a%00b").await;
        assert_eq!(s, 404, "{v}");
        assert_eq!(first_field(&v), "id", "{v}");

        // JSON: a webhook's description, a payroll's name (JSON and query), a break's reason and
        // owner, a disbursement's reference and payee.
        let cases = [
        (
            "/v1/webhooks",
            r#"{"url":"https://example.org/a","description":"a\u0000b"}"#.to_owned(),
            "description",
        ),
        (
            "/v1/disbursements",
            r#"{"reference":"R\u0000","amount":{"value":"1.00","currency":"TZS"},"payee":{"id_type":"MSISDN","id_value":"255712345600"}}"#.to_owned(),
            "reference",
        ),
        (
            "/v1/disbursements",
            r#"{"reference":"R-1","amount":{"value":"1.00","currency":"TZS"},"payee":{"id_type":"MSISDN","id_value":"2557\u001b12345600"}}"#.to_owned(),
            "payee.id_value",
        ),
        (
            "/v1/payrolls",
            r#"{"name":"a\u0000b","items":[{"reference":"PR-9","amount":{"value":"1.00","currency":"TZS"},"payee":{"id_type":"MSISDN","id_value":"255712345600"}}]}"#.to_owned(),
            "name",
        ),
        (
            "/v1/reconciliation/breaks/0190a1b2-0000-7000-8000-000000000001/resolve",
            r#"{"resolution":"write_off_difference","reason":"a\u0000b"}"#.to_owned(),
            "reason",
        ),
        (
            "/v1/reconciliation/breaks/0190a1b2-0000-7000-8000-000000000001/resolve",
            r#"{"resolution":"write_off_difference","reason":"ok","owner":"a\u0000b"}"#.to_owned(),
            "owner",
        ),
    ];
        for (path, body, field) in &cases {
            let (s, v) = post_raw(&app, path, body).await;
            assert_eq!(s, 422, "{path} {body}: {v}");
            assert_eq!(first_field(&v), *field, "{path} {body}: {v}");
        }
        let payroll = r#"{"items":[{"reference":"PR-8","amount":{"value":"1.00","currency":"TZS"},"payee":{"id_type":"MSISDN","id_value":"255712345600"}}]}"#;
        let (s, v) = post_raw(&app, "/v1/payrolls?name=a%00b", payroll).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(first_field(&v), "name", "{v}");

        // Payroll CSV: a cell.
        let resp = app
            .http
            .post(app.url("/v1/payrolls?currency=TZS"))
            .bearer_auth(&app.key)
            .header("content-type", "text/csv")
            .body("reference,amount,msisdn,name\nPC-1,1.00,255712345600,Asha\u{0}Juma\n")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(first_field(&v), "name", "{v}");

        // The openIMIS facade's invoiceId.
        let resp = app
            .http
            .post(app.url("/openimis/payment"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(r#"{"invoiceId":"INV\u0000","amount":"1.00"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422);
        assert!(resp.text().await.unwrap().starts_with("invoiceId"));

        // A statement: a CSV cell, and XML text (raw and as a character reference).
        let csv = "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n\
               2026-01-02,2026-01-02,1.00,TZS,DEBIT,R\u{1}X,255712345600,T1,0.00\n";
        let resp = app
            .http
            .post(app.url("/v1/statements?profile=mock-rail"))
            .bearer_auth(&app.key)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(first_field(&v), "reference", "{v}");
        for camt_text in ["A\u{1}B", "A&#1;B"] {
            let camt = format!(
                r#"<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><GrpHdr><MsgId>{camt_text}</MsgId></GrpHdr></BkToCstmrStmt></Document>"#
            );
            let resp = app
                .http
                .post(app.url("/v1/statements"))
                .bearer_auth(&app.key)
                .header("content-type", "application/xml")
                .body(camt)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 422, "{camt_text}");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["type"], "/problems/unreadable-statement", "{v}");
            assert!(
                first_field(&v).ends_with("MsgId"),
                "{camt_text}: names the element: {v}"
            );
        }

        // The HTML form that resolves a break.
        let resp = app
            .http
            .post(app.url("/reports/breaks/0190a1b2-0000-7000-8000-000000000001/resolve"))
            .basic_auth("officer", Some(&app.key))
            .form(&[
                ("csrf", console_form_token(&app.key).as_str()),
                ("resolution", "write_off_difference"),
                ("reason", "a\u{0}b"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422);
        assert!(resp.text().await.unwrap().contains("reason"));

        // A rail callback path, unauthenticated: refused before the inbox stores it.
        let resp = app
            .http
            .post(app.url("/rails/mock/a%00b"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404);

        for table in [
            "payments",
            "payrolls",
            "webhook_endpoints",
            "statements",
            "statement_lines",
            "callbacks",
            "recon_breaks",
        ] {
            assert_eq!(app.count(table).await, 0, "{table}");
        }
        app.stop().await;
    }
);

both_stores!(
    an_empty_query_value_is_an_absent_parameter,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        app.disburse("EMPTY-1", "255712345600", "1.00").await;
        for path in [
            "/v1/payments?cursor=",
            "/v1/payments?reference=&rail=&limit=",
            "/v1/events?after=",
            "/v1/reconciliation/breaks?cursor=&status=",
        ] {
            let (s, v) = get_status(&app, path).await;
            assert_eq!(s, 200, "{path}: {v}");
        }
        let (_, v) = get_status(&app, "/v1/payments?reference=").await;
        assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
        app.stop().await;
    }
);

both_stores!(
    a_rail_that_cannot_take_cents_names_the_amount,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let (s, v) = app
            .post(
                "/v1/disbursements",
                &app.key,
                &serde_json::json!({
                    "reference": "MP-CENTS",
                    "amount": {"value": "10.50", "currency": "KES"},
                    "payee": {"id_type": "MSISDN", "id_value": "254712345600"},
                    "rail": "mpesa",
                }),
                None,
            )
            .await;
        assert_eq!(s, 422, "{v}");
        assert_eq!(first_field(&v), "amount.value", "{v}");
        assert!(
            v["detail"].as_str().unwrap().starts_with("amount.value: "),
            "{v}"
        );
        app.stop().await;
    }
);
