//! The MMAPI integration: submit, inquire, callbacks and reversals for one provider.

use crate::batch::{BatchProgress, BatchSubmitted};
use crate::config::{Auth, CallbackAuth, MmapiConfig, Notification};
use crate::wire::{
    failure_of, failure_of_state, party_items, status_of_transaction, BatchStatus, ErrorCategory,
    ErrorCode, ErrorObject, KeyValue, RequestState, RequestStatus, Resource, ResponseLink,
    ReversalRequest, TransactionRequest,
};
use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use railgate_rail::oauth::{AccessToken, TokenClient};
use railgate_rail::{tls, transport};
use railgate_rail::{
    Attempt, AttemptRef, BatchAck, BatchLineResult, BatchMembership, BatchPage, BatchPlan,
    BatchState, BatchSupport, CallbackError, CallbackEvent, CallbackOutcome, CallbackReply,
    Capabilities, Direction, Failure, Money, RailAdapter, RailError, RailStatus, Reversal, Settled,
    Submitted,
};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Longest `descriptionText` the API accepts.
const DESCRIPTION_MAX: usize = 160;

pub struct MmapiAdapter {
    pub(crate) config: MmapiConfig,
    pub(crate) http: reqwest::Client,
    token: Option<TokenClient>,
}

/// The body and status of one exchange with the provider.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, RailError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            RailError::Unknown(format!(
                "unreadable {} answer from the provider: {e}",
                self.status
            ))
        })
    }
    fn error_object(&self) -> Option<ErrorObject> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What an error answer means for the money, before any business reading of it.
enum ErrorClass {
    /// Nothing moved; the same request may go again.
    Retryable(String),
    /// We cannot tell (a 5xx other than 503, or a proxy error).
    Unknown(String),
    /// The provider already holds a request with this correlation id.
    Duplicate,
    /// A business or validation refusal: nothing moved, and it will not succeed as it is.
    Refused(Failure),
    /// Our credentials or request are wrong in a way no retry fixes.
    Permanent(String),
}

impl MmapiAdapter {
    pub fn new(config: MmapiConfig) -> Result<MmapiAdapter, RailError> {
        let http = tls::client_builder(config.tls.as_ref())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| RailError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        let token = match &config.auth {
            Auth::OAuth2 { oauth, api_key } => {
                let mut oauth = oauth.clone();
                if let Some(k) = api_key {
                    oauth
                        .extra_headers
                        .push(("X-API-Key".to_owned(), k.clone()));
                }
                Some(TokenClient::new(oauth, http.clone()).for_rail(&config.rail_id))
            }
            Auth::None | Auth::ApiKey { .. } | Auth::Basic { .. } => None,
        };
        Ok(MmapiAdapter {
            config,
            http,
            token,
        })
    }

    pub fn config(&self) -> &MmapiConfig {
        &self.config
    }

    /// The prefix of every callback URL we hand the provider (with the path secret, if any).
    pub(crate) fn callback_prefix(&self) -> String {
        match &self.config.callback_auth {
            CallbackAuth::PathSecret(secret) => {
                format!("{}/{}", self.config.callback_base, secret.expose())
            }
            CallbackAuth::Basic { .. } => self.config.callback_base.clone(),
        }
    }

    fn callback_url(&self, kind: &str, id: &str) -> Option<String> {
        match self.config.notification {
            Notification::Callback => Some(format!("{}/{kind}/{id}", self.callback_prefix())),
            Notification::Polling => None,
        }
    }

    pub(crate) fn scheme_items(&self) -> Vec<KeyValue> {
        self.config
            .scheme_party
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect()
    }

