//! The normalised statement: what every format (camt.053, camt.054, CSV profiles) is turned into.
//!
//! A statement can hold a million lines, so the parsers hand out one [`StatementItem`] at a
//! time; [`Statement`] is the collected form for small files and tests.

use chrono::NaiveDate;
use railgate_rail::{mask, Currency, Money};
use std::fmt;

/// Which way money moved on the statement's account.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Money came in (camt `CRDT`): collections, returns of our disbursements.
    Credit,
    /// Money went out (camt `DBIT`): disbursements, fees.
    Debit,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Credit => "credit",
            Direction::Debit => "debit",
        }
    }
}

/// The format a statement was read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// `camt.053.001.NN` (bank-to-customer statement); `version` is NN (2 and 8 are tested).
    Camt053 { version: u8 },
    /// `camt.054.001.NN` (debit/credit notification).
    Camt054 { version: u8 },
    /// A CSV file read through the named column-mapping profile.
    Csv { profile: String },
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceFormat::Camt053 { version } => write!(f, "camt.053.001.{version:02}"),
            SourceFormat::Camt054 { version } => write!(f, "camt.054.001.{version:02}"),
            SourceFormat::Csv { profile } => write!(f, "csv:{profile}"),
        }
    }
}

/// Whether an entry is final. Only booked entries prove that money moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryStatus {
    Booked,
    Pending,
    /// Informational only (camt `INFO`, or a CSV row whose status column is not a booked value).
    Info,
}

/// camt `CpyDplctInd`: a copy or duplicate of a statement already delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyDuplicate {
    Copy,
    Duplicate,
    CopyDuplicate,
}

/// Inclusive period a statement covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// A balance as printed on a statement: may be negative (an overdrawn account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Balance {
    /// Signed minor units: credit balances are positive, debit balances negative.
    pub minor: i64,
    pub currency: Currency,
    pub date: Option<NaiveDate>,
}

/// Where a line came from in the uploaded file, for the finance officer and for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Location {
    /// 1-based index of the statement (`Stmt`/`Ntfctn`) inside the file; 1 for CSV.
    pub section: u32,
    /// 1-based index of the entry (`Ntry`) in the whole file, or of the CSV record (header excluded).
    pub entry: u64,
    /// 1-based text line in the file where the entry (or record) starts.
    pub source_line: u64,
    /// Byte offset in the file where the entry (or record) starts.
    pub byte_offset: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} (line {}, byte {})",
            self.entry, self.source_line, self.byte_offset
        )
    }
}

/// The other side of a line. Names and account numbers are personal data: `Debug` masks them.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Counterparty {
    pub name: Option<String>,
    /// IBAN, account number, MSISDN or wallet id as the statement prints it.
    pub account: Option<String>,
}

impl Counterparty {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.account.is_none()
    }

    /// The account reduced to upper-case letters and digits, so that "+255 712 345 600" and
    /// "255712345600" compare equal.
    pub fn account_key(&self) -> Option<String> {
        self.account
            .as_deref()
            .map(normalise_key)
            .filter(|k| !k.is_empty())
    }

    /// The name reduced the same way, for statements that carry only a name.
    pub fn name_key(&self) -> Option<String> {
        self.name
            .as_deref()
            .map(normalise_key)
            .filter(|k| !k.is_empty())
    }
}

impl fmt::Debug for Counterparty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counterparty")
            .field("name", &self.name.as_deref().map(mask))
            .field("account", &self.account.as_deref().map(mask))
            .finish()
    }
}

/// Upper-case letters and digits only: the comparison key for accounts and names.
pub fn normalise_key(value: &str) -> String {
    value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A return of one of our payments (camt `RtrInf`, bank transaction code `RRTN`/`RPCR`) or a
/// bank's own reversal of a booking (`RvslInd=true`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReturnInfo {
    /// ISO reason code (`AC01`, `AC04`, `MD07`, …) when the bank gave one.
    pub reason_code: Option<String>,
    /// The end-to-end id of the payment that came back.
    pub original_end_to_end_id: Option<String>,
    /// `true` for `RvslInd=true`: the bank cancelling its own booking, not a returned payment.
    pub bank_reversal: bool,
}

/// One transaction inside a batch booking (camt `NtryDtls/TxDtls` under a `Btch`, or an entry
/// with several `TxDtls`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchTransaction {
    pub end_to_end_id: Option<String>,
    pub rail_transaction_id: Option<String>,
    pub amount: Option<Money>,
    pub counterparty: Option<Counterparty>,
    pub creditor_reference: Option<String>,
}

/// What a statement says about a batch booking: one entry that covers many payments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BatchInfo {
    pub message_id: Option<String>,
    /// Our `PmtInfId`: the key that ties the booking to the payments we sent together.
    pub payment_info_id: Option<String>,
    /// `Btch/NbOfTxs` when given.
    pub number_of_transactions: Option<u32>,
    /// `Btch/TtlAmt` when given.
    pub total: Option<Money>,
    /// The transaction details the bank sent with the entry; may be fewer than `NbOfTxs`.
    pub transactions: Vec<BatchTransaction>,
}

