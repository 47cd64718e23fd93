//! The mock rail's wire format, shared by its server and its adapter, and the mappings from
//! its statuses and codes onto ours.
//!
//! Amounts travel as decimal strings in the currency's minor units ("1500.00"); they are
//! parsed with `Money::parse`, never through a float.

use chrono::{DateTime, Utc};
use railgate_rail::{
    Attempt, AttemptRef, CallbackError, CallbackEvent, CallbackOutcome, Currency, Failure,
    FailureCode, Money, RailStatus, Settled, Submitted,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The party as the rail names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireParty {
    pub id_type: String,
    pub id_value: String,
}

/// `POST /v1/payouts` and `POST /v1/collections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// Our attempt id: the rail's idempotency key.
    pub request_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub party: WireParty,
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrative: Option<String>,
    pub callback_url: String,
}

impl PaymentRequest {
    pub fn from_attempt(attempt: &Attempt, callback_url: &str) -> Self {
        PaymentRequest {
            request_id: attempt.attempt_id,
            amount: attempt.amount.to_decimal_string(),
            currency: attempt.amount.currency().code().to_owned(),
            party: WireParty {
                id_type: attempt.party.id_type().as_str().to_owned(),
                id_value: attempt.party.id_value().to_owned(),
            },
            reference: attempt.reference.clone(),
            narrative: attempt.narrative.clone(),
            callback_url: callback_url.to_owned(),
        }
    }
}

/// The rail's statuses. Unknown strings fail to parse, so a new status is noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MockStatus {
    Pending,
    Success,
    Failed,
    /// Refused synchronously at submission; nothing moved.
    Rejected,
}

/// The rail's failure codes. Codes we do not know land in `Other` here, at parsing, so the
/// mapping onto ours stays an exhaustive match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum MockCode {
    InsufficientFunds,
    PartyNotFound,
    Declined,
    Expired,
    LimitExceeded,
    Other(String),
}

impl MockCode {
    pub fn as_str(&self) -> &str {
        match self {
            MockCode::InsufficientFunds => "INSUFFICIENT_FUNDS",
            MockCode::PartyNotFound => "PARTY_NOT_FOUND",
            MockCode::Declined => "DECLINED",
            MockCode::Expired => "EXPIRED",
            MockCode::LimitExceeded => "LIMIT_EXCEEDED",
            MockCode::Other(code) => code,
        }
    }

    pub fn failure_code(&self) -> FailureCode {
        match self {
            MockCode::InsufficientFunds => FailureCode::InsufficientFunds,
            MockCode::PartyNotFound => FailureCode::PartyNotFound,
            MockCode::Declined => FailureCode::Declined,
            MockCode::Expired => FailureCode::Expired,
            MockCode::LimitExceeded => FailureCode::LimitExceeded,
            MockCode::Other(_) => FailureCode::RailRejected,
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            MockCode::InsufficientFunds => "insufficient funds in the paying account",
            MockCode::PartyNotFound => "the party is not registered on the rail",
            MockCode::Declined => "the party declined the payment",
            MockCode::Expired => "the payment expired before it completed",
            MockCode::LimitExceeded => "the amount exceeds the party's limit",
            MockCode::Other(_) => "the rail refused the payment",
        }
    }
}

impl From<String> for MockCode {
    fn from(code: String) -> Self {
        match code.as_str() {
            "INSUFFICIENT_FUNDS" => MockCode::InsufficientFunds,
            "PARTY_NOT_FOUND" => MockCode::PartyNotFound,
            "DECLINED" => MockCode::Declined,
            "EXPIRED" => MockCode::Expired,
            "LIMIT_EXCEEDED" => MockCode::LimitExceeded,
            _ => MockCode::Other(code),
        }
    }
}

impl From<MockCode> for String {
    fn from(code: MockCode) -> String {
        code.as_str().to_owned()
    }
}

