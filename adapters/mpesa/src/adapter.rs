//! The Daraja integration: B2C disbursements, STK push collections, their callbacks, and the
//! queries that settle unknown outcomes.

use crate::config::{B2cConfig, MpesaConfig, StkConfig};
use crate::wire::{
    code_of, outcome_of, settled_of_result, Ack, B2cRequest, ErrorEnvelope, Flow, QueriedStatus,
    ResultEnvelope, StkAck, StkCallbackEnvelope, StkPushRequest, StkQueryRequest, StkQueryResponse,
    TransactionStatusRequest,
};
use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use railgate_rail::oauth::{AccessToken, OAuthConfig, TokenClient, TokenRequest};
use railgate_rail::{tls, transport};
use railgate_rail::{
    Attempt, AttemptRef, CallbackError, CallbackEvent, CallbackOutcome, CallbackReply,
    Capabilities, Currency, Direction, Failure, FailureCode, InboundRequest, Money, PartyIdType,
    RailAdapter, RailError, RailStatus, Settled, Submitted,
};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Daraja's "the transaction is being processed" answer to an STK Query.
const STK_STILL_PROCESSING: &str = "500.001.1001";
/// Kenya's offset from UTC (no daylight saving): STK timestamps are local time.
const EAT_OFFSET_SECS: i32 = 3 * 3600;

pub struct MpesaAdapter {
    config: MpesaConfig,
    http: reqwest::Client,
    token: TokenClient,
}

struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Reply {
    fn envelope(&self) -> Option<ErrorEnvelope> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl MpesaAdapter {
    pub fn new(config: MpesaConfig) -> Result<MpesaAdapter, RailError> {
        if config.callback_secret.expose().len() < 16
            || config.callback_secret.expose().contains('/')
        {
            return Err(RailError::Permanent(
                "the callback secret must be at least 16 characters and contain no '/'".into(),
            ));
        }
        let http = tls::client_builder(config.tls.as_ref())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| RailError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        // Daraja's grant: `GET /oauth/v1/generate?grant_type=client_credentials` with Basic
        // key:secret; `expires_in` is a string ("3599").
        let mut oauth = OAuthConfig::client_credentials(
            format!(
                "{}/oauth/v1/generate?grant_type=client_credentials",
                config.base_url
            ),
            config.consumer_key.clone(),
            config.consumer_secret.clone(),
        );
        oauth.request = TokenRequest::Get;
        oauth.refresh_margin = config.token_refresh_margin;
        oauth.default_lifetime = Duration::from_secs(3599);
        let token = TokenClient::new(oauth, http.clone()).for_rail(&config.rail_id);
        Ok(MpesaAdapter {
            config,
            http,
            token,
        })
    }

    pub fn config(&self) -> &MpesaConfig {
        &self.config
    }

    fn callback_url(&self, tail: &str) -> String {
        format!(
            "{}/{}/{tail}",
            self.config.callback_base,
            self.config.callback_secret.expose()
        )
    }

    fn b2c(&self) -> Result<&B2cConfig, RailError> {
        self.config.b2c.as_ref().ok_or_else(|| {
            RailError::Permanent(format!(
                "rail {} is not set up for B2C",
                self.config.rail_id
            ))
        })
    }

    fn stk(&self) -> Result<&StkConfig, RailError> {
        self.config.stk.as_ref().ok_or_else(|| {
            RailError::Permanent(format!(
                "rail {} is not set up for STK push",
                self.config.rail_id
            ))
        })
    }

    async fn post<T: serde::Serialize>(&self, path: &str, body: &T) -> Result<Reply, RailError> {
        let token = self.token.token().await?;
        let resp = self
            .http
            .post(format!("{}{path}", self.config.base_url))
            .bearer_auth(token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| self.send_error(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.send_error(&e))?;
        let reply = Reply { status, body };
        if status == StatusCode::UNAUTHORIZED || is_token_error(&reply) {
            // Refused before anything happened: drop the token so the resend fetches a new one.
            self.refused(&token).await;
            return Err(RailError::Retryable(
                "Daraja refused the access token; renewed".into(),
            ));
        }
        Ok(reply)
    }

    async fn refused(&self, token: &AccessToken) {
        self.token.rejected(token).await;
    }

    /// A failed exchange with Daraja, read by whether it can have reached it.
    fn send_error(&self, e: &reqwest::Error) -> RailError {
        transport::send_error(e, &format!("Daraja (rail {})", self.config.rail_id))
    }

    fn timestamp_and_password(&self, stk: &StkConfig) -> (String, String) {
        let now = chrono::Utc::now();
        let local = chrono::FixedOffset::east_opt(EAT_OFFSET_SECS)
            .map(|tz| now.with_timezone(&tz).format("%Y%m%d%H%M%S").to_string())
            .unwrap_or_else(|| now.format("%Y%m%d%H%M%S").to_string());
        (
            local.clone(),
            stk_password(&stk.shortcode, stk.passkey.expose(), &local),
        )
    }

    async fn submit_b2c(
        &self,
        attempt: &Attempt,
        shillings: i64,
        msisdn: &str,
    ) -> Result<Submitted, RailError> {
        let b2c = self.b2c()?;
        let body = B2cRequest {
            originator_conversation_id: attempt.attempt_id.to_string(),
            initiator_name: b2c.initiator_name.clone(),
            security_credential: b2c.security_credential.expose().to_owned(),
            command_id: b2c.command_id.as_str().to_owned(),
            amount: shillings,
            party_a: b2c.shortcode.clone(),
            party_b: msisdn.to_owned(),
            remarks: limit(attempt.narrative.as_deref().unwrap_or("Payment"), 100),
            queue_timeout_url: self.callback_url("b2c/timeout"),
            result_url: self.callback_url("b2c/result"),
            occasion: limit(&attempt.reference, 100),
        };
        let reply = self.post("/mpesa/b2c/v3/paymentrequest", &body).await?;
        if reply.status.is_success() {
            let ack: Ack = serde_json::from_slice(&reply.body).map_err(|e| {
                RailError::Unknown(format!("B2C accepted but the answer is unreadable: {e}"))
            })?;
            return Ok(match ack.response_code.trim() {
                "0" => Submitted::Accepted {
                    rail_reference: Some(ack.conversation_id),
                },
                code => Submitted::Rejected(Failure::new(
                    FailureCode::RailRejected,
                    ack.response_description,
                    Some(code.to_owned()),
                )),
            });
        }
        classify_error(&reply)
    }

    async fn submit_stk(
        &self,
        attempt: &Attempt,
        shillings: i64,
        msisdn: &str,
    ) -> Result<Submitted, RailError> {
        let stk = self.stk()?;
        let (timestamp, password) = self.timestamp_and_password(stk);
        let body = StkPushRequest {
            business_short_code: stk.shortcode.clone(),
            password,
            timestamp,
            transaction_type: stk.transaction_type.as_str().to_owned(),
            amount: shillings,
            party_a: msisdn.to_owned(),
            party_b: stk.party_b.clone(),
            phone_number: msisdn.to_owned(),
            // The attempt id in the path lets the callback find its attempt even when the
            // acknowledgement (and with it the CheckoutRequestID) was lost.
            callback_url: self.callback_url(&format!("stk/{}", attempt.attempt_id)),
            // Shown to the payer in the prompt; Daraja allows 12 characters.
            account_reference: limit(&attempt.reference, 12),
            transaction_desc: limit(attempt.narrative.as_deref().unwrap_or("Payment"), 13),
        };
        let reply = self.post("/mpesa/stkpush/v1/processrequest", &body).await?;
        if reply.status.is_success() {
            let ack: StkAck = serde_json::from_slice(&reply.body).map_err(|e| {
                RailError::Unknown(format!(
                    "STK push accepted but the answer is unreadable: {e}"
                ))
            })?;
            return Ok(match ack.response_code.trim() {
                "0" => Submitted::Accepted {
                    rail_reference: Some(ack.checkout_request_id),
                },
                code => Submitted::Rejected(Failure::new(
                    FailureCode::RailRejected,
                    ack.response_description,
                    Some(code.to_owned()),
                )),
            });
        }
        classify_error(&reply)
    }

    /// Triggers a Transaction Status query for a B2C payment. The answer is asynchronous: it
    /// arrives on `/{secret}/status/{attempt_id}/result` and is read by `callback()`.
    async fn query_b2c(&self, attempt: &Attempt) -> Result<RailStatus, RailError> {
        let b2c = self.b2c()?;
        let id = attempt.attempt_id;
        let body = TransactionStatusRequest {
            initiator: b2c.initiator_name.clone(),
            security_credential: b2c.security_credential.expose().to_owned(),
            command_id: "TransactionStatusQuery".into(),
            transaction_id: String::new(),
            originator_conversation_id: id.to_string(),
            party_a: b2c.shortcode.clone(),
            // 4 = organisation shortcode.
            identifier_type: "4".into(),
            result_url: self.callback_url(&format!("status/{id}/result")),
            queue_timeout_url: self.callback_url(&format!("status/{id}/timeout")),
            remarks: "Status of an unsettled payment".into(),
            occasion: limit(&attempt.reference, 100),
        };
        let reply = self
            .post("/mpesa/transactionstatus/v1/query", &body)
            .await?;
        if reply.status.is_success() {
            return Ok(RailStatus::Pending);
        }
        match classify_error(&reply) {
            Ok(Submitted::Rejected(f)) => Err(RailError::Unknown(format!(
                "status query refused: {}",
                f.reason
            ))),
            Ok(_) => Ok(RailStatus::Pending),
            Err(e) => Err(e),
        }
    }

    async fn query_stk(&self, attempt: &Attempt) -> Result<RailStatus, RailError> {
        let stk = self.stk()?;
        let Some(checkout) = attempt.rail_reference.as_deref() else {
            // STK push has no client-side key: without the CheckoutRequestID nothing can be
            // asked, and only the callback (which names the attempt in its path) or a
            // statement can settle it.
            return Err(RailError::Unknown(
                "an STK push without its CheckoutRequestID cannot be queried; waiting for its callback".into(),
            ));
        };
        let (timestamp, password) = self.timestamp_and_password(stk);
        let body = StkQueryRequest {
            business_short_code: stk.shortcode.clone(),
            password,
            timestamp,
            checkout_request_id: checkout.to_owned(),
        };
        let reply = self.post("/mpesa/stkpushquery/v1/query", &body).await?;
        if reply.status.is_success() {
            let answer: StkQueryResponse = serde_json::from_slice(&reply.body)
                .map_err(|e| RailError::Unknown(format!("unreadable STK Query answer: {e}")))?;
            if answer.checkout_request_id != checkout {
                // An answer about another checkout says nothing about this one.
                return Err(RailError::Unknown(
                    "the STK Query answer names another CheckoutRequestID".into(),
                ));
            }
            let Some(code) = code_of(&answer.result_code) else {
                return Ok(RailStatus::Pending);
            };
            return Ok(match outcome_of(code, &answer.result_desc, Flow::Stk) {
                // The STK Query answer carries no amount (the crate README says so).
                Ok(()) => RailStatus::Completed(Settled {
                    rail_reference: Some(checkout.to_owned()),
                    receipt: None,
                    amount: None,
                }),
                Err(f) => RailStatus::Failed(f),
            });
        }
        if reply
            .envelope()
            .is_some_and(|e| e.error_code == STK_STILL_PROCESSING)
        {
            return Ok(RailStatus::Pending);
        }
        match classify_error(&reply) {
            Ok(_) => Err(RailError::Unknown(format!(
                "STK Query answered {}",
                reply.status
            ))),
            Err(e) => Err(e),
        }
    }

    /// Checks the secret path segment and the source address; returns the path below them.
    fn authenticate<'a>(&self, request: &'a InboundRequest) -> Result<Vec<&'a str>, CallbackError> {
        if !self.config.allowed_peers.is_empty() {
            let allowed = request
                .peer
                .is_some_and(|p| self.config.allowed_peers.contains(&p.ip()));
            if !allowed {
                return Err(CallbackError::Unauthenticated(
                    "source address not allowed".into(),
                ));
            }
        }
        let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
        let (first, rest) = segments
            .split_first()
            .ok_or_else(|| CallbackError::Unauthenticated("no callback secret".into()))?;
        if !bool::from(
            first
                .as_bytes()
                .ct_eq(self.config.callback_secret.expose().as_bytes()),
        ) {
            return Err(CallbackError::Unauthenticated(
                "wrong callback secret".into(),
            ));
        }
        Ok(rest.to_vec())
    }
}

