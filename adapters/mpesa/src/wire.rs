//! Daraja wire structs and their mappings onto our types.
//!
//! Daraja's JSON types wander: `ResponseCode` is a string in acknowledgements, `ResultCode`
//! a number in callbacks and a string in STK Query answers, `ReferenceItem` an object or an
//! array. The readers here accept each form.

use railgate_rail::{Failure, FailureCode, Settled};
use serde::{Deserialize, Serialize};

/// `POST /mpesa/b2c/v3/paymentrequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct B2cRequest {
    #[serde(rename = "OriginatorConversationID")]
    pub originator_conversation_id: String,
    #[serde(rename = "InitiatorName")]
    pub initiator_name: String,
    #[serde(rename = "SecurityCredential")]
    pub security_credential: String,
    #[serde(rename = "CommandID")]
    pub command_id: String,
    /// Whole shillings.
    #[serde(rename = "Amount")]
    pub amount: i64,
    #[serde(rename = "PartyA")]
    pub party_a: String,
    #[serde(rename = "PartyB")]
    pub party_b: String,
    #[serde(rename = "Remarks")]
    pub remarks: String,
    #[serde(rename = "QueueTimeOutURL")]
    pub queue_timeout_url: String,
    #[serde(rename = "ResultURL")]
    pub result_url: String,
    #[serde(rename = "Occasion")]
    pub occasion: String,
}

/// The synchronous acknowledgement of B2C and Transaction Status requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    #[serde(rename = "ConversationID")]
    pub conversation_id: String,
    #[serde(rename = "OriginatorConversationID")]
    pub originator_conversation_id: String,
    #[serde(rename = "ResponseCode")]
    pub response_code: String,
    #[serde(rename = "ResponseDescription")]
    pub response_description: String,
}

/// The error envelope of the API proxy (`401.002.01` invalid token, `400.002.02` bad request,
/// `500.001.1001` STK still processing, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(rename = "requestId", default)]
    pub request_id: String,
    #[serde(rename = "errorCode")]
    pub error_code: String,
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
}

/// `POST /mpesa/stkpush/v1/processrequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StkPushRequest {
    #[serde(rename = "BusinessShortCode")]
    pub business_short_code: String,
    #[serde(rename = "Password")]
    pub password: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "TransactionType")]
    pub transaction_type: String,
    #[serde(rename = "Amount")]
    pub amount: i64,
    #[serde(rename = "PartyA")]
    pub party_a: String,
    #[serde(rename = "PartyB")]
    pub party_b: String,
    #[serde(rename = "PhoneNumber")]
    pub phone_number: String,
    #[serde(rename = "CallBackURL")]
    pub callback_url: String,
    #[serde(rename = "AccountReference")]
    pub account_reference: String,
    #[serde(rename = "TransactionDesc")]
    pub transaction_desc: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StkAck {
    #[serde(rename = "MerchantRequestID")]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
    #[serde(rename = "ResponseCode")]
    pub response_code: String,
    #[serde(rename = "ResponseDescription")]
    pub response_description: String,
    #[serde(rename = "CustomerMessage", default)]
    pub customer_message: String,
}

/// `POST /mpesa/stkpushquery/v1/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StkQueryRequest {
    #[serde(rename = "BusinessShortCode")]
    pub business_short_code: String,
    #[serde(rename = "Password")]
    pub password: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StkQueryResponse {
    #[serde(rename = "ResponseCode")]
    pub response_code: serde_json::Value,
    #[serde(rename = "ResponseDescription", default)]
    pub response_description: String,
    #[serde(rename = "MerchantRequestID", default)]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID", default)]
    pub checkout_request_id: String,
    #[serde(rename = "ResultCode")]
    pub result_code: serde_json::Value,
    #[serde(rename = "ResultDesc", default)]
    pub result_desc: String,
}

/// `POST /mpesa/transactionstatus/v1/query`. `OriginatorConversationID` names the original
/// payment (our attempt id), which newer Daraja versions accept in place of `TransactionID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionStatusRequest {
    #[serde(rename = "Initiator")]
    pub initiator: String,
    #[serde(rename = "SecurityCredential")]
    pub security_credential: String,
    #[serde(rename = "CommandID")]
    pub command_id: String,
    #[serde(
        rename = "TransactionID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub transaction_id: String,
    #[serde(rename = "OriginatorConversationID", default)]
    pub originator_conversation_id: String,
    #[serde(rename = "PartyA")]
    pub party_a: String,
    #[serde(rename = "IdentifierType")]
    pub identifier_type: String,
    #[serde(rename = "ResultURL")]
    pub result_url: String,
    #[serde(rename = "QueueTimeOutURL")]
    pub queue_timeout_url: String,
    #[serde(rename = "Remarks")]
    pub remarks: String,
    #[serde(rename = "Occasion")]
    pub occasion: String,
}

/// One `{Key, Value}` of `ResultParameters` / `ReferenceData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: Option<serde_json::Value>,
}

