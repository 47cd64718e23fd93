//! pain.002 customer payment status reports, read as a stream.
//!
//! A report speaks at three levels: the file (`OrgnlGrpInfAndSts/GrpSts`), a payment block
//! (`OrgnlPmtInfAndSts/PmtInfSts`) and a transaction (`TxInfAndSts/TxSts`), each with
//! optional reason codes. A block can be rejected without listing its transactions; the
//! status then applies to every payment of the block, which only the sender (we) can list:
//! `resolve` takes that list. Status codes are read as open strings (.03 has a closed list,
//! .10 uses external code lists).

use crate::xml::{ends_with, walk, Node};
use crate::BankError;
use uuid::Uuid;

/// A payment status code as banks send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusCode {
    /// Accepted technical validation.
    Actc,
    /// Received.
    Rcvd,
    /// Part of the file accepted (look at the lower levels).
    Part,
    /// Rejected.
    Rjct,
    /// Pending.
    Pdng,
    /// Accepted customer profile.
    Accp,
    /// Accepted settlement in process.
    Acsp,
    /// Accepted settlement completed (debtor account debited).
    Acsc,
    /// Accepted with change.
    Acwc,
    /// Accepted, credited to the creditor's account.
    Accc,
    /// Accepted, funds checked.
    Acfc,
    /// Accepted without posting.
    Acwp,
    /// Blocked.
    Blck,
    /// Cancelled.
    Canc,
    /// Partially accepted technical validation.
    Patc,
    /// A code this adapter does not know (the .10 code lists are external and grow).
    Other(String),
}

