//! Streaming reader for CSV statements through a [`CsvProfile`].
//!
//! One `csv::StringRecord` is reused for every row, so memory stays flat however long the file.

use crate::amount::{parse_signed, NumberFormat};
use crate::csv_profile::{CsvProfile, CurrencySource, SignConvention};
use crate::error::{quote, ParseError, ParseErrorKind};
use crate::model::{
    Counterparty, Direction, EntryStatus, Location, StatementHeader, StatementItem, StatementLine,
};
use chrono::{NaiveDate, NaiveDateTime};
use railgate_rail::{Currency, Money};
use std::io::Read;

/// Column positions resolved from the header row.
#[derive(Debug)]
struct Positions {
    booking_date: usize,
    value_date: Option<usize>,
    amount: usize,
    currency: Option<usize>,
    direction: Option<usize>,
    reference: Option<usize>,
    counterparty: Option<usize>,
    rail_transaction_id: Option<usize>,
    receipt: Option<usize>,
    fee: Option<usize>,
    remittance: Option<usize>,
    status: Option<usize>,
}

/// Yields a synthetic [`StatementItem::Header`] first, then one line per data row.
///
/// A row that cannot be understood yields an `Err` and reading goes on; an unreadable file
/// (I/O error, a profile column missing from the header) yields a fatal `Err`, then `None`.
pub struct CsvReader<R: Read> {
    csv: csv::Reader<R>,
    profile: CsvProfile,
    pos: Positions,
    record: csv::StringRecord,
    header: Option<StatementHeader>,
    rows: u64,
    line_no: u64,
    done: bool,
}

