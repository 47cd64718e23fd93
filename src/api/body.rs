//! Reading request bodies ourselves, so that every refusal (wrong type, too large, not JSON)
//! is a problem document rather than a framework's plain-text answer.

use super::problem::Problem;
use super::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use railgate_rail::json::JsonFault;
use sha2::{Digest, Sha256};

/// A JSON request body: checked content type, bounded size, parsed to a `Value`.
pub struct JsonBody {
    pub raw: Bytes,
    pub value: serde_json::Value,
    pub idempotency_key: Option<String>,
}

impl JsonBody {
    /// The fingerprint an idempotency key is bound to.
    pub fn fingerprint(&self, route: &str) -> String {
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        h.update(&self.raw);
        hex::encode(h.finalize())
    }
}

/// The answer to a JSON body the checked parser refused: 400 when it is not JSON, 422 naming
/// the member when a key repeats or a string holds a control character.
pub fn json_problem(fault: JsonFault) -> Problem {
    match fault {
        JsonFault::Syntax { .. } => Problem::malformed(fault.to_string()),
        JsonFault::DuplicateKey { path } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate-key",
            "The request body repeats a key",
            format!("{path}: the key appears more than once; send each key once"),
        )
        .with_errors(vec![Problem::field(&path, "appears more than once")]),
        JsonFault::ControlCharacter { path } => Problem::validation(vec![Problem::field(
            &path,
            "must not contain control characters",
        )]),
    }
}

pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, Problem> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k = v.to_str().unwrap_or("");
            if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                Err(Problem::validation(vec![Problem::field(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )]))
            } else {
                Ok(Some(k.to_owned()))
            }
        }
    }
}

pub async fn read_limited(req: Request, limit: usize) -> Result<Bytes, Problem> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "The request body is too large",
                format!("the body must be at most {limit} bytes"),
            )
        })
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_json(req, state, false).await
    }
}

/// A JSON body that may be left out altogether (no body, no content type): read as `{}`.
pub struct OptionalJsonBody(pub JsonBody);

impl FromRequest<AppState> for OptionalJsonBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_json(req, state, true).await.map(OptionalJsonBody)
    }
}

async fn read_json(req: Request, state: &AppState, optional: bool) -> Result<JsonBody, Problem> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let unsupported = || {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported content type",
            "send the body as 'Content-Type: application/json'",
        )
    };
    let idempotency_key = idempotency_key(req.headers())?;
    if essence != "application/json" {
        if !(optional && essence.is_empty()) {
            return Err(unsupported());
        }
        let raw = read_limited(req, state.cfg.body_limit_bytes).await?;
        if !raw.is_empty() {
            return Err(unsupported());
        }
        return Ok(JsonBody {
            raw,
            value: serde_json::Value::Object(serde_json::Map::new()),
            idempotency_key,
        });
    }
    let raw = read_limited(req, state.cfg.body_limit_bytes).await?;
    let value = railgate_rail::json::parse(&raw).map_err(json_problem)?;
    Ok(JsonBody {
        raw,
        value,
        idempotency_key,
    })
}
