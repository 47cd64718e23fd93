//! The domain: payments, money and the state machine. Pure: no I/O here.

pub mod machine;
pub mod payment;
pub mod state;

pub use payment::*;
pub use railgate_rail::{
    CollectionMode, Currency, Direction, Failure, FailureCode, Money, MoneyError, Party,
    PartyError, PartyIdType,
};
pub use state::{Event, State};
