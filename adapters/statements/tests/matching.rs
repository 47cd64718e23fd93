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
use common::{money, read};
use railgate_rail::Currency;
use railgate_statements::matching::*;
use railgate_statements::*;
use uuid::Uuid;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn exp(n: u128, kind: ExpectedKind, amount: &str, ccy: Currency, date: &str) -> Expected {
    Expected {
        id: id(n),
        kind,
        end_to_end_id: None,
        rail_reference: None,
        receipt: None,
        payment_reference: None,
        batch_id: None,
        amount: money(amount, ccy),
        counterparty: None,
        date: d(date),
        state: ExpectedState::Completed,
        already_matched: false,
    }
}

fn out(n: u128, e2e: &str, amount: &str, ccy: Currency, date: &str) -> Expected {
    Expected {
        end_to_end_id: Some(e2e.into()),
        ..exp(n, ExpectedKind::Disbursement, amount, ccy, date)
    }
}

fn coll(n: u128, payref: &str, amount: &str, ccy: Currency, date: &str) -> Expected {
    Expected {
        payment_reference: Some(payref.into()),
        state: ExpectedState::Pending,
        ..exp(n, ExpectedKind::Collection, amount, ccy, date)
    }
}

fn line(no: u64, amount: &str, ccy: Currency, dir: Direction, date: &str) -> StatementLine {
    StatementLine {
        line_no: no,
        status: EntryStatus::Booked,
        booking_date: Some(d(date)),
        value_date: None,
        amount: money(amount, ccy),
        instructed_amount: None,
        direction: dir,
        reference: None,
        rail_transaction_id: None,
        receipt: None,
        creditor_reference: None,
        remittance: None,
        bank_entry_ref: None,
        counterparty: None,
        fee: None,
        bank_transaction_code: None,
        batch: None,
        return_info: None,
        location: Location::default(),
    }
}

fn with_ref(mut l: StatementLine, r: &str) -> StatementLine {
    l.reference = Some(r.into());
    l
}

fn with_party(mut l: StatementLine, account: &str) -> StatementLine {
    l.counterparty = Some(Counterparty {
        name: None,
        account: Some(account.into()),
    });
    l
}

fn run(expected: &[Expected], lines: &[StatementLine], config: MatchConfig) -> Outcome {
    match_lines(expected, lines, config)
}

fn kinds(o: &Outcome) -> Vec<&'static str> {
    let mut k: Vec<_> = o.breaks.iter().map(|b| b.kind.code()).collect();
    k.sort_unstable();
    k
}

fn only_break(o: &Outcome) -> &Break {
    assert_eq!(o.breaks.len(), 1, "breaks: {:#?}", o.breaks);
    &o.breaks[0]
}

fn statement_lines(names: &[&str]) -> Vec<StatementLine> {
    let mut all = Vec::new();
    let mut base = 0;
    for name in names {
        let mut n = 0;
        for s in read(name, InputFormat::Camt) {
            for mut l in s.lines {
                // Several files in one run: keep line numbers distinct.
                l.line_no += base;
                n = n.max(l.line_no);
                all.push(l);
            }
        }
        base = n;
    }
    all
}

const E: Currency = Currency::Eur;

