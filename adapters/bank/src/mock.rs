//! The sandbox bank: picks pain.001 files up from the outbound folder, answers with pain.002
//! reports and camt.054 notifications in the inbound folder, and writes a camt.053 statement
//! on request. Its control endpoints are served over HTTP on their own port.
//!
//! Scenarios, by the last two digits of the creditor's account (IBAN or account number):
//!
//! | ends in | what the bank does |
//! |---|---|
//! | 00, 05, 07–10 and any not listed | `ACSC` at once (05: only ~0.5 s later; 07: the report three times) and the debit booked in a camt.054 at once |
//! | 01 | `RJCT` `AM04` (insufficient funds) |
//! | 02 | `RJCT` `AC01` (incorrect account number) |
//! | 03 | `RJCT` `AC04` (closed account) |
//! | 04 | `ACSP` at once, `ACSC` ~3 s later; booked "two days" after the execution date: the booking is only in the camt.053 statement written `late_booking` later |
//! | 06 | the whole payment block is rejected (`PmtInfSts` `RJCT` `AM04`), without transaction lines |
//! | 11 | `RJCT` `AC01`, then `ACSC` and the booked debit (camt.054) ~2 s later: a contradiction the gateway must record |
//! | 12 | `ACSC` at once, but the debit is never booked (and nothing is paid) |
//! | 13 | `ACSC` and the booked debit, then ~1 s later a camt.054 return entry (`RRTN`, `AC04`): a late return |
//!
//! Every camt.053 (on request, or `late_booking` after a scenario-04 file) lists every booking
//! so far, so entries already notified in a camt.054 come again, as a bank's day statement
//! repeats its notifications. A file whose `MsgId` was seen before is refused at group level
//! (`RJCT` `DUPL`) and pays nothing; a payment whose `EndToEndId` was paid before is not paid
//! again.

