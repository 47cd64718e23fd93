//! Statements from banks and rails, read in our terms, and the pure reconciliation matcher.
//!
//! - [`StatementReader`] streams camt.053 / camt.054 (ISO 20022) and CSV exports (through a
//!   [`CsvProfile`]) into [`StatementItem`]s: one header per statement, then its lines.
//! - [`ContentHash`] / [`HashingReader`] identify an upload so a re-upload is recognised.
//! - [`matching`] pairs statement lines with what we instructed and names every difference
//!   as a [`matching::Break`]. It does no I/O: the gateway feeds it and stores the result.

mod amount;
mod balance;
mod camt;
mod csv_profile;
mod csv_reader;
mod error;
mod hash;
pub mod matching;
mod model;
mod reader;

pub use amount::{parse_signed, parse_unsigned, NumberFormat};
pub use balance::{BalanceMismatch, Totals};
pub use camt::CamtReader;
pub use csv_profile::{
    CsvColumns, CsvProfile, CurrencySource, SignConvention, StatusFilter, MOBILE_MONEY_PROFILE,
    MOCK_RAIL_PROFILE, RAIL_EXPORT_PROFILE,
};
pub use csv_reader::CsvReader;
pub use error::{ParseError, ParseErrorKind};
pub use hash::{ContentHash, HashingReader};
pub use model::*;
pub use reader::{read_all, InputFormat, StatementReader};
