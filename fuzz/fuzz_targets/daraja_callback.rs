//! M-Pesa Daraja callbacks (B2C Result and queue timeout, STK Push callback, Transaction
//! Status result and timeout) through the adapter's `callback()`, authenticated by the secret
//! first segment of the callback path.
//!
//! The input format is `railgate_fuzz::request`'s; seeds use the path secret `cb-secret-0123456789`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_mpesa::{
    B2cConfig, CommandId, MpesaAdapter, MpesaConfig, Secret, StkConfig, StkTransactionType,
};
use railgate_rail::RailAdapter;
use std::sync::OnceLock;

fn adapter() -> &'static MpesaAdapter {
    static ADAPTER: OnceLock<MpesaAdapter> = OnceLock::new();
    ADAPTER.get_or_init(|| {
        let mut config = MpesaConfig::new(
            "mpesa",
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/rails/mpesa",
            Secret::new("cb-secret-0123456789"),
            "consumer-key",
            Secret::new("consumer-secret"),
        );
        config.b2c = Some(B2cConfig {
            initiator_name: "railgate_api".into(),
            security_credential: Secret::new("c2VjdXJpdHktY3JlZGVudGlhbA=="),
            shortcode: "600997".into(),
            command_id: CommandId::SalaryPayment,
        });
        config.stk = Some(StkConfig {
            shortcode: "174379".into(),
            passkey: Secret::new("passkey"),
            transaction_type: StkTransactionType::CustomerPayBillOnline,
            party_b: "174379".into(),
        });
        MpesaAdapter::new(config).expect("adapter")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = railgate_fuzz::request(data) else {
        return;
    };
    if let Ok(reply) = adapter().callback(&request) {
        assert_eq!(reply.events.len(), 1);
        assert!((200..300).contains(&reply.status));
    }
});
