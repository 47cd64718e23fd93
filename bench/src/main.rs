//! `railgate-load`: a small, bounded load driver for a gateway on loopback.
//!
//! `--mode create` posts disbursements from `--concurrency` clients and reports payments
//! created per second with the p50/p99 latency of `POST /v1/disbursements`. `--mode e2e` does
//! the same, then follows every payment until it is completed (API → rail over HTTP → signed
//! callback → completed) and reports disbursements completed per second, timed by the
//! gateway's own `created_at`/`updated_at`. Both stop at `--count` payments or
//! `--max-seconds`, whichever comes first.

// Counters and timings only: no money passes through this program.
#![allow(clippy::arithmetic_side_effects)]

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Create,
    E2e,
}

#[derive(Debug, Parser)]
#[command(
    name = "railgate-load",
    about = "Bounded load driver for a gateway on loopback"
)]
struct Args {
    /// The gateway (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// A key with payments:write and payments:read.
    #[arg(long, env = "RAILGATE_API_KEY")]
    api_key: String,
    #[arg(long, value_enum, default_value = "create")]
    mode: Mode,
    /// Payments to create (at most).
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Clients posting at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Stop creating after this long; e2e waits at most this long again for completions.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Last two digits of the payees' numbers: the mock rail's scenario (00 = success).
    #[arg(long, default_value = "00")]
    scenario: String,
}

/// The host must be loopback: this program is for benchmarks on one machine, not for load
/// against anything else.
fn check_loopback(base: &str) -> Result<()> {
    let url = reqwest::Url::parse(base).context("--base-url")?;
    match url.host_str() {
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1") => Ok(()),
        other => bail!("--base-url must be on loopback, not {other:?}"),
    }
}

fn ms(micros: u64) -> f64 {
    Duration::from_micros(micros).as_secs_f64() * 1000.0
}

fn per_second(n: usize, over: Duration) -> f64 {
    let n = u32::try_from(n).map(f64::from).unwrap_or(f64::MAX);
    let secs = over.as_secs_f64();
    if secs > 0.0 {
        n / secs
    } else {
        0.0
    }
}

fn new_histogram() -> Result<Histogram<u64>> {
    // Microseconds up to 10 minutes, 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram")
}

struct Created {
    /// (sequence number, payment id), for following them in creation order.
    ids: Vec<(usize, String)>,
    latency: Histogram<u64>,
    errors: usize,
    elapsed: Duration,
}

async fn create(http: &reqwest::Client, args: &Args, run: &str) -> Result<Created> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(args.max_seconds);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (http, next) = (http.clone(), next.clone());
        let (base, key, scenario, run) = (
            args.base_url.clone(),
            args.api_key.clone(),
            args.scenario.clone(),
            run.to_owned(),
        );
        let count = args.count;
        workers.spawn(async move {
            let mut hist = new_histogram()?;
            let mut ids = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() > stop_at {
                    return Ok::<_, anyhow::Error>((ids, hist, errors));
                }
                let body = json!({
                    "reference": format!("LOAD-{run}-{i:07}"),
                    "amount": {"value": "1500.00", "currency": "TZS"},
                    "payee": {"id_type": "MSISDN", "id_value": format!("2557{:06}{scenario}", i % 1_000_000)},
                    "narrative": "Load test",
                    "metadata": {"programme": "bench"}
                });
                let t = Instant::now();
                let resp = http
                    .post(format!("{base}/v1/disbursements"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await;
                let took = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                match resp {
                    Ok(r) if r.status().as_u16() == 201 => {
                        hist.saturating_record(took.max(1));
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        match v.get("id").and_then(Value::as_str) {
                            Some(id) => ids.push((i, id.to_owned())),
                            None => errors += 1,
                        }
                    }
                    Ok(r) => {
                        errors += 1;
                        if errors <= 3 {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            eprintln!("unexpected answer {status}: {text}");
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("request failed: {e}");
                        }
                    }
                }
            }
        });
    }
    let mut out = Created {
        ids: Vec::new(),
        latency: new_histogram()?,
        errors: 0,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = workers.join_next().await {
        let (ids, hist, errors) = joined??;
        out.ids.extend(ids);
        out.latency.add(&hist).context("merging histograms")?;
        out.errors += errors;
    }
    out.elapsed = started.elapsed();
    out.ids.sort();
    Ok(out)
}

fn micros_of(v: &Value, field: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.get(field)?.as_str()?)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Follows the payments in creation order until each is final (bounded), and measures from
/// the gateway's own timestamps.
async fn follow(http: &reqwest::Client, args: &Args, ids: &[(usize, String)]) -> Result<()> {
    let give_up = Instant::now() + Duration::from_secs(args.max_seconds);
    let mut e2e = new_histogram()?;
    let (mut first_created, mut last_done) = (i64::MAX, i64::MIN);
    let (mut completed, mut other, mut unfinished) = (0usize, 0usize, 0usize);
    for (_, id) in ids {
        loop {
            let got = http
                .get(format!("{}/v1/payments/{id}", args.base_url))
                .bearer_auth(&args.api_key)
                .send()
                .await;
            // A failed poll is not the gateway's answer: poll again (bounded by `give_up`).
            let v: Value = match got {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            let state = v.get("state").and_then(Value::as_str).unwrap_or("");
            let final_state = matches!(state, "completed" | "failed" | "cancelled" | "reversed");
            if final_state || Instant::now() > give_up {
                if state == "completed" {
                    completed += 1;
                    if let (Some(c), Some(u)) =
                        (micros_of(&v, "created_at"), micros_of(&v, "updated_at"))
                    {
                        first_created = first_created.min(c);
                        last_done = last_done.max(u);
                        e2e.saturating_record(u64::try_from(u - c).unwrap_or(0).max(1));
                    }
                } else if final_state {
                    other += 1;
                } else {
                    unfinished += 1;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let span = Duration::from_micros(u64::try_from(last_done - first_created).unwrap_or(0));
    println!(
        "completed: {completed} in {:.2} s = {:.1} disbursements/s (other final: {other}, unfinished: {unfinished})",
        span.as_secs_f64(),
        per_second(completed, span)
    );
    println!(
        "end-to-end latency (created → completed): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(e2e.value_at_quantile(0.50)),
        ms(e2e.value_at_quantile(0.99)),
        ms(e2e.max())
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    check_loopback(&args.base_url)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()?;
    let run = format!("{:x}", chrono::Utc::now().timestamp_micros());
    let created = create(&http, &args, &run).await?;
    println!(
        "mode: {:?}, clients: {}, scenario: {}",
        args.mode, args.concurrency, args.scenario
    );
    println!(
        "created: {} in {:.2} s = {:.1} payments/s (errors: {})",
        created.ids.len(),
        created.elapsed.as_secs_f64(),
        per_second(created.ids.len(), created.elapsed),
        created.errors
    );
    println!(
        "create latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(created.latency.value_at_quantile(0.50)),
        ms(created.latency.value_at_quantile(0.99)),
        ms(created.latency.max())
    );
    if let Mode::E2e = args.mode {
        follow(&http, &args, &created.ids).await?;
    }
    Ok(())
}
