//! camt.053 / camt.054 statements: the streaming reader of statement uploads (headers, lines,
//! balance checks, as the reconciliation import consumes them) and the bank adapter's reader
//! of returned transfers from the same documents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_statements::{InputFormat, StatementHeader, StatementItem, StatementReader, Totals};

fuzz_target!(|data: &[u8]| {
    // The reconciliation import: stops at a fatal error, counts the others and goes on.
    if let Ok(reader) = StatementReader::open(data, InputFormat::Camt) {
        let mut current: Option<(Box<StatementHeader>, Totals)> = None;
        let mut items = 0usize;
        for item in reader {
            items += 1;
            assert!(
                items <= data.len() + 2,
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
    }
    // The bank adapter's returns reader.
    let _ = railgate_bank::camt::is_statement(data);
    if let Ok(returns) = railgate_bank::camt::parse_returns(data) {
        let _ = returns.len();
    }
});
