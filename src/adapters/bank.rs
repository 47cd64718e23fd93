//! Banks over ISO 20022 files (`bank`) from their `[[rails]]` settings.
//!
//! The configuration is public so that the bank watcher (`crate::bank_watch`) can read the
//! same inbound folder the rail's adapter reads.

use super::{invalid, required};
use crate::config::{ConfigError, RailConfig};
use railgate_bank::charset::Charset;
use railgate_bank::{
    AccountId, BankAdapter, BankConfig, DebtorAccount, Pain001Options, Pain001Version,
};
use railgate_rail::{Currency, RailAdapter};
use std::path::PathBuf;
use std::sync::Arc;

/// The bank adapter's configuration from a rail's settings.
pub fn bank_config(rc: &RailConfig) -> Result<BankConfig, ConfigError> {
    let version = match rc.setting("pain001_version").as_deref().unwrap_or("09") {
        "03" | "pain.001.001.03" => Pain001Version::V03,
        "09" | "pain.001.001.09" => Pain001Version::V09,
        other => {
            return Err(invalid(
                rc,
                format!("pain001_version '{other}' is not 03 or 09"),
            ))
        }
    };
    let charset = match rc.setting("charset").as_deref().unwrap_or("sepa") {
        "sepa" => Charset::Sepa,
        "unicode" => Charset::Unicode,
        other => {
            return Err(invalid(
                rc,
                format!("charset '{other}' is not sepa or unicode"),
            ))
        }
    };
    let account = match (rc.setting("debtor_iban"), rc.setting("debtor_account")) {
        (Some(iban), None) => AccountId::Iban(iban),
        (None, Some(number)) => AccountId::Other(number),
        _ => {
            return Err(invalid(
                rc,
                "exactly one of 'debtor_iban' and 'debtor_account' is required",
            ))
        }
    };
    let currency: Currency = required(rc, "currency")?
        .parse()
        .map_err(|e| invalid(rc, e))?;
    let debtor_name = required(rc, "debtor_name")?;
    let sepa = match rc.setting("sepa") {
        None => currency == Currency::Eur,
        Some(v) => v
            .parse::<bool>()
            .map_err(|_| invalid(rc, format!("sepa '{v}' is not true or false")))?,
    };
    Ok(BankConfig {
        rail_id: rc.id.clone(),
        outbound_dir: PathBuf::from(required(rc, "outbound_dir")?),
        inbound_dir: PathBuf::from(required(rc, "inbound_dir")?),
        pain001: Pain001Options {
            version,
            initiating_party: rc
                .setting("initiating_party")
                .unwrap_or_else(|| debtor_name.clone()),
            debtor: DebtorAccount {
                name: debtor_name,
                account,
                bic: rc.setting("debtor_bic"),
                currency,
            },
            sepa,
            charset,
        },
    })
}

pub(super) fn bank(rc: &RailConfig) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    let adapter = BankAdapter::new(bank_config(rc)?).map_err(|e| invalid(rc, e))?;
    Ok(Arc::new(adapter))
}
