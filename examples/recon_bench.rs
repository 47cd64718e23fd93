//! Reconciliation at scale: N completed payments, a mock-rail CSV statement of N lines, the
//! statement streamed into the store, then one run. Prints the time and peak RSS of each phase.
//!
//! ```text
//! cargo run --example recon_bench -- --n 1000000                      # SQLite (temporary file)
//! cargo run --example recon_bench -- --n 1000000 --db postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! The statement agrees with the payments except for a few in ten thousand lines: amounts that
//! differ, lines of nobody, payments missing from the statement, so the run raises real breaks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::indexing_slicing
)]

use railgate::recon::ingest::{self, Ingested, Upload};
use railgate::recon::run::{self, Scope};
use railgate::store::{keys, now_micros, Db};
use railgate_statements::matching::MatchConfig;
use railgate_statements::{CsvProfile, InputFormat};
use std::io::Write;
use std::time::Instant;

/// The gateway's own allocator (`src/main.rs`): the run costs here what it costs in the gateway.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Peak resident set size of this process so far, in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// Starts a new peak measurement (Linux: writing 5 to clear_refs resets `VmHWM`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn amount(i: u64) -> i64 {
    // 1,000.00 to 99,999.00 TZS, varied so that sums do not pair by accident.
    100_000 + ((i * 7919) % 9_890_000) as i64 / 100 * 100
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // The run logs how long each of its phases took.
    railgate::telemetry::init_logs();
    let n: u64 = arg("--n")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir()?;
    let (url, schema) = match arg("--db") {
        Some(u) if u.starts_with("postgres") => {
            let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let admin = Db::connect(&u, 1).await?;
            railgate::store::sql::query(&format!("CREATE SCHEMA {schema}"))
                .execute(admin.pool())
                .await?;
            admin.close().await;
            let sep = if u.contains('?') { '&' } else { '?' };
            (
                format!("{u}{sep}options=-c%20search_path%3D{schema}"),
                Some((u, schema)),
            )
        }
        Some(u) => (u, None),
        None => (
            format!("sqlite://{}", tmp.path().join("bench.db").display()),
            None,
        ),
    };
    let db = Db::connect(&url, 4).await?;
    db.migrate().await?;
    println!("store: {:?}, {n} payments, {n} statement lines", db.kind());

    // Set-up (not measured): the payments, completed on the mock rail.
    let client = keys::ensure_client(&db, "bench").await?;
    let t = Instant::now();
    let now = now_micros();
    let today = chrono::Utc::now().date_naive().to_string();
    let mut i = 0u64;
    while i < n {
        let rows = (n - i).min(1_000);
        let mut sql = String::from(
            "INSERT INTO payments (id, client_id, direction, state, reference, amount_minor, \
             currency, party_type, party_value, rail, metadata, rail_reference, created_at, \
             updated_at) VALUES ",
        );
        for r in 0..rows {
            if r > 0 {
                sql.push(',');
            }
            let b = r * 5;
            sql.push_str(&format!(
                "(${}, $1, 'disbursement', 'completed', ${}, ${}, 'TZS', 'MSISDN', ${}, 'mock', \
                 '{{\"programme\":\"bench\"}}', ${}, $2, $2)",
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
        }
        let mut q = railgate::store::sql::query(&sql)
            .bind(client.to_string())
            .bind(now);
        for k in i..i + rows {
            q = q
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(format!("BEN-{k:010}"))
                .bind(amount(k))
                .bind(format!("2557{:08}", k % 100_000_000))
                .bind(format!("MR{k:014}"));
        }
        q.execute(db.pool()).await?;
        i += rows;
    }
    println!(
        "set-up: {n} payments inserted in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The statement: every payment once, except a few differences.
    let path = tmp.path().join("statement.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
        w.write_all(b"booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n")?;
        for k in 0..n {
            if k % 10_000 == 1 {
                continue; // missing from the statement
            }
            let mut minor = amount(k);
            if k % 10_000 == 2 {
                minor += 100; // amount mismatch
            }
            writeln!(
                w,
                "{today},{today},{}.{:02},TZS,DEBIT,BEN-{k:010},2557********,MR{k:014},{}.{:02}",
                minor / 100,
                minor % 100,
                (minor * 5 / 1000) / 100,
                (minor * 5 / 1000) % 100,
            )?;
            if k % 10_000 == 3 {
                writeln!(
                    w,
                    "{today},{today},123.00,TZS,CREDIT,UNKNOWN-{k},2556********,OP{k:014},"
                )?;
            }
        }
    }
    let size = std::fs::metadata(&path)?.len();
    println!("statement: {:.1} MiB", size as f64 / 1_048_576.0);

    reset_peak();
    let t = Instant::now();
    let file = tokio::fs::File::open(&path).await?;
    let body = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(k) => {
                buf.truncate(k);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let stmt = match ingest::ingest(
        &db,
        Upload {
            client_id: client,
            uploaded_by: "bench".into(),
            format: InputFormat::Csv(CsvProfile::mock_rail()),
            format_name: "csv:mock-rail".into(),
            rail: Some("mock".into()),
        },
        Box::pin(body),
    )
    .await?
    {
        Ingested::New(s) => s,
        Ingested::Duplicate { earlier, .. } => earlier,
    };
    println!(
        "upload: {} lines stored in {:.1} s, peak RSS {} MiB",
        stmt.line_count,
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );

    reset_peak();
    let t = Instant::now();
    let r = run::execute(
        &db,
        client,
        "bench",
        Scope {
            statement_id: Some(stmt.id),
            from: None,
            to: None,
            dry_run: false,
            rules: MatchConfig::default(),
            missing_given: false,
        },
    )
    .await?;
    let rep = r.report.unwrap_or_default();
    println!(
        "run: {} lines, {} matched, {} payments settled, {} breaks in {:.1} s, peak RSS {} MiB",
        rep["lines_seen"],
        rep["lines_matched"],
        rep["payments_matched"],
        rep["breaks"]["total"],
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    db.close().await;
    // `--keep` leaves PostgreSQL's schema in place, to look at the run's plans afterwards.
    if let Some((base, schema)) = schema.filter(|_| !std::env::args().any(|a| a == "--keep")) {
        let admin = Db::connect(&base, 1).await?;
        railgate::store::sql::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(admin.pool())
            .await?;
    }
    Ok(())
}
