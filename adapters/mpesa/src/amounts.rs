//! The amounts Daraja reports in its results, read exactly.
//!
//! Daraja writes them as JSON numbers (`1500`, `1500.00`) or strings, inside lists of
//! name/value pairs. `serde_json::Value` would hold a decimal number as a float, so the pairs
//! are read again here with the value kept as written (`RawValue`): no float ever holds money.
//! Hand-written because Daraja's lists are an object or an array of them, which an untagged
//! serde enum cannot combine with `RawValue`.

use railgate_rail::{CallbackError, Currency, Money};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Pair {
    #[serde(rename = "Name", alias = "Key")]
    name: String,
    #[serde(rename = "Value", default)]
    value: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct StkEnvelope {
    #[serde(rename = "Body")]
    body: StkBody,
}

#[derive(Deserialize)]
struct StkBody {
    #[serde(rename = "stkCallback")]
    stk_callback: StkCallback,
}

#[derive(Deserialize)]
struct StkCallback {
    #[serde(rename = "CallbackMetadata", default)]
    callback_metadata: Option<StkMetadata>,
}

#[derive(Deserialize)]
struct StkMetadata {
    #[serde(rename = "Item", default)]
    item: Vec<Pair>,
}

#[derive(Deserialize)]
struct ResultEnvelope {
    #[serde(rename = "Result")]
    result: ResultBody,
}

#[derive(Deserialize)]
struct ResultBody {
    #[serde(rename = "ResultParameters", default)]
    result_parameters: Option<ResultParameters>,
}

#[derive(Deserialize)]
struct ResultParameters {
    #[serde(rename = "ResultParameter")]
    result_parameter: Box<RawValue>,
}

fn malformed(what: &str) -> CallbackError {
    CallbackError::Malformed(format!("unreadable amount: {what}"))
}

/// A value written as a number or a string, as shillings (KES, whole or with zero cents).
fn shillings(raw: &RawValue) -> Result<Money, CallbackError> {
    let text = raw.get().trim();
    let text = if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(|_| malformed(text))?
    } else {
        text.to_owned()
    };
    let v = text.trim();
    // "1500.00" is 1500 shillings; zeros of the fraction carry no value.
    let v = if v.contains('.') {
        v.trim_end_matches('0').trim_end_matches('.')
    } else {
        v
    };
    Money::parse(v, Currency::Kes).map_err(|_| malformed(&text))
}

fn find(pairs: Vec<Pair>, name: &str) -> Result<Option<Money>, CallbackError> {
    match pairs.into_iter().find(|p| p.name == name) {
        Some(Pair { value: Some(v), .. }) => shillings(&v).map(Some),
        Some(Pair { value: None, .. }) | None => Ok(None),
    }
}

/// The `Amount` item of an STK callback's metadata, if it has one.
pub fn stk_amount(body: &[u8]) -> Result<Option<Money>, CallbackError> {
    let env: StkEnvelope = serde_json::from_slice(body)
        .map_err(|e| CallbackError::Malformed(format!("not an STK callback: {e}")))?;
    let items = env
        .body
        .stk_callback
        .callback_metadata
        .map(|m| m.item)
        .unwrap_or_default();
    find(items, "Amount")
}

/// The result parameter `key` of a `Result` (B2C: `TransactionAmount`; Transaction Status:
/// `Amount`), if it has one.
pub fn result_amount(body: &[u8], key: &str) -> Result<Option<Money>, CallbackError> {
    let env: ResultEnvelope = serde_json::from_slice(body)
        .map_err(|e| CallbackError::Malformed(format!("not a result: {e}")))?;
    let Some(params) = env.result.result_parameters else {
        return Ok(None);
    };
    let raw = params.result_parameter.get();
    let pairs = match serde_json::from_str::<Vec<Pair>>(raw) {
        Ok(list) => list,
        Err(_) => vec![serde_json::from_str::<Pair>(raw).map_err(|_| malformed(key))?],
    };
    find(pairs, key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn kes(s: &str) -> Money {
        Money::parse(s, Currency::Kes).unwrap()
    }

    #[test]
    fn amounts_are_read_as_written() {
        let stk = include_str!("../../../fixtures/mpesa/stk-callback-success.json");
        assert_eq!(stk_amount(stk.as_bytes()).unwrap(), Some(kes("1500")));
        let b2c = include_str!("../../../fixtures/mpesa/b2c-result-success.json");
        assert_eq!(
            result_amount(b2c.as_bytes(), "TransactionAmount").unwrap(),
            Some(kes("1500"))
        );
        let one = br#"{"Result":{"ResultParameters":{"ResultParameter":{"Key":"Amount","Value":"10.00"}}}}"#;
        assert_eq!(result_amount(one, "Amount").unwrap(), Some(kes("10")));
        let none = br#"{"Result":{"ResultCode":2001}}"#;
        assert_eq!(result_amount(none, "Amount").unwrap(), None);
        let bad = br#"{"Result":{"ResultParameters":{"ResultParameter":[{"Key":"Amount","Value":"ten"}]}}}"#;
        assert!(result_amount(bad, "Amount").is_err());
    }
}