    /// One HTTP exchange. `correlation` is sent as `X-CorrelationID` (the attempt id on
    /// creation requests, so a resend is recognised as one).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        correlation: Option<Uuid>,
        callback_url: Option<String>,
    ) -> Result<Reply, RailError> {
        let url = format!("{}{path}", self.config.base_url);
        let mut req = self
            .http
            .request(method, &url)
            .header("Accept", "application/json")
            .header("Accept-Charset", "utf-8")
            .header(
                "X-Date",
                chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            );
        if let Some(id) = correlation {
            req = req.header("X-CorrelationID", id.to_string());
        }
        if let Some(cb) = callback_url {
            req = req.header("X-Callback-URL", cb);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let (req, token) = self.authorise(req).await?;
        let resp = req.send().await.map_err(|e| self.send_error(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.send_error(&e))?;
        if status == StatusCode::UNAUTHORIZED {
            // A token the provider no longer honours: forget it so the next call fetches one.
            if let (Some(client), Some(token)) = (&self.token, &token) {
                client.rejected(token).await;
            }
        }
        Ok(Reply { status, body })
    }

    /// The request with our credentials, and the bearer token it carries (to hand back if
    /// the provider refuses it).
    async fn authorise(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::RequestBuilder, Option<AccessToken>), RailError> {
        Ok(match &self.config.auth {
            Auth::None => (req, None),
            Auth::ApiKey { api_key } => (req.header("X-API-Key", api_key.expose()), None),
            Auth::Basic {
                username,
                password,
                api_key,
            } => {
                let req = req.basic_auth(username, Some(password.expose()));
                match api_key {
                    Some(k) => (req.header("X-API-Key", k.expose()), None),
                    None => (req, None),
                }
            }
            Auth::OAuth2 { api_key, .. } => {
                let Some(client) = &self.token else {
                    return Err(RailError::Permanent("OAuth2 without a token client".into()));
                };
                let token = client.token().await?;
                let req = req.bearer_auth(token.expose());
                let req = match api_key {
                    Some(k) => req.header("X-API-Key", k.expose()),
                    None => req,
                };
                (req, Some(token))
            }
        })
    }

    /// A failed exchange with the provider, read by whether it can have reached it.
    pub(crate) fn send_error(&self, e: &reqwest::Error) -> RailError {
        transport::send_error(e, &format!("provider of rail {}", self.config.rail_id))
    }

    pub(crate) fn transaction_body(
        &self,
        attempt: &Attempt,
    ) -> Result<TransactionRequest, RailError> {
        if !self.config.currencies.contains(&attempt.amount.currency()) {
            return Err(RailError::Permanent(format!(
                "rail {} does not carry {}",
                self.config.rail_id,
                attempt.amount.currency()
            )));
        }
        let party = party_items(&attempt.party).map_err(RailError::Permanent)?;
        let (credit_party, debit_party) = match attempt.direction {
            Direction::Disbursement => (party, self.scheme_items()),
            Direction::Collection => (self.scheme_items(), party),
        };
        Ok(TransactionRequest {
            kind: None,
            amount: attempt.amount.to_decimal_string(),
            currency: attempt.amount.currency().code().to_owned(),
            credit_party,
            debit_party,
            requesting_organisation_transaction_reference: Some(attempt.reference.clone()),
            description_text: attempt
                .narrative
                .as_ref()
                .map(|n| n.chars().take(DESCRIPTION_MAX).collect()),
            request_date: Some(
                chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            ),
            metadata: Vec::new(),
        })
    }

    /// Follows the provider's pointer to a resource (`/responses` links, `objectReference`).
    pub(crate) async fn fetch_resource(&self, link: &str) -> Result<Option<Resource>, RailError> {
        let path = resource_path(link)
            .ok_or_else(|| RailError::Unknown(format!("unusable link '{link}'")))?;
        let reply = self.send(Method::GET, &path, None, None, None).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.status.is_success() {
            return Err(read_error(&reply));
        }
        Resource::sniff(&reply.body)
            .map(Some)
            .map_err(|e| RailError::Unknown(format!("unreadable resource: {e}")))
    }

    /// What became of a request the provider says it already has (duplicate correlation id,
    /// or an answer lost on the way): `GET /responses/{id}` and the resource it links to.
    pub(crate) async fn recover(&self, correlation: Uuid) -> Result<Option<Resource>, RailError> {
        let reply = self
            .send(
                Method::GET,
                &format!("/responses/{correlation}"),
                None,
                None,
                None,
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.status.is_success() {
            return Err(read_error(&reply));
        }
        let link: ResponseLink = reply.json()?;
        self.fetch_resource(&link.link).await
    }

    /// Maps a resource onto the submission outcome.
    async fn submitted_of(&self, resource: Resource) -> Result<Submitted, RailError> {
        Ok(match resource {
            Resource::Transaction(t) => match status_of_transaction(&t) {
                RailStatus::Completed(s) => Submitted::Completed(s),
                RailStatus::Failed(f) => Submitted::Rejected(f),
                RailStatus::Pending | RailStatus::NotFound => Submitted::Accepted {
                    rail_reference: Some(t.transaction_reference),
                },
            },
            Resource::RequestState(rs) => match rs.status {
                RequestStatus::Pending => Submitted::Accepted {
                    rail_reference: Some(rs.server_correlation_id),
                },
                RequestStatus::Failed => Submitted::Rejected(failure_of_state(&rs)),
                RequestStatus::Completed => match self.status_of_request_state(&rs).await? {
                    RailStatus::Completed(s) => Submitted::Completed(s),
                    RailStatus::Failed(f) => Submitted::Rejected(f),
                    RailStatus::Pending | RailStatus::NotFound => Submitted::Accepted {
                        rail_reference: Some(rs.server_correlation_id),
                    },
                },
            },
            Resource::Error(e) => Submitted::Rejected(failure_of(&e)),
            Resource::Batch(b) => Submitted::Accepted {
                rail_reference: Some(b.batch_id),
            },
        })
    }

    /// A request state's final word; a completed one is confirmed by reading the transaction.
    async fn status_of_request_state(&self, rs: &RequestState) -> Result<RailStatus, RailError> {
        match rs.status {
            RequestStatus::Pending => Ok(RailStatus::Pending),
            RequestStatus::Failed => Ok(RailStatus::Failed(failure_of_state(rs))),
            RequestStatus::Completed => {
                let Some(reference) = rs.object_reference.as_deref() else {
                    return Ok(RailStatus::Completed(Settled::default()));
                };
                let reply = self
                    .send(
                        Method::GET,
                        &format!("/transactions/{reference}"),
                        None,
                        None,
                        None,
                    )
                    .await?;
                if !reply.status.is_success() {
                    return Err(read_error(&reply));
                }
                match Resource::sniff(&reply.body) {
                    Ok(Resource::Transaction(t)) => Ok(status_of_transaction(&t)),
                    Ok(Resource::Batch(_))
                    | Ok(Resource::RequestState(_))
                    | Ok(Resource::Error(_))
                    | Err(_) => Ok(RailStatus::Completed(Settled {
                        rail_reference: Some(reference.to_owned()),
                        receipt: None,
                        amount: None,
                    })),
                }
            }
        }
    }

    fn status_of_resource(resource: Resource) -> Option<RailStatus> {
        match resource {
            Resource::Transaction(t) => Some(status_of_transaction(&t)),
            Resource::Error(e) => Some(RailStatus::Failed(failure_of(&e))),
            Resource::RequestState(_) | Resource::Batch(_) => None,
        }
    }

    /// Sends a creation request and reads its answer, recovering on a duplicate.
    pub(crate) async fn create(
        &self,
        path: &str,
        body: Vec<u8>,
        correlation: Uuid,
        callback_url: Option<String>,
    ) -> Result<Submitted, RailError> {
        let reply = self
            .send(
                Method::POST,
                path,
                Some(body),
                Some(correlation),
                callback_url,
            )
            .await?;
        match reply.status {
            StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => {
                let resource = Resource::sniff(&reply.body).map_err(|e| {
                    RailError::Unknown(format!(
                        "the provider accepted but its answer is unreadable: {e}"
                    ))
                })?;
                self.submitted_of(resource).await
            }
            _ => match classify_error(&reply, self.uses_oauth()) {
                ErrorClass::Retryable(m) => Err(RailError::Retryable(m)),
                ErrorClass::Unknown(m) => Err(RailError::Unknown(m)),
                ErrorClass::Permanent(m) => Err(RailError::Permanent(m)),
                ErrorClass::Refused(f) => Ok(Submitted::Rejected(f)),
                ErrorClass::Duplicate => match self.recover(correlation).await? {
                    Some(resource) => self.submitted_of(resource).await,
                    None => Err(RailError::Unknown(
                        "the provider calls this a duplicate but has no response for it".into(),
                    )),
                },
            },
        }
    }

    fn uses_oauth(&self) -> bool {
        matches!(self.config.auth, Auth::OAuth2 { .. })
    }

    /// Reverses a completed transaction (`POST /transactions/{reference}/reversals`).
    ///
    /// `reversal_id` is chosen and stored by the gateway first, like an attempt id: it is the
    /// `X-CorrelationID`, so a resend cannot reverse twice. `amount` is for partial reversals,
    /// which some providers refuse. The result comes back like a payment's: `Completed`
    /// (201), `Accepted` (202, then a callback on `/reversals/{reversal_id}` or an inquiry via
    /// [`MmapiAdapter::inquire_reversal`]), or `Rejected`.
    pub async fn reverse(
        &self,
        reversal_id: Uuid,
        transaction_reference: &str,
        amount: Option<Money>,
    ) -> Result<Submitted, RailError> {
        if transaction_reference.is_empty() || transaction_reference.contains('/') {
            return Err(RailError::Permanent(
                "a reversal needs the provider's transaction reference".into(),
            ));
        }
        let body = ReversalRequest {
            kind: "reversal".into(),
            amount: amount.map(Money::to_decimal_string),
            currency: amount.map(|a| a.currency().code().to_owned()),
            request_date: Some(
                chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            ),
        };
        let body = serde_json::to_vec(&body).map_err(|e| RailError::Permanent(e.to_string()))?;
        self.create(
            &format!("/transactions/{transaction_reference}/reversals"),
            body,
            reversal_id,
            self.callback_url("reversals", &reversal_id.to_string()),
        )
        .await
    }

    /// What became of a reversal (by its correlation id).
    pub async fn inquire_reversal(&self, reversal_id: Uuid) -> Result<RailStatus, RailError> {
        self.inquire_by_correlation(reversal_id).await
    }

    async fn inquire_by_correlation(&self, correlation: Uuid) -> Result<RailStatus, RailError> {
        match self.recover(correlation).await? {
            None => Ok(RailStatus::NotFound),
            Some(Resource::RequestState(rs)) => self.status_of_request_state(&rs).await,
            Some(other) => Ok(Self::status_of_resource(other).unwrap_or(RailStatus::Pending)),
        }
    }

    /// Checks the caller is the provider; returns the path below the credentials.
    pub(crate) fn authenticate<'a>(
        &self,
        request: &'a railgate_rail::InboundRequest,
    ) -> Result<Vec<&'a str>, CallbackError> {
        let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
        let rest = match &self.config.callback_auth {
            CallbackAuth::PathSecret(secret) => {
                let (first, rest) = segments
                    .split_first()
                    .ok_or_else(|| CallbackError::Unauthenticated("no callback secret".into()))?;
                if !bool::from(first.as_bytes().ct_eq(secret.expose().as_bytes())) {
                    return Err(CallbackError::Unauthenticated(
                        "wrong callback secret".into(),
                    ));
                }
                rest.to_vec()
            }
            CallbackAuth::Basic { username, password } => {
                let header = request
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        CallbackError::Unauthenticated("no Authorization header".into())
                    })?;
                let encoded = header.strip_prefix("Basic ").ok_or_else(|| {
                    CallbackError::Unauthenticated("not Basic credentials".into())
                })?;
                let given = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| {
                        CallbackError::Unauthenticated("malformed Basic credentials".into())
                    })?;
                let expected = format!("{username}:{}", password.expose());
                if !bool::from(given.as_slice().ct_eq(expected.as_bytes())) {
                    return Err(CallbackError::Unauthenticated(
                        "wrong callback credentials".into(),
                    ));
                }
                segments
            }
        };
        match request.headers.get("X-Content-Hash").map(|v| v.to_str()) {
            Some(Ok(given)) => {
                let actual = hex::encode(Sha256::digest(&request.body));
                if !given.trim().eq_ignore_ascii_case(&actual) {
                    return Err(CallbackError::Unauthenticated(
                        "X-Content-Hash does not match the body".into(),
                    ));
                }
            }
            Some(Err(_)) => {
                return Err(CallbackError::Malformed("unreadable X-Content-Hash".into()))
            }
            None if self.config.require_content_hash => {
                return Err(CallbackError::Unauthenticated(
                    "X-Content-Hash is required".into(),
                ))
            }
            None => {}
        }
        Ok(rest)
    }
}

