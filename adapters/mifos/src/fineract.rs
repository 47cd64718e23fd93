//! Apache Fineract savings accounts as a direct rail, for schemes without a payment hub:
//! a disbursement is a deposit into the beneficiary's savings account, a collection a
//! withdrawal from the member's (which the member authorised beforehand).
//!
//! Fineract books synchronously, so an answer is final. Each command carries our attempt id
//! as its `Idempotency-Key` (Fineract stores the key with the command; without one it would
//! make up its own, and a resend would book twice) and as the transaction's receipt number.
//! Fineract cannot report a transaction's status by our id after a lost answer, so `inquire`
//! reads the account's transaction list and looks for our attempt id there; when it is not
//! there (yet) the answer is `Pending`, which the gateway turns into an operator exception at
//! the deadline. Nothing here ever deposits a second time on its own.

use crate::fineract_wire::{
    self as fw, ApiError, CommandResult, SavingsAccount, SavingsTransactionRequest,
};
use crate::secret::Secret;
use async_trait::async_trait;
use base64::Engine;
use railgate_rail::tls::{self, ClientTls};
use railgate_rail::transport;
use railgate_rail::{
    Attempt, CallbackError, CallbackReply, Capabilities, Currency, Direction, Failure, FailureCode,
    InboundRequest, PartyIdType, RailAdapter, RailError, RailStatus, Settled, Submitted,
};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
pub struct FineractConfig {
    /// The rail's id in the gateway ("fineract").
    pub rail_id: String,
    /// Up to and including `/fineract-provider/api/v1`.
    pub base_url: String,
    /// `Fineract-Platform-TenantId`.
    pub tenant: String,
    pub username: String,
    pub password: Secret,
    /// The payment type booked with each transaction, if the deployment requires one.
    #[serde(default)]
    pub payment_type_id: Option<i64>,
    pub currencies: Vec<Currency>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Client certificate, CA bundle and pin for Fineract's TLS; `None`: the public roots.
    #[serde(skip)]
    pub tls: Option<ClientTls>,
}

fn default_timeout_ms() -> u64 {
    10_000
}

pub struct FineractAdapter {
    cfg: FineractConfig,
    http: reqwest::Client,
    auth: Secret,
}

impl FineractAdapter {
    pub fn new(cfg: FineractConfig) -> Result<FineractAdapter, RailError> {
        let http = tls::client_builder(cfg.tls.as_ref())
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms.min(3_000)))
            .build()
            .map_err(|e| RailError::Permanent(format!("http client: {e}")))?;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            cfg.username,
            cfg.password.expose()
        ));
        Ok(FineractAdapter {
            cfg,
            http,
            auth: Secret::new(format!("Basic {basic}")),
        })
    }

    /// The savings account id the party names.
    fn account(attempt: &Attempt) -> Result<i64, Failure> {
        match attempt.party.id_type() {
            PartyIdType::AccountId => attempt.party.id_value().parse::<i64>().map_err(|_| {
                Failure::new(
                    FailureCode::InvalidRequest,
                    "a Fineract savings account id is numeric",
                    None,
                )
            }),
            other @ (PartyIdType::Msisdn
            | PartyIdType::Iban
            | PartyIdType::Business
            | PartyIdType::Alias
            | PartyIdType::WalletId
            | PartyIdType::PersonalId) => Err(Failure::new(
                FailureCode::InvalidRequest,
                format!("Fineract pays savings accounts, not {other}"),
                None,
            )),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.cfg.base_url, path))
            .header("Fineract-Platform-TenantId", &self.cfg.tenant)
            .header("Authorization", self.auth.expose())
    }
}

