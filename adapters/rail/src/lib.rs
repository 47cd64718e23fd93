//! The rail adapter interface and the domain types that cross it.
//!
//! The gateway and every rail crate depend on this crate, so the types an adapter needs
//! (money, parties, attempts, outcomes) live here rather than in the gateway.

pub mod adapter;
pub mod batch;
pub mod json;
pub mod money;
pub mod party;
pub mod redact;

pub use adapter::*;
pub use batch::{
    BatchAck, BatchLineResult, BatchMembership, BatchPage, BatchPlan, BatchState, BatchSupport,
    PlannedBatch,
};
pub use money::{Currency, Money, MoneyError};
pub use party::{mask, Party, PartyError, PartyIdType};
pub use redact::{redact_first_segment, REDACTED};
