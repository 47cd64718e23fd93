//! Notifications to the core (DESIGN §7): events written to an outbox in the transaction of
//! the change they announce, served as a feed (`GET /v1/events`) and pushed to each of the
//! client's webhook endpoints as durable, signed, retried deliveries.
//!
//! Order: one payment's events reach an endpoint in the order they happened; a delivery waits
//! while an earlier one for the same payment is still being retried (an abandoned one no
//! longer holds the rest back).

pub mod deliver;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod openimis;
pub mod signature;

pub use deliver::Sender;
pub use events::{emit, payroll_completed, EventType, NewEvent};