/// An object or an array of them (Daraja uses both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    pub fn items(&self) -> Vec<&T> {
        match self {
            OneOrMany::Many(v) => v.iter().collect(),
            OneOrMany::One(t) => vec![t],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultParameters {
    #[serde(rename = "ResultParameter")]
    pub result_parameter: OneOrMany<Param>,
}

/// The `Result` POSTed to `ResultURL` (B2C results, Transaction Status results).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultBody {
    #[serde(rename = "ResultType", default)]
    pub result_type: Option<serde_json::Value>,
    #[serde(rename = "ResultCode")]
    pub result_code: serde_json::Value,
    #[serde(rename = "ResultDesc", default)]
    pub result_desc: String,
    #[serde(rename = "OriginatorConversationID", default)]
    pub originator_conversation_id: String,
    #[serde(rename = "ConversationID", default)]
    pub conversation_id: String,
    #[serde(rename = "TransactionID", default)]
    pub transaction_id: Option<String>,
    #[serde(
        rename = "ResultParameters",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub result_parameters: Option<ResultParameters>,
    #[serde(
        rename = "ReferenceData",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reference_data: Option<serde_json::Value>,
}

impl ResultBody {
    /// A result parameter as text (numbers are rendered as Daraja sent them).
    pub fn param(&self, key: &str) -> Option<String> {
        let params = self.result_parameters.as_ref()?;
        params
            .result_parameter
            .items()
            .into_iter()
            .find(|p| p.key == key)
            .and_then(|p| p.value.as_ref())
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultEnvelope {
    #[serde(rename = "Result")]
    pub result: ResultBody,
}

/// One `{Name, Value}` of the STK callback metadata (`Balance` comes without a value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackMetadata {
    #[serde(rename = "Item")]
    pub item: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StkCallback {
    #[serde(rename = "MerchantRequestID", default)]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
    #[serde(rename = "ResultCode")]
    pub result_code: serde_json::Value,
    #[serde(rename = "ResultDesc", default)]
    pub result_desc: String,
    #[serde(
        rename = "CallbackMetadata",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub callback_metadata: Option<CallbackMetadata>,
}

impl StkCallback {
    pub fn item(&self, name: &str) -> Option<String> {
        self.callback_metadata
            .as_ref()?
            .item
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.value.as_ref())
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StkBody {
    #[serde(rename = "stkCallback")]
    pub stk_callback: StkCallback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StkCallbackEnvelope {
    #[serde(rename = "Body")]
    pub body: StkBody,
}

/// A result code given as a number or a numeric string.
pub fn code_of(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Which API a result code came from: a few codes mean different things in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    B2c,
    Stk,
}

/// The result codes Railgate knows (Daraja publishes no complete list; the sources are in
/// the rail notes). Any other code is a failure kept with its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Success,
    /// 1: "The balance is insufficient for the transaction."
    InsufficientBalance,
    /// 17: internal error / rule limited.
    InternalError,
    /// 26: system busy.
    SystemBusy,
    /// 1001: unable to lock subscriber, a transaction is already in process.
    SubscriberLocked,
    /// 1019: transaction has expired.
    Expired,
    /// 1025 and 9999: the push request could not be sent.
    PushNotSent,
    /// 1032: request cancelled by user.
    CancelledByUser,
    /// 1037: DS timeout, user cannot be reached.
    UserUnreachable,
    /// 2001: the initiator information is invalid (STK: the payer's wrong PIN; B2C: our
    /// initiator credentials).
    InitiatorInvalid,
    /// 2028: the request is not permitted according to product assignment.
    NotPermitted,
    /// 2040: the credit party customer type (unregistered or registered) is not supported.
    CustomerTypeNotSupported,
    /// 8006: the security credential is locked.
    CredentialLocked,
    Other(i64),
}

impl ResultCode {
    pub fn from_code(code: i64) -> ResultCode {
        match code {
            0 => ResultCode::Success,
            1 => ResultCode::InsufficientBalance,
            17 => ResultCode::InternalError,
            26 => ResultCode::SystemBusy,
            1001 => ResultCode::SubscriberLocked,
            1019 => ResultCode::Expired,
            1025 | 9999 => ResultCode::PushNotSent,
            1032 => ResultCode::CancelledByUser,
            1037 => ResultCode::UserUnreachable,
            2001 => ResultCode::InitiatorInvalid,
            2028 => ResultCode::NotPermitted,
            2040 => ResultCode::CustomerTypeNotSupported,
            8006 => ResultCode::CredentialLocked,
            other => ResultCode::Other(other),
        }
    }
}

/// What a final result code means: `Ok` completed, `Err` failed with our reason.
pub fn outcome_of(code: i64, desc: &str, flow: Flow) -> Result<(), Failure> {
    let failure = match ResultCode::from_code(code) {
        ResultCode::Success => return Ok(()),
        ResultCode::InsufficientBalance => FailureCode::InsufficientFunds,
        ResultCode::InternalError
        | ResultCode::SystemBusy
        | ResultCode::SubscriberLocked
        | ResultCode::PushNotSent => FailureCode::RailUnavailable,
        ResultCode::Expired => FailureCode::Expired,
        ResultCode::CancelledByUser => FailureCode::Declined,
        // Daraja answers the same for an unknown number and a phone that is off.
        ResultCode::UserUnreachable => FailureCode::PartyNotFound,
        ResultCode::InitiatorInvalid => match flow {
            Flow::Stk => FailureCode::Declined,
            Flow::B2c => FailureCode::RailRejected,
        },
        ResultCode::NotPermitted | ResultCode::CredentialLocked => FailureCode::RailRejected,
        ResultCode::CustomerTypeNotSupported => FailureCode::PartyNotFound,
        ResultCode::Other(_) => FailureCode::RailRejected,
    };
    let reason = if desc.trim().is_empty() {
        format!("M-Pesa result code {code}")
    } else {
        desc.to_owned()
    };
    Err(Failure::new(failure, reason, Some(code.to_string())))
}

/// The settlement a B2C result reports.
pub fn settled_of_result(r: &ResultBody) -> Settled {
    let receipt = r
        .param("TransactionReceipt")
        .or_else(|| r.transaction_id.clone())
        .filter(|s| !s.is_empty());
    Settled {
        rail_reference: Some(r.conversation_id.clone()).filter(|s| !s.is_empty()),
        receipt,
        // Read exactly from the raw body by the caller (`TransactionAmount`).
        amount: None,
    }
}

/// The `TransactionStatus` a Transaction Status result reports for the original payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueriedStatus {
    Completed,
    Failed,
    Other(String),
}

impl QueriedStatus {
    pub fn parse(s: &str) -> QueriedStatus {
        match s.trim().to_ascii_lowercase().as_str() {
            "completed" | "success" => QueriedStatus::Completed,
            "failed" | "declined" | "cancelled" | "expired" => QueriedStatus::Failed,
            _ => QueriedStatus::Other(s.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn codes_map_by_flow() {
        assert_eq!(outcome_of(0, "", Flow::B2c), Ok(()));
        assert_eq!(
            outcome_of(1, "x", Flow::B2c).unwrap_err().code,
            FailureCode::InsufficientFunds
        );
        assert_eq!(
            outcome_of(1032, "x", Flow::Stk).unwrap_err().code,
            FailureCode::Declined
        );
        assert_eq!(
            outcome_of(2001, "x", Flow::Stk).unwrap_err().code,
            FailureCode::Declined
        );
        assert_eq!(
            outcome_of(2001, "x", Flow::B2c).unwrap_err().code,
            FailureCode::RailRejected
        );
        assert_eq!(
            outcome_of(1037, "x", Flow::Stk).unwrap_err().code,
            FailureCode::PartyNotFound
        );
        assert_eq!(
            outcome_of(1019, "x", Flow::Stk).unwrap_err().code,
            FailureCode::Expired
        );
        let f = outcome_of(4242, "", Flow::B2c).unwrap_err();
        assert_eq!(
            (f.code, f.rail_code.as_deref()),
            (FailureCode::RailRejected, Some("4242"))
        );
    }

    #[test]
    fn fixtures_parse() {
        let b2c: ResultEnvelope = serde_json::from_str(include_str!(
            "../../../fixtures/mpesa/b2c-result-success.json"
        ))
        .unwrap();
        assert_eq!(code_of(&b2c.result.result_code), Some(0));
        assert_eq!(
            settled_of_result(&b2c.result).receipt.as_deref(),
            Some("SKP41HAY6Q")
        );
        let failed: ResultEnvelope = serde_json::from_str(include_str!(
            "../../../fixtures/mpesa/b2c-result-failed.json"
        ))
        .unwrap();
        assert_eq!(code_of(&failed.result.result_code), Some(1));
        assert!(failed.result.result_parameters.is_none());
        let stk: StkCallbackEnvelope = serde_json::from_str(include_str!(
            "../../../fixtures/mpesa/stk-callback-success.json"
        ))
        .unwrap();
        assert_eq!(
            stk.body.stk_callback.item("MpesaReceiptNumber").as_deref(),
            Some("SKH94M1Z11")
        );
        assert_eq!(stk.body.stk_callback.item("Balance"), None);
        let cancelled: StkCallbackEnvelope = serde_json::from_str(include_str!(
            "../../../fixtures/mpesa/stk-callback-cancelled.json"
        ))
        .unwrap();
        assert_eq!(
            code_of(&cancelled.body.stk_callback.result_code),
            Some(1032)
        );
        let query: StkQueryResponse = serde_json::from_str(include_str!(
            "../../../fixtures/mpesa/stk-query-cancelled.json"
        ))
        .unwrap();
        assert_eq!(code_of(&query.result_code), Some(1032));
    }
}
