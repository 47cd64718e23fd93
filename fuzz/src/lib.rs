//! What the fuzz targets share: turning fuzzer bytes into the `InboundRequest` a rail's
//! callback handler sees, so that method, path, query, headers and body are all mutated.
//!
//! The input is a tiny HTTP/1-like text, so that seeds stay readable and the fuzzer's
//! mutations of one part leave the others intact:
//!
//! ```text
//! PUT /transactions/5f0c...?token=x
//! Content-Type: application/json
//! Date: Thu, 01 Jan 2026 00:00:00 GMT
//!
//! {"body": "..."}
//! ```

use chrono::{DateTime, TimeZone, Utc};
use railgate_rail::InboundRequest;

/// The clock every request is received at; seeds carry a `Date` header of this instant so
/// that freshness checks pass and the fuzzer reaches the body parsers.
pub fn received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Builds a request from fuzzer bytes; `None` when the request line is unusable (the HTTP
/// server in front of the adapters would have refused it).
pub fn request(data: &[u8]) -> Option<InboundRequest> {
    let (head, body) = match find(data, b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let first = lines.next()?;
    let (method, target) = first.split_once(' ')?;
    let method = http::Method::from_bytes(method.as_bytes()).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    if !path.starts_with('/') {
        return None;
    }
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    Some(InboundRequest {
        method,
        path: path.to_owned(),
        query,
        headers,
        body: bytes::Bytes::copy_from_slice(body),
        received_at: received_at(),
        peer: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 40_000))),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(feature = "gateway")]
pub mod payroll;

/// Reads a statement upload to its end as the reconciliation import does: a fatal error stops
/// it, the others are counted and skipped, each statement's lines are totalled and checked
/// against its header. `len` is the input's size: a reader yielding more items than that loops.
pub fn drain_statement<R: std::io::BufRead>(
    reader: railgate_statements::StatementReader<R>,
    len: usize,
) {
    use railgate_statements::{StatementHeader, StatementItem, Totals};
    let mut current: Option<(Box<StatementHeader>, Totals)> = None;
    let mut items = 0usize;
    for item in reader {
        items += 1;
        assert!(items <= len + 2, "more items than bytes: the reader loops");
        match item {
            Ok(StatementItem::Header(h)) => {
                if let Some((header, totals)) = current.take() {
                    let _ = totals.check(&header);
                }
                current = Some((h, Totals::default()));
            }
            Ok(StatementItem::Line(l)) => {
                assert!(l.amount.minor() > 0);
                if let Some((_, t)) = current.as_mut() {
                    t.add(&l);
                }
            }
            Err(e) if e.fatal() => break,
            Err(_) => {}
        }
    }
    if let Some((header, totals)) = current {
        let _ = totals.check(&header);
    }
}