/// A stable id for one delivery: identical redeliveries share it, so the gateway can tell a
/// duplicate from a contradicting callback.
pub(crate) fn delivery_id(kind: &str, id: &str, body: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(body));
    format!("mmapi:{kind}:{id}:{}", digest.get(..16).unwrap_or(&digest))
}

pub(crate) fn no_content(events: Vec<CallbackEvent>) -> CallbackReply {
    CallbackReply {
        events,
        status: 204,
        content_type: "application/json",
        body: Vec::new(),
        follow_ups: Vec::new(),
    }
}

#[async_trait]
impl RailAdapter for MmapiAdapter {
    fn id(&self) -> &str {
        &self.config.rail_id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            disbursement: true,
            request_to_pay: true,
            currencies: self.config.currencies.clone(),
            bulk: true,
            inquiry: true,
            reversal: true,
            max_amount: None,
            whole_units_only: false,
        }
    }

    async fn submit(&self, attempt: &Attempt) -> Result<Submitted, RailError> {
        let path = match attempt.direction {
            Direction::Disbursement => "/transactions/type/disbursement",
            // Payee-initiated merchant payment: the provider prompts the payer.
            Direction::Collection => "/transactions/type/merchantpay",
        };
        let body = serde_json::to_vec(&self.transaction_body(attempt)?)
            .map_err(|e| RailError::Permanent(format!("cannot encode the request: {e}")))?;
        tracing::debug!(
            attempt = %attempt.attempt_id,
            party = %attempt.party.masked(),
            direction = attempt.direction.as_str(),
            "Submitting to MMAPI"
        );
        self.create(
            path,
            body,
            attempt.attempt_id,
            self.callback_url("transactions", &attempt.attempt_id.to_string()),
        )
        .await
    }

    async fn inquire(&self, attempt: &Attempt) -> Result<RailStatus, RailError> {
        // A batch item has no correlation id of its own: it is found in its batch's lists.
        if let Some(m) = BatchMembership::of(attempt) {
            return self.inquire_batch_item(attempt.attempt_id, &m).await;
        }
        // The polling flow recovers by server correlation id, the callback flow by ours.
        if let Some(scid) = attempt
            .rail_reference
            .as_deref()
            .filter(|r| Uuid::parse_str(r).is_ok())
        {
            let reply = self
                .send(
                    Method::GET,
                    &format!("/requeststates/{scid}"),
                    None,
                    None,
                    None,
                )
                .await?;
            if reply.status.is_success() {
                let rs: RequestState = reply.json()?;
                return self.status_of_request_state(&rs).await;
            }
            if reply.status != StatusCode::NOT_FOUND {
                return Err(read_error(&reply));
            }
        }
        self.inquire_by_correlation(attempt.attempt_id).await
    }

    async fn reverse(&self, reversal: &Reversal) -> Result<Submitted, RailError> {
        let reference = reversal.original.rail_reference.as_deref().ok_or_else(|| {
            RailError::Permanent("the payment has no provider transaction reference".into())
        })?;
        // The whole amount: partial reversals are refused by many providers.
        MmapiAdapter::reverse(self, reversal.reversal_id, reference, None).await
    }

    async fn inquire_reversal(&self, reversal: &Reversal) -> Result<RailStatus, RailError> {
        MmapiAdapter::inquire_reversal(self, reversal.reversal_id).await
    }

    fn batch_support(&self) -> Option<BatchSupport> {
        Some(BatchSupport {
            name: "MMAPI batch",
            max_lines: crate::batch::MAX_ITEMS,
            on_by_default: false,
        })
    }

    /// Batches carry disbursements only; collections go one by one.
    fn plan_batches(&self, attempts: &[Attempt], max_lines: usize) -> BatchPlan {
        let (disbursements, others): (Vec<Attempt>, Vec<Attempt>) = attempts
            .iter()
            .cloned()
            .partition(|a| a.direction == Direction::Disbursement);
        let mut plan = BatchPlan::chunked(&disbursements, max_lines);
        plan.refused = others
            .iter()
            .map(|a| {
                (
                    a.attempt_id,
                    "MMAPI batches carry disbursements only".to_owned(),
                )
            })
            .collect();
        plan
    }

    async fn submit_batch(&self, batch_id: Uuid, lines: &[Attempt]) -> Result<BatchAck, RailError> {
        match MmapiAdapter::submit_batch(self, batch_id, "payroll", lines).await? {
            BatchSubmitted::Accepted {
                server_correlation_id,
            } => Ok(BatchAck::Accepted {
                batch_ref: server_correlation_id,
            }),
            BatchSubmitted::Rejected(f) => Ok(BatchAck::Refused(f)),
        }
    }

    /// `batch_ref` is the server correlation id: the request state says whether the batch is
    /// done, then its completions and rejections give every item's outcome.
    async fn batch_results(
        &self,
        batch_ref: &str,
        _cursor: Option<&str>,
    ) -> Result<BatchPage, RailError> {
        let open = BatchPage {
            lines: Vec::new(),
            next: None,
            state: BatchState::Open,
        };
        match self.batch_progress(batch_ref).await? {
            BatchProgress::Pending | BatchProgress::Created { .. } => Ok(open),
            BatchProgress::Failed(f) => Ok(BatchPage {
                state: BatchState::Refused(f),
                ..open
            }),
            BatchProgress::Completed { batch_ref, .. } => {
                let items = MmapiAdapter::batch_results(self, &batch_ref).await?;
                Ok(BatchPage {
                    lines: items
                        .into_iter()
                        .map(|i| BatchLineResult {
                            attempt_id: i.attempt_id,
                            status: i.status,
                            amount: None,
                        })
                        .collect(),
                    next: None,
                    state: BatchState::Done,
                })
            }
        }
    }

    /// With a path secret, every callback path starts with it.
    fn redact_path(&self, path: &str) -> String {
        match &self.config.callback_auth {
            CallbackAuth::PathSecret(_) => railgate_rail::redact_first_segment(path),
            CallbackAuth::Basic { .. } => path.to_owned(),
        }
    }

    fn is_batch_callback(&self, request: &railgate_rail::InboundRequest) -> bool {
        let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
        matches!(segments.as_slice(), [.., "batches", _])
    }

    fn callback(
        &self,
        request: &railgate_rail::InboundRequest,
    ) -> Result<CallbackReply, CallbackError> {
        let rest = self.authenticate(request)?;
        if request.method != http::Method::PUT && request.method != http::Method::POST {
            return Err(CallbackError::UnknownRoute);
        }
        let (kind, id) = match rest.as_slice() {
            [kind @ ("transactions" | "reversals"), id] => (*kind, *id),
            ["batches", _] => return crate::batch::batch_callback_reply(&rest, request),
            _ => return Err(CallbackError::UnknownRoute),
        };
        let attempt_id = Uuid::parse_str(id)
            .map_err(|_| CallbackError::Malformed("attempt id is not a UUID".into()))?;
        if let Some(corr) = request.headers.get("X-CorrelationID") {
            let same = corr
                .to_str()
                .ok()
                .and_then(|c| Uuid::parse_str(c.trim()).ok())
                .is_some_and(|c| c == attempt_id);
            if !same {
                return Err(CallbackError::Malformed(
                    "X-CorrelationID does not name this attempt".into(),
                ));
            }
        }
        let outcome = match Resource::sniff(&request.body).map_err(CallbackError::Malformed)? {
            Resource::Transaction(t) => match status_of_transaction(&t) {
                RailStatus::Completed(s) => CallbackOutcome::Completed(s),
                RailStatus::Failed(f) => CallbackOutcome::Failed(f),
                RailStatus::Pending | RailStatus::NotFound => CallbackOutcome::Pending,
            },
            Resource::Error(e) => CallbackOutcome::Failed(failure_of(&e)),
            Resource::RequestState(rs) => match rs.status {
                RequestStatus::Pending => CallbackOutcome::Pending,
                RequestStatus::Failed => CallbackOutcome::Failed(failure_of_state(&rs)),
                // A request state names no amount (the MMAPI README says so).
                RequestStatus::Completed => CallbackOutcome::Completed(Settled {
                    rail_reference: rs.object_reference.clone(),
                    receipt: None,
                    amount: None,
                }),
            },
            Resource::Batch(_) => {
                return Err(CallbackError::Malformed(
                    "a batch object on a transaction callback".into(),
                ))
            }
        };
        Ok(no_content(vec![CallbackEvent {
            callback_id: delivery_id(kind, id, &request.body),
            attempt: AttemptRef::Attempt(attempt_id),
            outcome,
        }]))
    }
}

