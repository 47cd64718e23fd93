//! FSPIOP (Mojaloop) requests the hub and peer FSPs send us, through the adapter's own
//! `callback()` as the gateway calls it: routing, the FSPIOP headers (source, destination,
//! `Date`, `FSPIOP-Signature`), and every body (parties, quotes, transfers with their ILP
//! packets, transaction requests, errors).
//!
//! Each input goes to two adapters: JWS off (so the fuzzer reaches the bodies) and JWS on
//! (so that it works the signature parser). The input format is `railgate_fuzz::request`'s.
#![no_main]

use libfuzzer_sys::fuzz_target;
use railgate_mojaloop::jws::JwsVerifier;
use railgate_mojaloop::{IlpSecret, JwsConfig, MojaloopAdapter, MojaloopConfig, OwnParty};
use railgate_rail::{CallbackOutcome, PartyIdType, RailAdapter};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Our FSP id and ILP secret are those of the fixtures' golden exchange, so that seeds built
/// from them pass the payee-side checks.
fn config() -> MojaloopConfig {
    let mut c = MojaloopConfig::new(
        "payeefsp",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/rails/mojaloop",
        IlpSecret::new("mojaloop-sdk"),
        vec![OwnParty {
            id_type: PartyIdType::Business,
            id_value: "NHIF".to_owned(),
            name: "National Health Insurance Fund".to_owned(),
        }],
    );
    c.peers = vec!["payerfsp".to_owned()];
    c
}

/// A fixed public key for the JWS-on adapter: generating one at start-up is slow enough in an
/// instrumented build to count as a hang of the first input. Nothing signs with it, so its
/// private half was thrown away.
const PEER_KEY: &str = include_str!("../src/peer_key.pem");

fn adapters() -> &'static (MojaloopAdapter, MojaloopAdapter) {
    static ADAPTERS: OnceLock<(MojaloopAdapter, MojaloopAdapter)> = OnceLock::new();
    ADAPTERS.get_or_init(|| {
        let plain = MojaloopAdapter::new(config()).expect("adapter");
        let verifier = JwsVerifier::from_pem(PEER_KEY).expect("key");
        let mut peers = BTreeMap::new();
        peers.insert("payerfsp".to_owned(), verifier.clone());
        peers.insert("switch".to_owned(), verifier);
        let mut c = config();
        c.jws = Some(JwsConfig {
            signer: None,
            peers,
            verify_inbound: true,
            accept_unsigned_from_hub: false,
        });
        let signed = MojaloopAdapter::new(c).expect("adapter");
        (plain, signed)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = railgate_fuzz::request(data) else {
        return;
    };
    let (plain, signed) = adapters();
    for adapter in [plain, signed] {
        if let Ok(reply) = adapter.callback(&request) {
            for event in &reply.events {
                assert!(!event.callback_id.is_empty());
                if let CallbackOutcome::Completed(s) = &event.outcome {
                    let _ = s.rail_reference.as_deref();
                }
            }
        }
    }
});
