//! Exact amounts of money: an integer count of minor units and an ISO 4217 currency.
//!
//! Parsed only from decimal strings; a value with more fraction digits than its currency
//! allows is an error, never a rounding.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The ISO 4217 currencies Railgate handles, with their minor-unit exponents.
///
/// A closed list on purpose: an exponent we do not know is an amount we cannot parse safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Currency {
    Tzs,
    Kes,
    Ugx,
    Rwf,
    Bdt,
    Npr,
    Gmd,
    Xaf,
    Xof,
    Cdf,
    Usd,
    Eur,
    Bhd,
    Etb,
    Mwk,
    Zmw,
    Ngn,
    Ghs,
    Bif,
    Mzn,
    Zar,
    Inr,
    Php,
}

impl Currency {
    pub const ALL: [Currency; 23] = [
        Currency::Tzs,
        Currency::Kes,
        Currency::Ugx,
        Currency::Rwf,
        Currency::Bdt,
        Currency::Npr,
        Currency::Gmd,
        Currency::Xaf,
        Currency::Xof,
        Currency::Cdf,
        Currency::Usd,
        Currency::Eur,
        Currency::Bhd,
        Currency::Etb,
        Currency::Mwk,
        Currency::Zmw,
        Currency::Ngn,
        Currency::Ghs,
        Currency::Bif,
        Currency::Mzn,
        Currency::Zar,
        Currency::Inr,
        Currency::Php,
    ];

    /// The alphabetic ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Tzs => "TZS",
            Currency::Kes => "KES",
            Currency::Ugx => "UGX",
            Currency::Rwf => "RWF",
            Currency::Bdt => "BDT",
            Currency::Npr => "NPR",
            Currency::Gmd => "GMD",
            Currency::Xaf => "XAF",
            Currency::Xof => "XOF",
            Currency::Cdf => "CDF",
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Bhd => "BHD",
            Currency::Etb => "ETB",
            Currency::Mwk => "MWK",
            Currency::Zmw => "ZMW",
            Currency::Ngn => "NGN",
            Currency::Ghs => "GHS",
            Currency::Bif => "BIF",
            Currency::Mzn => "MZN",
            Currency::Zar => "ZAR",
            Currency::Inr => "INR",
            Currency::Php => "PHP",
        }
    }

    /// Number of minor-unit digits (ISO 4217 "E" column).
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Ugx | Currency::Rwf | Currency::Xaf | Currency::Xof | Currency::Bif => 0,
            Currency::Bhd => 3,
            Currency::Tzs
            | Currency::Kes
            | Currency::Bdt
            | Currency::Npr
            | Currency::Gmd
            | Currency::Cdf
            | Currency::Usd
            | Currency::Eur
            | Currency::Etb
            | Currency::Mwk
            | Currency::Zmw
            | Currency::Ngn
            | Currency::Ghs
            | Currency::Mzn
            | Currency::Zar
            | Currency::Inr
            | Currency::Php => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .iter()
            .copied()
            .find(|c| c.code() == s)
            .ok_or_else(|| MoneyError::UnknownCurrency(s.chars().take(8).collect()))
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown or unsupported ISO 4217 currency '{0}'")]
    UnknownCurrency(String),
    #[error("amount must be a decimal string such as \"1500.50\" (digits, optional '.' and fraction digits)")]
    Syntax,
    #[error("{currency} allows at most {allowed} fraction digit(s); the amount has {found}")]
    TooManyFractionDigits {
        currency: Currency,
        allowed: u32,
        found: u32,
    },
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount is too large")]
    Overflow,
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
}

/// A strictly positive amount of money in one currency, held as minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// The largest amount we accept: 10^15 minor units keeps every sum of a million lines in i64.
const MAX_MINOR: i64 = 1_000_000_000_000_000;

