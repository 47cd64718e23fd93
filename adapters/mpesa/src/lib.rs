//! The Safaricom M-Pesa (Daraja) adapter: disbursements by B2C, collections by STK push
//! (M-Pesa Express), with the queries that settle unknown outcomes.
//!
//! * Amounts are whole shillings: an amount with cents is refused (`RailError::Permanent`),
//!   never rounded; `capabilities().whole_units_only` says so to the gateway.
//! * B2C `OriginatorConversationID` is the attempt id, chosen and stored by the gateway
//!   before sending.
//! * Callbacks are unsigned: see [`MpesaConfig::callback_secret`] and the crate README for
//!   the path layout and the trade-off.
//! * The OAuth token is cached in the adapter (it is not payment state) and refreshed before
//!   it expires; concurrent callers share one refresh.
//! * Its `[[rails]]` settings are read by [`settings`]; unknown keys are refused.
//! * The mock provider lives in `mock`, built with the cargo feature `mock` only.

mod adapter;
mod amounts;
pub mod config;
#[cfg(feature = "mock")]
pub mod mock;
pub mod settings;
pub mod wire;

pub use adapter::{stk_password, whole_shillings, MpesaAdapter};
pub use config::{B2cConfig, CommandId, MpesaConfig, Secret, StkConfig, StkTransactionType};