impl MmapiAdapter {
    /// A batch item's outcome: its batch's progress (by the server correlation id, or by our
    /// batch id when the upload's answer was lost), then the item in the batch's lists.
    async fn inquire_batch_item(
        &self,
        attempt_id: Uuid,
        m: &BatchMembership,
    ) -> Result<RailStatus, RailError> {
        let progress = match &m.batch_ref {
            Some(scid) => self.batch_progress(scid).await?,
            None => match self.recover(m.batch_id).await? {
                // The batch never reached the provider: the item may go on its own, same id.
                None => return Ok(RailStatus::NotFound),
                Some(Resource::RequestState(rs)) => {
                    self.batch_progress(&rs.server_correlation_id).await?
                }
                Some(Resource::Batch(b)) => match b.batch_status {
                    BatchStatus::Completed => BatchProgress::Completed {
                        batch_ref: b.batch_id,
                        completed: None,
                        rejected: None,
                    },
                    BatchStatus::Created | BatchStatus::Approved => BatchProgress::Pending,
                },
                Some(Resource::Error(e)) => BatchProgress::Failed(failure_of(&e)),
                Some(Resource::Transaction(_)) => {
                    return Err(RailError::Unknown(
                        "the batch's correlation id leads to a transaction".into(),
                    ))
                }
            },
        };
        match progress {
            BatchProgress::Pending | BatchProgress::Created { .. } => Ok(RailStatus::Pending),
            // Refused as a whole: nothing of it ran.
            BatchProgress::Failed(_) => Ok(RailStatus::NotFound),
            BatchProgress::Completed { batch_ref, .. } => {
                Ok(MmapiAdapter::batch_results(self, &batch_ref)
                    .await?
                    .into_iter()
                    .find(|i| i.attempt_id == attempt_id)
                    // Not in either list of a finished batch: the deadline makes it an exception.
                    .map_or(RailStatus::Pending, |i| i.status))
            }
        }
    }
}

