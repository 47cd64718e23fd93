//! Column-mapping profiles: how a CSV statement says date, amount, direction and references.
//!
//! Profiles are data (serde), so an operator's new export format is a config entry, not code.
//! Two are built in: the sandbox mock rails' export and a typical mobile-money operator export.

use crate::model::Direction;
use railgate_rail::Currency;
use serde::{Deserialize, Serialize};

/// Where a CSV statement's currency comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurrencySource {
    /// A column holding the ISO 4217 code on each row.
    Column(String),
    /// One currency for the whole file (wallet statements often print none).
    Fixed(Currency),
}

/// How a row says which way the money went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignConvention {
    /// A column holding a word for the direction; values are compared case-insensitively.
    /// A negative amount on such a row flips the direction.
    DirectionColumn {
        column: String,
        credit: Vec<String>,
        debit: Vec<String>,
    },
    /// One signed amount column: negative means `negative_means`, positive the other way.
    SignedAmount { negative_means: Direction },
}

/// Which rows are final; rows with another status are read as [`crate::EntryStatus::Info`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFilter {
    pub column: String,
    pub booked: Vec<String>,
    #[serde(default)]
    pub pending: Vec<String>,
}

/// Header names of the columns a profile reads (matched case-insensitively, trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvColumns {
    pub booking_date: String,
    #[serde(default)]
    pub value_date: Option<String>,
    pub amount: String,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub counterparty: Option<String>,
    /// Splits a combined "account - name" counterparty column at the first occurrence.
    #[serde(default)]
    pub counterparty_separator: Option<String>,
    #[serde(default)]
    pub rail_transaction_id: Option<String>,
    #[serde(default)]
    pub receipt: Option<String>,
    #[serde(default)]
    pub fee: Option<String>,
    #[serde(default)]
    pub remittance: Option<String>,
}

/// A named column mapping for CSV statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvProfile {
    pub name: String,
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    pub columns: CsvColumns,
    pub currency: CurrencySource,
    /// chrono format of the date columns (`%Y-%m-%d`, `%d/%m/%Y %H:%M:%S`, …); a time part is
    /// read and dropped.
    pub date_format: String,
    #[serde(default = "default_decimal")]
    pub decimal_separator: char,
    #[serde(default)]
    pub thousands_separator: Option<char>,
    pub sign: SignConvention,
    #[serde(default)]
    pub status: Option<StatusFilter>,
}

fn default_delimiter() -> char {
    ','
}
fn default_decimal() -> char {
    '.'
}

/// Name of the sandbox mock rails' CSV export profile.
pub const MOCK_RAIL_PROFILE: &str = "mock-rail";
/// Name of the mobile-money operator export profile.
pub const MOBILE_MONEY_PROFILE: &str = "mobile-money-operator";
/// Name of the one-date export the family mocks (MMAPI, M-Pesa, Mojaloop, Mifos, bank) serve.
pub const RAIL_EXPORT_PROFILE: &str = "rail-export";

impl CsvProfile {
    /// The mock rails' `GET /_control/statement?format=csv`:
    /// `booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee`
    /// with ISO dates, '.' decimals and `CREDIT`/`DEBIT` seen from the scheme's account.
    pub fn mock_rail() -> CsvProfile {
        CsvProfile {
            name: MOCK_RAIL_PROFILE.to_owned(),
            delimiter: ',',
            columns: CsvColumns {
                booking_date: "booking_date".into(),
                value_date: Some("value_date".into()),
                amount: "amount".into(),
                reference: Some("reference".into()),
                counterparty: Some("counterparty".into()),
                counterparty_separator: None,
                rail_transaction_id: Some("rail_transaction_id".into()),
                receipt: None,
                fee: Some("fee".into()),
                remittance: None,
            },
            currency: CurrencySource::Column("currency".into()),
            date_format: "%Y-%m-%d".into(),
            decimal_separator: '.',
            thousands_separator: None,
            sign: SignConvention::DirectionColumn {
                column: "direction".into(),
                credit: vec!["CREDIT".into()],
                debit: vec!["DEBIT".into()],
            },
            status: None,
        }
    }

    /// A wallet operator's organisation statement, in the shape M-Pesa-style portals export:
    /// `Receipt No.,Completion Time,Details,Transaction Status,Amount,Charge,Other Party Info,Account Reference,Conversation ID`
    /// with day-first date-times, thousands commas, a signed amount (negative = paid out),
    /// "MSISDN - NAME" in one column and no currency column (KES; clone the profile and set
    /// `currency` for another operator).
    pub fn mobile_money_operator() -> CsvProfile {
        CsvProfile {
            name: MOBILE_MONEY_PROFILE.to_owned(),
            delimiter: ',',
            columns: CsvColumns {
                booking_date: "Completion Time".into(),
                value_date: None,
                amount: "Amount".into(),
                reference: Some("Account Reference".into()),
                counterparty: Some("Other Party Info".into()),
                counterparty_separator: Some(" - ".into()),
                rail_transaction_id: Some("Conversation ID".into()),
                receipt: Some("Receipt No.".into()),
                fee: Some("Charge".into()),
                remittance: Some("Details".into()),
            },
            currency: CurrencySource::Fixed(Currency::Kes),
            date_format: "%d-%m-%Y %H:%M:%S".into(),
            decimal_separator: '.',
            thousands_separator: Some(','),
            sign: SignConvention::SignedAmount {
                negative_means: Direction::Debit,
            },
            status: Some(StatusFilter {
                column: "Transaction Status".into(),
                booked: vec!["Completed".into()],
                pending: vec!["Pending".into()],
            }),
        }
    }

    /// The statement export of the rail-family mocks (MMAPI, M-Pesa, Mojaloop, Mifos, bank):
    /// `date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee`, one ISO
    /// date, the direction as a word (`debit`/`disbursement` out, `credit`/`collection`/
    /// `reversal` in, any case).
    pub fn rail_export() -> CsvProfile {
        CsvProfile {
            name: RAIL_EXPORT_PROFILE.to_owned(),
            delimiter: ',',
            columns: CsvColumns {
                booking_date: "date".into(),
                value_date: None,
                amount: "amount".into(),
                reference: Some("reference".into()),
                counterparty: Some("counterparty".into()),
                counterparty_separator: None,
                rail_transaction_id: Some("rail_transaction_id".into()),
                receipt: None,
                fee: Some("fee".into()),
                remittance: None,
            },
            currency: CurrencySource::Column("currency".into()),
            date_format: "%Y-%m-%d".into(),
            decimal_separator: '.',
            thousands_separator: None,
            sign: SignConvention::DirectionColumn {
                column: "direction".into(),
                credit: vec!["CREDIT".into(), "COLLECTION".into(), "REVERSAL".into()],
                debit: vec!["DEBIT".into(), "DISBURSEMENT".into()],
            },
            status: None,
        }
    }

    /// The built-in profiles, by name.
    pub fn builtin(name: &str) -> Option<CsvProfile> {
        match name {
            MOCK_RAIL_PROFILE => Some(CsvProfile::mock_rail()),
            MOBILE_MONEY_PROFILE => Some(CsvProfile::mobile_money_operator()),
            RAIL_EXPORT_PROFILE => Some(CsvProfile::rail_export()),
            _ => None,
        }
    }
}
