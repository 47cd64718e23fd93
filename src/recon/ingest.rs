//! Taking a statement in: spooled to a temporary file while it is hashed, recognised when it
//! was uploaded before, then read by the streaming parser on a blocking thread that hands
//! batches of lines to the store. Memory holds one batch, never the file.

use super::lines;
use crate::store::recon::{self as rstore, LineRow, Loaded, StatementRow};
use crate::store::{Db, StoreError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use railgate_rail::mask;
use railgate_statements::{
    InputFormat, ParseError, StatementHeader, StatementItem, StatementReader, Totals,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{BufReader, Seek, SeekFrom};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// Largest statement accepted (a million camt entries is well under 1 GiB).
pub const MAX_STATEMENT_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Lines handed from the parser to the store at a time.
const BATCH: usize = 2_000;
/// Lines written per transaction: one commit per this many lines.
const LINES_PER_COMMIT: usize = 20_000;
/// A load of at least this many lines refreshes the planner's statistics.
const ANALYSE_AFTER: i64 = 50_000;
/// Line errors kept verbatim on the statement (all are counted).
const ERRORS_KEPT: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the upload could not be spooled: {0}")]
    Io(#[from] std::io::Error),
    #[error("the upload was interrupted: {0}")]
    Body(String),
    #[error("the statement is larger than {MAX_STATEMENT_BYTES} bytes")]
    TooLarge,
    #[error("the statement cannot be read: {0}")]
    Unreadable(ParseError),
    #[error("the file holds no statement")]
    Empty,
}

#[derive(Debug)]
pub enum Ingested {
    New(StatementRow),
    /// Uploaded before: the earlier statement, and whether the bytes or the bank's identity
    /// of the statement gave it away.
    Duplicate {
        earlier: StatementRow,
        by: &'static str,
    },
}

pub struct Upload {
    pub client_id: Uuid,
    pub uploaded_by: String,
    pub format: InputFormat,
    /// What the statement is called in the store (`camt`, `csv:<profile>`).
    pub format_name: String,
    pub rail: Option<String>,
}

enum Msg {
    Header(Box<StatementHeader>),
    Lines(Vec<LineRow>),
    Balance { section: u32, check: Value },
    LineError(ParseError),
    Fatal(ParseError),
}

fn header_json(h: &StatementHeader) -> Value {
    json!({
        "section": h.section,
        "format": h.source_format.to_string(),
        "message_id": h.message_id,
        "statement_id": h.statement_id,
        "electronic_sequence": h.electronic_sequence,
        "legal_sequence": h.legal_sequence,
        "identity": h.identity().is_some(),
        "copy_duplicate": h.copy_duplicate.map(|c| format!("{c:?}")),
        "account": h.account.as_deref().map(mask),
        "currency": h.currency.map(|c| c.code()),
        "period": h.period.map(|p| json!({"from": p.from.to_string(), "to": p.to.to_string()})),
        "opening_balance": h.opening_balance.map(|b| json!({
            "value": railgate_rail::money::format_minor(b.minor, b.currency), "currency": b.currency.code()})),
        "closing_balance": h.closing_balance.map(|b| json!({
            "value": railgate_rail::money::format_minor(b.minor, b.currency), "currency": b.currency.code()})),
    })
}

fn balance_check(h: &StatementHeader, t: &Totals) -> Value {
    match t.check(h) {
        Ok(true) => json!("agrees"),
        Ok(false) => json!("not given"),
        Err(m) => json!({
            "mismatch": true,
            "opening": railgate_rail::money::format_minor(m.opening_minor, m.currency),
            "closing": railgate_rail::money::format_minor(m.closing_minor, m.currency),
            "computed_closing_minor": m.computed_closing_minor.to_string(),
            "currency": m.currency.code(),
        }),
    }
}

/// The parser's side: reads the spooled file and sends what it finds.
fn parse_file(
    file: std::fs::File,
    format: InputFormat,
    tx: tokio::sync::mpsc::Sender<Msg>,
) -> Result<(), ()> {
    let reader = match StatementReader::open(BufReader::with_capacity(256 * 1024, file), format) {
        Ok(r) => r,
        Err(e) => return tx.blocking_send(Msg::Fatal(e)).map_err(|_| ()),
    };
    let mut batch: Vec<LineRow> = Vec::with_capacity(BATCH);
    let mut current: Option<(Box<StatementHeader>, Totals)> = None;
    let close = |current: &mut Option<(Box<StatementHeader>, Totals)>| {
        current.take().map(|(h, t)| Msg::Balance {
            section: h.section,
            check: balance_check(&h, &t),
        })
    };
    for item in reader {
        match item {
            Ok(StatementItem::Header(h)) => {
                if !batch.is_empty() {
                    tx.blocking_send(Msg::Lines(std::mem::take(&mut batch)))
                        .map_err(|_| ())?;
                }
                if let Some(m) = close(&mut current) {
                    tx.blocking_send(m).map_err(|_| ())?;
                }
                current = Some((h.clone(), Totals::default()));
                tx.blocking_send(Msg::Header(h)).map_err(|_| ())?;
            }
            Ok(StatementItem::Line(l)) => {
                if let Some((_, t)) = current.as_mut() {
                    t.add(&l);
                }
                batch.push(lines::to_row(&l));
                if batch.len() >= BATCH {
                    tx.blocking_send(Msg::Lines(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(BATCH),
                    )))
                    .map_err(|_| ())?;
                }
            }
            Err(e) if e.fatal() => return tx.blocking_send(Msg::Fatal(e)).map_err(|_| ()),
            Err(e) => tx.blocking_send(Msg::LineError(e)).map_err(|_| ())?,
        }
    }
    if !batch.is_empty() {
        tx.blocking_send(Msg::Lines(batch)).map_err(|_| ())?;
    }
    if let Some(m) = close(&mut current) {
        tx.blocking_send(m).map_err(|_| ())?;
    }
    Ok(())
}

/// Spools `body` to a temporary file, returning it with the SHA-256 of its bytes and length.
async fn spool<S, E>(mut body: S) -> Result<(std::fs::File, String, u64), IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let file = tempfile::tempfile()?;
    let mut out = tokio::io::BufWriter::with_capacity(
        256 * 1024,
        tokio::fs::File::from_std(file.try_clone()?),
    );
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| IngestError::Body(e.to_string()))?;
        size = size.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        if size > MAX_STATEMENT_BYTES {
            return Err(IngestError::TooLarge);
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    let mut inner = out.into_inner();
    inner.flush().await?;
    drop(inner);
    Ok((file, hex::encode(hasher.finalize()), size))
}

