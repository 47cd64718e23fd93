//! FSPIOP v1.1 bulk bodies (`/bulkQuotes`, `/bulkTransfers`, API definition §6.9–6.10; the
//! field lists follow the v1.1 OpenAPI, which corrects the prose's Tables 37 and 42) and the
//! bulk ids we derive from our batch id.

use crate::wire::{
    AmountType, ErrorInformation, ExtensionList, FspiopMoney, FspiopParty, TransactionType,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most individual quotes or transfers one bulk carries (`individualQuotes[1..1000]`,
/// `individualTransfers[1..1000]`).
pub const MAX_INDIVIDUAL: usize = 1000;

/// `POST /bulkQuotes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkQuotesPost {
    pub bulk_quote_id: String,
    pub payer: FspiopParty,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    pub individual_quotes: Vec<IndividualQuote>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// One line of `POST /bulkQuotes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualQuote {
    pub quote_id: String,
    pub transaction_id: String,
    pub payee: FspiopParty,
    pub amount_type: AmountType,
    pub amount: FspiopMoney,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fees: Option<FspiopMoney>,
    pub transaction_type: TransactionType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// `PUT /bulkQuotes/{ID}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkQuotesPut {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub individual_quote_results: Vec<IndividualQuoteResult>,
    pub expiration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// One line of `PUT /bulkQuotes/{ID}`: the terms, or `errorInformation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualQuoteResult {
    pub quote_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payee: Option<FspiopParty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_amount: Option<FspiopMoney>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payee_receive_amount: Option<FspiopMoney>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payee_fsp_fee: Option<FspiopMoney>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payee_fsp_commission: Option<FspiopMoney>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ilp_packet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_information: Option<ErrorInformation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// `POST /bulkTransfers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkTransfersPost {
    pub bulk_transfer_id: String,
    pub bulk_quote_id: String,
    pub payer_fsp: String,
    pub payee_fsp: String,
    pub individual_transfers: Vec<IndividualTransfer>,
    pub expiration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// One line of `POST /bulkTransfers`: packet and condition unchanged from the quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualTransfer {
    pub transfer_id: String,
    pub transfer_amount: FspiopMoney,
    pub ilp_packet: String,
    pub condition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BulkTransferState {
    Received,
    Pending,
    Accepted,
    Processing,
    Completed,
    Rejected,
}

impl BulkTransferState {
    /// Whether the hub is done with the bulk.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BulkTransferState::Completed | BulkTransferState::Rejected
        )
    }
}

/// `PUT /bulkTransfers/{ID}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkTransfersPut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub individual_transfer_results: Vec<IndividualTransferResult>,
    pub bulk_transfer_state: BulkTransferState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// One line of `PUT /bulkTransfers/{ID}`: `fulfilment` xor `errorInformation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualTransferResult {
    pub transfer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fulfilment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_information: Option<ErrorInformation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// What a bulk id is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkPurpose {
    Quote,
    Transfer,
}

/// The `bulkQuoteId` or `bulkTransferId` of the part of our batch that goes to `payee_fsp`:
/// a name-based UUID (v5, which FSPIOP v1.1 accepts; our batch ids are v7, which it does not)
/// of the batch id, the purpose and the FSP. The same batch always gives the same ids, so an
/// upload tried again reuses them and the hub sees a resend, never a second bulk.
pub fn bulk_id(batch_id: Uuid, purpose: BulkPurpose, payee_fsp: &str) -> Uuid {
    let name = match purpose {
        BulkPurpose::Quote => format!("bulkQuote/{payee_fsp}"),
        BulkPurpose::Transfer => format!("bulkTransfer/{payee_fsp}"),
    };
    Uuid::new_v5(&batch_id, name.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{id_string, is_correlation_id};

    #[test]
    fn bulk_ids_are_stable_v1_1_ids_per_batch_and_fsp() {
        let batch = Uuid::now_v7();
        let q = bulk_id(batch, BulkPurpose::Quote, "walletfsp");
        assert_eq!(q, bulk_id(batch, BulkPurpose::Quote, "walletfsp"));
        assert!(is_correlation_id(&id_string(q)));
        assert_ne!(q, bulk_id(batch, BulkPurpose::Transfer, "walletfsp"));
        assert_ne!(q, bulk_id(batch, BulkPurpose::Quote, "bankfsp"));
        assert_ne!(q, bulk_id(Uuid::now_v7(), BulkPurpose::Quote, "walletfsp"));
    }

    #[test]
    fn a_transfer_result_reads_with_or_without_lines() {
        let put: BulkTransfersPut = serde_json::from_str(
            r#"{"bulkTransferState":"COMPLETED","completedTimestamp":"2025-12-01T10:00:09.000Z",
                "individualTransferResults":[{"transferId":"t1","fulfilment":"f"},
                {"transferId":"t2","errorInformation":{"errorCode":"5104","errorDescription":"no"}}]}"#,
        )
        .unwrap();
        assert_eq!(put.individual_transfer_results.len(), 2);
        assert!(put.bulk_transfer_state.is_final());
        let bare: BulkTransfersPut =
            serde_json::from_str(r#"{"bulkTransferState":"PROCESSING"}"#).unwrap();
        assert!(bare.individual_transfer_results.is_empty());
        assert!(!bare.bulk_transfer_state.is_final());
    }
}
