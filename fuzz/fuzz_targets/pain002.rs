//! pain.002 payment status reports from a bank: the parser, then the resolution against the
//! blocks we sent (every block the report names, with the end-to-end ids it lists plus one it
//! does not), as the bank adapter does when it picks a report up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_bank::pain002::{is_pain002, parse, resolve, SentBlock};
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let sniffed = is_pain002(data);
    let Ok(report) = parse(data) else { return };
    assert!(sniffed, "parsed a document that is not sniffed as pain.002");
    for block in &report.blocks {
        let mut payments: Vec<(Uuid, String)> = block
            .transactions
            .iter()
            .filter_map(|t| t.original_end_to_end_id.clone())
            .enumerate()
            .map(|(i, e2e)| (Uuid::from_u128(u128::try_from(i).unwrap_or(0)), e2e))
            .collect();
        payments.push((Uuid::max(), "not-in-the-report".to_owned()));
        let sent = SentBlock {
            msg_id: &report.original_msg_id,
            pmt_inf_id: &block.original_pmt_inf_id,
            payments: &payments,
        };
        let statuses = resolve(&report, &sent);
        assert!(statuses.len() <= payments.len());
        for s in &statuses {
            assert!(payments
                .iter()
                .any(|(id, e2e)| *id == s.attempt_id && *e2e == s.end_to_end_id));
        }
    }
});