use crate::drop::{finished_files, write_once};
use crate::pain001::{account_scenario, AccountId};
use crate::xml::{ends_with, walk, Node, XmlOut};
use crate::BankError;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Days, NaiveDate, Utc};
use railgate_rail::{money::format_minor, Currency, Money};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct BankMockConfig {
    /// The gateway's outbound folder (the bank reads it).
    pub outbound_dir: PathBuf,
    /// The gateway's inbound folder (the bank writes it).
    pub inbound_dir: PathBuf,
    /// The account statements are written for (IBAN).
    pub account_iban: String,
    pub poll_every: Duration,
    /// What stands for "two days later" (scenario 04's booking): that long after the file is
    /// processed, the bank writes a camt.053 statement that includes the booking.
    pub late_booking: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    #[serde(default)]
    pub latency_ms: u64,
    /// Pays but writes no pain.002.
    #[serde(default)]
    pub drop_callbacks: bool,
    /// Share of files refused whole (`RJCT` `FF01`), nothing paid.
    #[serde(default)]
    pub error_rate_percent: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct PayoutRow {
    pub attempt_id: String,
    pub reference: String,
    pub amount: String,
    pub currency: String,
    pub count: u32,
}

#[derive(Debug, Clone)]
struct Booking {
    date: NaiveDate,
    credit: bool,
    amount: Money,
    end_to_end_id: String,
    msg_id: String,
    pmt_inf_id: String,
    bank_ref: String,
    return_reason: Option<String>,
}

#[derive(Default)]
struct Inner {
    msg_ids: HashSet<String>,
    payouts: HashMap<String, PayoutRow>,
    order: Vec<String>,
    bookings: Vec<Booking>,
    faults: Faults,
    files_seen: u64,
    duplicate_files: u64,
    seq: u64,
    /// Where picked-up files are moved instead of deleted, when set.
    archive: Option<PathBuf>,
}

#[derive(Clone)]
struct Shared {
    cfg: Arc<BankMockConfig>,
    inner: Arc<Mutex<Inner>>,
}

/// A running sandbox bank. Dropping it stops the pickup task and the control server.
pub struct BankMock {
    pub control_addr: SocketAddr,
    shared: Shared,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for BankMock {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl BankMock {
    /// Starts the pickup task and the control server (127.0.0.1, port 0).
    pub async fn start(cfg: BankMockConfig) -> std::io::Result<BankMock> {
        std::fs::create_dir_all(&cfg.outbound_dir)?;
        std::fs::create_dir_all(&cfg.inbound_dir)?;
        let shared = Shared {
            cfg: Arc::new(cfg),
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let control_addr = listener.local_addr()?;
        let app = Router::new()
            .route("/_control/payouts", get(payouts))
            .route("/_control/faults", post(faults))
            .route("/_control/statement", get(statement_csv))
            .route("/_control/camt053", post(camt053))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Sandbox bank control server stopped");
            }
        });
        let poller = tokio::spawn(pickup_loop(shared.clone()));
        Ok(BankMock {
            control_addr,
            shared,
            tasks: vec![server, poller],
        })
    }

    /// What the bank paid, per end-to-end id (`attempt_id` is the id our EndToEndId encodes).
    pub fn payouts(&self) -> Vec<PayoutRow> {
        self.shared.payouts()
    }

    /// How many pain.001 files were refused as duplicates of an earlier `MsgId`.
    pub fn duplicate_files(&self) -> u64 {
        self.shared.lock().duplicate_files
    }

    pub fn files_seen(&self) -> u64 {
        self.shared.lock().files_seen
    }

    /// Moves picked-up files into `dir` instead of deleting them (a subfolder of the outbound
    /// folder is fine: only plain files directly in it are picked up).
    pub fn archive_pickups_to(&self, dir: PathBuf) {
        self.shared.lock().archive = Some(dir);
    }

    /// Writes a camt.053 statement with every booking so far; returns its file name.
    pub fn write_camt053(&self) -> Result<String, BankError> {
        self.shared.write_camt053()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn payouts(&self) -> Vec<PayoutRow> {
        let g = self.lock();
        g.order
            .iter()
            .filter_map(|k| g.payouts.get(k).cloned())
            .collect()
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut g = self.lock();
        g.seq = g.seq.saturating_add(1);
        format!("{prefix}{:010}", g.seq)
    }

    fn write_inbound(&self, prefix: &str, xml: Vec<u8>) -> Result<String, BankError> {
        let name = format!("{}-{}.xml", prefix, self.next_id(""));
        write_once(&self.cfg.inbound_dir, &name, &xml)?;
        Ok(name)
    }

    fn write_camt053(&self) -> Result<String, BankError> {
        let bookings = self.lock().bookings.clone();
        let id = self.next_id("STMT");
        let xml = camt_document(
            "camt.053.001.02",
            "BkToCstmrStmt",
            "Stmt",
            &id,
            &self.cfg.account_iban,
            &bookings,
            true,
        )?;
        self.write_inbound("camt053", xml)
    }
}

async fn pickup_loop(shared: Shared) {
    loop {
        tokio::time::sleep(shared.cfg.poll_every).await;
        let dir = shared.cfg.outbound_dir.clone();
        let files = match tokio::task::spawn_blocking(move || finished_files(&dir)).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Sandbox bank cannot read the outbound folder");
                continue;
            }
            Err(_) => continue,
        };
        for (name, bytes) in files {
            // Taken away as an SFTP pickup does (or moved to an archive folder, as some
            // host-to-host servers do); the gateway keeps its own copy of the bytes.
            let from = shared.cfg.outbound_dir.join(&name);
            let archive = shared.lock().archive.clone();
            let taken = match archive {
                Some(dir) => std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::rename(&from, dir.join(&name)))
                    .is_ok(),
                None => std::fs::remove_file(&from).is_ok(),
            };
            if !taken {
                continue;
            }
            let latency = shared.lock().faults.latency_ms;
            if latency > 0 {
                tokio::time::sleep(Duration::from_millis(latency)).await;
            }
            if let Err(e) = process(&shared, &bytes) {
                tracing::warn!(file = %name, error = %e, "Sandbox bank could not process a file");
            }
        }
    }
}

