//! The Mojaloop adapter: Railgate as the scheme's FSP, speaking FSPIOP v1.1 to the hub.
//!
//! Disbursement (we are the payer FSP), one step per `submit`, the next step's input arriving
//! by callback:
//!
//! ```text
//! submit(no state)      GET /parties/{Type}/{ID}   → Step{LookingUp}, rail_reference = party ref
//! PUT /parties/…        → event RailReference(party ref), Step{PartyFound{fsp}}
//! prepare + submit      POST /quotes (stored bytes) → Step{Quoting{fsp}}
//! PUT /quotes/{id}      → event Attempt(id), Step{Quoted{…, ilpPacket, condition}}
//! prepare + submit      POST /transfers (stored bytes) → Accepted{rail_reference = transferId}
//! PUT /transfers/{id}   → Completed (fulfilment checked in `review_callback`) | Failed | Pending
//! ```
//!
//! Request-to-pay (we are the payee FSP): the same lookup of the payer, then
//! `POST /transactionRequests` → Accepted; the payer FSP then sends us `POST /quotes` and
//! `POST /transfers` (see [`crate::payee`]).
//!
//! Ids: `transactionRequestId` = the attempt id; `quoteId` and `transactionId` (= `transferId`)
//! are derived from it reversibly (see [`crate::wire::derive_id`]), so resends reuse them and
//! every callback names its attempt without a lookup table. Attempt ids must be UUID v4.
//!
//! `PUT /parties` carries no id of ours: its event names `AttemptRef::RailReference` with
//! [`party_reference`], which `submit` returned as the lookup step's `rail_reference`; every
//! attempt waiting on that lookup takes the step.

use crate::config::{MojaloopConfig, OwnParty};
use crate::ilp::{self, IlpKey};
use crate::jws::Protected;
use crate::state::{RailState, STEP_QUOTE, STEP_TRANSACTION_REQUEST, STEP_TRANSFER};
use crate::wire::{
    self, derive_id, failure_of, fspiop_datetime, fspiop_headers, http_date, id_string, parse_body,
    parse_fspiop_datetime, to_body, AmountType, ErrorCode, ErrorInformationObject, FspiopMoney,
    FspiopParty, FspiopPartyIdType, IdPurpose, Initiator, InitiatorType, PartyIdInfo, QuotesPost,
    Resource, Scenario, TransactionRequestsPost, TransactionType, TransfersPost, WireError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use railgate_rail::oauth::{AccessToken, TokenClient};
use railgate_rail::{tls, transport};
use railgate_rail::{
    Attempt, BatchAck, BatchMembership, BatchPage, BatchPlan, BatchSupport, CallbackError,
    CallbackOutcome, CallbackReply, Capabilities, Currency, Direction, Failure, FailureCode,
    InboundRequest, Money, Outbound, Party, PreparedRequest, RailAdapter, RailError, RailStatus,
    Submitted,
};
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

/// Why an adapter could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid Mojaloop configuration: {0}")]
    Invalid(String),
}

pub struct MojaloopAdapter {
    pub(crate) config: MojaloopConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) ilp_key: IlpKey,
    /// The hub's API gateway token, when it wants one (`MojaloopConfig::oauth`).
    token: Option<TokenClient>,
    /// The bulks this adapter sent (payrolls), see [`crate::bulk`].
    pub(crate) bulk: crate::bulk::book::Book,
}

/// The pseudonymous reference of a party lookup: `PUT /parties` answers carry only the party's
/// identifier, which must not be stored or logged in clear.
pub fn party_reference(id_type: &str, id_value: &str, sub_id: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(id_type.as_bytes());
    h.update(b"/");
    h.update(id_value.as_bytes());
    if let Some(s) = sub_id {
        h.update(b"/");
        h.update(s.as_bytes());
    }
    let digest = hex::encode(h.finalize());
    format!("party:{}", digest.get(..32).unwrap_or(&digest))
}

/// The `rail_reference` the lookup step of an attempt for `party` returns. A gateway that wants
/// no race between the lookup's 202 and its `PUT /parties` can record it before submitting.
pub fn lookup_reference(party: &Party) -> String {
    party_reference_of(party)
}

fn party_reference_of(party: &Party) -> String {
    party_reference(
        FspiopPartyIdType::try_from(party.id_type())
            .map(FspiopPartyIdType::as_str)
            .unwrap_or("?"),
        party.id_value(),
        None,
    )
}

pub(crate) fn permanent(e: WireError) -> RailError {
    RailError::Permanent(e.to_string())
}

