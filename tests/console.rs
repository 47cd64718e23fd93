//! The operations console in a real headless Chromium, driven over WebDriver (chromedriver):
//! every page renders, every action works from its form, and is refused (and written to the
//! audit trail as refused) without its scope or without the page's form token. On both stores.
//! Every page is also photographed: into the build's scratch directory, or into docs/console/
//! with `UPDATE_SCREENSHOTS=1` (so that an ordinary test run leaves the checkout as it was).
//!
//! Chromium and chromedriver come from `scripts/test-setup.sh`; under CI=true a missing one
//! fails the test, elsewhere it is skipped with a loud note.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use railgate::store::keys;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

fn installed(names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|b| {
        std::process::Command::new("which")
            .arg(b)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    })
}

/// Chromium and chromedriver, or `None` (a skip) outside CI.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let found = installed(&["chromium", "chromium-browser"])
        .zip(installed(&["chromedriver", "chromium-driver"]));
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "chromium or chromedriver is not installed under CI=true (scripts/test-setup.sh installs them)"
            );
        }
        eprintln!("\n!!! SKIPPING the console browser test: no chromium/chromedriver (run scripts/test-setup.sh) !!!\n");
    }
    found
}

/// A chromedriver of this test's own, on a free port; killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(driver: &std::path::Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Bounded wait for it to listen.
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start on port {port}");
}

async fn open_browser(
    driver: &Driver,
    chromium: &std::path::Path,
    profile: &std::path::Path,
) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium.display().to_string(),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// Where the screenshots go: the repository's docs/console/ when `UPDATE_SCREENSHOTS=1`,
/// otherwise the build's scratch directory (a plain `cargo test` changes no tracked file).
fn shots_dir() -> PathBuf {
    let d = if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, store: Store, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // One set of pictures: the SQLite run's (the PostgreSQL run checks the same pages).
    if matches!(store, Store::Sqlite) {
        std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
    }
}

async fn css(c: &Client, sel: &str) -> fantoccini::elements::Element {
    c.find(Locator::Css(sel))
        .await
        .unwrap_or_else(|e| panic!("{sel}: {e}"))
}

/// Waits (bounded) for an element after a navigation.
async fn wait_css(c: &Client, sel: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(sel))
        .await
    {
        Ok(e) => e,
        Err(e) => panic!("{sel} never came: {e}\n{}", source(c).await),
    }
}

/// Marks the page, so that a wait can tell the next one from it.
async fn mark(c: &Client) {
    c.execute(
        "document.documentElement.setAttribute('data-stale', '1')",
        vec![],
    )
    .await
    .unwrap();
}

/// Waits (bounded) until the marked page has been replaced.
async fn loaded(c: &Client) {
    wait_css(c, "html:not([data-stale])").await;
}

/// Clicks what submits a form, and waits for the page it leads to.
async fn submit(c: &Client, sel: &str) {
    mark(c).await;
    css(c, sel).await.click().await.unwrap();
    loaded(c).await;
}

async fn source(c: &Client) -> String {
    c.source().await.unwrap()
}

async fn sign_in(c: &Client, base: &str, key: &str) {
    c.goto(&format!("{base}/reports")).await.unwrap();
    css(c, "input[name=api_key]")
        .await
        .send_keys(key)
        .await
        .unwrap();
    submit(c, "form[action='/reports/login'] button").await;
    wait_css(c, "#who").await;
}

async fn sign_out(c: &Client) {
    submit(c, "form[action='/reports/logout'] button").await;
    wait_css(c, "input[name=api_key]").await;
}

/// The page says the action was refused for want of `scope`.
async fn refused_for(c: &Client, scope: &str) {
    let m = wait_css(c, "#message").await.text().await.unwrap();
    assert!(m.contains(scope), "refusal names {scope}: {m}");
}