/// What the bank read from one pain.001.
#[derive(Default)]
struct Instruction {
    namespace: String,
    msg_id: String,
    blocks: Vec<Block>,
}

#[derive(Default)]
struct Block {
    pmt_inf_id: String,
    execution_date: Option<NaiveDate>,
    txs: Vec<Tx>,
}

#[derive(Default)]
struct Tx {
    end_to_end_id: String,
    amount: String,
    currency: String,
    account: Option<AccountId>,
    remittance: String,
}

fn read_instruction(xml: &[u8]) -> Result<Instruction, BankError> {
    let mut ins = Instruction {
        namespace: crate::xml::root_namespace(xml)?.unwrap_or_default(),
        ..Instruction::default()
    };
    if !ins.namespace.contains(":pain.001.") {
        return Err(BankError::Malformed("not a pain.001".into()));
    }
    walk(xml, |node| {
        match node {
            Node::Open { path, attrs } => {
                if ends_with(path, &["PmtInf"]) {
                    ins.blocks.push(Block::default());
                } else if ends_with(path, &["CdtTrfTxInf"]) {
                    if let Some(b) = ins.blocks.last_mut() {
                        b.txs.push(Tx::default());
                    }
                } else if ends_with(path, &["Amt", "InstdAmt"]) {
                    if let Some(t) = ins.blocks.last_mut().and_then(|b| b.txs.last_mut()) {
                        t.currency = attrs
                            .into_iter()
                            .find(|(k, _)| k == "Ccy")
                            .map(|(_, v)| v)
                            .unwrap_or_default();
                    }
                }
            }
            Node::Text { path, text } => {
                if ends_with(path, &["GrpHdr", "MsgId"]) {
                    ins.msg_id = text;
                } else if let Some(b) = ins.blocks.last_mut() {
                    if ends_with(path, &["PmtInf", "PmtInfId"]) {
                        b.pmt_inf_id = text;
                    } else if ends_with(path, &["PmtInf", "ReqdExctnDt"])
                        || ends_with(path, &["ReqdExctnDt", "Dt"])
                    {
                        b.execution_date = NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok();
                    } else if let Some(t) = b.txs.last_mut() {
                        if ends_with(path, &["PmtId", "EndToEndId"]) {
                            t.end_to_end_id = text;
                        } else if ends_with(path, &["Amt", "InstdAmt"]) {
                            t.amount = text;
                        } else if ends_with(path, &["CdtrAcct", "Id", "IBAN"]) {
                            t.account = Some(AccountId::Iban(text));
                        } else if ends_with(path, &["CdtrAcct", "Id", "Othr", "Id"]) {
                            t.account = Some(AccountId::Other(text));
                        } else if ends_with(path, &["RmtInf", "Ustrd"]) {
                            t.remittance = text;
                        }
                    }
                }
            }
            Node::Close { .. } => {}
        }
        Ok(())
    })?;
    Ok(ins)
}

/// A status line the bank will report, now or later.
struct Line {
    msg_id: String,
    pmt_inf_id: String,
    end_to_end_id: Option<String>,
    status: &'static str,
    reason: Option<&'static str>,
}

