#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::as_conversions
)]

mod common;

use chrono::NaiveDate;
use common::{fixture, money, read, Generated};
use railgate_rail::Currency;
use railgate_statements::*;
use std::io::{BufReader, Cursor};

#[test]
fn mock_rail_export_reads() {
    let stmts = read("mock_rail.csv", InputFormat::Csv(CsvProfile::mock_rail()));
    assert_eq!(stmts.len(), 1);
    let s = &stmts[0];
    assert_eq!(
        s.source_format(),
        &SourceFormat::Csv {
            profile: "mock-rail".into()
        }
    );
    assert_eq!(s.lines.len(), 7);
    let l = &s.lines[1];
    assert_eq!(l.amount, money("22500.50", Currency::Tzs));
    assert_eq!(l.direction, Direction::Debit);
    assert_eq!(l.reference.as_deref(), Some("BEN-0000018001"));
    assert_eq!(l.rail_transaction_id.as_deref(), Some("MOCK-TX-000002"));
    assert_eq!(l.fee, Some(money("250.00", Currency::Tzs)));
    assert_eq!(
        l.counterparty.as_ref().unwrap().account.as_deref(),
        Some("255712340004")
    );
    assert_eq!(l.location.source_line, 3);
    assert_eq!(l.location.entry, 2);
    assert_eq!(s.lines[2].fee, None, "empty fee column");
    assert_eq!(s.lines[3].direction, Direction::Credit);
    assert_eq!(s.lines[3].value_date, NaiveDate::from_ymd_opt(2025, 2, 4));
    assert_eq!(
        s.lines[4].amount,
        money("5000", Currency::Ugx),
        "currency per row"
    );
    assert_eq!(s.lines[5].reference, None, "NOTPROVIDED");
}

#[test]
fn mobile_money_operator_export_reads() {
    let stmts = read(
        "mobile_money_operator.csv",
        InputFormat::Csv(CsvProfile::mobile_money_operator()),
    );
    let s = &stmts[0];
    assert_eq!(s.currency(), Some(Currency::Kes));
    assert_eq!(s.lines.len(), 5);
    let out = &s.lines[0];
    assert_eq!(
        out.direction,
        Direction::Debit,
        "negative amount is money out"
    );
    assert_eq!(
        out.amount,
        money("2500.00", Currency::Kes),
        "thousands separator, sign dropped"
    );
    assert_eq!(out.fee, Some(money("15.00", Currency::Kes)));
    assert_eq!(out.receipt.as_deref(), Some("SBC4H7K2LQ"));
    assert_eq!(
        out.rail_transaction_id.as_deref(),
        Some("AG_20250203_00004f2c9a1b")
    );
    assert_eq!(out.reference.as_deref(), Some("BEN-778812-202502"));
    assert_eq!(
        out.booking_date,
        NaiveDate::from_ymd_opt(2025, 2, 3),
        "date-time read as its date"
    );
    let cp = out.counterparty.as_ref().unwrap();
    assert_eq!(cp.account.as_deref(), Some("254712345600"));
    assert_eq!(cp.name.as_deref(), Some("JANE WANJIRU"));
    let dbg = format!("{cp:?}");
    assert!(
        !dbg.contains("254712345600") && !dbg.contains("WANJIRU"),
        "Debug masks: {dbg}"
    );

    let in_ = &s.lines[2];
    assert_eq!(in_.direction, Direction::Credit);
    assert_eq!(in_.fee, None, "a zero charge is no fee");
    assert_eq!(in_.rail_transaction_id, None);
    assert_eq!(
        s.lines[3].status,
        EntryStatus::Info,
        "a failed row proves nothing"
    );
    assert_eq!(s.lines[4].amount, money("750", Currency::Kes));
}

fn profile_signed() -> CsvProfile {
    CsvProfile {
        name: "bank-de".into(),
        delimiter: ';',
        columns: CsvColumns {
            booking_date: "Buchungstag".into(),
            value_date: None,
            amount: "Betrag".into(),
            reference: Some("Referenz".into()),
            counterparty: None,
            counterparty_separator: None,
            rail_transaction_id: None,
            receipt: None,
            fee: None,
            remittance: None,
        },
        currency: CurrencySource::Column("Waehrung".into()),
        date_format: "%d.%m.%Y".into(),
        decimal_separator: ',',
        thousands_separator: Some('.'),
        sign: SignConvention::SignedAmount {
            negative_means: Direction::Debit,
        },
        status: None,
    }
}

#[test]
fn decimal_comma_and_signs() {
    let data =
        "Buchungstag;Betrag;Waehrung;Referenz\n03.01.2025;-1.234,56;EUR;A\n03.01.2025;+7,5;EUR;B\n";
    let s = read_all(Cursor::new(data), InputFormat::Csv(profile_signed())).unwrap();
    assert_eq!(s[0].lines[0].amount.minor(), 123_456);
    assert_eq!(s[0].lines[0].direction, Direction::Debit);
    assert_eq!(s[0].lines[1].amount.minor(), 750);
    assert_eq!(s[0].lines[1].direction, Direction::Credit);
}

#[test]
fn negative_amount_flips_a_stated_direction() {
    let data = "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n\
                2025-02-03,,-15.00,TZS,CREDIT,R1,,,\n";
    let s = read_all(Cursor::new(data), InputFormat::Csv(CsvProfile::mock_rail())).unwrap();
    assert_eq!(s[0].lines[0].direction, Direction::Debit);
    assert_eq!(s[0].lines[0].amount.minor(), 1500);
}

