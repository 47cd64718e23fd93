//! The identifiers we put in bank files, derived from our own ids.
//!
//! Every id fits ISO's Max35Text and the strict bank set `[A-Za-z0-9+?/\-:().,']`, and can be
//! turned back into the id it came from: a status report or a return then names our attempt
//! directly, without a lookup table. `NOTPROVIDED` is never used.

use uuid::Uuid;

/// `EndToEndId` of an attempt: its UUID as 32 lowercase hex digits.
pub fn end_to_end_id(attempt_id: Uuid) -> String {
    attempt_id.simple().to_string()
}

/// The attempt an `EndToEndId` was derived from, if it was one of ours.
pub fn attempt_of_end_to_end_id(id: &str) -> Option<Uuid> {
    if id.len() != 32 {
        return None;
    }
    Uuid::try_parse(id).ok()
}

/// `MsgId` of the file carrying a batch (or a single attempt, whose id then is the batch id).
pub fn msg_id(batch_id: Uuid) -> String {
    format!("RG{}", batch_id.simple())
}

/// `PmtInfId` of the one payment block of a batch's file.
pub fn pmt_inf_id(batch_id: Uuid) -> String {
    format!("RB{}", batch_id.simple())
}

/// True when `id` is 1..=35 characters of the strict set banks accept in identifiers.
pub fn is_strict_id(id: &str) -> bool {
    (1..=35).contains(&id.chars().count())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+?/-:().,'".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_fit() {
        let a = Uuid::new_v4();
        let e2e = end_to_end_id(a);
        assert_eq!(attempt_of_end_to_end_id(&e2e), Some(a));
        assert!(is_strict_id(&e2e) && is_strict_id(&msg_id(a)) && is_strict_id(&pmt_inf_id(a)));
        assert_ne!(msg_id(a), pmt_inf_id(a));
        assert_eq!(attempt_of_end_to_end_id("NOTPROVIDED"), None);
        assert!(!is_strict_id("NOT_ALLOWED"));
        assert!(!is_strict_id(&"A".repeat(36)));
    }
}
