#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code
)]

pub mod xmllint;

use chrono::Utc;
use railgate_bank::charset::Charset;
use railgate_bank::{
    AccountId, BankAdapter, BankConfig, DebtorAccount, Pain001Options, Pain001Version,
};
use railgate_rail::{Attempt, Currency, Direction, Money, Party, PartyIdType};
use std::path::Path;
use uuid::Uuid;

/// A German IBAN whose account number ends in `digits` (check digits computed).
pub fn iban_ending(digits: u8, salt: u32) -> String {
    let bban = format!("37040044{:08}{:02}", salt, digits);
    // ISO 13616: BBAN + "DE00" with letters as numbers, 98 - mod 97.
    let numeric = format!("{bban}131400");
    let mut rem: u32 = 0;
    for c in numeric.chars() {
        rem = (rem * 10 + c.to_digit(10).unwrap()) % 97;
    }
    format!("DE{:02}{bban}", 98 - rem)
}

pub fn attempt(party: Party, minor: i64) -> Attempt {
    let id = Uuid::new_v4();
    Attempt {
        attempt_id: id,
        payment_id: Uuid::new_v4(),
        direction: Direction::Disbursement,
        amount: Money::from_minor(minor, Currency::Eur).unwrap(),
        party,
        reference: format!("BEN-{}", &id.simple().to_string()[..8]),
        narrative: Some("Pension 2026-11 Zoë & Søren".into()),
        rail_reference: None,
        rail_state: None,
        request: None,
        created_at: Utc::now(),
    }
}

pub fn iban_attempt(digits: u8, minor: i64) -> Attempt {
    let salt = rand_salt();
    let party = Party::new(
        PartyIdType::Iban,
        &iban_ending(digits, salt),
        Some("Zoë Ñandú"),
    )
    .unwrap();
    attempt(party, minor)
}

fn rand_salt() -> u32 {
    u32::from_le_bytes(Uuid::new_v4().as_bytes()[..4].try_into().unwrap()) % 100_000_000
}

pub fn options(version: Pain001Version, bic: Option<&str>) -> Pain001Options {
    Pain001Options {
        version,
        initiating_party: "Social Health Insurance Fund".into(),
        debtor: DebtorAccount {
            name: "Social Health Insurance Fund".into(),
            account: AccountId::Iban(iban_ending(99, 1)),
            bic: bic.map(str::to_owned),
            currency: Currency::Eur,
        },
        sepa: true,
        charset: Charset::Sepa,
    }
}

pub fn adapter(dir: &Path, version: Pain001Version) -> BankAdapter {
    BankAdapter::new(BankConfig {
        rail_id: "bank-test".into(),
        poll_every: railgate_bank::adapter::DEFAULT_POLL,
        outbound_dir: dir.join("out"),
        inbound_dir: dir.join("in"),
        pain001: options(version, Some("COBADEFFXXX")),
    })
    .unwrap()
}
