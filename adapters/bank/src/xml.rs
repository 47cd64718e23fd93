//! Small helpers over quick-xml: a writer that closes what it opens, and a streaming walk
//! that hands each element's path, attributes and text to the caller.
//!
//! The walk is streaming on purpose: status reports and statements for a payroll can hold
//! tens of thousands of entries, and nothing of them needs to sit in memory at once.

use crate::BankError;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

pub struct XmlOut {
    w: Writer<Vec<u8>>,
}

impl XmlOut {
    pub fn new() -> Result<Self, BankError> {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        Ok(XmlOut { w })
    }

    pub fn open(&mut self, name: &str) -> Result<(), BankError> {
        self.w.write_event(Event::Start(BytesStart::new(name)))?;
        Ok(())
    }

    pub fn open_with(&mut self, name: &str, attr: (&str, &str)) -> Result<(), BankError> {
        self.w
            .write_event(Event::Start(BytesStart::new(name).with_attributes([attr])))?;
        Ok(())
    }

    pub fn close(&mut self, name: &str) -> Result<(), BankError> {
        self.w.write_event(Event::End(BytesEnd::new(name)))?;
        Ok(())
    }

    /// `<name>text</name>`, the text escaped.
    pub fn leaf(&mut self, name: &str, text: &str) -> Result<(), BankError> {
        self.open(name)?;
        self.w.write_event(Event::Text(BytesText::new(text)))?;
        self.close(name)
    }

    /// `<name k="v">text</name>`.
    pub fn leaf_with(
        &mut self,
        name: &str,
        attr: (&str, &str),
        text: &str,
    ) -> Result<(), BankError> {
        self.open_with(name, attr)?;
        self.w.write_event(Event::Text(BytesText::new(text)))?;
        self.close(name)
    }

    /// Opens each name in turn, writes the text in the innermost, closes them all.
    pub fn nested(&mut self, names: &[&str], text: &str) -> Result<(), BankError> {
        let Some((last, outer)) = names.split_last() else {
            return Ok(());
        };
        for n in outer {
            self.open(n)?;
        }
        self.leaf(last, text)?;
        for n in outer.iter().rev() {
            self.close(n)?;
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<u8> {
        let mut bytes = self.w.into_inner();
        bytes.push(b'\n');
        bytes
    }
}

/// One step of a streaming walk. `path` holds local names (namespace prefixes dropped) from
/// the root element down to the current one.
pub enum Node<'p> {
    Open {
        path: &'p [String],
        attrs: Vec<(String, String)>,
    },
    Text {
        path: &'p [String],
        text: String,
    },
    Close {
        path: &'p [String],
    },
}

/// Walks `xml`, calling `f` for every element start, text and end.
/// A bank file whose text holds a control character (other than tab and line breaks) is
/// refused whole: no bank sends one, and it could not be stored as text.
fn no_control(path: &[String], text: &str) -> Result<(), BankError> {
    if railgate_rail::json::has_forbidden_control(text) {
        return Err(BankError::Malformed(format!(
            "{}: contains a control character",
            path.join("/")
        )));
    }
    Ok(())
}

pub fn walk(
    xml: &[u8],
    mut f: impl FnMut(Node<'_>) -> Result<(), BankError>,
) -> Result<(), BankError> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) => {
                path.push(local(&e)?);
                f(Node::Open {
                    path: &path,
                    attrs: attributes(&e)?,
                })?;
            }
            Event::Empty(e) => {
                path.push(local(&e)?);
                f(Node::Open {
                    path: &path,
                    attrs: attributes(&e)?,
                })?;
                f(Node::Close { path: &path })?;
                path.pop();
            }
            Event::Text(t) => {
                let text = t
                    .unescape()
                    .map_err(|e| BankError::Malformed(e.to_string()))?;
                let text = text.into_owned();
                no_control(&path, &text)?;
                f(Node::Text { path: &path, text })?;
            }
            Event::CData(t) => {
                let text = String::from_utf8(t.into_inner().into_owned())
                    .map_err(|e| BankError::Malformed(e.to_string()))?;
                no_control(&path, &text)?;
                f(Node::Text { path: &path, text })?;
            }
            Event::End(_) => {
                f(Node::Close { path: &path })?;
                path.pop();
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(BankError::Malformed(
            "document ends inside an element".into(),
        ));
    }
    Ok(())
}

fn local(e: &BytesStart<'_>) -> Result<String, BankError> {
    String::from_utf8(e.local_name().as_ref().to_vec())
        .map_err(|e| BankError::Malformed(e.to_string()))
}

fn attributes(e: &BytesStart<'_>) -> Result<Vec<(String, String)>, BankError> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| BankError::Malformed(e.to_string()))?;
        let key = String::from_utf8(a.key.as_ref().to_vec())
            .map_err(|e| BankError::Malformed(e.to_string()))?;
        let value = a.unescape_value()?.into_owned();
        out.push((key, value));
    }
    Ok(out)
}

/// True when `path` ends with the given local names.
pub fn ends_with(path: &[String], tail: &[&str]) -> bool {
    path.len() >= tail.len()
        && path
            .iter()
            .rev()
            .zip(tail.iter().rev())
            .all(|(a, b)| a == b)
}

/// The namespace declared on the root element (`xmlns`), which names the message and version.
pub fn root_namespace(xml: &[u8]) -> Result<Option<String>, BankError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) | Event::Empty(e) => {
                return Ok(attributes(&e)?
                    .into_iter()
                    .find(|(k, _)| k == "xmlns")
                    .map(|(_, v)| v));
            }
            Event::Eof => return Ok(None),
            _ => {}
        }
        buf.clear();
    }
}