async fn key_with(app: &TestApp, scopes: &'static [&'static str]) -> String {
    let client = keys::find_client(&app.db, "acme").await.unwrap().unwrap();
    let k = keys::generate_key();
    keys::insert_key(&app.db, client, &k, scopes, Some("officer"))
        .await
        .unwrap();
    k
}

async fn held_payroll(app: &TestApp) -> String {
    let csv = "reference,amount,currency,payee_id_type,payee_id,name,narrative\n\
               CON-P1,1000.00,TZS,MSISDN,255712345800,Asha Juma,June benefit\n\
               CON-P2,2500.50,TZS,MSISDN,255712345900,Juma Ali,June benefit\n";
    let resp = app
        .http
        .post(app.url("/v1/payrolls?hold=true&name=June"))
        .bearer_auth(&app.key)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let v: Value = resp.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

async fn payroll_status(app: &TestApp, id: &str) -> Value {
    let (s, v) = app.get(&format!("/v1/payrolls/{id}"), &app.key).await;
    assert_eq!(s, 200, "{v}");
    v
}

both_stores!(console_in_chromium, |store| async move {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let Some(app) = spawn_app(store).await else {
        return;
    };
    // What the pages will show: two paid disbursements, a held payroll, a statement.
    let mut ids = Vec::new();
    for (r, n) in [("CON-A", "255712345600"), ("CON-B", "255712345700")] {
        let p = app.disburse(r, n, "15000.00").await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let p = app.wait_final(id).await;
        assert_eq!(p["state"], "completed", "{p}");
    }
    // Scenario 12: the rail never answers, the outcome stays unknown past its deadline.
    let stuck = app.disburse("CON-X", "255712345612", "15000.00").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = app
        .wait_for(&stuck, Duration::from_secs(45), |p| {
            !p["exception"].is_null()
        })
        .await;
    assert!(!p["exception"].is_null(), "{p}");
    let payroll = held_payroll(&app).await;
    let today = chrono::Utc::now().date_naive().to_string();
    let statement = std::env::temp_dir().join(format!(
        "railgate-console-{}.csv",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(
        &statement,
        format!(
            "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n\
             {today},{today},15000.00,TZS,DEBIT,CON-A,255700000000,TX-C1,75.00\n\
             {today},{today},999.00,TZS,CREDIT,UNKNOWN-PAYER,255700000000,TX-C2,\n"
        ),
    )
    .unwrap();

    let reader = key_with(&app, &["reports:read", "payments:read"]).await;
    let report_only = key_with(&app, &["reports:read"]).await;
    let driver = start_driver(&chromedriver).await;
    let profile = std::env::temp_dir().join(format!(
        "railgate-console-profile-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let c = open_browser(&driver, &chromium, &profile).await;
    let base = app.base.clone();

    // A key with reports:read alone signs in, but payments and payrolls are refused.
    sign_in(&c, &base, &report_only).await;
    c.goto(&format!("{base}/reports/payments")).await.unwrap();
    refused_for(&c, "payments:read").await;
    c.goto(&format!("{base}/reports/payrolls")).await.unwrap();
    refused_for(&c, "payments:read").await;
    c.goto(&format!("{base}/reports")).await.unwrap();
    sign_out(&c).await;

    // A reader (payments:read, no write scope): every page renders, every action is refused.
    sign_in(&c, &base, &reader).await;
    c.goto(&format!("{base}/reports/payrolls/{payroll}"))
        .await
        .unwrap();
    css(&c, "#release textarea[name=reason]")
        .await
        .send_keys("try without the scope")
        .await
        .unwrap();
    submit(&c, "#release button").await;
    refused_for(&c, "payments:write").await;
    c.goto(&format!("{base}/reports/statements")).await.unwrap();
    css(&c, "#upload select[name=kind]")
        .await
        .select_by_value("mock-rail")
        .await
        .unwrap();
    css(&c, "#upload input[name=file]")
        .await
        .send_keys(&statement.display().to_string())
        .await
        .unwrap();
    submit(&c, "#upload button").await;
    refused_for(&c, "recon:write").await;
    c.goto(&format!("{base}/reports/statements")).await.unwrap();
    css(&c, "#run input[name=from]")
        .await
        .send_keys(&today)
        .await
        .unwrap();
    submit(&c, "#run button").await;
    refused_for(&c, "recon:write").await;
    assert_eq!(payroll_status(&app, &payroll).await["status"], "held");
    let item = format!("tr[data-item='{stuck}']");
    c.goto(&format!("{base}/reports/exceptions")).await.unwrap();
    css(&c, &format!("{item} form.ask textarea"))
        .await
        .send_keys("try without the scope")
        .await
        .unwrap();
    submit(&c, &format!("{item} form.ask button")).await;
    refused_for(&c, "payments:write or recon:write").await;
    c.goto(&format!("{base}/reports/exceptions")).await.unwrap();
    css(&c, &format!("{item} form.settle input[name=receipt]"))
        .await
        .send_keys("R-FROM-PAYEE")
        .await
        .unwrap();
    css(&c, &format!("{item} form.settle textarea"))
        .await
        .send_keys("try without the scope")
        .await
        .unwrap();
    submit(&c, &format!("{item} form.settle button")).await;
    refused_for(&c, "recon:write").await;
    assert_eq!(app.payment(&stuck).await["state"], "unknown");
    c.goto(&format!("{base}/reports")).await.unwrap();
    sign_out(&c).await;

    // The officer with every scope.
    sign_in(&c, &base, &app.key).await;

    // Payments: the newest first, payees masked, searched by payee (posted, not in the URL).
    c.goto(&format!("{base}/reports/payments")).await.unwrap();
    let page = source(&c).await;
    assert!(page.contains("CON-A") && page.contains("CON-B"), "{page}");
    assert!(!page.contains("255712345600"), "a payee in clear: {page}");
    assert!(page.contains("25********00"), "{page}");
    css(&c, "#search input[name=payee]")
        .await
        .send_keys("+255712345700")
        .await
        .unwrap();
    submit(&c, "#search button").await;
    wait_css(&c, "#payments").await;
    let rows = c
        .find_all(Locator::Css("#payments tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].text().await.unwrap().contains("CON-B"));
    assert!(!c.current_url().await.unwrap().as_str().contains("2557"));
    css(&c, "#search select[name=state]")
        .await
        .select_by_value("completed")
        .await
        .unwrap();
    shot(&c, store, "payments").await;
    // One payment's page: history, attempts with the request masked, ledger transfers.
    submit(&c, "#payments tbody a").await;
    wait_css(&c, "#facts").await;
    assert_eq!(css(&c, "#state").await.text().await.unwrap(), "completed");
    let page = source(&c).await;
    assert!(!page.contains("255712345700"), "a payee in clear: {page}");
    assert!(c.find(Locator::Css("#history tbody tr")).await.is_ok());
    assert!(
        c.find(Locator::Css("#attempts tbody tr")).await.is_ok(),
        "{page}"
    );
    assert!(
        c.find(Locator::Css("#transfers tbody tr")).await.is_ok(),
        "{page}"
    );
    shot(&c, store, "payment").await;

    // Payrolls: held, released from its page with a reason; the progress reaches 100%.
    c.goto(&format!("{base}/reports/payrolls")).await.unwrap();
    let row = css(&c, &format!("tr[data-payroll='{payroll}']")).await;
    assert!(row.text().await.unwrap().contains("held"));
    submit(&c, &format!("tr[data-payroll='{payroll}'] a")).await;
    wait_css(&c, "#release").await;
    css(&c, "#release textarea[name=reason]")
        .await
        .send_keys("June run approved by the programme")
        .await
        .unwrap();
    submit(&c, "#release button").await;
    let flash = wait_css(&c, "#flash").await.text().await.unwrap();
    assert!(flash.contains("released"), "{flash}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while payroll_status(&app, &payroll).await["status"] != "completed" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "payroll never completed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.goto(&format!(
        "{base}/reports/payrolls/{payroll}?state=completed"
    ))
    .await
    .unwrap();
    assert_eq!(
        css(&c, "[data-figure=percent]").await.text().await.unwrap(),
        "100"
    );
    assert_eq!(
        c.find_all(Locator::Css("#items tbody tr"))
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(c.find(Locator::Css("#export")).await.is_ok());
    assert!(c.find(Locator::Css("#chart-throughput svg")).await.is_ok());
    shot(&c, store, "payroll").await;
    c.goto(&format!("{base}/reports/payrolls")).await.unwrap();
    shot(&c, store, "payrolls").await;

    // Statements: upload from the page, a dry run, then the real run with a reason.
    c.goto(&format!("{base}/reports/statements")).await.unwrap();
    css(&c, "#upload select[name=kind]")
        .await
        .select_by_value("mock-rail")
        .await
        .unwrap();
    css(&c, "#upload select[name=rail]")
        .await
        .select_by_value("mock")
        .await
        .unwrap();
    css(&c, "#upload input[name=file]")
        .await
        .send_keys(&statement.display().to_string())
        .await
        .unwrap();
    submit(&c, "#upload button").await;
    let flash = wait_css(&c, "#flash").await.text().await.unwrap();
    assert!(flash.contains("2 lines"), "{flash}");
    // The statement id is filled in; dry run is ticked.
    let filled = css(&c, "#run input[name=statement_id]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(filled.as_deref().map(str::len), Some(36), "{filled:?}");
    submit(&c, "#run button").await;
    wait_css(&c, "#last-run").await;
    assert!(css(&c, "#last-run")
        .await
        .text()
        .await
        .unwrap()
        .contains("yes"));
    assert_eq!(
        app.count("recon_breaks").await,
        0,
        "a dry run opens no break"
    );
    let statement_id: String = railgate::store::sql::query_scalar("SELECT id FROM statements")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    c.goto(&format!("{base}/reports/statements")).await.unwrap();
    css(&c, "#run input[name=statement_id]")
        .await
        .send_keys(&statement_id)
        .await
        .unwrap();
    css(&c, "#run input[name=dry_run]")
        .await
        .click()
        .await
        .unwrap();
    css(&c, "#run textarea[name=reason]")
        .await
        .send_keys("bank statement of the day")
        .await
        .unwrap();
    submit(&c, "#run button").await;
    wait_css(&c, "#last-run").await;
    assert_eq!(
        css(&c, "#last-run [data-figure=matched]")
            .await
            .text()
            .await
            .unwrap(),
        "1"
    );
    shot(&c, store, "statements").await;

    // The report: the break queue, one break resolved from its form.
    c.goto(&format!("{base}/reports?from={today}&to={today}"))
        .await
        .unwrap();
    assert_eq!(
        css(&c, "[data-figure='disbursement-TZS-settled']")
            .await
            .text()
            .await
            .unwrap(),
        "15000.00"
    );
    assert!(c.find(Locator::Css("#chart-flows svg")).await.is_ok());
    assert!(c.find(Locator::Css("#chart-ageing svg")).await.is_ok());
    shot(&c, store, "report").await;
    c.execute(
        "document.getElementById('chart-flows').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, store, "pictures").await;

    // The reader sees the same break queue; resolving a break is refused without recon:write.
    sign_out(&c).await;
    sign_in(&c, &base, &reader).await;
    c.goto(&format!("{base}/reports?from={today}&to={today}"))
        .await
        .unwrap();
    css(&c, "#breaks form textarea[name=reason]")
        .await
        .send_keys("try without the scope")
        .await
        .unwrap();
    submit(&c, "#breaks form button").await;
    refused_for(&c, "recon:write").await;
    c.goto(&format!("{base}/reports")).await.unwrap();
    sign_out(&c).await;
    sign_in(&c, &base, &app.key).await;
    c.goto(&format!("{base}/reports?from={today}&to={today}"))
        .await
        .unwrap();
    let form = css(&c, "#breaks form").await;
    form.find(Locator::Css("textarea[name=reason]"))
        .await
        .unwrap()
        .send_keys("checked with the bank")
        .await
        .unwrap();
    let resolution = form
        .find(Locator::Css("select[name=resolution] option"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    mark(&c).await;
    form.find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    loaded(&c).await;
    let flash = wait_css(&c, "#flash").await.text().await.unwrap();
    assert!(flash.contains("resolved"), "{flash}");

    // Exceptions: the stuck payment, oldest first; ask the rail again, then settle it from a
    // receipt with a reason. No button resends it.
    c.goto(&format!("{base}/reports/exceptions")).await.unwrap();
    let page = source(&c).await;
    assert!(!page.to_lowercase().contains("resend"), "{page}");
    shot(&c, store, "exceptions").await;
    css(&c, &format!("{item} form.ask textarea"))
        .await
        .send_keys("payee says nothing arrived")
        .await
        .unwrap();
    submit(&c, &format!("{item} form.ask button")).await;
    let flash = wait_css(&c, "#flash").await.text().await.unwrap();
    assert!(flash.contains("asked again"), "{flash}");
    css(&c, &format!("{item} form.settle select[name=outcome]"))
        .await
        .select_by_value("completed")
        .await
        .unwrap();
    css(&c, &format!("{item} form.settle input[name=receipt]"))
        .await
        .send_keys("R-FROM-PAYEE")
        .await
        .unwrap();
    css(&c, &format!("{item} form.settle textarea"))
        .await
        .send_keys("payee's SMS receipt seen by the hotline")
        .await
        .unwrap();
    submit(&c, &format!("{item} form.settle button")).await;
    let flash = wait_css(&c, "#flash").await.text().await.unwrap();
    assert!(flash.contains("Settled"), "{flash}");
    let p = app.payment(&stuck).await;
    assert_eq!(p["state"], "completed", "{p}");
    assert_eq!(p["receipt"], "R-FROM-PAYEE", "{p}");
    assert!(c
        .find(Locator::Css(&format!("{item} form.settle")))
        .await
        .is_err());

    // A form posted without the page's token is refused, even with the session's cookie.
    let cookie = c.get_named_cookie("railgate_session").await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .post(app.url(&format!("/reports/payrolls/{payroll}/release")))
        .header("Cookie", format!("railgate_session={}", cookie.value()))
        .form(&[("reason", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // The audit trail: who did what, why, and what was refused.
    c.goto(&format!("{base}/reports/audit")).await.unwrap();
    let rows = c.find_all(Locator::Css("#audit tbody tr")).await.unwrap();
    let mut seen = Vec::new();
    for r in &rows {
        seen.push((
            r.attr("data-action").await.unwrap().unwrap(),
            r.attr("data-outcome").await.unwrap().unwrap(),
        ));
    }
    for want in [
        ("payroll.release", "done"),
        ("payroll.release", "refused"),
        ("statement.upload", "done"),
        ("statement.upload", "refused"),
        ("recon.run", "done"),
        ("recon.run", "refused"),
        ("break.resolve", "done"),
        ("break.resolve", "refused"),
        ("exception.recheck", "done"),
        ("exception.recheck", "refused"),
        ("exception.settle", "done"),
        ("exception.settle", "refused"),
        ("session.sign_in", "done"),
    ] {
        assert!(
            seen.iter().any(|(a, o)| a == want.0 && o == want.1),
            "{want:?} not in the trail: {seen:?}"
        );
    }
    let page = source(&c).await;
    assert!(
        page.contains("June run approved by the programme"),
        "{page}"
    );
    assert!(page.contains(&resolution) || page.contains("checked with the bank"));
    shot(&c, store, "audit").await;

    sign_out(&c).await;
    c.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_file(&statement);
    app.stop().await;
});
