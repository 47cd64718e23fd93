//! Payment Hub EE for the gateway: single disbursements over the channel connector
//! (`POST /channel/transfer`), request-to-pay collections (`POST /channel/collection`), and
//! the outcome read from the operations app.
//!
//! PH-EE answers a transfer at once with a workflow id and pushes nothing afterwards; its
//! channel status endpoints report `FAILED` as if still in flight. So `inquire` reads the
//! operations app (`/api/v1/transfers` or `/api/v1/transactionRequests` by
//! `clientCorrelationId` = our attempt id), and only that. A resend of an attempt carries the
//! same `X-CorrelationID`; PH-EE's idempotency filter then answers 400 `TransactionExists`
//! without the original id, which we resolve by looking the original up, never by sending
//! again under a new id.

use crate::bulk::{self, BulkBatch, LineResult};
use crate::secret::Secret;
use crate::wire::{
    self, BatchCallback, BatchSummary, BulkAccepted, CollectionRequest, KeyValue, MoneyData,
    OpsTransactionRequest, OpsTransfer, Page, PartyIdInfo, PhError, PhParty, TransactionResponse,
    TransferRequest, TransferStatus,
};
use async_trait::async_trait;
use railgate_rail::oauth::{AccessToken, OAuthConfig, TokenClient};
use railgate_rail::tls::{self, ClientTls};
use railgate_rail::transport;
use railgate_rail::{
    Attempt, BatchAck, BatchLineResult, BatchMembership, BatchPage, BatchPlan, BatchState,
    BatchSupport, CallbackError, CallbackReply, Capabilities, Currency, Direction, Failure,
    FailureCode, InboundRequest, PlannedBatch, RailAdapter, RailError, RailStatus, Settled,
    Submitted,
};
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
pub struct PhEeConfig {
    /// The rail's id in the gateway ("mifos").
    pub rail_id: String,
    /// The channel connector's base URL (paths `/channel/...` are appended).
    pub channel_url: String,
    /// The operations app's API base, up to and including `/api/v1`.
    pub operations_url: String,
    /// The bulk processor's base URL (`/batchtransactions` is appended).
    pub bulk_url: String,
    /// `Platform-TenantId`.
    pub tenant: String,
    /// The scheme's own account at PH-EE, paying disbursements.
    pub payer_id_type: String,
    pub payer_identifier: String,
    /// `X-PayeeDFSP-ID`, when the payee's DFSP is not the deployment's default.
    #[serde(default)]
    pub payee_dfsp: Option<String>,
    /// `X-Payment-Scheme` for collections (PH-EE's default is `mpesa`).
    #[serde(default = "default_scheme")]
    pub collection_scheme: String,
    /// Bearer token for the operations app, when its auth is enabled.
    #[serde(default)]
    pub operations_token: Option<Secret>,
    /// The token we put in the batch callback URL; PH-EE does not sign batch callbacks.
    #[serde(default)]
    pub callback_token: Option<Secret>,
    pub currencies: Vec<Currency>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Client certificate, CA bundle and pin for PH-EE's ingress; `None`: the public roots.
    #[serde(skip)]
    pub tls: Option<ClientTls>,
    /// OAuth2 client credentials (PH-EE behind Keycloak): a bearer token on every request to
    /// the channel connector, the operations app and the bulk processor, in place of
    /// `operations_token`.
    #[serde(skip)]
    pub oauth: Option<OAuthConfig>,
}

fn default_scheme() -> String {
    "mpesa".into()
}

fn default_timeout_ms() -> u64 {
    10_000
}

pub struct PhEeAdapter {
    cfg: PhEeConfig,
    http: reqwest::Client,
    bulk: BulkSettings,
    token: Option<TokenClient>,
}

/// How payroll batches are written for this rail (the gateway's `bulk_*` settings).
#[derive(Debug, Clone)]
pub struct BulkSettings {
    /// PH-EE's `payment_mode` column ("mojaloop", "gsma", ...).
    pub payment_mode: String,
    /// The `Purpose` header.
    pub purpose: String,
    /// The batch callback URL, with its token (see [`batch_callback_url`]).
    pub callback_url: Option<String>,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            payment_mode: "mojaloop".into(),
            purpose: "payroll".into(),
            callback_url: None,
        }
    }
}

