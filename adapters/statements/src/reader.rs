//! One entry point over the formats: pick the reader from what the uploader declared.

use crate::camt::CamtReader;
use crate::csv_profile::CsvProfile;
use crate::csv_reader::CsvReader;
use crate::error::ParseError;
use crate::model::{Statement, StatementItem};
use std::io::BufRead;

/// What the uploader says the file is.
#[expect(
    clippy::large_enum_variant,
    reason = "one value per upload; size does not matter"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputFormat {
    /// camt.053 or camt.054; the exact message and version come from the document's namespace.
    Camt,
    /// CSV read through this profile.
    Csv(CsvProfile),
}

/// A streaming statement reader over any supported format.
#[expect(
    clippy::large_enum_variant,
    reason = "one reader per upload, never moved in a loop"
)]
pub enum StatementReader<R: BufRead> {
    Camt(CamtReader<R>),
    Csv(CsvReader<R>),
}

impl<R: BufRead> StatementReader<R> {
    /// Opens `reader` as `format`. For CSV this reads the header row and fails at once when a
    /// column the profile needs is missing; camt problems show up on the first `next()`.
    pub fn open(reader: R, format: InputFormat) -> Result<Self, ParseError> {
        match format {
            InputFormat::Camt => Ok(StatementReader::Camt(CamtReader::new(reader))),
            InputFormat::Csv(profile) => Ok(StatementReader::Csv(CsvReader::new(reader, profile)?)),
        }
    }

    pub fn into_inner(self) -> R {
        match self {
            StatementReader::Camt(r) => r.into_inner(),
            StatementReader::Csv(r) => r.into_inner(),
        }
    }
}

impl<R: BufRead> Iterator for StatementReader<R> {
    type Item = Result<StatementItem, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            StatementReader::Camt(r) => r.next(),
            StatementReader::Csv(r) => r.next(),
        }
    }
}

/// Reads a whole (small) file into statements, stopping at the first error.
/// Large files should be consumed through the iterator instead.
pub fn read_all<R: BufRead>(reader: R, format: InputFormat) -> Result<Vec<Statement>, ParseError> {
    let mut out: Vec<Statement> = Vec::new();
    for item in StatementReader::open(reader, format)? {
        match item? {
            StatementItem::Header(h) => out.push(Statement {
                header: *h,
                lines: Vec::new(),
            }),
            StatementItem::Line(l) => {
                if let Some(s) = out.last_mut() {
                    s.lines.push(*l);
                }
            }
        }
    }
    Ok(out)
}
