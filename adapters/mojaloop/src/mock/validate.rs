//! The mock hub's checks of what Railgate sends, written from the FSPIOP v1.1 API definition
//! (headers: §3.2.1; data types: §7.2; objects: §7.4) over plain JSON values, independently of
//! the adapter's own wire structs, so a bug in those cannot validate itself. Stricter than v1.1
//! on one point, like v2.0: unknown top-level fields are refused, since we send none.
//!
//! A failed check is answered like the hub does: `400` with an `errorInformation` in the
//! `3100` family (or `3001` for a version, `3105` for a signature).

use crate::wire::{is_fspiop_amount, parse_http_date};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub description: String,
}

pub type Checked = Result<(), Invalid>;

pub fn invalid(code: &'static str, description: impl Into<String>) -> Invalid {
    Invalid {
        code,
        description: description.into(),
    }
}

fn missing(path: &str) -> Invalid {
    invalid("3102", format!("Missing mandatory element - {path}"))
}

fn malformed(path: &str, why: &str) -> Invalid {
    invalid("3101", format!("Malformed syntax - {path}: {why}"))
}

/// The headers of a request (`is_request`: GET/POST, which must carry `Accept`) or callback.
pub fn headers(
    h: &http::HeaderMap,
    resource: &str,
    is_request: bool,
    has_body: bool,
    expected_source: &str,
    needs_destination: bool,
) -> Checked {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
    let media = format!("application/vnd.interoperability.{resource}+json");
    let content_type = get("content-type").ok_or_else(|| missing("header Content-Type"))?;
    let ct_version = content_type
        .strip_prefix(&media)
        .and_then(|rest| rest.trim_start_matches(';').trim().strip_prefix("version="))
        .ok_or_else(|| {
            malformed(
                "header Content-Type",
                "not the resource's versioned media type",
            )
        })?;
    if ct_version != "1.1" && ct_version != "1.0" {
        return Err(invalid(
            "3001",
            format!("Unacceptable version requested - Content-Type version {ct_version}"),
        ));
    }
    let versioned = |a: &str| {
        a.trim()
            .strip_prefix(&media)
            .and_then(|rest| rest.trim_start_matches(';').trim().strip_prefix("version="))
            .map(str::to_owned)
    };
    if is_request {
        let accept = get("accept").ok_or_else(|| missing("header Accept"))?;
        let ok = accept
            .split(',')
            .filter_map(versioned)
            .any(|v| v == "1" || v == "1.0" || v == "1.1");
        if !ok {
            return Err(invalid("3001", "Unacceptable version requested - Accept"));
        }
    } else if let Some(accept) = get("accept") {
        // A callback needs no Accept, but one it carries must be the resource's versioned
        // type: the switch's header check (and the SDK's) refuses `*/*` as malformed.
        if accept.split(',').any(|a| versioned(a).is_none()) {
            return Err(malformed(
                "header Accept",
                "a callback's Accept must be the resource's versioned media type",
            ));
        }
    }
    let date = get("date").ok_or_else(|| missing("header Date"))?;
    if parse_http_date(date).is_none() || !date.ends_with(" GMT") {
        return Err(malformed("header Date", "not an RFC 7231 IMF-fixdate"));
    }
    let source = get("fspiop-source").ok_or_else(|| missing("header FSPIOP-Source"))?;
    if source != expected_source {
        return Err(invalid(
            "3100",
            format!("Generic validation error - FSPIOP-Source {source} is not the sender"),
        ));
    }
    if needs_destination && get("fspiop-destination").is_none_or(str::is_empty) {
        return Err(missing("header FSPIOP-Destination"));
    }
    if has_body
        && get("fspiop-signature").is_some()
        && (get("fspiop-uri").is_none() || get("fspiop-http-method").is_none())
    {
        return Err(missing(
            "header FSPIOP-URI / FSPIOP-HTTP-Method (required with FSPIOP-Signature)",
        ));
    }
    Ok(())
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a serde_json::Map<String, Value>, Invalid> {
    v.as_object()
        .ok_or_else(|| malformed(path, "not an object"))
}

fn only(v: &Value, path: &str, allowed: &[&str]) -> Checked {
    for k in object(v, path)?.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(malformed(path, &format!("unknown element {k}")));
        }
    }
    Ok(())
}

fn required<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Value, Invalid> {
    v.get(key).ok_or_else(|| missing(&format!("{path}.{key}")))
}

