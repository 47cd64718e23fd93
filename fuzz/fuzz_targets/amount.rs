//! Amounts as every rail and file writes them: the strict API parser (`Money::parse`), the
//! statement parser (signs, separators, trailing zeros), FSPIOP, GSMA MMAPI and PH-EE amounts.
//!
//! Input: byte 0 picks the currency, byte 1 the statement number format, the rest is the text.
//! Invariants: a parsed amount never has more precision than its currency; it formats back to
//! a string that parses to the same amount; the lenient parsers agree with the strict one
//! wherever the strict one accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_mojaloop::wire::{is_fspiop_amount, FspiopMoney};
use railgate_rail::money::{format_minor, parse_minor};
use railgate_rail::{Currency, Money};
use railgate_statements::{parse_signed, parse_unsigned, NumberFormat};

const FORMATS: [NumberFormat; 4] = [
    NumberFormat::PLAIN,
    NumberFormat {
        decimal_separator: ',',
        thousands_separator: Some('.'),
    },
    NumberFormat {
        decimal_separator: '.',
        thousands_separator: Some(','),
    },
    NumberFormat {
        decimal_separator: ',',
        thousands_separator: Some(' '),
    },
];

fuzz_target!(|data: &[u8]| {
    let [c, f, rest @ ..] = data else { return };
    let currency = Currency::ALL[usize::from(*c) % Currency::ALL.len()];
    let format = FORMATS[usize::from(*f) % FORMATS.len()];
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let exponent = usize::try_from(currency.exponent()).unwrap_or(0);

    // The API's strict parser.
    let strict = parse_minor(text, currency);
    if let Ok(minor) = strict {
        assert!(minor >= 0);
        let formatted = format_minor(minor, currency);
        let frac = formatted.split_once('.').map_or(0, |(_, f)| f.len());
        assert_eq!(frac, exponent, "{formatted} has the wrong precision");
        assert_eq!(parse_minor(&formatted, currency), Ok(minor));
    }
    if let Ok(m) = Money::parse(text, currency) {
        assert_eq!(m.currency(), currency);
        assert_eq!(Ok(m.minor()), strict);
        assert!(m.minor() > 0);
        assert_eq!(Money::parse(&m.to_decimal_string(), currency), Ok(m));
        assert_eq!(
            m.to_decimal().to_string(),
            m.to_decimal_string(),
            "the decimal and the string disagree"
        );
        // FSPIOP writes it without trailing zeros, and reads it back exactly.
        let wire = FspiopMoney::from(m);
        assert!(
            is_fspiop_amount(&wire.amount),
            "{} is no FSPIOP Amount",
            wire.amount
        );
        assert_eq!(Money::try_from(&wire).ok(), Some(m));
        // MMAPI writes the currency's digits, which its own grammar accepts when ≤ 4.
        let mm = railgate_mmapi::wire::amount_string(m);
        if exponent <= 4 {
            assert!(railgate_mmapi::wire::is_valid_amount(&mm), "{mm}");
        }
        // The KES whole-shilling rule of M-Pesa.
        if let Ok(shillings) = railgate_mpesa::whole_shillings(m) {
            assert_eq!(shillings.checked_mul(100), Some(m.minor()));
        }
    }

    // The statement parser: more lenient than the strict one, never less exact.
    if let Ok(minor) = parse_unsigned(text, currency, format) {
        assert!(minor >= 0);
        assert_eq!(
            parse_minor(&format_minor(minor, currency), currency),
            Ok(minor)
        );
    }
    if let Ok(minor) = strict {
        if format == NumberFormat::PLAIN {
            assert_eq!(parse_unsigned(text, currency, format), Ok(minor));
        }
    }
    if let Ok((minor, negative)) = parse_signed(text, currency, format) {
        assert!(minor >= 0);
        let _ = negative;
    }

    // FSPIOP: whatever passes the wire grammar and converts is exact.
    let fspiop = FspiopMoney {
        amount: text.to_owned(),
        currency: currency.code().to_owned(),
    };
    if let Ok(m) = Money::try_from(&fspiop) {
        assert!(is_fspiop_amount(text));
        assert_eq!(Money::parse(text, currency), Ok(m));
    }

    // MMAPI's grammar and PH-EE's reader.
    if railgate_mmapi::wire::is_valid_amount(text) {
        assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    }
    if let Some(m) = railgate_mifos::wire::parse_amount(text, currency) {
        assert_eq!(m.currency(), currency);
        assert_eq!(Money::parse(&m.to_decimal_string(), currency), Ok(m));
    }
});
