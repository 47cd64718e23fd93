//! The adapter for the mock rail: translates attempts into its API calls and its answers and
//! callbacks into our outcomes. It holds no state between calls.

use crate::signature::{self, SignatureError, EVENT_ID_HEADER, SIGNATURE_HEADER};
use crate::wire::{
    AcceptedResponse, BatchAccepted, BatchCallbackBody, BatchLine, BatchRequest, BatchResults,
    BatchStatus, CallbackBody, ErrorBody, PaymentRequest, Problem, RejectedResponse,
    ReversalRequest, ReversalStatus, TransactionStatus,
};
use async_trait::async_trait;
use railgate_rail::{
    Attempt, BatchAck, BatchLineResult, BatchPage, BatchState, BatchSupport, CallbackError,
    CallbackEvent, CallbackReply, Capabilities, Currency, Direction, InboundRequest, RailAdapter,
    RailError, RailStatus, Reversal, Submitted,
};
use reqwest::StatusCode;
use std::fmt;
use std::time::Duration;
use uuid::Uuid;

/// How the gateway reaches the mock rail and checks its callbacks.
#[derive(Clone)]
pub struct MockAdapterConfig {
    pub rail_id: String,
    /// The rail's API root, e.g. `http://127.0.0.1:9101`.
    pub base_url: String,
    /// The full URL the rail must post callbacks to: `{gateway}/rails/{rail_id}/callback`.
    pub callback_url: String,
    pub callback_secret: String,
    /// Bound on every call to the rail, connection included.
    pub request_timeout: Duration,
    /// How far a callback's signed timestamp may be from its arrival (300 s).
    pub replay_window: Duration,
}

impl MockAdapterConfig {
    /// With a 10 s request timeout and a 300 s replay window.
    pub fn new(
        rail_id: impl Into<String>,
        base_url: impl Into<String>,
        callback_url: impl Into<String>,
        callback_secret: impl Into<String>,
    ) -> Self {
        MockAdapterConfig {
            rail_id: rail_id.into(),
            base_url: base_url.into(),
            callback_url: callback_url.into(),
            callback_secret: callback_secret.into(),
            request_timeout: Duration::from_secs(10),
            replay_window: Duration::from_secs(300),
        }
    }
}

impl fmt::Debug for MockAdapterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockAdapterConfig")
            .field("rail_id", &self.rail_id)
            .field("base_url", &self.base_url)
            .field("callback_url", &self.callback_url)
            .field("callback_secret", &"***")
            .field("request_timeout", &self.request_timeout)
            .field("replay_window", &self.replay_window)
            .finish()
    }
}

/// The path below `/rails/{rail_id}` the rail posts its callbacks to.
pub const CALLBACK_PATH: &str = "/callback";

/// The path below `/rails/{rail_id}` the rail posts "batch completed" to.
pub const BATCH_CALLBACK_PATH: &str = "/batch-callback";

/// Lines per batch upload, at most (the rail's own limit).
pub const MAX_BATCH_LINES: usize = crate::server::MAX_BATCH_LINES;

/// Results read per page.
const RESULTS_PAGE: usize = 5_000;

pub struct MockRailAdapter {
    config: MockAdapterConfig,
    http: reqwest::Client,
}

impl MockRailAdapter {
    pub fn new(config: MockAdapterConfig) -> Self {
        MockRailAdapter::with_client(config, reqwest::Client::new())
    }

