//! How the mock rail signs its callbacks, and how the adapter checks them.
//!
//! `X-Mock-Signature: t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(secret, "<t>.<raw body>")>`,
//! the timestamped form common to webhook senders: the timestamp is signed with the body, so
//! an old delivery cannot be replayed with a fresh time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-mock-signature";
pub const EVENT_ID_HEADER: &str = "x-mock-event-id";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long keys are hashed, short ones padded), so this
    // constructor cannot fail; the `Result` only exists for fixed-key-size MACs.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The lowercase hex HMAC-SHA256 of `"<timestamp>.<body>"`.
pub fn signature_hex(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// The whole `X-Mock-Signature` header value for a body sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        signature_hex(secret, timestamp, body)
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not of the form t=<seconds>,v1=<hex>")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks a header value against the body in constant time; returns its signed timestamp.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> Result<i64, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
            }
            Some(("v1", sig)) => signatures.push(sig),
            // Other schemes may appear beside v1 later; they are ignored, not refused.
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // Any v1 that matches is enough: a sender rotating secrets may sign with both.
    for sig in signatures {
        let Ok(bytes) = hex::decode(sig) else {
            continue;
        };
        if mac(secret, timestamp, body).verify_slice(&bytes).is_ok() {
            return Ok(timestamp);
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let header = sign("s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(verify("s3cret", &header, b"{\"a\":1}"), Ok(1_700_000_000));
    }

    #[test]
    fn refuses_other_secret_body_or_time() {
        let header = sign("s3cret", 1_700_000_000, b"{\"a\":1}");
        assert_eq!(
            verify("other", &header, b"{\"a\":1}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", &header, b"{\"a\":2}"),
            Err(SignatureError::Mismatch)
        );
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify("s3cret", &moved, b"{\"a\":1}"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in ["", "v1=00", "t=abc,v1=00", "t=1", "garbage"] {
            assert_eq!(
                verify("s", bad, b""),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(verify("s", "t=1,v1=zz", b""), Err(SignatureError::Mismatch));
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("key", "1.body"), computed with another implementation.
        assert_eq!(
            signature_hex("key", 1, b"body"),
            "91b5374b153842ad05b2c4eab9349b8321b14703165bd3fb8b034dfb8be98ae5"
        );
    }
}