fn process(shared: &Shared, bytes: &[u8]) -> Result<(), BankError> {
    let ins = read_instruction(bytes)?;
    let v10 = ins.namespace.ends_with("pain.001.001.09");
    let (duplicate, refuse_all, drop_reports) = {
        let mut g = shared.lock();
        g.files_seen = g.files_seen.saturating_add(1);
        let duplicate = !g.msg_ids.insert(ins.msg_id.clone());
        if duplicate {
            g.duplicate_files = g.duplicate_files.saturating_add(1);
        }
        let rate = u64::from(g.faults.error_rate_percent);
        let refuse_all = rate > 0 && (g.files_seen.saturating_mul(37) % 100) < rate;
        (duplicate, refuse_all, g.faults.drop_callbacks)
    };
    if duplicate || refuse_all {
        let reason = if duplicate { "DUPL" } else { "FF01" };
        let xml = pain002_document(
            v10,
            &shared.next_id("STS"),
            &ins.msg_id,
            Some(("RJCT", Some(reason))),
            &[],
            &[],
        )?;
        shared.write_inbound("pain002", xml)?;
        return Ok(());
    }

    let mut now_lines = Vec::new();
    let mut rejected_blocks = Vec::new();
    let mut later: Vec<(u64, Line)> = Vec::new();
    let mut booked_now: Vec<Booking> = Vec::new();
    // Bookings the bank posts later: (delay in ms, booking, in a camt.053 rather than a camt.054).
    let mut booked_later: Vec<(u64, Booking, bool)> = Vec::new();
    let mut returns: Vec<(u64, String)> = Vec::new();
    for b in &ins.blocks {
        let scenarios: Vec<u8> = b
            .txs
            .iter()
            .map(|t| t.account.as_ref().map(account_scenario).unwrap_or(0))
            .collect();
        if scenarios.contains(&6) {
            rejected_blocks.push((b.pmt_inf_id.clone(), "AM04"));
            continue;
        }
        for (t, scenario) in b.txs.iter().zip(scenarios) {
            let line = |status, reason| Line {
                msg_id: ins.msg_id.clone(),
                pmt_inf_id: b.pmt_inf_id.clone(),
                end_to_end_id: Some(t.end_to_end_id.clone()),
                status,
                reason,
            };
            let exec = b.execution_date.unwrap_or_else(|| Utc::now().date_naive());
            match scenario {
                1 => now_lines.push(line("RJCT", Some("AM04"))),
                2 => now_lines.push(line("RJCT", Some("AC01"))),
                3 => now_lines.push(line("RJCT", Some("AC04"))),
                4 => {
                    now_lines.push(line("ACSP", None));
                    later.push((3000, line("ACSC", None)));
                    let two_days = exec.checked_add_days(Days::new(2)).unwrap_or(exec);
                    let delay =
                        u64::try_from(shared.cfg.late_booking.as_millis()).unwrap_or(u64::MAX);
                    booked_later
                        .extend(pay(shared, &ins, b, t, two_days).map(|k| (delay, k, true)));
                }
                5 => {
                    later.push((500, line("ACSC", None)));
                    booked_now.extend(pay(shared, &ins, b, t, exec));
                }
                7 => {
                    now_lines.push(line("ACSC", None));
                    later.push((100, line("ACSC", None)));
                    later.push((200, line("ACSC", None)));
                    booked_now.extend(pay(shared, &ins, b, t, exec));
                }
                11 => {
                    now_lines.push(line("RJCT", Some("AC01")));
                    later.push((2000, line("ACSC", None)));
                    booked_later.extend(pay(shared, &ins, b, t, exec).map(|k| (2000, k, false)));
                }
                // Says settled; the statement never shows the money leaving.
                12 => now_lines.push(line("ACSC", None)),
                13 => {
                    now_lines.push(line("ACSC", None));
                    booked_now.extend(pay(shared, &ins, b, t, exec));
                    returns.push((1000, t.end_to_end_id.clone()));
                }
                _ => {
                    now_lines.push(line("ACSC", None));
                    booked_now.extend(pay(shared, &ins, b, t, exec));
                }
            }
        }
    }
    post_bookings(shared, &booked_now);
    if drop_reports {
        return Ok(());
    }
    let grp = if rejected_blocks.is_empty() {
        "ACTC"
    } else {
        "PART"
    };
    let xml = pain002_document(
        v10,
        &shared.next_id("STS"),
        &ins.msg_id,
        Some((grp, None)),
        &rejected_blocks,
        &now_lines,
    )?;
    shared.write_inbound("pain002", xml)?;
    write_notification(shared, &booked_now)?;
    for (delay, line) in later {
        let s = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let msg_id = line.msg_id.clone();
            let doc = pain002_document(v10, &s.next_id("STS"), &msg_id, None, &[], &[line]);
            if let Err(e) = doc.and_then(|xml| s.write_inbound("pain002", xml)) {
                tracing::warn!(error = %e, "Sandbox bank could not write a late report");
            }
        });
    }
    for (delay, booking, in_statement) in booked_later {
        let s = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            post_bookings(&s, std::slice::from_ref(&booking));
            let written = if in_statement {
                s.write_camt053().map(|_| ())
            } else {
                write_notification(&s, std::slice::from_ref(&booking))
            };
            if let Err(e) = written {
                tracing::warn!(error = %e, "Sandbox bank could not write a late booking");
            }
        });
    }
    for (delay, e2e) in returns {
        let s = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if let Err(e) = return_payment(&s, &e2e) {
                tracing::warn!(error = %e, "Sandbox bank could not write a return");
            }
        });
    }
    Ok(())
}

