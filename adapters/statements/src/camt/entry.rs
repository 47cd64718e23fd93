//! Builders that collect the fields of one `Stmt` header and one `Ntry` while the reader walks
//! the XML, and turn them into our types when the element closes.

use super::tag::Tag;
use crate::amount::{parse_signed, parse_unsigned, NumberFormat};
use crate::error::{quote, ParseError, ParseErrorKind};
use crate::model::{
    Balance, BatchInfo, BatchTransaction, CopyDuplicate, Counterparty, Direction, EntryStatus,
    Location, Period, ReturnInfo, SourceFormat, StatementHeader, StatementLine,
};
use chrono::NaiveDate;
use railgate_rail::{Currency, Money};

/// A raw amount: its text and the `Ccy` attribute, parsed once the entry is complete.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawAmount {
    pub text: String,
    pub ccy: Option<String>,
}

fn text_provided(v: &str) -> Option<String> {
    let v = v.trim();
    // Tools write the literal NOTPROVIDED when they have no id: it is no reference at all.
    if v.is_empty() || v.eq_ignore_ascii_case("NOTPROVIDED") {
        None
    } else {
        Some(v.to_owned())
    }
}

pub(crate) fn set(slot: &mut Option<String>, v: &str) {
    if slot.is_none() {
        *slot = text_provided(v);
    }
}

