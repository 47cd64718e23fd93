//! openIMIS end to end: a payroll CSV across the mock rail's scenario table is imported and
//! held; a client behaving like openIMIS's payroll connector (same paths, bodies, auth and
//! exact-text checks) releases every item; the rail pays; reconciliation answers `true` for
//! the completed ones only; the openIMIS CSV export has Paid = Yes with receipts for exactly
//! those; the trial balance is zero; the core's webhook receiver got one verified event per
//! final payment. Plus every refusal the facade owes openIMIS, with nothing moved.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The core's webhook receiver: verifies each delivery the Standard Webhooks way (written
/// here, independently of the gateway) and keeps `(type, payment_id)` of the verified ones.
#[derive(Default)]
struct Core {
    secret: String,
    verified: Vec<(String, String)>,
    refused: usize,
}

async fn core_receiver(core: Arc<Mutex<Core>>) -> String {
    async fn receive(
        axum::extract::State(core): axum::extract::State<Arc<Mutex<Core>>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let mut core = core.lock().unwrap();
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let key = STANDARD
            .decode(core.secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.", h("webhook-id"), h("webhook-timestamp")).as_bytes());
        mac.update(&body);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        if !h("webhook-signature").split(' ').any(|s| s == expected) {
            core.refused += 1;
            return StatusCode::UNAUTHORIZED;
        }
        let v: Value = serde_json::from_slice(&body).unwrap();
        let payment = v["data"]["payment_id"].as_str().unwrap_or("").to_owned();
        core.verified
            .push((v["type"].as_str().unwrap().to_owned(), payment));
        StatusCode::NO_CONTENT
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(core);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hooks")
}

/// What openIMIS's `MockedPaymentGatewayConnector` does, over HTTP: POST
/// `{base}{endpoint}` with `json={"invoiceId": str(code), "amount": str(amount)}`,
/// `raise_for_status()`, then compare the text.
struct Connector {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

enum Auth {
    Basic(String, String),
    Token(String),
}

impl Connector {
    async fn send_request(&self, endpoint: &str, invoice: &str, amount: &str) -> (u16, String) {
        let req = self
            .http
            .post(format!("{}{endpoint}", self.base))
            .json(&json!({"invoiceId": invoice, "amount": amount}))
            // openIMIS's default is 5 s; a loaded test machine gets more room.
            .timeout(Duration::from_secs(30));
        let req = match &self.auth {
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Token(k) => req.bearer_auth(k),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// `send_payment`: accepted only on the exact sentence.
    async fn send_payment(&self, invoice: &str, amount: &str) -> Result<(), (u16, String)> {
        let (s, text) = self.send_request("openimis/payment", invoice, amount).await;
        if (200..300).contains(&s)
            && text == format!("{invoice} invoice of {amount} accepted to be paid")
        {
            Ok(())
        } else {
            Err((s, text))
        }
    }

    /// `reconcile`: reconciled only on `true` (any case, trimmed).
    async fn reconcile(&self, invoice: &str, amount: &str) -> Option<bool> {
        let (s, text) = self
            .send_request("openimis/reconciliation", invoice, amount)
            .await;
        (200..300)
            .contains(&s)
            .then(|| text.trim().to_lowercase() == "true")
    }
}

const SCENARIOS: [(&str, &str); 14] = [
    ("00", "completed"),
    ("01", "failed"),
    ("02", "failed"),
    ("03", "failed"),
    ("04", "completed"),
    ("05", "completed"),
    ("06", "failed"),
    ("07", "completed"),
    ("08", "completed"),
    ("09", "completed"),
    ("10", "completed"),
    ("11", "failed"),
    ("12", "unknown"),
    ("42", "completed"),
];

fn amount_of(i: usize) -> String {
    format!("{}.50", 1000 + i)
}

both_stores!(openimis_connector_end_to_end, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    // The core listens for final outcomes.
    let core = Arc::new(Mutex::new(Core::default()));
    let hook_url = core_receiver(core.clone()).await;
    let (s, hook) = app
        .post(
            "/v1/webhooks",
            &app.key,
            &json!({"url": hook_url, "events": ["payment.completed", "payment.failed"]}),
            None,
        )
        .await;
    assert_eq!(s, 201, "{hook}");
    core.lock().unwrap().secret = hook["secret"].as_str().unwrap().to_owned();

    // openIMIS's reconciliation-file columns plus the payee's phone number.
    let mut csv = String::from(
        "Payroll Name,Payroll Status,First Name,Last Name,Date of Birth,Code,Status,Amount,Type,Receipt,Paid,phone_number\n",
    );
    for (i, (digits, _)) in SCENARIOS.iter().enumerate() {
        csv.push_str(&format!(
            "Maternity July,APPROVE_FOR_PAYMENT,Asha,Juma {digits},1990-01-{:02},BEN-{digits},ACCEPTED,{},CASH,,,2557123456{digits}\n",
            i + 1,
            amount_of(i)
        ));
    }
    let resp = app
        .http
        .post(app.url("/v1/payrolls?hold=true&currency=TZS"))
        .bearer_auth(&app.key)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let payroll: Value = resp.json().await.unwrap();
    assert_eq!(payroll["status"], "held");
    assert_eq!(payroll["name"], "Maternity July");
    let pid = payroll["id"].as_str().unwrap().to_owned();

    let openimis = Connector {
        http: reqwest::Client::new(),
        base: format!("{}/", app.base),
        auth: Auth::Basic("acme".into(), app.key.clone()),
    };

    // Refusals first: nothing moves.
    let err = openimis
        .send_payment("BEN-77", "1000.50")
        .await
        .unwrap_err();
    assert_eq!(err.0, 404, "{err:?}");
    assert!(err.1.contains("BEN-77"), "{err:?}");
    let err = openimis.send_payment("BEN-00", "999.00").await.unwrap_err();
    assert_eq!(err.0, 422, "{err:?}");
    assert!(err.1.contains("differs"), "{err:?}");
    let err = openimis
        .send_payment("BEN-00", "1000.505")
        .await
        .unwrap_err();
    assert_eq!(err.0, 422, "{err:?}");
    // Credentials: a wrong password, a key under another client's name, another client's
    // key, no credentials at all.
    for auth in [
        Auth::Basic("acme".into(), "rg_wrong".into()),
        Auth::Basic("other".into(), app.key.clone()),
        Auth::Token(app.other_client_key.clone()),
    ] {
        let c = Connector {
            http: reqwest::Client::new(),
            base: openimis.base.clone(),
            auth,
        };
        let err = c.send_payment("BEN-00", "1000.50").await.unwrap_err();
        assert!(matches!(err.0, 401 | 404), "{err:?}");
    }
    let resp = app
        .http
        .post(app.url("/openimis/payment"))
        .json(&json!({"invoiceId": "BEN-00", "amount": "1000.50"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    // A read-only key may reconcile but not pay.
    let ro = Connector {
        http: reqwest::Client::new(),
        base: openimis.base.clone(),
        auth: Auth::Token(app.read_key.clone()),
    };
    assert_eq!(
        ro.send_payment("BEN-00", "1000.50").await.unwrap_err().0,
        403
    );
    assert_eq!(ro.reconcile("BEN-00", "1000.50").await, Some(false));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.count("jobs").await, 0);
    assert!(app.mock.payouts().is_empty());
    let (_, v) = app
        .get(
            &format!("/v1/payrolls/{pid}/items?state=received"),
            &app.key,
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), SCENARIOS.len());

    // openIMIS sends each benefit of the payroll; each is accepted with the exact sentence.
    for (i, (digits, _)) in SCENARIOS.iter().enumerate() {
        openimis
            .send_payment(&format!("BEN-{digits}"), &amount_of(i))
            .await
            .unwrap();
    }
    // Sent again: already released, refused, and nothing is paid twice.
    let err = openimis
        .send_payment("BEN-00", "1000.50")
        .await
        .unwrap_err();
    assert_eq!(err.0, 409, "{err:?}");
    assert!(err.1.contains("already released"), "{err:?}");

    // The rails pay.
    let mut ids = HashMap::new();
    for (digits, _) in SCENARIOS {
        let (_, v) = app
            .get(&format!("/v1/payments?reference=BEN-{digits}"), &app.key)
            .await;
        ids.insert(digits, v["data"][0]["id"].as_str().unwrap().to_owned());
    }
    for (digits, want) in SCENARIOS {
        let id = &ids[digits];
        let p = match digits {
            "11" => {
                app.wait_for(id, Duration::from_secs(30), |p| !p["conflict"].is_null())
                    .await
            }
            "12" => {
                app.wait_for(id, Duration::from_secs(40), |p| !p["exception"].is_null())
                    .await
            }
            _ => app.wait_final(id).await,
        };
        assert_eq!(p["state"], want, "scenario {digits}: {p}");
        assert_eq!(p["payroll_id"], pid.as_str());
        let paid = app.paid(&format!("BEN-{digits}"));
        assert!(paid <= 1, "scenario {digits} paid {paid} times");
        if want == "completed" {
            assert_eq!(paid, 1, "scenario {digits}");
        }
    }

    // Reconciliation: true for the completed ones, false for the others.
    for (i, (digits, want)) in SCENARIOS.iter().enumerate() {
        let r = openimis
            .reconcile(&format!("BEN-{digits}"), &amount_of(i))
            .await;
        assert_eq!(r, Some(*want == "completed"), "scenario {digits}");
    }
    // Bearer works too; an amount that differs is refused.
    let bearer = Connector {
        http: reqwest::Client::new(),
        base: openimis.base.clone(),
        auth: Auth::Token(app.key.clone()),
    };
    assert_eq!(bearer.reconcile("BEN-00", "1000.50").await, Some(true));
    assert_eq!(bearer.reconcile("BEN-00", "1.00").await, None);
    assert_eq!(bearer.reconcile("BEN-99", "1.00").await, None);

    // The export: Paid = Yes with the rail's receipt for exactly the completed ones, and
    // openIMIS's own columns given back as imported.
    let resp = app
        .http
        .get(app.url(&format!("/v1/payrolls/{pid}/export?format=openimis-csv")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = resp.text().await.unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), SCENARIOS.len());
    for r in &rows {
        let code = &r[5];
        let digits = code.trim_start_matches("BEN-");
        let want = SCENARIOS.iter().find(|(d, _)| *d == digits).unwrap().1;
        let p = app.payment(&ids[digits]).await;
        assert_eq!(&r[0], "Maternity July");
        assert_eq!(&r[1], "APPROVE_FOR_PAYMENT");
        assert_eq!(&r[2], "Asha");
        assert_eq!(&r[3], format!("Juma {digits}"));
        assert_eq!(&r[6], "ACCEPTED");
        assert_eq!(&r[8], "CASH");
        if want == "completed" {
            assert_eq!(&r[10], "Yes", "{digits}");
            assert!(!r[9].is_empty(), "{digits}");
            assert_eq!(&r[9], p["receipt"].as_str().unwrap(), "{digits}");
        } else {
            assert_eq!(&r[10], "No", "{digits}");
            assert_eq!(&r[9], "", "{digits}");
        }
    }

    // The books balance.
    let (s, tb) = app.get("/v1/ledger/trial-balance", &app.key).await;
    assert_eq!(s, 200, "{tb}");
    assert_eq!(tb["balanced"], true, "{tb}");
    for c in tb["currencies"].as_array().unwrap() {
        assert_eq!(c["debits_posted"], c["credits_posted"], "{tb}");
        assert_eq!(c["debits_pending"], c["credits_pending"], "{tb}");
    }

    // The core got one verified event per final payment, of the right kind, and no other.
    let want: Vec<(String, String)> = SCENARIOS
        .iter()
        .filter(|(_, w)| *w != "unknown")
        .map(|(d, w)| (format!("payment.{w}"), ids[d].clone()))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let n = core.lock().unwrap().verified.len();
        if n >= want.len() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything late would show here as a duplicate.
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let core = core.lock().unwrap();
        assert_eq!(core.refused, 0);
        let mut got = core.verified.clone();
        got.sort();
        let mut want = want.clone();
        want.sort();
        assert_eq!(got, want);
    }

    // Progress: everything final but scenario 12, which waits for an operator.
    let (_, v) = app.get(&format!("/v1/payrolls/{pid}"), &app.key).await;
    assert_eq!(v["finished"], 13, "{v}");
    assert_eq!(v["exceptions"], 1, "{v}");
    assert_eq!(v["conflicts"], 1, "{v}");
    assert_eq!(v["status"], "held", "{v}");
    app.stop().await;
});

both_stores!(
    released_payrolls_are_not_released_again_by_openimis,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        let csv = "Code,Amount,phone_number\nX-1,10.00,255712345600\nX-2,10.00,255712345600\n";
        let resp = app
            .http
            .post(app.url("/v1/payrolls?currency=TZS"))
            .bearer_auth(&app.key)
            .header("Content-Type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        // Released before the answer; with a quick rail it may even be done by then.
        assert!(
            v["status"] == "released" || v["status"] == "completed",
            "{v}"
        );
        // A payment not in any payroll is not openIMIS's to release either.
        app.disburse("LONE-1", "255712345600", "10.00").await;
        let openimis = Connector {
            http: reqwest::Client::new(),
            base: format!("{}/", app.base),
            auth: Auth::Token(app.key.clone()),
        };
        let err = openimis.send_payment("X-1", "10.00").await.unwrap_err();
        assert_eq!(err.0, 409, "{err:?}");
        let err = openimis.send_payment("LONE-1", "10.00").await.unwrap_err();
        assert_eq!(err.0, 404, "{err:?}");
        // Numbers are not amounts: openIMIS sends strings.
        let resp = app
            .http
            .post(app.url("/openimis/payment"))
            .bearer_auth(&app.key)
            .json(&json!({"invoiceId": "X-1", "amount": 10.0}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        app.stop().await;
    }
);

/// What the openIMIS stub received at `send_callback_to_openimis`: (path, Authorization, body).
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn deliveries(app: &TestApp, hook: &str) -> Value {
    app.get(&format!("/v1/webhooks/{hook}/deliveries"), &app.key)
        .await
        .1
}

/// openIMIS's callback view, on `listener`: records each post and answers as openIMIS does.
fn openimis_stub(listener: tokio::net::TcpListener, got: Received) {
    async fn receive(
        axum::extract::State(got): axum::extract::State<Received>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, axum::Json<Value>) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        got.lock().unwrap().push((uri.path().to_owned(), auth, v));
        (
            StatusCode::CREATED,
            axum::Json(json!({"success": true, "error": null})),
        )
    }
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(got);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

both_stores!(
    payroll_results_are_posted_back_to_openimis,
    |store| async move {
        let Some(app) = spawn_app_with(store, |c| {
            c.notify.retry_min_ms = 100;
            c.notify.retry_max_ms = 600;
            c.notify.timeout_ms = 2_000;
        })
        .await
        else {
            return;
        };
        // openIMIS is down at first: its port refuses connections.
        let port = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        // Bad configurations are refused and store nothing.
        for (body, field) in [
            (
                json!({"url": format!("http://127.0.0.1:{port}/"), "format": "openimis"}),
                "token",
            ),
            (
                json!({"url": format!("http://127.0.0.1:{port}/"), "format": "openimis", "token": "t",
                   "events": ["payment.completed"]}),
                "events",
            ),
            (json!({"url": "http://127.0.0.1:9/", "token": "t"}), "token"),
            (
                json!({"url": "http://127.0.0.1:9/", "format": "imis"}),
                "format",
            ),
        ] {
            let (s, prob) = app.post("/v1/webhooks", &app.key, &body, None).await;
            assert_eq!(s, 422, "{prob}");
            assert_eq!(prob["errors"][0]["field"], field, "{prob}");
        }
        assert_eq!(app.count("webhook_endpoints").await, 0);

        let (s, hook) = app
            .post(
                "/v1/webhooks",
                &app.key,
                &json!({"url": format!("http://127.0.0.1:{port}/imis/"), "format": "openimis",
                    "token": "imis-jwt.payroll-user", "description": "openIMIS payroll results"}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{hook}");
        assert_eq!(hook["format"], "openimis");
        assert_eq!(
            hook["url"],
            format!("http://127.0.0.1:{port}/imis/api/payroll/send_callback_to_openimis/")
        );
        assert_eq!(hook["events"], json!(["payroll.completed"]));
        assert!(
            hook.get("token").is_none(),
            "the token is never shown: {hook}"
        );
        let hid = hook["id"].as_str().unwrap().to_owned();

        // A payroll of openIMIS's payroll 8f1e…, two of whose four lines fail.
        let openimis_payroll = "8f1e6a3c-0b7d-4b8e-9a55-3c2d1f0e9b71";
        let mut csv = String::from("Code,Amount,phone_number\n");
        for digits in ["00", "01", "03", "05"] {
            csv.push_str(&format!("IMIS-{digits},1500.00,2557123456{digits}\n"));
        }
        let resp = app
            .http
            .post(app.url(&format!(
                "/v1/payrolls?currency=TZS&openimis_payroll_id={openimis_payroll}"
            )))
            .bearer_auth(&app.key)
            .header("Content-Type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let payroll: Value = resp.json().await.unwrap();
        let pid = payroll["id"].as_str().unwrap().to_owned();

        // The payroll completes; the delivery to openIMIS fails while it is down.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let failed_try = loop {
            let (_, p) = app.get(&format!("/v1/payrolls/{pid}"), &app.key).await;
            let d = deliveries(&app, &hid).await;
            if p["status"] == "completed" && d["data"][0]["tries"].as_i64().unwrap_or(0) >= 1 {
                break d;
            }
            assert!(tokio::time::Instant::now() < deadline, "{p} {d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(failed_try["data"][0]["status"], "pending", "{failed_try}");
        assert_eq!(failed_try["data"][0]["event_type"], "payroll.completed");

        // openIMIS comes back: the retry delivers it, once.
        let got: Received = Arc::default();
        openimis_stub(
            tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap(),
            got.clone(),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let delivered = loop {
            let d = deliveries(&app, &hid).await;
            if d["data"][0]["status"] == "delivered" {
                break d;
            }
            assert!(tokio::time::Instant::now() < deadline, "{d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            delivered["data"][0]["tries"].as_i64().unwrap() >= 2,
            "{delivered}"
        );
        assert_eq!(
            delivered["data"].as_array().unwrap().len(),
            1,
            "{delivered}"
        );
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 1, "exactly one post: {got:?}");
        let (path, auth, body) = &got[0];
        assert_eq!(path, "/imis/api/payroll/send_callback_to_openimis/");
        assert_eq!(auth, "Bearer imis-jwt.payroll-user");
        assert_eq!(body["payroll_id"], openimis_payroll, "{body}");
        assert_eq!(
            body["rejected_bills"],
            json!(["IMIS-01", "IMIS-03"]),
            "{body}"
        );
        let response = &body["response_from_gateway"];
        assert!(response.is_object(), "{body}");
        assert_eq!(response["payroll_id"], pid.as_str(), "{body}");
        assert_eq!(response["gateway"], "railgate", "{body}");

        // A payroll that names no openIMIS payroll is not posted: openIMIS could not place it.
        let resp = app
            .http
            .post(app.url("/v1/payrolls?currency=TZS"))
            .bearer_auth(&app.key)
            .header("Content-Type", "text/csv")
            .body("Code,Amount,phone_number\nIMIS-X,10.00,255712345600\n")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let abandoned = loop {
            let d = deliveries(&app, &hid).await;
            if d["data"].as_array().unwrap().len() == 2 && d["data"][0]["status"] == "abandoned" {
                break d;
            }
            assert!(tokio::time::Instant::now() < deadline, "{d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            abandoned["data"][0]["last_error"]
                .as_str()
                .unwrap()
                .contains("openimis_payroll_id"),
            "{abandoned}"
        );
        assert_eq!(got.len(), 1);
        app.stop().await;
    }
);
