//! The adapter interface: what a rail can do, and how one attempt goes out and comes back.
//!
//! An adapter only translates between our types and its rail's wire format. It holds no
//! state of its own: whatever it must remember between steps it returns as `rail_state`,
//! which the gateway stores on the attempt and hands back.

use crate::batch::{BatchAck, BatchPage, BatchPlan, BatchSupport};
use crate::{Currency, Money, Party};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Scheme → beneficiary or provider.
    Disbursement,
    /// Payer → scheme.
    Collection,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Disbursement => "disbursement",
            Direction::Collection => "collection",
        }
    }
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "disbursement" => Some(Direction::Disbursement),
            "collection" => Some(Direction::Collection),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionMode {
    /// The payer is prompted on the rail.
    RequestToPay,
    /// The gateway issues a payment reference and matches money arriving with it.
    Expected,
}

/// What a rail can do; routing and the API consult it before anything is sent.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub disbursement: bool,
    pub request_to_pay: bool,
    pub currencies: Vec<Currency>,
    pub bulk: bool,
    pub inquiry: bool,
    pub reversal: bool,
    /// Largest amount the rail accepts per payment, if it has a limit.
    pub max_amount: Option<Money>,
    /// True when the rail only moves whole units of the currency (M-Pesa: whole shillings).
    pub whole_units_only: bool,
}

/// One try at moving one payment over a rail. Its id is chosen and stored before anything is
/// sent; a retry of the same attempt reuses the id and, where stored, the exact request bytes.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Our request id at the rail (idempotency key / correlation id / transfer id).
    pub attempt_id: Uuid,
    pub payment_id: Uuid,
    pub direction: Direction,
    pub amount: Money,
    pub party: Party,
    /// The core's reference (benefit, claim, invoice or contribution code).
    pub reference: String,
    pub narrative: Option<String>,
    /// The rail's own id for this attempt, once it gave one.
    pub rail_reference: Option<String>,
    /// Whatever the adapter asked the gateway to keep between steps.
    pub rail_state: Option<serde_json::Value>,
    /// The request the gateway stored before sending, for byte-identical resends.
    pub request: Option<PreparedRequest>,
    pub created_at: DateTime<Utc>,
}

/// The exact bytes of a rail request, built before sending so the gateway can store them first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    /// Names the step the bytes belong to ("transfer", "quote"): a stored request is reused
    /// only for the same step.
    pub step: String,
    pub body: Vec<u8>,
}

/// Why a payment failed, in our terms, with the rail's own code kept beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: FailureCode,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rail_code: Option<String>,
}

impl Failure {
    pub fn new(code: FailureCode, reason: impl Into<String>, rail_code: Option<String>) -> Self {
        Failure {
            code,
            reason: reason.into(),
            rail_code,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    InsufficientFunds,
    PartyNotFound,
    Declined,
    LimitExceeded,
    Expired,
    InvalidRequest,
    RailUnavailable,
    RailRejected,
    Duplicate,
    Cancelled,
    Returned,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::InsufficientFunds => "insufficient_funds",
            FailureCode::PartyNotFound => "party_not_found",
            FailureCode::Declined => "declined",
            FailureCode::LimitExceeded => "limit_exceeded",
            FailureCode::Expired => "expired",
            FailureCode::InvalidRequest => "invalid_request",
            FailureCode::RailUnavailable => "rail_unavailable",
            FailureCode::RailRejected => "rail_rejected",
            FailureCode::Duplicate => "duplicate",
            FailureCode::Cancelled => "cancelled",
            FailureCode::Returned => "returned",
        }
    }
}

