//! openapi.yaml is the contract: the served routes and the document must agree, and what the
//! API returns must fit the schemas it declares.
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
use std::collections::BTreeSet;

fn spec() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

#[test]
fn documented_routes_are_the_served_routes() {
    let spec = spec();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = railgate::api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "served but not in openapi.yaml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in openapi.yaml but not served: {extra:?}"
    );
}

/// Resolves `$ref`s and checks `value` against the subset of JSON Schema the document uses.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(
            spec,
            &spec["components"]["schemas"][name],
            value,
            at,
            errors,
        );
    }
    if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = alts.iter().any(|alt| {
            let mut e = Vec::new();
            check(spec, alt, value, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: matches no alternative"));
        }
        return;
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !fits {
            errors.push(format!("{at}: is {actual}, schema says {types:?}"));
            return;
        }
    }
    if let (Some(e), Some(s)) = (schema.get("enum").and_then(Value::as_array), value.as_str()) {
        if !e.iter().any(|x| x == s) {
            errors.push(format!("{at}: '{s}' is not in the enum"));
        }
    }
    if let Value::Object(obj) = value {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = req.as_str().unwrap();
            if !obj.contains_key(k) {
                errors.push(format!("{at}: required '{k}' is missing"));
            }
        }
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(spec, s, v, &format!("{at}.{k}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: '{k}' is not in the schema"))
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(spec, s, v, &format!("{at}[{i}]"), errors);
        }
    }
}

fn assert_fits(spec: &Value, schema_name: &str, value: &Value) {
    let mut errors = Vec::new();
    check(
        spec,
        &serde_json::json!({"$ref": format!("#/components/schemas/{schema_name}")}),
        value,
        schema_name,
        &mut errors,
    );
    assert!(
        errors.is_empty(),
        "{schema_name} drifted from openapi.yaml: {errors:?}\n{value}"
    );
}

#[tokio::test]
async fn responses_fit_their_schemas() {
    let Some(app) = spawn_app(Store::Sqlite).await else {
        return;
    };
    let spec = spec();
    let p = app.disburse("OA-1", "255712345600", "10.00").await;
    assert_fits(&spec, "Payment", &p);
    let done = app.wait_final(p["id"].as_str().unwrap()).await;
    assert_fits(&spec, "Payment", &done);
    let body = serde_json::json!({"reference": "OA-2", "amount": {"value": "10.00", "currency": "TZS"},
        "payer": {"id_type": "MSISDN", "id_value": "255712345600"}, "mode": "expected"});
    let (s, c) = app.post("/v1/collections", &app.key, &body, None).await;
    assert_eq!(s, 201);
    assert_fits(&spec, "Payment", &c);
    let (_, prob) = app
        .post(
            "/v1/disbursements",
            &app.key,
            &serde_json::json!({"reference": 1}),
            None,
        )
        .await;
    assert_fits(&spec, "Problem", &prob);
    let (_, page) = app.get("/v1/payments?limit=1", &app.key).await;
    assert_fits(&spec, "Payment", &page["data"][0]);
    let id = done["id"].as_str().unwrap();
    let (s, r) = app
        .post(
            &format!("/v1/payments/{id}/reversals"),
            &app.key,
            &serde_json::json!({"reason": "duplicate benefit"}),
            None,
        )
        .await;
    assert_eq!(s, 202, "{r}");
    assert_fits(&spec, "Reversal", &r);
    let reversed = app
        .wait_for(id, std::time::Duration::from_secs(30), |p| {
            p["state"] == "reversed"
        })
        .await;
    assert_eq!(reversed["reversals"][0]["state"], "completed", "{reversed}");
    assert_fits(&spec, "Payment", &reversed);
    // The served document is the file.
    let served = app
        .http
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        served,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap()
    );
    app.stop().await;
}

