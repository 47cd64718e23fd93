//! camt.053 / camt.054 statements: the streaming reader of statement uploads (headers, lines,
//! balance checks, as the reconciliation import consumes them) and the bank adapter's reader
//! of returned transfers from the same documents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_statements::{InputFormat, StatementReader};

fuzz_target!(|data: &[u8]| {
    // The reconciliation import: stops at a fatal error, counts the others and goes on.
    if let Ok(reader) = StatementReader::open(data, InputFormat::Camt) {
        railgate_fuzz::drain_statement(reader, data.len());
    }
    // The bank adapter's returns reader.
    let _ = railgate_bank::camt::is_statement(data);
    if let Ok(returns) = railgate_bank::camt::parse_returns(data) {
        let _ = returns.len();
    }
});