#[async_trait]
impl RailAdapter for MpesaAdapter {
    fn id(&self) -> &str {
        &self.config.rail_id
    }

    /// Every callback path starts with the secret that authenticates it.
    fn redact_path(&self, path: &str) -> String {
        railgate_rail::redact_first_segment(path)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            disbursement: self.config.b2c.is_some(),
            request_to_pay: self.config.stk.is_some(),
            currencies: vec![Currency::Kes],
            bulk: false,
            inquiry: true,
            reversal: false,
            max_amount: None,
            whole_units_only: true,
        }
    }

    async fn submit(&self, attempt: &Attempt) -> Result<Submitted, RailError> {
        let shillings = whole_shillings(attempt.amount)?;
        if attempt.party.id_type() != PartyIdType::Msisdn {
            return Err(RailError::Permanent(
                "M-Pesa pays and collects from MSISDNs only".into(),
            ));
        }
        let msisdn = attempt.party.id_value();
        tracing::debug!(
            attempt = %attempt.attempt_id,
            party = %attempt.party.masked(),
            direction = attempt.direction.as_str(),
            "Submitting to M-Pesa"
        );
        match attempt.direction {
            Direction::Disbursement => self.submit_b2c(attempt, shillings, msisdn).await,
            Direction::Collection => self.submit_stk(attempt, shillings, msisdn).await,
        }
    }

    /// B2C: triggers a Transaction Status query and returns `Pending`; the answer arrives as
    /// a callback. STK: asks STK Query, which answers synchronously.
    async fn inquire(&self, attempt: &Attempt) -> Result<RailStatus, RailError> {
        match attempt.direction {
            Direction::Disbursement => self.query_b2c(attempt).await,
            Direction::Collection => self.query_stk(attempt).await,
        }
    }

    fn callback(&self, request: &InboundRequest) -> Result<CallbackReply, CallbackError> {
        let rest = self.authenticate(request)?;
        if request.method != http::Method::POST {
            return Err(CallbackError::UnknownRoute);
        }
        let (kind, event) = match rest.as_slice() {
            ["b2c", "result"] => ("b2c-result", b2c_result(&request.body)?),
            ["b2c", "timeout"] => ("b2c-timeout", b2c_timeout(&request.body)?),
            ["stk", id] => ("stk", stk_result(id, &request.body)?),
            ["status", id, "result"] => ("status-result", status_result(id, &request.body)?),
            ["status", id, "timeout"] => {
                let attempt = attempt_id(id)?;
                tracing::info!(attempt = %attempt, "M-Pesa status query timed out in the queue");
                (
                    "status-timeout",
                    (AttemptRef::Attempt(attempt), CallbackOutcome::Pending),
                )
            }
            _ => return Err(CallbackError::UnknownRoute),
        };
        let digest = hex::encode(Sha256::digest(&request.body));
        let callback_id = format!("mpesa:{kind}:{}", digest.get(..24).unwrap_or(&digest));
        Ok(CallbackReply::ok_json(
            vec![CallbackEvent {
                callback_id,
                attempt: event.0,
                outcome: event.1,
            }],
            &serde_json::json!({"ResultCode": 0, "ResultDesc": "Accepted"}),
        ))
    }
}