#[tokio::test]
async fn reconciliation_responses_fit_their_schemas() {
    let Some(app) = spawn_app(Store::Sqlite).await else {
        return;
    };
    let spec = spec();
    let csv = "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n\
               2025-02-03,2025-02-03,15000.00,TZS,CREDIT,NOBODY,255700000000,TX-1,\n";
    let resp = app
        .http
        .post(app.url("/v1/statements?profile=mock-rail"))
        .bearer_auth(&app.key)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let stmt: Value = resp.json().await.unwrap();
    assert_fits(&spec, "Statement", &stmt);
    let (s, run) = app
        .post(
            "/v1/reconciliation/runs",
            &app.key,
            &serde_json::json!({"statement_id": stmt["id"]}),
            None,
        )
        .await;
    assert_eq!(s, 201, "{run}");
    assert_fits(&spec, "ReconciliationRun", &run);
    let (_, page) = app.get("/v1/reconciliation/breaks", &app.key).await;
    let b = &page["data"][0];
    assert_fits(&spec, "Break", b);
    let (s, resolved) = app
        .post(
            &format!(
                "/v1/reconciliation/breaks/{}/resolve",
                b["id"].as_str().unwrap()
            ),
            &app.key,
            &serde_json::json!({"resolution": "book_to_suspense", "reason": "unknown payer"}),
            None,
        )
        .await;
    assert_eq!(s, 200, "{resolved}");
    assert_fits(&spec, "Break", &resolved);
    let (_, report) = app
        .get(
            "/v1/reports/reconciliation?from=2025-02-01&to=2025-02-28",
            &app.key,
        )
        .await;
    assert_fits(&spec, "ReconciliationReport", &report);
    app.stop().await;
}

#[test]
fn request_schemas_match_the_validator() {
    // Every field the validator accepts is documented, and no other.
    let spec = spec();
    let d: BTreeSet<&str> = spec["components"]["schemas"]["DisbursementRequest"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        d,
        BTreeSet::from([
            "reference",
            "amount",
            "payee",
            "narrative",
            "rail",
            "metadata"
        ])
    );
    let c: BTreeSet<&str> = spec["components"]["schemas"]["CollectionRequest"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        c,
        BTreeSet::from([
            "reference",
            "amount",
            "payer",
            "mode",
            "narrative",
            "rail",
            "metadata"
        ])
    );
}

#[tokio::test]
async fn ledger_and_notification_responses_fit_their_schemas() {
    let Some(app) = spawn_app(Store::Sqlite).await else {
        return;
    };
    let spec = spec();
    let (s, hook) = app
        .post(
            "/v1/webhooks",
            &app.key,
            &serde_json::json!({"url": "http://127.0.0.1:9/hooks", "events": ["payment.completed"]}),
            None,
        )
        .await;
    assert_eq!(s, 201, "{hook}");
    assert_fits(&spec, "WebhookEndpointCreated", &hook);
    let p = app.disburse("OA-L1", "255712345600", "10.00").await;
    app.wait_final(p["id"].as_str().unwrap()).await;
    let (_, accounts) = app.get("/v1/ledger/accounts", &app.key).await;
    let list = accounts["data"].as_array().unwrap();
    assert!(!list.is_empty());
    for a in list {
        assert_fits(&spec, "LedgerAccount", a);
    }
    let id = list[0]["id"].as_str().unwrap();
    let (_, entries) = app
        .get(&format!("/v1/ledger/accounts/{id}/entries"), &app.key)
        .await;
    assert!(!entries["data"].as_array().unwrap().is_empty());
    for e in entries["data"].as_array().unwrap() {
        assert_fits(&spec, "LedgerEntry", e);
    }
    let (_, tb) = app.get("/v1/ledger/trial-balance", &app.key).await;
    assert_fits(&spec, "TrialBalance", &tb);
    let (_, events) = app.get("/v1/events", &app.key).await;
    assert!(!events["data"].as_array().unwrap().is_empty());
    for e in events["data"].as_array().unwrap() {
        assert_fits(&spec, "Event", e);
    }
    let (_, hooks) = app.get("/v1/webhooks", &app.key).await;
    assert_fits(&spec, "WebhookEndpoint", &hooks["data"][0]);
    let hid = hook["id"].as_str().unwrap();
    let (_, ds) = app
        .get(&format!("/v1/webhooks/{hid}/deliveries"), &app.key)
        .await;
    assert!(!ds["data"].as_array().unwrap().is_empty());
    for d in ds["data"].as_array().unwrap() {
        assert_fits(&spec, "WebhookDelivery", d);
    }
    app.stop().await;
}

