//! Generated pain.001 files validate against the official ISO schemas (fixtures/iso20022/xsd)
//! with xmllint, and their counts, sums and ids are right.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use chrono::{NaiveDate, Utc};
use common::*;
use railgate_bank::{pain001, Pain001Version};
use railgate_rail::{Party, PartyIdType};
use std::path::PathBuf;
use std::process::Command;
use uuid::Uuid;

fn xsd(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/iso20022/xsd")
        .join(name)
}

use common::xmllint::xmllint;

fn validate(xml: &[u8], schema: &str) {
    common::xmllint::validate(xml, &xsd(schema));
}

fn batch() -> Vec<railgate_rail::Attempt> {
    let mut v: Vec<_> = (0..25u8)
        .map(|i| iban_attempt(i, 1 + i64::from(i) * 12_345))
        .collect();
    // A local account number instead of an IBAN, and a name far outside the bank's set.
    let local = Party::new(
        PartyIdType::AccountId,
        "0012345678",
        Some("Ελένη Παπαδοπούλου <&> \"x\""),
    )
    .unwrap();
    v.push(attempt(local, 99));
    v
}

fn check(version: Pain001Version, schema: &str, bic: Option<&str>) {
    let attempts = batch();
    let batch_id = Uuid::new_v4();
    let file = pain001::build(
        &options(version, bic),
        batch_id,
        &attempts,
        Utc::now(),
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
    )
    .unwrap();
    validate(&file.xml, schema);
    let text = String::from_utf8(file.xml.clone()).unwrap();
    let expected: i64 = attempts.iter().map(|a| a.amount.minor()).sum();
    assert_eq!(file.nb_of_txs, 26);
    assert_eq!(
        file.ctrl_sum,
        railgate_rail::money::format_minor(expected, railgate_rail::Currency::Eur)
    );
    assert_eq!(text.matches("<NbOfTxs>26</NbOfTxs>").count(), 2);
    assert_eq!(
        text.matches(&format!("<CtrlSum>{}</CtrlSum>", file.ctrl_sum))
            .count(),
        2
    );
    assert!(text.contains(&format!("<MsgId>{}</MsgId>", file.msg_id)));
    assert!(!text.contains("<EndToEndId>NOTPROVIDED"));
    for (a, (id, e2e)) in attempts.iter().zip(&file.payments) {
        assert_eq!(a.attempt_id, *id);
        assert_eq!(
            text.matches(&format!("<EndToEndId>{e2e}</EndToEndId>"))
                .count(),
            1
        );
        assert!(e2e.len() <= 35);
    }
    // The SEPA character set: no diacritics, no '&' or '<' in free text.
    assert!(text.contains("<Nm>Zoe Nandu</Nm>"), "{text}");
    assert!(!text.contains('ë') && !text.contains("&amp;") && !text.contains("&lt;"));
    assert!(text.contains("<Othr>") && text.contains("<Id>0012345678</Id>"));
    assert_eq!(file.file_name, format!("{}.xml", file.msg_id));
}

#[test]
fn pain001_001_03_is_valid_against_the_iso_schema() {
    check(
        Pain001Version::V03,
        "pain.001.001.03.xsd",
        Some("COBADEFFXXX"),
    );
    check(Pain001Version::V03, "pain.001.001.03.xsd", None);
}

#[test]
fn pain001_001_09_is_valid_against_the_iso_schema() {
    check(
        Pain001Version::V09,
        "pain.001.001.09.xsd",
        Some("COBADEFFXXX"),
    );
    check(Pain001Version::V09, "pain.001.001.09.xsd", None);
}

#[test]
fn refuses_what_does_not_fit_a_file() {
    let mut a = iban_attempt(0, 100);
    a.amount = railgate_rail::Money::from_minor(100, railgate_rail::Currency::Usd).unwrap();
    let opts = options(Pain001Version::V09, None);
    let date = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    assert!(pain001::build(&opts, Uuid::new_v4(), &[a], Utc::now(), date).is_err());
    let msisdn = attempt(
        Party::new(PartyIdType::Msisdn, "255712345600", None).unwrap(),
        100,
    );
    assert!(pain001::build(&opts, Uuid::new_v4(), &[msisdn], Utc::now(), date).is_err());
    let same = iban_attempt(0, 100);
    assert!(pain001::build(
        &opts,
        Uuid::new_v4(),
        &[same.clone(), same],
        Utc::now(),
        date
    )
    .is_err());
    assert!(pain001::build(&opts, Uuid::new_v4(), &[], Utc::now(), date).is_err());
}

/// The validator is really consulted: a file without its required `EndToEndId` fails.
#[test]
fn the_schema_check_can_fail() {
    let Some(lint) = xmllint() else { return };
    let a = iban_attempt(0, 100);
    let file = pain001::build(
        &options(Pain001Version::V09, None),
        Uuid::new_v4(),
        &[a],
        Utc::now(),
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
    )
    .unwrap();
    let text = String::from_utf8(file.xml).unwrap();
    let start = text.find("<EndToEndId>").unwrap();
    let end = text.find("</EndToEndId>").unwrap() + "</EndToEndId>".len();
    let broken = format!("{}{}", &text[..start], &text[end..]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.xml");
    std::fs::write(&path, broken).unwrap();
    let out = Command::new(lint)
        .arg("--noout")
        .arg("--schema")
        .arg(xsd("pain.001.001.09.xsd"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The file `submit` drops in simple mode is valid too.
#[tokio::test]
async fn the_file_submit_drops_is_valid() {
    use railgate_rail::RailAdapter;
    for (version, schema) in [
        (Pain001Version::V03, "pain.001.001.03.xsd"),
        (Pain001Version::V09, "pain.001.001.09.xsd"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let adapter = adapter(dir.path(), version);
        let a = iban_attempt(0, 41_250);
        adapter.submit(&a).await.unwrap();
        let name = format!("{}.xml", railgate_bank::ids::msg_id(a.attempt_id));
        let xml = std::fs::read(dir.path().join("out").join(name)).unwrap();
        validate(&xml, schema);
        assert!(String::from_utf8(xml)
            .unwrap()
            .contains("<InstdAmt Ccy=\"EUR\">412.50</InstdAmt>"));
    }
}
