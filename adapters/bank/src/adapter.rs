//! The bank rail for the gateway.
//!
//! Simple mode (what `submit` does): each attempt becomes its own one-payment pain.001 file,
//! named after a `MsgId` derived from the attempt id, so a resend finds the file (or the
//! rail reference it already got) and never writes it again. Payroll mode: the gateway
//! builds one file per cut-off and debtor account with `BankAdapter::build_batch`, stores
//! `batch_rail_state` on every attempt of the batch, then calls `write_batch`; `inquire` and
//! `statuses_for_batch` read the answers the same way in both modes.
//!
//! Completion: no pain.002 status completes a payment. `ACTC`, `ACCP`, `ACSP`, `ACSC`, `ACCC`,
//! `ACWC` and the like say the bank accepted (or even settled) the instruction, not that the
//! money left the account: the payment stays pending, and the status is the gateway's to
//! record on the attempt. Only a booked debit entry in a camt.053/054 statement that carries
//! our end-to-end id (and the same amount) completes it; the gateway's bank watcher reads
//! those from the inbound folder (`BankAdapter::read_inbound`). `RJCT` and `CANC` fail the
//! payment. Returns arrive later in camt.053/054 as well.

use crate::drop::{FileDrop, Written};
use crate::pain001::{self, Pain001File, Pain001Options};
use crate::pain002::{self, PaymentStatus, SentBlock, StatusCode};
use crate::{camt, ids, BankError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use railgate_rail::inbound::{FileStatus, InboundFiles, InboundRead};
use railgate_rail::{
    Attempt, CallbackError, CallbackReply, Capabilities, Direction, Failure, FailureCode,
    InboundRequest, RailAdapter, RailError, RailStatus, Submitted,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BankConfig {
    /// The rail's id in the gateway ("bank-crdb").
    pub rail_id: String,
    /// How often the gateway reads the inbound folder (statuses, bookings, returns).
    #[serde(default = "default_poll")]
    pub poll_every: Duration,
    /// Where we drop pain.001 files for the bank.
    pub outbound_dir: PathBuf,
    /// Where the bank drops pain.002 reports and camt statements for us.
    pub inbound_dir: PathBuf,
    pub pain001: Pain001Options,
}

/// The default interval between two reads of the inbound folder.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);

fn default_poll() -> Duration {
    DEFAULT_POLL
}

/// What the gateway stores on each attempt of a batch file (`rail_state`), so that `inquire`
/// knows which file and block the attempt travelled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRailState {
    pub msg_id: String,
    pub pmt_inf_id: String,
}

pub struct BankAdapter {
    cfg: BankConfig,
    drop: FileDrop,
}

impl BankAdapter {
    /// Opens (and creates when missing) the outbound and inbound folders.
    pub fn new(cfg: BankConfig) -> Result<BankAdapter, BankError> {
        let drop = FileDrop::open(&cfg.outbound_dir, &cfg.inbound_dir)?;
        Ok(BankAdapter { cfg, drop })
    }

    pub fn config(&self) -> &BankConfig {
        &self.cfg
    }

    /// Builds the file for a payroll cut-off: every attempt paid from the configured debtor
    /// account. Store `batch_rail_state(&file)` on each attempt before `write_batch`.
    pub fn build_batch(
        &self,
        batch_id: Uuid,
        attempts: &[Attempt],
        created_at: DateTime<Utc>,
    ) -> Result<Pain001File, BankError> {
        pain001::build(
            &self.cfg.pain001,
            batch_id,
            attempts,
            created_at,
            created_at.date_naive(),
        )
    }

    pub fn batch_rail_state(file: &Pain001File) -> serde_json::Value {
        serde_json::json!({ "msg_id": file.msg_id, "pmt_inf_id": file.pmt_inf_id })
    }

    /// Drops a built file; a file already dropped under that name is left alone.
    pub async fn write_batch(&self, file: &Pain001File) -> Result<Written, BankError> {
        let drop = self.drop.clone();
        let name = file.file_name.clone();
        let bytes = file.xml.clone();
        let written = tokio::task::spawn_blocking(move || drop.write_outbound(&name, &bytes))
            .await
            .map_err(|e| BankError::Io(std::io::Error::other(e.to_string())))??;
        Ok(written)
    }

    /// Every pain.002 in the inbound folder, applied to the payments of one block we sent,
    /// in the order the reports were created. The last status per payment is the current one.
    pub async fn statuses_for_batch(
        &self,
        msg_id: &str,
        pmt_inf_id: &str,
        payments: &[(Uuid, String)],
    ) -> Result<Vec<PaymentStatus>, BankError> {
        Ok(self
            .read_inbound()
            .await?
            .statuses_for_batch(msg_id, pmt_inf_id, payments))
    }

    /// Reads the inbound folder once: every pain.002 report (oldest first) and every camt.053/054
    /// file. The gateway's watcher applies a whole sweep from one read.
    pub async fn read_inbound(&self) -> Result<Inbound, BankError> {
        let drop = self.drop.clone();
        let files = tokio::task::spawn_blocking(move || drop.inbound_files())
            .await
            .map_err(|e| BankError::Io(std::io::Error::other(e.to_string())))??;
        let mut reports = Vec::new();
        let mut statements = Vec::new();
        for (name, bytes) in files {
            if camt::is_statement(&bytes) {
                statements.push(InboundFile { name, bytes });
                continue;
            }
            if !pain002::is_pain002(&bytes) {
                continue;
            }
            match pain002::parse(&bytes) {
                Ok(r) => reports.push((r.created_at.clone(), name, r)),
                // One unreadable file must not hide the others; it is the bank's to resend.
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "Unreadable status report skipped")
                }
            }
        }
        reports.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(Inbound {
            reports: reports.into_iter().map(|(_, _, r)| r).collect(),
            statements,
        })
    }

    /// Every booked return in the inbound camt.053/054 files (the same return may appear in
    /// a notification and again in the day's statement: de-duplicate on the end-to-end id).
    pub async fn returns(&self) -> Result<Vec<camt::ReturnedTransfer>, BankError> {
        let inbound = self.read_inbound().await?;
        let mut out: Vec<camt::ReturnedTransfer> = Vec::new();
        for f in &inbound.statements {
            for r in camt::parse_returns(&f.bytes)? {
                if !out.iter().any(|o| o.end_to_end_id == r.end_to_end_id) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// The file and block an attempt travelled in: its batch's (payroll mode) or its own.
    pub fn block_of(attempt: &Attempt) -> BatchRailState {
        Self::block_for(attempt.attempt_id, attempt.rail_state.as_ref())
    }

    fn block_for(attempt_id: Uuid, rail_state: Option<&serde_json::Value>) -> BatchRailState {
        rail_state
            .and_then(|v| serde_json::from_value::<BatchRailState>(v.clone()).ok())
            .unwrap_or_else(|| BatchRailState {
                msg_id: ids::msg_id(attempt_id),
                pmt_inf_id: ids::pmt_inf_id(attempt_id),
            })
    }
}

pub use railgate_rail::inbound::InboundFile;

/// One read of the inbound folder.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// The pain.002 reports, oldest first (by creation time, then file name).
    reports: Vec<pain002::StatusReport>,
    /// The camt.053/054 files, by name.
    pub statements: Vec<InboundFile>,
}

impl Inbound {
    /// Every status the reports give the payments of one block we sent, oldest first. The last
    /// status per payment is the bank's current word.
    pub fn statuses_for_batch(
        &self,
        msg_id: &str,
        pmt_inf_id: &str,
        payments: &[(Uuid, String)],
    ) -> Vec<PaymentStatus> {
        let sent = SentBlock {
            msg_id,
            pmt_inf_id,
            payments,
        };
        self.reports
            .iter()
            .filter(|r| r.original_msg_id == msg_id)
            .flat_map(|r| pain002::resolve(r, &sent))
            .collect()
    }

    /// The bank's latest status for one attempt, if it reported any.
    pub fn latest_status(&self, attempt: &Attempt) -> Option<PaymentStatus> {
        self.latest_for(attempt.attempt_id, attempt.rail_state.as_ref())
    }

    /// `latest_status` from what the gateway stores on the attempt: its id and `rail_state`.
    pub fn latest_for(
        &self,
        attempt_id: Uuid,
        rail_state: Option<&serde_json::Value>,
    ) -> Option<PaymentStatus> {
        let block = BankAdapter::block_for(attempt_id, rail_state);
        let payments = [(attempt_id, ids::end_to_end_id(attempt_id))];
        self.statuses_for_batch(&block.msg_id, &block.pmt_inf_id, &payments)
            .pop()
    }
}

/// The first reason code of a status, and its texts joined.
pub fn reason_of(status: &PaymentStatus) -> (Option<String>, String) {
    let code = status.reasons.iter().find_map(|r| r.code.clone());
    let text = status
        .reasons
        .iter()
        .flat_map(|r| r.additional_info.iter().cloned())
        .collect::<Vec<_>>()
        .join("; ");
    (code, text)
}

/// What one pain.002 status means for a payment: `RJCT`/`CANC` fail it; every other status
/// (`ACSC` and `ACCC` included) leaves it pending until its booking is on a statement.
pub fn map_status(status: &PaymentStatus) -> RailStatus {
    let (reason, text) = reason_of(status);
    match &status.status {
        StatusCode::Rjct => {
            let code = map_reason(reason.as_deref());
            let why = if text.is_empty() {
                format!("rejected by the bank ({})", status.level)
            } else {
                text
            };
            RailStatus::Failed(Failure::new(code, why, reason))
        }
        StatusCode::Canc => RailStatus::Failed(Failure::new(
            FailureCode::Cancelled,
            "cancelled by the bank",
            reason,
        )),
        // Accepted, even "settled on the debtor account": none of these proves the money left;
        // only a booked statement entry does.
        StatusCode::Acsc
        | StatusCode::Accc
        | StatusCode::Actc
        | StatusCode::Rcvd
        | StatusCode::Part
        | StatusCode::Pdng
        | StatusCode::Accp
        | StatusCode::Acsp
        | StatusCode::Acwc
        | StatusCode::Acfc
        | StatusCode::Acwp
        | StatusCode::Blck
        | StatusCode::Patc
        | StatusCode::Other(_) => RailStatus::Pending,
    }
}

/// ISO 20022 external status reason codes, onto our failure codes.
pub fn map_reason(code: Option<&str>) -> FailureCode {
    match code {
        Some("AM04") => FailureCode::InsufficientFunds,
        Some("AC01" | "AC02" | "AC03" | "RC01" | "BE01" | "BE04") => FailureCode::PartyNotFound,
        Some("AC04" | "AC06" | "AC07" | "MD07") => FailureCode::Declined,
        Some("AM02" | "AM14") => FailureCode::LimitExceeded,
        Some("AM05" | "DUPL") => FailureCode::Duplicate,
        Some("TM01") => FailureCode::Expired,
        Some("FF01" | "AM03" | "AM10" | "CH16") => FailureCode::InvalidRequest,
        _ => FailureCode::RailRejected,
    }
}

#[async_trait]
impl RailAdapter for BankAdapter {
    fn id(&self) -> &str {
        &self.cfg.rail_id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            disbursement: true,
            request_to_pay: false,
            currencies: vec![self.cfg.pain001.debtor.currency],
            bulk: true,
            inquiry: true,
            reversal: false,
            max_amount: None,
            whole_units_only: false,
        }
    }

    async fn submit(&self, attempt: &Attempt) -> Result<Submitted, RailError> {
        if attempt.direction != Direction::Disbursement {
            return Err(RailError::Permanent(
                "a bank file rail only pays out".into(),
            ));
        }
        let msg_id = ids::msg_id(attempt.attempt_id);
        if attempt.rail_reference.as_deref() == Some(msg_id.as_str()) {
            // Dropped before; the bank may already have taken the file away.
            return Ok(Submitted::Accepted {
                rail_reference: Some(msg_id),
            });
        }
        let file = match pain001::build(
            &self.cfg.pain001,
            attempt.attempt_id,
            std::slice::from_ref(attempt),
            attempt.created_at,
            Utc::now().date_naive(),
        ) {
            Ok(f) => f,
            Err(BankError::Invalid(why)) => {
                return Ok(Submitted::Rejected(Failure::new(
                    FailureCode::InvalidRequest,
                    why,
                    None,
                )))
            }
            Err(e) => return Err(RailError::Permanent(e.to_string())),
        };
        match self.write_batch(&file).await {
            Ok(w) => {
                let fresh = matches!(w, Written::Written(_));
                tracing::info!(attempt_id = %attempt.attempt_id, msg_id = %file.msg_id, fresh, "pain.001 dropped");
                Ok(Submitted::Accepted {
                    rail_reference: Some(file.msg_id),
                })
            }
            // The final name was never created: nothing reached the bank.
            Err(e) => Err(RailError::Retryable(e.to_string())),
        }
    }

    async fn inquire(&self, attempt: &Attempt) -> Result<RailStatus, RailError> {
        let inbound = self
            .read_inbound()
            .await
            .map_err(|e| RailError::Unknown(e.to_string()))?;
        // The latest status is the bank's current word. Without any report the file is still
        // with the bank: pending, never "not found". A booking, not a status, completes it.
        Ok(inbound
            .latest_status(attempt)
            .map(|s| map_status(&s))
            .unwrap_or(RailStatus::Pending))
    }

    fn callback(&self, _request: &InboundRequest) -> Result<CallbackReply, CallbackError> {
        // Banks answer with files in the inbound folder; nothing may call us over HTTP.
        Err(CallbackError::UnknownRoute)
    }

    fn inbound_files(&self) -> Option<&dyn InboundFiles> {
        Some(self)
    }
}

#[async_trait]
impl InboundFiles for BankAdapter {
    fn poll_every(&self) -> Duration {
        self.cfg.poll_every
    }

    async fn read(&self) -> Result<Box<dyn InboundRead>, RailError> {
        match self.read_inbound().await {
            Ok(inbound) => Ok(Box::new(inbound)),
            Err(e) => Err(RailError::Unknown(e.to_string())),
        }
    }

    fn attempt_of(&self, end_to_end_id: &str) -> Option<Uuid> {
        ids::attempt_of_end_to_end_id(end_to_end_id)
    }
}

impl InboundRead for Inbound {
    fn status_of(
        &self,
        attempt_id: Uuid,
        rail_state: Option<&serde_json::Value>,
    ) -> Option<FileStatus> {
        let status = self.latest_for(attempt_id, rail_state)?;
        let (reason, _) = reason_of(&status);
        Some(FileStatus {
            code: status.status.as_str().to_owned(),
            reason,
            level: status.level.to_owned(),
            outcome: map_status(&status),
        })
    }

    fn statements(&self) -> &[InboundFile] {
        &self.statements
    }
}
