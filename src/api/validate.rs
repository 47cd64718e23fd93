//! Turning a JSON payment request into a validated `NewPayment`, collecting every field error.

use super::problem::{FieldError, Problem};
use crate::domain::{
    valid_reference, CollectionMode, Currency, Direction, Money, NewPayment, Party, PartyIdType,
};
use serde_json::{Map, Value};

struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.0.push(Problem::field(field, reason));
    }
}

fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    max: usize,
    e: &mut Errors,
) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max && !s.chars().any(char::is_control) => {
            Some(s.clone())
        }
        Some(Value::String(_)) => {
            e.add(field, format!("must be at most {max} printable characters"));
            None
        }
        Some(_) => {
            e.add(field, "must be a string");
            None
        }
    }
}

fn check_unknown(obj: &Map<String, Value>, allowed: &[&str], prefix: &str, e: &mut Errors) {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            e.add(&format!("{prefix}{k}"), "unknown field");
        }
    }
}

fn parse_amount(v: Option<&Value>, e: &mut Errors) -> Option<Money> {
    let Some(v) = v else {
        e.add("amount", "is required");
        return None;
    };
    let Value::Object(obj) = v else {
        e.add(
            "amount",
            "must be an object {\"value\": \"1500.00\", \"currency\": \"TZS\"}",
        );
        return None;
    };
    check_unknown(obj, &["value", "currency"], "amount.", e);
    let currency = match obj.get("currency") {
        None => {
            e.add("amount.currency", "is required");
            None
        }
        Some(Value::String(c)) => match c.parse::<Currency>() {
            Ok(c) => Some(c),
            Err(err) => {
                e.add("amount.currency", err.to_string());
                None
            }
        },
        Some(_) => {
            e.add("amount.currency", "must be an ISO 4217 code as a string");
            None
        }
    };
    let value = match obj.get("value") {
        None => {
            e.add("amount.value", "is required");
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(_)) => {
            e.add(
                "amount.value",
                "must be a decimal string such as \"1500.00\", not a JSON number",
            );
            None
        }
        Some(_) => {
            e.add("amount.value", "must be a decimal string");
            None
        }
    };
    match (value, currency) {
        (Some(v), Some(c)) => match Money::parse(&v, c) {
            Ok(m) => Some(m),
            Err(err) => {
                e.add("amount.value", err.to_string());
                None
            }
        },
        _ => None,
    }
}

fn parse_party(v: Option<&Value>, name: &str, e: &mut Errors) -> Option<Party> {
    let Some(v) = v else {
        e.add(name, "is required");
        return None;
    };
    let Value::Object(obj) = v else {
        e.add(
            name,
            "must be an object with id_type, id_value and an optional name",
        );
        return None;
    };
    check_unknown(
        obj,
        &["id_type", "id_value", "name"],
        &format!("{name}."),
        e,
    );
    let id_type = match obj.get("id_type") {
        Some(Value::String(t)) => match PartyIdType::parse(t) {
            Some(t) => Some(t),
            None => {
                let all: Vec<&str> = PartyIdType::ALL.iter().map(|t| t.as_str()).collect();
                e.add(
                    &format!("{name}.id_type"),
                    format!("must be one of {}", all.join(", ")),
                );
                None
            }
        },
        Some(_) => {
            e.add(&format!("{name}.id_type"), "must be a string");
            None
        }
        None => {
            e.add(&format!("{name}.id_type"), "is required");
            None
        }
    };
    let id_value = match obj.get("id_value") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            e.add(&format!("{name}.id_value"), "must be a string");
            None
        }
        None => {
            e.add(&format!("{name}.id_value"), "is required");
            None
        }
    };
    let party_name = opt_string(obj, "name", &format!("{name}.name"), 140, e);
    match (id_type, id_value) {
        (Some(t), Some(v)) => match Party::new(t, &v, party_name.as_deref()) {
            Ok(p) => Some(p),
            Err(err) => {
                let field = match err {
                    crate::domain::PartyError::Name => format!("{name}.name"),
                    _ => format!("{name}.id_value"),
                };
                e.add(&field, err.to_string());
                None
            }
        },
        _ => None,
    }
}

/// Validates a disbursement or collection request body.
pub fn new_payment(direction: Direction, body: &Value) -> Result<NewPayment, Problem> {
    let mut e = Errors(Vec::new());
    let Value::Object(obj) = body else {
        return Err(Problem::validation(vec![Problem::field(
            "",
            "the body must be a JSON object",
        )]));
    };
    let party_key = match direction {
        Direction::Disbursement => "payee",
        Direction::Collection => "payer",
    };
    let mut allowed = vec![
        "reference",
        "amount",
        party_key,
        "narrative",
        "rail",
        "metadata",
    ];
    if direction == Direction::Collection {
        allowed.push("mode");
    }
    check_unknown(obj, &allowed, "", &mut e);
    let reference = match obj.get("reference") {
        Some(Value::String(r)) if valid_reference(r) => Some(r.clone()),
        Some(Value::String(_)) => {
            e.add(
                "reference",
                "must be 1 to 64 printable characters without surrounding spaces",
            );
            None
        }
        Some(_) => {
            e.add("reference", "must be a string");
            None
        }
        None => {
            e.add("reference", "is required");
            None
        }
    };
    let amount = parse_amount(obj.get("amount"), &mut e);
    let party = parse_party(obj.get(party_key), party_key, &mut e);
    let narrative = opt_string(obj, "narrative", "narrative", 140, &mut e);
    let rail_hint = opt_string(obj, "rail", "rail", 64, &mut e);
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m))
            if m.len() <= 32 && Value::Object(m.clone()).to_string().len() <= 4096 =>
        {
            m.clone()
        }
        Some(Value::Object(_)) => {
            e.add("metadata", "must hold at most 32 keys and 4 KiB");
            Map::new()
        }
        Some(_) => {
            e.add("metadata", "must be an object");
            Map::new()
        }
    };
    if let Some(p) = metadata.get("programme") {
        if !p.is_string() {
            e.add("metadata.programme", "must be a string");
        }
    }
    let mode = match direction {
        Direction::Disbursement => None,
        Direction::Collection => match obj.get("mode") {
            None | Some(Value::Null) => Some(CollectionMode::RequestToPay),
            Some(Value::String(m)) if m == "request_to_pay" => Some(CollectionMode::RequestToPay),
            Some(Value::String(m)) if m == "expected" => Some(CollectionMode::Expected),
            Some(_) => {
                e.add("mode", "must be \"request_to_pay\" or \"expected\"");
                None
            }
        },
    };
    match (reference, amount, party) {
        (Some(reference), Some(amount), Some(party)) if e.0.is_empty() => Ok(NewPayment {
            direction,
            mode,
            reference,
            amount,
            party,
            narrative,
            rail_hint,
            metadata,
            payroll_id: None,
        }),
        _ => Err(Problem::validation(e.0)),
    }
}
