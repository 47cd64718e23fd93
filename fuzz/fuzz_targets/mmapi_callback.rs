//! GSMA Mobile Money API callbacks (transactions, reversals, batches; transaction, request
//! state, batch and error objects) through the adapter's `callback()` and `batch_callback()`,
//! with the HTTP Basic credentials the provider is configured with.
//!
//! The input format is `railgate_fuzz::request`'s; seeds carry
//! `Authorization: Basic b3BlcmF0b3I6Y2FsbGJhY2stcGFzcw==` (operator:callback-pass).
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_mmapi::{Auth, CallbackAuth, MmapiAdapter, MmapiConfig, Secret};
use railgate_rail::{Currency, RailAdapter};
use std::sync::OnceLock;

fn adapter() -> &'static MmapiAdapter {
    static ADAPTER: OnceLock<MmapiAdapter> = OnceLock::new();
    ADAPTER.get_or_init(|| {
        let config = MmapiConfig::new(
            "mmapi",
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/rails/mmapi",
            Auth::ApiKey {
                api_key: Secret::new("api-key"),
            },
            CallbackAuth::Basic {
                username: "operator".into(),
                password: Secret::new("callback-pass"),
            },
            vec![("accountid".into(), "2000023".into())],
            vec![Currency::Tzs, Currency::Ugx],
        );
        MmapiAdapter::new(config).expect("adapter")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = railgate_fuzz::request(data) else {
        return;
    };
    let adapter = adapter();
    if let Ok(reply) = adapter.callback(&request) {
        assert!((200..300).contains(&reply.status));
        assert!(reply.events.len() <= 1);
    }
    if adapter.is_batch_callback(&request) {
        let _ = adapter.batch_callback(&request);
    }
    let _ = railgate_mmapi::wire::Resource::sniff(&request.body);
});