/// `2025-01-03` or `2025-01-03T10:15:00+01:00`: the calendar date as printed.
pub(crate) fn parse_date(v: &str) -> Option<NaiveDate> {
    let day = v.trim().get(..10)?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

#[derive(Debug, Default)]
pub(crate) struct BalanceBuilder {
    pub code: Option<String>,
    pub amount: RawAmount,
    pub indicator: Option<String>,
    pub date: Option<String>,
}

#[derive(Debug)]
pub(crate) struct HeaderBuilder {
    pub section: u32,
    pub statement_id: Option<String>,
    pub electronic_sequence: Option<String>,
    pub legal_sequence: Option<String>,
    pub created_at: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub copy_duplicate: Option<String>,
    pub account: Option<String>,
    pub currency: Option<String>,
    pub opening: Option<BalanceBuilder>,
    pub closing: Option<BalanceBuilder>,
    pub balance: Option<BalanceBuilder>,
    pub location: Location,
}

impl HeaderBuilder {
    pub fn new(section: u32, location: Location) -> Self {
        HeaderBuilder {
            section,
            statement_id: None,
            electronic_sequence: None,
            legal_sequence: None,
            created_at: None,
            from: None,
            to: None,
            copy_duplicate: None,
            account: None,
            currency: None,
            opening: None,
            closing: None,
            balance: None,
            location,
        }
    }

    /// Files the balance just read as opening or closing; the others are not needed.
    pub fn close_balance(&mut self) {
        let Some(bal) = self.balance.take() else {
            return;
        };
        match bal.code.as_deref() {
            Some("OPBD") => self.opening = Some(bal),
            // A previously closed booked balance stands in for a missing opening balance.
            Some("PRCD") if self.opening.is_none() => self.opening = Some(bal),
            Some("CLBD") => self.closing = Some(bal),
            _ => {}
        }
    }

    pub fn finish(
        &self,
        format: &SourceFormat,
        message_id: &Option<String>,
    ) -> Result<StatementHeader, ParseError> {
        let err = |field: &str, kind| ParseError::new(self.location, field, kind);
        let currency = match &self.currency {
            Some(c) => Some(parse_currency(c).map_err(|k| err("Acct/Ccy", k))?),
            None => None,
        };
        let seq = |v: &Option<String>, field: &str| -> Result<Option<u64>, ParseError> {
            v.as_deref()
                .map(|s| {
                    s.trim()
                        .parse::<u64>()
                        .map_err(|_| err(field, ParseErrorKind::Number(quote(s))))
                })
                .transpose()
        };
        let period = match (&self.from, &self.to) {
            (Some(f), Some(t)) => match (parse_date(f), parse_date(t)) {
                (Some(from), Some(to)) => Some(Period { from, to }),
                _ => return Err(err("FrToDt", ParseErrorKind::Date(quote(f)))),
            },
            _ => None,
        };
        let balance =
            |b: &Option<BalanceBuilder>, field: &str| -> Result<Option<Balance>, ParseError> {
                let Some(b) = b else { return Ok(None) };
                let ccy_text = b.amount.ccy.as_deref().unwrap_or_default();
                let ccy = parse_currency(ccy_text).map_err(|k| err(field, k))?;
                let (minor, negative) = parse_signed(&b.amount.text, ccy, NumberFormat::PLAIN)
                    .map_err(|reason| {
                        err(
                            field,
                            ParseErrorKind::Amount {
                                value: quote(&b.amount.text),
                                reason,
                            },
                        )
                    })?;
                let debit = match b.indicator.as_deref() {
                    Some("DBIT") => true,
                    Some("CRDT") | None => false,
                    Some(other) => return Err(err(field, ParseErrorKind::Direction(quote(other)))),
                };
                let minor = if debit != negative {
                    minor.checked_neg().unwrap_or(i64::MIN)
                } else {
                    minor
                };
                Ok(Some(Balance {
                    minor,
                    currency: ccy,
                    date: b.date.as_deref().and_then(parse_date),
                }))
            };
        Ok(StatementHeader {
            source_format: format.clone(),
            section: self.section,
            message_id: message_id.clone(),
            statement_id: self.statement_id.clone(),
            electronic_sequence: seq(&self.electronic_sequence, "ElctrncSeqNb")?,
            legal_sequence: seq(&self.legal_sequence, "LglSeqNb")?,
            created_at: self.created_at.clone(),
            copy_duplicate: match self.copy_duplicate.as_deref() {
                Some("COPY") => Some(CopyDuplicate::Copy),
                Some("DUPL") => Some(CopyDuplicate::Duplicate),
                Some("CODU") => Some(CopyDuplicate::CopyDuplicate),
                _ => None,
            },
            account: self.account.clone(),
            currency,
            period,
            opening_balance: balance(&self.opening, "Bal(OPBD)")?,
            closing_balance: balance(&self.closing, "Bal(CLBD)")?,
        })
    }
}

pub(crate) fn parse_currency(code: &str) -> Result<Currency, ParseErrorKind> {
    code.trim()
        .parse::<Currency>()
        .map_err(|_| ParseErrorKind::Currency(quote(code)))
}

#[derive(Debug, Default)]
pub(crate) struct BankCode {
    pub domain: Option<String>,
    pub family: Option<String>,
    pub sub_family: Option<String>,
}

impl BankCode {
    fn render(&self) -> Option<String> {
        let d = self.domain.as_deref()?;
        Some(format!(
            "{d}/{}/{}",
            self.family.as_deref().unwrap_or(""),
            self.sub_family.as_deref().unwrap_or("")
        ))
    }

    /// `RRTN` (returned credit transfer) and `RPCR` (reversal of a payment) mark money coming
    /// back; the codes follow the ISO bank transaction code list.
    fn is_return(&self) -> bool {
        matches!(self.sub_family.as_deref(), Some("RRTN" | "RPCR"))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Charges {
    pub total: Option<RawAmount>,
    pub records: Vec<RawAmount>,
}

#[derive(Debug, Default)]
pub(crate) struct TxBuilder {
    pub msg_id: Option<String>,
    pub acct_svcr_ref: Option<String>,
    pub pmt_inf_id: Option<String>,
    pub instr_id: Option<String>,
    pub end_to_end_id: Option<String>,
    pub tx_id: Option<String>,
    pub uetr: Option<String>,
    pub amount: Option<RawAmount>,
    pub instructed: Option<RawAmount>,
    pub tx_amount: Option<RawAmount>,
    pub code: BankCode,
    pub charges: Charges,
    pub debtor_name: Option<String>,
    pub debtor_account: Option<String>,
    pub creditor_name: Option<String>,
    pub creditor_account: Option<String>,
    pub unstructured: Vec<String>,
    pub creditor_ref: Option<String>,
    pub return_reason: Option<String>,
    pub return_info_seen: bool,
    pub additional: Option<String>,
}

impl TxBuilder {
    pub fn text(&mut self, rel: &[Tag], v: &str) {
        use Tag::*;
        match rel {
            [Refs, MsgId] => set(&mut self.msg_id, v),
            [Refs, AcctSvcrRef] => set(&mut self.acct_svcr_ref, v),
            [Refs, PmtInfId] => set(&mut self.pmt_inf_id, v),
            [Refs, InstrId] => set(&mut self.instr_id, v),
            [Refs, EndToEndId] => set(&mut self.end_to_end_id, v),
            [Refs, TxId] => set(&mut self.tx_id, v),
            [Refs, UETR] => set(&mut self.uetr, v),
            [RltdPties, Dbtr, Nm] | [RltdPties, Dbtr, Pty, Nm] => set(&mut self.debtor_name, v),
            [RltdPties, Cdtr, Nm] | [RltdPties, Cdtr, Pty, Nm] => set(&mut self.creditor_name, v),
            [RltdPties, DbtrAcct, Id, IBAN] | [RltdPties, DbtrAcct, Id, Othr, Id] => {
                set(&mut self.debtor_account, v)
            }
            [RltdPties, CdtrAcct, Id, IBAN] | [RltdPties, CdtrAcct, Id, Othr, Id] => {
                set(&mut self.creditor_account, v)
            }
            [RmtInf, Ustrd] => {
                if let Some(t) = text_provided(v) {
                    self.unstructured.push(t)
                }
            }
            [RmtInf, Strd, CdtrRefInf, Ref] => set(&mut self.creditor_ref, v),
            [RtrInf, Rsn, Cd] => {
                self.return_info_seen = true;
                set(&mut self.return_reason, v)
            }
            [RtrInf, ..] => self.return_info_seen = true,
            [BkTxCd, Domn, Cd] => set(&mut self.code.domain, v),
            [BkTxCd, Domn, Fmly, Cd] => set(&mut self.code.family, v),
            [BkTxCd, Domn, Fmly, SubFmlyCd] => set(&mut self.code.sub_family, v),
            [AddtlTxInf] => set(&mut self.additional, v),
            _ => {}
        }
    }

    pub fn amount(&mut self, rel: &[Tag], raw: RawAmount) {
        use Tag::*;
        match rel {
            [Amt] => self.amount = Some(raw),
            [AmtDtls, InstdAmt, Amt] => self.instructed = Some(raw),
            [AmtDtls, TxAmt, Amt] => self.tx_amount = Some(raw),
            [Chrgs, TtlChrgsAndTaxAmt] => self.charges.total = Some(raw),
            [Chrgs, Amt] | [Chrgs, Rcrd, Amt] => self.charges.records.push(raw),
            _ => {}
        }
    }

    fn counterparty(&self, direction: Direction) -> Option<Counterparty> {
        let debtor = Counterparty {
            name: self.debtor_name.clone(),
            account: self.debtor_account.clone(),
        };
        let creditor = Counterparty {
            name: self.creditor_name.clone(),
            account: self.creditor_account.clone(),
        };
        // Money in: the other side paid us (debtor). Money out: we paid them (creditor).
        let (first, second) = match direction {
            Direction::Credit => (debtor, creditor),
            Direction::Debit => (creditor, debtor),
        };
        [first, second].into_iter().find(|c| !c.is_empty())
    }

    fn rail_transaction_id(&self) -> Option<String> {
        self.acct_svcr_ref
            .clone()
            .or_else(|| self.tx_id.clone())
            .or_else(|| self.uetr.clone())
    }
}

#[derive(Debug, Default)]
pub(crate) struct BatchBuilder {
    pub msg_id: Option<String>,
    pub pmt_inf_id: Option<String>,
    pub nb_of_txs: Option<String>,
    pub total: Option<RawAmount>,
}

#[derive(Debug)]
pub(crate) struct EntryBuilder {
    pub location: Location,
    pub amount: Option<RawAmount>,
    pub indicator: Option<String>,
    pub reversal: Option<String>,
    pub status: Option<String>,
    pub booking_date: Option<String>,
    pub value_date: Option<String>,
    pub acct_svcr_ref: Option<String>,
    pub code: BankCode,
    pub instructed: Option<RawAmount>,
    pub charges: Charges,
    pub batch: Option<BatchBuilder>,
    pub txs: Vec<TxBuilder>,
    pub additional: Option<String>,
}

impl EntryBuilder {
    pub fn new(location: Location) -> Self {
        EntryBuilder {
            location,
            amount: None,
            indicator: None,
            reversal: None,
            status: None,
            booking_date: None,
            value_date: None,
            acct_svcr_ref: None,
            code: BankCode::default(),
            instructed: None,
            charges: Charges::default(),
            batch: None,
            txs: Vec::new(),
            additional: None,
        }
    }

    /// Text of an element inside `Ntry`; `rel` is its path below `Ntry`.
    pub fn text(&mut self, rel: &[Tag], v: &str) {
        use Tag::*;
        match rel {
            [CdtDbtInd] => set(&mut self.indicator, v),
            [RvslInd] => set(&mut self.reversal, v),
            // .02 writes <Sts>BOOK</Sts>, .08 writes <Sts><Cd>BOOK</Cd></Sts>.
            [Sts] | [Sts, Cd] => set(&mut self.status, v),
            [BookgDt, Dt | DtTm] => set(&mut self.booking_date, v),
            [ValDt, Dt | DtTm] => set(&mut self.value_date, v),
            [AcctSvcrRef] => set(&mut self.acct_svcr_ref, v),
            [BkTxCd, Domn, Cd] => set(&mut self.code.domain, v),
            [BkTxCd, Domn, Fmly, Cd] => set(&mut self.code.family, v),
            [BkTxCd, Domn, Fmly, SubFmlyCd] => set(&mut self.code.sub_family, v),
            [AddtlNtryInf] => set(&mut self.additional, v),
            [NtryDtls, Btch, rest @ ..] => {
                let b = self.batch.get_or_insert_with(BatchBuilder::default);
                match rest {
                    [MsgId] => set(&mut b.msg_id, v),
                    [PmtInfId] => set(&mut b.pmt_inf_id, v),
                    [NbOfTxs] => set(&mut b.nb_of_txs, v),
                    _ => {}
                }
            }
            [NtryDtls, TxDtls, rest @ ..] => {
                if let Some(tx) = self.txs.last_mut() {
                    tx.text(rest, v)
                }
            }
            _ => {}
        }
    }

    pub fn amount(&mut self, rel: &[Tag], raw: RawAmount) {
        use Tag::*;
        match rel {
            [Amt] => self.amount = Some(raw),
            [AmtDtls, InstdAmt, Amt] => self.instructed = Some(raw),
            [Chrgs, TtlChrgsAndTaxAmt] => self.charges.total = Some(raw),
            [Chrgs, Amt] | [Chrgs, Rcrd, Amt] => self.charges.records.push(raw),
            [NtryDtls, Btch, TtlAmt] => {
                self.batch.get_or_insert_with(BatchBuilder::default).total = Some(raw)
            }
            [NtryDtls, TxDtls, rest @ ..] => {
                if let Some(tx) = self.txs.last_mut() {
                    tx.amount(rest, raw)
                }
            }
            _ => {}
        }
    }

    pub fn finish(self, line_no: u64) -> Result<StatementLine, ParseError> {
        let loc = self.location;
        let err = |field: &str, kind| ParseError::new(loc, field, kind);
        let raw = self
            .amount
            .as_ref()
            .ok_or_else(|| err("Ntry/Amt", ParseErrorKind::Missing))?;
        let currency = parse_currency(raw.ccy.as_deref().unwrap_or_default())
            .map_err(|k| err("Ntry/Amt/@Ccy", k))?;
        let amount = money(raw, currency, "Ntry/Amt", loc)?;
        let direction = match self.indicator.as_deref() {
            Some("CRDT") => Direction::Credit,
            Some("DBIT") => Direction::Debit,
            Some(other) => {
                return Err(err(
                    "Ntry/CdtDbtInd",
                    ParseErrorKind::Direction(quote(other)),
                ))
            }
            None => return Err(err("Ntry/CdtDbtInd", ParseErrorKind::Missing)),
        };
        let status = match self.status.as_deref() {
            Some("BOOK") => EntryStatus::Booked,
            Some("PDNG") | Some("FUTR") => EntryStatus::Pending,
            Some(_) => EntryStatus::Info,
            None => return Err(err("Ntry/Sts", ParseErrorKind::Missing)),
        };
        let date = |v: &Option<String>, field: &str| -> Result<Option<NaiveDate>, ParseError> {
            match v {
                Some(s) => parse_date(s)
                    .map(Some)
                    .ok_or_else(|| err(field, ParseErrorKind::Date(quote(s)))),
                None => Ok(None),
            }
        };
        let booking_date = date(&self.booking_date, "Ntry/BookgDt")?;
        let value_date = date(&self.value_date, "Ntry/ValDt")?;
        let bank_reversal = self.reversal.as_deref() == Some("true");

        let mut fee = charges(&self.charges, currency, "Ntry/Chrgs", loc)?;
        let mut instructed = match &self.instructed {
            Some(r) => same_currency(r, currency, "Ntry/AmtDtls/InstdAmt", loc)?,
            None => None,
        };

        let batch_declared = self
            .batch
            .as_ref()
            .and_then(|b| b.nb_of_txs.as_deref())
            .map(|n| {
                n.trim().parse::<u32>().map_err(|_| {
                    err(
                        "Ntry/NtryDtls/Btch/NbOfTxs",
                        ParseErrorKind::Number(quote(n)),
                    )
                })
            })
            .transpose()?;
        let is_batch = self.txs.len() > 1 || batch_declared.is_some_and(|n| n > 1);

        let mut line = StatementLine {
            line_no,
            status,
            booking_date,
            value_date,
            amount,
            instructed_amount: None,
            direction,
            reference: None,
            rail_transaction_id: None,
            receipt: None,
            creditor_reference: None,
            remittance: self.additional.clone(),
            bank_entry_ref: self.acct_svcr_ref.clone(),
            counterparty: None,
            fee: None,
            bank_transaction_code: self.code.render(),
            batch: None,
            return_info: None,
            location: loc,
        };

        if is_batch {
            let mut transactions = Vec::with_capacity(self.txs.len());
            for (i, tx) in self.txs.iter().enumerate() {
                let field = format!("Ntry/NtryDtls/TxDtls[{}]", i.saturating_add(1));
                let raw = tx
                    .amount
                    .as_ref()
                    .or(tx.tx_amount.as_ref())
                    .or(tx.instructed.as_ref());
                let amount = match raw {
                    Some(r) => same_currency(r, currency, &field, loc)?,
                    None => None,
                };
                transactions.push(BatchTransaction {
                    end_to_end_id: tx.end_to_end_id.clone(),
                    rail_transaction_id: tx.rail_transaction_id(),
                    amount,
                    counterparty: tx.counterparty(direction),
                    creditor_reference: tx.creditor_ref.clone(),
                });
            }
            let b = self.batch.as_ref();
            let common_pmt_inf = self
                .txs
                .first()
                .and_then(|t| t.pmt_inf_id.clone())
                .filter(|id| {
                    self.txs
                        .iter()
                        .all(|t| t.pmt_inf_id.as_deref() == Some(id.as_str()))
                });
            let total = match b.and_then(|b| b.total.as_ref()) {
                Some(r) => same_currency(r, currency, "Ntry/NtryDtls/Btch/TtlAmt", loc)?,
                None => None,
            };
            let count = batch_declared.or_else(|| u32::try_from(transactions.len()).ok());
            line.batch = Some(Box::new(BatchInfo {
                message_id: b.and_then(|b| b.msg_id.clone()),
                payment_info_id: b.and_then(|b| b.pmt_inf_id.clone()).or(common_pmt_inf),
                number_of_transactions: count,
                total,
                transactions,
            }));
            line.instructed_amount = instructed;
            line.fee = fee;
            if bank_reversal || self.code.is_return() {
                line.return_info = Some(Box::new(ReturnInfo {
                    reason_code: None,
                    original_end_to_end_id: None,
                    bank_reversal,
                }));
            }
            return Ok(line);
        }

        let tx = self.txs.first();
        if let Some(tx) = tx {
            if instructed.is_none() {
                if let Some(r) = &tx.instructed {
                    instructed = same_currency(r, currency, "TxDtls/AmtDtls/InstdAmt", loc)?;
                }
            }
            if fee.is_none() {
                fee = charges(&tx.charges, currency, "TxDtls/Chrgs", loc)?;
            }
            line.rail_transaction_id = tx.rail_transaction_id();
            line.creditor_reference = tx.creditor_ref.clone();
            line.counterparty = tx.counterparty(direction);
            if !tx.unstructured.is_empty() {
                line.remittance = Some(tx.unstructured.join(" "));
            } else if tx.additional.is_some() {
                line.remittance = tx.additional.clone();
            }
            if line.bank_transaction_code.is_none() {
                line.bank_transaction_code = tx.code.render();
            }
        }
        let returned = bank_reversal
            || self.code.is_return()
            || tx.is_some_and(|t| t.code.is_return() || t.return_info_seen);
        let e2e = tx.and_then(|t| t.end_to_end_id.clone());
        if returned {
            line.return_info = Some(Box::new(ReturnInfo {
                reason_code: tx.and_then(|t| t.return_reason.clone()),
                original_end_to_end_id: e2e,
                bank_reversal,
            }));
        } else {
            line.reference = e2e;
        }
        line.instructed_amount = instructed.filter(|i| *i != amount);
        line.fee = fee;
        Ok(line)
    }
}

fn money(
    raw: &RawAmount,
    currency: Currency,
    field: &str,
    loc: Location,
) -> Result<Money, ParseError> {
    let minor = parse_unsigned(&raw.text, currency, NumberFormat::PLAIN).map_err(|reason| {
        ParseError::new(
            loc,
            field,
            ParseErrorKind::Amount {
                value: quote(&raw.text),
                reason,
            },
        )
    })?;
    Money::from_minor(minor, currency).map_err(|reason| {
        ParseError::new(
            loc,
            field,
            ParseErrorKind::Amount {
                value: quote(&raw.text),
                reason,
            },
        )
    })
}

/// An amount that must be in the entry's currency; zero is "none".
fn same_currency(
    raw: &RawAmount,
    currency: Currency,
    field: &str,
    loc: Location,
) -> Result<Option<Money>, ParseError> {
    let ccy = match raw.ccy.as_deref() {
        Some(c) => parse_currency(c).map_err(|k| ParseError::new(loc, field, k))?,
        None => currency,
    };
    if ccy != currency {
        return Err(ParseError::new(
            loc,
            field,
            ParseErrorKind::CurrencyMismatch {
                expected: currency,
                found: ccy,
            },
        ));
    }
    let minor = parse_unsigned(&raw.text, currency, NumberFormat::PLAIN).map_err(|reason| {
        ParseError::new(
            loc,
            field,
            ParseErrorKind::Amount {
                value: quote(&raw.text),
                reason,
            },
        )
    })?;
    if minor == 0 {
        return Ok(None);
    }
    money(raw, currency, field, loc).map(Some)
}

/// The total of the charges: the stated total when there is one, else the sum of the records.
fn charges(
    c: &Charges,
    currency: Currency,
    field: &str,
    loc: Location,
) -> Result<Option<Money>, ParseError> {
    if let Some(total) = &c.total {
        return same_currency(total, currency, field, loc);
    }
    let mut sum: Option<Money> = None;
    for r in &c.records {
        if let Some(m) = same_currency(r, currency, field, loc)? {
            sum = Some(match sum {
                None => m,
                Some(s) => s.checked_add(m).map_err(|reason| {
                    ParseError::new(
                        loc,
                        field,
                        ParseErrorKind::Amount {
                            value: quote(&r.text),
                            reason,
                        },
                    )
                })?,
            });
        }
    }
    Ok(sum)
}
