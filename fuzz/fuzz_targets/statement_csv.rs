//! Statement CSV uploads through each built-in profile (mock rail, mobile-money operator,
//! rail export), read as the reconciliation import reads them.
//!
//! Input: byte 0 picks the profile, the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_statements::{
    CsvProfile, InputFormat, StatementReader, MOBILE_MONEY_PROFILE, MOCK_RAIL_PROFILE,
    RAIL_EXPORT_PROFILE,
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
    railgate_fuzz::drain_statement(reader, file.len());
});
