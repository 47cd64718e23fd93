//! MMAPI v1.2 wire structs and their mappings onto our types.
//!
//! Field names follow the OpenAPI 1.2.0 files; where the spec and the prose disagree
//! (`errorDescription`/`errordescription`, `error`/`errorReference`, camel or Pascal case in
//! error enums) both spellings are accepted.

use railgate_rail::{Failure, FailureCode, Money, Party, PartyIdType, RailStatus, Settled};
use serde::{Deserialize, Serialize};

/// One `{key, value}` item of a party array, metadata or error parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// `requestTransactionType` (single) and `requestTransaction` (a batch item, with `type`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionRequest {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub amount: String,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_party: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debit_party: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesting_organisation_transaction_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_date: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<KeyValue>,
}

/// `responseTransaction` (201 body, GET /transactions/{ref}, success callback) and the
/// reversal object (which adds `originalTransactionReference`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionObject {
    pub transaction_reference: String,
    /// Free text in v1.2 ("status of the transaction as stored by the API provider").
    pub transaction_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_receipt: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_party: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debit_party: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesting_organisation_transaction_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_transaction_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_date: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Completed,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationMethod {
    Callback,
    Polling,
}

/// `requestStateObject`: the 202 answer, `GET /requeststates/{id}`, and some callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestState {
    pub server_correlation_id: String,
    pub status: RequestStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_method: Option<NotificationMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_limit: Option<u32>,
    /// The OAS calls it `error`, the prose and guidelines `errorReference`.
    #[serde(
        default,
        alias = "errorReference",
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<ErrorObject>,
}

/// `errorObject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorObject {
    #[serde(alias = "errorcategory", alias = "ErrorCategory")]
    pub error_category: String,
    #[serde(alias = "errorcode", alias = "ErrorCode")]
    pub error_code: String,
    #[serde(
        default,
        alias = "errordescription",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_description: Option<String>,
    #[serde(
        default,
        alias = "errordatetime",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_date_time: Option<String>,
    #[serde(
        default,
        alias = "errorparameters",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub error_parameters: Vec<KeyValue>,
}

impl ErrorObject {
    pub fn new(category: &str, code: &str, description: &str) -> ErrorObject {
        ErrorObject {
            error_category: category.to_owned(),
            error_code: code.to_owned(),
            error_description: Some(description.to_owned()),
            error_date_time: None,
            error_parameters: Vec::new(),
        }
    }
}

/// `GET /responses/{clientCorrelationId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseLink {
    pub link: String,
}

/// `requestBatchTransaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    pub transactions: Vec<TransactionRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_title: Option<String>,
    /// The OAS spells it `batchdescription`; the docs `batchDescription`.
    #[serde(
        default,
        alias = "batchdescription",
        skip_serializing_if = "Option::is_none"
    )]
    pub batch_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_date: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    Created,
    Approved,
    Completed,
}

/// `responseBatchTransaction` (GET /batchtransactions/{id} and the batch callback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchObject {
    pub batch_id: String,
    pub batch_status: BatchStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_flag: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parsing_success_count: Option<u64>,
}

/// One item of `GET /batchtransactions/{id}/completions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCompletion {
    pub transaction_reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesting_organisation_transaction_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_party: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debit_party: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// One item of `GET /batchtransactions/{id}/rejections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRejection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requesting_organisation_transaction_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_party: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debit_party: Vec<KeyValue>,
    pub rejection_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_date: Option<String>,
}

/// `requestReversal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReversalRequest {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_date: Option<String>,
}

/// Any JSON body the provider may send us: a callback or a resource a link points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Transaction(TransactionObject),
    RequestState(RequestState),
    Error(ErrorObject),
    Batch(BatchObject),
}

