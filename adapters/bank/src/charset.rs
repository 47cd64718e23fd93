//! The character set banks accept in free text (names, remittance information).
//!
//! SEPA banks take only `a-z A-Z 0-9 / - ? : ( ) . , ' +` and space although the XML is UTF-8
//! (EPC character set). Other text is transliterated (`deunicode` knows far more scripts than a
//! hand table would), a few symbols get the usual replacements, the rest is dropped, and the
//! result is cut to the field's length. Identifiers are never transliterated or cut: an id
//! that does not fit is refused (see `ids::is_strict_id`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Charset {
    /// The EPC set used by SEPA banks.
    #[default]
    Sepa,
    /// Any printable Unicode (XML-escaped), for banks that accept it.
    Unicode,
}

/// Makes `text` acceptable to the bank and at most `max` characters long. Never empty: an
/// empty result becomes `fallback`.
pub fn clean(text: &str, charset: Charset, max: usize, fallback: &str) -> String {
    let cleaned: String = match charset {
        Charset::Sepa => sepa(text),
        Charset::Unicode => text.chars().filter(|c| !c.is_control()).collect(),
    };
    let collapsed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = collapsed.chars().take(max).collect();
    let cut = cut.trim_end().to_owned();
    if cut.is_empty() {
        fallback.chars().take(max).collect()
    } else {
        cut
    }
}

fn sepa(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push('+'),
            '@' => out.push_str("(at)"),
            '_' => out.push('-'),
            '€' => out.push('E'),
            c if allowed(c) => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for t in deunicode::deunicode(c.encode_utf8(&mut buf)).chars() {
                    if allowed(t) {
                        out.push(t);
                    }
                }
            }
        }
    }
    out
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || " /-?:().,'+".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transliterates_and_cuts() {
        assert_eq!(
            clean("Zoë Ñandú & Söhne_GmbH", Charset::Sepa, 70, "x"),
            "Zoe Nandu + Sohne-GmbH"
        );
        assert_eq!(clean("a@b.c #1", Charset::Sepa, 70, "x"), "a(at)b.c 1");
        assert_eq!(clean("abcdef", Charset::Sepa, 3, "x"), "abc");
        assert_eq!(
            clean("###", Charset::Sepa, 70, "Beneficiary"),
            "Beneficiary"
        );
        assert_eq!(clean("Zoë", Charset::Unicode, 70, "x"), "Zoë");
    }
}