/// Reads an error answer for a follow-up read (inquiries, links).
pub(crate) fn read_error(reply: &Reply) -> RailError {
    match classify_error(reply, true) {
        ErrorClass::Retryable(m) => RailError::Retryable(m),
        ErrorClass::Unknown(m) | ErrorClass::Permanent(m) => RailError::Unknown(m),
        ErrorClass::Refused(f) => RailError::Unknown(format!(
            "the provider answered {}: {}",
            reply.status, f.reason
        )),
        ErrorClass::Duplicate => RailError::Unknown("unexpected duplicate answer to a read".into()),
    }
}

/// What an error answer means for the money (RRG: schema, client authorisation and service
/// errors come on the acknowledgement; business errors usually on the callback).
fn classify_error(reply: &Reply, token_refreshable: bool) -> ErrorClass {
    let status = reply.status;
    let err = reply.error_object();
    let category = err
        .as_ref()
        .map(|e| ErrorCategory::parse(&e.error_category));
    let code = err.as_ref().map(|e| ErrorCode::parse(&e.error_code));
    let describe = || match &err {
        Some(e) => format!("{status} {}/{}", e.error_category, e.error_code),
        None => format!("{status}"),
    };
    if code == Some(ErrorCode::DuplicateRequest) {
        return ErrorClass::Duplicate;
    }
    if status == StatusCode::SERVICE_UNAVAILABLE
        || status == StatusCode::TOO_MANY_REQUESTS
        || category == Some(ErrorCategory::ServiceUnavailable)
        || code == Some(ErrorCode::RateLimitError)
    {
        return ErrorClass::Retryable(format!("provider unavailable: {}", describe()));
    }
    if status.is_server_error() || category == Some(ErrorCategory::Internal) {
        // "A proxy server issue may have resulted in a HTTP 5xx response but the provider may
        // have actually successfully completed the request" (GS, Missing Response Retrieval).
        return ErrorClass::Unknown(format!("provider error, outcome unknown: {}", describe()));
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        // An expired token was refused before anything moved; fetch a new one and resend.
        return if token_refreshable && status == StatusCode::UNAUTHORIZED {
            ErrorClass::Retryable(format!(
                "credentials refused, token renewed: {}",
                describe()
            ))
        } else {
            ErrorClass::Permanent(format!(
                "the provider refused our credentials: {}",
                describe()
            ))
        };
    }
    match err {
        Some(e) if status.is_client_error() => ErrorClass::Refused(failure_of(&e)),
        Some(_) | None => ErrorClass::Permanent(format!(
            "unexpected answer from the provider: {}",
            describe()
        )),
    }
}

