//! The Mifos rail family.
//!
//! - `adapter`: Payment Hub EE's channel API for single disbursements and request-to-pay
//!   collections, with the final state read from the operations API (`wire` holds the JSON).
//! - `bulk`: PH-EE's bulk CSV, built so that none of its quirks loses or merges a line, and
//!   the per-line results read back.
//! - `fineract`: Apache Fineract savings accounts as a direct rail (deposits and withdrawals).
//! - `settings`: the two rails' `[[rails]]` settings, unknown keys refused.
//! - `mock` (cargo feature `mock`): sandbox servers for PH-EE and Fineract that speak their
//!   wire formats.

pub mod adapter;
pub mod bulk;
pub mod fineract;
pub mod fineract_wire;
#[cfg(feature = "mock")]
pub mod mock;
pub mod secret;
pub mod settings;
pub mod wire;

pub use adapter::{PhEeAdapter, PhEeConfig};
pub use fineract::{FineractAdapter, FineractConfig};
pub use secret::Secret;
