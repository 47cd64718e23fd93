//! The ILP packet of a Mojaloop transfer or quote (v1 payment and v4 Prepare, OER-encoded
//! and base64url): decoding, the transaction object inside, the fulfilment we regenerate as
//! payee FSP and its condition.
//!
//! The input is tried twice: as the base64url text a peer sends, and as the raw packet bytes
//! (encoded here), so that the fuzzer can reach the binary decoder directly.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use railgate_mojaloop::ilp::{
    condition_of, decode_packet, fulfils, packet_condition, regenerate_fulfilment, transaction_of,
    IlpKey,
};

fn check(text: &str) {
    let Ok(packet) = decode_packet(text) else {
        return;
    };
    let _ = transaction_of(&packet);
    let _ = packet_condition(&packet);
    let key = IlpKey::from_secret("fuzz-ilp-secret");
    if let Ok(fulfilment) = regenerate_fulfilment(&key, text, &packet) {
        let condition = condition_of(&fulfilment).expect("a fulfilment is 32 bytes");
        assert!(fulfils(&fulfilment, &condition));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
        let _ = condition_of(text);
        let _ = fulfils(text, text);
    }
    check(&URL_SAFE_NO_PAD.encode(data));
});
