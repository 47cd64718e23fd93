//! pain.001 credit-transfer initiation files, versions .001.03 and .001.09.
//!
//! One file holds one payment block (`PmtInf`) for one debtor account: the batch a cut-off
//! produced, or a single attempt in simple mode. Amounts come from integer minor units, and
//! `NbOfTxs`/`CtrlSum` at both levels are computed from the same list, so they always agree
//! with the content. Element order follows the XSD sequences; the tests validate against it.

use crate::charset::{clean, Charset};
use crate::xml::XmlOut;
use crate::{ids, BankError};
use chrono::{DateTime, NaiveDate, Utc};
use railgate_rail::{money::format_minor, Attempt, Currency, PartyIdType};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Pain001Version {
    #[serde(rename = "pain.001.001.03")]
    #[default]
    V03,
    #[serde(rename = "pain.001.001.09")]
    V09,
}

impl Pain001Version {
    pub fn namespace(self) -> &'static str {
        match self {
            Pain001Version::V03 => "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03",
            Pain001Version::V09 => "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pain001Version::V03 => "pain.001.001.03",
            Pain001Version::V09 => "pain.001.001.09",
        }
    }

    fn bic_element(self) -> &'static str {
        match self {
            Pain001Version::V03 => "BIC",
            Pain001Version::V09 => "BICFI",
        }
    }
}

/// An account as banks identify it: an IBAN, or the bank's local account number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountId {
    Iban(String),
    Other(String),
}

impl AccountId {
    /// The last two digits, as the sandbox bank picks its scenario by them.
    fn value(&self) -> &str {
        match self {
            AccountId::Iban(v) | AccountId::Other(v) => v,
        }
    }
}

/// The scheme's account the money leaves from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DebtorAccount {
    pub name: String,
    pub account: AccountId,
    /// The debtor bank's BIC; without one, `Othr/Id` is `NOTPROVIDED` as banks expect
    /// (this is the agent, not a payment id).
    pub bic: Option<String>,
    pub currency: Currency,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pain001Options {
    pub version: Pain001Version,
    /// `InitgPty/Nm`: who sends the file (usually the scheme).
    pub initiating_party: String,
    pub debtor: DebtorAccount,
    /// Adds `SvcLvl/Cd=SEPA` and `ChrgBr=SLEV` (EUR SEPA credit transfers).
    pub sepa: bool,
    pub charset: Charset,
}

/// A built file and what it holds.
#[derive(Debug, Clone)]
pub struct Pain001File {
    pub msg_id: String,
    pub pmt_inf_id: String,
    /// `<MsgId>.xml`: the same payments always get the same name.
    pub file_name: String,
    pub xml: Vec<u8>,
    /// (attempt id, EndToEndId) for every payment in the file, in file order.
    pub payments: Vec<(Uuid, String)>,
    pub nb_of_txs: usize,
    pub ctrl_sum: String,
}

const NAME_MAX: usize = 70;
const USTRD_MAX: usize = 140;