fn attempt_id(s: &str) -> Result<Uuid, CallbackError> {
    Uuid::parse_str(s).map_err(|_| CallbackError::Malformed("attempt id is not a UUID".into()))
}

fn result_envelope(body: &[u8]) -> Result<ResultEnvelope, CallbackError> {
    serde_json::from_slice(body)
        .map_err(|e| CallbackError::Malformed(format!("not a Daraja Result: {e}")))
}

/// Which attempt a `Result` speaks of: our OriginatorConversationID, else Daraja's id.
fn attempt_of_result(originator: &str, conversation: &str) -> Result<AttemptRef, CallbackError> {
    if let Ok(id) = Uuid::parse_str(originator.trim()) {
        return Ok(AttemptRef::Attempt(id));
    }
    if !conversation.trim().is_empty() {
        return Ok(AttemptRef::RailReference(conversation.trim().to_owned()));
    }
    Err(CallbackError::Malformed(
        "a Result naming no request".into(),
    ))
}

fn b2c_result(body: &[u8]) -> Result<(AttemptRef, CallbackOutcome), CallbackError> {
    let r = result_envelope(body)?.result;
    let code = code_of(&r.result_code)
        .ok_or_else(|| CallbackError::Malformed("ResultCode is not a number".into()))?;
    let attempt = attempt_of_result(&r.originator_conversation_id, &r.conversation_id)?;
    let outcome = match outcome_of(code, &r.result_desc, Flow::B2c) {
        Ok(()) => CallbackOutcome::Completed(Settled {
            amount: crate::amounts::result_amount(body, "TransactionAmount")?,
            ..settled_of_result(&r)
        }),
        Err(f) => CallbackOutcome::Failed(f),
    };
    Ok((attempt, outcome))
}

