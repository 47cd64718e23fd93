//! Exceptions and conflicts: what waits for an operator, and the two things the design lets
//! an operator do about a payment (DESIGN §5, §6):
//!
//! - **ask the rail again** ([`ask_rail`]): the payment's own driving job is made due now;
//!   with an exception raised it only asks the rail about the attempt (an inquiry, never a
//!   resend: `dispatch::drive`). Whatever the rail answers is applied as any answer is.
//! - **settle from evidence** ([`settle`]): the operator states the outcome (completed or
//!   failed) from a statement line or a receipt, with a reason. It goes through the engine as
//!   `Change::Settle`, so the payment moves exactly as the rail's answer would have moved it:
//!   the same ledger postings, the same event for the core, the attempt's outcome written.
//!
//! Both are refused unless the payment awaits an operator (`machine::awaits_operator`), and
//! both write who (the key) and why on the payment's history line. They run in the caller's
//! transaction, so an HTTP handler can complete its idempotency key (and the console its
//! audit row) in the same commit; the caller wakes the dispatcher after an inquiry.
//!
//! The queue itself ([`queue`]) merges the three sources oldest first.

pub mod queue;

use crate::domain::machine::{awaits_operator, Finding};
use crate::domain::{Direction, Payment, State};
use crate::engine::{self, Applied, Change};
use crate::store::exceptions::{self as source, EvidenceLine};
use crate::store::Conn;
use crate::store::{attempts, payments, Kind, StoreError};
use uuid::Uuid;

/// Who acts: the key (recorded on the history line) and the client it belongs to (the only
/// client whose payments it reaches). `operator`: the key has the gateway's operator scope
/// (the dead letter is shown to it).
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub client_id: Uuid,
    pub key_id: Uuid,
    pub operator: bool,
}

/// Longest reason or reference an operator may give.
pub const TEXT_MAX: usize = 500;

/// Printable text of 1 to `max` characters, trimmed; `None` otherwise.
fn printable(s: &str, max: usize) -> Option<String> {
    let t = s.trim();
    (!t.is_empty() && s.chars().count() <= max && !t.chars().any(char::is_control))
        .then(|| t.to_owned())
}

/// Why an operator acts: required, 1 to [`TEXT_MAX`] printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn parse(s: &str) -> Option<Reason> {
        printable(s, TEXT_MAX).map(Reason)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What shows the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// A line of a statement the client uploaded.
    StatementLine { statement_id: Uuid, line_no: i64 },
    /// A receipt (or transaction reference) the rail or the payee gave.
    Receipt(String),
}

impl Evidence {
    /// A receipt reference: 1 to 64 printable characters.
    pub fn receipt(s: &str) -> Option<Evidence> {
        printable(s, 64).map(Evidence::Receipt)
    }

    fn describe(&self) -> String {
        match self {
            Evidence::StatementLine {
                statement_id,
                line_no,
            } => format!("statement {statement_id} line {line_no}"),
            Evidence::Receipt(r) => format!("receipt {r}"),
        }
    }
}

/// The outcome an operator states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "completed" => Some(Outcome::Completed),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
        }
    }
}

/// An operator's settlement of a payment, validated.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub outcome: Outcome,
    pub evidence: Evidence,
    pub reason: Reason,
}