impl StatusCode {
    pub fn parse(code: &str) -> StatusCode {
        match code {
            "ACTC" => StatusCode::Actc,
            "RCVD" => StatusCode::Rcvd,
            "PART" => StatusCode::Part,
            "RJCT" => StatusCode::Rjct,
            "PDNG" => StatusCode::Pdng,
            "ACCP" => StatusCode::Accp,
            "ACSP" => StatusCode::Acsp,
            "ACSC" => StatusCode::Acsc,
            "ACWC" => StatusCode::Acwc,
            "ACCC" => StatusCode::Accc,
            "ACFC" => StatusCode::Acfc,
            "ACWP" => StatusCode::Acwp,
            "BLCK" => StatusCode::Blck,
            "CANC" => StatusCode::Canc,
            "PATC" => StatusCode::Patc,
            other => StatusCode::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            StatusCode::Actc => "ACTC",
            StatusCode::Rcvd => "RCVD",
            StatusCode::Part => "PART",
            StatusCode::Rjct => "RJCT",
            StatusCode::Pdng => "PDNG",
            StatusCode::Accp => "ACCP",
            StatusCode::Acsp => "ACSP",
            StatusCode::Acsc => "ACSC",
            StatusCode::Acwc => "ACWC",
            StatusCode::Accc => "ACCC",
            StatusCode::Acfc => "ACFC",
            StatusCode::Acwp => "ACWP",
            StatusCode::Blck => "BLCK",
            StatusCode::Canc => "CANC",
            StatusCode::Patc => "PATC",
            StatusCode::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reason {
    /// `Rsn/Cd` (AC01, AM04...) or `Rsn/Prtry`.
    pub code: Option<String>,
    pub additional_info: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxStatus {
    pub original_end_to_end_id: Option<String>,
    pub original_instruction_id: Option<String>,
    pub status: Option<StatusCode>,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockStatus {
    pub original_pmt_inf_id: String,
    pub status: Option<StatusCode>,
    pub reasons: Vec<Reason>,
    pub transactions: Vec<TxStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// The namespace of the report (`...pain.002.001.03`, `...pain.002.001.10`).
    pub namespace: String,
    pub msg_id: String,
    pub created_at: String,
    pub original_msg_id: String,
    pub original_msg_name: Option<String>,
    pub group_status: Option<StatusCode>,
    pub group_reasons: Vec<Reason>,
    pub blocks: Vec<BlockStatus>,
}

/// True when the document's root namespace is a pain.002 of any version.
pub fn is_pain002(xml: &[u8]) -> bool {
    matches!(crate::xml::root_namespace(xml), Ok(Some(ns)) if ns.contains(":pain.002."))
}

/// Parses a pain.002 report.
pub fn parse(xml: &[u8]) -> Result<StatusReport, BankError> {
    let namespace = crate::xml::root_namespace(xml)?.unwrap_or_default();
    if !namespace.contains(":pain.002.") {
        return Err(BankError::Malformed(format!(
            "not a pain.002 report: {namespace:?}"
        )));
    }
    let mut r = StatusReport {
        namespace,
        ..StatusReport::default()
    };
    walk(xml, |node| {
        match node {
            Node::Open { path, .. } => {
                if ends_with(path, &["OrgnlPmtInfAndSts"]) {
                    r.blocks.push(BlockStatus::default());
                } else if ends_with(path, &["TxInfAndSts"]) {
                    if let Some(b) = r.blocks.last_mut() {
                        b.transactions.push(TxStatus::default());
                    }
                } else if ends_with(path, &["StsRsnInf"]) {
                    reasons_at(&mut r, path).push(Reason::default());
                }
            }
            Node::Text { path, text } => apply_text(&mut r, path, text),
            Node::Close { .. } => {}
        }
        Ok(())
    })?;
    if r.original_msg_id.is_empty() {
        return Err(BankError::Malformed("pain.002 without OrgnlMsgId".into()));
    }
    Ok(r)
}

fn within(path: &[String], name: &str) -> bool {
    path.iter().any(|p| p == name)
}

/// The reason list the current `StsRsnInf` belongs to.
fn reasons_at<'r>(r: &'r mut StatusReport, path: &[String]) -> &'r mut Vec<Reason> {
    let has_tx = r.blocks.last().is_some_and(|b| !b.transactions.is_empty());
    let has_block = !r.blocks.is_empty();
    let level = if within(path, "TxInfAndSts") && has_tx {
        2
    } else if within(path, "OrgnlPmtInfAndSts") && has_block {
        1
    } else {
        0
    };
    match (level, r.blocks.last_mut()) {
        (2, Some(b)) => match b.transactions.last_mut() {
            Some(t) => &mut t.reasons,
            None => &mut b.reasons,
        },
        (1, Some(b)) => &mut b.reasons,
        _ => &mut r.group_reasons,
    }
}

fn apply_text(r: &mut StatusReport, path: &[String], text: String) {
    if ends_with(path, &["GrpHdr", "MsgId"]) {
        r.msg_id = text;
    } else if ends_with(path, &["GrpHdr", "CreDtTm"]) {
        r.created_at = text;
    } else if ends_with(path, &["OrgnlGrpInfAndSts", "OrgnlMsgId"]) {
        r.original_msg_id = text;
    } else if ends_with(path, &["OrgnlGrpInfAndSts", "OrgnlMsgNmId"]) {
        r.original_msg_name = Some(text);
    } else if ends_with(path, &["OrgnlGrpInfAndSts", "GrpSts"]) {
        r.group_status = Some(StatusCode::parse(&text));
    } else if ends_with(path, &["OrgnlPmtInfAndSts", "OrgnlPmtInfId"]) {
        if let Some(b) = r.blocks.last_mut() {
            b.original_pmt_inf_id = text;
        }
    } else if ends_with(path, &["OrgnlPmtInfAndSts", "PmtInfSts"]) {
        if let Some(b) = r.blocks.last_mut() {
            b.status = Some(StatusCode::parse(&text));
        }
    } else if ends_with(path, &["TxInfAndSts", "OrgnlEndToEndId"]) {
        if let Some(t) = r.blocks.last_mut().and_then(|b| b.transactions.last_mut()) {
            t.original_end_to_end_id = Some(text);
        }
    } else if ends_with(path, &["TxInfAndSts", "OrgnlInstrId"]) {
        if let Some(t) = r.blocks.last_mut().and_then(|b| b.transactions.last_mut()) {
            t.original_instruction_id = Some(text);
        }
    } else if ends_with(path, &["TxInfAndSts", "TxSts"]) {
        if let Some(t) = r.blocks.last_mut().and_then(|b| b.transactions.last_mut()) {
            t.status = Some(StatusCode::parse(&text));
        }
    } else if ends_with(path, &["StsRsnInf", "Rsn", "Cd"])
        || ends_with(path, &["StsRsnInf", "Rsn", "Prtry"])
    {
        if let Some(reason) = reasons_at(r, path).last_mut() {
            reason.code = Some(text);
        }
    } else if ends_with(path, &["StsRsnInf", "AddtlInf"]) {
        if let Some(reason) = reasons_at(r, path).last_mut() {
            reason.additional_info.push(text);
        }
    }
}

/// The status one payment gets from a report, at the most specific level that speaks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentStatus {
    pub attempt_id: Uuid,
    pub end_to_end_id: String,
    pub status: StatusCode,
    pub reasons: Vec<Reason>,
    /// Which level the status came from: "transaction", "block" or "group".
    pub level: &'static str,
}

/// A payment block we sent: its `PmtInfId` and its payments as (attempt id, EndToEndId).
pub struct SentBlock<'a> {
    pub msg_id: &'a str,
    pub pmt_inf_id: &'a str,
    pub payments: &'a [(Uuid, String)],
}

/// Applies a report to the payments of a block we sent, level by level: a transaction line
/// wins; else the block's own status (a block rejected without transaction lines reaches
/// every payment in it); else the group status. `PART` at block or group level says
/// nothing about one payment, and a group `RJCT` for a duplicate file (reason `DUPL`/`AM05`)
/// refuses the copy, not the payments of the original, so neither is applied.
pub fn resolve(report: &StatusReport, sent: &SentBlock<'_>) -> Vec<PaymentStatus> {
    if report.original_msg_id != sent.msg_id {
        return Vec::new();
    }
    let block = report
        .blocks
        .iter()
        .find(|b| b.original_pmt_inf_id == sent.pmt_inf_id);
    let mut out = Vec::new();
    for (attempt_id, e2e) in sent.payments {
        let tx = block.and_then(|b| {
            b.transactions.iter().rev().find(|t| {
                t.original_end_to_end_id.as_deref() == Some(e2e.as_str()) && t.status.is_some()
            })
        });
        let found = match (tx, block) {
            (Some(t), _) => t
                .status
                .clone()
                .map(|s| (s, t.reasons.clone(), "transaction")),
            (None, Some(b)) if applies(b.status.as_ref(), &b.reasons) => {
                b.status.clone().map(|s| (s, b.reasons.clone(), "block"))
            }
            _ if applies(report.group_status.as_ref(), &report.group_reasons) => report
                .group_status
                .clone()
                .map(|s| (s, report.group_reasons.clone(), "group")),
            _ => None,
        };
        if let Some((status, reasons, level)) = found {
            out.push(PaymentStatus {
                attempt_id: *attempt_id,
                end_to_end_id: e2e.clone(),
                status,
                reasons,
                level,
            });
        }
    }
    out
}

fn applies(status: Option<&StatusCode>, reasons: &[Reason]) -> bool {
    match status {
        None | Some(StatusCode::Part) | Some(StatusCode::Patc) => false,
        Some(StatusCode::Rjct) => !reasons
            .iter()
            .any(|r| matches!(r.code.as_deref(), Some("DUPL") | Some("AM05"))),
        Some(_) => true,
    }
}