/// A queue timeout: Daraja gave up waiting to process the request. That is not proof that
/// nothing moved, so the attempt stays pending until a status query or a statement says.
fn b2c_timeout(body: &[u8]) -> Result<(AttemptRef, CallbackOutcome), CallbackError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| CallbackError::Malformed(format!("not JSON: {e}")))?;
    let inner = value.get("Result").unwrap_or(&value);
    let field = |name: &str| {
        inner
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let attempt = attempt_of_result(&field("OriginatorConversationID"), &field("ConversationID"))?;
    tracing::info!("M-Pesa B2C request timed out in the queue; to be settled by a status query");
    Ok((attempt, CallbackOutcome::Pending))
}

fn stk_result(id: &str, body: &[u8]) -> Result<(AttemptRef, CallbackOutcome), CallbackError> {
    let attempt = attempt_id(id)?;
    let envelope: StkCallbackEnvelope = serde_json::from_slice(body)
        .map_err(|e| CallbackError::Malformed(format!("not an STK callback: {e}")))?;
    let cb = envelope.body.stk_callback;
    let code = code_of(&cb.result_code)
        .ok_or_else(|| CallbackError::Malformed("ResultCode is not a number".into()))?;
    let outcome = match outcome_of(code, &cb.result_desc, Flow::Stk) {
        Ok(()) => {
            let receipt = cb.item("MpesaReceiptNumber");
            if receipt.is_none() {
                return Err(CallbackError::Malformed(
                    "a successful STK callback without a receipt".into(),
                ));
            }
            CallbackOutcome::Completed(Settled {
                rail_reference: Some(cb.checkout_request_id.clone()),
                receipt,
                amount: crate::amounts::stk_amount(body)?,
            })
        }
        Err(f) => CallbackOutcome::Failed(f),
    };
    Ok((AttemptRef::Attempt(attempt), outcome))
}

