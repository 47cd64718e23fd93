//! `FSPIOP-Signature`: JWS with a detached payload (API Signature v1.1 §3).
//!
//! The header value is the JSON text `{"signature": …, "protectedHeader": …}`; the signing
//! input is `BASE64URL(protected header) || '.' || BASE64URL(raw HTTP body)`; the protected
//! header carries `alg`, `FSPIOP-URI`, `FSPIOP-HTTP-Method`, `FSPIOP-Source`, and
//! `FSPIOP-Destination` and `Date` when the message has them. RS256 only, keys ≥ 2048 bits.
//!
//! RSA comes from the `rsa` crate; signing goes through `sign_with_rng`, which blinds the
//! private-key operation (the crate's advisory about timing concerns unblinded use).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("key: {0}")]
    Key(String),
    #[error("missing FSPIOP-Signature")]
    Missing,
    #[error("malformed FSPIOP-Signature: {0}")]
    Malformed(&'static str),
    #[error("protected header does not match the request: {0}")]
    Mismatch(&'static str),
    #[error("signature does not verify")]
    BadSignature,
}

/// The request facts the protected header binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected<'a> {
    pub method: &'a str,
    /// Starts at the resource: `/transfers/{id}`.
    pub uri: &'a str,
    pub source: &'a str,
    pub destination: Option<&'a str>,
    pub date: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct HeaderValue {
    signature: String,
    #[serde(rename = "protectedHeader")]
    protected_header: String,
}

const MIN_BITS: usize = 2048;

/// Signs with our private key.
#[derive(Clone)]
pub struct JwsSigner {
    key: SigningKey<Sha256>,
    public: RsaPublicKey,
}

impl std::fmt::Debug for JwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwsSigner(***)")
    }
}

impl JwsSigner {
    pub fn new(key: RsaPrivateKey) -> Result<Self, JwsError> {
        if key.size().saturating_mul(8) < MIN_BITS {
            return Err(JwsError::Key(
                "RSA keys must have at least 2048 bits".to_owned(),
            ));
        }
        let public = key.to_public_key();
        Ok(JwsSigner {
            key: SigningKey::<Sha256>::new(key),
            public,
        })
    }

    /// A PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, JwsError> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|e| JwsError::Key(e.to_string()))?;
        JwsSigner::new(key)
    }

    /// The matching verifier (what the hub and peers hold).
    pub fn verifier(&self) -> JwsVerifier {
        JwsVerifier {
            key: VerifyingKey::<Sha256>::new(self.public.clone()),
        }
    }

    /// The `FSPIOP-Signature` header value for a message.
    pub fn sign(&self, protected: &Protected<'_>, body: &[u8]) -> Result<String, JwsError> {
        let header = URL_SAFE_NO_PAD.encode(protected_json(protected).as_bytes());
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(body));
        let signature = self
            .key
            .try_sign_with_rng(&mut rand::rngs::OsRng, input.as_bytes())
            .map_err(|e| JwsError::Key(e.to_string()))?;
        let value = HeaderValue {
            signature: URL_SAFE_NO_PAD.encode(signature.to_bytes()),
            protected_header: header,
        };
        serde_json::to_string(&value).map_err(|_| JwsError::Malformed("encode"))
    }
}

fn protected_json(p: &Protected<'_>) -> String {
    let mut m = Map::new();
    m.insert("alg".to_owned(), Value::from("RS256"));
    m.insert("FSPIOP-URI".to_owned(), Value::from(p.uri));
    m.insert("FSPIOP-HTTP-Method".to_owned(), Value::from(p.method));
    m.insert("FSPIOP-Source".to_owned(), Value::from(p.source));
    if let Some(d) = p.destination {
        m.insert("FSPIOP-Destination".to_owned(), Value::from(d));
    }
    if let Some(d) = p.date {
        m.insert("Date".to_owned(), Value::from(d));
    }
    Value::Object(m).to_string()
}

/// Verifies with one FSP's public key.
#[derive(Clone)]
pub struct JwsVerifier {
    key: VerifyingKey<Sha256>,
}

impl std::fmt::Debug for JwsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwsVerifier")
    }
}

impl JwsVerifier {
    pub fn new(key: RsaPublicKey) -> Result<Self, JwsError> {
        if key.size().saturating_mul(8) < MIN_BITS {
            return Err(JwsError::Key(
                "RSA keys must have at least 2048 bits".to_owned(),
            ));
        }
        Ok(JwsVerifier {
            key: VerifyingKey::<Sha256>::new(key),
        })
    }