/// Builds one pain.001 file for `attempts`, all paid from `opts.debtor` in its currency.
///
/// `batch_id` names the file (`MsgId`, `PmtInfId`); in simple mode it is the attempt's own id.
/// The gateway must store `batch_id` (and the returned ids) before the file is written, and
/// build a resend from the same attempts and the same `batch_id`.
pub fn build(
    opts: &Pain001Options,
    batch_id: Uuid,
    attempts: &[Attempt],
    created_at: DateTime<Utc>,
    execution_date: NaiveDate,
) -> Result<Pain001File, BankError> {
    if attempts.is_empty() {
        return Err(BankError::Invalid(
            "a pain.001 file needs at least one payment".into(),
        ));
    }
    let currency = opts.debtor.currency;
    let mut total: i64 = 0;
    let mut seen = std::collections::HashSet::new();
    for a in attempts {
        if a.amount.currency() != currency {
            return Err(BankError::Invalid(format!(
                "attempt {} is in {}, the debtor account in {}",
                a.attempt_id,
                a.amount.currency(),
                currency
            )));
        }
        if !seen.insert(a.attempt_id) {
            return Err(BankError::Invalid(format!(
                "attempt {} is in the batch twice",
                a.attempt_id
            )));
        }
        total = total
            .checked_add(a.amount.minor())
            .ok_or_else(|| BankError::Invalid("control sum overflows".into()))?;
    }
    let msg_id = ids::msg_id(batch_id);
    let pmt_inf_id = ids::pmt_inf_id(batch_id);
    let nb = attempts.len().to_string();
    let ctrl_sum = format_minor(total, currency);
    let v = opts.version;

    let mut x = XmlOut::new()?;
    x.open_with("Document", ("xmlns", v.namespace()))?;
    x.open("CstmrCdtTrfInitn")?;

    x.open("GrpHdr")?;
    x.leaf("MsgId", &msg_id)?;
    x.leaf(
        "CreDtTm",
        &created_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
    )?;
    x.leaf("NbOfTxs", &nb)?;
    x.leaf("CtrlSum", &ctrl_sum)?;
    x.open("InitgPty")?;
    x.leaf(
        "Nm",
        &clean(
            &opts.initiating_party,
            opts.charset,
            NAME_MAX,
            "Initiating party",
        ),
    )?;
    x.close("InitgPty")?;
    x.close("GrpHdr")?;

    x.open("PmtInf")?;
    x.leaf("PmtInfId", &pmt_inf_id)?;
    x.leaf("PmtMtd", "TRF")?;
    // One booking per payment: each can then be matched to its statement entry on its own.
    x.leaf("BtchBookg", "false")?;
    x.leaf("NbOfTxs", &nb)?;
    x.leaf("CtrlSum", &ctrl_sum)?;
    if opts.sepa {
        x.nested(&["PmtTpInf", "SvcLvl", "Cd"], "SEPA")?;
    }
    let date = execution_date.format("%Y-%m-%d").to_string();
    match v {
        Pain001Version::V03 => x.leaf("ReqdExctnDt", &date)?,
        Pain001Version::V09 => x.nested(&["ReqdExctnDt", "Dt"], &date)?,
    }
    x.open("Dbtr")?;
    x.leaf(
        "Nm",
        &clean(&opts.debtor.name, opts.charset, NAME_MAX, "Debtor"),
    )?;
    x.close("Dbtr")?;
    x.open("DbtrAcct")?;
    write_account(&mut x, &opts.debtor.account)?;
    x.leaf("Ccy", currency.code())?;
    x.close("DbtrAcct")?;
    x.open("DbtrAgt")?;
    x.open("FinInstnId")?;
    match &opts.debtor.bic {
        Some(bic) => x.leaf(v.bic_element(), bic)?,
        None => x.nested(&["Othr", "Id"], "NOTPROVIDED")?,
    }
    x.close("FinInstnId")?;
    x.close("DbtrAgt")?;
    if opts.sepa {
        x.leaf("ChrgBr", "SLEV")?;
    }

    let mut payments = Vec::with_capacity(attempts.len());
    for a in attempts {
        let e2e = ids::end_to_end_id(a.attempt_id);
        let account = creditor_account(a)?;
        x.open("CdtTrfTxInf")?;
        x.open("PmtId")?;
        x.leaf("InstrId", &e2e)?;
        x.leaf("EndToEndId", &e2e)?;
        x.close("PmtId")?;
        x.open("Amt")?;
        x.leaf_with(
            "InstdAmt",
            ("Ccy", currency.code()),
            &a.amount.to_decimal_string(),
        )?;
        x.close("Amt")?;
        x.open("Cdtr")?;
        let name = a.party.name().unwrap_or("");
        x.leaf("Nm", &clean(name, opts.charset, NAME_MAX, "Beneficiary"))?;
        x.close("Cdtr")?;
        x.open("CdtrAcct")?;
        write_account(&mut x, &account)?;
        x.close("CdtrAcct")?;
        let text = match &a.narrative {
            Some(n) => format!("{} {}", a.reference, n),
            None => a.reference.clone(),
        };
        x.nested(
            &["RmtInf", "Ustrd"],
            &clean(&text, opts.charset, USTRD_MAX, "Payment"),
        )?;
        x.close("CdtTrfTxInf")?;
        payments.push((a.attempt_id, e2e));
    }
    x.close("PmtInf")?;
    x.close("CstmrCdtTrfInitn")?;
    x.close("Document")?;

    Ok(Pain001File {
        file_name: format!("{msg_id}.xml"),
        msg_id,
        pmt_inf_id,
        xml: x.finish(),
        payments,
        nb_of_txs: attempts.len(),
        ctrl_sum,
    })
}

fn write_account(x: &mut XmlOut, account: &AccountId) -> Result<(), BankError> {
    x.open("Id")?;
    match account {
        AccountId::Iban(iban) => x.leaf("IBAN", iban)?,
        AccountId::Other(number) => x.nested(&["Othr", "Id"], number)?,
    }
    x.close("Id")
}

/// The creditor's account from the attempt's party: an IBAN, or a local account number
/// (which must fit Max34Text in the strict character set: it is an id, never transliterated).
pub fn creditor_account(a: &Attempt) -> Result<AccountId, BankError> {
    let value = a.party.id_value();
    match a.party.id_type() {
        PartyIdType::Iban => Ok(AccountId::Iban(value.to_owned())),
        PartyIdType::AccountId => {
            if value.chars().count() > 34 || !crate::ids::is_strict_id(value) {
                return Err(BankError::Invalid(format!(
                    "account number {} does not fit the bank's identifier rules",
                    a.party.masked()
                )));
            }
            Ok(AccountId::Other(value.to_owned()))
        }
        other @ (PartyIdType::Msisdn
        | PartyIdType::Business
        | PartyIdType::Alias
        | PartyIdType::WalletId
        | PartyIdType::PersonalId) => Err(BankError::Invalid(format!(
            "a bank transfer needs an IBAN or account number, not {other}"
        ))),
    }
}

/// Scenario digits of an account number (last two digits), used by the sandbox bank.
pub fn account_scenario(account: &AccountId) -> u8 {
    let digits: Vec<u8> = account
        .value()
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b.saturating_sub(b'0'))
        .collect();
    match digits.as_slice() {
        [.., t, u] => t.saturating_mul(10).saturating_add(*u),
        [u] => *u,
        [] => 0,
    }
}
