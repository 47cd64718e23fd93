//! Railgate: a payment-integration gateway between an insurance core and national payment rails.
//!
//! The parts, in the order a payment meets them: `api` (HTTP in and out) validates into
//! `domain` types and stores through `store`; `rails` routes to an adapter; `dispatch` drives
//! each payment to its rail durably; `callbacks` takes what rails say back; the `engine` applies
//! it, posting to the `ledger` and telling the core through `notify`. `sandbox` runs all of it
//! against mock rails on loopback.

pub mod adapters;
pub mod api;
pub mod app;
pub mod bank_watch;
pub mod batches;
pub mod bulk;
pub mod callbacks;
pub mod charts;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod engine;
pub mod exceptions;
pub mod ledger;
pub mod notify;
pub mod payroll_cli;
pub mod payrolls;
pub mod rails;
pub mod recon;
pub mod reversals;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod serve;
pub mod store;
pub mod telemetry;
