//! The chart of accounts: which account a payment's money passes through (docs/ledger.md).
//!
//! Every account a payment touches belongs to the paying or collecting client's book, so each
//! client's books balance on their own and a client is shown only its own accounts.

use crate::domain::Currency;
use uuid::Uuid;

/// Which side of an account its balance is normally on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }

    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "debit" => Some(Side::Debit),
            "credit" => Some(Side::Credit),
            _ => None,
        }
    }
}

/// The kinds of account the gateway posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Benefits (or claims) the client paid out through the gateway, per programme: debited
    /// when a disbursement is committed and posted, credited back by a reversal.
    BenefitsPayable,
    /// Premiums (contributions) the client collected through the gateway, per programme:
    /// credited when a collection is confirmed, debited back by a reversal.
    PremiumsReceivable,
    /// The client's position at a rail: what the rail moved for it and is still to settle.
    /// Disbursements credit it, collections debit it; reconciliation clears it to settlement.
    RailClearing,
    /// Money that arrived but matches no payment (or not its amount), held until
    /// reconciliation finds whose it is.
    Suspense,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BenefitsPayable => "benefits_payable",
            Kind::PremiumsReceivable => "premiums_receivable",
            Kind::RailClearing => "rail_clearing",
            Kind::Suspense => "suspense",
        }
    }

    pub fn normal_side(self) -> Side {
        match self {
            Kind::BenefitsPayable => Side::Debit,
            Kind::PremiumsReceivable => Side::Credit,
            Kind::RailClearing => Side::Credit,
            Kind::Suspense => Side::Credit,
        }
    }

    /// Whether the balance on the normal side may never go below zero. A programme cannot
    /// have more returned than it paid, nor refund more than it collected; a rail position
    /// goes either way (it nets disbursements against collections).
    pub fn non_negative(self) -> bool {
        match self {
            Kind::BenefitsPayable | Kind::PremiumsReceivable | Kind::Suspense => true,
            Kind::RailClearing => false,
        }
    }
}

/// An account as a posting names it, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRef {
    pub code: String,
    pub currency: Currency,
    pub client_id: Option<Uuid>,
    pub kind: Kind,
}

/// The programme used when a payment names none.
pub const NO_PROGRAMME: &str = "general";

/// Keeps a programme name usable inside an account code: `:` separates the code's parts.
fn segment(s: &str) -> String {
    let cleaned: String = s
        .trim()
        .chars()
        .map(|c| if c == ':' || c.is_control() { '_' } else { c })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        NO_PROGRAMME.to_owned()
    } else {
        cleaned
    }
}

pub fn benefits_payable(client: Uuid, programme: Option<&str>, currency: Currency) -> AccountRef {
    AccountRef {
        code: format!(
            "client:{client}:benefits_payable:{}",
            segment(programme.unwrap_or(NO_PROGRAMME))
        ),
        currency,
        client_id: Some(client),
        kind: Kind::BenefitsPayable,
    }
}

pub fn premiums_receivable(
    client: Uuid,
    programme: Option<&str>,
    currency: Currency,
) -> AccountRef {
    AccountRef {
        code: format!(
            "client:{client}:premiums_receivable:{}",
            segment(programme.unwrap_or(NO_PROGRAMME))
        ),
        currency,
        client_id: Some(client),
        kind: Kind::PremiumsReceivable,
    }
}

pub fn rail_clearing(client: Uuid, rail: &str, currency: Currency) -> AccountRef {
    AccountRef {
        code: format!("client:{client}:rail:{}:clearing", segment(rail)),
        currency,
        client_id: Some(client),
        kind: Kind::RailClearing,
    }
}

/// The rail's clearing account in the client's book, or in the gateway's own book (`None`)
/// for money no client can be named for yet.
pub fn rail_clearing_of(client: Option<Uuid>, rail: &str, currency: Currency) -> AccountRef {
    match client {
        Some(c) => rail_clearing(c, rail, currency),
        None => AccountRef {
            code: format!("rail:{}:clearing", segment(rail)),
            currency,
            client_id: None,
            kind: Kind::RailClearing,
        },
    }
}

/// Suspense in the client's book, or in the gateway's (`None`: whose it is is not known).
pub fn suspense(client: Option<Uuid>, currency: Currency) -> AccountRef {
    AccountRef {
        code: match client {
            Some(c) => format!("client:{c}:suspense"),
            None => "suspense".to_owned(),
        },
        currency,
        client_id: client,
        kind: Kind::Suspense,
    }
}

/// Accounts are created on first use; the id follows from (code, currency), so two postings
/// that create the same account at once agree on its id.
const ACCOUNT_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6467_6572_4000_8000_7261_696c_6761);

impl AccountRef {
    pub fn id(&self) -> Uuid {
        Uuid::new_v5(
            &ACCOUNT_NAMESPACE,
            format!("{}|{}", self.code, self.currency.code()).as_bytes(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_name_the_client_and_programme() {
        let c = Uuid::nil();
        let tzs: Currency = "TZS".parse().unwrap();
        let a = benefits_payable(c, Some("mater:nity"), tzs);
        assert_eq!(
            a.code,
            "client:00000000-0000-0000-0000-000000000000:benefits_payable:mater_nity"
        );
        assert_eq!(
            benefits_payable(c, None, tzs).code,
            benefits_payable(c, Some(" "), tzs).code
        );
        assert_eq!(a.id(), benefits_payable(c, Some("mater:nity"), tzs).id());
        let kes: Currency = "KES".parse().unwrap();
        assert_ne!(a.id(), benefits_payable(c, Some("mater:nity"), kes).id());
    }
}