/// Our failure for a rail failure; a FAILED without a code is a plain rail refusal.
pub fn failure(code: Option<&MockCode>, message: Option<&str>) -> Failure {
    match code {
        Some(code) => Failure::new(
            code.failure_code(),
            message.unwrap_or(code.description()),
            Some(code.as_str().to_owned()),
        ),
        None => Failure::new(
            FailureCode::RailRejected,
            message.unwrap_or("the rail reported a failure without a code"),
            None,
        ),
    }
}

/// `202` to a submission (and to any resend of an accepted one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedResponse {
    pub transaction_id: String,
    pub request_id: Uuid,
    pub status: MockStatus,
    /// Present on a resend once the original failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<MockCode>,
    /// Present on a resend once the original succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

impl From<AcceptedResponse> for Submitted {
    fn from(reply: AcceptedResponse) -> Self {
        let rail_reference = Some(reply.transaction_id);
        match reply.status {
            MockStatus::Pending => Submitted::Accepted { rail_reference },
            // The answer to a submission carries no amount: the request just sent did.
            MockStatus::Success => Submitted::Completed(Settled {
                rail_reference,
                receipt: reply.receipt,
                amount: None,
            }),
            MockStatus::Failed | MockStatus::Rejected => {
                Submitted::Rejected(failure(reply.code.as_ref(), None))
            }
        }
    }
}

/// `422` to a submission the rail refused synchronously.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedResponse {
    pub request_id: Uuid,
    pub status: MockStatus,
    pub code: MockCode,
    pub message: String,
}

impl From<RejectedResponse> for Submitted {
    fn from(reply: RejectedResponse) -> Self {
        Submitted::Rejected(failure(Some(&reply.code), Some(&reply.message)))
    }
}

/// `GET /v1/transactions/{request_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionStatus {
    pub request_id: Uuid,
    pub transaction_id: String,
    pub status: MockStatus,
    pub code: Option<MockCode>,
    pub receipt: Option<String>,
    pub amount: String,
    pub currency: String,
}

impl TransactionStatus {
    /// The amount the rail holds for the payment, if it is money in its currency.
    pub fn money(&self) -> Result<Money, String> {
        let currency: Currency = self
            .currency
            .parse()
            .map_err(|e| format!("currency: {e}"))?;
        Money::parse(&self.amount, currency).map_err(|e| format!("amount: {e}"))
    }
}

impl From<TransactionStatus> for RailStatus {
    fn from(status: TransactionStatus) -> Self {
        let amount = status.money().ok();
        match status.status {
            MockStatus::Pending => RailStatus::Pending,
            MockStatus::Success => RailStatus::Completed(Settled {
                rail_reference: Some(status.transaction_id),
                receipt: status.receipt,
                amount,
            }),
            MockStatus::Failed | MockStatus::Rejected => {
                RailStatus::Failed(failure(status.code.as_ref(), None))
            }
        }
    }
}

/// The body of `404` and other short error answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An RFC 9457 problem, the rail's answer to malformed input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// The asynchronous result the rail posts to the callback URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackBody {
    /// Unique per delivery; a redelivery of the same event keeps it.
    pub event_id: Uuid,
    pub request_id: Uuid,
    pub transaction_id: String,
    pub status: MockStatus,
    pub code: Option<MockCode>,
    pub receipt: Option<String>,
    pub amount: String,
    pub currency: String,
    pub occurred_at: DateTime<Utc>,
}

impl TryFrom<CallbackBody> for CallbackEvent {
    type Error = CallbackError;

