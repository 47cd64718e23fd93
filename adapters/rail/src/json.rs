//! Reading JSON from outside: refuses a body whose meaning is ambiguous or whose text cannot
//! be stored.
//!
//! `serde_json` keeps the last of repeated keys (`{"amount": 1, "amount": 900000}` reads as
//! 900000) and has no switch to refuse them, and no crate we could find does only this, so
//! this module is a small `DeserializeSeed` that builds the same `Value` and stops at the
//! first repeated key, naming it by its JSON path (`payee.id_value`, `items[3].amount`). It
//! also refuses control characters (Unicode Cc): anywhere in a key, and in a string value
//! everything but tab, line feed and carriage return. A NUL cannot be stored in PostgreSQL
//! text, and the other control characters have no business in a payment.

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// Why a JSON body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonFault {
    /// Not JSON at all.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A key repeated in one object; `path` names the repeated member.
    #[error("{path}: the key appears more than once")]
    DuplicateKey { path: String },
    /// A control character in a key or a string value at `path`.
    #[error("{path}: contains a control character")]
    ControlCharacter { path: String },
}

impl JsonFault {
    /// The JSON path the fault is at (empty for a syntax error).
    pub fn path(&self) -> &str {
        match self {
            JsonFault::Syntax { .. } => "",
            JsonFault::DuplicateKey { path } | JsonFault::ControlCharacter { path } => path,
        }
    }
}

/// True when `s` holds a control character other than tab, line feed or carriage return:
/// the rule for free text everywhere the gateway reads it (JSON strings, CSV cells, XML text).
pub fn has_forbidden_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// True when `s` holds any control character: the rule for keys, names and identifiers.
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Parses `bytes` into a `Value`, refusing repeated keys and control characters.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonFault> {
    run(bytes, true)
}

/// Checks `bytes` as [`parse`] does without building the value (for large documents read
/// some other way afterwards).
pub fn check(bytes: &[u8]) -> Result<(), JsonFault> {
    run(bytes, false).map(|_| ())
}

fn run(bytes: &[u8], build: bool) -> Result<Value, JsonFault> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Seed {
        path: String::new(),
        build,
        found: &found,
    };
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(found.into_inner().unwrap_or_else(|| JsonFault::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })),
    }
}

struct Seed<'a> {
    path: String,
    build: bool,
    /// The structured fault, kept aside because serde's errors carry only text.
    found: &'a RefCell<Option<JsonFault>>,
}

impl Seed<'_> {
    fn fail<E: serde::de::Error>(&self, fault: JsonFault) -> E {
        let e = E::custom(&fault);
        *self.found.borrow_mut() = Some(fault);
        e
    }

    fn child(&self, path: String) -> Self {
        Seed {
            path,
            build: self.build,
            found: self.found,
        }
    }

    fn string<E: serde::de::Error>(&self, s: &str) -> Result<Value, E> {
        if has_forbidden_control(s) {
            return Err(self.fail(JsonFault::ControlCharacter {
                path: self.path.clone(),
            }));
        }
        Ok(if self.build {
            Value::String(s.to_owned())
        } else {
            Value::Null
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.string(v)
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.string(&v)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let mut i = 0usize;
        while let Some(v) = seq.next_element_seed(self.child(format!("{}[{i}]", self.path)))? {
            if self.build {
                out.push(v);
            }
            i = i.saturating_add(1);
        }
        Ok(if self.build {
            Value::Array(out)
        } else {
            Value::Null
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if has_control(&key) {
                return Err(self.fail(JsonFault::ControlCharacter {
                    path: if self.path.is_empty() {
                        "(key)".to_owned()
                    } else {
                        format!("{}.(key)", self.path)
                    },
                }));
            }
            if !seen.insert(key.clone()) {
                return Err(self.fail(JsonFault::DuplicateKey { path }));
            }
            let v = map.next_value_seed(self.child(path))?;
            if self.build {
                out.insert(key, v);
            }
        }
        Ok(if self.build {
            Value::Object(out)
        } else {
            Value::Null
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn same_value_as_serde_json() {
        let s = br#"{"a":[1,-2,3.5,true,null,"x\ty"],"b":{"c":"d"},"e":18446744073709551615}"#;
        let want: Value = serde_json::from_slice(s).unwrap();
        assert_eq!(parse(s).unwrap(), want);
        assert_eq!(check(s), Ok(()));
    }

    #[test]
    fn repeated_keys_are_named_by_path() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"amount":{"value":"1"},"amount":{"value":"9"}}"#,
                "amount",
            ),
            (
                br#"{"payee":{"id_value":"1","id_value":"2"}}"#,
                "payee.id_value",
            ),
            (
                br#"{"items":[{},{"reference":"a","reference":"b"}]}"#,
                "items[1].reference",
            ),
            (br#"[{"x":1,"y":2,"x":3}]"#, "[0].x"),
        ];
        for (body, path) in cases {
            assert_eq!(
                parse(body),
                Err(JsonFault::DuplicateKey { path: path.into() })
            );
            assert_eq!(
                check(body),
                Err(JsonFault::DuplicateKey { path: path.into() })
            );
        }
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            parse(br#"{"description":"a\u0000b"}"#),
            Err(JsonFault::ControlCharacter {
                path: "description".into()
            })
        );
        assert_eq!(
            parse(br#"{"a":{"b\u0001":1}}"#),
            Err(JsonFault::ControlCharacter {
                path: "a.(key)".into()
            })
        );
        assert!(parse(br#"{"n":"line\nnext\r\tend"}"#).is_ok());
        assert!(parse("{\"n\":\"\u{7f}\"}".as_bytes()).is_err());
    }

    #[test]
    fn syntax_errors_stay_syntax_errors() {
        assert!(matches!(parse(b"{\"a\":"), Err(JsonFault::Syntax { .. })));
        assert!(matches!(parse(b"{} x"), Err(JsonFault::Syntax { .. })));
    }
}
