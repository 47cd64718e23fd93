//! Returned transfers in camt.053 statements and camt.054 notifications.
//!
//! A benefit that bounces comes back days later as a separate credit entry coded as a return
//! (`BkTxCd` sub-family `RRTN`, or `RPCR`) that carries our original `EndToEndId` and the
//! reason (`RtrInf/Rsn/Cd`). Only booked entries (`Sts` = `BOOK`, either the .02 text form or
//! the .08 `<Cd>` form) count; `RvslInd=true` is the bank correcting its own booking, which is
//! not a return. The full statement (balances, all entries) is the reconciliation engine's to
//! read; this module only extracts what lets the gateway reverse a payment.

use crate::xml::{ends_with, walk, Node};
use crate::{ids, BankError};
use railgate_rail::{Currency, Money};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnedTransfer {
    /// Our original `EndToEndId`.
    pub end_to_end_id: String,
    /// The attempt it was derived from, when it is one of ours.
    pub attempt_id: Option<Uuid>,
    /// `RtrInf/Rsn/Cd` (AC01, AC04, MD07...).
    pub reason_code: Option<String>,
    pub additional_info: Option<String>,
    /// The returned amount (the entry's amount), when the currency is one we know.
    pub amount: Option<Money>,
    pub booking_date: Option<String>,
    /// The bank's reference of the entry, to recognise the same return in a later statement.
    pub account_servicer_ref: Option<String>,
}

#[derive(Default)]
struct Entry {
    amount: Option<(String, String)>,
    credit: bool,
    reversal: bool,
    status: Option<String>,
    sub_family: Option<String>,
    booking_date: Option<String>,
    acct_svcr_ref: Option<String>,
    details: Vec<Detail>,
}

#[derive(Default)]
struct Detail {
    end_to_end_id: Option<String>,
    has_return_info: bool,
    reason: Option<String>,
    info: Option<String>,
}

/// True when the document is a camt.053 or camt.054 of any version.
pub fn is_statement(xml: &[u8]) -> bool {
    matches!(crate::xml::root_namespace(xml), Ok(Some(ns)) if ns.contains(":camt.053.") || ns.contains(":camt.054."))
}

/// Every booked return entry in a camt.053/054 document that names an end-to-end id.
pub fn parse_returns(xml: &[u8]) -> Result<Vec<ReturnedTransfer>, BankError> {
    if !is_statement(xml) {
        return Err(BankError::Malformed("not a camt.053/054 document".into()));
    }
    let mut out = Vec::new();
    let mut entry: Option<Entry> = None;
    walk(xml, |node| {
        match node {
            Node::Open { path, attrs } => {
                if ends_with(path, &["Ntry"]) {
                    entry = Some(Entry::default());
                } else if let Some(e) = entry.as_mut() {
                    if ends_with(path, &["NtryDtls", "TxDtls"]) {
                        e.details.push(Detail::default());
                    } else if ends_with(path, &["TxDtls", "RtrInf"]) {
                        if let Some(d) = e.details.last_mut() {
                            d.has_return_info = true;
                        }
                    } else if ends_with(path, &["Ntry", "Amt"]) {
                        let ccy = attrs.into_iter().find(|(k, _)| k == "Ccy").map(|(_, v)| v);
                        e.amount = Some((String::new(), ccy.unwrap_or_default()));
                    }
                }
            }
            Node::Text { path, text } => {
                if let Some(e) = entry.as_mut() {
                    entry_text(e, path, text);
                }
            }
            Node::Close { path } => {
                if ends_with(path, &["Ntry"]) {
                    if let Some(e) = entry.take() {
                        collect(e, &mut out);
                    }
                }
            }
        }
        Ok(())
    })?;
    Ok(out)
}

fn entry_text(e: &mut Entry, path: &[String], text: String) {
    if ends_with(path, &["Ntry", "Amt"]) {
        if let Some(a) = e.amount.as_mut() {
            a.0 = text;
        }
    } else if ends_with(path, &["Ntry", "CdtDbtInd"]) {
        e.credit = text == "CRDT";
    } else if ends_with(path, &["Ntry", "RvslInd"]) {
        e.reversal = text == "true";
    } else if ends_with(path, &["Ntry", "Sts"]) || ends_with(path, &["Ntry", "Sts", "Cd"]) {
        e.status = Some(text);
    } else if ends_with(path, &["Ntry", "BookgDt", "Dt"])
        || ends_with(path, &["Ntry", "BookgDt", "DtTm"])
    {
        e.booking_date = Some(text);
    } else if ends_with(path, &["Ntry", "AcctSvcrRef"]) {
        e.acct_svcr_ref = Some(text);
    } else if ends_with(path, &["Ntry", "BkTxCd", "Domn", "Fmly", "SubFmlyCd"]) {
        e.sub_family = Some(text);
    } else if let Some(d) = e.details.last_mut() {
        if ends_with(path, &["TxDtls", "Refs", "EndToEndId"]) {
            d.end_to_end_id = Some(text);
        } else if ends_with(path, &["RtrInf", "Rsn", "Cd"])
            || ends_with(path, &["RtrInf", "Rsn", "Prtry"])
        {
            d.reason = Some(text);
        } else if ends_with(path, &["RtrInf", "AddtlInf"]) {
            d.info = Some(text);
        }
    }
}

fn collect(e: Entry, out: &mut Vec<ReturnedTransfer>) {
    let booked = e.status.as_deref() == Some("BOOK");
    let return_code = matches!(e.sub_family.as_deref(), Some("RRTN") | Some("RPCR"));
    if !booked || !e.credit || e.reversal {
        return;
    }
    let single = e.details.len() == 1;
    let amount = e.amount.as_ref().and_then(|(value, ccy)| {
        let c: Currency = ccy.parse().ok()?;
        Money::parse(value, c).ok()
    });
    for d in e.details {
        if !(return_code || d.has_return_info) {
            continue;
        }
        let Some(e2e) = d.end_to_end_id.filter(|id| id != "NOTPROVIDED") else {
            continue;
        };
        out.push(ReturnedTransfer {
            attempt_id: ids::attempt_of_end_to_end_id(&e2e),
            end_to_end_id: e2e,
            reason_code: d.reason,
            additional_info: d.info,
            amount: if single { amount } else { None },
            booking_date: e.booking_date.clone(),
            account_servicer_ref: e.acct_svcr_ref.clone(),
        });
    }
}