/// Why an action was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no such payment")]
    NotFound,
    #[error("the payment is {state} and awaits no operator: only an unknown outcome, an exception or a contradiction that stopped it short of a final state can be {action}")]
    NotAwaiting { state: State, action: &'static str },
    /// The evidence does not support the outcome (`field` names what is wrong).
    #[error("{field}: {reason}")]
    Evidence { field: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Asks the payment's rail again about its attempt, in `tx`: a line of history with who and
/// why, and the payment's job due now. The caller commits and wakes the dispatcher.
pub async fn ask_rail(
    tx: &mut Conn,
    kind: Kind,
    actor: &Actor,
    payment_id: Uuid,
    reason: &Reason,
) -> Result<Payment, ActionError> {
    payments::get_in(tx, Some(actor.client_id), payment_id)
        .await?
        .ok_or(ActionError::NotFound)?;
    let cause = format!(
        "operator (key {}) asked the rail again: {}",
        actor.key_id,
        reason.as_str()
    );
    let applied = engine::apply(tx, kind, payment_id, Change::AskRail, &cause).await?;
    after(tx, actor, payment_id, applied, "asked about again").await
}

/// Settles the payment as the operator states, from evidence, in `tx` (the caller commits).
pub async fn settle(
    tx: &mut Conn,
    kind: Kind,
    actor: &Actor,
    payment_id: Uuid,
    s: &Settlement,
) -> Result<Payment, ActionError> {
    let held = payments::get_in(tx, Some(actor.client_id), payment_id)
        .await?
        .ok_or(ActionError::NotFound)?;
    if !awaits_operator(&held) {
        return Err(ActionError::NotAwaiting {
            state: held.state,
            action: "settled",
        });
    }
    let receipt = match &s.evidence {
        Evidence::Receipt(r) => Some(r.clone()),
        Evidence::StatementLine {
            statement_id,
            line_no,
        } => {
            let line = source::statement_line(tx, actor.client_id, *statement_id, *line_no)
                .await?
                .ok_or_else(|| ActionError::Evidence {
                    field: "evidence.statement_id",
                    reason:
                        "the client has no statement line with this statement id and line number"
                            .into(),
                })?;
            check_line(&held, &line, s.outcome)?;
            line.receipt.or(line.rail_transaction_id)
        }
    };
    let finding = match s.outcome {
        Outcome::Completed => Finding::Completed { receipt },
        Outcome::Failed => Finding::Failed {
            reason: s.reason.as_str().to_owned(),
        },
    };
    let attempt = attempts::latest(tx, payment_id).await?.map(|a| a.id);
    let cause = format!(
        "operator (key {}) settled it as {} from {}: {}",
        actor.key_id,
        s.outcome.as_str(),
        s.evidence.describe(),
        s.reason.as_str()
    );
    let change = Change::Settle { attempt, finding };
    let applied = engine::apply(tx, kind, payment_id, change, &cause).await?;
    after(tx, actor, payment_id, applied, "settled").await
}

/// A statement line speaks of this payment only if it is for its amount, in its currency;
/// it proves the payment completed only if the money went the payment's way (a disbursement
/// leaves the account: a debit). A failure is shown by a line that brought it back.
fn check_line(p: &Payment, line: &EvidenceLine, outcome: Outcome) -> Result<(), ActionError> {
    let way = match p.direction {
        Direction::Disbursement => "debit",
        Direction::Collection => "credit",
    };
    let same_money =
        line.amount_minor == p.amount.minor() && line.currency == p.amount.currency().code();
    if !same_money {
        return Err(ActionError::Evidence {
            field: "evidence.line_no",
            reason: format!(
                "the statement line is for {} {} (minor units), the payment is {}",
                line.amount_minor, line.currency, p.amount
            ),
        });
    }
    if outcome == Outcome::Completed && line.direction != way {
        return Err(ActionError::Evidence {
            field: "evidence.line_no",
            reason: format!(
                "the statement line is a {}, a {} is a {way}",
                line.direction,
                p.direction.as_str()
            ),
        });
    }
    Ok(())
}

async fn after(
    tx: &mut Conn,
    actor: &Actor,
    payment_id: Uuid,
    applied: Applied,
    action: &'static str,
) -> Result<Payment, ActionError> {
    let now = payments::get_in(tx, Some(actor.client_id), payment_id)
        .await?
        .ok_or(ActionError::NotFound)?;
    match applied {
        Applied::Changed { .. } | Applied::Noted => {
            tracing::info!(payment = %payment_id, key = %actor.key_id, action, state = %now.state, "Operator acted on a payment");
            metrics::counter!("railgate_operator_actions_total", "action" => action).increment(1);
            Ok(now)
        }
        Applied::Duplicate | Applied::Conflict | Applied::Ignored => {
            Err(ActionError::NotAwaiting {
                state: now.state,
                action,
            })
        }
    }
}
