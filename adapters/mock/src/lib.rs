//! The sandbox's generic mock rail: a small mobile-money-like rail with its own HTTP API
//! (`server`), and the adapter that talks to it (`adapter`). The other rails' mocks follow
//! its shape; see this crate's README for the API and the scenario table.

pub mod adapter;
pub mod server;
pub mod settings;
pub mod signature;
pub mod wire;

pub use adapter::{
    MockAdapterConfig, MockRailAdapter, BATCH_CALLBACK_PATH, CALLBACK_PATH, MAX_BATCH_LINES,
};
pub use server::{serve_forever, spawn, CallbackRecord, DeliveryResult, MockRail, MockRailConfig};
pub use signature::{sign, signature_hex, EVENT_ID_HEADER, SIGNATURE_HEADER};
pub use wire::{Faults, PayoutCount};