#[test]
fn camt053_day_reconciles_with_only_the_expected_breaks() {
    let lines = statement_lines(&["camt053_v02.xml"]);
    let mut fuzzy = out(6, "BEN-778820-202501", "95.00", E, "2025-01-03");
    fuzzy.counterparty = Some("DE91 3705 0299 0046 1155 82".into());
    let batch = |n, e2e: &str, a: &str| Expected {
        batch_id: Some("GW-20250102-0002-P1".into()),
        ..out(n, e2e, a, E, "2025-01-03")
    };
    let expected = vec![
        out(1, "BEN-778812-202501", "412.50", E, "2025-01-03"),
        batch(2, "CLM-2025-000101", "250.00"),
        batch(3, "CLM-2025-000102", "375.00"),
        batch(4, "CLM-2025-000103", "500.00"),
        out(5, "BEN-778815-202412", "180.00", E, "2024-12-28"),
        fuzzy,
        coll(7, "RF47PREM2025000417", "120.00", E, "2025-01-01"),
        out(8, "BEN-USD-000031", "200.00", Currency::Usd, "2025-01-03"),
        coll(9, "RF88CN778812", "35.00", Currency::Usd, "2025-01-02"),
        out(10, "BEN-778830-202501", "75.00", E, "2025-01-04"),
    ];
    let o = run(&expected, &lines, MatchConfig::default());

    let find = |e: u128| {
        o.matches
            .iter()
            .find(|m| m.expected.contains(&id(e)))
            .unwrap_or_else(|| panic!("no match for {e}: {o:#?}"))
    };
    let m1 = find(1);
    assert_eq!(
        (m1.rule, m1.shape, m1.lines.as_slice()),
        (Rule::EndToEndId, Shape::OneToOne, &[1][..])
    );
    assert_eq!(m1.fee, Some(money("0.75", E)), "fee booked apart");
    assert_eq!(
        m1.amount_difference_minor, 0,
        "matched on the instructed amount"
    );
    let mb = find(2);
    assert_eq!((mb.rule, mb.shape), (Rule::BatchDetails, Shape::OneToMany));
    assert_eq!(mb.expected, vec![id(2), id(3), id(4)]);
    assert_eq!(find(5).rule, Rule::ReturnOfPayment);
    assert_eq!(find(6).rule, Rule::AmountCounterpartyDate);
    assert_eq!(find(7).rule, Rule::PaymentReference);
    assert_eq!(find(8).rule, Rule::EndToEndId);
    assert_eq!(find(9).rule, Rule::PaymentReference);

    assert_eq!(
        kinds(&o),
        ["missing_from_statement", "unmatched_statement_line"]
    );
    let unmatched = o
        .breaks
        .iter()
        .find(|b| b.kind == BreakKind::UnmatchedStatementLine)
        .unwrap();
    assert_eq!(unmatched.lines, [5], "the unknown incoming 60.00");
    assert_eq!(unmatched.severity, Severity::High);
    let missing = o
        .breaks
        .iter()
        .find(|b| b.kind == BreakKind::MissingFromStatement)
        .unwrap();
    assert_eq!(missing.expected, [id(10)]);
    assert_eq!(o.stats.lines_seen, 9);
    assert_eq!(o.stats.lines_not_booked, 1);
    assert_eq!(o.stats.expected_matched, 9);
}

#[test]
fn camt053_v08_batch_by_payment_info_id_and_reversal() {
    let lines = statement_lines(&["camt053_v08.xml"]);
    let tz = Currency::Tzs;
    let payroll = |n, a: &str| Expected {
        batch_id: Some("PAYROLL-2025-03-A".into()),
        ..out(n, &format!("PR-{n}"), a, tz, "2025-03-11")
    };
    let mut fuzzy = out(5, "BEN-TZ-0005", "42500.00", tz, "2025-03-10");
    fuzzy.counterparty = Some("0152998104700".into());
    let expected = vec![
        payroll(1, "100000.00"),
        payroll(2, "200000.00"),
        out(3, "BEN-TZ-0001", "150000.00", tz, "2025-03-11"),
        out(4, "BEN-TZ-0002", "50000.00", tz, "2025-03-07"),
        Expected {
            state: ExpectedState::Completed,
            ..out(6, "BEN-TZ-0003", "25000.00", tz, "2025-03-10")
        },
        fuzzy,
        coll(7, "RF94UG0045", "45000", Currency::Ugx, "2025-03-01"),
        out(8, "BEN-UG-0001", "70000", Currency::Ugx, "2025-03-11"),
    ];
    let o = run(&expected, &lines, MatchConfig::default());
    let find = |e: u128| {
        o.matches
            .iter()
            .find(|m| m.expected.contains(&id(e)))
            .unwrap_or_else(|| panic!("{e}: {o:#?}"))
    };
    let b = find(1);
    assert_eq!(
        (b.rule, b.shape, b.expected.clone()),
        (
            Rule::BatchPaymentInfoId,
            Shape::OneToMany,
            vec![id(1), id(2)]
        )
    );
    assert_eq!(find(3).fee, Some(money("1000.00", tz)));
    assert_eq!(find(4).rule, Rule::ReturnOfPayment);
    assert_eq!(
        find(6).rule,
        Rule::ReturnOfPayment,
        "bank reversal linked to its payment"
    );
    assert_eq!(find(5).rule, Rule::AmountCounterpartyDate);
    assert_eq!(find(7).rule, Rule::PaymentReference);
    assert_eq!(find(8).rule, Rule::EndToEndId);
    assert_eq!(
        kinds(&o),
        ["unmatched_statement_line"],
        "only the cash deposit: {o:#?}"
    );
}

