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
use common::{bytes, money, read, Generated};
use railgate_rail::Currency;
use railgate_statements::*;
use std::io::{BufReader, Cursor};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[test]
fn camt053_v02_reads_every_case() {
    let stmts = read("camt053_v02.xml", InputFormat::Camt);
    assert_eq!(stmts.len(), 2, "two accounts, two currencies");
    let eur = &stmts[0];
    assert_eq!(eur.source_format(), &SourceFormat::Camt053 { version: 2 });
    assert_eq!(eur.account(), Some("DE78430609671188421007"));
    assert_eq!(eur.currency(), Some(Currency::Eur));
    assert_eq!(
        eur.header.statement_id.as_deref(),
        Some("STMT-20250106-0001-EUR")
    );
    assert_eq!(eur.header.message_id.as_deref(), Some("STMT-20250106-0001"));
    assert_eq!(eur.header.electronic_sequence, Some(4));
    assert_eq!(eur.header.copy_duplicate, None);
    assert_eq!(
        eur.period(),
        Some(Period {
            from: d("2025-01-03"),
            to: d("2025-01-05")
        })
    );
    assert_eq!(eur.header.opening_balance.map(|b| b.minor), Some(1_000_000));
    assert_eq!(eur.header.closing_balance.map(|b| b.minor), Some(872_675));
    assert_eq!(eur.lines.len(), 6);

    // Fees netted: booked 413.25, instructed 412.50, charge 0.75.
    let l = &eur.lines[0];
    assert_eq!(l.line_no, 1);
    assert_eq!(l.status, EntryStatus::Booked);
    assert_eq!(l.direction, Direction::Debit);
    assert_eq!(l.amount, money("413.25", Currency::Eur));
    assert_eq!(l.instructed_amount, Some(money("412.50", Currency::Eur)));
    assert_eq!(l.matching_amount(), money("412.50", Currency::Eur));
    assert_eq!(l.fee, Some(money("0.75", Currency::Eur)));
    assert_eq!(l.reference.as_deref(), Some("BEN-778812-202501"));
    assert_eq!(l.rail_transaction_id.as_deref(), Some("GLSTX0003318842"));
    assert_eq!(l.bank_entry_ref.as_deref(), Some("GLS-2025010300417"));
    assert_eq!(l.bank_transaction_code.as_deref(), Some("PMNT/ICDT/ESCT"));
    assert_eq!(l.booking_date, Some(d("2025-01-03")));
    let cp = l.counterparty.as_ref().unwrap();
    assert_eq!(cp.account.as_deref(), Some("DE87251205100004471930"));
    assert_eq!(cp.name.as_deref(), Some("Amani Mwakilema"));
    assert_eq!(l.remittance.as_deref(), Some("Pension 2025-01 ref 778812"));
    assert_eq!(l.location.entry, 1);
    assert_eq!(l.location.section, 1);
    assert!(
        l.location.source_line > 40,
        "line {}",
        l.location.source_line
    );
    let text = String::from_utf8(bytes("camt053_v02.xml")).unwrap();
    let offset = usize::try_from(l.location.byte_offset).unwrap();
    assert!(
        text[offset..].starts_with("<Ntry>"),
        "offset points at the entry"
    );
    assert_eq!(
        text[..offset].matches('\n').count() as u64 + 1,
        l.location.source_line
    );

    // Batch booking with its three transactions.
    let b = &eur.lines[1];
    let batch = b.batch.as_deref().unwrap();
    assert_eq!(
        batch.payment_info_id.as_deref(),
        Some("GW-20250102-0002-P1")
    );
    assert_eq!(batch.number_of_transactions, Some(3));
    assert_eq!(batch.total, Some(money("1125.00", Currency::Eur)));
    let e2e: Vec<_> = batch
        .transactions
        .iter()
        .map(|t| t.end_to_end_id.as_deref().unwrap())
        .collect();
    assert_eq!(
        e2e,
        ["CLM-2025-000101", "CLM-2025-000102", "CLM-2025-000103"]
    );
    assert_eq!(
        batch.transactions[1].amount,
        Some(money("375.00", Currency::Eur))
    );
    assert_eq!(b.reference, None);

    // Return of an earlier benefit.
    let r = &eur.lines[2];
    assert!(r.is_return());
    assert_eq!(r.direction, Direction::Credit);
    assert_eq!(r.return_reason(), Some("AC04"));
    assert_eq!(r.original_end_to_end_id(), Some("BEN-778815-202412"));
    assert_eq!(
        r.reference, None,
        "a return is not a new payment with our reference"
    );

    // NOTPROVIDED is no reference.
    assert_eq!(eur.lines[3].reference, None);
    assert_eq!(
        eur.lines[3]
            .counterparty
            .as_ref()
            .unwrap()
            .account
            .as_deref(),
        Some("DE91370502990046115582")
    );
    // Entities are unescaped.
    assert_eq!(
        eur.lines[4].counterparty.as_ref().unwrap().name.as_deref(),
        Some("Unknown Trading & Sons")
    );
    // Creditor reference of a premium.
    assert_eq!(
        eur.lines[5].creditor_reference.as_deref(),
        Some("RF47PREM2025000417")
    );
    assert_eq!(eur.lines[5].reference.as_deref(), Some("PAYER-INV-5521"));

    let usd = &stmts[1];
    assert_eq!(usd.currency(), Some(Currency::Usd));
    assert_eq!(usd.account(), Some("0077320061"));
    assert_eq!(usd.lines.len(), 3);
    assert_eq!(usd.lines[0].line_no, 7, "line numbers run through the file");
    assert_eq!(usd.lines[0].location.section, 2);
    assert_eq!(usd.lines[2].status, EntryStatus::Pending);
    assert_eq!(usd.lines[2].value_date, None);

    for s in &stmts {
        let mut t = Totals::default();
        s.lines.iter().for_each(|l| t.add(l));
        assert_eq!(
            t.check(&s.header),
            Ok(true),
            "balances add up for {:?}",
            s.header.statement_id
        );
    }
}

