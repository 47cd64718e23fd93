//! The one error type of the parsers: where (entry, line) and which field went wrong.

use crate::model::Location;
use railgate_rail::{Currency, MoneyError};

/// A statement that cannot be read, or one line of it that cannot.
///
/// Errors with `fatal() == false` concern one entry only; the parser goes on with the next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: field {field}: {kind}")]
pub struct ParseError {
    pub location: Location,
    /// The element path (camt, e.g. `Ntry/Amt`) or the CSV column name.
    pub field: String,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("the XML is not well-formed: {0}")]
    Xml(String),
    #[error("the input cannot be read: {0}")]
    Io(String),
    #[error("the CSV cannot be read: {0}")]
    Csv(String),
    #[error("unsupported statement format: {0}")]
    UnsupportedFormat(String),
    #[error("the profile is unusable for this file: {0}")]
    Profile(String),
    #[error("contains a control character")]
    ControlCharacter,
    #[error("missing")]
    Missing,
    #[error("invalid amount '{value}': {reason}")]
    Amount { value: String, reason: MoneyError },
    #[error("unknown currency '{0}'")]
    Currency(String),
    #[error("invalid date '{0}'")]
    Date(String),
    #[error("invalid credit/debit indicator '{0}'")]
    Direction(String),
    #[error("invalid number '{0}'")]
    Number(String),
    #[error("currency {found} differs from the entry's {expected}")]
    CurrencyMismatch { expected: Currency, found: Currency },
}

impl ParseError {
    pub fn new(location: Location, field: impl Into<String>, kind: ParseErrorKind) -> Self {
        ParseError {
            location,
            field: field.into(),
            kind,
        }
    }

    /// A fatal error ends the stream: the file itself is broken, not one entry. A control
    /// character (other than tab and line breaks) anywhere refuses the whole file: it is not
    /// a statement a bank or a rail would send, and it could not be stored as text.
    pub fn fatal(&self) -> bool {
        matches!(
            self.kind,
            ParseErrorKind::Xml(_)
                | ParseErrorKind::Io(_)
                | ParseErrorKind::ControlCharacter
                | ParseErrorKind::UnsupportedFormat(_)
                | ParseErrorKind::Profile(_)
        )
    }
}

/// Shortens a value quoted in an error, so a broken file cannot flood the error report.
pub(crate) fn quote(value: &str) -> String {
    value.chars().take(40).collect()
}
