//! The matcher itself: indexes over our records, one pass over the lines, then the rules that
//! need every line seen (sums, duplicates of a payment, missing payments).

use super::{
    Break, BreakKind, Expected, ExpectedKind, ExpectedState, Match, MatchConfig, Outcome, Rule,
    Shape, Stats,
};
use crate::model::{Direction, EntryStatus, StatementLine};
use chrono::NaiveDate;
use railgate_rail::{Currency, Money};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

/// What the matcher keeps of every booked line: small and fixed-size.
#[derive(Debug, Clone, Copy)]
struct Slot {
    line_no: u64,
    amount: Money,
    matching: Money,
    fee: Option<Money>,
    direction: Direction,
    date: Option<NaiveDate>,
}

/// A line no reference paired: kept whole enough for the fuzzy and sum rules.
#[derive(Debug)]
struct Leftover {
    slot: usize,
    account_key: Option<String>,
    name_key: Option<String>,
    /// Payments a batch line's details pointed at, when they did not add up.
    batch_hits: Vec<usize>,
    payment_info_id: Option<String>,
    batch_count: Option<u32>,
    is_batch: bool,
}

/// Streams statement lines against our records.
///
/// ```
/// use railgate_statements::matching::{Expected, ExpectedKind, ExpectedState, MatchConfig, Matcher};
/// use railgate_statements::{CsvProfile, InputFormat, StatementItem, StatementReader};
/// use railgate_rail::{Currency, Money};
///
/// let csv = "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n\
///            2025-02-03,2025-02-03,15000.00,TZS,DEBIT,BEN-1,255712340000,MOCK-TX-1,250.00\n";
/// let expected = vec![Expected {
///     id: uuid::Uuid::nil(),
///     kind: ExpectedKind::Disbursement,
///     end_to_end_id: Some("BEN-1".into()),
///     rail_reference: None,
///     receipt: None,
///     payment_reference: None,
///     batch_id: None,
///     amount: Money::parse("15000.00", Currency::Tzs)?,
///     counterparty: None,
///     date: chrono::NaiveDate::from_ymd_opt(2025, 2, 3).ok_or("date")?,
///     state: ExpectedState::Completed,
///     already_matched: false,
/// }];
/// let mut matcher = Matcher::new(&expected, MatchConfig::default());
/// let reader = StatementReader::open(csv.as_bytes(), InputFormat::Csv(CsvProfile::mock_rail()))?;
/// for item in reader {
///     if let StatementItem::Line(line) = item? {
///         matcher.push(&line);
///     }
/// }
/// let outcome = matcher.finish();
/// assert_eq!(outcome.matches.len(), 1);
/// assert!(outcome.breaks.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Matcher<'a> {
    config: MatchConfig,
    expected: &'a [Expected],
    by_e2e: HashMap<&'a str, usize>,
    by_rail: HashMap<&'a str, usize>,
    by_receipt: HashMap<&'a str, usize>,
    by_payref: HashMap<&'a str, usize>,
    by_batch: HashMap<&'a str, Vec<usize>>,
    slots: Vec<Slot>,
    /// (expected, slot, rule) pairs found by reference; decided in `finish`.
    claims: Vec<(usize, usize, Rule)>,
    leftovers: Vec<Leftover>,
    /// Fingerprints of lines that carry a bank or rail id, for same-line-twice detection.
    seen: HashMap<u64, u64>,
    accounted: Vec<bool>,
    out: Outcome,
}

fn index<'a>(
    expected: &'a [Expected],
    key: impl Fn(&'a Expected) -> Option<&'a str>,
) -> HashMap<&'a str, usize> {
    let mut map = HashMap::with_capacity(expected.len());
    for (i, e) in expected.iter().enumerate() {
        if let Some(k) = key(e).filter(|k| !k.is_empty()) {
            // Ids are unique per payment; should two collide, the first keeps the key.
            map.entry(k).or_insert(i);
        }
    }
    map.shrink_to_fit();
    map
}

