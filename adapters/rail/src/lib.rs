//! The rail adapter interface and the domain types that cross it.
//!
//! The gateway and every rail crate depend on this crate, so the types an adapter needs
//! (money, parties, attempts, outcomes) live here rather than in the gateway, and so does the
//! plumbing every adapter would otherwise repeat: secrets, the reading of a failed exchange
//! (could money have left?), the OAuth2 token client and TLS.

pub mod adapter;
pub mod batch;
pub mod inbound;
pub mod json;
pub mod money;
pub mod oauth;
pub mod party;
pub mod redact;
pub mod secret;
pub mod settings;
pub mod tls;
pub mod transport;

pub use adapter::*;
pub use batch::{
    BatchAck, BatchLineResult, BatchMembership, BatchPage, BatchPlan, BatchState, BatchSupport,
    PlannedBatch,
};
pub use money::{Currency, Money, MoneyError};
pub use party::PartyError;
pub use party::{mask, Party, PartyIdType};
pub use redact::{redact_first_segment, REDACTED};
pub use secret::Secret;
pub use settings::{Constructor, RailSetup, SecretSetting, SettingsError};