impl Resource {
    /// Tells the kinds apart by their mandatory properties.
    pub fn sniff(body: &[u8]) -> Result<Resource, String> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        let obj = value.as_object().ok_or("body is not a JSON object")?;
        let has = |name: &str| obj.keys().any(|k| k.eq_ignore_ascii_case(name));
        let parsed = if has("errorCategory") {
            serde_json::from_value(value).map(Resource::Error)
        } else if has("serverCorrelationId") {
            serde_json::from_value(value).map(Resource::RequestState)
        } else if has("batchId") {
            serde_json::from_value(value).map(Resource::Batch)
        } else if has("transactionStatus") {
            serde_json::from_value(value).map(Resource::Transaction)
        } else {
            return Err("not a transaction, request state, batch or error object".into());
        };
        parsed.map_err(|e| format!("malformed object: {e}"))
    }
}

/// The error categories of the API (GS "API Error Codes"), read case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCategory {
    BusinessRule,
    Validation,
    Authorisation,
    Identification,
    Internal,
    ServiceUnavailable,
    Unrecognised(String),
}

impl ErrorCategory {
    pub fn parse(s: &str) -> ErrorCategory {
        match s.to_ascii_lowercase().replace([' ', '_'], "").as_str() {
            "businessrule" => ErrorCategory::BusinessRule,
            "validation" => ErrorCategory::Validation,
            "authorisation" | "authorization" => ErrorCategory::Authorisation,
            "identification" => ErrorCategory::Identification,
            "internal" => ErrorCategory::Internal,
            "serviceunavailable" => ErrorCategory::ServiceUnavailable,
            _ => ErrorCategory::Unrecognised(s.to_owned()),
        }
    }
}

/// The error codes of the API (GS "API Error Codes" and the OAS enum), read
/// case-insensitively. A provider's own code lands in `Unrecognised` and is mapped by its
/// category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    GenericError,
    DailyVolumeLimitExceeded,
    DailyValueLimitExceeded,
    WeeklyVolumeLimitExceeded,
    WeeklyValueLimitExceeded,
    MonthlyVolumeLimitExceeded,
    MonthlyValueLimitExceeded,
    AccountMaxTotalValueExceeded,
    AccountMaxTotalVolumeExceeded,
    LessThanTransactionMinValue,
    GreaterThanTransactionMaxValue,
    MaxBalanceExceeded,
    SamePartiesError,
    DuplicateRequest,
    InsufficientFunds,
    IncorrectState,
    UnderPaymentNotAllowed,
    OverPaymentNotAllowed,
    RateLimitError,
    NoMandateAuthority,
    IdentifierError,
    LengthError,
    FormatError,
    NegativeValue,
    CurrencyNotSupported,
    MandatoryValueNotSupplied,
    ClientAuthorisationError,
    RequestDeclined,
    RequestingPartyAuthorisationError,
    Unrecognised(String),
}

impl ErrorCode {
    pub fn parse(s: &str) -> ErrorCode {
        match s.to_ascii_lowercase().as_str() {
            "genericerror" => ErrorCode::GenericError,
            "dailyvolumelimitexceeded" => ErrorCode::DailyVolumeLimitExceeded,
            "dailyvaluelimitexceeded" => ErrorCode::DailyValueLimitExceeded,
            "weeklyvolumelimitexceeded" => ErrorCode::WeeklyVolumeLimitExceeded,
            "weeklyvaluelimitexceeded" => ErrorCode::WeeklyValueLimitExceeded,
            "monthlyvolumelimitexceeded" => ErrorCode::MonthlyVolumeLimitExceeded,
            "monthlyvaluelimitexceeded" => ErrorCode::MonthlyValueLimitExceeded,
            "accountmaxtotalvalueexceeded" => ErrorCode::AccountMaxTotalValueExceeded,
            "accountmaxtotalvolumeexceeded" => ErrorCode::AccountMaxTotalVolumeExceeded,
            "lessthantransactionminvalue" => ErrorCode::LessThanTransactionMinValue,
            "greaterthantransactionmaxvalue" => ErrorCode::GreaterThanTransactionMaxValue,
            "maxbalanceexceeded" => ErrorCode::MaxBalanceExceeded,
            "samepartieserror" => ErrorCode::SamePartiesError,
            "duplicaterequest" => ErrorCode::DuplicateRequest,
            "insufficientfunds" => ErrorCode::InsufficientFunds,
            "incorrectstate" => ErrorCode::IncorrectState,
            "underpaymentnotallowed" => ErrorCode::UnderPaymentNotAllowed,
            "overpaymentnotallowed" => ErrorCode::OverPaymentNotAllowed,
            "ratelimiterror" => ErrorCode::RateLimitError,
            "nomandateauthority" => ErrorCode::NoMandateAuthority,
            "identifiererror" => ErrorCode::IdentifierError,
            "lengtherror" => ErrorCode::LengthError,
            "formaterror" => ErrorCode::FormatError,
            "negativevalue" => ErrorCode::NegativeValue,
            "currencynotsupported" => ErrorCode::CurrencyNotSupported,
            "mandatoryvaluenotsupplied" => ErrorCode::MandatoryValueNotSupplied,
            "clientauthorisationerror" => ErrorCode::ClientAuthorisationError,
            "requestdeclined" => ErrorCode::RequestDeclined,
            "requestingpartyauthorisationerror" => ErrorCode::RequestingPartyAuthorisationError,
            _ => ErrorCode::Unrecognised(s.to_owned()),
        }
    }
}