pub async fn ingest<S, E>(db: &Db, up: Upload, body: S) -> Result<Ingested, IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (mut file, hash, size) = spool(body).await?;
    if size == 0 {
        return Err(IngestError::Empty);
    }
    if let Some(earlier) = rstore::statement_by_hash(db, up.client_id, &hash).await? {
        return Ok(Ingested::Duplicate {
            earlier,
            by: "content_hash",
        });
    }
    let id = Uuid::now_v7();
    let claimed = rstore::insert_statement(
        db,
        id,
        up.client_id,
        &hash,
        &up.format_name,
        up.rail.as_deref(),
        i64::try_from(size).unwrap_or(i64::MAX),
        &up.uploaded_by,
    )
    .await;
    match claimed {
        Ok(()) => {}
        Err(e) if e.is_unique_violation() => {
            // The same bytes are being (or were just) uploaded by a concurrent request.
            return match rstore::statement_by_hash(db, up.client_id, &hash).await? {
                Some(earlier) => Ok(Ingested::Duplicate {
                    earlier,
                    by: "content_hash",
                }),
                None => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    }
    match load(db, id, &up, &mut file).await {
        Ok(Some(earlier)) => {
            rstore::discard_statement(db, id).await?;
            Ok(Ingested::Duplicate {
                earlier,
                by: "statement_identity",
            })
        }
        Ok(None) => match rstore::statement(db, up.client_id, id).await? {
            Some(s) => Ok(Ingested::New(s)),
            None => Err(StoreError::Corrupt("statement vanished".into()).into()),
        },
        Err(e) => {
            rstore::discard_statement(db, id).await?;
            Err(e)
        }
    }
}

/// Reads the spooled file into the statement `id`. `Ok(Some(earlier))` when a header names a
/// statement the bank delivered before.
async fn load(
    db: &Db,
    id: Uuid,
    up: &Upload,
    file: &mut std::fs::File,
) -> Result<Option<StatementRow>, IngestError> {
    file.seek(SeekFrom::Start(0))?;
    let reader_file = file.try_clone()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(4);
    let format = up.format.clone();
    let parser = tokio::task::spawn_blocking(move || parse_file(reader_file, format, tx));

    let mut headers: Vec<Value> = Vec::new();
    let mut identities: Vec<String> = Vec::new();
    let mut errors: Vec<Value> = Vec::new();
    let mut error_count: i64 = 0;
    let mut line_count: i64 = 0;
    let mut first: Option<String> = None;
    let mut last: Option<String> = None;
    let mut open_tx: Option<crate::store::Tx> = None;
    let mut in_tx: usize = 0;
    let mut outcome: Result<Option<StatementRow>, IngestError> = Ok(None);

    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Header(h) => {
                if let Some(identity) = h.identity() {
                    if let Some(earlier) =
                        rstore::statement_by_identity(db, up.client_id, &identity).await?
                    {
                        outcome = match rstore::statement(db, up.client_id, earlier).await? {
                            Some(s) => Ok(Some(s)),
                            None => {
                                Err(StoreError::Corrupt("identity without statement".into()).into())
                            }
                        };
                        break;
                    }
                    identities.push(identity);
                }
                headers.push(header_json(&h));
            }
            Msg::Balance { section, check } => {
                if let Some(h) = headers
                    .iter_mut()
                    .find(|h| h["section"] == json!(section))
                    .and_then(Value::as_object_mut)
                {
                    h.insert("balance_check".into(), check);
                }
            }
            Msg::Lines(batch) => {
                for l in &batch {
                    if let Some(d) = &l.line_date {
                        if first.as_ref().is_none_or(|f| d < f) {
                            first = Some(d.clone());
                        }
                        if last.as_ref().is_none_or(|f| d > f) {
                            last = Some(d.clone());
                        }
                    }
                }
                let t = match open_tx.as_mut() {
                    Some(t) => t,
                    None => open_tx.insert(db.begin().await?),
                };
                rstore::insert_lines(t, up.client_id, id, &batch).await?;
                line_count = line_count.saturating_add(i64::try_from(batch.len()).unwrap_or(0));
                in_tx = in_tx.saturating_add(batch.len());
                if in_tx >= LINES_PER_COMMIT {
                    if let Some(t) = open_tx.take() {
                        t.commit().await.map_err(StoreError::from)?;
                    }
                    in_tx = 0;
                }
            }
            Msg::LineError(e) => {
                error_count = error_count.saturating_add(1);
                if errors.len() < ERRORS_KEPT {
                    errors.push(json!({
                        "entry": e.location.entry,
                        "line": e.location.source_line,
                        "byte_offset": e.location.byte_offset,
                        "field": e.field,
                        "reason": e.kind.to_string(),
                    }));
                }
            }
            Msg::Fatal(e) => {
                outcome = Err(IngestError::Unreadable(e));
                break;
            }
        }
    }
    // Stops the parser if we left early; it ends at its next send.
    drop(rx);
    let _ = parser.await;
    if let Some(t) = open_tx.take() {
        if outcome.as_ref().is_ok_and(Option::is_none) {
            t.commit().await.map_err(StoreError::from)?;
        } else {
            t.rollback().await.map_err(StoreError::from)?;
        }
    }
    if !matches!(outcome, Ok(None)) {
        return outcome;
    }
    if headers.is_empty() {
        return Err(IngestError::Empty);
    }
    let errors = Value::Array(errors);
    let headers = Value::Array(headers);
    let mut t = db.begin().await?;
    for identity in &identities {
        if let Err(e) = rstore::insert_identity(&mut t, up.client_id, identity, id).await {
            drop(t);
            if e.is_unique_violation() {
                if let Some(earlier) =
                    rstore::statement_by_identity(db, up.client_id, identity).await?
                {
                    if let Some(s) = rstore::statement(db, up.client_id, earlier).await? {
                        return Ok(Some(s));
                    }
                }
            }
            return Err(e.into());
        }
    }
    rstore::finish_statement(
        &mut t,
        id,
        &Loaded {
            line_count,
            error_count,
            errors: &errors,
            headers: &headers,
            period_from: first.as_deref(),
            period_to: last.as_deref(),
        },
    )
    .await?;
    t.commit().await.map_err(StoreError::from)?;
    if line_count >= ANALYSE_AFTER {
        rstore::analyse_lines(db).await?;
    }
    Ok(None)
}