impl Money {
    /// Builds an amount from minor units; zero, negative and absurdly large values are refused.
    pub fn from_minor(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive);
        }
        if minor > MAX_MINOR {
            return Err(MoneyError::Overflow);
        }
        Ok(Money { minor, currency })
    }

    /// Parses a decimal string ("1500.50") in the given currency, exactly.
    pub fn parse(value: &str, currency: Currency) -> Result<Self, MoneyError> {
        let minor = parse_minor(value, currency)?;
        Money::from_minor(minor, currency)
    }

    pub fn minor(self) -> i64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let minor = self.minor.checked_add(other.minor).ok_or(MoneyError::Overflow)?;
        Money::from_minor(minor, self.currency)
    }

    /// Subtracts, refusing a result that is not strictly positive.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let minor = self.minor.checked_sub(other.minor).ok_or(MoneyError::Overflow)?;
        Money::from_minor(minor, self.currency)
    }

    /// The amount as a decimal string with exactly the currency's fraction digits ("1500.50").
    pub fn to_decimal_string(self) -> String {
        format_minor(self.minor, self.currency)
    }

    /// The amount as a `rust_decimal::Decimal`, for wire formats that want one.
    pub fn to_decimal(self) -> rust_decimal::Decimal {
        rust_decimal::Decimal::new(self.minor, self.currency.exponent())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

/// Parses a non-negative decimal string into minor units of `currency`, exactly.
///
/// Written by hand rather than through `rust_decimal` so that the grammar is ours and strict:
/// no sign, no exponent, no spaces, no thousands separators, no leading '.', no trailing '.'.
pub fn parse_minor(value: &str, currency: Currency) -> Result<i64, MoneyError> {
    let (int_part, frac_part) = match value.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (value, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MoneyError::Syntax);
    }
    let frac = frac_part.unwrap_or("");
    if frac_part.is_some() && frac.is_empty() {
        return Err(MoneyError::Syntax);
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MoneyError::Syntax);
    }
    let allowed = currency.exponent();
    let found = u32::try_from(frac.len()).map_err(|_| MoneyError::Syntax)?;
    if found > allowed {
        return Err(MoneyError::TooManyFractionDigits {
            currency,
            allowed,
            found,
        });
    }
    let mut minor: i64 = 0;
    let padding = allowed.checked_sub(found).ok_or(MoneyError::Syntax)?;
    let digits = int_part.bytes().chain(frac.bytes());
    for d in digits {
        let digit = i64::from(d.checked_sub(b'0').ok_or(MoneyError::Syntax)?);
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(digit))
            .ok_or(MoneyError::Overflow)?;
    }
    for _ in 0..padding {
        minor = minor.checked_mul(10).ok_or(MoneyError::Overflow)?;
    }
    Ok(minor)
}

/// Formats minor units as a decimal string with exactly the currency's fraction digits.
/// Negative values (ledger balances) carry a leading '-'.
pub fn format_minor(minor: i64, currency: Currency) -> String {
    let exp = currency.exponent();
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if exp == 0 {
        return format!("{sign}{abs}");
    }
    let scale = 10u64.pow(exp);
    let int = abs.checked_div(scale).unwrap_or(0);
    let frac = abs.checked_rem(scale).unwrap_or(0);
    let width = usize::try_from(exp).unwrap_or(2);
    format!("{sign}{int}.{frac:0width$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(Money::parse("1500.50", Currency::Tzs).map(Money::minor), Ok(150050));
        assert_eq!(Money::parse("1500", Currency::Tzs).map(Money::minor), Ok(150000));
        assert_eq!(Money::parse("1500.5", Currency::Tzs).map(Money::minor), Ok(150050));
        assert_eq!(Money::parse("1500", Currency::Ugx).map(Money::minor), Ok(1500));
        assert_eq!(Money::parse("1.234", Currency::Bhd).map(Money::minor), Ok(1234));
    }

    #[test]
    fn refuses_rounding_and_bad_syntax() {
        assert!(matches!(
            Money::parse("1500.5", Currency::Ugx),
            Err(MoneyError::TooManyFractionDigits { .. })
        ));
        assert!(matches!(
            Money::parse("1.001", Currency::Usd),
            Err(MoneyError::TooManyFractionDigits { .. })
        ));
        for bad in ["", ".5", "5.", "-1", "+1", "1e3", "1,000", " 1", "1 ", "0x10", "1.2.3"] {
            assert_eq!(Money::parse(bad, Currency::Usd), Err(MoneyError::Syntax), "{bad}");
        }
        assert_eq!(Money::parse("0", Currency::Usd), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse("0.00", Currency::Usd), Err(MoneyError::NotPositive));
        assert_eq!(
            Money::parse("99999999999999999999999", Currency::Usd),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::parse("1.00", Currency::Usd).unwrap_or_else(|_| unreachable!());
        let b = Money::parse("1.00", Currency::Eur).unwrap_or_else(|_| unreachable!());
        assert!(matches!(a.checked_add(b), Err(MoneyError::CurrencyMismatch(..))));
        assert_eq!(a.checked_sub(a), Err(MoneyError::NotPositive));
        assert_eq!(a.checked_add(a).map(Money::minor), Ok(200));
    }

    #[test]
    fn currencies_round_trip() {
        for c in Currency::ALL {
            assert_eq!(c.code().parse::<Currency>(), Ok(c));
        }
        assert!("tzs".parse::<Currency>().is_err());
        assert!("XXX".parse::<Currency>().is_err());
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(minor in 1i64..MAX_MINOR, idx in 0usize..23) {
            let c = Currency::ALL[idx];
            let s = format_minor(minor, c);
            prop_assert_eq!(Money::parse(&s, c).map(Money::minor), Ok(minor));
        }
    }
}