pub(crate) fn duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl MojaloopAdapter {
    pub fn new(config: MojaloopConfig) -> Result<Self, ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if config.fsp_id.is_empty() || config.fsp_id.chars().count() > 32 {
            return bad("fsp_id must be 1 to 32 characters");
        }
        if config.fspiop_version != wire::FSPIOP_VERSION {
            return bad("only FSPIOP version 1.1 is supported");
        }
        if config.own_parties.is_empty() {
            return bad("own_parties needs at least the scheme's own identifier");
        }
        for p in &config.own_parties {
            if !matches!(
                p.id_type,
                railgate_rail::PartyIdType::Business | railgate_rail::PartyIdType::Alias
            ) {
                return bad("own_parties must be BUSINESS or ALIAS identifiers");
            }
            if p.id_value.is_empty() || p.id_value.contains(['/', '?']) {
                return bad("own party identifiers must be non-empty and without '/' or '?'");
            }
        }
        let http = tls::client_builder(config.tls.as_ref())
            .timeout(config.http_timeout)
            .build()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let ilp_key = config.ilp_secret.key();
        let token = config
            .oauth
            .clone()
            .map(|o| TokenClient::new(o, http.clone()).for_rail(&config.rail_id));
        Ok(MojaloopAdapter {
            config,
            http,
            ilp_key,
            token,
            bulk: crate::bulk::book::Book::default(),
        })
    }

    pub fn config(&self) -> &MojaloopConfig {
        &self.config
    }

    /// The participant endpoints to register with the hub for our FSP (the hub's endpoint
    /// types and URL templates), all under `callback_base`.
    pub fn hub_endpoints(&self) -> Vec<(&'static str, String)> {
        let b = &self.config.callback_base;
        vec![
            ("FSPIOP_CALLBACK_URL_PARTIES_GET", format!("{b}/parties/{{{{partyIdType}}}}/{{{{partyIdentifier}}}}")),
            ("FSPIOP_CALLBACK_URL_PARTIES_SUB_ID_GET", format!("{b}/parties/{{{{partyIdType}}}}/{{{{partyIdentifier}}}}/{{{{partySubIdOrType}}}}")),
            ("FSPIOP_CALLBACK_URL_PARTIES_PUT", format!("{b}/parties/{{{{partyIdType}}}}/{{{{partyIdentifier}}}}")),
            ("FSPIOP_CALLBACK_URL_PARTIES_SUB_ID_PUT", format!("{b}/parties/{{{{partyIdType}}}}/{{{{partyIdentifier}}}}/{{{{partySubIdOrType}}}}")),
            ("FSPIOP_CALLBACK_URL_QUOTES", b.clone()),
            ("FSPIOP_CALLBACK_URL_TRANSFER_POST", format!("{b}/transfers")),
            ("FSPIOP_CALLBACK_URL_TRANSFER_PUT", format!("{b}/transfers/{{{{transferId}}}}")),
            ("FSPIOP_CALLBACK_URL_TRANSFER_ERROR", format!("{b}/transfers/{{{{transferId}}}}/error")),
            ("FSPIOP_CALLBACK_URL_TRX_REQ_SERVICE", b.clone()),
            // Bulk (payrolls): the quoting service appends `/bulkQuotes/{id}` as for quotes.
            ("FSPIOP_CALLBACK_URL_BULK_QUOTES", b.clone()),
            ("FSPIOP_CALLBACK_URL_BULK_TRANSFER_POST", format!("{b}/bulkTransfers")),
            ("FSPIOP_CALLBACK_URL_BULK_TRANSFER_PUT", format!("{b}/bulkTransfers/{{{{id}}}}")),
            ("FSPIOP_CALLBACK_URL_BULK_TRANSFER_ERROR", format!("{b}/bulkTransfers/{{{{id}}}}/error")),
        ]
    }

    pub(crate) fn scheme_party(&self) -> Result<&OwnParty, RailError> {
        self.config
            .own_parties
            .first()
            .ok_or_else(|| RailError::Permanent("no own party configured".to_owned()))
    }

    pub(crate) fn own_party_id_info(
        &self,
        sub_id: Option<String>,
    ) -> Result<FspiopParty, RailError> {
        let own = self.scheme_party()?;
        Ok(FspiopParty {
            party_id_info: PartyIdInfo {
                party_id_type: own.id_type.try_into().map_err(permanent)?,
                party_identifier: own.id_value.clone(),
                party_sub_id_or_type: sub_id,
                fsp_id: Some(self.config.fsp_id.clone()),
            },
            merchant_classification_code: None,
            name: Some(own.name.clone()),
            personal_info: None,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Building the stored requests

    fn build_quote(&self, attempt: &Attempt, payee_fsp: &str) -> Result<Vec<u8>, RailError> {
        let quote_id = derive_id(attempt.attempt_id, IdPurpose::Quote).map_err(permanent)?;
        let transaction_id =
            derive_id(attempt.attempt_id, IdPurpose::Transaction).map_err(permanent)?;
        let body = QuotesPost {
            quote_id: id_string(quote_id),
            transaction_id: id_string(transaction_id),
            transaction_request_id: None,
            payee: FspiopParty {
                party_id_info: PartyIdInfo::from_party(&attempt.party, Some(payee_fsp))
                    .map_err(permanent)?,
                merchant_classification_code: None,
                name: None,
                personal_info: None,
            },
            payer: self.own_party_id_info(None)?,
            // SEND: the transfer amount is the instructed amount; a payee fee is taken from what
            // the payee receives, so the ledger moves exactly what the core instructed.
            amount_type: AmountType::Send,
            amount: attempt.amount.into(),
            fees: None,
            transaction_type: TransactionType {
                scenario: Scenario::Transfer,
                sub_scenario: None,
                initiator: Initiator::Payer,
                initiator_type: InitiatorType::Business,
            },
            note: Some(note_of(attempt)),
            expiration: Some(fspiop_datetime(wire::after(
                Utc::now(),
                self.config.quote_expiry,
            ))),
            extension_list: None,
        };
        to_body(&body).map_err(permanent)
    }

    fn build_transfer(&self, attempt: &Attempt, quoted: &RailState) -> Result<Vec<u8>, RailError> {
        let RailState::Quoted {
            fsp_id,
            transfer_amount,
            expiration,
            ilp_packet,
            condition,
        } = quoted
        else {
            return Err(RailError::Permanent("a transfer needs a quote".to_owned()));
        };
        let quote_expiry = parse_fspiop_datetime(expiration).map_err(permanent)?;
        if quote_expiry <= Utc::now() {
            return Err(RailError::Permanent(format!(
                "the quote expired at {expiration}; start a new attempt"
            )));
        }
        let amount = Money::try_from(transfer_amount).map_err(permanent)?;
        if amount != attempt.amount {
            return Err(RailError::Permanent(format!(
                "the payee FSP quoted a transfer of {amount}, the instruction is {}",
                attempt.amount
            )));
        }
        self.check_quote_packet(attempt, ilp_packet, condition, amount)?;
        let transfer_id =
            derive_id(attempt.attempt_id, IdPurpose::Transaction).map_err(permanent)?;
        let body = TransfersPost {
            transfer_id: id_string(transfer_id),
            payee_fsp: fsp_id.clone(),
            payer_fsp: self.config.fsp_id.clone(),
            amount: transfer_amount.clone(),
            ilp_packet: ilp_packet.clone(),
            condition: condition.clone(),
            expiration: fspiop_datetime(wire::after(Utc::now(), self.config.transfer_expiry)),
            extension_list: None,
        };
        to_body(&body).map_err(permanent)
    }

    /// What we agree to pay must be what we asked for: the packet's transaction names our quote
    /// and transaction ids, our payee and the instructed amount.
    pub(crate) fn check_quote_packet(
        &self,
        attempt: &Attempt,
        packet_text: &str,
        condition: &str,
        amount: Money,
    ) -> Result<(), RailError> {
        let refuse = |why: &str| {
            Err(RailError::Permanent(format!(
                "the quote's ILP packet {why}"
            )))
        };
        let Ok(packet) = ilp::decode_packet(packet_text) else {
            return refuse("cannot be decoded");
        };
        let minor = u64::try_from(amount.minor()).unwrap_or(0);
        if packet.amount != minor {
            return refuse("carries another amount");
        }
        if let Some(c) = ilp::packet_condition(&packet) {
            if c != condition {
                return refuse("carries another condition");
            }
        }
        let Ok(tx) = ilp::transaction_of(&packet) else {
            return refuse("carries no transaction object");
        };
        let quote_id = derive_id(attempt.attempt_id, IdPurpose::Quote)
            .map(id_string)
            .map_err(permanent)?;
        let transaction_id = derive_id(attempt.attempt_id, IdPurpose::Transaction)
            .map(id_string)
            .map_err(permanent)?;
        let s = |p: &str| tx.pointer(p).and_then(serde_json::Value::as_str);
        if s("/quoteId") != Some(quote_id.as_str())
            || s("/transactionId") != Some(transaction_id.as_str())
        {
            return refuse("belongs to another quote");
        }
        if s("/payee/partyIdInfo/partyIdentifier") != Some(attempt.party.id_value()) {
            return refuse("names another payee");
        }
        let wire_amount = FspiopMoney::from(amount);
        if s("/amount/amount") != Some(wire_amount.amount.as_str())
            || s("/amount/currency") != Some(wire_amount.currency.as_str())
        {
            return refuse("names another amount");
        }
        Ok(())
    }

    fn build_transaction_request(
        &self,
        attempt: &Attempt,
        payer_fsp: &str,
    ) -> Result<Vec<u8>, RailError> {
        let id = derive_id(attempt.attempt_id, IdPurpose::TransactionRequest).map_err(permanent)?;
        let reference: String = attempt.reference.chars().take(128).collect();
        let body = TransactionRequestsPost {
            transaction_request_id: id_string(id),
            payee: self.own_party_id_info(Some(reference))?,
            payer: PartyIdInfo::from_party(&attempt.party, Some(payer_fsp)).map_err(permanent)?,
            amount: attempt.amount.into(),
            transaction_type: TransactionType {
                scenario: Scenario::Payment,
                sub_scenario: None,
                initiator: Initiator::Payee,
                initiator_type: InitiatorType::Business,
            },
            note: Some(note_of(attempt)),
            expiration: Some(fspiop_datetime(wire::after(
                Utc::now(),
                self.config.request_to_pay_expiry,
            ))),
            extension_list: None,
        };
        to_body(&body).map_err(permanent)
    }

    // -----------------------------------------------------------------------------------------
    // Sending

    /// Headers of a message we send, signed when JWS is on and the message has a body.
    fn signed_headers(
        &self,
        method: &str,
        uri: &str,
        resource: Resource,
        destination: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Vec<(String, String)>, RailError> {
        let now = Utc::now();
        let mut headers = fspiop_headers(
            resource,
            &self.config.fspiop_version,
            now,
            &self.config.fsp_id,
            destination,
        );
        let signer = self.config.jws.as_ref().and_then(|j| j.signer.as_ref());
        if let (Some(signer), Some(body)) = (signer, body) {
            let date = http_date(now);
            let protected = Protected {
                method,
                uri,
                source: &self.config.fsp_id,
                destination,
                date: Some(&date),
            };
            let signature = signer
                .sign(&protected, body)
                .map_err(|e| RailError::Permanent(e.to_string()))?;
            headers.push((wire::H_SIGNATURE.to_owned(), signature));
            headers.push((wire::H_URI.to_owned(), uri.to_owned()));
            headers.push((wire::H_HTTP_METHOD.to_owned(), method.to_owned()));
        }
        Ok(headers)
    }

    #[allow(clippy::too_many_arguments)] // one call site per FSPIOP request kind; a struct would only rename them
    pub(crate) async fn send(
        &self,
        method: http::Method,
        base: &str,
        uri: &str,
        resource: Resource,
        destination: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Result<reqwest::Response, reqwest::Error>, RailError> {
        let headers =
            self.signed_headers(method.as_str(), uri, resource, destination, body.as_deref())?;
        let mut rb = self
            .http
            .request(method, format!("{}{uri}", base.trim_end_matches('/')));
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let (rb, token) = self.authorise(rb).await?;
        let sent = rb.send().await;
        if let Ok(r) = &sent {
            self.check_token(r.status(), token.as_ref()).await?;
        }
        Ok(sent)
    }

    /// The bearer token of the hub's API gateway, when one is configured.
    async fn authorise(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<(reqwest::RequestBuilder, Option<AccessToken>), RailError> {
        match &self.token {
            Some(client) => {
                let token = client.token().await?;
                Ok((rb.bearer_auth(token.expose()), Some(token)))
            }
            None => Ok((rb, None)),
        }
    }

    /// A 401 from the API gateway in front of the hub: the request stopped there (nothing
    /// moved), and the token is handed back so the resend fetches another.
    async fn check_token(
        &self,
        status: reqwest::StatusCode,
        token: Option<&AccessToken>,
    ) -> Result<(), RailError> {
        match (&self.token, token) {
            (Some(client), Some(token)) if status == reqwest::StatusCode::UNAUTHORIZED => {
                client.rejected(token).await;
                Err(RailError::Retryable(format!(
                    "rail {}: the hub's gateway refused our access token; a new one is fetched",
                    self.config.rail_id
                )))
            }
            _ => Ok(()),
        }
    }

    /// A failed request that may move money: not sent is retryable, maybe sent unknown.
    pub(crate) fn send_error(&self, e: &reqwest::Error, what: &str) -> RailError {
        transport::send_error(e, &format!("rail {} {what}", self.config.rail_id))
    }

    /// A failed request that moves no money (lookups, quotes, inquiries, callbacks): retryable.
    pub(crate) fn read_error(&self, e: &reqwest::Error, what: &str) -> RailError {
        transport::read_error(e, &format!("rail {} {what}", self.config.rail_id))
    }

    fn stored<'a>(attempt: &'a Attempt, step: &str) -> Result<&'a [u8], RailError> {
        match &attempt.request {
            Some(r) if r.step == step => Ok(&r.body),
            _ => Err(RailError::Permanent(format!(
                "the {step} request must be prepared and stored before it is sent"
            ))),
        }
    }

    async fn lookup(&self, attempt: &Attempt) -> Result<Submitted, RailError> {
        let info = PartyIdInfo::from_party(&attempt.party, None).map_err(permanent)?;
        let uri = format!(
            "/parties/{}/{}",
            info.party_id_type.as_str(),
            info.party_identifier
        );
        tracing::info!(attempt_id = %attempt.attempt_id, party = %attempt.party.masked(), "Mojaloop party lookup");
        // This attempt's lookup owns the answer now, even where a bulk asked the same party.
        self.bulk.forget_asked(&lookup_reference(&attempt.party));
        let sent = self
            .send(
                http::Method::GET,
                &self.config.endpoints.parties,
                &uri,
                Resource::Parties,
                None,
                None,
            )
            .await?;
        // A lookup moves no money: every transport failure may be retried.
        let response = sent.map_err(|e| self.read_error(&e, "GET /parties"))?;
        match answer(response, false).await? {
            Answer::Accepted => Ok(Submitted::Step {
                rail_state: RailState::LookingUp.to_value(),
                rail_reference: Some(party_reference_of(&attempt.party)),
            }),
            Answer::Rejected(f) => Ok(Submitted::Rejected(f)),
        }
    }

    async fn send_quote(&self, attempt: &Attempt, payee_fsp: &str) -> Result<Submitted, RailError> {
        let body = Self::stored(attempt, STEP_QUOTE)?.to_vec();
        let quote_id = derive_id(attempt.attempt_id, IdPurpose::Quote).map_err(permanent)?;
        let sent = self
            .send(
                http::Method::POST,
                &self.config.endpoints.quotes,
                "/quotes",
                Resource::Quotes,
                Some(payee_fsp),
                Some(body),
            )
            .await?;
        let response = sent.map_err(|e| self.read_error(&e, "POST /quotes"))?;
        match answer(response, false).await? {
            Answer::Accepted => Ok(Submitted::Step {
                rail_state: RailState::Quoting {
                    fsp_id: payee_fsp.to_owned(),
                }
                .to_value(),
                rail_reference: Some(id_string(quote_id)),
            }),
            Answer::Rejected(f) => Ok(Submitted::Rejected(f)),
        }
    }

    async fn send_transfer(
        &self,
        attempt: &Attempt,
        payee_fsp: &str,
    ) -> Result<Submitted, RailError> {
        let body = Self::stored(attempt, STEP_TRANSFER)?.to_vec();
        let transfer_id =
            derive_id(attempt.attempt_id, IdPurpose::Transaction).map_err(permanent)?;
        tracing::info!(attempt_id = %attempt.attempt_id, transfer_id = %transfer_id, "Mojaloop transfer");
        let sent = self
            .send(
                http::Method::POST,
                &self.config.endpoints.transfers,
                "/transfers",
                Resource::Transfers,
                Some(payee_fsp),
                Some(body),
            )
            .await?;
        // Refused before any byte went out (or in the TLS handshake): nothing moved. Sent and
        // the answer lost (timeout, dropped connection): money may have moved.
        let response = sent.map_err(|e| self.send_error(&e, "POST /transfers"))?;
        match answer(response, true).await? {
            Answer::Accepted => Ok(Submitted::Accepted {
                rail_reference: Some(id_string(transfer_id)),
            }),
            Answer::Rejected(f) => Ok(Submitted::Rejected(f)),
        }
    }

    async fn send_transaction_request(
        &self,
        attempt: &Attempt,
        payer_fsp: &str,
    ) -> Result<Submitted, RailError> {
        let body = Self::stored(attempt, STEP_TRANSACTION_REQUEST)?.to_vec();
        let sent = self
            .send(
                http::Method::POST,
                &self.config.endpoints.transaction_requests,
                "/transactionRequests",
                Resource::TransactionRequests,
                Some(payer_fsp),
                Some(body),
            )
            .await?;
        // Refused before any byte went out: the payer's FSP never saw it. Sent, answer lost:
        // the payer may already be prompted (and may pay). A request moves no money by itself,
        // but whether it is out is known only by asking (`GET /transactionRequests/{id}`);
        // "not found" then resends the same bytes.
        let response = sent.map_err(|e| self.send_error(&e, "POST /transactionRequests"))?;
        match answer(response, false).await? {
            // The reference was recorded before sending (`reference_before_send`); the payer
            // FSP's `PUT /transactionRequests` may already have replaced it with its
            // `transactionId`, which the 202 must not undo.
            Answer::Accepted => Ok(Submitted::Accepted {
                rail_reference: None,
            }),
            Answer::Rejected(f) => Ok(Submitted::Rejected(f)),
        }
    }

    /// The transfer's expiration, from the stored `POST /transfers`.
    fn transfer_expiration(attempt: &Attempt) -> Option<DateTime<Utc>> {
        let body = Self::stored(attempt, STEP_TRANSFER).ok()?;
        let post: TransfersPost = parse_body(body).ok()?;
        parse_fspiop_datetime(&post.expiration).ok()
    }

    /// "Transfer not found" is only final once the transfer's expiry plus grace has passed:
    /// before that our POST may still be on its way, and a byte-identical resend is safe.
    pub(crate) fn transfer_not_found(&self, attempt: &Attempt, now: DateTime<Utc>) -> RailStatus {
        match Self::transfer_expiration(attempt) {
            Some(exp) if now > wire::after(exp, self.config.grace) => {
                RailStatus::Failed(Failure::new(
                    FailureCode::Expired,
                    "the switch has no record of the transfer after its expiry",
                    Some(ErrorCode::TransferIdNotFound.code().to_owned()),
                ))
            }
            _ => RailStatus::NotFound,
        }
    }
}

/// The note on our quotes and requests-to-pay: the core's reference, which the payee sees and
/// which reconciliation matches on.
pub(crate) fn note_of(attempt: &Attempt) -> String {
    attempt.reference.chars().take(128).collect()
}

pub(crate) enum Answer {
    Accepted,
    Rejected(Failure),
}

/// What the hub's synchronous answer means. `moves_money` marks `POST /transfers`, where an
/// ambiguous server error is an unknown outcome rather than a retry.
pub(crate) async fn answer(
    response: reqwest::Response,
    moves_money: bool,
) -> Result<Answer, RailError> {
    let status = response.status();
    if status.is_success() {
        return Ok(Answer::Accepted);
    }
    let body = response.bytes().await.unwrap_or_default();
    let info = parse_body::<ErrorInformationObject>(&body)
        .ok()
        .map(|e| e.error_information);
    let code = info.as_ref().and_then(|i| ErrorCode::parse(&i.error_code));
    let described = info
        .as_ref()
        .map(|i| format!("{} {}", i.error_code, i.error_description))
        .unwrap_or_else(|| status.to_string());
    match status.as_u16() {
        503 => Err(RailError::Retryable(format!(
            "hub unavailable: {described}"
        ))),
        501 => Err(RailError::Permanent(format!(
            "not implemented by the hub: {described}"
        ))),
        500..=599 if moves_money => Err(RailError::Unknown(format!(
            "hub error after a transfer: {described}"
        ))),
        500..=599 => Err(RailError::Retryable(format!("hub error: {described}"))),
        // The hub holds a different request under our id: the first one may have moved money.
        _ if code == Some(ErrorCode::ModifiedRequest) && moves_money => Err(RailError::Unknown(
            format!("the hub holds another request under this transfer id: {described}"),
        )),
        400..=499 => Ok(Answer::Rejected(match &info {
            Some(i) => failure_of(i),
            None => Failure::new(
                FailureCode::InvalidRequest,
                format!("hub answered {status}"),
                Some(status.as_u16().to_string()),
            ),
        })),
        _ => Err(RailError::Permanent(format!(
            "unexpected hub answer {status}"
        ))),
    }
}

#[async_trait]
impl RailAdapter for MojaloopAdapter {
    fn id(&self) -> &str {
        &self.config.rail_id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            disbursement: true,
            request_to_pay: true,
            currencies: Currency::ALL.to_vec(),
            bulk: true,
            inquiry: true,
            reversal: false,
            max_amount: None,
            whole_units_only: false,
        }
    }

    fn prepare(&self, attempt: &Attempt) -> Result<Option<PreparedRequest>, RailError> {
        let state =
            RailState::from_value(attempt.rail_state.as_ref()).map_err(RailError::Permanent)?;
        let reuse = |step: &str,
                     build: &dyn Fn() -> Result<Vec<u8>, RailError>|
         -> Result<Option<PreparedRequest>, RailError> {
            // Bytes already stored for this step are the ones to (re)send.
            if let Some(r) = attempt.request.as_ref().filter(|r| r.step == step) {
                return Ok(Some(r.clone()));
            }
            Ok(Some(PreparedRequest {
                step: step.to_owned(),
                body: build()?,
            }))
        };
        match (attempt.direction, &state) {
            (_, None | Some(RailState::LookingUp)) => Ok(None),
            (
                Direction::Disbursement,
                Some(RailState::PartyFound { fsp_id } | RailState::Quoting { fsp_id }),
            ) => reuse(STEP_QUOTE, &|| self.build_quote(attempt, fsp_id)),
            (Direction::Disbursement, Some(q @ RailState::Quoted { .. })) => {
                reuse(STEP_TRANSFER, &|| self.build_transfer(attempt, q))
            }
            (Direction::Collection, Some(RailState::PartyFound { fsp_id })) => {
                reuse(STEP_TRANSACTION_REQUEST, &|| {
                    self.build_transaction_request(attempt, fsp_id)
                })
            }
            (Direction::Collection, Some(RailState::Quoting { .. } | RailState::Quoted { .. })) => {
                Err(RailError::Permanent(
                    "a request-to-pay has no quote of its own".to_owned(),
                ))
            }
        }
    }

    async fn submit(&self, attempt: &Attempt) -> Result<Submitted, RailError> {
        let state =
            RailState::from_value(attempt.rail_state.as_ref()).map_err(RailError::Permanent)?;
        match (attempt.direction, state) {
            (_, None | Some(RailState::LookingUp)) => self.lookup(attempt).await,
            (
                Direction::Disbursement,
                Some(RailState::PartyFound { fsp_id } | RailState::Quoting { fsp_id }),
            ) => self.send_quote(attempt, &fsp_id).await,
            (Direction::Disbursement, Some(RailState::Quoted { fsp_id, .. })) => {
                self.send_transfer(attempt, &fsp_id).await
            }
            (Direction::Collection, Some(RailState::PartyFound { fsp_id })) => {
                self.send_transaction_request(attempt, &fsp_id).await
            }
            (Direction::Collection, Some(RailState::Quoting { .. } | RailState::Quoted { .. })) => {
                Err(RailError::Permanent(
                    "a request-to-pay has no quote of its own".to_owned(),
                ))
            }
        }
    }

    /// `GET /transfers/{id}` (or `GET /transactionRequests/{id}`): the hub answers with a
    /// callback, so a 202 is `Pending` and the outcome arrives through `callback`. An attempt
    /// that never got as far as sending its transfer is `NotFound` without asking.
    async fn inquire(&self, attempt: &Attempt) -> Result<RailStatus, RailError> {
        if let Some(membership) = BatchMembership::of(attempt) {
            return self.inquire_bulk_line(attempt, &membership).await;
        }
        let state =
            RailState::from_value(attempt.rail_state.as_ref()).map_err(RailError::Permanent)?;
        let (base, uri, resource, not_found) = match (attempt.direction, &state) {
            (Direction::Disbursement, Some(RailState::Quoted { .. })) => {
                let id =
                    derive_id(attempt.attempt_id, IdPurpose::Transaction).map_err(permanent)?;
                (
                    &self.config.endpoints.transfers,
                    format!("/transfers/{}", id_string(id)),
                    Resource::Transfers,
                    ErrorCode::TransferIdNotFound,
                )
            }
            (Direction::Collection, Some(RailState::PartyFound { .. }))
                if Self::stored(attempt, STEP_TRANSACTION_REQUEST).is_ok() =>
            {
                let id = derive_id(attempt.attempt_id, IdPurpose::TransactionRequest)
                    .map_err(permanent)?;
                (
                    &self.config.endpoints.transaction_requests,
                    format!("/transactionRequests/{}", id_string(id)),
                    Resource::TransactionRequests,
                    ErrorCode::TransactionRequestIdNotFound,
                )
            }
            _ => return Ok(RailStatus::NotFound),
        };
        let sent = self
            .send(http::Method::GET, base, &uri, resource, None, None)
            .await?;
        let response =
            sent.map_err(|e| self.read_error(&e, &format!("GET {}", resource.as_str())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(RailStatus::Pending);
        }
        let body = response.bytes().await.unwrap_or_default();
        let info = parse_body::<ErrorInformationObject>(&body)
            .ok()
            .map(|e| e.error_information);
        match (status.as_u16(), info) {
            (400..=499, Some(i)) if ErrorCode::parse(&i.error_code) == Some(not_found) => {
                if resource == Resource::Transfers {
                    Ok(self.transfer_not_found(attempt, Utc::now()))
                } else {
                    Ok(RailStatus::NotFound)
                }
            }
            (500..=599, _) => Err(RailError::Retryable(format!(
                "inquiry: hub answered {status}"
            ))),
            (_, Some(i)) => Err(RailError::Permanent(format!(
                "inquiry refused: {} {}",
                i.error_code, i.error_description
            ))),
            (_, None) => Err(RailError::Permanent(format!("inquiry refused: {status}"))),
        }
    }

    fn batch_support(&self) -> Option<BatchSupport> {
        Some(BatchSupport {
            name: "Mojaloop bulk",
            max_lines: crate::bulk::wire::MAX_INDIVIDUAL,
            // A scheme turns bulk on (`batch = true`) once its hub has it.
            on_by_default: false,
        })
    }

    fn plan_batches(&self, attempts: &[Attempt], max_lines: usize) -> BatchPlan {
        crate::bulk::plan(attempts, max_lines)
    }

    async fn submit_batch(&self, batch_id: Uuid, lines: &[Attempt]) -> Result<BatchAck, RailError> {
        self.submit_bulk(batch_id, lines).await
    }

    async fn batch_results(
        &self,
        batch_ref: &str,
        _cursor: Option<&str>,
    ) -> Result<BatchPage, RailError> {
        self.bulk_page(batch_ref).await
    }

    /// A bulk whose `POST /bulkTransfers` answer was lost is read by the ids it was sent with.
    fn batch_ref_for(&self, batch_id: Uuid) -> Option<String> {
        let batch_ref = self.bulk.with(batch_id, |b| {
            let ids: Vec<&str> = b
                .parts
                .values()
                .filter(|p| p.transfer_body.is_some())
                .map(|p| p.bulk_transfer_id.as_str())
                .collect();
            (!ids.is_empty()).then(|| ids.join(","))
        })??;
        self.bulk.set_ref(batch_id, &batch_ref);
        Some(batch_ref)
    }

    /// FSPIOP's own limit (API definition §3.2.1): a bulk's answer for 1,000 lines, each with
    /// its ILP packet, is over a megabyte.
    fn max_callback_bytes(&self) -> usize {
        5 * 1024 * 1024
    }

    fn is_batch_callback(&self, request: &InboundRequest) -> bool {
        matches!(
            crate::callbacks::route(&request.method, &request.path),
            Some(crate::callbacks::Route::BulkTransfersPut { .. })
        )
    }

    /// `/parties/{Type}/{ID}[/{SubId}]` names a person: logs show it masked.
    fn loggable_path(&self, path: &str) -> String {
        crate::callbacks::mask_party_path(path)
    }

    fn callback(&self, request: &InboundRequest) -> Result<CallbackReply, CallbackError> {
        let route = crate::callbacks::route(&request.method, &request.path)
            .ok_or(CallbackError::UnknownRoute)?;
        let source = self.authenticate(request)?;
        self.handle_callback(request, &source, route)
    }

    fn review_callback(
        &self,
        attempt: &Attempt,
        request: &InboundRequest,
        outcome: CallbackOutcome,
    ) -> Result<CallbackOutcome, CallbackError> {
        self.review(attempt, request, outcome)
    }

    /// The lookup's `PUT /parties` is keyed by the party alone and may beat the 202 of
    /// `GET /parties`: the gateway records the reference before the lookup goes out.
    /// Likewise the answer to `POST /transactionRequests` may link the payer FSP's
    /// `transactionId` before the 202 is recorded.
    fn reference_before_send(&self, attempt: &Attempt) -> Option<String> {
        match RailState::from_value(attempt.rail_state.as_ref()) {
            Ok(None | Some(RailState::LookingUp)) => Some(lookup_reference(&attempt.party)),
            Ok(Some(RailState::PartyFound { .. }))
                if attempt.direction == Direction::Collection =>
            {
                derive_id(attempt.attempt_id, IdPurpose::TransactionRequest)
                    .ok()
                    .map(id_string)
            }
            Ok(Some(_)) | Err(_) => None,
        }
    }

    /// `POST /quotes` and `POST /transfers` are idempotent by `quoteId`/`transferId` (API
    /// definition §3.2.5); the hash ignores whitespace and key order.
    fn idempotent_post(&self, request: &InboundRequest) -> Option<railgate_rail::IdempotentPost> {
        crate::payee::inbound_post(request).map(|p| railgate_rail::IdempotentPost {
            key: format!("{}/{}", p.resource.as_str(), p.id),
            body_hash: p.body_hash,
        })
    }

    fn modified_request_reply(&self, request: &InboundRequest) -> Option<Outbound> {
        crate::payee::inbound_post(request).map(|p| self.modified_request_follow_up(&p))
    }

    /// Sends a PUT the adapter built in a `CallbackReply`, dated and signed now. PUTs are
    /// idempotent at the hub, so resending is safe.
    async fn send_follow_up(&self, outbound: &Outbound) -> Result<(), RailError> {
        let get = |k: &str| {
            outbound
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let uri = get(wire::H_URI)
            .ok_or_else(|| RailError::Permanent("follow-up without FSPIOP-URI".to_owned()))?;
        let destination = get(wire::H_DESTINATION);
        let resource = uri
            .trim_start_matches('/')
            .split('/')
            .next()
            .and_then(Resource::parse)
            .ok_or_else(|| RailError::Permanent("follow-up for an unknown resource".to_owned()))?;
        let method = http::Method::from_bytes(outbound.method.as_bytes())
            .map_err(|e| RailError::Permanent(e.to_string()))?;
        let headers = self.signed_headers(
            method.as_str(),
            &uri,
            resource,
            destination.as_deref(),
            Some(&outbound.body),
        )?;
        let mut rb = self.http.request(method, &outbound.url);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        let (rb, token) = self.authorise(rb.body(outbound.body.clone())).await?;
        let response = rb
            .send()
            .await
            .map_err(|e| self.read_error(&e, "follow-up"))?;
        let status = response.status();
        self.check_token(status, token.as_ref()).await?;
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() {
            Err(RailError::Retryable(format!(
                "follow-up: hub answered {status}"
            )))
        } else {
            Err(RailError::Permanent(format!("follow-up refused: {status}")))
        }
    }
}
