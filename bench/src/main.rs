//! `railgate-load`: a small, bounded load driver for a gateway on loopback.
//!
//! `--mode create` posts disbursements from `--concurrency` clients and reports payments
//! created per second with the p50/p99 latency of `POST /v1/disbursements`. `--mode e2e` does
//! the same, then waits until every payment is final (API → rail over HTTP → signed callback →
//! completed; watched through the gateway's transitions counter, so that the driver's own reads
//! stay out of the window it measures), reads each payment once, and reports disbursements
//! completed per second, timed by the gateway's own `created_at`/`updated_at`, and the
//! gateway's write transactions per completed payment (its `railgate_write_transactions_total`
//! counter, read before and after). Both stop at `--count` payments or `--max-seconds`,
//! whichever comes first.
//!
//! `--mode open-loop` offers a fixed rate instead (`--rate` requests/s for `--duration-seconds`):
//! request `i` is due at `start + i / rate` and is sent then, whatever the earlier requests
//! are doing, and its latency counts from when it was due, not from when it was sent. A
//! gateway that falls behind therefore shows its queue in the latency, which a closed loop
//! (each client waiting for its answer before the next request) hides by sending less.

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
    OpenLoop,
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
    /// Open loop: requests offered per second.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    rate: u32,
    /// Open loop: how long the rate is offered.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    duration_seconds: u32,
    /// Open loop: requests outstanding at most; a request due while this many are unanswered
    /// waits for one of them, and that wait counts in its latency.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// E2e: after the last payment is final, wait at most this long for the gateway's queue
    /// to empty (jobs kept for late callbacks) before reading its write counter again.
    #[arg(long, default_value_t = 60)]
    settle_seconds: u64,
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

