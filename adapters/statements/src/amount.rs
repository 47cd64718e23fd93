//! Exact amount parsing for statements, on top of `railgate_rail::money::parse_minor`.
//!
//! Statements print amounts in more shapes than our API accepts: a decimal comma, thousands
//! separators, a sign, and trailing zeros past the currency's exponent (camt allows five
//! fraction digits: `412.50000`). Trailing zeros are dropped because that is exact; any other
//! digit past the exponent is still an error, never a rounding.

use railgate_rail::money::parse_minor;
use railgate_rail::{Currency, MoneyError};

/// How a profile writes numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberFormat {
    pub decimal_separator: char,
    pub thousands_separator: Option<char>,
}

impl NumberFormat {
    pub const PLAIN: NumberFormat = NumberFormat {
        decimal_separator: '.',
        thousands_separator: None,
    };
}

/// Parses an amount that may carry a leading `-` or `+`; returns (minor units ≥ 0, negative).
pub fn parse_signed(
    text: &str,
    currency: Currency,
    format: NumberFormat,
) -> Result<(i64, bool), MoneyError> {
    let text = text.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let minor = parse_unsigned(body, currency, format)?;
    Ok((minor, negative))
}

/// Parses an unsigned amount exactly into minor units (zero allowed; the caller decides).
pub fn parse_unsigned(
    text: &str,
    currency: Currency,
    format: NumberFormat,
) -> Result<i64, MoneyError> {
    let text = text.trim();
    let mut plain = String::with_capacity(text.len());
    let mut seen_decimal = false;
    for c in text.chars() {
        if c == format.decimal_separator && !seen_decimal {
            seen_decimal = true;
            plain.push('.');
        } else if Some(c) == format.thousands_separator && !seen_decimal {
            // Grouping characters carry no value; digits either side are kept as they are.
        } else {
            plain.push(c);
        }
    }
    if let Some((int, frac)) = plain.split_once('.') {
        let allowed = usize::try_from(currency.exponent()).map_err(|_| MoneyError::Syntax)?;
        if frac.len() > allowed {
            // Checked: a cut inside a multi-byte character (junk that the strict parse below
            // refuses) must not panic.
            if let Some((keep, extra)) = frac.split_at_checked(allowed) {
                if extra.bytes().all(|b| b == b'0') && !frac.is_empty() {
                    let trimmed = if keep.is_empty() {
                        int.to_owned()
                    } else {
                        format!("{int}.{keep}")
                    };
                    return parse_minor(&trimmed, currency);
                }
            }
        }
    }
    parse_minor(&plain, currency)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    use super::*;
    use proptest::prelude::*;

    const COMMA: NumberFormat = NumberFormat {
        decimal_separator: ',',
        thousands_separator: Some('.'),
    };

    #[test]
    fn exact_shapes() {
        let p = NumberFormat::PLAIN;
        assert_eq!(parse_unsigned("412.50", Currency::Eur, p), Ok(41250));
        assert_eq!(parse_unsigned("412.50000", Currency::Eur, p), Ok(41250));
        assert_eq!(parse_unsigned("2700.000", Currency::Ugx, p), Ok(2700));
        assert_eq!(parse_unsigned("1.234,56", Currency::Eur, COMMA), Ok(123456));
        assert_eq!(
            parse_signed(
                "-1,500.00",
                Currency::Kes,
                NumberFormat {
                    decimal_separator: '.',
                    thousands_separator: Some(',')
                }
            ),
            Ok((150000, true))
        );
        assert_eq!(parse_signed("+7", Currency::Ugx, p), Ok((7, false)));
    }

    #[test]
    fn refuses_rounding_and_junk() {
        let p = NumberFormat::PLAIN;
        assert!(matches!(
            parse_unsigned("412.501", Currency::Eur, p),
            Err(MoneyError::TooManyFractionDigits { .. })
        ));
        assert!(matches!(
            parse_unsigned("2700.5", Currency::Ugx, p),
            Err(MoneyError::TooManyFractionDigits { .. })
        ));
        for bad in ["", "1e3", "12.3.4", "--1", "abc", "1 000"] {
            assert!(parse_signed(bad, Currency::Eur, p).is_err(), "{bad}");
        }
    }

    /// Found by the `amount` fuzz target: a multi-byte character where the fraction is cut
    /// at the currency's digits panicked instead of being refused.
    #[test]
    fn refuses_a_multi_byte_character_in_the_fraction() {
        let comma = NumberFormat {
            decimal_separator: ',',
            thousands_separator: Some('.'),
        };
        assert_eq!(
            parse_signed(",1\u{a1}+2", Currency::Zar, comma),
            Err(MoneyError::Syntax)
        );
        assert_eq!(
            parse_unsigned("1.1\u{e9}0", Currency::Usd, NumberFormat::PLAIN),
            Err(MoneyError::Syntax)
        );
    }

    proptest! {
        /// Any amount printed with grouping and a decimal comma reads back exactly.
        #[test]
        fn grouped_amounts_round_trip(minor in 0i64..1_000_000_000_000, negative: bool, trailing in 0usize..4) {
            let c = Currency::Eur;
            let int = minor / 100;
            let frac = minor % 100;
            let digits = int.to_string();
            let mut grouped = String::new();
            for (i, ch) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    grouped.push('.');
                }
                grouped.push(ch);
            }
            let text = format!("{}{grouped},{frac:02}{}", if negative { "-" } else { "" }, "0".repeat(trailing));
            prop_assert_eq!(parse_signed(&text, c, COMMA), Ok((minor, negative)));
        }
    }
}
