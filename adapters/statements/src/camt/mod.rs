//! Streaming reader for camt.053 (statement) and camt.054 (notification), versions .001.02 and
//! .001.08 (other .001.NN versions with the same shape are read too).
//!
//! Built on quick-xml's pull reader rather than serde so that a statement of a million entries
//! is read one `Ntry` at a time: memory holds the current entry, never the file.

mod entry;
mod tag;

use crate::error::{ParseError, ParseErrorKind};
use crate::model::{Location, SourceFormat, StatementItem};
use entry::{set, BalanceBuilder, EntryBuilder, HeaderBuilder, RawAmount, TxBuilder};
use quick_xml::events::{BytesStart, Event};
use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use tag::{path_string, Tag};

/// Counts the newlines the XML reader consumes, so errors and lines can name a text line.
struct LineCounter<R> {
    inner: R,
    newlines: u64,
}

impl<R: BufRead> Read for LineCounter<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        let counted = out
            .get(..n)
            .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count());
        self.newlines = self
            .newlines
            .saturating_add(u64::try_from(counted).unwrap_or(0));
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineCounter<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let counted = buf
                .get(..amt)
                .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count());
            self.newlines = self
                .newlines
                .saturating_add(u64::try_from(counted).unwrap_or(0));
        }
        self.inner.consume(amt);
    }
}

/// Reads a camt.053 or camt.054 document and yields a [`StatementItem::Header`] for each
/// `Stmt`/`Ntfctn`, followed by one [`StatementItem::Line`] per `Ntry`.
///
/// An entry that cannot be understood yields an `Err` and reading goes on with the next entry;
/// a broken document yields one fatal `Err` ([`ParseError::fatal`]) and then `None`.
pub struct CamtReader<R: BufRead> {
    xml: quick_xml::Reader<LineCounter<R>>,
    buf: Vec<u8>,
    path: Vec<Tag>,
    text: String,
    ccy: Option<String>,
    format: Option<SourceFormat>,
    message_id: Option<String>,
    section: u32,
    /// Index in `path` of the `Stmt`/`Ntfctn` element while inside one.
    section_depth: Option<usize>,
    header: Option<HeaderBuilder>,
    header_sent: bool,
    entry_depth: Option<usize>,
    entry: Option<EntryBuilder>,
    entries: u64,
    line_no: u64,
    queue: VecDeque<Result<StatementItem, ParseError>>,
    done: bool,
}

impl<R: BufRead> CamtReader<R> {
    pub fn new(reader: R) -> Self {
        let mut xml = quick_xml::Reader::from_reader(LineCounter {
            inner: reader,
            newlines: 0,
        });
        let config = xml.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        CamtReader {
            xml,
            buf: Vec::with_capacity(4096),
            path: Vec::with_capacity(16),
            text: String::new(),
            ccy: None,
            format: None,
            message_id: None,
            section: 0,
            section_depth: None,
            header: None,
            header_sent: false,
            entry_depth: None,
            entry: None,
            entries: 0,
            line_no: 0,
            queue: VecDeque::new(),
            done: false,
        }
    }

    /// The format found in the root element's namespace, once the root has been read.
    pub fn source_format(&self) -> Option<&SourceFormat> {
        self.format.as_ref()
    }

    /// Gives back the underlying reader (to finish a [`crate::HashingReader`], for instance).
    pub fn into_inner(self) -> R {
        self.xml.into_inner().inner
    }

    fn here(&self) -> Location {
        Location {
            section: self.section,
            entry: self.entries,
            source_line: self.xml.get_ref().newlines.saturating_add(1),
            byte_offset: self.xml.buffer_position(),
        }
    }

    fn fatal(&mut self, field: &str, kind: ParseErrorKind) {
        let e = ParseError::new(self.here(), field, kind);
        self.queue.push_back(Err(e));
        self.done = true;
    }

    /// Element text; a control character in it (other than tab and line breaks, which XML
    /// allows) refuses the file, wherever it came from: raw, CDATA or a character reference.
    fn push_text(&mut self, s: &str) {
        if railgate_rail::json::has_forbidden_control(s) {
            self.fatal(&path_string(&self.path), ParseErrorKind::ControlCharacter);
        } else {
            self.text.push_str(s);
        }
    }