#[test]
fn bad_rows_name_line_and_column() {
    let data = "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n\
                2025-02-03,,15.00,TZS,DEBIT,R1,,,\n\
                2025-02-03,,15.001,TZS,DEBIT,R2,,,\n\
                2025/02/03,,15.00,TZS,DEBIT,R3,,,\n\
                2025-02-03,,15.00,TZS,SIDEWAYS,R4,,,\n\
                2025-02-03,,15.00,ZZZ,DEBIT,R5,,,\n\
                2025-02-03,,1.5e3,TZS,DEBIT,R6,,,\n\
                2025-02-03,,15.00,TZS\n\
                2025-02-03,,16.00,TZS,CREDIT,R8,,,\n";
    let items: Vec<_> =
        StatementReader::open(Cursor::new(data), InputFormat::Csv(CsvProfile::mock_rail()))
            .unwrap()
            .collect();
    let errs: Vec<&ParseError> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(errs.len(), 6);
    assert!(errs.iter().all(|e| !e.fatal()));
    assert_eq!(
        (errs[0].location.source_line, errs[0].field.as_str()),
        (3, "amount")
    );
    assert_eq!(
        (errs[1].location.source_line, errs[1].field.as_str()),
        (4, "booking_date")
    );
    assert_eq!(
        (errs[2].location.source_line, errs[2].field.as_str()),
        (5, "direction")
    );
    assert_eq!(
        (errs[3].location.source_line, errs[3].field.as_str()),
        (6, "currency")
    );
    assert_eq!(
        (errs[4].location.source_line, errs[4].field.as_str()),
        (7, "amount")
    );
    assert!(matches!(errs[5].kind, ParseErrorKind::Csv(_)), "short row");
    let lines: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Ok(StatementItem::Line(l)) => Some((l.line_no, l.reference.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(lines, [(1, Some("R1".into())), (8, Some("R8".into()))]);
}

#[test]
fn a_profile_column_missing_from_the_file_is_refused_up_front() {
    let data = "date,amount\n2025-01-01,1.00\n";
    let err = StatementReader::open(Cursor::new(data), InputFormat::Csv(CsvProfile::mock_rail()))
        .err()
        .unwrap();
    assert!(err.fatal());
    assert!(matches!(err.kind, ParseErrorKind::Profile(_)));
    assert_eq!(err.field, "booking_date");
}

#[test]
fn builtin_profiles_by_name() {
    assert_eq!(
        CsvProfile::builtin(MOCK_RAIL_PROFILE),
        Some(CsvProfile::mock_rail())
    );
    assert_eq!(
        CsvProfile::builtin(MOBILE_MONEY_PROFILE),
        Some(CsvProfile::mobile_money_operator())
    );
    assert_eq!(CsvProfile::builtin("nope"), None);
}

#[test]
fn csv_streams_200k_lines_without_collecting() {
    const N: u64 = 200_000;
    let header = "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n";
    let gen = Generated::new(move |i| match i {
        0 => Some(header.to_owned()),
        i if i <= N => Some(format!(
            "2025-02-{:02},,{}.{:02},TZS,{},BEN-{i:010},2557{:08},MOCK-TX-{i:09},\n",
            i % 28 + 1,
            i,
            i % 100,
            if i % 3 == 0 { "CREDIT" } else { "DEBIT" },
            i
        )),
        _ => None,
    });
    let hashing = HashingReader::new(BufReader::new(gen));
    let mut reader =
        StatementReader::open(hashing, InputFormat::Csv(CsvProfile::mock_rail())).unwrap();
    let (mut count, mut credits, mut sum) = (0u64, 0u64, 0i128);
    for item in reader.by_ref() {
        match item.unwrap() {
            StatementItem::Header(_) => {}
            StatementItem::Line(l) => {
                count += 1;
                assert_eq!(l.line_no, count);
                if l.direction == Direction::Credit {
                    credits += 1;
                }
                sum += i128::from(l.amount.minor());
            }
        }
    }
    assert_eq!(count, N);
    assert_eq!(credits, N / 3);
    assert_eq!(
        sum,
        (1..=N).map(|i| i128::from(i * 100 + i % 100)).sum::<i128>()
    );
    let (_, len) = reader.into_inner().finish().unwrap();
    assert!(len > 15_000_000, "{len} bytes streamed");
}

#[test]
fn profiles_are_data() {
    let p = CsvProfile::mobile_money_operator();
    let json = serde_json::to_string(&p).unwrap();
    let back: CsvProfile = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    assert!(fixture("mock_rail.csv").exists());
}

#[test]
fn rail_family_export_reads() {
    // What the MMAPI, M-Pesa, Mojaloop, Mifos and bank mocks serve: one date, words for the way.
    let csv = "date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n\
               2025-02-03,1500.00,KES,debit,BEN-1,2547********00,RCPT-1,0.00\n\
               2025-02-03,700.00,KES,COLLECTION,PREM-1,2547********01,RCPT-2,\n\
               2025-02-04,1500.00,KES,reversal,BEN-1,2547********00,RCPT-3,0\n";
    let stmts = read_all(
        Cursor::new(csv),
        InputFormat::Csv(CsvProfile::builtin(RAIL_EXPORT_PROFILE).unwrap()),
    )
    .unwrap();
    let lines = &stmts[0].lines;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].direction, Direction::Debit);
    assert_eq!(lines[0].booking_date, NaiveDate::from_ymd_opt(2025, 2, 3));
    assert_eq!(lines[0].rail_transaction_id.as_deref(), Some("RCPT-1"));
    assert_eq!(lines[1].direction, Direction::Credit);
    assert_eq!(lines[2].direction, Direction::Credit);
    assert_eq!(lines[2].amount, money("1500.00", Currency::Kes));
}