#[test]
fn collections_partial_over_instalments_and_overlap_duplicate() {
    let lines = statement_lines(&["camt053_v02.xml", "camt054_v02.xml"]);
    let expected = vec![
        coll(1, "RF52PREM2025000521", "80.00", E, "2025-01-01"),
        coll(2, "RF19PREM2025000533", "150.00", E, "2025-01-01"),
        coll(3, "RF24PREM2025000540", "90.00", E, "2025-01-01"),
        coll(4, "RF47PREM2025000417", "120.00", E, "2025-01-01"),
    ];
    let o = run(
        &expected,
        &lines,
        MatchConfig {
            sum_rules: false,
            ..MatchConfig::default()
        },
    );
    let m = o.matches.iter().find(|m| m.expected == [id(1)]).unwrap();
    assert_eq!(
        (m.rule, m.shape, m.lines.len()),
        (Rule::PaymentReference, Shape::ManyToOne, 2)
    );
    let b = |code: &str| {
        o.breaks
            .iter()
            .find(|b| b.kind.code() == code)
            .unwrap_or_else(|| panic!("{code}: {o:#?}"))
    };
    assert_eq!(
        b("over_payment").kind,
        BreakKind::OverPayment {
            expected: money("150.00", E),
            received: money("200.00", E)
        }
    );
    assert_eq!(b("over_payment").expected, [id(2)]);
    assert_eq!(
        b("partial_payment").kind,
        BreakKind::PartialPayment {
            expected: money("90.00", E),
            received: money("30.00", E)
        }
    );
    let dup = b("duplicate");
    assert_eq!(
        dup.kind,
        BreakKind::Duplicate { of_line: Some(6) },
        "camt.054 repeats camt.053 line 6"
    );
    assert_eq!(dup.lines, [14]);
    assert!(
        o.matches
            .iter()
            .any(|m| m.expected == [id(4)] && m.lines == [6]),
        "counted once"
    );
}

#[test]
fn amount_mismatch_and_tolerance() {
    let e = [out(1, "A", "100.00", E, "2025-01-01")];
    let l = [with_ref(
        line(1, "100.05", E, Direction::Debit, "2025-01-01"),
        "A",
    )];
    let o = run(&e, &l, MatchConfig::default());
    let b = only_break(&o);
    assert_eq!(
        b.kind,
        BreakKind::AmountMismatch {
            expected: money("100.00", E),
            found: money("100.05", E)
        }
    );
    assert_eq!(
        (b.rule, b.severity),
        (Some(Rule::EndToEndId), Severity::High)
    );
    assert!(o.matches.is_empty());

    let o = run(
        &e,
        &l,
        MatchConfig {
            amount_tolerance_minor: 5,
            ..MatchConfig::default()
        },
    );
    assert!(o.breaks.is_empty());
    assert_eq!(o.matches[0].amount_difference_minor, 5);
}

#[test]
fn currency_mismatch() {
    let e = [out(1, "A", "100.00", E, "2025-01-01")];
    let l = [with_ref(
        line(1, "100.00", Currency::Usd, Direction::Debit, "2025-01-01"),
        "A",
    )];
    let o = run(&e, &l, MatchConfig::default());
    assert_eq!(
        only_break(&o).kind,
        BreakKind::CurrencyMismatch {
            expected: E,
            found: Currency::Usd
        }
    );
    assert_eq!(only_break(&o).expected, [id(1)], "not also missing");
}

#[test]
fn status_conflict_is_critical() {
    for state in [ExpectedState::Failed, ExpectedState::Unknown] {
        let e = [Expected {
            state,
            ..out(1, "A", "100.00", E, "2025-01-01")
        }];
        let l = [with_ref(
            line(1, "100.00", E, Direction::Debit, "2025-01-01"),
            "A",
        )];
        let o = run(&e, &l, MatchConfig::default());
        let b = only_break(&o);
        assert_eq!(b.kind, BreakKind::StatusConflict { ours: state });
        assert_eq!(b.severity, Severity::Critical);
        assert_eq!(
            (b.lines.as_slice(), b.expected.as_slice()),
            (&[1u64][..], &[id(1)][..])
        );
    }
    // A failed collection (expired control number) that is paid anyway.
    let e = [Expected {
        state: ExpectedState::Failed,
        ..coll(1, "CN-1", "10.00", E, "2025-01-01")
    }];
    let mut l = line(1, "10.00", E, Direction::Credit, "2025-01-02");
    l.creditor_reference = Some("CN-1".into());
    let o = run(&e, &[l], MatchConfig::default());
    assert_eq!(
        only_break(&o).kind,
        BreakKind::StatusConflict {
            ours: ExpectedState::Failed
        }
    );
}