    /// Reads events until at least one item is queued or the document ends.
    fn advance(&mut self) {
        while self.queue.is_empty() && !self.done {
            self.buf.clear();
            let event = match self.xml.read_event_into(&mut self.buf) {
                Ok(ev) => ev.into_owned(),
                Err(e) => {
                    self.fatal(&path_string(&self.path), ParseErrorKind::Xml(e.to_string()));
                    return;
                }
            };
            match event {
                Event::Start(e) => self.start(&e, false),
                Event::Empty(e) => {
                    self.start(&e, true);
                    self.end();
                }
                Event::End(_) => self.end(),
                Event::Text(t) => match t.decode() {
                    Ok(s) => self.push_text(&s),
                    Err(e) => {
                        self.fatal(&path_string(&self.path), ParseErrorKind::Xml(e.to_string()))
                    }
                },
                Event::CData(t) => match t.decode() {
                    Ok(s) => self.push_text(&s),
                    Err(e) => {
                        self.fatal(&path_string(&self.path), ParseErrorKind::Xml(e.to_string()))
                    }
                },
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c.to_string()),
                        Ok(None) => r
                            .decode()
                            .ok()
                            .and_then(|name| quick_xml::escape::resolve_predefined_entity(&name))
                            .map(str::to_owned),
                        Err(_) => None,
                    };
                    match resolved {
                        Some(s) => self.push_text(&s),
                        None => self.fatal(
                            &path_string(&self.path),
                            ParseErrorKind::Xml("unknown entity reference".into()),
                        ),
                    }
                }
                Event::Eof => {
                    if self.format.is_none() {
                        self.fatal(
                            "Document",
                            ParseErrorKind::UnsupportedFormat("no camt document found".into()),
                        );
                    } else if !self.path.is_empty() {
                        self.fatal(
                            &path_string(&self.path),
                            ParseErrorKind::Xml("unexpected end of file".into()),
                        );
                    }
                    self.done = true;
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, _empty: bool) {
        let tag = Tag::from_local_name(e.local_name().as_ref());
        let depth = self.path.len();
        self.text.clear();
        self.ccy = None;
        for attr in e.attributes().flatten() {
            let key = attr.key.local_name();
            if key.as_ref() == b"Ccy" {
                self.ccy = attr
                    .unescape_value()
                    .ok()
                    .map(|v| v.into_owned())
                    .filter(|v| !railgate_rail::json::has_control(v));
            } else if depth == 0 && self.format.is_none() {
                if let Ok(v) = attr.unescape_value() {
                    self.format = format_from_namespace(&v);
                }
            }
        }
        self.path.push(tag);
        match (depth, tag) {
            (0, Tag::Document) => {}
            (0, _) => {
                self.fatal(
                    "Document",
                    ParseErrorKind::UnsupportedFormat("the root element is not Document".into()),
                );
            }
            (1, Tag::BkToCstmrStmt) | (1, Tag::BkToCstmrDbtCdtNtfctn) => {
                let expected = match self.format {
                    Some(SourceFormat::Camt053 { .. }) => Tag::BkToCstmrStmt,
                    Some(SourceFormat::Camt054 { .. }) => Tag::BkToCstmrDbtCdtNtfctn,
                    _ => Tag::Other,
                };
                if self.format.is_none() {
                    self.fatal(
                        "Document/@xmlns",
                        ParseErrorKind::UnsupportedFormat(
                            "no camt.053/camt.054 namespace on Document".into(),
                        ),
                    );
                } else if expected != tag {
                    self.fatal(
                        tag.as_str(),
                        ParseErrorKind::UnsupportedFormat(
                            "the message does not match its namespace".into(),
                        ),
                    );
                }
            }
            (1, _) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref())
                    .chars()
                    .take(40)
                    .collect();
                self.fatal("Document", ParseErrorKind::UnsupportedFormat(name));
            }
            (2, Tag::Stmt) | (2, Tag::Ntfctn) => {
                self.section = self.section.saturating_add(1);
                self.section_depth = Some(depth);
                self.header = Some(HeaderBuilder::new(self.section, self.here()));
                self.header_sent = false;
            }
            _ => {}
        }
        if let Some(sd) = self.section_depth {
            if self.entry_depth.is_none() && depth == sd.saturating_add(1) {
                match tag {
                    Tag::Ntry => {
                        self.send_header();
                        self.entries = self.entries.saturating_add(1);
                        let mut loc = self.here();
                        // The position is past the start tag; point at its '<' instead.
                        let tag_len = u64::try_from(e.len()).unwrap_or(0).saturating_add(2);
                        loc.byte_offset = loc.byte_offset.saturating_sub(tag_len);
                        self.entry_depth = Some(depth);
                        self.entry = Some(EntryBuilder::new(loc));
                    }
                    Tag::Bal => {
                        if let Some(h) = self.header.as_mut() {
                            h.balance = Some(BalanceBuilder::default());
                        }
                    }
                    _ => {}
                }
            }
        }
        if let (Some(ed), Some(entry)) = (self.entry_depth, self.entry.as_mut()) {
            let rel = self.path.get(ed.saturating_add(1)..).unwrap_or(&[]);
            if let [Tag::NtryDtls, Tag::TxDtls] = rel {
                entry.txs.push(TxBuilder::default());
            }
        }
    }

    fn end(&mut self) {
        let text = std::mem::take(&mut self.text);
        let value = text.trim();
        let ccy = self.ccy.take();
        let depth = self.path.len().saturating_sub(1);
        let tag = self.path.last().copied().unwrap_or(Tag::Other);

        if let [Tag::Document, _, Tag::GrpHdr, Tag::MsgId] = self.path.as_slice() {
            set(&mut self.message_id, value);
        }

        if let (Some(ed), Some(entry)) = (self.entry_depth, self.entry.as_mut()) {
            if depth == ed {
                // </Ntry>
                self.entry_depth = None;
                if let Some(entry) = self.entry.take() {
                    self.line_no = self.line_no.saturating_add(1);
                    let item = entry
                        .finish(self.line_no)
                        .map(|l| StatementItem::Line(Box::new(l)));
                    self.queue.push_back(item);
                }
            } else {
                let rel = self.path.get(ed.saturating_add(1)..).unwrap_or(&[]);
                if ccy.is_some() || matches!(tag, Tag::Amt | Tag::TtlAmt | Tag::TtlChrgsAndTaxAmt) {
                    entry.amount(
                        rel,
                        RawAmount {
                            text: value.to_owned(),
                            ccy,
                        },
                    );
                } else {
                    entry.text(rel, value);
                }
            }
        } else if let (Some(sd), Some(h)) = (self.section_depth, self.header.as_mut()) {
            if depth == sd {
                // </Stmt>: a statement without entries still has a header to report.
                self.send_header();
                self.section_depth = None;
                self.header = None;
            } else {
                let rel = self.path.get(sd.saturating_add(1)..).unwrap_or(&[]);
                use Tag::*;
                match rel {
                    [Id] => set(&mut h.statement_id, value),
                    [ElctrncSeqNb] => set(&mut h.electronic_sequence, value),
                    [LglSeqNb] => set(&mut h.legal_sequence, value),
                    [CreDtTm] => set(&mut h.created_at, value),
                    [FrToDt, FrDtTm] => set(&mut h.from, value),
                    [FrToDt, ToDtTm] => set(&mut h.to, value),
                    [CpyDplctInd] => set(&mut h.copy_duplicate, value),
                    [Acct, Id, IBAN] | [Acct, Id, Othr, Id] => set(&mut h.account, value),
                    [Acct, Ccy] => set(&mut h.currency, value),
                    [Bal] => h.close_balance(),
                    [Bal, rest @ ..] => {
                        if let Some(b) = h.balance.as_mut() {
                            match rest {
                                [Tp, CdOrPrtry, Cd] => set(&mut b.code, value),
                                [Amt] => {
                                    b.amount = RawAmount {
                                        text: value.to_owned(),
                                        ccy,
                                    }
                                }
                                [CdtDbtInd] => set(&mut b.indicator, value),
                                [Dt, Dt] | [Dt, DtTm] => set(&mut b.date, value),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        self.path.pop();
    }

    fn send_header(&mut self) {
        if self.header_sent {
            return;
        }
        let (Some(h), Some(format)) = (self.header.as_ref(), self.format.as_ref()) else {
            return;
        };
        self.header_sent = true;
        let item = h
            .finish(format, &self.message_id)
            .map(|h| StatementItem::Header(Box::new(h)));
        self.queue.push_back(item);
    }
}

impl<R: BufRead> Iterator for CamtReader<R> {
    type Item = Result<StatementItem, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.advance();
        self.queue.pop_front()
    }
}

/// `urn:iso:std:iso:20022:tech:xsd:camt.053.001.02` → camt.053 version 2.
fn format_from_namespace(ns: &str) -> Option<SourceFormat> {
    let rest = ns.rsplit(':').next()?;
    let parts: Vec<&str> = rest.split('.').collect();
    let ["camt", variant, "001", version] = parts.as_slice() else {
        return None;
    };
    let version: u8 = version.parse().ok()?;
    match *variant {
        "053" => Some(SourceFormat::Camt053 { version }),
        "054" => Some(SourceFormat::Camt054 { version }),
        _ => None,
    }
}
