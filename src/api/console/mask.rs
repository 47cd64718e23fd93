//! What the console shows of bodies and identifiers: secrets hidden, personal data masked.
//!
//! A rail's request or callback body may hold credentials (a password, a security token, a
//! signature) and personal data (a phone number, a name, an account). The console shows
//! bodies so an operator can see what was said, not who was paid: secrets become `***`,
//! personal values keep their first and last two characters (`railgate_rail::mask`), and any
//! long run of digits elsewhere (a number in free text) is masked the same way. JSON is
//! walked by key; XML by element name; anything else by its digit runs only.

use railgate_rail::{mask, REDACTED};
use serde_json::Value;

/// The most of a body shown, in characters; the rest is cut with a note.
pub const MAX_SHOWN: usize = 8_000;

/// Digits in a row from which a number is taken for an identifier (the shortest MSISDN).
const DIGIT_RUN: usize = 8;

/// Key (or element) names whose value is a secret, compared lowercase without `_`/`-`.
const SECRET: [&str; 14] = [
    "password",
    "passwd",
    "secret",
    "token",
    "accesstoken",
    "refreshtoken",
    "authorization",
    "securitycredential",
    "apikey",
    "pin",
    "signature",
    "clientsecret",
    "otp",
    "cookie",
];

/// Key (or element) names whose value is personal data.
const PERSONAL: [&str; 30] = [
    "msisdn",
    "phone",
    "phonenumber",
    "partyb",
    "partya",
    "partyidentifier",
    "idvalue",
    "identifier",
    "name",
    "firstname",
    "lastname",
    "middlename",
    "fullname",
    "displayname",
    "partyname",
    "nm",
    "account",
    "accountnumber",
    "iban",
    "bban",
    "email",
    "emailadr",
    "address",
    "adrline",
    "dateofbirth",
    "birthdt",
    "mobnb",
    "phnenb",
    "receivermsisdn",
    "debitparty",
];

fn norm(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_secret(key: &str) -> bool {
    let k = norm(key);
    SECRET.iter().any(|s| k == *s || k.ends_with(s))
}

fn is_personal(key: &str) -> bool {
    PERSONAL.contains(&norm(key).as_str())
}

/// Masks every word of free text that is a number of [`DIGIT_RUN`] digits or more (a phone,
/// an account). A word is a run of letters and digits, so ids that mix them (a UUID, a rail's
/// reference, a timestamp) are left whole.
pub fn digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() >= DIGIT_RUN && word.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&mask(word));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn json_value(key: Option<&str>, v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map.iter_mut() {
                json_value(Some(k), inner);
            }
        }
        Value::Array(items) => {
            for inner in items {
                json_value(key, inner);
            }
        }
        Value::String(s) => {
            *s = match key {
                Some(k) if is_secret(k) => REDACTED.to_owned(),
                Some(k) if is_personal(k) => mask(s),
                _ => digit_runs(s),
            };
        }
        Value::Number(n) => {
            if key.is_some_and(|k| is_secret(k) || is_personal(k)) {
                *v = Value::String(REDACTED.to_owned());
            } else if n.to_string().len() >= DIGIT_RUN && n.is_u64() {
                *v = Value::String(mask(&n.to_string()));
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// XML: the text of secret and personal elements masked, digit runs elsewhere.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // The element whose text follows, when it is one to hide.
    let mut hide: Option<bool> = None;
    while let Some(open) = rest.find('<') {
        let (before, tag_on) = rest.split_at(open);
        out.push_str(&match hide {
            Some(true) => REDACTED.to_owned(),
            Some(false) if !before.trim().is_empty() => mask(before),
            _ => digit_runs(before),
        });
        let close = tag_on
            .find('>')
            .map_or(tag_on.len(), |i| i.saturating_add(1));
        let (tag, after) = tag_on.split_at(close);
        out.push_str(tag);
        let name = tag
            .trim_start_matches('<')
            .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .next()
            .unwrap_or("");
        let local = name.rsplit(':').next().unwrap_or(name);
        hide = if tag.starts_with("</") || tag.ends_with("/>") {
            None
        } else if is_secret(local) {
            Some(true)
        } else if is_personal(local) {
            Some(false)
        } else {
            None
        };
        rest = after;
    }
    out.push_str(&digit_runs(rest));
    out
}

fn cut(s: String) -> String {
    if s.chars().count() <= MAX_SHOWN {
        return s;
    }
    let mut short: String = s.chars().take(MAX_SHOWN).collect();
    short.push_str("\n… (cut)");
    short
}

/// A stored body as the console shows it.
pub fn body(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(mut v) = serde_json::from_str::<Value>(&text) {
        json_value(None, &mut v);
        return cut(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    if text.trim_start().starts_with('<') {
        return cut(xml(&text));
    }
    cut(digit_runs(&text))
}

/// A payee's identifier as lists show it.
pub fn payee(value: &str) -> String {
    mask(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_secrets_and_people_are_hidden() {
        let b = br#"{"SecurityCredential":"s3cr3t","PartyB":"254712345678","Amount":1500,
            "Remarks":"pay 254712345678 now","payee":{"name":"Jane Doe","id_value":"255700000001"}}"#;
        let shown = body(b);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("254712345678"), "{shown}");
        assert!(!shown.contains("255700000001"), "{shown}");
        assert!(!shown.contains("Jane Doe"), "{shown}");
        assert!(shown.contains("1500"), "{shown}");
        assert!(shown.contains("25********78"), "{shown}");
    }

    #[test]
    fn xml_elements_are_hidden_by_name() {
        let b = b"<Doc><Nm>Jane Doe</Nm><IBAN>TZ1234567890</IBAN><Amt>15.00</Amt><Pwd><password>x1</password></Pwd></Doc>";
        let shown = body(b);
        assert!(!shown.contains("Jane Doe"), "{shown}");
        assert!(!shown.contains("1234567890"), "{shown}");
        assert!(!shown.contains("x1"), "{shown}");
        assert!(shown.contains("<Amt>15.00</Amt>"), "{shown}");
    }

    #[test]
    fn free_text_digit_runs_are_masked() {
        assert_eq!(
            digit_runs("call 255700000001 at 10"),
            "call 25********01 at 10"
        );
        let id = "43db3fc6-1c67-43bf-873a-98e49634045a at 2026-12-02T13:35:24.342154Z";
        assert_eq!(digit_runs(id), id);
    }
}
