//! Apache Fineract's savings-account JSON (the fields we use), and what its answers mean.

use railgate_rail::{Currency, Failure, FailureCode, Money};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `POST /savingsaccounts/{id}/transactions?command=deposit|withdrawal`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavingsTransactionRequest {
    /// "25 November 2026", read with `dateFormat` and `locale`.
    pub transaction_date: String,
    pub date_format: &'static str,
    pub locale: &'static str,
    /// A JSON number written from our decimal string, never through a float.
    pub transaction_amount: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_type_id: Option<i64>,
    /// Our attempt id: the one field `inquire` finds the transaction by after a lost answer.
    pub receipt_number: String,
    pub note: String,
}

/// Fineract's answer to a command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandResult {
    #[serde(default)]
    pub office_id: Option<i64>,
    #[serde(default)]
    pub client_id: Option<i64>,
    #[serde(default)]
    pub savings_id: Option<i64>,
    pub resource_id: i64,
}

/// Fineract's error body (`ApiGlobalErrorResponse`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(default)]
    pub developer_message: Option<String>,
    #[serde(default)]
    pub http_status_code: Option<String>,
    #[serde(default)]
    pub default_user_message: Option<String>,
    #[serde(default)]
    pub user_message_globalisation_code: Option<String>,
    #[serde(default)]
    pub errors: Vec<ApiErrorDetail>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorDetail {
    #[serde(default)]
    pub developer_message: Option<String>,
    #[serde(default)]
    pub default_user_message: Option<String>,
    #[serde(default)]
    pub user_message_globalisation_code: Option<String>,
    #[serde(default)]
    pub parameter_name: Option<String>,
}

impl ApiError {
    /// The most specific globalisation code: the first detail's, else the top-level one.
    pub fn code(&self) -> Option<&str> {
        self.errors
            .iter()
            .find_map(|e| e.user_message_globalisation_code.as_deref())
            .or(self.user_message_globalisation_code.as_deref())
    }

    pub fn message(&self) -> String {
        self.errors
            .iter()
            .find_map(|e| e.default_user_message.clone())
            .or_else(|| self.default_user_message.clone())
            .or_else(|| self.developer_message.clone())
            .unwrap_or_else(|| "refused by Fineract".into())
    }

    /// Optimistic-lock conflicts: nothing was written, the same command may be sent again.
    pub fn is_concurrency_conflict(&self) -> bool {
        self.code().is_some_and(|c| c.contains("concurrent"))
    }

    /// What a domain-rule refusal means for the payment.
    pub fn failure(&self, http_status: u16) -> Failure {
        let code = self.code().map(str::to_owned);
        let c = code.as_deref().unwrap_or("");
        let ours = if http_status == 404 || c.contains("id.invalid") || c.contains("not.found") {
            FailureCode::PartyNotFound
        } else if c.contains("insufficient") {
            FailureCode::InsufficientFunds
        } else if c.contains("not.active") || c.contains("closed") || c.contains("block") {
            FailureCode::Declined
        } else if c.contains("limit") || c.contains("exceed") {
            FailureCode::LimitExceeded
        } else if http_status == 400 {
            FailureCode::InvalidRequest
        } else {
            FailureCode::RailRejected
        };
        Failure::new(ours, self.message(), code)
    }
}

/// `GET /savingsaccounts/{id}?associations=transactions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavingsAccount {
    pub id: i64,
    #[serde(default)]
    pub currency: Option<CurrencyData>,
    #[serde(default)]
    pub transactions: Vec<SavingsTransaction>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrencyData {
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavingsTransaction {
    pub id: i64,
    pub transaction_type: TransactionType,
    /// A JSON number; read as text so no float ever holds it.
    pub amount: Box<RawValue>,
    #[serde(default)]
    pub reversed: bool,
    #[serde(default)]
    pub payment_detail_data: Option<PaymentDetail>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionType {
    #[serde(default)]
    pub deposit: bool,
    #[serde(default)]
    pub withdrawal: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDetail {
    #[serde(default)]
    pub receipt_number: Option<String>,
}

impl SavingsTransaction {
    pub fn money(&self, currency: Currency) -> Option<Money> {
        crate::wire::parse_amount(self.amount.get(), currency)
    }

    /// True when the transaction carries our attempt id (receipt number, else the note).
    pub fn is_attempt(&self, attempt_id: &str) -> bool {
        self.payment_detail_data
            .as_ref()
            .and_then(|p| p.receipt_number.as_deref())
            .is_some_and(|r| r == attempt_id)
            || self.note.as_deref().is_some_and(|n| n.contains(attempt_id))
    }
}

/// A JSON number holding exactly `m`.
pub fn json_number(m: Money) -> Result<Box<RawValue>, serde_json::Error> {
    RawValue::from_string(m.to_decimal_string())
}
