//! What every sandbox rail exposes under `/_control`.

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub drop_callbacks: bool,
    #[serde(default)]
    pub error_rate_percent: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutRow {
    pub attempt_id: String,
    pub reference: String,
    pub amount: String,
    pub currency: String,
    pub count: u32,
}

/// One line of `GET /_control/statement?format=csv`.
#[derive(Debug, Clone)]
pub struct StatementLine {
    pub date: String,
    pub amount: String,
    pub currency: String,
    pub direction: &'static str,
    pub reference: String,
    pub counterparty: String,
    pub rail_transaction_id: String,
}

pub fn statement_csv(lines: &[StatementLine]) -> String {
    let mut out = String::from(
        "date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n",
    );
    for l in lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},0\n",
            l.date,
            l.amount,
            l.currency,
            l.direction,
            l.reference,
            l.counterparty,
            l.rail_transaction_id
        ));
    }
    out
}

/// A 200 whose body breaks off: the client sees the connection drop after the rail acted.
pub fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by the sandbox"))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}

/// True for roughly `percent` out of every hundred calls, by a counter (reproducible).
pub fn hit(counter: u64, percent: u8) -> bool {
    percent > 0 && counter.wrapping_mul(37) % 100 < u64::from(percent)
}

/// The last two digits of an identifier.
pub fn scenario(identifier: &str) -> u8 {
    let digits: Vec<u8> = identifier
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b.saturating_sub(b'0'))
        .collect();
    match digits.as_slice() {
        [.., t, u] => t.saturating_mul(10).saturating_add(*u),
        [u] => *u,
        [] => 0,
    }
}
