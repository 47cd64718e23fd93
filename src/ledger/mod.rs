//! The ledger (DESIGN §8): double entry in integer minor units, one currency per account,
//! transfers immutable and two-phase as in TigerBeetle (pending → posted or voided, exactly
//! once each), balances derived from entries. docs/ledger.md has the chart of accounts.
//!
//! Postings are written by the engine (`crate::engine`), in the transaction of the change of
//! state that causes them, so a payment's state and its books never disagree.

pub mod balances;
pub mod chart;
pub mod postings;
pub mod transfers;

pub use postings::on_transition;
