//! The party on the other side of a payment: how the rail identifies them, validated at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PartyIdType {
    Msisdn,
    AccountId,
    Iban,
    Business,
    Alias,
    WalletId,
    PersonalId,
}

impl PartyIdType {
    pub const ALL: [PartyIdType; 7] = [
        PartyIdType::Msisdn,
        PartyIdType::AccountId,
        PartyIdType::Iban,
        PartyIdType::Business,
        PartyIdType::Alias,
        PartyIdType::WalletId,
        PartyIdType::PersonalId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PartyIdType::Msisdn => "MSISDN",
            PartyIdType::AccountId => "ACCOUNT_ID",
            PartyIdType::Iban => "IBAN",
            PartyIdType::Business => "BUSINESS",
            PartyIdType::Alias => "ALIAS",
            PartyIdType::WalletId => "WALLET_ID",
            PartyIdType::PersonalId => "PERSONAL_ID",
        }
    }

    pub fn parse(s: &str) -> Option<PartyIdType> {
        PartyIdType::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for PartyIdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartyError {
    #[error("an MSISDN is 8 to 15 digits in E.164 form, country code first (e.g. 255712345600)")]
    Msisdn,
    #[error("the IBAN is malformed or its check digits are wrong")]
    Iban,
    #[error("the identifier must be 1 to 128 printable characters")]
    Identifier,
    #[error("the name must be at most 140 printable characters")]
    Name,
}

/// A validated party. Its identifier and name are personal data: `Debug` masks them.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Party {
    id_type: PartyIdType,
    id_value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl Party {
    /// Validates and normalises: an MSISDN loses a leading '+', an IBAN its spaces and case.
    pub fn new(id_type: PartyIdType, id_value: &str, name: Option<&str>) -> Result<Party, PartyError> {
        let id_value = match id_type {
            PartyIdType::Msisdn => normalise_msisdn(id_value)?,
            PartyIdType::Iban => normalise_iban(id_value)?,
            _ => {
                let v = id_value.trim();
                if v.is_empty() || v.chars().count() > 128 || v.chars().any(char::is_control) {
                    return Err(PartyError::Identifier);
                }
                v.to_owned()
            }
        };
        let name = match name.map(str::trim) {
            None | Some("") => None,
            Some(n) if n.chars().count() > 140 || n.chars().any(char::is_control) => {
                return Err(PartyError::Name)
            }
            Some(n) => Some(n.to_owned()),
        };
        Ok(Party {
            id_type,
            id_value,
            name,
        })
    }

    pub fn id_type(&self) -> PartyIdType {
        self.id_type
    }

    pub fn id_value(&self) -> &str {
        &self.id_value
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The identifier with all but its first and last two characters hidden, for logs.
    pub fn masked(&self) -> String {
        mask(&self.id_value)
    }

    /// The last two digits of the identifier: the sandbox rails pick their scenario by them.
    pub fn scenario_digits(&self) -> u8 {
        let digits: Vec<u8> = self
            .id_value
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b.saturating_sub(b'0'))
            .collect();
        match digits.as_slice() {
            [.., tens, units] => tens.saturating_mul(10).saturating_add(*units),
            [units] => *units,
            [] => 0,
        }
    }
}

impl fmt::Debug for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Party")
            .field("id_type", &self.id_type)
            .field("id_value", &self.masked())
            .field("name", &self.name.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Hides personal data for logs: keeps the first and last two characters of long values.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars.iter().take(2).collect();
    let tail: String = chars.iter().skip(chars.len().saturating_sub(2)).collect();
    format!("{head}{}{tail}", "*".repeat(chars.len().saturating_sub(4)))
}

fn normalise_msisdn(v: &str) -> Result<String, PartyError> {
    let digits = v.trim().strip_prefix('+').unwrap_or(v.trim());
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(digits.to_owned())
    } else {
        Err(PartyError::Msisdn)
    }
}

fn normalise_iban(v: &str) -> Result<String, PartyError> {
    let iban: String = v.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    let bytes = iban.as_bytes();
    let shape_ok = (15..=34).contains(&bytes.len())
        && bytes.iter().take(2).all(u8::is_ascii_uppercase)
        && bytes.iter().skip(2).take(2).all(u8::is_ascii_digit)
        && bytes.iter().all(u8::is_ascii_alphanumeric);
    if !shape_ok {
        return Err(PartyError::Iban);
    }
    // ISO 13616: move the first four characters to the end, letters become 10..35, mod 97 == 1.
    let rearranged = bytes.iter().skip(4).chain(bytes.iter().take(4));
    let mut rem: u32 = 0;
    for &b in rearranged {
        let val = if b.is_ascii_digit() {
            u32::from(b.saturating_sub(b'0'))
        } else {
            u32::from(b.saturating_sub(b'A')).saturating_add(10)
        };
        let scale = if val >= 10 { 100 } else { 10 };
        rem = rem.saturating_mul(scale).saturating_add(val) % 97;
    }
    if rem == 1 {
        Ok(iban)
    } else {
        Err(PartyError::Iban)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msisdn() {
        assert!(Party::new(PartyIdType::Msisdn, "255712345600", None).is_ok());
        assert_eq!(
            Party::new(PartyIdType::Msisdn, "+255712345600", None).map(|p| p.id_value().to_owned()),
            Ok("255712345600".to_owned())
        );
        for bad in ["0712345600", "1234567", "1234567890123456", "2557a2345600", ""] {
            assert_eq!(Party::new(PartyIdType::Msisdn, bad, None), Err(PartyError::Msisdn), "{bad}");
        }
    }

    #[test]
    fn iban_checksum() {
        assert!(Party::new(PartyIdType::Iban, "GB82 WEST 1234 5698 7654 32", None).is_ok());
        assert!(Party::new(PartyIdType::Iban, "DE89370400440532013000", None).is_ok());
        assert_eq!(Party::new(PartyIdType::Iban, "GB82WEST12345698765433", None), Err(PartyError::Iban));
        assert_eq!(Party::new(PartyIdType::Iban, "XX", None), Err(PartyError::Iban));
    }

    #[test]
    fn masks_and_scenarios() {
        let p = Party::new(PartyIdType::Msisdn, "255712345607", Some("Asha Juma")).unwrap_or_else(|_| unreachable!());
        assert_eq!(p.masked(), "25********07");
        assert_eq!(p.scenario_digits(), 7);
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("255712345607") && !dbg.contains("Asha"));
    }
}