/// Pays one transaction (counted in the payouts) and returns its debit booking, which the
/// caller posts (`post_bookings`) when the bank books it.
fn pay(shared: &Shared, ins: &Instruction, b: &Block, t: &Tx, date: NaiveDate) -> Option<Booking> {
    let currency = t.currency.parse::<Currency>().ok()?;
    let amount = Money::parse(&t.amount, currency).ok()?;
    let bank_ref = shared.next_id("BK");
    let mut g = shared.lock();
    let key = t.end_to_end_id.clone();
    if let Some(row) = g.payouts.get_mut(&key) {
        // The same payment again under another file: a real bank would pay it; counting it
        // is how the tests catch a double payment.
        row.count = row.count.saturating_add(1);
    } else {
        let attempt_id = crate::ids::attempt_of_end_to_end_id(&key)
            .map(|u| u.to_string())
            .unwrap_or_default();
        g.payouts.insert(
            key.clone(),
            PayoutRow {
                attempt_id,
                reference: t.remittance.clone(),
                amount: amount.to_decimal_string(),
                currency: currency.code().to_owned(),
                count: 1,
            },
        );
        g.order.push(key.clone());
    }
    Some(Booking {
        date,
        credit: false,
        amount,
        end_to_end_id: key,
        msg_id: ins.msg_id.clone(),
        pmt_inf_id: b.pmt_inf_id.clone(),
        bank_ref,
        return_reason: None,
    })
}

/// Books entries on the account (from now on in every camt.053).
fn post_bookings(shared: &Shared, bookings: &[Booking]) {
    shared.lock().bookings.extend(bookings.iter().cloned());
}

fn return_payment(shared: &Shared, e2e: &str) -> Result<(), BankError> {
    let original = shared
        .lock()
        .bookings
        .iter()
        .find(|b| b.end_to_end_id == e2e && !b.credit)
        .cloned();
    let Some(o) = original else {
        return Ok(());
    };
    let ret = Booking {
        date: Utc::now().date_naive(),
        credit: true,
        bank_ref: shared.next_id("BK"),
        return_reason: Some("AC04".into()),
        ..o
    };
    shared.lock().bookings.push(ret.clone());
    let id = shared.next_id("NTF");
    let xml = camt_document(
        "camt.054.001.02",
        "BkToCstmrDbtCdtNtfctn",
        "Ntfctn",
        &id,
        &shared.cfg.account_iban,
        &[ret],
        false,
    )?;
    shared.write_inbound("camt054", xml)?;
    Ok(())
}

/// A camt.054 notifying `bookings` (nothing when there are none).
fn write_notification(shared: &Shared, bookings: &[Booking]) -> Result<(), BankError> {
    if bookings.is_empty() {
        return Ok(());
    }
    let id = shared.next_id("NTF");
    let xml = camt_document(
        "camt.054.001.02",
        "BkToCstmrDbtCdtNtfctn",
        "Ntfctn",
        &id,
        &shared.cfg.account_iban,
        bookings,
        false,
    )?;
    shared.write_inbound("camt054", xml)?;
    Ok(())
}