/// Maps an error object onto our failure reasons. Specific codes first; generic and
/// provider-specific codes by their category.
pub fn failure_of(err: &ErrorObject) -> Failure {
    let category = ErrorCategory::parse(&err.error_category);
    let code = match ErrorCode::parse(&err.error_code) {
        ErrorCode::InsufficientFunds => FailureCode::InsufficientFunds,
        ErrorCode::DailyVolumeLimitExceeded
        | ErrorCode::DailyValueLimitExceeded
        | ErrorCode::WeeklyVolumeLimitExceeded
        | ErrorCode::WeeklyValueLimitExceeded
        | ErrorCode::MonthlyVolumeLimitExceeded
        | ErrorCode::MonthlyValueLimitExceeded
        | ErrorCode::AccountMaxTotalValueExceeded
        | ErrorCode::AccountMaxTotalVolumeExceeded
        | ErrorCode::LessThanTransactionMinValue
        | ErrorCode::GreaterThanTransactionMaxValue
        | ErrorCode::MaxBalanceExceeded => FailureCode::LimitExceeded,
        ErrorCode::DuplicateRequest => FailureCode::Duplicate,
        ErrorCode::RateLimitError => FailureCode::RailUnavailable,
        ErrorCode::IncorrectState | ErrorCode::NoMandateAuthority => FailureCode::RailRejected,
        ErrorCode::SamePartiesError
        | ErrorCode::UnderPaymentNotAllowed
        | ErrorCode::OverPaymentNotAllowed
        | ErrorCode::LengthError
        | ErrorCode::FormatError
        | ErrorCode::NegativeValue
        | ErrorCode::CurrencyNotSupported
        | ErrorCode::MandatoryValueNotSupplied => FailureCode::InvalidRequest,
        ErrorCode::IdentifierError => FailureCode::PartyNotFound,
        ErrorCode::RequestDeclined => FailureCode::Declined,
        ErrorCode::ClientAuthorisationError | ErrorCode::RequestingPartyAuthorisationError => {
            FailureCode::RailRejected
        }
        ErrorCode::GenericError | ErrorCode::Unrecognised(_) => match category {
            ErrorCategory::BusinessRule | ErrorCategory::Authorisation => FailureCode::RailRejected,
            ErrorCategory::Validation => FailureCode::InvalidRequest,
            ErrorCategory::Identification => FailureCode::PartyNotFound,
            ErrorCategory::Internal | ErrorCategory::ServiceUnavailable => {
                FailureCode::RailUnavailable
            }
            ErrorCategory::Unrecognised(_) => FailureCode::RailRejected,
        },
    };
    let rail_code = format!("{}/{}", err.error_category, err.error_code);
    let reason = err
        .error_description
        .clone()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| rail_code.clone());
    Failure::new(code, reason, Some(rail_code))
}

/// The meaning of the free-text `transactionStatus`. The spec fixes no values; these are the
/// ones providers and the GSMA simulator use. Anything else is treated as not final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionStatus {
    Completed,
    /// Completed and later reversed: the money did move.
    Reversed,
    Pending,
    Failed,
    Unrecognised(String),
}

