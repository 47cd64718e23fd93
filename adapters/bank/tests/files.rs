//! Inbound bank files from fixtures: a pain.002 that rejects a whole block, and a camt.054
//! with a return.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use railgate_bank::adapter::map_status;
use railgate_bank::pain002::{self, SentBlock, StatusCode};
use railgate_bank::{camt, ids};
use railgate_rail::{Currency, FailureCode, Money, RailStatus};
use uuid::Uuid;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/iso20022")
            .join(name),
    )
    .unwrap()
}

#[test]
fn a_block_rejected_without_transaction_lines_reaches_every_payment_in_it() {
    let report = pain002::parse(&fixture("pain002-block-rejected.xml")).unwrap();
    assert_eq!(report.group_status, Some(StatusCode::Part));
    assert_eq!(report.blocks.len(), 2);
    assert!(report.blocks[0].transactions.is_empty());

    let payments: Vec<(Uuid, String)> = (0..3)
        .map(|_| Uuid::new_v4())
        .map(|u| (u, ids::end_to_end_id(u)))
        .collect();
    let sent = SentBlock {
        msg_id: "RG0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        pmt_inf_id: "RB0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        payments: &payments,
    };
    let statuses = pain002::resolve(&report, &sent);
    assert_eq!(statuses.len(), 3);
    for (s, (id, _)) in statuses.iter().zip(&payments) {
        assert_eq!(s.attempt_id, *id);
        assert_eq!(s.status, StatusCode::Rjct);
        assert_eq!(s.level, "block");
        match map_status(s) {
            RailStatus::Failed(f) => {
                assert_eq!(f.code, FailureCode::PartyNotFound);
                assert_eq!(f.rail_code.as_deref(), Some("AC01"));
                assert!(f.reason.contains("Debtor account unknown"));
            }
            other => panic!("{other:?}"),
        }
    }

    // The other block: one transaction line rejected, the rest only "accepted for execution".
    let other_payments = vec![
        (
            Uuid::new_v4(),
            "22222222222222222222222222222222".to_owned(),
        ),
        (Uuid::new_v4(), ids::end_to_end_id(Uuid::new_v4())),
    ];
    let sent = SentBlock {
        msg_id: "RG0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        pmt_inf_id: "RB11111111111111111111111111111111",
        payments: &other_payments,
    };
    let statuses = pain002::resolve(&report, &sent);
    assert_eq!(statuses.len(), 2);
    assert_eq!(
        (statuses[0].status.clone(), statuses[0].level),
        (StatusCode::Rjct, "transaction")
    );
    assert!(
        matches!(map_status(&statuses[0]), RailStatus::Failed(f) if f.code == FailureCode::InsufficientFunds)
    );
    assert_eq!(
        (statuses[1].status.clone(), statuses[1].level),
        (StatusCode::Acsp, "block")
    );
    // Accepted for execution is not completion.
    assert_eq!(map_status(&statuses[1]), RailStatus::Pending);

    // A report about another file says nothing about ours.
    let sent = SentBlock {
        msg_id: "RGother",
        pmt_inf_id: "RB0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        payments: &payments,
    };
    assert!(pain002::resolve(&report, &sent).is_empty());
}

#[test]
fn a_return_entry_gives_back_our_end_to_end_id_and_reason() {
    let returns = camt::parse_returns(&fixture("camt054-return.xml")).unwrap();
    assert_eq!(returns.len(), 1, "{returns:?}");
    let r = &returns[0];
    assert_eq!(r.end_to_end_id, "7d0c6f1e9a2b4c3d8e5f60718293a4b5");
    assert_eq!(
        r.attempt_id,
        Some(Uuid::parse_str("7d0c6f1e-9a2b-4c3d-8e5f-60718293a4b5").unwrap())
    );
    assert_eq!(r.reason_code.as_deref(), Some("AC04"));
    assert_eq!(
        r.amount,
        Some(Money::parse("1250.00", Currency::Eur).unwrap())
    );
    assert_eq!(r.booking_date.as_deref(), Some("2026-11-28"));
    assert_eq!(r.account_servicer_ref.as_deref(), Some("BK-0002"));
    assert!(camt::parse_returns(&fixture("pain002-block-rejected.xml")).is_err());
}