/// The answer to a Transaction Status query about attempt `id`.
fn status_result(id: &str, body: &[u8]) -> Result<(AttemptRef, CallbackOutcome), CallbackError> {
    let attempt = attempt_id(id)?;
    let r = result_envelope(body)?.result;
    let code = code_of(&r.result_code)
        .ok_or_else(|| CallbackError::Malformed("ResultCode is not a number".into()))?;
    if code != 0 {
        // The query itself failed (unknown transaction, busy): it says nothing about the money.
        tracing::info!(attempt = %attempt, code, "M-Pesa status query gave no answer");
        return Ok((AttemptRef::Attempt(attempt), CallbackOutcome::Pending));
    }
    let status = r.param("TransactionStatus").unwrap_or_default();
    let outcome = match QueriedStatus::parse(&status) {
        QueriedStatus::Completed => CallbackOutcome::Completed(Settled {
            rail_reference: r.param("ConversationID").filter(|s| !s.is_empty()),
            receipt: r.param("ReceiptNo").filter(|s| !s.is_empty()),
            amount: crate::amounts::result_amount(body, "Amount")?,
        }),
        QueriedStatus::Failed => CallbackOutcome::Failed(Failure::new(
            FailureCode::RailRejected,
            r.param("ReasonType")
                .unwrap_or_else(|| format!("M-Pesa reports the payment {status}")),
            Some(status.clone()),
        )),
        QueriedStatus::Other(s) => {
            tracing::info!(attempt = %attempt, status = %s, "M-Pesa status query: not final");
            CallbackOutcome::Pending
        }
    };
    Ok((AttemptRef::Attempt(attempt), outcome))
}

/// `base64(shortcode + passkey + timestamp)`.
pub fn stk_password(shortcode: &str, passkey: &str, timestamp: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{shortcode}{passkey}{timestamp}"))
}

/// The amount in whole shillings; an amount with cents is refused, never rounded.
pub fn whole_shillings(amount: Money) -> Result<i64, RailError> {
    if amount.currency() != Currency::Kes {
        return Err(RailError::Permanent(format!(
            "M-Pesa moves KES, not {}",
            amount.currency()
        )));
    }
    let minor = amount.minor();
    if minor.checked_rem(100) != Some(0) {
        return Err(RailError::Permanent(format!(
            "M-Pesa moves whole shillings only; {} has cents",
            amount
        )));
    }
    minor
        .checked_div(100)
        .ok_or_else(|| RailError::Permanent("amount out of range".into()))
}

fn limit(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn is_token_error(reply: &Reply) -> bool {
    reply.envelope().is_some_and(|e| {
        e.error_code.starts_with("401.") || e.error_message.contains("Invalid Access Token")
    })
}

/// Reads an error answer to a payment request.
fn classify_error(reply: &Reply) -> Result<Submitted, RailError> {
    let env = reply.envelope();
    let describe = match &env {
        Some(e) => format!("{} {} {}", reply.status, e.error_code, e.error_message),
        None => reply.status.to_string(),
    };
    if reply.status == StatusCode::SERVICE_UNAVAILABLE
        || reply.status == StatusCode::TOO_MANY_REQUESTS
    {
        return Err(RailError::Retryable(format!(
            "Daraja unavailable: {describe}"
        )));
    }
    if reply.status.is_server_error() {
        return Err(RailError::Unknown(format!(
            "Daraja error, outcome unknown: {describe}"
        )));
    }
    match env {
        Some(e) if reply.status.is_client_error() => {
            let lower = e.error_message.to_ascii_lowercase();
            let code = if lower.contains("phone")
                || lower.contains("partyb")
                || lower.contains("msisdn")
            {
                FailureCode::PartyNotFound
            } else {
                FailureCode::InvalidRequest
            };
            Ok(Submitted::Rejected(Failure::new(
                code,
                e.error_message,
                Some(e.error_code),
            )))
        }
        Some(_) | None => Err(RailError::Permanent(format!(
            "unexpected answer from Daraja: {describe}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn password_is_base64_of_shortcode_passkey_timestamp() {
        assert_eq!(
            stk_password("174379", "passkey", "20261125120000"),
            base64::engine::general_purpose::STANDARD.encode("174379passkey20261125120000")
        );
    }

    #[test]
    fn cents_are_refused_not_rounded() {
        assert_eq!(
            whole_shillings(Money::parse("150", Currency::Kes).unwrap()),
            Ok(150)
        );
        assert!(matches!(
            whole_shillings(Money::parse("150.50", Currency::Kes).unwrap()),
            Err(RailError::Permanent(m)) if m.contains("whole shillings")
        ));
        assert!(whole_shillings(Money::parse("150", Currency::Tzs).unwrap()).is_err());
    }
}
