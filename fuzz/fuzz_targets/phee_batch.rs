//! Payment Hub EE batch results: the operations app's pages of transfers (each row mapped to a
//! line result, amounts read exactly), its batch summary, the bulk upload's answer, and the
//! batch callback through the adapter's `callback()` with its URL token.
//!
//! Input: the JSON body. It is read as each of those documents, then sent as the batch
//! callback (`POST /batch-callback?token=cb-token`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_mifos::bulk::line_result;
use railgate_mifos::wire::{BatchCallback, BatchSummary, OpsTransfer, Page};
use railgate_mifos::{PhEeAdapter, PhEeConfig, Secret};
use railgate_rail::{Currency, InboundRequest, RailAdapter};
use std::sync::OnceLock;

fn adapter() -> &'static PhEeAdapter {
    static ADAPTER: OnceLock<PhEeAdapter> = OnceLock::new();
    ADAPTER.get_or_init(|| {
        let cfg = PhEeConfig {
            rail_id: "mifos".into(),
            channel_url: "http://127.0.0.1:9".into(),
            operations_url: "http://127.0.0.1:9/api/v1".into(),
            bulk_url: "http://127.0.0.1:9".into(),
            tenant: "gorilla".into(),
            payer_id_type: "MSISDN".into(),
            payer_identifier: "27710101999".into(),
            payee_dfsp: None,
            collection_scheme: "mpesa".into(),
            operations_token: None,
            callback_token: Some(Secret::new("cb-token")),
            currencies: vec![Currency::Kes, Currency::Usd],
            timeout_ms: 1_000,
            tls: None,
            oauth: None,
        };
        PhEeAdapter::new(cfg).expect("adapter")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = serde_json::from_slice::<Page<OpsTransfer>>(data) {
        for row in &page.content {
            let _ = row.status();
            if let Some(m) = row.money() {
                assert!(m.minor() > 0);
            }
            if let Some(r) = line_result(row) {
                assert!(row.client_correlation_id.is_some());
                assert_eq!(r.amount, row.money());
            }
        }
    }
    let _ = serde_json::from_slice::<BatchSummary>(data);
    let _ = serde_json::from_slice::<BatchCallback>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = railgate_mifos::bulk::batch_id_of(text);
    }
    let request = InboundRequest {
        method: http::Method::POST,
        path: railgate_mifos::adapter::BATCH_CALLBACK_PATH.to_owned(),
        query: Some("token=cb-token".to_owned()),
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::copy_from_slice(data),
        received_at: railgate_fuzz::received_at(),
        peer: None,
    };
    if let Ok(reply) = adapter().callback(&request) {
        assert!(reply.events.is_empty());
    }
});
