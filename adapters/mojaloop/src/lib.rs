//! Mojaloop rail: Railgate joins a Mojaloop scheme as the insurer's FSP and speaks FSPIOP v1.1
//! directly.
//!
//! - [`wire`]: the FSPIOP v1.1 bodies, headers, amounts, ids and error codes;
//! - [`ilp`]: ILP packets, conditions and fulfilments;
//! - [`jws`]: the `FSPIOP-Signature` header;
//! - [`adapter`]: the [`railgate_rail::RailAdapter`] for disbursements (payer FSP) and
//!   request-to-pay (payee FSP);
//! - [`callbacks`]: the hub's calls to us: routing, authentication, events, and the review of
//!   an event against its attempt;
//! - [`bulk`]: payrolls through `/bulkQuotes` and `/bulkTransfers` (the gateway's batch path);
//! - [`payee`]: what we answer when a payer FSP pays the scheme (inbound lookups, quotes,
//!   transfers) and the idempotency rule for inbound POSTs;
//! - [`settings`]: the rail's `[[rails]]` settings, unknown keys refused;
//! - `mock` (cargo feature `mock`): a mock hub for the sandbox and the tests.
//!
//! Errors: [`wire::WireError`] for bodies that do not parse or validate, [`ilp::IlpError`],
//! [`jws::JwsError`]; the adapter turns them into `RailError` (outbound) or `CallbackError`
//! (inbound), the only errors the gateway sees.

pub mod adapter;
pub mod bulk;
pub mod callbacks;
pub mod config;
pub mod ilp;
pub mod jws;
#[cfg(feature = "mock")]
pub mod mock;
pub mod payee;
pub mod settings;
pub mod state;
pub mod wire;

pub use adapter::MojaloopAdapter;
pub use config::{HubEndpoints, IlpSecret, JwsConfig, MojaloopConfig, OwnParty};
#[cfg(feature = "mock")]
pub use mock::{MockHub, MockHubConfig};