#[test]
fn camt053_v08_reads_its_shapes() {
    let stmts = read("camt053_v08.xml", InputFormat::Camt);
    assert_eq!(stmts.len(), 2);
    let tzs = &stmts[0];
    assert_eq!(tzs.source_format(), &SourceFormat::Camt053 { version: 8 });
    assert_eq!(tzs.currency(), Some(Currency::Tzs));
    assert_eq!(tzs.account(), Some("0150388127400"));
    assert_eq!(tzs.lines.len(), 6);
    assert!(
        tzs.lines.iter().all(|l| l.status == EntryStatus::Booked),
        "<Sts><Cd>BOOK</Cd></Sts>"
    );

    let batch = tzs.lines[0].batch.as_deref().unwrap();
    assert_eq!(batch.payment_info_id.as_deref(), Some("PAYROLL-2025-03-A"));
    assert_eq!(batch.number_of_transactions, Some(2));
    assert!(batch.transactions.is_empty(), "no details sent");

    let fee = &tzs.lines[1];
    assert_eq!(fee.amount, money("151000.00", Currency::Tzs));
    assert_eq!(
        fee.instructed_amount,
        Some(money("150000.00", Currency::Tzs))
    );
    assert_eq!(
        fee.fee,
        Some(money("1000.00", Currency::Tzs)),
        "the total, not total + record"
    );
    assert_eq!(
        fee.booking_date,
        Some(d("2025-03-11")),
        "DtTm read as its date"
    );
    assert_eq!(
        fee.rail_transaction_id.as_deref(),
        Some("5b3f7e0c-2d0e-4b9f-9a4e-5c8e1a7d2f61")
    );
    assert_eq!(
        fee.counterparty.as_ref().unwrap().name.as_deref(),
        Some("Zawadi Nyerere"),
        "Cdtr/Pty/Nm"
    );

    let ret = &tzs.lines[2];
    assert_eq!(ret.return_reason(), Some("AC01"));
    assert_eq!(ret.original_end_to_end_id(), Some("BEN-TZ-0002"));
    assert!(!ret.return_info.as_ref().unwrap().bank_reversal);

    let rev = &tzs.lines[3];
    assert!(
        rev.return_info.as_ref().unwrap().bank_reversal,
        "RvslInd=true"
    );
    assert_eq!(rev.original_end_to_end_id(), Some("BEN-TZ-0003"));
    assert_eq!(rev.value_date, Some(d("2025-03-10")));

    assert_eq!(tzs.lines[4].reference, None);
    assert_eq!(
        tzs.lines[4]
            .counterparty
            .as_ref()
            .unwrap()
            .account_key()
            .as_deref(),
        Some("0152998104700")
    );
    assert_eq!(
        tzs.lines[5].remittance.as_deref(),
        Some("CASH DEPOSIT MWANZA BRANCH")
    );

    let ugx = &stmts[1];
    assert_eq!(ugx.lines[0].amount.minor(), 45000);
    assert_eq!(
        ugx.lines[0].creditor_reference.as_deref(),
        Some("RF94UG0045")
    );
    assert_eq!(
        ugx.lines[1].amount.minor(),
        70000,
        "trailing zeros past the exponent are exact"
    );
    for s in &stmts {
        let mut t = Totals::default();
        s.lines.iter().for_each(|l| t.add(l));
        assert_eq!(t.check(&s.header), Ok(true));
    }
}

