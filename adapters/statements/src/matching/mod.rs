//! The pure reconciliation matcher: our records against statement lines.
//!
//! Rules run in this order (the first that pairs a line wins):
//! 1. exact reference: end-to-end id, rail transaction id, receipt, payment reference of an
//!    expected collection; returns are linked to the payment they bring back;
//! 2. batch bookings (one line, many payments): by the transaction details the bank sent, else
//!    by our batch id (`PmtInfId`) and total;
//! 3. amount + currency + counterparty + date window, with the configured tolerances;
//! 4. sums: one line = the day's remaining payments (1:N), several lines from one counterparty
//!    = one payment (N:1).
//!
//! Whatever is left, or paired but disagreeing, becomes a [`Break`]. The matcher holds only
//! compact per-line slots, hash indexes over our records, and the lines no reference matched,
//! so a million lines against a million payments fits in a few hundred megabytes.

mod engine;

pub use engine::Matcher;

use crate::model::{normalise_key, Direction, StatementLine};
use chrono::NaiveDate;
use railgate_rail::{mask, Currency, Money};
use std::fmt;
use uuid::Uuid;

/// Whether a payment of ours sends money out or brings it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedKind {
    Disbursement,
    Collection,
}

/// What we believe happened to a payment when the run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedState {
    Completed,
    Failed,
    Unknown,
    Pending,
}

impl ExpectedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedState::Completed => "completed",
            ExpectedState::Failed => "failed",
            ExpectedState::Unknown => "unknown",
            ExpectedState::Pending => "pending",
        }
    }
}

/// One payment of ours, as the matcher needs to see it.
#[derive(Clone, PartialEq, Eq)]
pub struct Expected {
    /// The gateway's payment id.
    pub id: Uuid,
    pub kind: ExpectedKind,
    /// The end-to-end id we sent (camt `EndToEndId`).
    pub end_to_end_id: Option<String>,
    /// The rail's reference for the attempt (transfer id, conversation id, `TxId`).
    pub rail_reference: Option<String>,
    /// A receipt number the rail gave us (mobile money).
    pub receipt: Option<String>,
    /// The payment reference (control number) of an expected collection.
    pub payment_reference: Option<String>,
    /// Our batch id (`PmtInfId`) when the payment was sent in a batch.
    pub batch_id: Option<String>,
    pub amount: Money,
    /// The party's account, MSISDN or wallet id (or name). Personal data: `Debug` masks it.
    pub counterparty: Option<String>,
    /// The day the money was due to move (instructed, or completed when known).
    pub date: NaiveDate,
    pub state: ExpectedState,
    /// Already settled by a line of an earlier statement: a new line for it is a duplicate.
    pub already_matched: bool,
}

impl Expected {
    /// The direction the payment shows on the scheme's statement.
    pub fn direction(&self) -> Direction {
        match self.kind {
            ExpectedKind::Disbursement => Direction::Debit,
            ExpectedKind::Collection => Direction::Credit,
        }
    }

    fn counterparty_key(&self) -> Option<String> {
        self.counterparty
            .as_deref()
            .map(normalise_key)
            .filter(|k| !k.is_empty())
    }
}

impl fmt::Debug for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expected")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("end_to_end_id", &self.end_to_end_id)
            .field("rail_reference", &self.rail_reference)
            .field("receipt", &self.receipt)
            .field("payment_reference", &self.payment_reference)
            .field("batch_id", &self.batch_id)
            .field("amount", &self.amount)
            .field("counterparty", &self.counterparty.as_deref().map(mask))
            .field("date", &self.date)
            .field("state", &self.state)
            .field("already_matched", &self.already_matched)
            .finish()
    }
}

/// The tolerances of a run; recorded with the run as its rule set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatchConfig {
    /// Largest |statement − ours| in minor units still counted as the same amount.
    pub amount_tolerance_minor: i64,
    /// Largest distance in days between our date and the line's value date (fuzzy rules).
    pub date_window_days: i64,
    /// The fuzzy 1:1 rule needs the counterparty on both sides and equal. Without it, amount,
    /// currency and date alone pair lines, which is only safe for low volumes.
    pub require_counterparty: bool,
    /// Enables the sum rules (1:N by date, N:1 by counterparty) for lines without references.
    pub sum_rules: bool,
    /// Largest group the sum rules consider.
    pub max_group_size: usize,
    /// Only completed payments dated in this inclusive range are reported missing from the
    /// statement; `None` reports every completed payment given to the matcher.
    pub missing_between: Option<(NaiveDate, NaiveDate)>,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            amount_tolerance_minor: 0,
            date_window_days: 3,
            require_counterparty: true,
            sum_rules: true,
            max_group_size: 10_000,
            missing_between: None,
        }
    }
}

