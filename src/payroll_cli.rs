//! `railgate payroll submit FILE`: uploads a payroll to a running gateway over its API and
//! shows a progress bar until every item is final (or waits for an operator).

// Reading the API's answers: `Value[&str]` gives `Null` for a missing key, it never panics.
#![allow(clippy::indexing_slicing)]

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Submit {
    pub file: PathBuf,
    pub url: String,
    pub key: String,
    pub hold: bool,
    pub currency: Option<String>,
    pub name: Option<String>,
}

/// Bad lines printed before the rest are only counted.
const SHOWN_ERRORS: usize = 20;

pub async fn submit(o: Submit) -> anyhow::Result<()> {
    let body = tokio::fs::read(&o.file)
        .await
        .with_context(|| format!("cannot read {}", o.file.display()))?;
    let json = o
        .file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let base = o.url.trim_end_matches('/').to_owned();
    let mut url = reqwest::Url::parse(&format!("{base}/v1/payrolls")).context("--url")?;
    {
        let mut q = url.query_pairs_mut();
        if o.hold {
            q.append_pair("hold", "true");
        }
        if let Some(c) = &o.currency {
            q.append_pair("currency", c);
        }
        if let Some(n) = &o.name {
            q.append_pair("name", n);
        }
    }
    let http = reqwest::Client::new();
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner.set_message(format!(
        "uploading and validating {} ({} bytes)",
        o.file.display(),
        body.len()
    ));
    let started = Instant::now();
    let resp = http
        .post(url)
        .bearer_auth(&o.key)
        .header(
            reqwest::header::CONTENT_TYPE,
            if json { "application/json" } else { "text/csv" },
        )
        // One key per upload, so a retry of this very request cannot store the payroll twice.
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .body(body)
        .send()
        .await
        .context("the gateway could not be reached")?;
    spinner.finish_and_clear();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!(
            "refused ({status}): {}",
            v["detail"].as_str().unwrap_or("no detail")
        );
        if let Some(errors) = v["errors"].as_array() {
            for e in errors.iter().take(SHOWN_ERRORS) {
                eprintln!(
                    "  line {}: {}: {}",
                    e["line"],
                    e["field"].as_str().unwrap_or(""),
                    e["reason"].as_str().unwrap_or("")
                );
            }
            if errors.len() > SHOWN_ERRORS {
                eprintln!("  … and more (see the API's answer)");
            }
        }
        bail!("the payroll was not accepted; nothing was stored");
    }
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    let total = v["item_count"].as_u64().unwrap_or(0);
    println!(
        "payroll {id}: {total} items accepted in {:.1?} ({})",
        started.elapsed(),
        v["status"].as_str().unwrap_or("")
    );
    if v["status"] == "held" {
        println!(
            "held: release it with POST {base}/v1/payrolls/{id}/release, or item by item from openIMIS"
        );
        return Ok(());
    }
    follow(&http, &base, &o.key, &id, total).await
}

/// Polls the payroll until every item is final or waiting for an operator.
async fn follow(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    total: u64,
) -> anyhow::Result<()> {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({percent}%) eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let v = loop {
        let resp = http
            .get(format!("{base}/v1/payrolls/{id}"))
            .bearer_auth(key)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let v: Value = match resp {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
            Ok(r) => bail!("the gateway answered {} for the payroll", r.status()),
            // A gateway restarting is no reason to stop following.
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let count = |s: &str| v["states"][s]["count"].as_u64().unwrap_or(0);
        let finished = v["finished"].as_u64().unwrap_or(0);
        let exceptions = v["exceptions"].as_u64().unwrap_or(0);
        bar.set_position(finished.saturating_add(exceptions).min(total));
        bar.set_message(format!(
            "completed {} failed {} in flight {}",
            count("completed"),
            count("failed"),
            ["queued", "submitted", "pending", "unknown"]
                .iter()
                .map(|s| count(s))
                .sum::<u64>()
        ));
        if v["status"] == "completed" || finished.saturating_add(exceptions) >= total {
            break v;
        }
        // Each look counts the whole payroll: look less often at a large one.
        let pause = if total > 10_000 { 2_000 } else { 500 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    };
    bar.finish();
    if let Some(states) = v["states"].as_object() {
        for (state, s) in states {
            let totals: Vec<String> = s["totals"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    format!(
                        "{} {}",
                        t["value"].as_str().unwrap_or(""),
                        t["currency"].as_str().unwrap_or("")
                    )
                })
                .collect();
            println!("  {state:<10} {:>8}  {}", s["count"], totals.join(", "));
        }
    }
    let exceptions = v["exceptions"].as_u64().unwrap_or(0);
    if exceptions > 0 {
        println!("  {exceptions} item(s) have an unknown outcome past the deadline: an operator must settle them");
    }
    Ok(())
}