/// One line of a statement in our terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatementLine {
    /// 1-based running number of the line within the uploaded file.
    pub line_no: u64,
    pub status: EntryStatus,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    /// The amount booked on the account (always positive; the sign is `direction`).
    pub amount: Money,
    /// The amount that was instructed when the bank shows it apart from the booked amount
    /// (camt `AmtDtls/InstdAmt`): fees netted out of a booking make the two differ.
    pub instructed_amount: Option<Money>,
    pub direction: Direction,
    /// Our end-to-end id (camt `EndToEndId`, CSV reference column); `None` for `NOTPROVIDED`.
    pub reference: Option<String>,
    /// The rail's own id for the transaction (camt `TxId`/`AcctSvcrRef`, CSV column).
    pub rail_transaction_id: Option<String>,
    /// A receipt number (mobile money).
    pub receipt: Option<String>,
    /// Structured creditor reference (camt `Strd/CdtrRefInf/Ref`): the payment reference of an
    /// expected collection when the payer used it.
    pub creditor_reference: Option<String>,
    /// Unstructured remittance text (camt `Ustrd`, `AddtlNtryInf`).
    pub remittance: Option<String>,
    /// The bank's id for the entry (`Ntry/AcctSvcrRef`): what makes an entry unique at the bank.
    pub bank_entry_ref: Option<String>,
    pub counterparty: Option<Counterparty>,
    /// Charges the rail took, in the line's currency.
    pub fee: Option<Money>,
    /// Bank transaction code as `Domain/Family/SubFamily` (`PMNT/ICDT/ESCT`), when given.
    pub bank_transaction_code: Option<String>,
    pub batch: Option<Box<BatchInfo>>,
    pub return_info: Option<Box<ReturnInfo>>,
    pub location: Location,
}

impl StatementLine {
    /// The date used for matching: value date, else booking date.
    pub fn date(&self) -> Option<NaiveDate> {
        self.value_date.or(self.booking_date)
    }

    /// The amount to compare with what we instructed: the instructed amount when the statement
    /// shows one, else the booked amount.
    pub fn matching_amount(&self) -> Money {
        self.instructed_amount.unwrap_or(self.amount)
    }

    pub fn is_return(&self) -> bool {
        self.return_info.is_some()
    }

    pub fn return_reason(&self) -> Option<&str> {
        self.return_info
            .as_ref()
            .and_then(|r| r.reason_code.as_deref())
    }

    pub fn original_end_to_end_id(&self) -> Option<&str> {
        self.return_info
            .as_ref()
            .and_then(|r| r.original_end_to_end_id.as_deref())
    }

    pub fn currency(&self) -> Currency {
        self.amount.currency()
    }
}

/// What a statement says about itself, before its lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatementHeader {
    pub source_format: SourceFormat,
    /// 1-based index of the statement inside the file (camt files may hold several).
    pub section: u32,
    /// `GrpHdr/MsgId` of the file.
    pub message_id: Option<String>,
    /// `Stmt/Id` / `Ntfctn/Id`.
    pub statement_id: Option<String>,
    pub electronic_sequence: Option<u64>,
    pub legal_sequence: Option<u64>,
    pub created_at: Option<String>,
    pub copy_duplicate: Option<CopyDuplicate>,
    /// The account the statement is for (IBAN or other id). Personal data: never log it clear.
    pub account: Option<String>,
    pub currency: Option<Currency>,
    pub period: Option<Period>,
    pub opening_balance: Option<Balance>,
    pub closing_balance: Option<Balance>,
}

impl StatementHeader {
    /// What identifies a statement at the bank whatever its bytes: account, statement id and
    /// sequence number. A re-delivery (`CpyDplctInd`, a new `CreDtTm`) has a new content hash
    /// but the same identity. `None` when the file does not say (CSV exports).
    pub fn identity(&self) -> Option<String> {
        let id = self.statement_id.as_deref()?;
        let seq = self.electronic_sequence.or(self.legal_sequence);
        Some(format!(
            "{}|{}|{}|{}",
            self.source_format,
            self.account.as_deref().unwrap_or(""),
            id,
            seq.map(|n| n.to_string()).unwrap_or_default()
        ))
    }

    /// The header of a CSV export, which says nothing about itself.
    pub fn csv(profile: &str, currency: Option<Currency>) -> Self {
        StatementHeader {
            source_format: SourceFormat::Csv {
                profile: profile.to_owned(),
            },
            section: 1,
            message_id: None,
            statement_id: None,
            electronic_sequence: None,
            legal_sequence: None,
            created_at: None,
            copy_duplicate: None,
            account: None,
            currency,
            period: None,
            opening_balance: None,
            closing_balance: None,
        }
    }
}

/// What a streaming parser hands out: a header when a statement starts, then its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementItem {
    Header(Box<StatementHeader>),
    Line(Box<StatementLine>),
}

/// A statement with its lines in memory: convenient for small files and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub header: StatementHeader,
    pub lines: Vec<StatementLine>,
}

impl Statement {
    pub fn account(&self) -> Option<&str> {
        self.header.account.as_deref()
    }
    pub fn currency(&self) -> Option<Currency> {
        self.header.currency
    }
    pub fn period(&self) -> Option<Period> {
        self.header.period
    }
    pub fn source_format(&self) -> &SourceFormat {
        &self.header.source_format
    }
}