impl<R: Read> CsvReader<R> {
    /// Reads the header row and checks that every column the profile names is there.
    pub fn new(reader: R, profile: CsvProfile) -> Result<Self, ParseError> {
        let delimiter = u8::try_from(u32::from(profile.delimiter)).map_err(|_| {
            ParseError::new(
                Location::default(),
                "delimiter",
                ParseErrorKind::Profile("the delimiter must be one ASCII character".into()),
            )
        })?;
        let mut csv = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let headers = csv
            .headers()
            .map_err(|e| {
                ParseError::new(
                    Location {
                        section: 1,
                        ..Location::default()
                    },
                    "header",
                    ParseErrorKind::Csv(e.to_string()),
                )
            })?
            .clone();
        let find = |name: &str| -> Result<usize, ParseError> {
            headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| {
                    ParseError::new(
                        Location {
                            section: 1,
                            source_line: 1,
                            ..Location::default()
                        },
                        name,
                        ParseErrorKind::Profile(format!(
                            "profile '{}' needs column '{}'",
                            profile.name,
                            quote(name)
                        )),
                    )
                })
        };
        let opt = |name: &Option<String>| name.as_deref().map(find).transpose();
        let c = &profile.columns;
        let pos = Positions {
            booking_date: find(&c.booking_date)?,
            value_date: opt(&c.value_date)?,
            amount: find(&c.amount)?,
            currency: match &profile.currency {
                CurrencySource::Column(col) => Some(find(col)?),
                CurrencySource::Fixed(_) => None,
            },
            direction: match &profile.sign {
                SignConvention::DirectionColumn { column, .. } => Some(find(column)?),
                SignConvention::SignedAmount { .. } => None,
            },
            reference: opt(&c.reference)?,
            counterparty: opt(&c.counterparty)?,
            rail_transaction_id: opt(&c.rail_transaction_id)?,
            receipt: opt(&c.receipt)?,
            fee: opt(&c.fee)?,
            remittance: opt(&c.remittance)?,
            status: profile
                .status
                .as_ref()
                .map(|s| find(&s.column))
                .transpose()?,
        };
        let fixed = match profile.currency {
            CurrencySource::Fixed(c) => Some(c),
            CurrencySource::Column(_) => None,
        };
        let header = StatementHeader::csv(&profile.name, fixed);
        Ok(CsvReader {
            csv,
            profile,
            pos,
            record: csv::StringRecord::new(),
            header: Some(header),
            rows: 0,
            line_no: 0,
            done: false,
        })
    }

    /// Gives back the underlying reader (to finish a [`crate::HashingReader`], for instance).
    pub fn into_inner(self) -> R {
        self.csv.into_inner()
    }

    fn field(&self, idx: Option<usize>) -> Option<&str> {
        idx.and_then(|i| self.record.get(i))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    fn text(&self, idx: Option<usize>) -> Option<String> {
        self.field(idx)
            .filter(|v| !v.eq_ignore_ascii_case("NOTPROVIDED"))
            .map(str::to_owned)
    }

    fn line(&self, loc: Location) -> Result<StatementLine, ParseError> {
        let p = &self.profile;
        let c = &p.columns;
        let err = |field: &str, kind| ParseError::new(loc, field, kind);
        let currency = match (&p.currency, self.pos.currency) {
            (CurrencySource::Fixed(c), _) => *c,
            (CurrencySource::Column(col), idx) => {
                let v = self
                    .field(idx)
                    .ok_or_else(|| err(col, ParseErrorKind::Missing))?;
                v.parse::<Currency>()
                    .map_err(|_| err(col, ParseErrorKind::Currency(quote(v))))?
            }
        };
        let format = NumberFormat {
            decimal_separator: p.decimal_separator,
            thousands_separator: p.thousands_separator,
        };
        let amount_text = self
            .field(Some(self.pos.amount))
            .ok_or_else(|| err(&c.amount, ParseErrorKind::Missing))?;
        let amount_err = |reason| {
            err(
                &c.amount,
                ParseErrorKind::Amount {
                    value: quote(amount_text),
                    reason,
                },
            )
        };
        let (minor, negative) = parse_signed(amount_text, currency, format).map_err(amount_err)?;
        let amount = Money::from_minor(minor, currency).map_err(amount_err)?;
        let direction = match &p.sign {
            SignConvention::DirectionColumn {
                column,
                credit,
                debit,
            } => {
                let v = self
                    .field(self.pos.direction)
                    .ok_or_else(|| err(column, ParseErrorKind::Missing))?;
                let stated = if credit.iter().any(|w| w.eq_ignore_ascii_case(v)) {
                    Direction::Credit
                } else if debit.iter().any(|w| w.eq_ignore_ascii_case(v)) {
                    Direction::Debit
                } else {
                    return Err(err(column, ParseErrorKind::Direction(quote(v))));
                };
                if negative {
                    flip(stated)
                } else {
                    stated
                }
            }
            SignConvention::SignedAmount { negative_means } => {
                if negative {
                    *negative_means
                } else {
                    flip(*negative_means)
                }
            }
        };
        let date = |idx: Option<usize>, name: &str| -> Result<Option<NaiveDate>, ParseError> {
            match self.field(idx) {
                None => Ok(None),
                Some(v) => parse_date(v, &p.date_format)
                    .map(Some)
                    .ok_or_else(|| err(name, ParseErrorKind::Date(quote(v)))),
            }
        };
        let booking_date = date(Some(self.pos.booking_date), &c.booking_date)?
            .ok_or_else(|| err(&c.booking_date, ParseErrorKind::Missing))?;
        let value_date = date(
            self.pos.value_date,
            c.value_date.as_deref().unwrap_or("value_date"),
        )?;
        let fee = match self.field(self.pos.fee) {
            None => None,
            Some(v) => {
                let name = c.fee.as_deref().unwrap_or("fee");
                // Operators print charges with either sign; a charge is always money out.
                let (minor, _) = parse_signed(v, currency, format).map_err(|reason| {
                    err(
                        name,
                        ParseErrorKind::Amount {
                            value: quote(v),
                            reason,
                        },
                    )
                })?;
                if minor == 0 {
                    None
                } else {
                    Some(Money::from_minor(minor, currency).map_err(|reason| {
                        err(
                            name,
                            ParseErrorKind::Amount {
                                value: quote(v),
                                reason,
                            },
                        )
                    })?)
                }
            }
        };
        let status = match &p.status {
            None => EntryStatus::Booked,
            Some(f) => {
                let v = self.field(self.pos.status).unwrap_or("");
                if f.booked.iter().any(|b| b.eq_ignore_ascii_case(v)) {
                    EntryStatus::Booked
                } else if f.pending.iter().any(|b| b.eq_ignore_ascii_case(v)) {
                    EntryStatus::Pending
                } else {
                    EntryStatus::Info
                }
            }
        };
        let counterparty = self.field(self.pos.counterparty).map(|v| {
            match c
                .counterparty_separator
                .as_deref()
                .and_then(|sep| v.split_once(sep))
            {
                Some((account, name)) => Counterparty {
                    account: Some(account.trim().to_owned()).filter(|s| !s.is_empty()),
                    name: Some(name.trim().to_owned()).filter(|s| !s.is_empty()),
                },
                None => Counterparty {
                    account: Some(v.to_owned()),
                    name: None,
                },
            }
        });
        Ok(StatementLine {
            line_no: self.line_no,
            status,
            booking_date: Some(booking_date),
            value_date,
            amount,
            instructed_amount: None,
            direction,
            reference: self.text(self.pos.reference),
            rail_transaction_id: self.text(self.pos.rail_transaction_id),
            receipt: self.text(self.pos.receipt),
            creditor_reference: None,
            remittance: self.text(self.pos.remittance),
            bank_entry_ref: None,
            counterparty,
            fee,
            bank_transaction_code: None,
            batch: None,
            return_info: None,
            location: loc,
        })
    }
}