/// What the rail said to a submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// Accepted; the outcome comes later by callback or inquiry.
    Accepted { rail_reference: Option<String> },
    /// Settled synchronously.
    Completed(Settled),
    /// Refused; nothing moved.
    Rejected(Failure),
    /// A multi-step rail finished one step (lookup, quote); the gateway stores `rail_state`
    /// and waits for the callback that carries the next step.
    Step {
        rail_state: serde_json::Value,
        rail_reference: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settled {
    pub rail_reference: Option<String>,
    /// The receipt the payer or payee sees (M-Pesa receipt, Mojaloop fulfilment's transfer id).
    pub receipt: Option<String>,
    /// The amount and currency the rail says moved, where its message carries them. The
    /// gateway compares them with the payment's before completing it: a rail that reports
    /// another amount (or currency) records a conflict for an operator, never a completion.
    /// `None` where the rail's message carries no amount (each adapter's README says which).
    pub amount: Option<Money>,
}

/// The rail's view of an attempt when asked.
#[derive(Debug, Clone, PartialEq)]
pub enum RailStatus {
    Pending,
    Completed(Settled),
    Failed(Failure),
    /// The rail has no record of the attempt: nothing moved, and it may be sent again under
    /// the same id.
    NotFound,
}

/// A failed call to the rail, classified by what it means for the money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RailError {
    /// The rail refused before anything moved (a 503, a refused connection): sending the same
    /// attempt again is safe.
    #[error("retryable, nothing moved: {0}")]
    Retryable(String),
    /// The request can never succeed as it is (bad configuration, a 400).
    #[error("permanent: {0}")]
    Permanent(String),
    /// We cannot tell whether money moved (timeout, dropped connection): only an inquiry or a
    /// statement may settle it.
    #[error("unknown outcome: {0}")]
    Unknown(String),
}

/// A reversal of a completed payment: the gateway chooses `reversal_id` and stores it before
/// anything is sent, as it does an attempt id, so a resend after a lost answer is recognised
/// by the rail as the same reversal and never reverses twice.
#[derive(Debug, Clone)]
pub struct Reversal {
    pub reversal_id: Uuid,
    /// The completed attempt being reversed; its `rail_reference` is the rail's id of the
    /// money movement (the transaction reference a reversal names).
    pub original: Attempt,
    /// The rail's own id for the reversal, once it gave one.
    pub rail_reference: Option<String>,
}

/// A request a rail made to us, as received.
#[derive(Debug, Clone)]
pub struct InboundRequest {
    pub method: http::Method,
    /// The path below `/rails/{rail}` (starts with '/').
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
    pub received_at: DateTime<Utc>,
    /// The caller's address, for rails authenticated by an allow-list.
    pub peer: Option<std::net::SocketAddr>,
}

/// Which attempt a callback speaks of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptRef {
    Attempt(Uuid),
    RailReference(String),
    /// Money pushed to the scheme quoting a payment reference (control number) that the
    /// gateway issued for an expected collection; the gateway finds the payment, or books
    /// the money to suspense when nothing matches.
    PaymentReference(String),
    /// Money pushed under a transaction the rail linked to an attempt earlier (an outcome
    /// `Linked` made `rail_reference` the attempt's reference): that attempt, completed by the
    /// money; when no attempt holds the reference, as `PaymentReference(payment_reference)`.
    Transaction {
        rail_reference: String,
        payment_reference: String,
    },
}

/// What a callback says about an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum CallbackOutcome {
    Completed(Settled),
    Failed(Failure),
    Pending,
    /// `Pending`, and the rail named the reference its later messages for the attempt will
    /// carry (Mojaloop: the payer FSP's `transactionId`); it becomes the attempt's
    /// `rail_reference`.
    Linked {
        rail_reference: String,
    },
    /// A multi-step rail moved on; store the state and submit the next step.
    Step {
        rail_state: serde_json::Value,
    },
    /// Money arrived for the scheme (a pushed collection); `attempt` is a `PaymentReference`.
    Received {
        amount: Money,
        payer: Option<Party>,
        settled: Settled,
    },
}