#[test]
fn pending_payment_seen_booked_is_a_match_and_failed_absent_is_no_break() {
    let e = [
        Expected {
            state: ExpectedState::Pending,
            ..out(1, "A", "100.00", E, "2025-01-01")
        },
        Expected {
            state: ExpectedState::Failed,
            ..out(2, "B", "100.00", E, "2025-01-01")
        },
        Expected {
            state: ExpectedState::Unknown,
            ..out(3, "C", "100.00", E, "2025-01-01")
        },
    ];
    let l = [with_ref(
        line(1, "100.00", E, Direction::Debit, "2025-01-01"),
        "A",
    )];
    let o = run(&e, &l, MatchConfig::default());
    assert!(o.breaks.is_empty(), "{o:#?}");
    assert_eq!(o.matches[0].expected, [id(1)]);
}

#[test]
fn duplicates_same_line_same_reference_and_earlier_run() {
    let e = [
        out(1, "A", "100.00", E, "2025-01-01"),
        Expected {
            already_matched: true,
            ..out(2, "B", "5.00", E, "2025-01-01")
        },
    ];
    let mut l1 = with_ref(line(1, "100.00", E, Direction::Debit, "2025-01-01"), "A");
    l1.rail_transaction_id = Some("TX1".into());
    let mut l2 = l1.clone();
    l2.line_no = 2;
    let mut l3 = l1.clone();
    l3.line_no = 3;
    l3.rail_transaction_id = Some("TX9".into());
    let l4 = with_ref(line(4, "5.00", E, Direction::Debit, "2025-01-01"), "B");
    let o = run(&e, &[l1, l2, l3, l4], MatchConfig::default());
    assert_eq!(o.matches.len(), 1);
    assert_eq!(o.matches[0].lines, [1]);
    let dups: Vec<_> = o
        .breaks
        .iter()
        .map(|b| (b.kind.clone(), b.lines.clone()))
        .collect();
    assert_eq!(
        dups,
        [
            (BreakKind::Duplicate { of_line: Some(1) }, vec![2]),
            (BreakKind::Duplicate { of_line: Some(1) }, vec![3]),
            (BreakKind::Duplicate { of_line: None }, vec![4]),
        ]
    );
}

#[test]
fn a_line_moving_the_wrong_way_is_not_a_match() {
    let e = [out(1, "A", "100.00", E, "2025-01-01")];
    let l = [with_ref(
        line(1, "100.00", E, Direction::Credit, "2025-01-01"),
        "A",
    )];
    let o = run(&e, &l, MatchConfig::default());
    assert_eq!(
        kinds(&o),
        ["missing_from_statement", "unmatched_statement_line"]
    );
}

#[test]
fn a_return_of_nothing_we_know_goes_to_suspense() {
    let mut l = line(1, "10.00", E, Direction::Credit, "2025-01-01");
    l.return_info = Some(Box::new(ReturnInfo {
        reason_code: Some("AC01".into()),
        original_end_to_end_id: Some("ZZZ".into()),
        bank_reversal: false,
    }));
    let o = run(&[], &[l], MatchConfig::default());
    assert_eq!(only_break(&o).kind, BreakKind::UnmatchedStatementLine);
}

