//! A payment: one instruction from the core, and what became of it.

use super::state::State;
use chrono::{DateTime, Utc};
use railgate_rail::{CollectionMode, Direction, Failure, Money, Party};
use serde::Serialize;
use uuid::Uuid;

/// A validated instruction, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub direction: Direction,
    pub mode: Option<CollectionMode>,
    pub reference: String,
    pub amount: Money,
    pub party: Party,
    pub narrative: Option<String>,
    pub rail_hint: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub payroll_id: Option<Uuid>,
}

impl NewPayment {
    /// The programme named in the metadata, used by routing and reports.
    pub fn programme(&self) -> Option<&str> {
        self.metadata.get("programme").and_then(|v| v.as_str())
    }
}

/// Checks a client's reference: 1–64 printable characters, no surrounding spaces.
pub fn valid_reference(r: &str) -> bool {
    !r.is_empty() && r.chars().count() <= 64 && r.trim() == r && !r.chars().any(char::is_control)
}

#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub from: Option<State>,
    pub to: State,
    pub cause: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Payment {
    pub id: Uuid,
    pub client_id: Uuid,
    pub direction: Direction,
    pub mode: Option<CollectionMode>,
    pub state: State,
    pub reference: String,
    pub amount: Money,
    pub party: Party,
    pub narrative: Option<String>,
    pub rail: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub payment_reference: Option<String>,
    pub failure: Option<Failure>,
    pub receipt: Option<String>,
    pub rail_reference: Option<String>,
    /// Set when an unknown outcome passed the rail's deadline: an operator must act.
    pub exception: Option<String>,
    /// Set when the rail said two contradicting things about a final payment.
    pub conflict: Option<String>,
    pub payroll_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub history: Vec<Transition>,
}

/// A control number for an expected collection: 12 digits, the last a Luhn check digit,
/// so a payer's typo is caught before the money goes astray.
pub fn control_number() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut digits: Vec<u8> = (0..11).map(|_| rng.gen_range(0..10u8)).collect();
    if digits.first() == Some(&0) {
        if let Some(d) = digits.first_mut() {
            *d = 9;
        }
    }
    digits.push(luhn_check_digit(&digits));
    digits
        .iter()
        .map(|d| char::from(b'0'.saturating_add(*d)))
        .collect()
}

fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let doubled = d.saturating_mul(2);
                if doubled > 9 {
                    doubled.saturating_sub(9)
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    let check = (10u32.saturating_sub(sum % 10)) % 10;
    u8::try_from(check).unwrap_or(0)
}

/// True when a control number's Luhn check digit is right.
pub fn valid_control_number(s: &str) -> bool {
    let digits: Option<Vec<u8>> = s
        .bytes()
        .map(|b| b.is_ascii_digit().then(|| b.saturating_sub(b'0')))
        .collect();
    match digits {
        Some(d) if d.len() == 12 => {
            let (body, check) = d.split_at(11);
            check.first() == Some(&luhn_check_digit(body))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_numbers_check() {
        for _ in 0..100 {
            let c = control_number();
            assert!(valid_control_number(&c), "{c}");
        }
        assert!(!valid_control_number("123456789012"));
        assert!(valid_control_number("799273987130") || !valid_control_number("799273987131"));
    }

    #[test]
    fn references() {
        assert!(valid_reference("BEN-2026-000123"));
        assert!(!valid_reference(""));
        assert!(!valid_reference(" x"));
        assert!(!valid_reference(&"x".repeat(65)));
    }
}