    fn try_from(body: CallbackBody) -> Result<Self, Self::Error> {
        // A callback whose amount is not money in its currency is not one the rail sent:
        // refuse it rather than act on it. A success carries the amount on, for the gateway
        // to compare with the payment's.
        let currency: Currency = body
            .currency
            .parse()
            .map_err(|e| CallbackError::Malformed(format!("currency: {e}")))?;
        let amount = Money::parse(&body.amount, currency)
            .map_err(|e| CallbackError::Malformed(format!("amount: {e}")))?;
        let outcome = match body.status {
            MockStatus::Pending => CallbackOutcome::Pending,
            MockStatus::Success => CallbackOutcome::Completed(Settled {
                rail_reference: Some(body.transaction_id),
                receipt: body.receipt,
                amount: Some(amount),
            }),
            MockStatus::Failed | MockStatus::Rejected => {
                CallbackOutcome::Failed(failure(body.code.as_ref(), None))
            }
        };
        Ok(CallbackEvent {
            callback_id: body.event_id.to_string(),
            attempt: AttemptRef::Attempt(body.request_id),
            outcome,
        })
    }
}

/// `POST /v1/reversals`: give back the money of a completed payment. `reversal_id` (chosen by
/// the caller) is the idempotency key, as `request_id` is for payments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalRequest {
    pub reversal_id: Uuid,
    /// The payment to reverse (its `request_id`).
    pub request_id: Uuid,
}

/// The answer to `POST /v1/reversals` (`200` done, `422` refused) and to
/// `GET /v1/reversals/{reversal_id}`. Reversals are synchronous on this rail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalStatus {
    pub reversal_id: Uuid,
    pub request_id: Uuid,
    /// `SUCCESS` or `REJECTED`.
    pub status: MockStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<MockCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<ReversalStatus> for RailStatus {
    fn from(r: ReversalStatus) -> Self {
        match r.status {
            MockStatus::Pending => RailStatus::Pending,
            MockStatus::Success => RailStatus::Completed(Settled {
                rail_reference: r.transaction_id,
                receipt: None,
                amount: None,
            }),
            MockStatus::Failed | MockStatus::Rejected => {
                RailStatus::Failed(failure(r.code.as_ref(), r.message.as_deref()))
            }
        }
    }
}

/// Faults the control endpoint injects into the rail's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added before every API answer.
    pub latency_ms: u64,
    /// Callbacks are not delivered while set (they are lost, as a flaky network loses them).
    pub drop_callbacks: bool,
    /// Share of API requests answered 503 before anything is recorded.
    pub error_rate_percent: u8,
}