fn within(a: NaiveDate, b: NaiveDate, days: i64) -> bool {
    a.signed_duration_since(b).num_days().unsigned_abs() <= days.max(0).unsigned_abs()
}

impl<'a> Matcher<'a> {
    pub fn new(expected: &'a [Expected], config: MatchConfig) -> Self {
        let mut by_batch: HashMap<&'a str, Vec<usize>> = HashMap::new();
        for (i, e) in expected.iter().enumerate() {
            if let Some(b) = e.batch_id.as_deref() {
                by_batch.entry(b).or_default().push(i);
            }
        }
        let by_payref = index(expected, |e| match e.kind {
            ExpectedKind::Collection => e.payment_reference.as_deref(),
            ExpectedKind::Disbursement => None,
        });
        Matcher {
            by_e2e: index(expected, |e| e.end_to_end_id.as_deref()),
            by_rail: index(expected, |e| e.rail_reference.as_deref()),
            by_receipt: index(expected, |e| e.receipt.as_deref()),
            by_payref,
            by_batch,
            slots: Vec::new(),
            claims: Vec::new(),
            leftovers: Vec::new(),
            seen: HashMap::new(),
            accounted: vec![false; expected.len()],
            out: Outcome {
                stats: Stats {
                    expected_given: u64::try_from(expected.len()).unwrap_or(u64::MAX),
                    ..Stats::default()
                },
                ..Outcome::default()
            },
            expected,
            config,
        }
    }

    fn brk(
        &mut self,
        kind: BreakKind,
        rule: Option<Rule>,
        lines: Vec<u64>,
        expected: Vec<usize>,
        note: &'static str,
    ) {
        for &e in &expected {
            if let Some(a) = self.accounted.get_mut(e) {
                *a = true;
            }
        }
        let ids = expected
            .iter()
            .filter_map(|&i| self.expected.get(i))
            .map(|e| e.id)
            .collect();
        self.out.breaks.push(Break {
            severity: kind.severity(),
            kind,
            rule,
            lines,
            expected: ids,
            note,
        });
    }

    fn matched(
        &mut self,
        rule: Rule,
        shape: Shape,
        slots: &[usize],
        expected: Vec<usize>,
        diff: i64,
    ) {
        let mut fee: Option<Money> = None;
        let mut lines = Vec::with_capacity(slots.len());
        for s in slots.iter().filter_map(|&s| self.slots.get(s)) {
            lines.push(s.line_no);
            if let Some(f) = s.fee {
                fee = Some(match fee {
                    None => f,
                    Some(acc) => acc.checked_add(f).unwrap_or(acc),
                });
            }
        }
        let mut newly = 0u64;
        for &e in &expected {
            if let Some(a) = self.accounted.get_mut(e) {
                // A payment paired twice (its debit and later its return) is counted once.
                if !*a {
                    newly = newly.saturating_add(1);
                }
                *a = true;
            }
        }
        self.out.stats.lines_matched = self
            .out
            .stats
            .lines_matched
            .saturating_add(u64::try_from(lines.len()).unwrap_or(0));
        self.out.stats.expected_matched = self.out.stats.expected_matched.saturating_add(newly);
        let ids = expected
            .iter()
            .filter_map(|&i| self.expected.get(i))
            .map(|e| e.id)
            .collect();
        self.out.matches.push(Match {
            rule,
            shape,
            lines,
            expected: ids,
            amount_difference_minor: diff,
            fee,
        });
    }

    fn line_no(&self, slot: usize) -> u64 {
        self.slots.get(slot).map_or(0, |s| s.line_no)
    }