#[async_trait]
impl RailAdapter for FineractAdapter {
    fn id(&self) -> &str {
        &self.cfg.rail_id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            disbursement: true,
            // A withdrawal the member authorised in advance, not a prompt.
            request_to_pay: true,
            currencies: self.cfg.currencies.clone(),
            bulk: false,
            inquiry: true,
            reversal: false,
            max_amount: None,
            whole_units_only: false,
        }
    }

    /// Fineract may refuse a deposit (403) and book it all the same.
    fn failures_final(&self) -> bool {
        false
    }

    async fn submit(&self, attempt: &Attempt) -> Result<Submitted, RailError> {
        let account = match Self::account(attempt) {
            Ok(a) => a,
            Err(f) => return Ok(Submitted::Rejected(f)),
        };
        let command = match attempt.direction {
            Direction::Disbursement => "deposit",
            Direction::Collection => "withdrawal",
        };
        let id = attempt.attempt_id.to_string();
        let body = SavingsTransactionRequest {
            transaction_date: attempt.created_at.format("%d %B %Y").to_string(),
            date_format: "dd MMMM yyyy",
            locale: "en",
            transaction_amount: fw::json_number(attempt.amount)
                .map_err(|e| RailError::Permanent(e.to_string()))?,
            payment_type_id: self.cfg.payment_type_id,
            receipt_number: id.clone(),
            note: format!("railgate {id} {}", attempt.reference),
        };
        tracing::info!(attempt_id = %attempt.attempt_id, account = %attempt.party.masked(), command, "Sending to Fineract");
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("/savingsaccounts/{account}/transactions"),
            )
            .query(&[("command", command)])
            .header("Idempotency-Key", &id)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                transport::send_error(&e, &format!("Fineract (rail {})", self.cfg.rail_id))
            })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            RailError::Unknown(format!("answer lost after the command was sent: {e}"))
        })?;
        if (200..300).contains(&status) {
            let r: CommandResult = serde_json::from_slice(&bytes)
                .map_err(|e| RailError::Unknown(format!("unreadable answer: {e}")))?;
            // Fineract's command result carries no amount: the command just sent did.
            return Ok(Submitted::Completed(Settled {
                rail_reference: Some(r.resource_id.to_string()),
                receipt: Some(r.resource_id.to_string()),
                amount: None,
            }));
        }
        let err: ApiError = serde_json::from_slice(&bytes).unwrap_or_default();
        match status {
            409 => Err(RailError::Retryable(format!(
                "Fineract conflict: {}",
                err.message()
            ))),
            _ if err.is_concurrency_conflict() => Err(RailError::Retryable(err.message())),
            401 => Err(RailError::Permanent(
                "Fineract refused our credentials".into(),
            )),
            403 | 404 => Ok(Submitted::Rejected(err.failure(status))),
            400 => Ok(Submitted::Rejected(err.failure(status))),
            429 | 503 => Err(RailError::Retryable(format!("HTTP {status}"))),
            _ => Err(RailError::Unknown(format!(
                "HTTP {status}: {}",
                err.message()
            ))),
        }
    }

    async fn inquire(&self, attempt: &Attempt) -> Result<RailStatus, RailError> {
        let account = match Self::account(attempt) {
            Ok(a) => a,
            Err(f) => return Ok(RailStatus::Failed(f)),
        };
        let resp = self
            .request(reqwest::Method::GET, &format!("/savingsaccounts/{account}"))
            .query(&[("associations", "transactions")])
            .send()
            .await
            .map_err(|e| {
                transport::send_error(&e, &format!("Fineract (rail {})", self.cfg.rail_id))
            })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| RailError::Unknown(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(match status {
                429 | 503 => RailError::Retryable(format!("HTTP {status}")),
                _ => RailError::Unknown(format!("account lookup answered HTTP {status}")),
            });
        }
        let acct: SavingsAccount = serde_json::from_slice(&bytes)
            .map_err(|e| RailError::Unknown(format!("unreadable account: {e}")))?;
        let id = attempt.attempt_id.to_string();
        let wanted = |t: &fw::SavingsTransaction| match attempt.direction {
            Direction::Disbursement => t.transaction_type.deposit,
            Direction::Collection => t.transaction_type.withdrawal,
        };
        let ours: Vec<&fw::SavingsTransaction> = acct
            .transactions
            .iter()
            .filter(|t| t.is_attempt(&id) && wanted(t))
            .collect();
        if let Some(t) = ours.iter().find(|t| !t.reversed) {
            // The account's currency is the attempt's (the savings account was chosen by it);
            // the booked amount goes to the gateway, which records another amount as a
            // conflict for an operator rather than completing the payment.
            let Some(booked) = t.money(attempt.amount.currency()) else {
                tracing::error!(attempt_id = %attempt.attempt_id, transaction = t.id, "Fineract booked an unreadable amount; not taken as final");
                return Ok(RailStatus::Pending);
            };
            return Ok(RailStatus::Completed(Settled {
                rail_reference: Some(t.id.to_string()),
                receipt: Some(t.id.to_string()),
                amount: Some(booked),
            }));
        }
        if let Some(t) = ours.iter().find(|t| t.reversed) {
            return Ok(RailStatus::Failed(Failure::new(
                FailureCode::RailRejected,
                format!("Fineract transaction {} was undone", t.id),
                Some("reversed".into()),
            )));
        }
        // Not on the account (yet): never "not found", which would invite a second deposit.
        Ok(RailStatus::Pending)
    }

    fn callback(&self, _request: &InboundRequest) -> Result<CallbackReply, CallbackError> {
        // Fineract calls nobody; anything claiming to be it is refused.
        Err(CallbackError::UnknownRoute)
    }
}