fn string<'a>(v: &'a Value, path: &str, min: usize, max: usize) -> Result<&'a str, Invalid> {
    let s = v.as_str().ok_or_else(|| malformed(path, "not a string"))?;
    let n = s.chars().count();
    if n < min || n > max {
        return Err(malformed(path, &format!("length must be {min}..{max}")));
    }
    Ok(s)
}

fn one_of(v: &Value, path: &str, values: &[&str]) -> Checked {
    let s = string(v, path, 1, 64)?;
    if values.contains(&s) {
        Ok(())
    } else {
        Err(malformed(path, "not an allowed value"))
    }
}

/// `CorrelationId` (v1.1): lowercase UUID, version 1–5.
pub fn correlation_id(v: &Value, path: &str) -> Checked {
    let s = string(v, path, 36, 36)?;
    let b = s.as_bytes();
    let hex = |i: usize| {
        b.get(i)
            .is_some_and(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let dashes = [8usize, 13, 18, 23];
    let shape = (0..36).all(|i| {
        if dashes.contains(&i) {
            b.get(i) == Some(&b'-')
        } else {
            hex(i)
        }
    });
    let version = b.get(14).is_some_and(|c| (b'1'..=b'5').contains(c));
    let variant = b
        .get(19)
        .is_some_and(|c| matches!(c, b'8' | b'9' | b'a' | b'b'));
    if shape && version && variant {
        Ok(())
    } else {
        Err(malformed(path, "not a lowercase UUID v1-v5"))
    }
}

/// `DateTime`: `yyyy-MM-ddTHH:mm:ss.SSS` and `Z` or `±HH:MM`.
pub fn date_time(v: &Value, path: &str) -> Checked {
    let s = string(v, path, 24, 29)?;
    let b = s.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let body = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22]
        .iter()
        .all(|i| digit(*i))
        && at(4, b'-')
        && at(7, b'-')
        && at(10, b'T')
        && at(13, b':')
        && at(16, b':')
        && at(19, b'.');
    let zone = match b.get(23..) {
        Some(b"Z") => true,
        Some([sign, h1, h2, b':', m1, m2]) => {
            (*sign == b'+' || *sign == b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    };
    if body && zone && chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        Ok(())
    } else {
        Err(malformed(path, "not an FSPIOP DateTime with milliseconds"))
    }
}

pub fn money(v: &Value, path: &str) -> Checked {
    only(v, path, &["amount", "currency"])?;
    let amount = string(
        required(v, "amount", path)?,
        &format!("{path}.amount"),
        1,
        32,
    )?;
    if !is_fspiop_amount(amount) {
        return Err(malformed(
            &format!("{path}.amount"),
            "not an FSPIOP Amount (no trailing zeros, at most 4 decimals)",
        ));
    }
    let currency = string(
        required(v, "currency", path)?,
        &format!("{path}.currency"),
        3,
        3,
    )?;
    if !currency.bytes().all(|c| c.is_ascii_uppercase()) {
        return Err(malformed(
            &format!("{path}.currency"),
            "not an ISO 4217 code",
        ));
    }
    Ok(())
}

const PARTY_ID_TYPES: [&str; 8] = [
    "MSISDN",
    "EMAIL",
    "PERSONAL_ID",
    "BUSINESS",
    "DEVICE",
    "ACCOUNT_ID",
    "IBAN",
    "ALIAS",
];

pub fn party_id_info(v: &Value, path: &str) -> Checked {
    only(
        v,
        path,
        &[
            "partyIdType",
            "partyIdentifier",
            "partySubIdOrType",
            "fspId",
            "extensionList",
        ],
    )?;
    one_of(
        required(v, "partyIdType", path)?,
        &format!("{path}.partyIdType"),
        &PARTY_ID_TYPES,
    )?;
    let id = string(
        required(v, "partyIdentifier", path)?,
        &format!("{path}.partyIdentifier"),
        1,
        128,
    )?;
    if id.contains(['/', '?']) {
        return Err(malformed(
            &format!("{path}.partyIdentifier"),
            "'/' and '?' are not allowed",
        ));
    }
    if let Some(s) = v.get("partySubIdOrType") {
        string(s, &format!("{path}.partySubIdOrType"), 1, 128)?;
    }
    if let Some(f) = v.get("fspId") {
        string(f, &format!("{path}.fspId"), 1, 32)?;
    }
    Ok(())
}

pub fn party(v: &Value, path: &str) -> Checked {
    only(
        v,
        path,
        &[
            "partyIdInfo",
            "merchantClassificationCode",
            "name",
            "personalInfo",
        ],
    )?;
    party_id_info(
        required(v, "partyIdInfo", path)?,
        &format!("{path}.partyIdInfo"),
    )?;
    if let Some(n) = v.get("name") {
        string(n, &format!("{path}.name"), 1, 128)?;
    }
    Ok(())
}

pub fn transaction_type(v: &Value, path: &str) -> Checked {
    only(
        v,
        path,
        &[
            "scenario",
            "subScenario",
            "initiator",
            "initiatorType",
            "refundInfo",
            "balanceOfPayments",
        ],
    )?;
    one_of(
        required(v, "scenario", path)?,
        &format!("{path}.scenario"),
        &["DEPOSIT", "WITHDRAWAL", "TRANSFER", "PAYMENT", "REFUND"],
    )?;
    one_of(
        required(v, "initiator", path)?,
        &format!("{path}.initiator"),
        &["PAYER", "PAYEE"],
    )?;
    one_of(
        required(v, "initiatorType", path)?,
        &format!("{path}.initiatorType"),
        &["CONSUMER", "AGENT", "BUSINESS", "DEVICE"],
    )
}

fn ilp_digest(v: &Value, path: &str) -> Checked {
    let s = string(v, path, 43, 43)?;
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(malformed(path, "not 32 bytes base64url"))
    }
}

fn ilp_packet(v: &Value, path: &str) -> Checked {
    let s = string(v, path, 1, 32768)?;
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
    {
        Ok(())
    } else {
        Err(malformed(path, "not base64url"))
    }
}

fn note(v: &Value, path: &str) -> Checked {
    if let Some(n) = v.get("note") {
        string(n, &format!("{path}.note"), 1, 128)?;
    }
    Ok(())
}

/// `POST /quotes` (Table 22).
pub fn quotes_post(v: &Value) -> Checked {
    let p = "body";
    only(
        v,
        p,
        &[
            "quoteId",
            "transactionId",
            "transactionRequestId",
            "payee",
            "payer",
            "amountType",
            "amount",
            "fees",
            "transactionType",
            "geoCode",
            "note",
            "expiration",
            "extensionList",
        ],
    )?;
    correlation_id(required(v, "quoteId", p)?, "body.quoteId")?;
    correlation_id(required(v, "transactionId", p)?, "body.transactionId")?;
    if let Some(t) = v.get("transactionRequestId") {
        correlation_id(t, "body.transactionRequestId")?;
    }
    party(required(v, "payee", p)?, "body.payee")?;
    party(required(v, "payer", p)?, "body.payer")?;
    one_of(
        required(v, "amountType", p)?,
        "body.amountType",
        &["SEND", "RECEIVE"],
    )?;
    money(required(v, "amount", p)?, "body.amount")?;
    if let Some(f) = v.get("fees") {
        money(f, "body.fees")?;
    }
    transaction_type(required(v, "transactionType", p)?, "body.transactionType")?;
    note(v, p)?;
    if let Some(e) = v.get("expiration") {
        date_time(e, "body.expiration")?;
    }
    Ok(())
}

/// `PUT /quotes/{ID}` (Table 23).
pub fn quotes_put(v: &Value) -> Checked {
    let p = "body";
    only(
        v,
        p,
        &[
            "transferAmount",
            "payeeReceiveAmount",
            "payeeFspFee",
            "payeeFspCommission",
            "expiration",
            "geoCode",
            "ilpPacket",
            "condition",
            "extensionList",
        ],
    )?;
    money(required(v, "transferAmount", p)?, "body.transferAmount")?;
    for k in ["payeeReceiveAmount", "payeeFspFee", "payeeFspCommission"] {
        if let Some(m) = v.get(k) {
            money(m, &format!("body.{k}"))?;
        }
    }
    date_time(required(v, "expiration", p)?, "body.expiration")?;
    ilp_packet(required(v, "ilpPacket", p)?, "body.ilpPacket")?;
    ilp_digest(required(v, "condition", p)?, "body.condition")
}

/// `POST /transfers` (Table 29).
pub fn transfers_post(v: &Value) -> Checked {
    let p = "body";
    only(
        v,
        p,
        &[
            "transferId",
            "payeeFsp",
            "payerFsp",
            "amount",
            "ilpPacket",
            "condition",
            "expiration",
            "extensionList",
        ],
    )?;
    correlation_id(required(v, "transferId", p)?, "body.transferId")?;
    string(required(v, "payeeFsp", p)?, "body.payeeFsp", 1, 32)?;
    string(required(v, "payerFsp", p)?, "body.payerFsp", 1, 32)?;
    money(required(v, "amount", p)?, "body.amount")?;
    ilp_packet(required(v, "ilpPacket", p)?, "body.ilpPacket")?;
    ilp_digest(required(v, "condition", p)?, "body.condition")?;
    date_time(required(v, "expiration", p)?, "body.expiration")
}

/// A list of 1 to 1,000 elements (the bulks' `individualQuotes`, `individualTransfers`).
fn bulk_list<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>, Invalid> {
    let list = required(v, key, "body")?
        .as_array()
        .ok_or_else(|| malformed(&format!("body.{key}"), "not an array"))?;
    if list.is_empty() || list.len() > 1000 {
        return Err(malformed(
            &format!("body.{key}"),
            "must hold 1..1000 elements",
        ));
    }
    Ok(list)
}

/// `POST /bulkQuotes` (v1.1 OpenAPI `BulkQuotesPostRequest`, `IndividualQuote`).
pub fn bulk_quotes_post(v: &Value) -> Checked {
    let p = "body";
    only(
        v,
        p,
        &[
            "bulkQuoteId",
            "payer",
            "geoCode",
            "expiration",
            "individualQuotes",
            "extensionList",
        ],
    )?;
    correlation_id(required(v, "bulkQuoteId", p)?, "body.bulkQuoteId")?;
    party(required(v, "payer", p)?, "body.payer")?;
    if let Some(e) = v.get("expiration") {
        date_time(e, "body.expiration")?;
    }
    for (i, q) in bulk_list(v, "individualQuotes")?.iter().enumerate() {
        let p = format!("body.individualQuotes[{i}]");
        only(
            q,
            &p,
            &[
                "quoteId",
                "transactionId",
                "payee",
                "amountType",
                "amount",
                "fees",
                "transactionType",
                "note",
                "extensionList",
            ],
        )?;
        correlation_id(required(q, "quoteId", &p)?, &format!("{p}.quoteId"))?;
        correlation_id(
            required(q, "transactionId", &p)?,
            &format!("{p}.transactionId"),
        )?;
        party(required(q, "payee", &p)?, &format!("{p}.payee"))?;
        one_of(
            required(q, "amountType", &p)?,
            &format!("{p}.amountType"),
            &["SEND", "RECEIVE"],
        )?;
        money(required(q, "amount", &p)?, &format!("{p}.amount"))?;
        if let Some(f) = q.get("fees") {
            money(f, &format!("{p}.fees"))?;
        }
        transaction_type(
            required(q, "transactionType", &p)?,
            &format!("{p}.transactionType"),
        )?;
        note(q, &p)?;
    }
    Ok(())
}

/// `POST /bulkTransfers` (v1.1 OpenAPI `BulkTransfersPostRequest`, `IndividualTransfer`).
pub fn bulk_transfers_post(v: &Value) -> Checked {
    let p = "body";
    only(
        v,
        p,
        &[
            "bulkTransferId",
            "bulkQuoteId",
            "payerFsp",
            "payeeFsp",
            "individualTransfers",
            "extensionList",
            "expiration",
        ],
    )?;
    correlation_id(required(v, "bulkTransferId", p)?, "body.bulkTransferId")?;
    correlation_id(required(v, "bulkQuoteId", p)?, "body.bulkQuoteId")?;
    string(required(v, "payeeFsp", p)?, "body.payeeFsp", 1, 32)?;
    string(required(v, "payerFsp", p)?, "body.payerFsp", 1, 32)?;
    date_time(required(v, "expiration", p)?, "body.expiration")?;
    for (i, t) in bulk_list(v, "individualTransfers")?.iter().enumerate() {
        let p = format!("body.individualTransfers[{i}]");
        only(
            t,
            &p,
            &[
                "transferId",
                "transferAmount",
                "ilpPacket",
                "condition",
                "extensionList",
            ],
        )?;
        correlation_id(required(t, "transferId", &p)?, &format!("{p}.transferId"))?;
        money(
            required(t, "transferAmount", &p)?,
            &format!("{p}.transferAmount"),
        )?;
        ilp_packet(required(t, "ilpPacket", &p)?, &format!("{p}.ilpPacket"))?;
        ilp_digest(required(t, "condition", &p)?, &format!("{p}.condition"))?;
    }
    Ok(())
}

/// `PUT /transfers/{ID}` (Table 31).
pub fn transfers_put(v: &Value) -> Checked {
    let p = "body";
    only(
        v,
        p,
        &[
            "fulfilment",
            "completedTimestamp",
            "transferState",
            "extensionList",
        ],
    )?;
    one_of(
        required(v, "transferState", p)?,
        "body.transferState",
        &["RECEIVED", "RESERVED", "COMMITTED", "ABORTED"],
    )?;
    if let Some(f) = v.get("fulfilment") {
        ilp_digest(f, "body.fulfilment")?;
    }
    if let Some(t) = v.get("completedTimestamp") {
        date_time(t, "body.completedTimestamp")?;
    }
    if v.get("transferState").and_then(Value::as_str) == Some("COMMITTED")
        && v.get("fulfilment").is_none()
    {
        return Err(missing("body.fulfilment"));
    }
    Ok(())
}

/// `POST /transactionRequests` (Table 18): the payer is a `PartyIdInfo`.
pub fn transaction_requests_post(v: &Value) -> Checked {
    let p = "body";
    only(
        v,
        p,
        &[
            "transactionRequestId",
            "payee",
            "payer",
            "amount",
            "transactionType",
            "note",
            "geoCode",
            "authenticationType",
            "expiration",
            "extensionList",
        ],
    )?;
    correlation_id(
        required(v, "transactionRequestId", p)?,
        "body.transactionRequestId",
    )?;
    party(required(v, "payee", p)?, "body.payee")?;
    party_id_info(required(v, "payer", p)?, "body.payer")?;
    money(required(v, "amount", p)?, "body.amount")?;
    transaction_type(required(v, "transactionType", p)?, "body.transactionType")?;
    note(v, p)?;
    if let Some(a) = v.get("authenticationType") {
        one_of(a, "body.authenticationType", &["OTP", "QRCODE"])?;
    }
    if let Some(e) = v.get("expiration") {
        date_time(e, "body.expiration")?;
    }
    Ok(())
}

/// `PUT /parties/{Type}/{ID}`.
pub fn parties_put(v: &Value) -> Checked {
    only(v, "body", &["party"])?;
    party(required(v, "party", "body")?, "body.party")
}

/// Every `…/error` body.
pub fn error_information(v: &Value) -> Checked {
    only(v, "body", &["errorInformation"])?;
    let e = required(v, "errorInformation", "body")?;
    only(
        e,
        "body.errorInformation",
        &["errorCode", "errorDescription", "extensionList"],
    )?;
    let code = string(
        required(e, "errorCode", "body.errorInformation")?,
        "body.errorInformation.errorCode",
        4,
        4,
    )?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || code.starts_with('0') {
        return Err(malformed(
            "body.errorInformation.errorCode",
            "not four digits",
        ));
    }
    string(
        required(e, "errorDescription", "body.errorInformation")?,
        "body.errorInformation.errorDescription",
        1,
        128,
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_notes_example_bodies_validate_and_broken_ones_do_not() {
        let quote = json!({
            "quoteId": "7c23e80c-d078-4077-8263-2c047876fcf6",
            "transactionId": "85feac2f-39b2-491b-817e-4a03203d4f14",
            "payee": { "partyIdInfo": { "partyIdType": "MSISDN", "partyIdentifier": "123456789", "fspId": "payeefsp" } },
            "payer": { "partyIdInfo": { "partyIdType": "MSISDN", "partyIdentifier": "987654321", "fspId": "payerfsp" } },
            "amountType": "RECEIVE",
            "amount": { "amount": "100", "currency": "USD" },
            "transactionType": { "scenario": "TRANSFER", "initiator": "PAYER", "initiatorType": "CONSUMER" },
            "note": "Claim CLM-000123",
            "expiration": "2030-01-01T00:00:00.000Z"
        });
        assert_eq!(quotes_post(&quote), Ok(()));
        let mut bad = quote.clone();
        bad["amount"]["amount"] = json!("100.50");
        assert_eq!(quotes_post(&bad).unwrap_err().code, "3101");
        let mut bad = quote.clone();
        bad.as_object_mut().unwrap().remove("transactionType");
        assert_eq!(quotes_post(&bad).unwrap_err().code, "3102");
        let mut bad = quote.clone();
        bad["quoteId"] = json!("7C23E80C-D078-4077-8263-2C047876FCF6");
        assert_eq!(quotes_post(&bad).unwrap_err().code, "3101");
        let mut bad = quote;
        bad["expiration"] = json!("2030-01-01T00:00:00Z");
        assert_eq!(quotes_post(&bad).unwrap_err().code, "3101");
    }
}
