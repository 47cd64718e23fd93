//! The balance proof of a statement: opening + credits − debits (booked entries) = closing.

use crate::model::{Direction, EntryStatus, StatementHeader, StatementLine};
use railgate_rail::Currency;

/// Running totals of one statement's booked lines, fed one line at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub lines: u64,
    pub booked: u64,
    pub credits_minor: i128,
    pub debits_minor: i128,
    pub fees_minor: i128,
    /// Set when lines in another currency than the first were seen.
    pub mixed_currency: bool,
    pub currency: Option<Currency>,
}

/// The statement's balances do not add up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceMismatch {
    pub opening_minor: i64,
    pub closing_minor: i64,
    /// What the closing balance should be from opening and entries.
    pub computed_closing_minor: i128,
    pub currency: Currency,
}

impl Totals {
    pub fn add(&mut self, line: &StatementLine) {
        self.lines = self.lines.saturating_add(1);
        if line.status != EntryStatus::Booked {
            return;
        }
        self.booked = self.booked.saturating_add(1);
        let c = line.amount.currency();
        match self.currency {
            None => self.currency = Some(c),
            Some(first) if first != c => self.mixed_currency = true,
            Some(_) => {}
        }
        let m = i128::from(line.amount.minor());
        match line.direction {
            Direction::Credit => self.credits_minor = self.credits_minor.saturating_add(m),
            Direction::Debit => self.debits_minor = self.debits_minor.saturating_add(m),
        }
        if let Some(f) = line.fee {
            self.fees_minor = self.fees_minor.saturating_add(i128::from(f.minor()));
        }
    }

    /// Checks opening + credits − debits = closing when the header has both balances.
    /// `Ok(false)` means there was nothing to check.
    pub fn check(&self, header: &StatementHeader) -> Result<bool, BalanceMismatch> {
        let (Some(open), Some(close)) = (header.opening_balance, header.closing_balance) else {
            return Ok(false);
        };
        let computed = i128::from(open.minor)
            .saturating_add(self.credits_minor)
            .saturating_sub(self.debits_minor);
        if computed == i128::from(close.minor) && open.currency == close.currency {
            Ok(true)
        } else {
            Err(BalanceMismatch {
                opening_minor: open.minor,
                closing_minor: close.minor,
                computed_closing_minor: computed,
                currency: close.currency,
            })
        }
    }
}