impl TransactionStatus {
    pub fn parse(s: &str) -> TransactionStatus {
        match s.trim().to_ascii_lowercase().as_str() {
            "completed" | "complete" | "success" | "successful" | "succeeded" => {
                TransactionStatus::Completed
            }
            "reversed" => TransactionStatus::Reversed,
            "pending" | "accepted" | "processing" | "inprogress" | "in progress" | "created"
            | "initiated" => TransactionStatus::Pending,
            "failed" | "failure" | "rejected" | "declined" | "cancelled" | "canceled"
            | "expired" => TransactionStatus::Failed,
            _ => TransactionStatus::Unrecognised(s.to_owned()),
        }
    }
}

/// What a transaction object says about the attempt.
pub fn status_of_transaction(t: &TransactionObject) -> RailStatus {
    match TransactionStatus::parse(&t.transaction_status) {
        TransactionStatus::Completed | TransactionStatus::Reversed => match settled_of(t) {
            Ok(s) => RailStatus::Completed(s),
            Err(why) => {
                // A completion we cannot check against the payment is not taken as final.
                tracing::warn!(reason = %why, "MMAPI transaction completed with an unreadable amount; treated as not final");
                RailStatus::Pending
            }
        },
        TransactionStatus::Failed => RailStatus::Failed(Failure::new(
            FailureCode::RailRejected,
            format!(
                "the provider reports the transaction {}",
                t.transaction_status
            ),
            Some(t.transaction_status.clone()),
        )),
        TransactionStatus::Pending => RailStatus::Pending,
        TransactionStatus::Unrecognised(s) => {
            tracing::warn!(status = %s, "Unrecognised MMAPI transactionStatus; treated as not final");
            RailStatus::Pending
        }
    }
}

/// The settlement a transaction object reports, with its amount and currency (both
/// mandatory in v1.2; absent ones are not compared) for the gateway to check.
pub fn settled_of(t: &TransactionObject) -> Result<Settled, String> {
    Ok(Settled {
        rail_reference: Some(t.transaction_reference.clone()),
        receipt: t
            .transaction_receipt
            .clone()
            .or_else(|| Some(t.transaction_reference.clone())),
        amount: money_of(t.amount.as_deref(), t.currency.as_deref())?,
    })
}

/// An amount the API reported, exactly: its validation allows up to four fraction digits
/// ("200.0000"), so zeros beyond the currency's exponent are dropped before the strict parse.
pub fn money_of(amount: Option<&str>, currency: Option<&str>) -> Result<Option<Money>, String> {
    let Some(amount) = amount else {
        return Ok(None);
    };
    let currency: railgate_rail::Currency = currency
        .ok_or("an amount without a currency")?
        .parse()
        .map_err(|e| format!("currency: {e}"))?;
    if !is_valid_amount(amount) {
        return Err(format!("amount {amount:?}"));
    }
    let trimmed = if amount.contains('.') {
        amount.trim_end_matches('0').trim_end_matches('.')
    } else {
        amount
    };
    Money::parse(trimmed, currency)
        .map(Some)
        .map_err(|e| format!("amount: {e}"))
}

/// The failure a failed request state carries (or a generic one when it carries none).
pub fn failure_of_state(rs: &RequestState) -> Failure {
    match &rs.error {
        Some(e) => failure_of(e),
        None => Failure::new(
            FailureCode::RailRejected,
            "the provider reports the request failed without details",
            None,
        ),
    }
}

/// Our party as an MMAPI party array.
pub fn party_items(party: &Party) -> Result<Vec<KeyValue>, String> {
    let value = party.id_value().to_owned();
    let item = match party.id_type() {
        // The spec's examples carry the '+' of E.164.
        PartyIdType::Msisdn => KeyValue::new("msisdn", format!("+{value}")),
        PartyIdType::AccountId => KeyValue::new("accountid", value),
        PartyIdType::WalletId => KeyValue::new("walletid", value),
        PartyIdType::Iban => KeyValue::new("iban", value),
        PartyIdType::Business => KeyValue::new("organisationid", value),
        PartyIdType::Alias => KeyValue::new("identityalias", value),
        PartyIdType::PersonalId => {
            return Err("the Mobile Money API has no identifier type for a personal id".into())
        }
    };
    Ok(vec![item])
}

