//! Statement CSV uploads through each built-in profile (mock rail, mobile-money operator,
//! rail export), read as the reconciliation import reads them.
//!
//! Input: byte 0 picks the profile, the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_statements::{
    CsvProfile, InputFormat, StatementHeader, StatementItem, StatementReader, Totals,
    MOBILE_MONEY_PROFILE, MOCK_RAIL_PROFILE, RAIL_EXPORT_PROFILE,
};

const PROFILES: [&str; 3] = [MOCK_RAIL_PROFILE, MOBILE_MONEY_PROFILE, RAIL_EXPORT_PROFILE];

fuzz_target!(|data: &[u8]| {
    let [p, file @ ..] = data else { return };
    let Some(profile) = CsvProfile::builtin(PROFILES[usize::from(*p) % PROFILES.len()]) else {
        return;
    };
    let Ok(reader) = StatementReader::open(file, InputFormat::Csv(profile)) else {
        return;
    };
    let mut current: Option<(Box<StatementHeader>, Totals)> = None;
    let mut items = 0usize;
    for item in reader {
        items += 1;
        assert!(
            items <= file.len() + 2,
            "more items than bytes: the reader loops"
        );
        match item {
            Ok(StatementItem::Header(h)) => {
                if let Some((header, totals)) = current.take() {
                    let _ = totals.check(&header);
                }
                current = Some((h, Totals::default()));
            }
            Ok(StatementItem::Line(l)) => {
                assert!(l.amount.minor() > 0);
                if let Some((_, t)) = current.as_mut() {
                    t.add(&l);
                }
            }
            Err(e) if e.fatal() => break,
            Err(_) => {}
        }
    }
    if let Some((header, totals)) = current {
        let _ = totals.check(&header);
    }
});