/// Lines per batch file, at most, as far as the generic batch path asks (files are cut
/// smaller still by size).
pub const MAX_BULK_LINES: usize = 5_000;

/// The request the batch callback URL points at, below `/rails/{rail_id}`.
pub const BATCH_CALLBACK_PATH: &str = "/batch-callback";

impl PhEeAdapter {
    pub fn new(cfg: PhEeConfig) -> Result<PhEeAdapter, RailError> {
        let http = tls::client_builder(cfg.tls.as_ref())
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms.min(3_000)))
            .build()
            .map_err(|e| RailError::Permanent(format!("http client: {e}")))?;
        let token = cfg
            .oauth
            .clone()
            .map(|o| TokenClient::new(o, http.clone()).for_rail(&cfg.rail_id));
        Ok(PhEeAdapter {
            cfg,
            http,
            bulk: BulkSettings::default(),
            token,
        })
    }

    /// With these payroll batch settings.
    pub fn with_bulk(mut self, bulk: BulkSettings) -> PhEeAdapter {
        self.bulk = bulk;
        self
    }

    fn bulk_options(&self) -> bulk::BulkOptions {
        bulk::BulkOptions {
            payer_id_type: self.cfg.payer_id_type.clone(),
            payer_identifier: self.cfg.payer_identifier.clone(),
            purpose: self.bulk.purpose.clone(),
            max_file_bytes: bulk::PHEE_MAX_FILE_BYTES,
        }
    }

    pub fn config(&self) -> &PhEeConfig {
        &self.cfg
    }

    fn payee(&self, attempt: &Attempt) -> Result<PhParty, Failure> {
        let t = wire::id_type(attempt.party.id_type()).ok_or_else(|| {
            Failure::new(
                FailureCode::InvalidRequest,
                format!(
                    "Payment Hub has no identifier type for {}",
                    attempt.party.id_type()
                ),
                None,
            )
        })?;
        Ok(PhParty {
            party_id_info: PartyIdInfo {
                party_id_type: t.to_owned(),
                party_identifier: attempt.party.id_value().to_owned(),
                fsp_id: None,
            },
        })
    }

    fn ops(&self, path: &str) -> reqwest::RequestBuilder {
        let rb = self
            .http
            .get(format!("{}{}", self.cfg.operations_url, path))
            .header("Platform-TenantId", &self.cfg.tenant);
        match (&self.cfg.operations_token, &self.token) {
            // The Keycloak token, when configured, is added at sending time (`send`).
            (Some(t), None) => rb.bearer_auth(t.expose()),
            _ => rb,
        }
    }

    /// Sends with the Keycloak bearer token when one is configured. A 401 with it hands the
    /// token back (the next request fetches another) and is retryable: the request stopped at
    /// the gateway. Transport failures are read by whether the request can have reached PH-EE.
    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, RailError> {
        let (rb, token): (_, Option<AccessToken>) = match &self.token {
            Some(client) => {
                let t = client.token().await?;
                (rb.bearer_auth(t.expose()), Some(t))
            }
            None => (rb, None),
        };
        let resp = rb.send().await.map_err(|e| {
            transport::send_error(&e, &format!("Payment Hub (rail {})", self.cfg.rail_id))
        })?;
        if let (Some(client), Some(t)) = (&self.token, &token) {
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
                client.rejected(t).await;
                return Err(RailError::Retryable(format!(
                    "rail {}: Payment Hub refused our access token; a new one is fetched",
                    self.cfg.rail_id
                )));
            }
        }
        Ok(resp)
    }

    /// Sends and reads a JSON answer from the operations app.
    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, RailError> {
        let resp = self.send(rb).await?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| RailError::Unknown(e.to_string()))?;
        if !status.is_success() {
            return Err(classify_status(
                status.as_u16(),
                &String::from_utf8_lossy(&body),
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| RailError::Unknown(format!("unreadable answer: {e}")))
    }

    /// The operations app's records for one correlation id.
    async fn transfers_by_correlation(
        &self,
        correlation_id: &str,
    ) -> Result<Vec<OpsTransfer>, RailError> {
        let rb = self.ops("/transfers").query(&[
            ("clientCorrelationId", correlation_id),
            ("page", "0"),
            ("size", "20"),
        ]);
        let page: Page<OpsTransfer> = self.read_json(rb).await?;
        Ok(page.content)
    }

    async fn requests_by_correlation(
        &self,
        correlation_id: &str,
    ) -> Result<Vec<OpsTransactionRequest>, RailError> {
        let rb = self.ops("/transactionRequests").query(&[
            ("clientCorrelationId", correlation_id),
            ("page", "0"),
            ("size", "20"),
        ]);
        let page: Page<OpsTransactionRequest> = self.read_json(rb).await?;
        Ok(page.content)
    }

    /// The operations app's view of an attempt, or `None` when it has no record.
    async fn lookup(&self, attempt: &Attempt) -> Result<Option<(RailStatus, String)>, RailError> {
        let id = attempt.attempt_id.to_string();
        match attempt.direction {
            Direction::Disbursement => {
                let rows = self.transfers_by_correlation(&id).await?;
                // Money that moved wins over anything else the app lists for the id.
                let best = rows
                    .iter()
                    .find(|r| r.status == TransferStatus::Completed)
                    .or_else(|| rows.first());
                Ok(best.map(|r| (r.status(), r.transaction_id.clone())))
            }
            Direction::Collection => {
                let rows = self.requests_by_correlation(&id).await?;
                let best = rows
                    .iter()
                    .find(|r| matches!(r.status(), RailStatus::Completed(_)))
                    .or_else(|| rows.first());
                Ok(best.map(|r| (r.status(), r.transaction_id.clone())))
            }
        }
    }

    /// Resolves a `TransactionExists` answer: the first send of this attempt reached PH-EE.
    async fn resolve_existing(&self, attempt: &Attempt) -> Result<Submitted, RailError> {
        tracing::info!(attempt_id = %attempt.attempt_id, "Payment Hub already has this attempt; looking it up");
        let found = match self.lookup(attempt).await {
            Ok(f) => f,
            // It exists, but we cannot see it now: the outcome is for an inquiry to find.
            Err(e) => {
                return Err(RailError::Unknown(format!(
                    "transaction exists, lookup failed: {e}"
                )))
            }
        };
        Ok(match found {
            Some((RailStatus::Completed(s), _)) => Submitted::Completed(s),
            Some((RailStatus::Failed(f), _)) => Submitted::Rejected(f),
            Some((RailStatus::Pending | RailStatus::NotFound, tx)) => Submitted::Accepted {
                rail_reference: Some(tx),
            },
            // The key is there but the operations app has no record yet (or the first try
            // died inside PH-EE after its key was stored): wait for inquiries; the deadline
            // turns a record that never appears into an operator exception.
            None => Submitted::Accepted {
                rail_reference: attempt.rail_reference.clone(),
            },
        })
    }

    /// Uploads one bulk CSV (see `bulk::plan`) and returns PH-EE's batch id.
    pub async fn submit_bulk(
        &self,
        batch: &BulkBatch,
        callback_url: Option<&str>,
    ) -> Result<String, RailError> {
        let part = reqwest::multipart::Part::bytes(batch.csv.clone().into_bytes())
            .file_name(batch.file_name.clone())
            .mime_str("text/csv")
            .map_err(|e| RailError::Permanent(e.to_string()))?;
        let form = reqwest::multipart::Form::new().part("data", part);
        let mut rb = self
            .http
            .post(format!("{}/batchtransactions", self.cfg.bulk_url))
            .header("Platform-TenantId", &self.cfg.tenant)
            .header("X-CorrelationID", batch.correlation_id.to_string())
            .header("Purpose", &batch.purpose)
            .header("Type", "csv")
            .header("filename", &batch.file_name)
            .multipart(form);
        if let Some(url) = callback_url {
            rb = rb.header("X-CallbackURL", url);
        }
        if let Some(dfsp) = &self.cfg.payee_dfsp {
            rb = rb.header("X-PayeeDFSP-ID", dfsp);
        }
        let resp = self.send(rb).await?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| RailError::Unknown(format!("answer lost: {e}")))?;
        if status.is_success() {
            let accepted: BulkAccepted = serde_json::from_slice(&body)
                .map_err(|e| RailError::Unknown(format!("unreadable bulk answer: {e}")))?;
            return bulk::batch_id_of(&accepted.polling_path).ok_or_else(|| {
                RailError::Unknown(format!("no batch id in {}", accepted.polling_path))
            });
        }
        Err(classify_status(
            status.as_u16(),
            &String::from_utf8_lossy(&body),
        ))
    }

    /// The operations app's summary of a batch.
    pub async fn batch_summary(&self, batch_id: &str) -> Result<BatchSummary, RailError> {
        self.read_json(self.ops("/batch").query(&[("batchId", batch_id)]))
            .await
    }

    /// Every line PH-EE has a record for, page by page, mapped to our statuses.
    pub async fn bulk_results(&self, batch_id: &str) -> Result<Vec<LineResult>, RailError> {
        let mut out = Vec::new();
        let size: u64 = 1000;
        // Bounded: a batch file holds at most a few thousand lines.
        for page_no in 0..1000u64 {
            let rb = self.ops("/batch/detail").query(&[
                ("batchId", batch_id.to_owned()),
                ("status", "ALL".to_owned()),
                ("pageNo", page_no.to_string()),
                ("pageSize", size.to_string()),
            ]);
            let page: Page<OpsTransfer> = self.read_json(rb).await?;
            let n = page.content.len();
            out.extend(page.content.iter().filter_map(bulk::line_result));
            if u64::try_from(n).unwrap_or(0) < size {
                break;
            }
        }
        Ok(out)
    }
}