/// The amount as the API wants it: a decimal string with the currency's fraction digits
/// (GS "Amount Validation" allows trailing zeros: "200.00").
pub fn amount_string(amount: Money) -> String {
    amount.to_decimal_string()
}

/// True when `s` is an amount the API accepts (GS "Amount Validation"): no sign, no leading
/// zeros, at most 18 integer and 4 fraction digits.
pub fn is_valid_amount(s: &str) -> bool {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let int_ok = !int.is_empty()
        && int.len() <= 18
        && int.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'));
    let frac_ok = match frac {
        None => true,
        Some(f) => (1..=4).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()),
    };
    int_ok && frac_ok
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    #[test]
    fn error_codes_map_case_insensitively() {
        let e: ErrorObject = serde_json::from_str(
            r#"{"errorCategory":"BusinessRule","errorCode":"InsufficientFunds","errordescription":"no funds"}"#,
        )
        .unwrap();
        let f = failure_of(&e);
        assert_eq!(f.code, FailureCode::InsufficientFunds);
        assert_eq!(f.reason, "no funds");
        let e = ErrorObject::new("identification", "genericError", "");
        assert_eq!(failure_of(&e).code, FailureCode::PartyNotFound);
        let e = ErrorObject::new("authorisation", "requestDeclined", "declined");
        assert_eq!(failure_of(&e).code, FailureCode::Declined);
        let e = ErrorObject::new("businessRule", "operatorSpecific42", "x");
        assert_eq!(failure_of(&e).code, FailureCode::RailRejected);
    }

    #[test]
    fn amounts_follow_the_prose_rules() {
        for ok in ["5", "5.00", "0.5", "200.00", "1.2345"] {
            assert!(is_valid_amount(ok), "{ok}");
        }
        for bad in ["5.", ".5", "00.5", "5.55555", "-1", "1e3", ""] {
            assert!(!is_valid_amount(bad), "{bad}");
        }
    }

    #[test]
    fn fixtures_parse() {
        let cb = include_str!("../../../fixtures/mmapi/callback-transaction-completed.json");
        match Resource::sniff(cb.as_bytes()).unwrap() {
            Resource::Transaction(t) => {
                assert_eq!(
                    status_of_transaction(&t),
                    RailStatus::Completed(settled_of(&t).unwrap())
                );
                assert_eq!(
                    settled_of(&t).unwrap().amount,
                    Some(Money::parse("1500", railgate_rail::Currency::Tzs).unwrap())
                );
                let mut other = t.clone();
                other.amount = Some("1500.0000".into());
                assert_eq!(
                    settled_of(&other).unwrap().amount,
                    settled_of(&t).unwrap().amount
                );
                other.amount = Some("15x".into());
                assert_eq!(status_of_transaction(&other), RailStatus::Pending);
                assert_eq!(t.amount.as_deref(), Some("1500.00"));
            }
            other => panic!("{other:?}"),
        }
        let err = include_str!("../../../fixtures/mmapi/callback-error-insufficient-funds.json");
        match Resource::sniff(err.as_bytes()).unwrap() {
            Resource::Error(e) => assert_eq!(failure_of(&e).code, FailureCode::InsufficientFunds),
            other => panic!("{other:?}"),
        }
        let rs = include_str!("../../../fixtures/mmapi/requeststate-failed.json");
        match Resource::sniff(rs.as_bytes()).unwrap() {
            Resource::RequestState(rs) => {
                assert_eq!(rs.status, RequestStatus::Failed);
                assert_eq!(failure_of_state(&rs).code, FailureCode::Declined);
            }
            other => panic!("{other:?}"),
        }
        let ack = include_str!("../../../fixtures/mmapi/ack-202-pending.json");
        assert!(matches!(
            Resource::sniff(ack.as_bytes()).unwrap(),
            Resource::RequestState(_)
        ));
    }
}