fn pain002_document(
    v10: bool,
    msg_id: &str,
    original_msg_id: &str,
    group: Option<(&str, Option<&str>)>,
    rejected_blocks: &[(String, &str)],
    lines: &[Line],
) -> Result<Vec<u8>, BankError> {
    let (ns, orig_name) = if v10 {
        (
            "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10",
            "pain.001.001.09",
        )
    } else {
        (
            "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03",
            "pain.001.001.03",
        )
    };
    let mut x = XmlOut::new()?;
    x.open_with("Document", ("xmlns", ns))?;
    x.open("CstmrPmtStsRpt")?;
    x.open("GrpHdr")?;
    x.leaf("MsgId", msg_id)?;
    x.leaf(
        "CreDtTm",
        &Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
    )?;
    x.nested(&["DbtrAgt", "FinInstnId", "BIC"], "SBXBTZTZXXX")?;
    x.close("GrpHdr")?;
    x.open("OrgnlGrpInfAndSts")?;
    x.leaf("OrgnlMsgId", original_msg_id)?;
    x.leaf("OrgnlMsgNmId", orig_name)?;
    if let Some((status, reason)) = group {
        x.leaf("GrpSts", status)?;
        if let Some(r) = reason {
            x.open("StsRsnInf")?;
            x.nested(&["Rsn", "Cd"], r)?;
            x.close("StsRsnInf")?;
        }
    }
    x.close("OrgnlGrpInfAndSts")?;
    for (pmt_inf_id, reason) in rejected_blocks {
        x.open("OrgnlPmtInfAndSts")?;
        x.leaf("OrgnlPmtInfId", pmt_inf_id)?;
        x.leaf("PmtInfSts", "RJCT")?;
        x.open("StsRsnInf")?;
        x.nested(&["Rsn", "Cd"], reason)?;
        x.leaf("AddtlInf", "Debtor account without cover")?;
        x.close("StsRsnInf")?;
        x.close("OrgnlPmtInfAndSts")?;
    }
    let mut blocks: Vec<&str> = lines.iter().map(|l| l.pmt_inf_id.as_str()).collect();
    blocks.dedup();
    for block in blocks {
        x.open("OrgnlPmtInfAndSts")?;
        x.leaf("OrgnlPmtInfId", block)?;
        for l in lines.iter().filter(|l| l.pmt_inf_id == block) {
            x.open("TxInfAndSts")?;
            if let Some(e2e) = &l.end_to_end_id {
                x.leaf("OrgnlEndToEndId", e2e)?;
            }
            x.leaf("TxSts", l.status)?;
            if let Some(r) = l.reason {
                x.open("StsRsnInf")?;
                x.nested(&["Rsn", "Cd"], r)?;
                x.close("StsRsnInf")?;
            }
            x.close("TxInfAndSts")?;
        }
        x.close("OrgnlPmtInfAndSts")?;
    }
    x.close("CstmrPmtStsRpt")?;
    x.close("Document")?;
    Ok(x.finish())
}

