//! Payroll CSV uploads (`POST /v1/payrolls`, `text/csv`): the streaming reader, header
//! aliases, openIMIS reconciliation columns, the per-line validation of a disbursement and
//! the routing of each line, as the gateway runs them before storing anything.
//!
//! Input: byte 0 picks the payroll's `currency` parameter (or none) and whether the size
//! limit is tiny (to work the too-large path); the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate::api::payrolls::file::{read_csv, MAX_LISTED_ERRORS};
use railgate::domain::Currency;

use railgate_fuzz::payroll as common;

fuzz_target!(|data: &[u8]| {
    let [flags, file @ ..] = data else { return };
    let pick = usize::from(flags & 0x7f);
    let currency = Currency::ALL.get(pick).copied();
    let limit = if flags & 0x80 != 0 { 64 } else { 1 << 20 };
    let Ok(parsed) = read_csv(file, limit, currency, common::rails()) else {
        return;
    };
    common::check(&parsed);
    assert!(parsed.errors.len() <= MAX_LISTED_ERRORS);
});