/// What the rail paid for one attempt: `GET /_control/payouts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutCount {
    pub attempt_id: Uuid,
    pub reference: String,
    /// "disbursement" or "collection".
    pub direction: String,
    pub amount: String,
    pub currency: String,
    /// How many times money moved for the attempt; a resend must never make it exceed 1.
    pub count: u32,
    /// How many times the money was given back (reversals); never above 1.
    #[serde(default)]
    pub reversals: u32,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/../../fixtures/mock/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_kept() {
        for code in [
            "INSUFFICIENT_FUNDS",
            "PARTY_NOT_FOUND",
            "DECLINED",
            "EXPIRED",
            "LIMIT_EXCEEDED",
        ] {
            let parsed = MockCode::from(code.to_owned());
            assert!(!matches!(parsed, MockCode::Other(_)), "{code}");
            assert_eq!(parsed.as_str(), code);
        }
        let other = MockCode::from("ACCOUNT_FROZEN".to_owned());
        assert_eq!(other, MockCode::Other("ACCOUNT_FROZEN".to_owned()));
        let f = failure(Some(&other), None);
        assert_eq!(f.code, FailureCode::RailRejected);
        assert_eq!(f.rail_code.as_deref(), Some("ACCOUNT_FROZEN"));
    }

    #[test]
    fn payment_request_fixture_parses() {
        let req: PaymentRequest = serde_json::from_str(&fixture("payout_request.json")).unwrap();
        assert_eq!(req.amount, "1500.00");
        assert_eq!(req.party.id_type, "MSISDN");
    }

    #[test]
    fn callback_fixtures_map_to_outcomes() {
        let ok: CallbackBody = serde_json::from_str(&fixture("callback_success.json")).unwrap();
        let event = CallbackEvent::try_from(ok).unwrap();
        assert!(matches!(
            event.outcome,
            CallbackOutcome::Completed(Settled {
                receipt: Some(_),
                rail_reference: Some(_),
                amount: Some(_)
            })
        ));
        let failed: CallbackBody = serde_json::from_str(&fixture("callback_failed.json")).unwrap();
        match CallbackEvent::try_from(failed).unwrap().outcome {
            CallbackOutcome::Failed(f) => {
                assert_eq!(f.code, FailureCode::InsufficientFunds);
                assert_eq!(f.rail_code.as_deref(), Some("INSUFFICIENT_FUNDS"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn callback_with_a_bad_amount_is_malformed() {
        let mut body: CallbackBody =
            serde_json::from_str(&fixture("callback_success.json")).unwrap();
        body.amount = "1500.005".to_owned();
        assert!(matches!(
            CallbackEvent::try_from(body),
            Err(CallbackError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_status_does_not_parse() {
        let raw = fixture("callback_success.json").replace("\"SUCCESS\"", "\"REVERSED\"");
        assert!(serde_json::from_str::<CallbackBody>(&raw).is_err());
    }

    #[test]
    fn resend_answers_map_to_the_current_state() {
        let accepted = |status, code, receipt| AcceptedResponse {
            transaction_id: "MR1".to_owned(),
            request_id: Uuid::nil(),
            status,
            code,
            receipt,
        };
        assert!(matches!(
            Submitted::from(accepted(MockStatus::Pending, None, None)),
            Submitted::Accepted { .. }
        ));
        assert!(matches!(
            Submitted::from(accepted(MockStatus::Success, None, Some("R1".to_owned()))),
            Submitted::Completed(_)
        ));
        assert!(matches!(
            Submitted::from(accepted(MockStatus::Failed, Some(MockCode::Declined), None)),
            Submitted::Rejected(Failure {
                code: FailureCode::Declined,
                ..
            })
        ));
    }
}

/// One line of `POST /v1/batches`: a payment as `POST /v1/payouts` takes it, without its
/// own callback URL (the batch has one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLine {
    /// Our attempt id: the line's idempotency key, and what `GET /v1/transactions` takes.
    pub request_id: Uuid,
    /// "disbursement" or "collection".
    pub direction: String,
    pub amount: String,
    pub currency: String,
    pub party: WireParty,
    pub reference: String,
}

impl BatchLine {
    pub fn from_attempt(attempt: &Attempt) -> Self {
        BatchLine {
            request_id: attempt.attempt_id,
            direction: attempt.direction.as_str().to_owned(),
            amount: attempt.amount.to_decimal_string(),
            currency: attempt.amount.currency().code().to_owned(),
            party: WireParty {
                id_type: attempt.party.id_type().as_str().to_owned(),
                id_value: attempt.party.id_value().to_owned(),
            },
            reference: attempt.reference.clone(),
        }
    }
}

/// `POST /v1/batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Our id for the batch: a resend with the same id is answered, never run twice.
    pub batch_id: Uuid,
    /// Where the rail posts "batch completed" (signed like its other callbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    pub lines: Vec<BatchLine>,
}

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchStatus {
    /// Some line is still pending.
    Processing,
    /// Every line has its outcome.
    Completed,
}

/// The answer to `POST /v1/batches` (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAccepted {
    pub batch_id: Uuid,
    pub lines: u64,
    pub status: BatchStatus,
}

/// `GET /v1/batches/{batch_id}?cursor=&limit=`: one page of per-line results, in line order.
/// A line may be listed more than once (scenario 07: its result delivered twice; 11: a
/// failure, then a success).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResults {
    pub batch_id: Uuid,
    pub status: BatchStatus,
    pub results: Vec<TransactionStatus>,
    /// Where the next page starts; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The "batch completed" callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCallbackBody {
    pub event_id: Uuid,
    pub batch_id: Uuid,
    pub status: BatchStatus,
    pub occurred_at: DateTime<Utc>,
}