/// The path below the API root of a link the provider gave us (absolute or relative).
fn resource_path(link: &str) -> Option<String> {
    let path = match link.split_once("://") {
        Some((_, rest)) => rest.find('/').and_then(|i| rest.get(i..))?,
        None => link,
    };
    // Everything after the "/mm" segment of `{…}/{version}/mm/{resource}`.
    let tail = match path.find("/mm/") {
        Some(i) => path.get(i.checked_add(3)?..)?,
        None => path,
    };
    let tail = tail.split(['?', '#']).next()?;
    if tail.starts_with('/') && !tail.contains("..") {
        Some(tail.to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn links_become_paths() {
        assert_eq!(
            resource_path("https://api.example/v1.2/mm/transactions/REF1").as_deref(),
            Some("/transactions/REF1")
        );
        assert_eq!(
            resource_path("/requeststates/abc").as_deref(),
            Some("/requeststates/abc")
        );
        assert_eq!(resource_path("/mm/../x"), None);
    }

    #[test]
    fn duplicate_and_unavailable_are_classified() {
        let reply = |status: u16, body: &str| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_owned()),
        };
        assert!(matches!(
            classify_error(
                &reply(
                    400,
                    r#"{"errorCategory":"businessRule","errorCode":"duplicateRequest"}"#
                ),
                false
            ),
            ErrorClass::Duplicate
        ));
        assert!(matches!(
            classify_error(
                &reply(
                    503,
                    r#"{"errorCategory":"serviceUnavailable","errorCode":"genericError"}"#
                ),
                false
            ),
            ErrorClass::Retryable(_)
        ));
        assert!(matches!(
            classify_error(&reply(502, ""), false),
            ErrorClass::Unknown(_)
        ));
        assert!(matches!(
            classify_error(
                &reply(
                    404,
                    r#"{"errorCategory":"identification","errorCode":"identifierError"}"#
                ),
                false
            ),
            ErrorClass::Refused(_)
        ));
    }
}