    /// An SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, JwsError> {
        let key = RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|e| JwsError::Key(e.to_string()))?;
        JwsVerifier::new(key)
    }

    /// Checks the header value against the request it came with: the protected header must
    /// name RS256 and this request's URI, method and source (and its destination and date
    /// when it names them), and the signature must cover it and the body.
    pub fn verify(
        &self,
        header_value: &str,
        expected: &Protected<'_>,
        body: &[u8],
    ) -> Result<(), JwsError> {
        let value: HeaderValue =
            serde_json::from_str(header_value).map_err(|_| JwsError::Malformed("not JSON"))?;
        let header_bytes = URL_SAFE_NO_PAD
            .decode(&value.protected_header)
            .map_err(|_| JwsError::Malformed("protectedHeader is not base64url"))?;
        let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
            .map_err(|_| JwsError::Malformed("protectedHeader is not JSON"))?;
        let field = |k: &str| header.get(k).and_then(Value::as_str);
        if field("alg") != Some("RS256") {
            return Err(JwsError::Mismatch("alg must be RS256"));
        }
        if field("FSPIOP-URI") != Some(expected.uri) {
            return Err(JwsError::Mismatch("FSPIOP-URI"));
        }
        if !field("FSPIOP-HTTP-Method").is_some_and(|m| m.eq_ignore_ascii_case(expected.method)) {
            return Err(JwsError::Mismatch("FSPIOP-HTTP-Method"));
        }
        if field("FSPIOP-Source") != Some(expected.source) {
            return Err(JwsError::Mismatch("FSPIOP-Source"));
        }
        if let Some(d) = field("FSPIOP-Destination") {
            if expected.destination != Some(d) {
                return Err(JwsError::Mismatch("FSPIOP-Destination"));
            }
        }
        if let Some(d) = field("Date") {
            if expected.date != Some(d) {
                return Err(JwsError::Mismatch("Date"));
            }
        }
        let signature_bytes = URL_SAFE_NO_PAD
            .decode(&value.signature)
            .map_err(|_| JwsError::Malformed("signature is not base64url"))?;
        let signature =
            Signature::try_from(signature_bytes.as_slice()).map_err(|_| JwsError::BadSignature)?;
        let input = format!(
            "{}.{}",
            value.protected_header,
            URL_SAFE_NO_PAD.encode(body)
        );
        self.key
            .verify(input.as_bytes(), &signature)
            .map_err(|_| JwsError::BadSignature)
    }
}

/// A fresh 2048-bit key, for the sandbox and tests (real keys come from the scheme's PKI).
pub fn generate_key() -> Result<RsaPrivateKey, JwsError> {
    RsaPrivateKey::new(&mut rand::rngs::OsRng, MIN_BITS).map_err(|e| JwsError::Key(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

    fn protected() -> Protected<'static> {
        Protected {
            method: "PUT",
            uri: "/transfers/85feac2f-39b2-491b-817e-4a03203d4f14",
            source: "payeefsp",
            destination: Some("railgate"),
            date: Some("Mon, 01 Dec 2025 10:00:02 GMT"),
        }
    }

    #[test]
    fn round_trip_and_tampering() {
        let key = generate_key().unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let signer = JwsSigner::from_pem(&pem).unwrap();
        let public_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let verifier = JwsVerifier::from_pem(&public_pem).unwrap();
        let body = br#"{"fulfilment":"pkxUkenyAGO0Ijx7EzvMX5pLrNwZ3Zh8yRxH3qH6ReM","transferState":"COMMITTED"}"#;
        let header = signer.sign(&protected(), body).unwrap();
        assert_eq!(verifier.verify(&header, &protected(), body), Ok(()));

        // A changed body, URI, source or method is refused.
        let tampered = br#"{"fulfilment":"pkxUkenyAGO0Ijx7EzvMX5pLrNwZ3Zh8yRxH3qH6ReM","transferState":"ABORTED"}"#;
        assert_eq!(
            verifier.verify(&header, &protected(), tampered),
            Err(JwsError::BadSignature)
        );
        let mut other = protected();
        other.uri = "/transfers/00000000-0000-4000-8000-000000000000";
        assert_eq!(
            verifier.verify(&header, &other, body),
            Err(JwsError::Mismatch("FSPIOP-URI"))
        );
        let mut other = protected();
        other.source = "roguefsp";
        assert_eq!(
            verifier.verify(&header, &other, body),
            Err(JwsError::Mismatch("FSPIOP-Source"))
        );

        // Another key's signature is refused.
        let stranger = JwsSigner::new(generate_key().unwrap()).unwrap();
        let forged = stranger.sign(&protected(), body).unwrap();
        assert_eq!(
            verifier.verify(&forged, &protected(), body),
            Err(JwsError::BadSignature)
        );
        assert!(matches!(
            verifier.verify("{}", &protected(), body),
            Err(JwsError::Malformed(_))
        ));
    }

    #[test]
    fn protected_header_names_the_required_fields() {
        let json: Value = serde_json::from_str(&protected_json(&protected())).unwrap();
        for k in [
            "alg",
            "FSPIOP-URI",
            "FSPIOP-HTTP-Method",
            "FSPIOP-Source",
            "FSPIOP-Destination",
            "Date",
        ] {
            assert!(json.get(k).is_some(), "{k}");
        }
    }
}