fn classify_status(status: u16, body: &str) -> RailError {
    let short: String = body.chars().take(300).collect();
    match status {
        429 | 503 => RailError::Retryable(format!("HTTP {status}: {short}")),
        400..=499 => RailError::Permanent(format!("HTTP {status}: {short}")),
        _ => RailError::Unknown(format!("HTTP {status}: {short}")),
    }
}

#[async_trait]
impl RailAdapter for PhEeAdapter {
    fn id(&self) -> &str {
        &self.cfg.rail_id
    }

    /// The operations app may show `FAILED` and later `COMPLETED` for the same transfer.
    fn failures_final(&self) -> bool {
        false
    }

    fn batch_support(&self) -> Option<BatchSupport> {
        Some(BatchSupport {
            name: "Payment Hub bulk",
            max_lines: MAX_BULK_LINES,
            on_by_default: true,
        })
    }

    /// PH-EE's files: one payment mode per file, no two equal lines in a file, under its
    /// size limit (`bulk::plan`); collections and payees its CSV cannot carry go one by one.
    fn plan_batches(&self, attempts: &[Attempt], max_lines: usize) -> BatchPlan {
        let mut out = BatchPlan::default();
        let mut sendable = Vec::with_capacity(attempts.len());
        for a in attempts {
            if a.direction == Direction::Disbursement {
                sendable.push(a.clone());
            } else {
                out.refused.push((
                    a.attempt_id,
                    "Payment Hub bulk files carry disbursements only".into(),
                ));
            }
        }
        for chunk in sendable.chunks(max_lines.max(1)) {
            let plan = bulk::plan(chunk, &self.bulk_options(), |_| {
                self.bulk.payment_mode.clone()
            });
            out.refused
                .extend(plan.refused.into_iter().map(|r| (r.attempt_id, r.reason)));
            out.batches
                .extend(plan.batches.into_iter().map(|b| PlannedBatch {
                    batch_id: b.correlation_id,
                    lines: b.lines.iter().map(|l| l.attempt_id).collect(),
                }));
        }
        out
    }