#[test]
fn exact_rules_in_order_rail_id_receipt_payment_reference() {
    let e = [
        Expected {
            rail_reference: Some("RAIL-7".into()),
            ..exp(1, ExpectedKind::Disbursement, "1.00", E, "2025-01-01")
        },
        Expected {
            receipt: Some("SBC4H7K2LQ".into()),
            ..exp(2, ExpectedKind::Disbursement, "2.00", E, "2025-01-01")
        },
        coll(3, "PREM-1", "3.00", E, "2025-01-01"),
        out(4, "E2E-4", "4.00", E, "2025-01-01"),
    ];
    let mut a = line(1, "1.00", E, Direction::Debit, "2025-01-01");
    a.rail_transaction_id = Some("RAIL-7".into());
    let mut b = line(2, "2.00", E, Direction::Debit, "2025-01-01");
    b.receipt = Some("SBC4H7K2LQ".into());
    let c = with_ref(
        line(3, "3.00", E, Direction::Credit, "2025-01-01"),
        "PREM-1",
    );
    // Both a rail id of payment 1 and the end-to-end id of payment 4: the end-to-end id wins.
    let mut dd = with_ref(line(4, "4.00", E, Direction::Debit, "2025-01-01"), "E2E-4");
    dd.rail_transaction_id = Some("RAIL-7".into());
    let o = run(&e, &[a, b, c, dd], MatchConfig::default());
    assert!(o.breaks.is_empty(), "{o:#?}");
    let rules: Vec<_> = o.matches.iter().map(|m| (m.expected[0], m.rule)).collect();
    assert!(rules.contains(&(id(1), Rule::RailTransactionId)));
    assert!(rules.contains(&(id(2), Rule::Receipt)));
    assert!(rules.contains(&(id(3), Rule::PaymentReference)));
    assert!(rules.contains(&(id(4), Rule::EndToEndId)));
}

#[test]
fn fuzzy_rule_needs_party_amount_and_date_window() {
    let mut e = exp(1, ExpectedKind::Disbursement, "50.00", E, "2025-01-10");
    e.counterparty = Some("+255 712 345 600".into());
    let near = with_party(
        line(1, "50.00", E, Direction::Debit, "2025-01-12"),
        "255712345600",
    );
    let o = run(
        std::slice::from_ref(&e),
        std::slice::from_ref(&near),
        MatchConfig::default(),
    );
    assert_eq!(o.matches[0].rule, Rule::AmountCounterpartyDate);

    let far = with_party(
        line(1, "50.00", E, Direction::Debit, "2025-01-20"),
        "255712345600",
    );
    assert_eq!(
        kinds(&run(
            std::slice::from_ref(&e),
            &[far],
            MatchConfig::default()
        )),
        ["missing_from_statement", "unmatched_statement_line"]
    );
    let other = with_party(
        line(1, "50.00", E, Direction::Debit, "2025-01-10"),
        "255799999999",
    );
    assert!(
        run(std::slice::from_ref(&e), &[other], MatchConfig::default())
            .matches
            .is_empty()
    );
    let anonymous = line(1, "50.00", E, Direction::Debit, "2025-01-10");
    assert!(run(
        std::slice::from_ref(&e),
        std::slice::from_ref(&anonymous),
        MatchConfig::default()
    )
    .matches
    .is_empty());
    let lax = MatchConfig {
        require_counterparty: false,
        ..MatchConfig::default()
    };
    assert_eq!(
        run(std::slice::from_ref(&e), &[anonymous], lax)
            .matches
            .len(),
        1
    );
    let off = with_party(
        line(1, "50.02", E, Direction::Debit, "2025-01-10"),
        "255712345600",
    );
    assert!(run(
        std::slice::from_ref(&e),
        std::slice::from_ref(&off),
        MatchConfig::default()
    )
    .matches
    .is_empty());
    let tol = MatchConfig {
        amount_tolerance_minor: 2,
        ..MatchConfig::default()
    };
    assert_eq!(
        run(std::slice::from_ref(&e), &[off], tol).matches[0].amount_difference_minor,
        2
    );
}

#[test]
fn fuzzy_prefers_a_completed_payment_and_flags_a_failed_one() {
    let mk = |n, state| Expected {
        state,
        counterparty: Some("255712345600".into()),
        ..exp(n, ExpectedKind::Disbursement, "50.00", E, "2025-01-10")
    };
    let l = with_party(
        line(1, "50.00", E, Direction::Debit, "2025-01-10"),
        "255712345600",
    );
    let o = run(
        &[
            mk(1, ExpectedState::Failed),
            mk(2, ExpectedState::Completed),
        ],
        std::slice::from_ref(&l),
        MatchConfig::default(),
    );
    assert_eq!(o.matches[0].expected, [id(2)]);
    assert!(
        o.breaks.is_empty(),
        "the failed one is not expected on the statement"
    );
    let o = run(
        &[mk(1, ExpectedState::Failed)],
        &[l],
        MatchConfig::default(),
    );
    assert_eq!(
        only_break(&o).kind,
        BreakKind::StatusConflict {
            ours: ExpectedState::Failed
        }
    );
}