/// The body of one `POST /v1/disbursements` of the load.
fn disbursement(reference: &str, i: usize, scenario: &str) -> Value {
    json!({
        "reference": reference,
        "amount": {"value": "1500.00", "currency": "TZS"},
        "payee": {"id_type": "MSISDN", "id_value": format!("2557{:06}{scenario}", i % 1_000_000)},
        "narrative": "Load test",
        "metadata": {"programme": "bench"}
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
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
                let body = disbursement(&format!("LOAD-{run}-{i:07}"), i, &scenario);
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

/// Waits until the gateway counts every payment final, then reads each in creation order
/// (again until final, all bounded by `--max-seconds`), and measures from the gateway's own
/// timestamps. Returns how many completed.
async fn follow(
    http: &reqwest::Client,
    args: &Args,
    ids: &[(usize, String)],
    finals_before: f64,
) -> Result<usize> {
    let give_up = Instant::now() + Duration::from_secs(args.max_seconds);
    // Watched through the gateway's own counter first, read 20 times a second, and each
    // payment read only once they are all final: polling every payment while the run goes on
    // put the driver's reads (four statements each) on the gateway and its store in the very
    // window being measured.
    let want = u32::try_from(ids.len()).map(f64::from).unwrap_or(f64::MAX);
    while Instant::now() <= give_up {
        let now = scrape(http, &args.base_url).await?;
        if finals(&now) - finals_before >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    Ok(completed)
}

/// The counter of write transactions the gateway commits (reads excluded).
const WRITE_TRANSACTIONS: &str = "railgate_write_transactions_total";
/// The gauge of the gateway's queued jobs (set when `/metrics` is read).
const JOBS_WAITING: &str = "railgate_jobs_waiting";

/// The gateway's `/metrics`, parsed.
async fn scrape(http: &reqwest::Client, base: &str) -> Result<prometheus_parse::Scrape> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .context("GET /metrics")?
        .error_for_status()
        .context("GET /metrics")?
        .text()
        .await
        .context("reading /metrics")?;
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .context("parsing /metrics")
}

/// Payments that reached a final state, by the gateway's transitions counter.
fn finals(scrape: &prometheus_parse::Scrape) -> f64 {
    metric_sum_where(scrape, TRANSITIONS, |s| {
        matches!(
            s.labels.get("to"),
            Some("completed" | "failed" | "cancelled")
        )
    })
    .unwrap_or(0.0)
}

const TRANSITIONS: &str = "railgate_payment_transitions_total";

/// The sum of a counter's or gauge's samples over all their labels; None when not exported.
fn metric_sum(scrape: &prometheus_parse::Scrape, name: &str) -> Option<f64> {
    metric_sum_where(scrape, name, |_| true)
}

/// [`metric_sum`] over the samples `keep` takes.
fn metric_sum_where(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    keep: impl Fn(&prometheus_parse::Sample) -> bool,
) -> Option<f64> {
    use prometheus_parse::Value as V;
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && keep(s))
        .filter_map(|s| match s.value {
            V::Counter(v) | V::Gauge(v) | V::Untyped(v) => Some(v),
            V::Histogram(_) | V::Summary(_) => None,
        })
        .reduce(|a, b| a + b)
}

/// Waits (at most `--settle-seconds`) until the gateway has no job left, so that the work a
/// payment causes after it is final (a job kept for a late callback, then removed) is counted.
/// Without the jobs gauge, until the write counter has not moved for two seconds. Returns the
/// gateway's metrics at the end and the jobs still waiting then.
async fn settle(http: &reqwest::Client, args: &Args) -> Result<(prometheus_parse::Scrape, f64)> {
    let give_up = Instant::now() + Duration::from_secs(args.settle_seconds);
    let (mut last_writes, mut quiet_since) = (None, Instant::now());
    loop {
        let now = scrape(http, &args.base_url).await?;
        let jobs = metric_sum(&now, JOBS_WAITING);
        let writes = metric_sum(&now, WRITE_TRANSACTIONS);
        if writes != last_writes {
            (last_writes, quiet_since) = (writes, Instant::now());
        }
        let quiet = jobs.is_none() && quiet_since.elapsed() >= Duration::from_secs(2);
        if jobs == Some(0.0) || quiet || Instant::now() > give_up {
            return Ok((now, jobs.unwrap_or(0.0)));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints the gateway's write transactions per completed payment, from its counter read
/// before the run (`before`) and after it has settled.
async fn write_transactions(
    http: &reqwest::Client,
    args: &Args,
    before: Option<f64>,
    completed: usize,
) -> Result<()> {
    let (after, jobs_left) = settle(http, args).await?;
    let after = metric_sum(&after, WRITE_TRANSACTIONS);
    let label = "write transactions per completed payment:";
    let (Some(before), Some(after)) = (before, after) else {
        println!("{label} n/a (metric missing)");
        return Ok(());
    };
    if completed == 0 {
        println!("{label} n/a (no payment completed)");
        return Ok(());
    }
    let delta = after - before;
    let completed_f = u32::try_from(completed).map(f64::from).unwrap_or(f64::MAX);
    let unsettled = if jobs_left > 0.0 {
        format!("; {jobs_left} jobs still queued when read")
    } else {
        String::new()
    };
    println!(
        "{label} {:.2} ({delta} write transactions over {completed} completed, the gateway's {WRITE_TRANSACTIONS}, reads excluded{unsettled})",
        delta / completed_f
    );
    Ok(())
}

/// One request of the open loop: its latency from when it was due, how long after it was due
/// it went out, and whether the gateway created the payment.
struct Shot {
    from_due: u64,
    send_lag: u64,
    service: u64,
    created: bool,
}

/// Open-loop failures printed so far (the first three are, the rest only counted).
static FAILURES_SHOWN: AtomicUsize = AtomicUsize::new(0);

/// Sends one request, due at `due`, and times it.
async fn shot(
    http: reqwest::Client,
    url: String,
    key: String,
    body: Value,
    due: tokio::time::Instant,
) -> Shot {
    let sent = tokio::time::Instant::now();
    let resp = http.post(url).bearer_auth(key).json(&body).send().await;
    let created = match resp {
        Ok(r) if r.status().as_u16() == 201 => {
            // The answer is whole only once its body is read.
            r.bytes().await.is_ok()
        }
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if FAILURES_SHOWN.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("unexpected answer {status}: {text}");
            }
            false
        }
        Err(e) => {
            if FAILURES_SHOWN.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("request failed: {e}");
            }
            false
        }
    };
    let done = tokio::time::Instant::now();
    Shot {
        from_due: micros(done - due),
        send_lag: micros(sent - due),
        service: micros(done - sent),
        created,
    }
}

/// The open loop: `--rate` requests a second for `--duration-seconds`, each sent when due (up to
/// `--max-in-flight` unanswered), timed from when it was due.
async fn open_loop(http: &reqwest::Client, args: &Args, run: &str) -> Result<()> {
    let rate = u64::from(args.rate);
    let total = rate * u64::from(args.duration_seconds);
    let slots = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight.max(1)));
    let url = format!("{}/v1/disbursements", args.base_url);
    let (mut from_due, mut send_lag, mut service) =
        (new_histogram()?, new_histogram()?, new_histogram()?);
    let (mut created, mut errors, mut capped) = (0usize, 0usize, 0usize);
    let mut tally = |s: Shot| {
        if s.created {
            created += 1;
            from_due.saturating_record(s.from_due);
            service.saturating_record(s.service);
        } else {
            errors += 1;
        }
        send_lag.saturating_record(s.send_lag);
    };
    let mut shots = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let offset = u64::try_from(u128::from(i) * 1_000_000_000 / u128::from(rate))?;
        let due = start + Duration::from_nanos(offset);
        tokio::time::sleep_until(due).await;
        // A request due while `--max-in-flight` are unanswered waits here, and the wait is in
        // its latency: the schedule of the later ones does not move.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                capped += 1;
                slots.clone().acquire_owned().await?
            }
        };
        let i = usize::try_from(i)?;
        let body = disbursement(&format!("LOAD-{run}-O{i:07}"), i, &args.scenario);
        let job = shot(http.clone(), url.clone(), args.api_key.clone(), body, due);
        shots.spawn(async move {
            let s = job.await;
            drop(slot);
            s
        });
        while let Some(done) = shots.try_join_next() {
            tally(done?);
        }
    }
    while let Some(done) = shots.join_next().await {
        tally(done?);
    }
    let elapsed = start.elapsed();
    println!(
        "mode: {:?}, rate: {}/s offered for {} s, at most {} in flight, scenario: {}",
        args.mode, args.rate, args.duration_seconds, args.max_in_flight, args.scenario
    );
    println!(
        "open-loop create latency at {}/s offered: p50 {:.2} ms, p99 {:.2} ms, achieved {:.1}/s (created: {created}, errors: {errors}, max {:.2} ms)",
        args.rate,
        ms(from_due.value_at_quantile(0.50)),
        ms(from_due.value_at_quantile(0.99)),
        per_second(created, elapsed),
        ms(from_due.max())
    );
    println!(
        "open-loop service time (from the actual send): p50 {:.2} ms, p99 {:.2} ms; send lag behind schedule: p99 {:.2} ms, max {:.2} ms; {capped} requests waited for one of the {} in flight",
        ms(service.value_at_quantile(0.50)),
        ms(service.value_at_quantile(0.99)),
        ms(send_lag.value_at_quantile(0.99)),
        ms(send_lag.max()),
        args.max_in_flight
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    check_loopback(&args.base_url)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(match args.mode {
            Mode::OpenLoop => args.max_in_flight.max(1),
            Mode::Create | Mode::E2e => args.concurrency.max(1),
        })
        .build()?;
    let run = format!("{:x}", chrono::Utc::now().timestamp_micros());
    if let Mode::OpenLoop = args.mode {
        return open_loop(&http, &args, &run).await;
    }
    let before = match args.mode {
        Mode::E2e => Some(scrape(&http, &args.base_url).await?),
        Mode::Create | Mode::OpenLoop => None,
    };
    let writes_before = before
        .as_ref()
        .and_then(|b| metric_sum(b, WRITE_TRANSACTIONS));
    let finals_before = before.as_ref().map_or(0.0, finals);
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
        let completed = follow(&http, &args, &created.ids, finals_before).await?;
        write_transactions(&http, &args, writes_before, completed).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn a_counter_is_summed_over_its_labels() {
        let s = parse(
            "# TYPE railgate_write_transactions_total counter\n\
             railgate_write_transactions_total{store=\"sqlite\",path=\"api\"} 12\n\
             railgate_write_transactions_total{store=\"sqlite\",path=\"dispatch\"} 30\n\
             # TYPE railgate_jobs_waiting gauge\n\
             railgate_jobs_waiting 0\n",
        );
        assert_eq!(metric_sum(&s, WRITE_TRANSACTIONS), Some(42.0));
        assert_eq!(metric_sum(&s, JOBS_WAITING), Some(0.0));
    }

    #[test]
    fn a_missing_metric_is_none() {
        let s = parse("# TYPE railgate_jobs_waiting gauge\nrailgate_jobs_waiting 3\n");
        assert_eq!(metric_sum(&s, WRITE_TRANSACTIONS), None);
    }
}