    /// With a client shared with other adapters (one connection pool).
    pub fn with_client(mut config: MockAdapterConfig, http: reqwest::Client) -> Self {
        let trimmed = config.base_url.trim_end_matches('/').len();
        config.base_url.truncate(trimmed);
        MockRailAdapter { config, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }

    /// `{gateway}/rails/{id}/batch-callback`, beside the payments' callback URL.
    fn batch_callback_url(&self) -> Option<String> {
        self.config
            .callback_url
            .strip_suffix(CALLBACK_PATH)
            .map(|base| format!("{base}{BATCH_CALLBACK_PATH}"))
    }

    /// Checks a callback's signature and age; returns nothing else.
    fn verify(&self, request: &InboundRequest) -> Result<(), CallbackError> {
        let header = request
            .headers
            .get(SIGNATURE_HEADER)
            .ok_or_else(|| CallbackError::Unauthenticated("no signature header".to_owned()))?
            .to_str()
            .map_err(|_| {
                CallbackError::Unauthenticated("unreadable signature header".to_owned())
            })?;
        let signed_at = signature::verify(&self.config.callback_secret, header, &request.body)
            .map_err(|e| match e {
                SignatureError::Malformed | SignatureError::Mismatch => {
                    CallbackError::Unauthenticated(e.to_string())
                }
            })?;
        let age = request
            .received_at
            .timestamp()
            .saturating_sub(signed_at)
            .unsigned_abs();
        if age > self.config.replay_window.as_secs() {
            return Err(CallbackError::Stale(format!(
                "signed {age} s away from its arrival; the window is {} s",
                self.config.replay_window.as_secs()
            )));
        }
        Ok(())
    }
}

/// A transport failure, classified by whether the request can have reached the rail.
fn send_error(e: &reqwest::Error) -> RailError {
    railgate_rail::transport::send_error(e, "the mock rail")
}

async fn read_body(response: reqwest::Response) -> Result<bytes::Bytes, RailError> {
    response
        .bytes()
        .await
        .map_err(|e| RailError::Unknown(format!("the rail's answer could not be read: {e}")))
}

fn problem_detail(body: &[u8]) -> String {
    serde_json::from_slice::<Problem>(body)
        .map(|p| format!("{}: {}", p.title, p.detail))
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(200).collect())
}