#[test]
fn one_to_many_batch_total_mismatch_and_sum_by_date() {
    let batch = |n, a: &str| Expected {
        batch_id: Some("P1".into()),
        ..out(n, &format!("E{n}"), a, E, "2025-01-02")
    };
    let e = [batch(1, "10.00"), batch(2, "20.00")];
    let mut l = line(1, "31.00", E, Direction::Debit, "2025-01-02");
    l.batch = Some(Box::new(BatchInfo {
        payment_info_id: Some("P1".into()),
        number_of_transactions: Some(2),
        ..BatchInfo::default()
    }));
    let o = run(&e, std::slice::from_ref(&l), MatchConfig::default());
    let b = only_break(&o);
    assert_eq!(
        b.kind,
        BreakKind::AmountMismatch {
            expected: money("30.00", E),
            found: money("31.00", E)
        }
    );
    assert_eq!(
        (b.rule, b.expected.len()),
        (Some(Rule::BatchPaymentInfoId), 2)
    );

    // Count disagrees: also a break.
    l.amount = money("30.00", E);
    l.batch.as_mut().unwrap().number_of_transactions = Some(3);
    assert_eq!(
        only_break(&run(&e, std::slice::from_ref(&l), MatchConfig::default()))
            .kind
            .code(),
        "amount_mismatch"
    );

    // No reference at all: one line = the day's payments.
    let day = [
        out(1, "X1", "10.00", E, "2025-01-02"),
        out(2, "X2", "20.00", E, "2025-01-02"),
        out(3, "X3", "5.00", E, "2025-01-03"),
    ];
    let total = line(1, "30.00", E, Direction::Debit, "2025-01-02");
    let o = run(&day, std::slice::from_ref(&total), MatchConfig::default());
    let m = &o.matches[0];
    assert_eq!(
        (m.rule, m.shape, m.expected.clone()),
        (Rule::SumByDate, Shape::OneToMany, vec![id(1), id(2)])
    );
    assert_eq!(kinds(&o), ["missing_from_statement"]);
    let off = MatchConfig {
        sum_rules: false,
        ..MatchConfig::default()
    };
    assert!(run(&day, &[total], off).matches.is_empty());
}

#[test]
fn many_to_one_by_counterparty() {
    let mut e = exp(1, ExpectedKind::Collection, "100.00", E, "2025-01-10");
    e.counterparty = Some("255712345600".into());
    e.state = ExpectedState::Pending;
    let l1 = with_party(
        line(1, "60.00", E, Direction::Credit, "2025-01-11"),
        "255712345600",
    );
    let l2 = with_party(
        line(2, "40.00", E, Direction::Credit, "2025-01-11"),
        "255712345600",
    );
    let l3 = with_party(
        line(3, "40.00", E, Direction::Credit, "2025-01-11"),
        "255700000000",
    );
    let o = run(&[e], &[l1, l2, l3], MatchConfig::default());
    let m = &o.matches[0];
    assert_eq!(
        (m.rule, m.shape, m.lines.clone()),
        (Rule::SumByCounterparty, Shape::ManyToOne, vec![1, 2])
    );
    assert_eq!(only_break(&o).lines, [3]);
}

#[test]
fn not_booked_lines_are_ignored_and_missing_respects_the_period() {
    let e = [
        out(1, "A", "1.00", E, "2025-01-01"),
        out(2, "B", "1.00", E, "2024-12-01"),
    ];
    let mut l = with_ref(line(1, "1.00", E, Direction::Debit, "2025-01-01"), "A");
    l.status = EntryStatus::Pending;
    let cfg = MatchConfig {
        missing_between: Some((d("2025-01-01"), d("2025-01-31"))),
        ..MatchConfig::default()
    };
    let o = run(&e, &[l], cfg);
    assert_eq!(o.stats.lines_not_booked, 1);
    assert_eq!(only_break(&o).expected, [id(1)], "B is outside the period");
}