/// The rule that paired lines and payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    EndToEndId,
    RailTransactionId,
    Receipt,
    PaymentReference,
    /// A return (or bank reversal) linked to the payment it brings back.
    ReturnOfPayment,
    /// A batch booking paired through the transaction details inside it.
    BatchDetails,
    /// A batch booking paired through our batch id and its total.
    BatchPaymentInfoId,
    AmountCounterpartyDate,
    /// One line equal to the sum of one day's remaining payments.
    SumByDate,
    /// Several lines from one counterparty summing to one payment.
    SumByCounterparty,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::EndToEndId => "end_to_end_id",
            Rule::RailTransactionId => "rail_transaction_id",
            Rule::Receipt => "receipt",
            Rule::PaymentReference => "payment_reference",
            Rule::ReturnOfPayment => "return_of_payment",
            Rule::BatchDetails => "batch_details",
            Rule::BatchPaymentInfoId => "batch_payment_info_id",
            Rule::AmountCounterpartyDate => "amount_counterparty_date",
            Rule::SumByDate => "sum_by_date",
            Rule::SumByCounterparty => "sum_by_counterparty",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    OneToOne,
    /// One statement line, many payments (batch booking).
    OneToMany,
    /// Many statement lines, one payment (instalments, split bookings).
    ManyToOne,
}

/// Lines and payments that agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub rule: Rule,
    pub shape: Shape,
    /// `line_no` of the statement lines.
    pub lines: Vec<u64>,
    pub expected: Vec<Uuid>,
    /// Statement minus ours, in minor units (non-zero only within the amount tolerance).
    pub amount_difference_minor: i64,
    /// Fees shown on the lines, to book apart.
    pub fee: Option<Money>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    High,
    /// Money moved where we believe it did not: act first.
    Critical,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// On the statement but not ours: the money goes to suspense.
    UnmatchedStatementLine,
    /// Ours (completed) but not on the statement.
    MissingFromStatement,
    AmountMismatch {
        expected: Money,
        found: Money,
    },
    CurrencyMismatch {
        expected: Currency,
        found: Currency,
    },
    /// We hold the payment failed or unknown; the statement shows the money moved.
    StatusConflict {
        ours: ExpectedState,
    },
    /// The same line twice, or a second line for a payment already paired.
    Duplicate {
        of_line: Option<u64>,
    },
    PartialPayment {
        expected: Money,
        received: Money,
    },
    OverPayment {
        expected: Money,
        received: Money,
    },
}

impl BreakKind {
    /// Stable name for storage and reports.
    pub fn code(&self) -> &'static str {
        match self {
            BreakKind::UnmatchedStatementLine => "unmatched_statement_line",
            BreakKind::MissingFromStatement => "missing_from_statement",
            BreakKind::AmountMismatch { .. } => "amount_mismatch",
            BreakKind::CurrencyMismatch { .. } => "currency_mismatch",
            BreakKind::StatusConflict { .. } => "status_conflict",
            BreakKind::Duplicate { .. } => "duplicate",
            BreakKind::PartialPayment { .. } => "partial_payment",
            BreakKind::OverPayment { .. } => "over_payment",
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            BreakKind::StatusConflict { .. } => Severity::Critical,
            BreakKind::UnmatchedStatementLine
            | BreakKind::AmountMismatch { .. }
            | BreakKind::CurrencyMismatch { .. }
            | BreakKind::Duplicate { .. } => Severity::High,
            BreakKind::MissingFromStatement
            | BreakKind::PartialPayment { .. }
            | BreakKind::OverPayment { .. } => Severity::Warning,
        }
    }
}

/// A difference for a finance officer to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub kind: BreakKind,
    pub severity: Severity,
    /// The rule that tied the line to the payment, when one did.
    pub rule: Option<Rule>,
    pub lines: Vec<u64>,
    pub expected: Vec<Uuid>,
    /// A short explanation for the break queue.
    pub note: &'static str,
}

/// Counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub lines_seen: u64,
    /// Pending or informational lines: they prove nothing and are left alone.
    pub lines_not_booked: u64,
    pub lines_matched: u64,
    pub expected_given: u64,
    pub expected_matched: u64,
}

/// The result of a run: what agrees, what does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub matches: Vec<Match>,
    pub breaks: Vec<Break>,
    pub stats: Stats,
}

/// Runs the matcher over lines already in memory.
pub fn match_lines<'a, I>(expected: &[Expected], lines: I, config: MatchConfig) -> Outcome
where
    I: IntoIterator<Item = &'a StatementLine>,
{
    let mut m = Matcher::new(expected, config);
    for line in lines {
        m.push(line);
    }
    m.finish()
}
