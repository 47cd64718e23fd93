//! What the mock rail remembers: the payments it accepted, the money it moved, the faults it
//! was told to inject, and the callbacks it tried to deliver.

use super::scenario::Scenario;
use crate::wire::{Faults, MockCode, MockStatus, PayoutCount};
use chrono::{DateTime, Utc};
use railgate_rail::money::format_minor;
use railgate_rail::{Direction, Money, Party};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// A validated submission.
#[derive(Debug, Clone)]
pub(crate) struct NewPayment {
    pub request_id: Uuid,
    pub direction: Direction,
    pub amount: Money,
    pub party: Party,
    pub reference: String,
    pub callback_url: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    pub request_id: Uuid,
    pub transaction_id: String,
    pub direction: Direction,
    pub amount: Money,
    pub party: Party,
    pub reference: String,
    pub callback_url: String,
    pub scenario: Scenario,
    pub status: MockStatus,
    pub code: Option<MockCode>,
    /// Issued at acceptance, shown once the payment succeeded.
    pub receipt: String,
    /// A batch line of scenario 04 settles when first looked at after this (batch lines run
    /// no timeline of their own, so a million lines cost no million tasks).
    pub settle_at: Option<DateTime<Utc>>,
}

impl Transaction {
    pub(crate) fn shown_receipt(&self) -> Option<String> {
        (self.status == MockStatus::Success).then(|| self.receipt.clone())
    }
}

/// One time money moved.
#[derive(Debug, Clone)]
struct Movement {
    request_id: Uuid,
    booked_at: DateTime<Utc>,
}

/// What became of one callback delivery: `GET /_control/callbacks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRecord {
    pub event_id: Uuid,
    pub request_id: Uuid,
    pub status: MockStatus,
    /// Sent with a wrong signature on purpose (scenario 08).
    pub forged: bool,
    pub result: DeliveryResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeliveryResult {
    /// The receiver answered; `status` is its last HTTP status.
    Answered { status: u16 },
    /// The receiver could not be reached, even after retries.
    Unreachable,
    /// Not sent: the `drop_callbacks` fault was on.
    Dropped,
}

/// A batch the rail took: its lines in order.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub lines: Vec<Uuid>,
    /// When the last pending line (scenario 04) settles.
    pub settles_at: Option<DateTime<Utc>>,
    /// A line of scenario 12 never settles.
    pub hangs: bool,
}

pub(crate) enum BatchAdmission {
    /// A resend of a batch id the rail already holds.
    Existing { lines: usize },
    /// A line of scenario 09 makes the first two posts of the batch fail with a 503.
    Unavailable,
    /// Taken; `drop_answer` when a line of scenario 10 makes the answer break off.
    New {
        lines: usize,
        drop_answer: bool,
        settles_at: Option<DateTime<Utc>>,
    },
}

pub(crate) enum Admission {
    /// A resend of a request id the rail already holds: nothing new happens.
    Existing(Transaction),
    /// Scenario 09 before its third post: refused, nothing recorded.
    Unavailable,
    New(Transaction),
}

/// A reversal the rail executed or refused, keyed by its `reversal_id`.
#[derive(Debug, Clone)]
pub(crate) struct Reversal {
    pub reversal_id: Uuid,
    pub request_id: Uuid,
    pub status: MockStatus,
    pub transaction_id: Option<String>,
    pub code: Option<MockCode>,
    pub message: Option<String>,
}

/// What `POST /v1/reversals` did.
pub(crate) enum ReversalAdmission {
    /// The payment is not one the rail holds.
    UnknownPayment,
    /// Executed or refused, now or before (a resend of the same `reversal_id`).
    Done(Reversal),
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Bumped by a reset, so timelines started before it stop touching the state.
    pub generation: u64,
    pub faults: Faults,
    /// Status answers (`GET /v1/transactions/{id}`) report ten times the amount the rail
    /// holds, as a rail with a bug (or a tampered answer) would: the gateway must not complete
    /// a payment on it. Kept apart from `Faults`, whose shape callers build literally.
    pub misreport_amount: bool,
    /// Status inquiries (`GET /v1/transactions/{id}`) received, answered or not.
    pub inquiries: u64,
    transactions: HashMap<Uuid, Transaction>,
    order: Vec<Uuid>,
    refused_posts: HashMap<Uuid, u8>,
    movements: Vec<Movement>,
    /// Money movements per request id (kept beside `movements` so counting is O(1)).
    paid_counts: HashMap<Uuid, u32>,
    callbacks: Vec<CallbackRecord>,
    reversals: HashMap<Uuid, Reversal>,
    batches: HashMap<Uuid, Batch>,
    refused_batch_posts: HashMap<Uuid, u8>,
}