impl CallbackOutcome {
    /// What money received under a linked transaction (`AttemptRef::Transaction`) is for the
    /// attempt it was linked to: that attempt's completion.
    pub fn for_linked_attempt(self) -> CallbackOutcome {
        match self {
            CallbackOutcome::Received { settled, .. } => CallbackOutcome::Completed(settled),
            other => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallbackEvent {
    /// The rail's id for this delivery (used to refuse replays); unique per rail.
    pub callback_id: String,
    pub attempt: AttemptRef,
    pub outcome: CallbackOutcome,
}

/// A verified callback: the events it carries and the answer the rail expects.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackReply {
    pub events: Vec<CallbackEvent>,
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Requests the gateway must send back to the rail after answering (Mojaloop answers a
    /// POST /quotes with a PUT /quotes/{id}); the gateway stores them as durable jobs in the
    /// same transaction as the callback and sends them through `send_follow_up`.
    pub follow_ups: Vec<Outbound>,
}

/// A request the adapter built for the gateway to send later, durably.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// An inbound request the rail requires to be idempotent under its own id (FSPIOP's
/// `POST /quotes` and `POST /transfers`): the gateway keeps `body_hash` per `(rail, key)`; the same
/// key with the same hash is a resend (nothing applied, the first reply's follow-ups sent again),
/// with another hash a modified request (nothing applied, `modified_request_reply` sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentPost {
    /// The resource and the rail's id for it, e.g. `transfers/8f3c…`.
    pub key: String,
    /// A hash of the request's content (whatever the rail compares resends by).
    pub body_hash: String,
}

impl CallbackReply {
    pub fn ok_json(events: Vec<CallbackEvent>, body: &serde_json::Value) -> Self {
        CallbackReply {
            events,
            status: 200,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
            follow_ups: Vec::new(),
        }
    }
}

/// Why an inbound request was refused. Refusals never change state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    #[error("stale: {0}")]
    Stale(String),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("no such route")]
    UnknownRoute,
}

