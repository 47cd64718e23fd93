//! The GSMA Mobile Money API v1.2 adapter: disbursements, request-to-pay collections
//! (merchant payments), batches and reversals, with results by callback or polling.
//!
//! * Idempotency: every creation request carries the attempt id as `X-CorrelationID`; a
//!   resend is refused by the provider as `businessRule/duplicateRequest` and recovered
//!   through `GET /responses/{id}`, never executed twice.
//! * Results: the provider PUTs the transaction (or an error object, or a request state) to
//!   `X-Callback-URL` = `{callback_base}[/{secret}]/transactions/{attempt_id}`; `inquire`
//!   polls `GET /requeststates/{serverCorrelationId}` then `GET /transactions/{reference}`,
//!   or `GET /responses/{attempt_id}` when the acknowledgement was lost.
//! * Callbacks: see [`config::CallbackAuth`].
//! * Its `[[rails]]` settings are read by [`settings`]; unknown keys are refused.
//! * The mock provider lives in `mock`, built with the cargo feature `mock` only.

mod adapter;
pub mod batch;
pub mod config;
#[cfg(feature = "mock")]
pub mod mock;
pub mod settings;
pub mod wire;

pub use adapter::MmapiAdapter;
pub use batch::{BatchItemResult, BatchNotice, BatchProgress, BatchSubmitted};
pub use config::{Auth, CallbackAuth, MmapiConfig, Notification, Secret};
