//! Banks as a rail: ISO 20022 credit-transfer files over a file drop.
//!
//! Outbound, disbursements become pain.001 files (`pain001`), written atomically into the
//! bank's outbound folder (`drop`). Inbound, the bank answers with pain.002 status reports
//! (`pain002`) and camt.053/054 statements whose return entries carry our end-to-end ids
//! (`camt`). `adapter` ties them to the gateway's `RailAdapter`, `settings` reads the rail's
//! `[[rails]]` settings; `mock` (cargo feature `mock`) is the sandbox bank.
//!
//! Identifiers are derived from our ids so that a file can always be traced back:
//! `EndToEndId` is the attempt id as 32 hex digits, `MsgId`/`PmtInfId` are the batch id with
//! a two-letter prefix (see `ids`).

pub mod adapter;
pub mod camt;
pub mod charset;
pub mod drop;
pub mod error;
pub mod ids;
#[cfg(feature = "mock")]
pub mod mock;
pub mod pain001;
pub mod pain002;
pub mod settings;
pub mod xml;

pub use adapter::{BankAdapter, BankConfig};
pub use error::BankError;
pub use pain001::{AccountId, DebtorAccount, Pain001File, Pain001Options, Pain001Version};