#[tokio::test]
async fn payroll_responses_fit_their_schemas() {
    let Some(app) = spawn_app(Store::Sqlite).await else {
        return;
    };
    let spec = spec();
    let body = serde_json::json!({"name": "OA", "hold": true, "items": [
        disbursement("OA-P1", "255712345600", "10.00"),
    ]});
    let (s, p) = app.post("/v1/payrolls", &app.key, &body, None).await;
    assert_eq!(s, 201, "{p}");
    assert_fits(&spec, "Payroll", &p);
    let id = p["id"].as_str().unwrap();
    let (_, items) = app.get(&format!("/v1/payrolls/{id}/items"), &app.key).await;
    assert_fits(&spec, "Payment", &items["data"][0]);
    let (s, p) = app
        .post(
            &format!("/v1/payrolls/{id}/release"),
            &app.key,
            &serde_json::json!({}),
            None,
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_fits(&spec, "Payroll", &p);
    let (s, prob) = app
        .post(
            "/v1/payrolls",
            &app.key,
            &serde_json::json!({"items": [{"reference": 1}]}),
            None,
        )
        .await;
    assert_eq!(s, 422);
    assert_fits(&spec, "Problem", &prob);
    app.stop().await;
}

#[tokio::test]
async fn dead_letter_responses_fit_their_schemas() {
    let Some(app) = spawn_app(Store::Sqlite).await else {
        return;
    };
    let spec = spec();
    // A row no build can read: dead-lettered at its first claim.
    let id = uuid::Uuid::now_v7().to_string();
    railgate::store::sql::query(
        "INSERT INTO jobs (id, kind, payment_id, run_at, created_at) \
         VALUES ($1, 'payment', 'not-a-uuid', 0, 0)",
    )
    .bind(&id)
    .execute(app.db.pool())
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let page = loop {
        let (s, page) = app.get("/v1/admin/jobs/dead", &app.key).await;
        assert_eq!(s, 200, "{page}");
        if page["data"][0]["id"] == id.as_str() || tokio::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_fits(&spec, "DeadJob", &page["data"][0]);
    let (s, r) = app
        .post(
            &format!("/v1/admin/jobs/dead/{id}/retry"),
            &app.key,
            &serde_json::json!({}),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_fits(&spec, "RequeuedJob", &r);
    app.stop().await;
}

#[tokio::test]
async fn exception_queue_responses_fit_their_schemas() {
    let Some(app) = spawn_app_with(Store::Sqlite, |cfg| {
        for r in &mut cfg.rails {
            r.deadline_secs = 2;
        }
    })
    .await
    else {
        return;
    };
    let spec = spec();
    // An exception (12: the inquiry never answers), a contradiction (11) and a dead job.
    let p = app.disburse("OAS-EXC", "255712345612", "10.00").await;
    let id = p["id"].as_str().unwrap().to_owned();
    app.disburse("OAS-CONTRA", "255712345611", "10.00").await;
    railgate::store::sql::query(
        "INSERT INTO jobs (id, kind, payment_id, run_at, created_at) \
         VALUES ($1, 'payment', 'not-a-uuid', 0, 0)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(app.db.pool())
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(40);
    let page = loop {
        let (s, page) = app.get("/v1/admin/exceptions", &app.key).await;
        assert_eq!(s, 200, "{page}");
        let kinds: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["kind"].as_str())
            .collect();
        let all = ["exception", "conflict", "dead_job"]
            .iter()
            .all(|k| kinds.contains(k));
        if all || tokio::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(page["data"].as_array().unwrap().len(), 3, "{page}");
    for item in page["data"].as_array().unwrap() {
        assert_fits(&spec, "ExceptionItem", item);
    }
    let body = serde_json::json!({
        "outcome": "completed",
        "evidence": {"type": "receipt", "reference": "R-1"},
        "reason": "seen on the payee's phone",
    });
    assert_fits(&spec, "SettlementRequest", &body);
    let (s, p) = app
        .post(
            &format!("/v1/payments/{id}/settlements"),
            &app.key,
            &body,
            None,
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_fits(&spec, "Payment", &p);
    app.stop().await;
}