impl State {
    pub(crate) fn accept(&mut self, new: NewPayment, now: DateTime<Utc>) -> Admission {
        self.admit(new, now, None)
    }

    /// `pending_for`: set for a batch line (its 04 settles lazily after that long, and its 09
    /// was refused with the whole upload already).
    fn admit(
        &mut self,
        new: NewPayment,
        now: DateTime<Utc>,
        pending_for: Option<chrono::Duration>,
    ) -> Admission {
        if let Some(existing) = self.transactions.get(&new.request_id) {
            return Admission::Existing(existing.clone());
        }
        let scenario = Scenario::from_digits(new.party.scenario_digits());
        if scenario == Scenario::UnavailableTwice && pending_for.is_none() {
            let refused = self.refused_posts.entry(new.request_id).or_insert(0);
            if *refused < 2 {
                *refused = refused.saturating_add(1);
                return Admission::Unavailable;
            }
        }
        let (status, code) = scenario.initial();
        let txn = Transaction {
            request_id: new.request_id,
            transaction_id: format!("MR{}", random_id(16)),
            direction: new.direction,
            amount: new.amount,
            party: new.party,
            reference: new.reference,
            callback_url: new.callback_url,
            scenario,
            status,
            code,
            receipt: format!("R{}", random_id(10)),
            settle_at: match (scenario, pending_for) {
                (Scenario::PendingThenSuccess, Some(d)) => now.checked_add_signed(d),
                _ => None,
            },
        };
        if status == MockStatus::Success {
            self.moved(txn.request_id, now);
        }
        self.order.push(txn.request_id);
        self.transactions.insert(txn.request_id, txn.clone());
        Admission::New(txn)
    }

    /// Reverses a successful payment once: a resend of a `reversal_id` answers as before, and
    /// a payment already reversed (under any id) or not successful is refused.
    pub(crate) fn reverse(&mut self, reversal_id: Uuid, request_id: Uuid) -> ReversalAdmission {
        if let Some(done) = self.reversals.get(&reversal_id) {
            return ReversalAdmission::Done(done.clone());
        }
        let Some(txn) = self.transactions.get(&request_id) else {
            return ReversalAdmission::UnknownPayment;
        };
        let refuse = |code: MockCode, message: &str| Reversal {
            reversal_id,
            request_id,
            status: MockStatus::Rejected,
            transaction_id: None,
            code: Some(code),
            message: Some(message.to_owned()),
        };
        let reversal = if txn.status != MockStatus::Success {
            refuse(
                MockCode::Other("NOT_REVERSIBLE".to_owned()),
                "only a successful payment can be reversed",
            )
        } else if self.reversed_count(request_id) > 0 {
            refuse(
                MockCode::Other("ALREADY_REVERSED".to_owned()),
                "the payment was already reversed",
            )
        } else if txn.scenario == Scenario::ReversalRefused {
            refuse(
                MockCode::InsufficientFunds,
                "the party no longer holds the money to give back",
            )
        } else {
            Reversal {
                reversal_id,
                request_id,
                status: MockStatus::Success,
                transaction_id: Some(format!("MV{}", random_id(16))),
                code: None,
                message: None,
            }
        };
        self.reversals.insert(reversal_id, reversal.clone());
        ReversalAdmission::Done(reversal)
    }

    pub(crate) fn reversal(&self, reversal_id: &Uuid) -> Option<&Reversal> {
        self.reversals.get(reversal_id)
    }

