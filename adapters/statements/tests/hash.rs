#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{bytes, fixture};
use railgate_statements::*;
use std::io::BufReader;

#[test]
fn same_file_same_hash_while_parsing() {
    for (name, format) in [
        ("camt053_v02.xml", InputFormat::Camt),
        ("camt053_v08.xml", InputFormat::Camt),
        ("camt054_v02.xml", InputFormat::Camt),
        ("mock_rail.csv", InputFormat::Csv(CsvProfile::mock_rail())),
        (
            "mobile_money_operator.csv",
            InputFormat::Csv(CsvProfile::mobile_money_operator()),
        ),
    ] {
        let raw = bytes(name);
        let expected = ContentHash::of_bytes(&raw);
        let file = std::fs::File::open(fixture(name)).unwrap();
        let mut reader =
            StatementReader::open(HashingReader::new(BufReader::new(file)), format).unwrap();
        let lines = reader
            .by_ref()
            .filter(|i| matches!(i, Ok(StatementItem::Line(_))))
            .count();
        assert!(lines > 0);
        let (hash, len) = reader.into_inner().finish().unwrap();
        assert_eq!(hash, expected, "{name}");
        assert_eq!(len, u64::try_from(raw.len()).unwrap());
        assert_eq!(ContentHash::of_reader(&raw[..]).unwrap(), expected);
    }
}

#[test]
fn one_byte_changes_the_hash() {
    let mut raw = bytes("mock_rail.csv");
    let a = ContentHash::of_bytes(&raw);
    let last = raw.len() - 2;
    raw[last] = b'9';
    assert_ne!(a, ContentHash::of_bytes(&raw));
    assert_eq!(a.to_hex().len(), 64);
    assert_eq!(ContentHash::from_hex(&a.to_hex()), Some(a));
}