/// The interface every rail adapter implements.
#[async_trait]
pub trait RailAdapter: Send + Sync + 'static {
    /// The rail's id as configured ("mock", "mojaloop", "mpesa-ke"...).
    fn id(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    /// Builds the exact bytes of the next request for the attempt, if the rail needs them
    /// stored before sending. The gateway stores them, then calls `submit`.
    fn prepare(&self, _attempt: &Attempt) -> Result<Option<PreparedRequest>, RailError> {
        Ok(None)
    }
    /// Sends the attempt (or its next step). Must be safe to call again with the same attempt.
    async fn submit(&self, attempt: &Attempt) -> Result<Submitted, RailError>;
    /// Asks the rail what became of the attempt.
    async fn inquire(&self, attempt: &Attempt) -> Result<RailStatus, RailError>;
    /// Authenticates, parses and maps a request the rail made to `/rails/{id}/...`.
    fn callback(&self, request: &InboundRequest) -> Result<CallbackReply, CallbackError>;
    /// A second look at one event of a verified callback, once the gateway has found the
    /// attempt it names (by `Attempt` or `RailReference`) and before applying it: the adapter
    /// may check the event against what it sent (the attempt's stored `rail_state` and
    /// `request`) and refine the outcome. Mojaloop checks there that a COMMITTED transfer's
    /// fulfilment hashes to the condition it sent and that the callback came from the FSP it
    /// dealt with, and turns "transfer not found" past the transfer's expiry plus grace into a
    /// failure. An error refuses the event (counted, never applied). The default accepts.
    fn review_callback(
        &self,
        _attempt: &Attempt,
        _request: &InboundRequest,
        outcome: CallbackOutcome,
    ) -> Result<CallbackOutcome, CallbackError> {
        Ok(outcome)
    }
    /// A `rail_reference` the gateway must store with the attempt BEFORE `submit` sends it,
    /// because the rail's answer may arrive (keyed by it) before `submit` returns. Mojaloop's
    /// `PUT /parties` names only the party looked up. The default needs none.
    fn reference_before_send(&self, _attempt: &Attempt) -> Option<String> {
        None
    }
    /// Whether an inbound request is one the rail requires to be idempotent by its own id
    /// (see [`IdempotentPost`]). Called after `callback` accepted the request. Default: none.
    fn idempotent_post(&self, _request: &InboundRequest) -> Option<IdempotentPost> {
        None
    }
    /// What to send back when an idempotent request's id comes again with another body
    /// (FSPIOP: `PUT /{resource}/{id}/error` with 3106). Default: nothing.
    fn modified_request_reply(&self, _request: &InboundRequest) -> Option<Outbound> {
        None
    }
    /// Asks the rail to reverse a completed payment (`capabilities().reversal`). Must be safe
    /// to call again with the same `reversal_id`. Answers as `submit` does: `Accepted` (the
    /// outcome comes by callback naming `reversal_id` as an `AttemptRef::Attempt`, or by
    /// `inquire_reversal`), `Completed`, or `Rejected` (the rail refused; nothing moved).
    /// Default: the rail does not reverse.
    async fn reverse(&self, _reversal: &Reversal) -> Result<Submitted, RailError> {
        Err(RailError::Permanent(format!(
            "rail {} does not support reversals",
            self.id()
        )))
    }
    /// Asks the rail what became of a reversal. `NotFound`: nothing moved under this id, and
    /// the same reversal may be sent again. Default: the rail does not reverse.
    async fn inquire_reversal(&self, _reversal: &Reversal) -> Result<RailStatus, RailError> {
        Err(RailError::Permanent(format!(
            "rail {} does not support reversals",
            self.id()
        )))
    }
    /// Sends a follow-up the adapter asked for in a `CallbackReply`. Must be idempotent.
    async fn send_follow_up(&self, _outbound: &Outbound) -> Result<(), RailError> {
        Err(RailError::Permanent(format!(
            "rail {} sends no follow-ups",
            self.id()
        )))
    }
    /// The rail's batch API, if it has one (see [`crate::batch`]). Default: none.
    fn batch_support(&self) -> Option<BatchSupport> {
        None
    }
    /// Whether the rail's "failed" is its last word. A rail that may report a failure and
    /// later the success of the same payment, calling no one back (PH-EE's operations app,
    /// Fineract), answers `false`: the gateway then asks it once more some time after each
    /// failure (`confirm_failures`, on by default for such rails). Default: final.
    fn failures_final(&self) -> bool {
        true
    }
    /// The folder of files the rail answers with, for the gateway to poll (see
    /// [`crate::inbound`]). Default: the rail answers over HTTP only.
    fn inbound_files(&self) -> Option<&dyn crate::inbound::InboundFiles> {
        None
    }
    /// Cuts attempts into uploads of at most `max_lines`; a rail with quirks (one payment
    /// mode per file, no two equal lines in a file) cuts its own way. Default: in order.
    fn plan_batches(&self, attempts: &[Attempt], max_lines: usize) -> BatchPlan {
        BatchPlan::chunked(attempts, max_lines)
    }
    /// Uploads one planned batch under our `batch_id`. Must be safe to call again with the
    /// same id and lines.
    async fn submit_batch(
        &self,
        _batch_id: Uuid,
        _lines: &[Attempt],
    ) -> Result<BatchAck, RailError> {
        Err(RailError::Permanent(format!(
            "rail {} has no batch API",
            self.id()
        )))
    }
    /// One page of a batch's per-line outcomes, from `cursor` (`None`: the first page).
    async fn batch_results(
        &self,
        _batch_ref: &str,
        _cursor: Option<&str>,
    ) -> Result<BatchPage, RailError> {
        Err(RailError::Permanent(format!(
            "rail {} has no batch API",
            self.id()
        )))
    }
    /// The reference `batch_results` takes for a batch the rail knows by our own id, when it
    /// does: a batch whose upload answer was lost can then still be read (as well as each
    /// line asked about). Default: the rail names batches its own way.
    fn batch_ref_for(&self, _batch_id: Uuid) -> Option<String> {
        None
    }
    /// Whether a request `callback` accepted is the rail's "a batch moved on" notice: the
    /// gateway then reads that rail's open batches at once. Default: no.
    fn is_batch_callback(&self, _request: &InboundRequest) -> bool {
        false
    }
    /// The largest request body the rail sends to `/rails/{id}/...`; the gateway refuses a
    /// larger one before storing it. Default: 1 MiB.
    fn max_callback_bytes(&self) -> usize {
        1024 * 1024
    }
    /// The path of an inbound request (below `/rails/{id}`) with any secret it carries
    /// replaced by [`crate::REDACTED`] (a secret path segment: see
    /// [`crate::redact_first_segment`]). The gateway stores the raw callback with this path
    /// and logs no other. Default: the rail's paths carry no secret.
    fn redact_path(&self, path: &str) -> String {
        path.to_owned()
    }
    /// The path as logs and spans may show it: [`Self::redact_path`], with personal data the
    /// path names (a party's identifier) masked too. Default: `redact_path`.
    fn loggable_path(&self, path: &str) -> String {
        self.redact_path(path)
    }
}