#[test]
fn camt054_reads_notifications() {
    let stmts = read("camt054_v02.xml", InputFormat::Camt);
    assert_eq!(stmts.len(), 1);
    let n = &stmts[0];
    assert_eq!(n.source_format(), &SourceFormat::Camt054 { version: 2 });
    assert_eq!(
        n.header.statement_id.as_deref(),
        Some("NTF-20250105-0093-1")
    );
    assert_eq!(
        n.header.opening_balance, None,
        "a notification has no balances"
    );
    assert_eq!(n.lines.len(), 5);
    assert!(n.lines.iter().all(|l| l.direction == Direction::Credit));
    assert_eq!(
        n.lines[0].creditor_reference.as_deref(),
        Some("RF52PREM2025000521")
    );
    assert_eq!(
        n.lines[4].bank_entry_ref.as_deref(),
        Some("GLS-2025010500014")
    );
    let mut t = Totals::default();
    n.lines.iter().for_each(|l| t.add(l));
    assert_eq!(t.check(&n.header), Ok(false), "nothing to check");
}

#[test]
fn duplicate_statement_has_same_lines_and_another_hash() {
    let a = read("camt053_v02.xml", InputFormat::Camt);
    let b = read("camt053_v02_duplicate.xml", InputFormat::Camt);
    assert_eq!(b[0].header.copy_duplicate, Some(CopyDuplicate::Duplicate));
    assert_eq!(a[0].header.statement_id, b[0].header.statement_id);
    assert_eq!(
        a[0].header.electronic_sequence,
        b[0].header.electronic_sequence
    );
    let strip = |s: &[Statement]| -> Vec<(u64, Option<String>, i64)> {
        s.iter()
            .flat_map(|s| &s.lines)
            .map(|l| (l.line_no, l.bank_entry_ref.clone(), l.amount.minor()))
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_ne!(
        ContentHash::of_bytes(&bytes("camt053_v02.xml")),
        ContentHash::of_bytes(&bytes("camt053_v02_duplicate.xml"))
    );
}

fn camt(entries: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><GrpHdr><MsgId>M</MsgId></GrpHdr>
<Stmt><Id>S</Id><Acct><Id><IBAN>X</IBAN></Id></Acct>
{entries}
</Stmt></BkToCstmrStmt></Document>"#
    )
}

fn entry(amount: &str, ccy: &str, ind: &str) -> String {
    format!(
        "<Ntry><Amt Ccy=\"{ccy}\">{amount}</Amt><CdtDbtInd>{ind}</CdtDbtInd><Sts>BOOK</Sts>\
         <BookgDt><Dt>2025-01-02</Dt></BookgDt><BkTxCd/></Ntry>\n"
    )
}

#[test]
fn a_bad_entry_names_itself_and_reading_goes_on() {
    let xml = camt(
        &[
            entry("10.00", "EUR", "DBIT"),
            entry("10.005", "EUR", "DBIT"),
            entry("1.00", "XXX", "CRDT"),
            entry("2.00", "EUR", "SIDEWAYS"),
            entry("0.00", "EUR", "CRDT"),
            entry("3.00", "EUR", "CRDT"),
        ]
        .concat(),
    );
    let items: Vec<_> = CamtReader::new(Cursor::new(xml.as_bytes())).collect();
    let errors: Vec<&ParseError> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    let lines: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Ok(StatementItem::Line(l)) => Some(l.amount.minor()),
            _ => None,
        })
        .collect();
    assert_eq!(lines, [1000, 300]);
    assert_eq!(errors.len(), 4);
    assert!(errors.iter().all(|e| !e.fatal()));
    assert_eq!(errors[0].location.entry, 2);
    assert_eq!(errors[0].field, "Ntry/Amt");
    assert!(matches!(errors[0].kind, ParseErrorKind::Amount { .. }));
    assert_eq!(errors[0].location.source_line, 5);
    assert!(matches!(errors[1].kind, ParseErrorKind::Currency(_)));
    assert_eq!(errors[2].field, "Ntry/CdtDbtInd");
    assert!(
        matches!(errors[3].kind, ParseErrorKind::Amount { .. }),
        "zero is no booking"
    );
    assert!(errors[0].to_string().contains("entry 2"));
}

