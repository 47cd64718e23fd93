//! The sample payloads in `fixtures/mojaloop/`: each parses into its wire type, serialises back
//! to the same JSON, passes the mock hub's validator, and together they form one consistent
//! exchange (the ILP golden vector).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use railgate_mojaloop::ilp::{self, IlpKey};
use railgate_mojaloop::mock::validate;
use railgate_mojaloop::wire::{
    self, ErrorInformationObject, PartiesPut, QuotesPost, QuotesPut, TransactionRequestsPost,
    TransactionRequestsPut, TransfersPost, TransfersPut,
};
use railgate_rail::{Currency, FailureCode, Money};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../fixtures/mojaloop/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| unreachable!("{path}: {e}"))
}

/// Parses into `T` and checks nothing was lost or added on the way back.
fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> (T, Value) {
    let bytes = fixture(name);
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    let typed: T = wire::parse_body(&bytes).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), value, "{name}");
    (typed, value)
}

#[test]
fn fixtures_parse_round_trip_and_validate() {
    let (quote, v) = round_trip::<QuotesPost>("quotes_post.json");
    assert_eq!(validate::quotes_post(&v), Ok(()));
    let (terms, v) = round_trip::<QuotesPut>("quotes_put.json");
    assert_eq!(validate::quotes_put(&v), Ok(()));
    let (transfer, v) = round_trip::<TransfersPost>("transfers_post.json");
    assert_eq!(validate::transfers_post(&v), Ok(()));
    let (done, v) = round_trip::<TransfersPut>("transfers_put_committed.json");
    assert_eq!(validate::transfers_put(&v), Ok(()));
    let (_, v) = round_trip::<PartiesPut>("parties_put.json");
    assert_eq!(validate::parties_put(&v), Ok(()));
    let (_, v) = round_trip::<TransactionRequestsPost>("transaction_requests_post.json");
    assert_eq!(validate::transaction_requests_post(&v), Ok(()));
    let (rejected, _) =
        round_trip::<TransactionRequestsPut>("transaction_requests_put_rejected.json");
    assert_eq!(
        rejected.transaction_request_state,
        wire::TransactionRequestState::Rejected
    );
    let (error, v) = round_trip::<ErrorInformationObject>("transfers_put_error_4001.json");
    assert_eq!(validate::error_information(&v), Ok(()));
    assert_eq!(
        wire::failure_of(&error.error_information).code,
        FailureCode::InsufficientFunds
    );

    // One consistent exchange.
    assert_eq!(transfer.transfer_id, quote.transaction_id);
    assert_eq!(
        (&transfer.ilp_packet, &transfer.condition),
        (&terms.ilp_packet, &terms.condition)
    );
    assert_eq!(
        Money::try_from(&transfer.amount).unwrap(),
        Money::parse("100.00", Currency::Usd).unwrap()
    );
    let packet = ilp::decode_packet(&terms.ilp_packet).unwrap();
    let tx = ilp::transaction_of(&packet).unwrap();
    assert_eq!(tx["quoteId"], Value::from(quote.quote_id.clone()));
    assert_eq!(
        tx["transactionId"],
        Value::from(quote.transaction_id.clone())
    );
    let fulfilment = done.fulfilment.unwrap();
    assert!(ilp::fulfils(&fulfilment, &transfer.condition));
    assert_eq!(
        ilp::regenerate_fulfilment(
            &IlpKey::from_secret("mojaloop-sdk"),
            &terms.ilp_packet,
            &packet
        )
        .unwrap(),
        fulfilment
    );
}
