//! Payment Hub EE's JSON, as its channel connector and operations app speak it, and what its
//! statuses mean for us.
//!
//! Field names follow ph-ee-connector-common's DTOs (`TransactionChannelRequestDTO`,
//! `PhErrorDTO`, `MoneyData`) and the operations app's `TransferResponse`/`BatchDTO`.

use railgate_rail::{Currency, Failure, FailureCode, Money, PartyIdType, RailStatus, Settled};
use serde::{Deserialize, Serialize};

/// `amount` objects: a decimal string and a three-letter currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyData {
    pub amount: String,
    pub currency: String,
}

impl From<Money> for MoneyData {
    fn from(m: Money) -> Self {
        MoneyData {
            amount: m.to_decimal_string(),
            currency: m.currency().code().to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartyIdInfo {
    pub party_id_type: String,
    pub party_identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsp_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhParty {
    pub party_id_info: PartyIdInfo,
}

/// PH-EE's identifier types (ph-ee-connector-common `IdentifierType`).
pub fn id_type(t: PartyIdType) -> Option<&'static str> {
    match t {
        PartyIdType::Msisdn => Some("MSISDN"),
        PartyIdType::AccountId => Some("ACCOUNT_ID"),
        PartyIdType::Iban => Some("IBAN"),
        PartyIdType::Business => Some("BUSINESS"),
        PartyIdType::Alias => Some("ALIAS"),
        PartyIdType::PersonalId => Some("PERSONAL_ID"),
        PartyIdType::WalletId => None,
    }
}

/// `POST /channel/transfer` body (`TransactionChannelRequestDTO`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferRequest {
    pub client_ref_id: String,
    pub payer: PhParty,
    pub payee: PhParty,
    pub amount: MoneyData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// `POST /channel/collection` body: the payer is a list, primary id first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionRequest {
    pub payer: Vec<KeyValue>,
    pub amount: MoneyData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_type: Option<serde_json::Value>,
}

/// The channel's answer to a transfer or collection: a workflow id, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionResponse {
    pub transaction_id: String,
}

/// PH-EE's error body (`PhErrorDTO`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhError {
    #[serde(default)]
    pub error_category: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub developer_message: Option<String>,
    #[serde(default)]
    pub default_user_message: Option<String>,
}

/// The error code the channel's idempotency filter answers a reused `X-CorrelationID` with.
pub const TRANSACTION_EXISTS: &str = "TransactionExists";

/// A Spring `Page` as the operations app returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub content: Vec<T>,
    #[serde(default)]
    pub total_elements: u64,
    #[serde(default)]
    pub total_pages: u64,
    #[serde(default)]
    pub number: u64,
}

/// Operations-app transfer status (`TransferStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferStatus {
    Completed,
    Failed,
    InProgress,
    Unknown,
    Exception,
}

/// One transfer as the operations app lists it (`TransferResponse`, the fields we read).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpsTransfer {
    #[serde(default)]
    pub workflow_instance_key: Option<serde_json::Value>,
    pub transaction_id: String,
    #[serde(default)]
    pub started_at: Option<serde_json::Value>,
    #[serde(default)]
    pub completed_at: Option<serde_json::Value>,
    pub status: TransferStatus,
    #[serde(default)]
    pub status_detail: Option<String>,
    #[serde(default)]
    pub payee_party_id: Option<String>,
    #[serde(default)]
    pub payee_party_id_type: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub error_information: Option<PhError>,
    #[serde(default)]
    pub batch_id: Option<String>,
    #[serde(default)]
    pub client_correlation_id: Option<String>,
}

/// Operations-app request-to-pay state (`TransactionRequestState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionRequestState {
    InProgress,
    Initiated,
    Received,
    Accepted,
    Rejected,
    Failed,
    Success,
    RequestAccepted,
    NotAutosaved,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpsTransactionRequest {
    pub transaction_id: String,
    pub state: TransactionRequestState,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub error_information: Option<PhError>,
    #[serde(default)]
    pub client_correlation_id: Option<String>,
}

/// The bulk processor's 202 answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkAccepted {
    #[serde(rename = "PollingPath")]
    pub polling_path: String,
    #[serde(rename = "SuggestedCallbackSeconds", default)]
    pub suggested_callback_seconds: Option<String>,
}

/// The operations app's batch summary (`BatchDTO`, the fields we read).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    pub batch_id: String,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub ongoing: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub successful: u64,
    #[serde(default)]
    pub status: Option<String>,
}

/// The batch callback: a percentage, repeated per phase, unsigned. Only a hint to poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCallback {
    #[serde(default)]
    pub client_correlation_id: Option<String>,
    #[serde(default)]
    pub batch_id: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// What a PH-EE error code means. PH-EE passes on the error codes of the rail it routes to
/// (Mojaloop's numeric FSPIOP codes for the `mojaloop` mode), so the ranges are Mojaloop's.
pub fn failure_from(error: Option<&PhError>, fallback: &str) -> Failure {
    let code = error.and_then(|e| e.error_code.clone());
    let text = error
        .and_then(|e| {
            e.error_description
                .clone()
                .or_else(|| e.developer_message.clone())
        })
        .unwrap_or_else(|| fallback.to_owned());
    let ours = match code.as_deref().and_then(|c| c.parse::<u32>().ok()) {
        Some(4000 | 4001) => FailureCode::InsufficientFunds,
        Some(3200..=3299) => FailureCode::PartyNotFound,
        Some(4100..=4199 | 5100..=5199) => FailureCode::Declined,
        Some(4200..=4299 | 4300..=4399 | 5200..=5299) => FailureCode::LimitExceeded,
        Some(3300..=3303) => FailureCode::Expired,
        Some(3100..=3199) => FailureCode::InvalidRequest,
        Some(2000..=2999) => FailureCode::RailUnavailable,
        _ => FailureCode::RailRejected,
    };
    Failure::new(ours, text, code)
}