    /// Feeds one statement line. Lines that are not booked are counted and otherwise ignored.
    pub fn push(&mut self, line: &StatementLine) {
        self.out.stats.lines_seen = self.out.stats.lines_seen.saturating_add(1);
        if line.status != EntryStatus::Booked {
            self.out.stats.lines_not_booked = self.out.stats.lines_not_booked.saturating_add(1);
            return;
        }
        if let Some(fp) = fingerprint(line) {
            if let Some(&first) = self.seen.get(&fp) {
                self.brk(
                    BreakKind::Duplicate {
                        of_line: Some(first),
                    },
                    None,
                    vec![line.line_no],
                    Vec::new(),
                    "the same booking appears twice",
                );
                return;
            }
            self.seen.insert(fp, line.line_no);
        }
        let slot = self.slots.len();
        self.slots.push(Slot {
            line_no: line.line_no,
            amount: line.amount,
            matching: line.matching_amount(),
            fee: line.fee,
            direction: line.direction,
            date: line.date(),
        });

        if let Some(ret) = &line.return_info {
            let hit = ret
                .original_end_to_end_id
                .as_deref()
                .and_then(|k| self.by_e2e.get(k).copied())
                .filter(|&e| {
                    self.expected
                        .get(e)
                        .is_some_and(|x| x.kind == ExpectedKind::Disbursement)
                });
            match hit {
                Some(e) => {
                    self.matched(Rule::ReturnOfPayment, Shape::OneToOne, &[slot], vec![e], 0)
                }
                None => self.brk(
                    BreakKind::UnmatchedStatementLine,
                    None,
                    vec![line.line_no],
                    Vec::new(),
                    "a return or reversal of no payment we know",
                ),
            }
            return;
        }

        if let Some(batch) = line.batch.as_deref() {
            let hits: Vec<usize> = batch
                .transactions
                .iter()
                .filter_map(|t| t.end_to_end_id.as_deref())
                .filter_map(|k| self.by_e2e.get(k).copied())
                .collect();
            self.leftovers.push(Leftover {
                slot,
                account_key: None,
                name_key: None,
                batch_hits: hits,
                payment_info_id: batch.payment_info_id.clone(),
                batch_count: batch.number_of_transactions,
                is_batch: true,
            });
            return;
        }

        let lookups: [(Option<&str>, &HashMap<&'a str, usize>, Rule); 7] = [
            (line.reference.as_deref(), &self.by_e2e, Rule::EndToEndId),
            (
                line.rail_transaction_id.as_deref(),
                &self.by_rail,
                Rule::RailTransactionId,
            ),
            (line.receipt.as_deref(), &self.by_receipt, Rule::Receipt),
            (
                line.rail_transaction_id.as_deref(),
                &self.by_receipt,
                Rule::Receipt,
            ),
            (
                line.reference.as_deref(),
                &self.by_payref,
                Rule::PaymentReference,
            ),
            (
                line.creditor_reference.as_deref(),
                &self.by_payref,
                Rule::PaymentReference,
            ),
            (
                line.receipt.as_deref(),
                &self.by_rail,
                Rule::RailTransactionId,
            ),
        ];
        let hit = lookups
            .iter()
            .find_map(|(key, map, rule)| key.and_then(|k| map.get(k)).map(|&e| (e, *rule)));
        match hit {
            Some((e, rule)) => self.claims.push((e, slot, rule)),
            None => {
                let cp = line.counterparty.as_ref();
                self.leftovers.push(Leftover {
                    slot,
                    account_key: cp.and_then(|c| c.account_key()),
                    name_key: cp.and_then(|c| c.name_key()),
                    batch_hits: Vec::new(),
                    payment_info_id: None,
                    batch_count: None,
                    is_batch: false,
                });
            }
        }
    }

    /// Applies the remaining rules and returns matches and breaks.
    pub fn finish(mut self) -> Outcome {
        self.decide_claims();
        let leftovers = std::mem::take(&mut self.leftovers);
        let (batches, singles): (Vec<Leftover>, Vec<Leftover>) =
            leftovers.into_iter().partition(|l| l.is_batch);
        let mut rest = self.decide_batches(batches);
        rest.extend(singles);
        rest.sort_by_key(|l| l.slot);
        let rest = self.fuzzy_one_to_one(rest);
        let rest = if self.config.sum_rules {
            let rest = self.sum_by_date(rest);
            self.sum_by_counterparty(rest)
        } else {
            rest
        };
        for l in rest {
            let note = match self.slots.get(l.slot).map(|s| s.direction) {
                Some(Direction::Credit) => "money in that matches no payment of ours: to suspense",
                _ => "money out that matches no payment of ours",
            };
            let line_no = self.line_no(l.slot);
            self.brk(
                BreakKind::UnmatchedStatementLine,
                None,
                vec![line_no],
                Vec::new(),
                note,
            );
        }
        for (i, e) in self.expected.iter().enumerate() {
            let done = self.accounted.get(i).copied().unwrap_or(true);
            let in_range = self
                .config
                .missing_between
                .is_none_or(|(from, to)| e.date >= from && e.date <= to);
            if !done && e.state == ExpectedState::Completed && !e.already_matched && in_range {
                self.brk(
                    BreakKind::MissingFromStatement,
                    None,
                    Vec::new(),
                    vec![i],
                    "completed on our side, not on the statement",
                );
            }
        }
        self.out
    }

    /// Reference claims: one payment may have been claimed by several lines.
    fn decide_claims(&mut self) {
        let mut claims = std::mem::take(&mut self.claims);
        // Stable: lines stay in file order within one payment.
        claims.sort_by_key(|c| c.0);
        let mut i = 0;
        while let Some(&(e, _, _)) = claims.get(i) {
            let end = claims
                .iter()
                .skip(i)
                .position(|c| c.0 != e)
                .map_or(claims.len(), |p| p.saturating_add(i));
            let group: Vec<(usize, Rule)> = claims
                .get(i..end)
                .unwrap_or(&[])
                .iter()
                .map(|c| (c.1, c.2))
                .collect();
            self.decide_payment(e, &group);
            i = end;
        }
    }

    fn decide_payment(&mut self, e: usize, group: &[(usize, Rule)]) {
        let Some(exp) = self.expected.get(e) else {
            return;
        };
        let mut usable: Vec<(usize, Rule)> = Vec::with_capacity(group.len());
        for &(slot, rule) in group {
            let Some(s) = self.slots.get(slot).copied() else {
                continue;
            };
            if s.direction != exp.direction() {
                self.brk(
                    BreakKind::UnmatchedStatementLine,
                    Some(rule),
                    vec![s.line_no],
                    Vec::new(),
                    "carries the reference of a payment that moved the other way",
                );
            } else if s.amount.currency() != exp.amount.currency() {
                self.brk(
                    BreakKind::CurrencyMismatch {
                        expected: exp.amount.currency(),
                        found: s.amount.currency(),
                    },
                    Some(rule),
                    vec![s.line_no],
                    vec![e],
                    "same reference, different currency",
                );
            } else {
                usable.push((slot, rule));
            }
        }
        let Some(&(first, rule)) = usable.first() else {
            return;
        };
        let first_line = self.line_no(first);
        let tol = self.config.amount_tolerance_minor;
        match exp.kind {
            ExpectedKind::Disbursement => {
                for &(slot, r) in usable.iter().skip(1) {
                    let line_no = self.line_no(slot);
                    self.brk(
                        BreakKind::Duplicate {
                            of_line: Some(first_line),
                        },
                        Some(r),
                        vec![line_no],
                        vec![e],
                        "a second line for a payment already on this statement",
                    );
                }
                if exp.already_matched {
                    self.brk(
                        BreakKind::Duplicate { of_line: None },
                        Some(rule),
                        vec![first_line],
                        vec![e],
                        "the payment was already settled by an earlier statement",
                    );
                    return;
                }
                let Some(s) = self.slots.get(first).copied() else {
                    return;
                };
                self.evaluate(e, &[first], s.matching, rule, Shape::OneToOne, tol);
            }
            ExpectedKind::Collection => {
                let slots: Vec<usize> = usable.iter().map(|u| u.0).collect();
                let mut total = 0i64;
                for s in slots.iter().filter_map(|&s| self.slots.get(s)) {
                    total = total.saturating_add(s.matching.minor());
                }
                let received =
                    Money::from_minor(total, exp.amount.currency()).unwrap_or(exp.amount);
                let lines: Vec<u64> = slots.iter().map(|&s| self.line_no(s)).collect();
                if exp.already_matched {
                    self.brk(
                        BreakKind::OverPayment {
                            expected: exp.amount,
                            received,
                        },
                        Some(rule),
                        lines,
                        vec![e],
                        "money for a collection already paid in an earlier statement",
                    );
                    return;
                }
                let shape = if slots.len() > 1 {
                    Shape::ManyToOne
                } else {
                    Shape::OneToOne
                };
                if matches!(exp.state, ExpectedState::Failed | ExpectedState::Unknown) {
                    self.conflict(e, lines, rule);
                } else if total < exp.amount.minor().saturating_sub(tol) {
                    self.brk(
                        BreakKind::PartialPayment {
                            expected: exp.amount,
                            received,
                        },
                        Some(rule),
                        lines,
                        vec![e],
                        "less than expected has arrived",
                    );
                } else if total > exp.amount.minor().saturating_add(tol) {
                    self.brk(
                        BreakKind::OverPayment {
                            expected: exp.amount,
                            received,
                        },
                        Some(rule),
                        lines,
                        vec![e],
                        "more than expected has arrived",
                    );
                } else {
                    self.matched(
                        rule,
                        shape,
                        &slots,
                        vec![e],
                        total.saturating_sub(exp.amount.minor()),
                    );
                }
            }
        }
    }

    fn conflict(&mut self, e: usize, lines: Vec<u64>, rule: Rule) {
        let ours = self
            .expected
            .get(e)
            .map_or(ExpectedState::Unknown, |x| x.state);
        self.brk(
            BreakKind::StatusConflict { ours },
            Some(rule),
            lines,
            vec![e],
            "the statement shows the money moved; we hold the payment failed or unknown",
        );
    }

    /// One line (or a few) against one payment once the pairing is made: state, then amount.
    fn evaluate(
        &mut self,
        e: usize,
        slots: &[usize],
        found: Money,
        rule: Rule,
        shape: Shape,
        tol: i64,
    ) {
        let Some(exp) = self.expected.get(e) else {
            return;
        };
        let lines: Vec<u64> = slots.iter().map(|&s| self.line_no(s)).collect();
        if matches!(exp.state, ExpectedState::Failed | ExpectedState::Unknown) {
            self.conflict(e, lines, rule);
            return;
        }
        let diff = found.minor().saturating_sub(exp.amount.minor());
        if diff.abs() > tol {
            self.brk(
                BreakKind::AmountMismatch {
                    expected: exp.amount,
                    found,
                },
                Some(rule),
                lines,
                vec![e],
                "same reference, different amount",
            );
        } else {
            self.matched(rule, shape, slots, vec![e], diff);
        }
    }

    /// Batch bookings: through their transaction details, else through our batch id.
    fn decide_batches(&mut self, batches: Vec<Leftover>) -> Vec<Leftover> {
        let tol = self.config.amount_tolerance_minor;
        let mut rest = Vec::new();
        for b in batches {
            let Some(s) = self.slots.get(b.slot).copied() else {
                continue;
            };
            let free = |m: &Self, list: &[usize]| {
                list.iter()
                    .copied()
                    .filter(|&e| !m.accounted.get(e).copied().unwrap_or(true))
                    .collect::<Vec<usize>>()
            };
            let declared = b.batch_count.and_then(|n| usize::try_from(n).ok());
            let details = free(self, &b.batch_hits);
            let complete_details = !details.is_empty()
                && details.len() == b.batch_hits.len()
                && declared.is_none_or(|n| n == details.len());
            let (rule, members) = if complete_details {
                (Rule::BatchDetails, details)
            } else if let Some(group) = b
                .payment_info_id
                .as_deref()
                .and_then(|id| self.by_batch.get(id))
            {
                let group = group.clone();
                (Rule::BatchPaymentInfoId, free(self, &group))
            } else if !details.is_empty() {
                (Rule::BatchDetails, details)
            } else {
                rest.push(b);
                continue;
            };
            if members.is_empty() {
                rest.push(b);
                continue;
            }
            self.settle_group(
                &[b.slot],
                members,
                s.matching,
                rule,
                Shape::OneToMany,
                tol,
                declared,
            );
        }
        rest
    }

    /// Lines and payments paired as a group: every payment must agree on direction, currency
    /// and state, and the totals (and count, when declared) must agree.
    #[allow(clippy::too_many_arguments)]
    fn settle_group(
        &mut self,
        slots: &[usize],
        members: Vec<usize>,
        found: Money,
        rule: Rule,
        shape: Shape,
        tol: i64,
        declared: Option<usize>,
    ) {
        let lines: Vec<u64> = slots.iter().map(|&s| self.line_no(s)).collect();
        let direction = slots
            .first()
            .and_then(|&s| self.slots.get(s))
            .map(|s| s.direction);
        let mut total = 0i64;
        let mut conflict = false;
        for x in members.iter().filter_map(|&e| self.expected.get(e)) {
            if x.amount.currency() != found.currency() {
                self.brk(
                    BreakKind::CurrencyMismatch {
                        expected: x.amount.currency(),
                        found: found.currency(),
                    },
                    Some(rule),
                    lines,
                    members,
                    "a batch booking in another currency than its payments",
                );
                return;
            }
            if Some(x.direction()) != direction {
                self.brk(
                    BreakKind::UnmatchedStatementLine,
                    Some(rule),
                    lines,
                    Vec::new(),
                    "a batch booking that moved the other way than its payments",
                );
                return;
            }
            conflict |= matches!(x.state, ExpectedState::Failed | ExpectedState::Unknown);
            total = total.saturating_add(x.amount.minor());
        }
        if conflict {
            let ours = members
                .iter()
                .filter_map(|&e| self.expected.get(e))
                .map(|x| x.state)
                .find(|s| matches!(s, ExpectedState::Failed | ExpectedState::Unknown))
                .unwrap_or(ExpectedState::Unknown);
            self.brk(
                BreakKind::StatusConflict { ours },
                Some(rule),
                lines,
                members,
                "a batch booking includes payments we hold failed or unknown",
            );
            return;
        }
        let diff = found.minor().saturating_sub(total);
        let count_ok = declared.is_none_or(|n| n == members.len());
        if diff.abs() > tol || !count_ok {
            let expected = Money::from_minor(total, found.currency()).unwrap_or(found);
            self.brk(
                BreakKind::AmountMismatch { expected, found },
                Some(rule),
                lines,
                members,
                "a batch booking whose total or count differs from its payments",
            );
        } else {
            self.matched(rule, shape, slots, members, diff);
        }
    }

    /// Amount + currency + counterparty + date window, one line to one payment.
    ///
    /// With the counterparty required (the default) payments are bucketed by counterparty, so
    /// a programme that pays everyone the same amount does not make each line scan them all;
    /// without it they are bucketed by amount and a tolerance is a range scan.
    fn fuzzy_one_to_one(&mut self, lines: Vec<Leftover>) -> Vec<Leftover> {
        let tol = self.config.amount_tolerance_minor;
        let window = self.config.date_window_days;
        let by_party = self.config.require_counterparty;
        let mut parties: HashMap<(Currency, Direction, String), Vec<usize>> = HashMap::new();
        let mut amounts: BTreeMap<(Currency, Direction, i64), Vec<usize>> = BTreeMap::new();
        // Counterparty keys of the payments still open, normalised once.
        let mut keys: HashMap<usize, String> = HashMap::new();
        for (i, e) in self.expected.iter().enumerate() {
            if self.accounted.get(i).copied().unwrap_or(true) {
                continue;
            }
            let key = e.counterparty_key();
            if by_party {
                if let Some(k) = key {
                    parties
                        .entry((e.amount.currency(), e.direction(), k))
                        .or_default()
                        .push(i);
                }
            } else {
                amounts
                    .entry((e.amount.currency(), e.direction(), e.amount.minor()))
                    .or_default()
                    .push(i);
                if let Some(k) = key {
                    keys.insert(i, k);
                }
            }
        }
        if parties.is_empty() && amounts.is_empty() {
            return lines;
        }
        let mut rest = Vec::new();
        for l in lines {
            let Some(s) = self.slots.get(l.slot).copied() else {
                continue;
            };
            let Some(date) = s.date else {
                rest.push(l);
                continue;
            };
            let (currency, minor) = (s.matching.currency(), s.matching.minor());
            let mut candidates: Vec<usize> = Vec::new();
            if by_party {
                for k in [&l.account_key, &l.name_key].into_iter().flatten() {
                    if let Some(list) = parties.get(&(currency, s.direction, k.clone())) {
                        candidates.extend(list.iter().copied());
                    }
                }
            } else {
                let lo = (currency, s.direction, minor.saturating_sub(tol));
                let hi = (currency, s.direction, minor.saturating_add(tol));
                for (_, list) in amounts.range(lo..=hi) {
                    candidates.extend(
                        list.iter().copied().filter(|e| {
                            self.counterparty_agrees(&l, keys.get(e).map(String::as_str))
                        }),
                    );
                }
            }
            let mut best: Option<((u8, i64, u64, usize), usize)> = None;
            for e in candidates {
                if self.accounted.get(e).copied().unwrap_or(true) {
                    continue;
                }
                let Some(x) = self.expected.get(e) else {
                    continue;
                };
                let diff = x.amount.minor().saturating_sub(minor).abs();
                if diff > tol || !within(x.date, date, window) {
                    continue;
                }
                // Prefer payments we believe happened; then the closest amount and date.
                let state_rank = match x.state {
                    ExpectedState::Completed | ExpectedState::Pending => 0u8,
                    ExpectedState::Unknown => 1,
                    ExpectedState::Failed => 2,
                };
                let score = (
                    state_rank,
                    diff,
                    x.date.signed_duration_since(date).num_days().unsigned_abs(),
                    e,
                );
                if best.is_none_or(|(b, _)| score < b) {
                    best = Some((score, e));
                }
            }
            match best {
                Some((_, e)) => self.evaluate(
                    e,
                    &[l.slot],
                    s.matching,
                    Rule::AmountCounterpartyDate,
                    Shape::OneToOne,
                    tol,
                ),
                None => rest.push(l),
            }
        }
        rest
    }

    fn counterparty_agrees(&self, l: &Leftover, theirs: Option<&str>) -> bool {
        match (theirs, &l.account_key, &l.name_key) {
            (Some(k), Some(acc), _) => acc == k || l.name_key.as_deref() == Some(k),
            (Some(k), None, Some(name)) => name == k,
            _ => !self.config.require_counterparty,
        }
    }

    /// One line equal to the sum of one day's remaining payments (same currency and direction).
    fn sum_by_date(&mut self, lines: Vec<Leftover>) -> Vec<Leftover> {
        let tol = self.config.amount_tolerance_minor;
        let mut groups: HashMap<(Currency, Direction, NaiveDate), (i64, Vec<usize>)> =
            HashMap::new();
        for (i, e) in self.expected.iter().enumerate() {
            let free = !self.accounted.get(i).copied().unwrap_or(true);
            // Only payments we believe went through are summed: a sum is weak evidence.
            if free && matches!(e.state, ExpectedState::Completed | ExpectedState::Pending) {
                let g = groups
                    .entry((e.amount.currency(), e.direction(), e.date))
                    .or_default();
                g.0 = g.0.saturating_add(e.amount.minor());
                g.1.push(i);
            }
        }
        let mut rest = Vec::new();
        for l in lines {
            let Some(s) = self.slots.get(l.slot).copied() else {
                continue;
            };
            let key = s.date.map(|d| (s.matching.currency(), s.direction, d));
            let hit = key.and_then(|k| groups.get(&k)).filter(|(sum, members)| {
                members.len() >= 2
                    && members.len() <= self.config.max_group_size
                    && sum.saturating_sub(s.matching.minor()).abs() <= tol
                    && members
                        .iter()
                        .all(|&e| !self.accounted.get(e).copied().unwrap_or(true))
            });
            match (hit.cloned(), key) {
                (Some((sum, members)), Some(k)) => {
                    groups.remove(&k);
                    let diff = s.matching.minor().saturating_sub(sum);
                    self.matched(Rule::SumByDate, Shape::OneToMany, &[l.slot], members, diff);
                }
                _ => rest.push(l),
            }
        }
        rest
    }

    /// Several lines from one counterparty on one day summing to one remaining payment.
    fn sum_by_counterparty(&mut self, lines: Vec<Leftover>) -> Vec<Leftover> {
        let tol = self.config.amount_tolerance_minor;
        let window = self.config.date_window_days;
        type Key = (Currency, Direction, String, NaiveDate);
        let mut groups: HashMap<Key, (i64, Vec<usize>)> = HashMap::new();
        for (pos, l) in lines.iter().enumerate() {
            let Some(s) = self.slots.get(l.slot) else {
                continue;
            };
            let (Some(acc), Some(date)) = (l.account_key.clone(), s.date) else {
                continue;
            };
            if l.is_batch {
                continue;
            }
            let g = groups
                .entry((s.matching.currency(), s.direction, acc, date))
                .or_default();
            g.0 = g.0.saturating_add(s.matching.minor());
            g.1.push(pos);
        }
        if groups.is_empty() {
            return lines;
        }
        let mut used = vec![false; lines.len()];
        for (i, e) in self.expected.iter().enumerate() {
            if self.accounted.get(i).copied().unwrap_or(true)
                || !matches!(e.state, ExpectedState::Completed | ExpectedState::Pending)
            {
                continue;
            }
            let Some(k) = e.counterparty_key() else {
                continue;
            };
            let mut found: Option<Key> = None;
            for d in window.saturating_neg()..=window {
                let Some(day) = e.date.checked_add_signed(chrono::Duration::days(d)) else {
                    continue;
                };
                let key = (e.amount.currency(), e.direction(), k.clone(), day);
                if let Some((sum, members)) = groups.get(&key) {
                    if members.len() >= 2
                        && members.len() <= self.config.max_group_size
                        && sum.saturating_sub(e.amount.minor()).abs() <= tol
                    {
                        found = Some(key);
                        break;
                    }
                }
            }
            if let Some((sum, members)) = found.and_then(|key| groups.remove(&key)) {
                let slots: Vec<usize> = members
                    .iter()
                    .filter_map(|&p| lines.get(p))
                    .map(|l| l.slot)
                    .collect();
                for &p in &members {
                    if let Some(u) = used.get_mut(p) {
                        *u = true;
                    }
                }
                let diff = sum.saturating_sub(e.amount.minor());
                self.matched(
                    Rule::SumByCounterparty,
                    Shape::ManyToOne,
                    &slots,
                    vec![i],
                    diff,
                );
            }
        }
        lines
            .into_iter()
            .zip(used)
            .filter_map(|(l, u)| (!u).then_some(l))
            .collect()
    }
}

/// Identity of a booking for same-line-twice detection, when the line carries an id of the
/// bank or rail (without one, two equal payments on one day are legitimately alike).
fn fingerprint(line: &StatementLine) -> Option<u64> {
    if line.bank_entry_ref.is_none() && line.rail_transaction_id.is_none() && line.receipt.is_none()
    {
        return None;
    }
    let mut h = DefaultHasher::new();
    line.bank_entry_ref.hash(&mut h);
    line.rail_transaction_id.hash(&mut h);
    line.receipt.hash(&mut h);
    line.reference.hash(&mut h);
    line.direction.hash(&mut h);
    line.amount.hash(&mut h);
    line.date().hash(&mut h);
    Some(h.finish())
}
