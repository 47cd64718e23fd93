//! Matcher and CSV reader throughput.
//!
//! `cargo bench -p railgate-statements --bench matching` runs 10k and 100k; set
//! `RAILGATE_BENCH_MILLION=1` to add the 1,000,000 × 1,000,000 case.
//!
//! The generated day: 90 % of lines carry our end-to-end id, 5 % only the rail's id, 4 % no
//! reference (paired by amount, counterparty and date), 1 % are unknown money (breaks).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use railgate_rail::{Currency, Money};
use railgate_statements::matching::{
    match_lines, Expected, ExpectedKind, ExpectedState, MatchConfig,
};
use railgate_statements::{
    Counterparty, CsvProfile, Direction, EntryStatus, InputFormat, Location, StatementItem,
    StatementLine, StatementReader,
};
use std::hint::black_box;
use std::io::Cursor;
use uuid::Uuid;

fn day(n: u64) -> (Vec<Expected>, Vec<StatementLine>) {
    let date = NaiveDate::from_ymd_opt(2025, 1, 15).unwrap();
    let mut expected = Vec::with_capacity(usize::try_from(n).unwrap());
    let mut lines = Vec::with_capacity(usize::try_from(n).unwrap());
    for i in 0..n {
        // Amounts repeat (1,000 distinct values) so the fuzzy rule has real buckets to search.
        let amount = Money::from_minor(
            i64::try_from(1_000 + (i % 1_000) * 50).unwrap(),
            Currency::Tzs,
        )
        .unwrap();
        let party = format!("2557{:08}", i);
        expected.push(Expected {
            id: Uuid::from_u128(u128::from(i)),
            kind: ExpectedKind::Disbursement,
            end_to_end_id: Some(format!("BEN-{i:010}")),
            rail_reference: Some(format!("RAIL-{i:010}")),
            receipt: None,
            payment_reference: None,
            batch_id: None,
            amount,
            counterparty: Some(party.clone()),
            date,
            state: ExpectedState::Completed,
            already_matched: false,
        });
        let (reference, rail, cp, amt) = match i % 100 {
            0..=89 => (
                Some(format!("BEN-{i:010}")),
                Some(format!("MOCK-{i}")),
                None,
                amount,
            ),
            90..=94 => (None, Some(format!("RAIL-{i:010}")), None, amount),
            95..=98 => (None, None, Some(party), amount),
            _ => (
                None,
                Some(format!("STRANGER-{i}")),
                None,
                Money::from_minor(7, Currency::Tzs).unwrap(),
            ),
        };
        lines.push(StatementLine {
            line_no: i + 1,
            status: EntryStatus::Booked,
            booking_date: Some(date),
            value_date: None,
            amount: amt,
            instructed_amount: None,
            direction: Direction::Debit,
            reference,
            rail_transaction_id: rail,
            receipt: None,
            creditor_reference: None,
            remittance: None,
            bank_entry_ref: None,
            counterparty: cp.map(|a| Counterparty {
                name: None,
                account: Some(a),
            }),
            fee: None,
            bank_transaction_code: None,
            batch: None,
            return_info: None,
            location: Location::default(),
        });
    }
    // Statements are not in our order.
    lines.reverse();
    (expected, lines)
}

fn sizes() -> Vec<u64> {
    let mut s = vec![10_000, 100_000];
    if std::env::var_os("RAILGATE_BENCH_MILLION").is_some() {
        s.push(1_000_000);
    }
    s
}

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("match_lines");
    g.sample_size(10);
    for n in sizes() {
        let (expected, lines) = day(n);
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let o = match_lines(&expected, &lines, MatchConfig::default());
                assert_eq!(o.breaks.len(), usize::try_from(n / 100 * 2).unwrap());
                black_box(o)
            })
        });
    }
    g.finish();
}

fn csv_reading(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_csv");
    g.sample_size(10);
    let n = 100_000u64;
    let mut data = String::from("booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n");
    for i in 0..n {
        data.push_str(&format!(
            "2025-01-15,2025-01-15,{}.{:02},TZS,DEBIT,BEN-{i:010},2557{i:08},MOCK-{i},250.00\n",
            i + 1,
            i % 100
        ));
    }
    g.throughput(Throughput::Elements(n));
    g.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            let reader = StatementReader::open(
                Cursor::new(data.as_bytes()),
                InputFormat::Csv(CsvProfile::mock_rail()),
            )
            .unwrap();
            let lines = reader
                .filter(|i| matches!(i, Ok(StatementItem::Line(_))))
                .count();
            assert_eq!(u64::try_from(lines).unwrap(), n);
        })
    });
    g.finish();
}

criterion_group!(benches, matching, csv_reading);
criterion_main!(benches);