#[test]
fn broken_or_foreign_documents_are_fatal() {
    let broken = camt(&entry("1.00", "EUR", "DBIT")).replace("</Stmt>", "</Stmnt>");
    let items: Vec<_> = CamtReader::new(Cursor::new(broken.as_bytes())).collect();
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert!(last.fatal());
    assert!(matches!(last.kind, ParseErrorKind::Xml(_)));

    let camt052 = camt("")
        .replace("camt.053.001.02", "camt.052.001.02")
        .replace("BkToCstmrStmt", "BkToCstmrAcctRpt");
    let items: Vec<_> = CamtReader::new(Cursor::new(camt052.as_bytes())).collect();
    assert_eq!(items.len(), 1);
    assert!(matches!(
        items[0].as_ref().unwrap_err().kind,
        ParseErrorKind::UnsupportedFormat(_)
    ));

    let pain = "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.002.001.10\"><CstmrPmtStsRpt/></Document>";
    let items: Vec<_> = CamtReader::new(Cursor::new(pain.as_bytes())).collect();
    assert!(items[0].as_ref().unwrap_err().fatal());

    let items: Vec<_> = CamtReader::new(Cursor::new(&b"not xml at all"[..])).collect();
    assert!(items[0].as_ref().unwrap_err().fatal());
}

#[test]
fn camt_streams_many_entries_without_holding_them() {
    const N: u64 = 50_000;
    let head = "<?xml version=\"1.0\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt>\
                <GrpHdr><MsgId>BIG</MsgId></GrpHdr><Stmt><Id>BIG-1</Id><Acct><Id><IBAN>X</IBAN></Id><Ccy>KES</Ccy></Acct>\n";
    let gen = Generated::new(move |i| {
        match i {
        0 => Some(head.to_owned()),
        i if i <= N => Some(format!(
            "<Ntry><Amt Ccy=\"KES\">{}.{:02}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\
             <ValDt><Dt>2025-02-01</Dt></ValDt><BkTxCd/><NtryDtls><TxDtls><Refs><EndToEndId>E{i}</EndToEndId></Refs>\
             </TxDtls></NtryDtls></Ntry>\n",
            i,
            i % 100
        )),
        i if i == N + 1 => Some("</Stmt></BkToCstmrStmt></Document>\n".to_owned()),
        _ => None,
    }
    });
    let hashing = HashingReader::new(BufReader::with_capacity(8 * 1024, gen));
    let mut reader = CamtReader::new(hashing);
    let (mut count, mut sum, mut last_line) = (0u64, 0i128, 0u64);
    for item in reader.by_ref() {
        if let StatementItem::Line(l) = item.unwrap() {
            count += 1;
            sum += i128::from(l.amount.minor());
            assert_eq!(l.reference.as_deref(), Some(format!("E{count}").as_str()));
            last_line = l.location.source_line;
        }
    }
    assert_eq!(count, N);
    let expected: i128 = (1..=N).map(|i| i128::from(i * 100 + i % 100)).sum();
    assert_eq!(sum, expected);
    assert_eq!(last_line, N + 2);
    let (_hash, len) = reader.into_inner().finish().unwrap();
    assert!(
        len > 5_000_000,
        "the input was large ({len} bytes) and never held whole"
    );
}

#[test]
fn camt054_version_8_is_recognised() {
    let xml = String::from_utf8(bytes("camt054_v02.xml"))
        .unwrap()
        .replace("camt.054.001.02", "camt.054.001.08")
        .replace("<Sts>BOOK</Sts>", "<Sts><Cd>BOOK</Cd></Sts>");
    let stmts = read_all(Cursor::new(xml), InputFormat::Camt).unwrap();
    assert_eq!(
        stmts[0].source_format(),
        &SourceFormat::Camt054 { version: 8 }
    );
    assert_eq!(stmts[0].lines.len(), 5);
    assert!(stmts[0]
        .lines
        .iter()
        .all(|l| l.status == EntryStatus::Booked));
}

#[test]
fn a_statement_without_entries_still_reports_its_header() {
    let stmts = read_all(Cursor::new(camt("")), InputFormat::Camt).unwrap();
    assert_eq!(stmts.len(), 1);
    assert_eq!(stmts[0].header.statement_id.as_deref(), Some("S"));
    assert!(stmts[0].lines.is_empty());
}
