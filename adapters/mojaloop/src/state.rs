//! What the adapter asks the gateway to keep between the steps of one attempt (`rail_state`).
//!
//! A disbursement goes `LookingUp → PartyFound → Quoting → Quoted` and then the transfer is
//! accepted (the state stays `Quoted`, which holds the condition the fulfilment must match).
//! A request-to-pay goes `LookingUp → PartyFound` and then the transaction request is
//! accepted. Each state is built either by `submit` (after a request went out) or by
//! `callback` (from the hub's answer), so it carries only what those can know.

use crate::wire::FspiopMoney;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum RailState {
    /// `GET /parties` went out; waiting for `PUT /parties`.
    LookingUp,
    /// The party's FSP is known; next: `POST /quotes` (or `POST /transactionRequests`).
    PartyFound { fsp_id: String },
    /// `POST /quotes` went out to `fsp_id`; waiting for `PUT /quotes/{id}`.
    Quoting { fsp_id: String },
    /// The payee FSP's terms, from `PUT /quotes/{id}`; next: `POST /transfers`.
    Quoted {
        /// The FSP that quoted (`FSPIOP-Source` of the quote); the transfer goes to it.
        fsp_id: String,
        transfer_amount: FspiopMoney,
        expiration: String,
        ilp_packet: String,
        condition: String,
    },
}

impl RailState {
    pub fn from_value(value: Option<&serde_json::Value>) -> Result<Option<RailState>, String> {
        match value {
            None | Some(serde_json::Value::Null) => Ok(None),
            // A bulk line's membership (`railgate_rail::BatchMembership`): no single-path step
            // yet. Sent on its own, the line starts with its lookup, under the same ids.
            Some(v) if v.get("step").is_none() && v.get("batch").is_some() => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| format!("unreadable Mojaloop rail_state: {e}")),
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        // Serialising a plain enum of strings cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The step names of the requests whose bytes the gateway stores before sending.
pub const STEP_QUOTE: &str = "quote";
pub const STEP_TRANSFER: &str = "transfer";
pub const STEP_TRANSACTION_REQUEST: &str = "transaction_request";