#[test]
fn mobile_money_export_reconciles() {
    let s = read(
        "mobile_money_operator.csv",
        InputFormat::Csv(CsvProfile::mobile_money_operator()),
    );
    let k = Currency::Kes;
    let e = [
        Expected {
            receipt: Some("SBC4H7K2LQ".into()),
            ..exp(1, ExpectedKind::Disbursement, "2500.00", k, "2025-02-03")
        },
        Expected {
            rail_reference: Some("AG_20250203_00004f2c9a1c".into()),
            ..exp(2, ExpectedKind::Disbursement, "1200.00", k, "2025-02-03")
        },
        coll(3, "PREM-2025-0417", "1500.00", k, "2025-02-01"),
        Expected {
            state: ExpectedState::Failed,
            ..out(4, "BEN-778814-202502", "3000.00", k, "2025-02-03")
        },
    ];
    let o = run(&e, &s[0].lines, MatchConfig::default());
    assert_eq!(o.matches.len(), 3, "{o:#?}");
    assert_eq!(
        o.matches
            .iter()
            .find(|m| m.expected == [id(1)])
            .unwrap()
            .fee,
        Some(money("15.00", k))
    );
    assert_eq!(only_break(&o).lines, [5], "the unknown pay-bill");
    assert_eq!(o.stats.lines_not_booked, 1, "the failed row");
}

#[test]
fn mock_rail_export_reconciles() {
    let s = read("mock_rail.csv", InputFormat::Csv(CsvProfile::mock_rail()));
    let t = Currency::Tzs;
    let e = [
        Expected {
            rail_reference: Some("MOCK-TX-000001".into()),
            ..out(1, "BEN-0000018000", "15000.00", t, "2025-02-03")
        },
        out(2, "BEN-0000018001", "22500.50", t, "2025-02-03"),
        out(3, "BEN-0000018002", "8000.00", t, "2025-02-03"),
        coll(4, "CN-2025-000771", "12000.00", t, "2025-02-01"),
        out(5, "BEN-0000018003", "5000", Currency::Ugx, "2025-02-04"),
        Expected {
            state: ExpectedState::Unknown,
            ..out(7, "BEN-0000018004", "9999.99", t, "2025-02-04")
        },
    ];
    let o = run(&e, &s[0].lines, MatchConfig::default());
    assert_eq!(o.matches.len(), 5);
    assert_eq!(kinds(&o), ["status_conflict", "unmatched_statement_line"]);
}

#[test]
fn generated_run_matches_everything_once() {
    let n = 20_000u128;
    let e: Vec<Expected> = (0..n)
        .map(|i| {
            out(
                i,
                &format!("E{i}"),
                &format!("{}.00", i + 1),
                Currency::Tzs,
                "2025-01-01",
            )
        })
        .collect();
    let lines: Vec<StatementLine> = (0..n)
        .rev()
        .map(|i| {
            with_ref(
                line(
                    u64::try_from(i).unwrap() + 1,
                    &format!("{}.00", i + 1),
                    Currency::Tzs,
                    Direction::Debit,
                    "2025-01-01",
                ),
                &format!("E{i}"),
            )
        })
        .collect();
    let o = run(&e, &lines, MatchConfig::default());
    assert!(o.breaks.is_empty());
    assert_eq!(o.matches.len(), 20_000);
    assert_eq!(o.stats.expected_matched, 20_000);
}

#[test]
fn same_amount_for_everyone_still_pairs_by_party() {
    // A programme that pays every beneficiary the same amount: only the party tells them apart.
    let e: Vec<Expected> = (0..500u128)
        .map(|i| Expected {
            counterparty: Some(format!("2557000{i:05}")),
            ..exp(
                i,
                ExpectedKind::Disbursement,
                "50000.00",
                Currency::Tzs,
                "2025-01-10",
            )
        })
        .collect();
    let lines: Vec<StatementLine> = [17u64, 250, 499]
        .iter()
        .map(|&i| {
            with_party(
                line(i, "50000.00", Currency::Tzs, Direction::Debit, "2025-01-11"),
                &format!("+255 7000{i:05}"),
            )
        })
        .collect();
    let cfg = MatchConfig {
        sum_rules: false,
        missing_between: Some((d("2025-02-01"), d("2025-02-02"))),
        ..MatchConfig::default()
    };
    let o = run(&e, &lines, cfg);
    assert!(o.breaks.is_empty(), "{:#?}", o.breaks);
    let pairs: Vec<(u64, Uuid)> = o
        .matches
        .iter()
        .map(|m| (m.lines[0], m.expected[0]))
        .collect();
    assert_eq!(pairs, [(17, id(17)), (250, id(250)), (499, id(499))]);
}