/// A camt.053 statement (with balances) or camt.054 notification (without) of `bookings`.
fn camt_document(
    version: &str,
    root: &str,
    report: &str,
    id: &str,
    iban: &str,
    bookings: &[Booking],
    balances: bool,
) -> Result<Vec<u8>, BankError> {
    let ns = format!("urn:iso:std:iso:20022:tech:xsd:{version}");
    let now = Utc::now();
    let mut x = XmlOut::new()?;
    x.open_with("Document", ("xmlns", &ns))?;
    x.open(root)?;
    x.open("GrpHdr")?;
    x.leaf("MsgId", id)?;
    x.leaf("CreDtTm", &now.format("%Y-%m-%dT%H:%M:%S").to_string())?;
    x.close("GrpHdr")?;
    x.open(report)?;
    x.leaf("Id", id)?;
    x.leaf("CreDtTm", &now.format("%Y-%m-%dT%H:%M:%S").to_string())?;
    x.open("Acct")?;
    x.nested(&["Id", "IBAN"], iban)?;
    x.close("Acct")?;
    if balances {
        let currency = bookings
            .first()
            .map(|b| b.amount.currency())
            .unwrap_or(Currency::Eur);
        let opening: i64 = 1_000_000_000;
        let mut closing = opening;
        for b in bookings {
            closing = if b.credit {
                closing.saturating_add(b.amount.minor())
            } else {
                closing.saturating_sub(b.amount.minor())
            };
        }
        for (code, value) in [("OPBD", opening), ("CLBD", closing)] {
            x.open("Bal")?;
            x.open("Tp")?;
            x.nested(&["CdOrPrtry", "Cd"], code)?;
            x.close("Tp")?;
            x.leaf_with(
                "Amt",
                ("Ccy", currency.code()),
                &format_minor(value.saturating_abs(), currency),
            )?;
            x.leaf("CdtDbtInd", if value >= 0 { "CRDT" } else { "DBIT" })?;
            x.nested(&["Dt", "Dt"], &now.format("%Y-%m-%d").to_string())?;
            x.close("Bal")?;
        }
    }
    for b in bookings {
        let date = b.date.format("%Y-%m-%d").to_string();
        x.open("Ntry")?;
        x.leaf_with(
            "Amt",
            ("Ccy", b.amount.currency().code()),
            &b.amount.to_decimal_string(),
        )?;
        x.leaf("CdtDbtInd", if b.credit { "CRDT" } else { "DBIT" })?;
        x.leaf("RvslInd", "false")?;
        x.leaf("Sts", "BOOK")?;
        x.nested(&["BookgDt", "Dt"], &date)?;
        x.nested(&["ValDt", "Dt"], &date)?;
        x.leaf("AcctSvcrRef", &b.bank_ref)?;
        x.open("BkTxCd")?;
        x.open("Domn")?;
        x.leaf("Cd", "PMNT")?;
        x.open("Fmly")?;
        x.leaf("Cd", "ICDT")?;
        x.leaf(
            "SubFmlyCd",
            if b.return_reason.is_some() {
                "RRTN"
            } else {
                "ESCT"
            },
        )?;
        x.close("Fmly")?;
        x.close("Domn")?;
        x.close("BkTxCd")?;
        x.open("NtryDtls")?;
        x.open("TxDtls")?;
        x.open("Refs")?;
        x.leaf("MsgId", &b.msg_id)?;
        x.leaf("PmtInfId", &b.pmt_inf_id)?;
        x.leaf("EndToEndId", &b.end_to_end_id)?;
        x.close("Refs")?;
        if let Some(reason) = &b.return_reason {
            x.open("RtrInf")?;
            x.nested(&["Rsn", "Cd"], reason)?;
            x.leaf("AddtlInf", "Account closed")?;
            x.close("RtrInf")?;
        }
        x.close("TxDtls")?;
        x.close("NtryDtls")?;
        x.close("Ntry")?;
    }
    x.close(report)?;
    x.close(root)?;
    x.close("Document")?;
    Ok(x.finish())
}

async fn payouts(State(s): State<Shared>) -> Json<Vec<PayoutRow>> {
    Json(s.payouts())
}

async fn faults(State(s): State<Shared>, Json(f): Json<Faults>) -> Json<Faults> {
    s.lock().faults = f.clone();
    Json(f)
}

#[derive(Deserialize)]
struct StatementQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn statement_csv(
    State(s): State<Shared>,
    Query(q): Query<StatementQuery>,
) -> (http_status::Code, String) {
    if q.format.as_deref().unwrap_or("csv") != "csv" {
        return (http_status::BAD_REQUEST, "only format=csv\n".into());
    }
    let mut out = String::from(
        "date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n",
    );
    for b in s.lock().bookings.iter() {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},0\n",
            b.date,
            b.amount.to_decimal_string(),
            b.amount.currency().code(),
            if b.credit { "credit" } else { "debit" },
            b.end_to_end_id,
            b.pmt_inf_id,
            b.bank_ref
        ));
    }
    (http_status::OK, out)
}

async fn camt053(State(s): State<Shared>) -> (http_status::Code, String) {
    match s.write_camt053() {
        Ok(name) => (http_status::OK, name),
        Err(e) => (http_status::INTERNAL, e.to_string()),
    }
}

mod http_status {
    pub type Code = axum::http::StatusCode;
    pub const OK: Code = axum::http::StatusCode::OK;
    pub const BAD_REQUEST: Code = axum::http::StatusCode::BAD_REQUEST;
    pub const INTERNAL: Code = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
}