fn flip(d: Direction) -> Direction {
    match d {
        Direction::Credit => Direction::Debit,
        Direction::Debit => Direction::Credit,
    }
}

fn parse_date(v: &str, format: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v, format).ok().or_else(|| {
        NaiveDateTime::parse_from_str(v, format)
            .ok()
            .map(|dt| dt.date())
    })
}

impl<R: Read> Iterator for CsvReader<R> {
    type Item = Result<StatementItem, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(h) = self.header.take() {
            return Some(Ok(StatementItem::Header(Box::new(h))));
        }
        if self.done {
            return None;
        }
        let mut record = std::mem::take(&mut self.record);
        let read = self.csv.read_record(&mut record);
        self.record = record;
        self.rows = self.rows.saturating_add(1);
        let p = self.record.position();
        let loc = Location {
            section: 1,
            entry: self.rows,
            source_line: p.map_or(0, |p| p.line()),
            byte_offset: p.map_or(0, |p| p.byte()),
        };
        match read {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                // Every data record has a number, readable or not, as camt entries do.
                self.line_no = self.rows;
                if let Some(i) = self
                    .record
                    .iter()
                    .position(railgate_rail::json::has_forbidden_control)
                {
                    self.done = true;
                    let column = self
                        .csv
                        .headers()
                        .ok()
                        .and_then(|h| h.get(i))
                        .map_or_else(|| format!("column {}", i.saturating_add(1)), quote);
                    return Some(Err(ParseError::new(
                        loc,
                        column,
                        ParseErrorKind::ControlCharacter,
                    )));
                }
                Some(self.line(loc).map(|l| StatementItem::Line(Box::new(l))))
            }
            Err(e) => {
                let fatal = matches!(e.kind(), csv::ErrorKind::Io(_));
                if fatal {
                    self.done = true;
                }
                let kind = if fatal {
                    ParseErrorKind::Io(e.to_string())
                } else {
                    ParseErrorKind::Csv(e.to_string())
                };
                Some(Err(ParseError::new(loc, "record", kind)))
            }
        }
    }
}