impl OpsTransfer {
    /// What the operations app's record says about the payment. `UNKNOWN`/`EXCEPTION` are
    /// not outcomes: they stay pending until an operator or a statement settles them.
    pub fn status(&self) -> RailStatus {
        match self.status {
            TransferStatus::Completed => completed(
                &self.transaction_id,
                self.amount.as_deref(),
                self.currency.as_deref(),
            ),
            TransferStatus::Failed => RailStatus::Failed(failure_from(
                self.error_information.as_ref(),
                "transfer failed in Payment Hub",
            )),
            TransferStatus::InProgress | TransferStatus::Unknown | TransferStatus::Exception => {
                RailStatus::Pending
            }
        }
    }

    /// The amount PH-EE recorded, exactly (it writes BigDecimals without trailing zeros).
    pub fn money(&self) -> Option<Money> {
        let c: Currency = self.currency.as_deref()?.parse().ok()?;
        parse_amount(self.amount.as_deref()?, c)
    }
}

/// A completed record, with the amount it names for the gateway to compare with the
/// payment's. An amount that is there but not money in its currency is no completion we can
/// check: the record is taken as not final (the deadline hands it to an operator).
fn completed(transaction_id: &str, amount: Option<&str>, currency: Option<&str>) -> RailStatus {
    let money = match (amount, currency) {
        (None, _) => None,
        (Some(a), c) => match c.and_then(|c| c.parse::<Currency>().ok()) {
            Some(c) => match parse_amount(a, c) {
                Some(m) => Some(m),
                None => return unreadable_amount(transaction_id),
            },
            None => return unreadable_amount(transaction_id),
        },
    };
    RailStatus::Completed(Settled {
        rail_reference: Some(transaction_id.to_owned()),
        receipt: Some(transaction_id.to_owned()),
        amount: money,
    })
}

fn unreadable_amount(transaction_id: &str) -> RailStatus {
    tracing::error!(
        transaction_id,
        "Payment Hub reports a completion with an unreadable amount; not taken as final"
    );
    RailStatus::Pending
}

impl OpsTransactionRequest {
    pub fn status(&self) -> RailStatus {
        match self.state {
            TransactionRequestState::Success => completed(
                &self.transaction_id,
                self.amount.as_deref(),
                self.currency.as_deref(),
            ),
            TransactionRequestState::Rejected => RailStatus::Failed(failure_from(
                self.error_information.as_ref(),
                "the payer rejected the request",
            ))
            .with_default_code(FailureCode::Declined),
            TransactionRequestState::Failed => RailStatus::Failed(failure_from(
                self.error_information.as_ref(),
                "request to pay failed",
            )),
            TransactionRequestState::InProgress
            | TransactionRequestState::Initiated
            | TransactionRequestState::Received
            | TransactionRequestState::Accepted
            | TransactionRequestState::RequestAccepted
            | TransactionRequestState::NotAutosaved => RailStatus::Pending,
        }
    }
}

trait DefaultCode {
    fn with_default_code(self, code: FailureCode) -> Self;
}

impl DefaultCode for RailStatus {
    /// A rejection without an error code is the payer's refusal.
    fn with_default_code(self, code: FailureCode) -> Self {
        match self {
            RailStatus::Failed(mut f) if f.rail_code.is_none() => {
                f.code = code;
                RailStatus::Failed(f)
            }
            other => other,
        }
    }
}

/// Parses an amount PH-EE or Fineract wrote ("1500.5", "1500.500000", "1500"), exactly:
/// trailing zeros of the fraction carry no value and are dropped before the strict parse.
pub fn parse_amount(value: &str, currency: Currency) -> Option<Money> {
    let v = value.trim();
    let v = if v.contains('.') {
        v.trim_end_matches('0').trim_end_matches('.')
    } else {
        v
    };
    Money::parse(v, currency).ok()
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly() {
        let m = |s| parse_amount(s, Currency::Ugx).map(Money::minor);
        assert_eq!(m("1500.000000"), Some(1500));
        assert_eq!(m("1500"), Some(1500));
        assert_eq!(m("1500.5"), None);
        assert_eq!(
            parse_amount("12.5", Currency::Usd).map(Money::minor),
            Some(1250)
        );
    }

    #[test]
    fn statuses_map() {
        let t = |status, code: Option<&str>| OpsTransfer {
            workflow_instance_key: None,
            transaction_id: "t".into(),
            started_at: None,
            completed_at: None,
            status,
            status_detail: None,
            payee_party_id: None,
            payee_party_id_type: None,
            amount: None,
            currency: None,
            error_information: code.map(|c| PhError {
                error_code: Some(c.into()),
                ..PhError::default()
            }),
            batch_id: None,
            client_correlation_id: None,
        };
        assert!(matches!(
            t(TransferStatus::Completed, None).status(),
            RailStatus::Completed(_)
        ));
        assert_eq!(
            t(TransferStatus::Unknown, None).status(),
            RailStatus::Pending
        );
        assert_eq!(
            t(TransferStatus::Exception, None).status(),
            RailStatus::Pending
        );
        match t(TransferStatus::Failed, Some("3204")).status() {
            RailStatus::Failed(f) => assert_eq!(f.code, FailureCode::PartyNotFound),
            other => panic!("{other:?}"),
        }
    }
}