    /// Writes the planned lines as one file under our batch id (the file's correlation id)
    /// and uploads it.
    async fn submit_batch(&self, batch_id: Uuid, lines: &[Attempt]) -> Result<BatchAck, RailError> {
        let plan = bulk::plan(lines, &self.bulk_options(), |_| {
            self.bulk.payment_mode.clone()
        });
        let [file] = plan.batches.as_slice() else {
            return Err(RailError::Permanent(
                "these lines do not make one Payment Hub file".into(),
            ));
        };
        if !plan.refused.is_empty() {
            return Err(RailError::Permanent(
                "a line cannot travel in a Payment Hub file".into(),
            ));
        }
        let file = BulkBatch {
            correlation_id: batch_id,
            file_name: format!("{batch_id}.csv"),
            ..file.clone()
        };
        let batch_ref = self
            .submit_bulk(&file, self.bulk.callback_url.as_deref())
            .await?;
        Ok(BatchAck::Accepted { batch_ref })
    }

    /// Every line PH-EE has a record for (a line listed twice: its completed record wins).
    async fn batch_results(
        &self,
        batch_ref: &str,
        _cursor: Option<&str>,
    ) -> Result<BatchPage, RailError> {
        let rows = self.bulk_results(batch_ref).await?;
        let mut by_id: std::collections::HashMap<Uuid, LineResult> =
            std::collections::HashMap::with_capacity(rows.len());
        let mut order = Vec::with_capacity(rows.len());
        for r in rows {
            let keep = match by_id.get(&r.attempt_id) {
                Some(prev) => !matches!(prev.status, RailStatus::Completed(_)),
                None => {
                    order.push(r.attempt_id);
                    true
                }
            };
            if keep {
                by_id.insert(r.attempt_id, r);
            }
        }
        let lines = order
            .into_iter()
            .filter_map(|id| by_id.remove(&id))
            .map(|r| BatchLineResult {
                attempt_id: r.attempt_id,
                status: match r.status {
                    RailStatus::Completed(s) => RailStatus::Completed(Settled {
                        rail_reference: s.rail_reference.or(Some(r.transaction_id)),
                        ..s
                    }),
                    other => other,
                },
                amount: r.amount,
            })
            .collect();
        // PH-EE's batch never says "done" for lines it has no record of: those are for the
        // single-line inquiry.
        Ok(BatchPage {
            lines,
            next: None,
            state: BatchState::Open,
        })
    }