    fn reversed_count(&self, request_id: Uuid) -> u32 {
        let n = self
            .reversals
            .values()
            .filter(|r| r.request_id == request_id && r.status == MockStatus::Success)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub(crate) fn get(&self, request_id: &Uuid) -> Option<&Transaction> {
        self.transactions.get(request_id)
    }

    fn moved(&mut self, request_id: Uuid, now: DateTime<Utc>) {
        self.movements.push(Movement {
            request_id,
            booked_at: now,
        });
        let n = self.paid_counts.entry(request_id).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Settles a batch line of scenario 04 whose time has come.
    pub(crate) fn settle_due(&mut self, request_id: &Uuid, now: DateTime<Utc>) {
        let due = self
            .transactions
            .get(request_id)
            .and_then(|t| t.settle_at)
            .is_some_and(|at| at <= now);
        if due {
            if let Some(t) = self.transactions.get_mut(request_id) {
                t.settle_at = None;
            }
            self.settle(*request_id, now);
        }
    }

    /// Takes a batch: every line as a payment of its own (its request id its key), none of
    /// them running a timeline; the results are read with `GET /v1/batches/{id}`.
    pub(crate) fn accept_batch(
        &mut self,
        batch_id: Uuid,
        lines: Vec<NewPayment>,
        now: DateTime<Utc>,
        pending_for: chrono::Duration,
    ) -> BatchAdmission {
        if let Some(b) = self.batches.get(&batch_id) {
            return BatchAdmission::Existing {
                lines: b.lines.len(),
            };
        }
        let digits = |n: &NewPayment| Scenario::from_digits(n.party.scenario_digits());
        if lines
            .iter()
            .any(|n| digits(n) == Scenario::UnavailableTwice)
        {
            let refused = self.refused_batch_posts.entry(batch_id).or_insert(0);
            if *refused < 2 {
                *refused = refused.saturating_add(1);
                return BatchAdmission::Unavailable;
            }
        }
        let drop_answer = lines.iter().any(|n| digits(n) == Scenario::DropConnection);
        let hangs = lines.iter().any(|n| digits(n) == Scenario::InquiryHangs);
        let mut ids = Vec::with_capacity(lines.len());
        let mut settles_at = None;
        for new in lines {
            ids.push(new.request_id);
            if let Admission::New(txn) = self.admit(new, now, Some(pending_for)) {
                if txn.settle_at > settles_at {
                    settles_at = txn.settle_at;
                }
            }
        }
        let n = ids.len();
        self.batches.insert(
            batch_id,
            Batch {
                lines: ids,
                settles_at,
                hangs,
            },
        );
        BatchAdmission::New {
            lines: n,
            drop_answer,
            settles_at,
        }
    }

    pub(crate) fn batch(&self, batch_id: &Uuid) -> Option<&Batch> {
        self.batches.get(batch_id)
    }

    /// A pending payment completes; a payment already final is left alone.
    pub(crate) fn settle(&mut self, request_id: Uuid, now: DateTime<Utc>) {
        let Some(txn) = self.transactions.get_mut(&request_id) else {
            return;
        };
        match txn.status {
            MockStatus::Pending => {
                txn.status = MockStatus::Success;
                self.moved(request_id, now);
            }
            MockStatus::Success | MockStatus::Failed | MockStatus::Rejected => {}
        }
    }

    pub(crate) fn record_callback(&mut self, record: CallbackRecord) {
        self.callbacks.push(record);
    }

    pub(crate) fn callbacks(&self) -> Vec<CallbackRecord> {
        self.callbacks.clone()
    }

    pub(crate) fn reset(&mut self) {
        *self = State {
            generation: self.generation.wrapping_add(1),
            ..State::default()
        };
    }

    fn paid(&self, request_id: Uuid) -> u32 {
        self.paid_counts.get(&request_id).copied().unwrap_or(0)
    }

    /// Every payment the rail recorded, in arrival order, with how often money moved for it.
    pub(crate) fn payouts(&self) -> Vec<PayoutCount> {
        self.order
            .iter()
            .filter_map(|id| self.transactions.get(id))
            .map(|txn| PayoutCount {
                attempt_id: txn.request_id,
                reference: txn.reference.clone(),
                direction: txn.direction.as_str().to_owned(),
                amount: txn.amount.to_decimal_string(),
                currency: txn.amount.currency().code().to_owned(),
                count: self.paid(txn.request_id),
                reversals: self.reversed_count(txn.request_id),
            })
            .collect()
    }

    /// One line per money movement, as an operator's statement lists them.
    pub(crate) fn statement_csv(&self) -> String {
        let mut out = String::from(
            "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n",
        );
        for movement in &self.movements {
            let Some(txn) = self.transactions.get(&movement.request_id) else {
                continue;
            };
            let date = movement.booked_at.format("%Y-%m-%d").to_string();
            let direction = match txn.direction {
                Direction::Disbursement => "DEBIT",
                Direction::Collection => "CREDIT",
            };
            let fields = [
                date.clone(),
                date,
                txn.amount.to_decimal_string(),
                txn.amount.currency().code().to_owned(),
                direction.to_owned(),
                txn.reference.clone(),
                txn.party.masked(),
                txn.transaction_id.clone(),
                format_minor(fee_minor(txn.amount), txn.amount.currency()),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }
}

/// The rail's fee: 0.5% of the amount, rounded down to the minor unit, in integers.
pub(crate) fn fee_minor(amount: Money) -> i64 {
    amount
        .minor()
        .checked_mul(5)
        .and_then(|m| m.checked_div(1000))
        .unwrap_or(0)
}

/// Quotes a CSV field when it needs it (RFC 4180). Written by hand: the statement has nine
/// plain columns, and only the reference can hold a comma or a quote.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn random_id(len: usize) -> String {
    let mut id = Uuid::new_v4().simple().to_string().to_ascii_uppercase();
    id.truncate(len);
    id
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use railgate_rail::{Currency, PartyIdType};

    fn payment(digits: &str) -> NewPayment {
        NewPayment {
            request_id: Uuid::new_v4(),
            direction: Direction::Disbursement,
            amount: Money::parse("1500.00", Currency::Tzs).unwrap(),
            party: Party::new(PartyIdType::Msisdn, &format!("2557123456{digits}"), None).unwrap(),
            reference: "BEN,\"1\"".to_owned(),
            callback_url: "http://127.0.0.1:1/callback".to_owned(),
        }
    }

    #[test]
    fn fee_rounds_down_in_minor_units() {
        assert_eq!(
            fee_minor(Money::parse("1500.00", Currency::Tzs).unwrap()),
            750
        );
        assert_eq!(fee_minor(Money::parse("0.99", Currency::Usd).unwrap()), 0);
        assert_eq!(fee_minor(Money::parse("399", Currency::Ugx).unwrap()), 1);
    }

    #[test]
    fn resend_and_settle_move_money_once() {
        let mut state = State::default();
        let p = payment("04");
        assert!(matches!(
            state.accept(p.clone(), Utc::now()),
            Admission::New(_)
        ));
        assert!(matches!(
            state.accept(p.clone(), Utc::now()),
            Admission::Existing(_)
        ));
        assert_eq!(state.payouts().first().map(|c| c.count), Some(0));
        state.settle(p.request_id, Utc::now());
        state.settle(p.request_id, Utc::now());
        assert_eq!(state.payouts().first().map(|c| c.count), Some(1));
    }

    #[test]
    fn a_payment_is_reversed_once_whatever_the_id() {
        let mut state = State::default();
        let ok = payment("00");
        let failed = payment("01");
        let refused = payment("14");
        for p in [&ok, &failed, &refused] {
            state.accept(p.clone(), Utc::now());
        }
        let done = |a: ReversalAdmission| match a {
            ReversalAdmission::Done(r) => r,
            ReversalAdmission::UnknownPayment => panic!("unknown payment"),
        };
        let first = Uuid::new_v4();
        let r = done(state.reverse(first, ok.request_id));
        assert_eq!(r.status, MockStatus::Success);
        // The same id answers as before; another id is refused.
        let again = done(state.reverse(first, ok.request_id));
        assert_eq!(again.transaction_id, r.transaction_id);
        let other = done(state.reverse(Uuid::new_v4(), ok.request_id));
        assert_eq!(other.status, MockStatus::Rejected);
        assert_eq!(
            other.code.as_ref().map(MockCode::as_str),
            Some("ALREADY_REVERSED")
        );
        let f = done(state.reverse(Uuid::new_v4(), failed.request_id));
        assert_eq!(
            f.code.as_ref().map(MockCode::as_str),
            Some("NOT_REVERSIBLE")
        );
        let s14 = done(state.reverse(Uuid::new_v4(), refused.request_id));
        assert_eq!(s14.code, Some(MockCode::InsufficientFunds));
        assert!(matches!(
            state.reverse(Uuid::new_v4(), Uuid::new_v4()),
            ReversalAdmission::UnknownPayment
        ));
        let counts: Vec<u32> = state.payouts().iter().map(|p| p.reversals).collect();
        assert_eq!(counts, vec![1, 0, 0]);
    }

    #[test]
    fn statement_quotes_and_masks() {
        let mut state = State::default();
        state.accept(payment("00"), Utc::now());
        let csv = state.statement_csv();
        let line = csv.lines().nth(1).unwrap();
        assert!(
            line.contains(",1500.00,TZS,DEBIT,\"BEN,\"\"1\"\"\",25********00,MR"),
            "{line}"
        );
        assert!(line.ends_with(",7.50"));
        assert!(!csv.contains("255712345600"));
    }
}