#[async_trait]
impl RailAdapter for MockRailAdapter {
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
            reversal: true,
            max_amount: None,
            whole_units_only: false,
        }
    }

    async fn submit(&self, attempt: &Attempt) -> Result<Submitted, RailError> {
        let path = match attempt.direction {
            Direction::Disbursement => "/v1/payouts",
            Direction::Collection => "/v1/collections",
        };
        let request = PaymentRequest::from_attempt(attempt, &self.config.callback_url);
        tracing::debug!(
            attempt_id = %attempt.attempt_id,
            party = %attempt.party.masked(),
            direction = attempt.direction.as_str(),
            "Submitting to the mock rail"
        );
        let response = self
            .http
            .post(self.url(path))
            .timeout(self.config.request_timeout)
            .json(&request)
            .send()
            .await
            .map_err(|e| send_error(&e))?;
        let status = response.status();
        match status {
            StatusCode::OK | StatusCode::ACCEPTED => {
                let body = read_body(response).await?;
                let reply: AcceptedResponse = serde_json::from_slice(&body).map_err(|e| {
                    RailError::Unknown(format!(
                        "the rail accepted, but its answer is unreadable: {e}"
                    ))
                })?;
                if reply.request_id != attempt.attempt_id {
                    return Err(RailError::Unknown(
                        "the rail answered for another request_id".to_owned(),
                    ));
                }
                Ok(Submitted::from(reply))
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                let body = read_body(response).await?;
                let reply: RejectedResponse = serde_json::from_slice(&body).map_err(|e| {
                    RailError::Unknown(format!(
                        "the rail refused, but its answer is unreadable: {e}"
                    ))
                })?;
                Ok(Submitted::from(reply))
            }
            // The rail documents 503 as "nothing recorded, send the same request again".
            StatusCode::SERVICE_UNAVAILABLE => Err(RailError::Retryable(
                "the rail is unavailable (503); nothing was recorded".to_owned(),
            )),
            s if s.is_client_error() => {
                let body = read_body(response).await.unwrap_or_default();
                Err(RailError::Permanent(format!(
                    "the rail refused the request ({}): {}",
                    s.as_u16(),
                    problem_detail(&body)
                )))
            }
            // A 500 or 504 may come after the rail recorded the payment.
            s => Err(RailError::Unknown(format!(
                "the rail answered {}",
                s.as_u16()
            ))),
        }
    }

    async fn inquire(&self, attempt: &Attempt) -> Result<RailStatus, RailError> {
        let response = self
            .http
            .get(self.url(&format!("/v1/transactions/{}", attempt.attempt_id)))
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(|e| send_error(&e))?;
        let status = response.status();
        let body = read_body(response).await?;
        match status {
            StatusCode::OK => {
                let reply: TransactionStatus = serde_json::from_slice(&body).map_err(|e| {
                    RailError::Unknown(format!("the rail's status answer is unreadable: {e}"))
                })?;
                if reply.request_id != attempt.attempt_id {
                    return Err(RailError::Unknown(
                        "the rail answered for another request_id".to_owned(),
                    ));
                }
                if let Err(e) = reply.money() {
                    return Err(RailError::Unknown(format!(
                        "the rail's status answer has no readable {e}"
                    )));
                }
                Ok(RailStatus::from(reply))
            }
            StatusCode::NOT_FOUND => match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) if e.code == "NOT_FOUND" => Ok(RailStatus::NotFound),
                // A 404 without the rail's own body is a wrong base URL, not a missing payment.
                _ => Err(RailError::Permanent(format!(
                    "the status URL is not the rail's: {}",
                    problem_detail(&body)
                ))),
            },
            StatusCode::SERVICE_UNAVAILABLE => Err(RailError::Retryable(
                "the rail is unavailable (503)".to_owned(),
            )),
            s if s.is_client_error() => Err(RailError::Permanent(format!(
                "the rail refused the inquiry ({}): {}",
                s.as_u16(),
                problem_detail(&body)
            ))),
            s => Err(RailError::Unknown(format!(
                "the rail answered {} to the inquiry",
                s.as_u16()
            ))),
        }
    }

    async fn reverse(&self, reversal: &Reversal) -> Result<Submitted, RailError> {
        let request = ReversalRequest {
            reversal_id: reversal.reversal_id,
            request_id: reversal.original.attempt_id,
        };
        let response = self
            .http
            .post(self.url("/v1/reversals"))
            .timeout(self.config.request_timeout)
            .json(&request)
            .send()
            .await
            .map_err(|e| send_error(&e))?;
        let status = response.status();
        let body = read_body(response).await?;
        match status {
            StatusCode::OK | StatusCode::UNPROCESSABLE_ENTITY => {
                let reply: ReversalStatus = serde_json::from_slice(&body).map_err(|e| {
                    RailError::Unknown(format!("the rail's reversal answer is unreadable: {e}"))
                })?;
                if reply.reversal_id != reversal.reversal_id {
                    return Err(RailError::Unknown(
                        "the rail answered for another reversal_id".to_owned(),
                    ));
                }
                Ok(match RailStatus::from(reply) {
                    RailStatus::Completed(s) => Submitted::Completed(s),
                    RailStatus::Failed(f) => Submitted::Rejected(f),
                    RailStatus::Pending | RailStatus::NotFound => Submitted::Accepted {
                        rail_reference: None,
                    },
                })
            }
            StatusCode::SERVICE_UNAVAILABLE => Err(RailError::Retryable(
                "the rail is unavailable (503); nothing was recorded".to_owned(),
            )),
            s if s.is_client_error() => Err(RailError::Permanent(format!(
                "the rail refused the reversal request ({}): {}",
                s.as_u16(),
                problem_detail(&body)
            ))),
            s => Err(RailError::Unknown(format!(
                "the rail answered {} to the reversal",
                s.as_u16()
            ))),
        }
    }

    async fn inquire_reversal(&self, reversal: &Reversal) -> Result<RailStatus, RailError> {
        let response = self
            .http
            .get(self.url(&format!("/v1/reversals/{}", reversal.reversal_id)))
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(|e| send_error(&e))?;
        let status = response.status();
        let body = read_body(response).await?;
        match status {
            StatusCode::OK => {
                let reply: ReversalStatus = serde_json::from_slice(&body).map_err(|e| {
                    RailError::Unknown(format!("the rail's reversal status is unreadable: {e}"))
                })?;
                Ok(RailStatus::from(reply))
            }
            StatusCode::NOT_FOUND => match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) if e.code == "NOT_FOUND" => Ok(RailStatus::NotFound),
                _ => Err(RailError::Permanent(format!(
                    "the reversal status URL is not the rail's: {}",
                    problem_detail(&body)
                ))),
            },
            StatusCode::SERVICE_UNAVAILABLE => Err(RailError::Retryable(
                "the rail is unavailable (503)".to_owned(),
            )),
            s => Err(RailError::Unknown(format!(
                "the rail answered {} to the reversal inquiry",
                s.as_u16()
            ))),
        }
    }

    fn callback(&self, request: &InboundRequest) -> Result<CallbackReply, CallbackError> {
        if request.method != http::Method::POST {
            return Err(CallbackError::UnknownRoute);
        }
        if request.path == BATCH_CALLBACK_PATH {
            // "Batch completed" names no line: answered without events; the gateway reads
            // the batch's results (`batch_results`) because of it.
            self.verify(request)?;
            let body: BatchCallbackBody = serde_json::from_slice(&request.body)
                .map_err(|e| CallbackError::Malformed(format!("body: {e}")))?;
            let answer = serde_json::json!({ "received": true, "event_id": body.event_id });
            return Ok(CallbackReply::ok_json(Vec::new(), &answer));
        }
        if request.path != CALLBACK_PATH {
            return Err(CallbackError::UnknownRoute);
        }
        self.verify(request)?;
        let body: CallbackBody = serde_json::from_slice(&request.body)
            .map_err(|e| CallbackError::Malformed(format!("body: {e}")))?;
        if let Some(event_header) = request.headers.get(EVENT_ID_HEADER) {
            if event_header.to_str().ok() != Some(body.event_id.to_string().as_str()) {
                return Err(CallbackError::Malformed(
                    "the event id header and the body disagree".to_owned(),
                ));
            }
        }
        let event = CallbackEvent::try_from(body)?;
        let answer = serde_json::json!({ "received": true, "event_id": event.callback_id });
        Ok(CallbackReply::ok_json(vec![event], &answer))
    }

    fn is_batch_callback(&self, request: &InboundRequest) -> bool {
        request.path == BATCH_CALLBACK_PATH
    }

    /// The rail keys batches by our id.
    fn batch_ref_for(&self, batch_id: Uuid) -> Option<String> {
        Some(batch_id.to_string())
    }

    fn batch_support(&self) -> Option<BatchSupport> {
        Some(BatchSupport {
            name: "mock rail batch",
            max_lines: MAX_BATCH_LINES,
            on_by_default: false,
        })
    }

    async fn submit_batch(&self, batch_id: Uuid, lines: &[Attempt]) -> Result<BatchAck, RailError> {
        let request = BatchRequest {
            batch_id,
            callback_url: self.batch_callback_url(),
            lines: lines.iter().map(BatchLine::from_attempt).collect(),
        };
        let response = self
            .http
            .post(self.url("/v1/batches"))
            .timeout(self.config.request_timeout)
            .json(&request)
            .send()
            .await
            .map_err(|e| send_error(&e))?;
        let status = response.status();
        let body = read_body(response).await?;
        match status {
            StatusCode::OK | StatusCode::ACCEPTED => {
                let reply: BatchAccepted = serde_json::from_slice(&body).map_err(|e| {
                    RailError::Unknown(format!(
                        "the rail accepted the batch, but its answer is unreadable: {e}"
                    ))
                })?;
                if reply.batch_id != batch_id {
                    return Err(RailError::Unknown(
                        "the rail answered for another batch".to_owned(),
                    ));
                }
                Ok(BatchAck::Accepted {
                    batch_ref: batch_id.to_string(),
                })
            }
            StatusCode::SERVICE_UNAVAILABLE => Err(RailError::Retryable(
                "the rail is unavailable (503); nothing was recorded".to_owned(),
            )),
            s if s.is_client_error() => Ok(BatchAck::Refused(railgate_rail::Failure::new(
                railgate_rail::FailureCode::InvalidRequest,
                format!(
                    "the rail refused the batch ({}): {}",
                    s.as_u16(),
                    problem_detail(&body)
                ),
                Some(s.as_u16().to_string()),
            ))),
            s => Err(RailError::Unknown(format!(
                "the rail answered {} to the batch",
                s.as_u16()
            ))),
        }
    }

    async fn batch_results(
        &self,
        batch_ref: &str,
        cursor: Option<&str>,
    ) -> Result<BatchPage, RailError> {
        let mut query = vec![("limit", RESULTS_PAGE.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_owned()));
        }
        let response = self
            .http
            .get(self.url(&format!("/v1/batches/{batch_ref}")))
            .query(&query)
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(|e| send_error(&e))?;
        let status = response.status();
        let body = read_body(response).await?;
        if status != StatusCode::OK {
            return Err(if status == StatusCode::SERVICE_UNAVAILABLE {
                RailError::Retryable("the rail is unavailable (503)".to_owned())
            } else {
                RailError::Unknown(format!(
                    "the rail answered {} to the batch results: {}",
                    status.as_u16(),
                    problem_detail(&body)
                ))
            });
        }
        let reply: BatchResults = serde_json::from_slice(&body)
            .map_err(|e| RailError::Unknown(format!("unreadable batch results: {e}")))?;
        let mut lines = Vec::with_capacity(reply.results.len());
        for r in reply.results {
            let amount = r
                .currency
                .parse::<Currency>()
                .ok()
                .and_then(|c| railgate_rail::Money::parse(&r.amount, c).ok());
            lines.push(BatchLineResult {
                attempt_id: r.request_id,
                amount,
                status: RailStatus::from(r),
            });
        }
        Ok(BatchPage {
            lines,
            next: reply.next_cursor,
            state: match reply.status {
                BatchStatus::Processing => BatchState::Open,
                BatchStatus::Completed => BatchState::Done,
            },
        })
    }
}