    fn is_batch_callback(&self, request: &InboundRequest) -> bool {
        request.path == BATCH_CALLBACK_PATH
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            disbursement: true,
            request_to_pay: true,
            currencies: self.cfg.currencies.clone(),
            bulk: true,
            inquiry: true,
            reversal: false,
            max_amount: None,
            whole_units_only: false,
        }
    }

    async fn submit(&self, attempt: &Attempt) -> Result<Submitted, RailError> {
        let correlation = attempt.attempt_id.to_string();
        let rb = match attempt.direction {
            Direction::Disbursement => {
                let payee = match self.payee(attempt) {
                    Ok(p) => p,
                    Err(f) => return Ok(Submitted::Rejected(f)),
                };
                let body = TransferRequest {
                    client_ref_id: attempt.reference.clone(),
                    payer: PhParty {
                        party_id_info: PartyIdInfo {
                            party_id_type: self.cfg.payer_id_type.clone(),
                            party_identifier: self.cfg.payer_identifier.clone(),
                            fsp_id: None,
                        },
                    },
                    payee,
                    amount: MoneyData::from(attempt.amount),
                    note: attempt.narrative.clone(),
                };
                let mut rb = self
                    .http
                    .post(format!("{}/channel/transfer", self.cfg.channel_url))
                    .json(&body);
                if let Some(dfsp) = &self.cfg.payee_dfsp {
                    rb = rb.header("X-PayeeDFSP-ID", dfsp);
                }
                rb
            }
            Direction::Collection => {
                let body = CollectionRequest {
                    payer: vec![
                        KeyValue {
                            key: wire::id_type(attempt.party.id_type())
                                .unwrap_or("MSISDN")
                                .to_owned(),
                            value: attempt.party.id_value().to_owned(),
                        },
                        KeyValue {
                            key: "ACCOUNTID".into(),
                            value: attempt.reference.clone(),
                        },
                    ],
                    amount: MoneyData::from(attempt.amount),
                    transaction_type: None,
                };
                self.http
                    .post(format!("{}/channel/collection", self.cfg.channel_url))
                    .header("X-Payment-Scheme", &self.cfg.collection_scheme)
                    .json(&body)
            }
        };
        let rb = rb
            .header("Platform-TenantId", &self.cfg.tenant)
            .header("X-CorrelationID", &correlation);
        tracing::info!(attempt_id = %attempt.attempt_id, party = %attempt.party.masked(), "Sending to Payment Hub");
        let resp = self.send(rb).await?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            RailError::Unknown(format!("answer lost after the request was sent: {e}"))
        })?;
        if status.is_success() {
            let r: TransactionResponse = serde_json::from_slice(&body)
                .map_err(|e| RailError::Unknown(format!("unreadable answer: {e}")))?;
            return Ok(Submitted::Accepted {
                rail_reference: Some(r.transaction_id),
            });
        }
        if status.as_u16() == 400 {
            let err: PhError = serde_json::from_slice(&body).unwrap_or_default();
            if err.error_code.as_deref() == Some(wire::TRANSACTION_EXISTS) {
                return self.resolve_existing(attempt).await;
            }
        }
        Err(classify_status(
            status.as_u16(),
            &String::from_utf8_lossy(&body),
        ))
    }

    async fn inquire(&self, attempt: &Attempt) -> Result<RailStatus, RailError> {
        Ok(match self.lookup(attempt).await? {
            Some((status, _)) => status,
            // Accepted once (we hold its transaction id): the record is on its way.
            None if attempt.rail_reference.is_some()
                || BatchMembership::of(attempt).is_some_and(|m| m.batch_ref.is_some()) =>
            {
                RailStatus::Pending
            }
            // Never reached PH-EE; a resend under the same correlation id is safe, as PH-EE
            // answers `TransactionExists` if it did after all.
            None => RailStatus::NotFound,
        })
    }

    /// PH-EE pushes nothing for single transfers. The one thing it calls is the batch
    /// callback (a percentage, unsigned), authenticated by the token we put in its URL and
    /// answered with no events: it only tells the gateway to poll `bulk_results` now.
    fn callback(&self, request: &InboundRequest) -> Result<CallbackReply, CallbackError> {
        if request.path != BATCH_CALLBACK_PATH || request.method != http::Method::POST {
            return Err(CallbackError::UnknownRoute);
        }
        let Some(expected) = &self.cfg.callback_token else {
            return Err(CallbackError::Unauthenticated(
                "no batch callback token configured".into(),
            ));
        };
        let presented = request
            .query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .unwrap_or("");
        if !expected.matches(presented) {
            return Err(CallbackError::Unauthenticated(
                "bad batch callback token".into(),
            ));
        }
        let cb: BatchCallback = serde_json::from_slice(&request.body)
            .map_err(|e| CallbackError::Malformed(e.to_string()))?;
        tracing::info!(batch_id = ?cb.batch_id, message = ?cb.message, "Payment Hub batch callback: poll the batch");
        Ok(CallbackReply::ok_json(Vec::new(), &serde_json::json!({})))
    }
}

/// The batch callback URL to give PH-EE for a batch: `{gateway}/rails/{rail_id}/batch-callback?token=…`.
pub fn batch_callback_url(gateway_base: &str, rail_id: &str, token: &Secret) -> String {
    format!(
        "{gateway_base}/rails/{rail_id}{BATCH_CALLBACK_PATH}?token={}",
        token.expose()
    )
}

/// A fresh correlation id for a batch upload (the lines carry the attempt ids).
pub fn new_batch_correlation() -> Uuid {
    Uuid::now_v7()
}
