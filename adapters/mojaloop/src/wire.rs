//! FSPIOP v1.1 on the wire: bodies, headers, amounts, ids, timestamps and error codes, with
//! their mappings to and from our types.
//!
//! Bodies serialise their fields in the order of the API definition's tables, so the bytes we
//! build are stable; optional fields are left out rather than sent as `null`.

use chrono::{DateTime, SecondsFormat, Utc};
use railgate_rail::{Currency, FailureCode, Money, Party, PartyIdType};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The one FSPIOP version this crate speaks.
pub const FSPIOP_VERSION: &str = "1.1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> WireError {
    WireError::Invalid {
        field,
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Resources and headers

/// The FSPIOP resources this crate uses; each has its own versioned media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Parties,
    Quotes,
    Transfers,
    TransactionRequests,
    BulkQuotes,
    BulkTransfers,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Parties => "parties",
            Resource::Quotes => "quotes",
            Resource::Transfers => "transfers",
            Resource::TransactionRequests => "transactionRequests",
            Resource::BulkQuotes => "bulkQuotes",
            Resource::BulkTransfers => "bulkTransfers",
        }
    }

    pub fn parse(s: &str) -> Option<Resource> {
        match s {
            "parties" => Some(Resource::Parties),
            "quotes" => Some(Resource::Quotes),
            "transfers" => Some(Resource::Transfers),
            "transactionRequests" => Some(Resource::TransactionRequests),
            "bulkQuotes" => Some(Resource::BulkQuotes),
            "bulkTransfers" => Some(Resource::BulkTransfers),
            _ => None,
        }
    }

    /// `application/vnd.interoperability.{resource}+json;version={version}`.
    pub fn media_type(self, version: &str) -> String {
        format!(
            "application/vnd.interoperability.{}+json;version={version}",
            self.as_str()
        )
    }
}

pub const H_SOURCE: &str = "FSPIOP-Source";
pub const H_DESTINATION: &str = "FSPIOP-Destination";
pub const H_SIGNATURE: &str = "FSPIOP-Signature";
pub const H_URI: &str = "FSPIOP-URI";
pub const H_HTTP_METHOD: &str = "FSPIOP-HTTP-Method";

/// The FSPIOP headers of one message, in the order we send them: the one place where every
/// request and callback we send gets its headers.
///
/// `Accept` is the resource's versioned media type on requests (GET, POST), as the API
/// definition asks. The definition gives callbacks (PUT) no `Accept`, but the HTTP client
/// adds its own `Accept: */*` to any request without one and cannot be told not to, and the
/// switch's header check (and the SDK's) refuses a callback whose `Accept` is present but not
/// a versioned FSPIOP type (`3101`). So callbacks carry the versioned type too, which both
/// accept.
pub fn fspiop_headers(
    resource: Resource,
    version: &str,
    date: DateTime<Utc>,
    source: &str,
    destination: Option<&str>,
) -> Vec<(String, String)> {
    let mut headers = Vec::with_capacity(5);
    headers.push(("Accept".to_owned(), resource.media_type(version)));
    headers.push(("Content-Type".to_owned(), resource.media_type(version)));
    headers.push(("Date".to_owned(), http_date(date)));
    headers.push((H_SOURCE.to_owned(), source.to_owned()));
    if let Some(d) = destination {
        headers.push((H_DESTINATION.to_owned(), d.to_owned()));
    }
    headers
}

/// RFC 7231 IMF-fixdate.
pub fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Parses an RFC 7231 date (IMF-fixdate; RFC 2822 forms are tolerated).
pub fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

// ---------------------------------------------------------------------------------------------
// Timestamps

/// FSPIOP `DateTime` in UTC with milliseconds: `2025-12-01T10:00:30.000Z`.
pub fn fspiop_datetime(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `at + d`, saturating at `at` when out of range (durations come from configuration).
pub fn after(at: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(at)
}

/// Parses an FSPIOP `DateTime` (`yyyy-MM-ddTHH:mm:ss.SSS[Z|±HH:MM]`, milliseconds mandatory).
pub fn parse_fspiop_datetime(s: &str) -> Result<DateTime<Utc>, WireError> {
    let b = s.as_bytes();
    // "yyyy-MM-ddTHH:mm:ss.SSS" is 23 characters, then a zone.
    let has_millis = b.len() > 23
        && b.get(19) == Some(&b'.')
        && b.get(20..23)
            .is_some_and(|m| m.iter().all(u8::is_ascii_digit));
    if !has_millis {
        return Err(invalid(
            "DateTime",
            "expected yyyy-MM-ddTHH:mm:ss.SSS with a zone",
        ));
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d.with_timezone(&Utc));
    }
    // A time without a zone is not allowed by the API; refuse rather than guess.
    Err(invalid("DateTime", "not a valid date and time with a zone"))
}

// ---------------------------------------------------------------------------------------------
// Amounts

/// FSPIOP `Amount` grammar: `^([0]|([1-9][0-9]{0,17}))([.][0-9]{0,3}[1-9])?$` — no trailing
/// zeros, at most four decimals, at most eighteen integer digits.
pub fn is_fspiop_amount(s: &str) -> bool {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let int_ok = int == "0"
        || (!int.is_empty()
            && int.len() <= 18
            && !int.starts_with('0')
            && int.bytes().all(|b| b.is_ascii_digit()));
    let frac_ok = match frac {
        None => true,
        Some(f) => {
            !f.is_empty()
                && f.len() <= 4
                && f.bytes().all(|b| b.is_ascii_digit())
                && !f.ends_with('0')
        }
    };
    int_ok && frac_ok
}

/// An amount with its currency as FSPIOP sends it (`Money` in the API definition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FspiopMoney {
    pub amount: String,
    pub currency: String,
}

impl From<Money> for FspiopMoney {
    /// Exact: the minor units written out with the currency's digits, trailing zeros dropped.
    fn from(m: Money) -> Self {
        let s = m.to_decimal_string();
        let trimmed = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        };
        FspiopMoney {
            amount: trimmed,
            currency: m.currency().code().to_owned(),
        }
    }
}

impl TryFrom<&FspiopMoney> for Money {
    type Error = WireError;
    /// Exact: refuses amounts outside the FSPIOP grammar and amounts finer than the currency's
    /// minor unit (never rounds).
    fn try_from(m: &FspiopMoney) -> Result<Money, WireError> {
        if !is_fspiop_amount(&m.amount) {
            return Err(invalid("amount", "not an FSPIOP Amount"));
        }
        let currency: Currency = m
            .currency
            .parse()
            .map_err(|e: railgate_rail::MoneyError| invalid("currency", e.to_string()))?;
        Money::parse(&m.amount, currency).map_err(|e| invalid("amount", e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Ids

/// v1.1 `CorrelationId`: a lowercase UUID of version 1 to 5.
pub fn is_correlation_id(s: &str) -> bool {
    s.len() == 36
        && s == s.to_ascii_lowercase()
        && Uuid::parse_str(s).is_ok_and(|u| {
            (1..=5).contains(&u.get_version_num()) && u.get_variant() == uuid::Variant::RFC4122
        })
}

/// What an id derived from an attempt id is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPurpose {
    /// `transactionRequestId` of a request-to-pay: the attempt id itself.
    TransactionRequest,
    /// `quoteId` of a disbursement.
    Quote,
    /// `transactionId` of a disbursement, also its `transferId`.
    Transaction,
}

impl IdPurpose {
    /// XOR masks that leave the version nibble and the variant bits untouched, so a v4 attempt
    /// id gives v4 ids and the attempt id can be recovered from any of them: callbacks carry
    /// only the FSPIOP id, and the adapter keeps no table.
    fn mask(self) -> [u8; 16] {
        match self {
            IdPurpose::TransactionRequest => [0; 16],
            IdPurpose::Quote => [
                0x5a, 0x17, 0xc3, 0x0e, 0x91, 0x4d, 0x0b, 0x62, 0x27, 0xe8, 0x3f, 0x71, 0xa4, 0x09,
                0xd6, 0x5c,
            ],
            IdPurpose::Transaction => [
                0xc6, 0x2b, 0x78, 0xe1, 0x0d, 0xf3, 0x04, 0x9a, 0x1e, 0x55, 0xb0, 0x8c, 0x63, 0xfa,
                0x2d, 0x97,
            ],
        }
    }
}

fn xor(id: Uuid, mask: [u8; 16]) -> Uuid {
    let mut bytes = *id.as_bytes();
    for (b, m) in bytes.iter_mut().zip(mask) {
        *b ^= m;
    }
    Uuid::from_bytes(bytes)
}

/// The FSPIOP id for `purpose` of an attempt; the same attempt always gives the same ids, so
/// every resend reuses them. Attempt ids must be UUID v4 (FSPIOP v1.1 accepts versions 1–5
/// only, and v4 keeps the mapping reversible).
pub fn derive_id(attempt_id: Uuid, purpose: IdPurpose) -> Result<Uuid, WireError> {
    if attempt_id.get_version_num() != 4 || attempt_id.get_variant() != uuid::Variant::RFC4122 {
        return Err(WireError::Unsupported(
            "Mojaloop attempt ids must be UUID v4 (FSPIOP v1.1 refuses v6/v7 correlation ids)"
                .to_owned(),
        ));
    }
    Ok(xor(attempt_id, purpose.mask()))
}

/// The attempt id behind an FSPIOP id that [`derive_id`] made.
pub fn attempt_of(fspiop_id: &str, purpose: IdPurpose) -> Option<Uuid> {
    let id = Uuid::parse_str(fspiop_id).ok()?;
    let attempt = xor(id, purpose.mask());
    (attempt.get_version_num() == 4).then_some(attempt)
}

/// Lowercase hyphenated form, as v1.1 requires.
pub fn id_string(id: Uuid) -> String {
    id.hyphenated().to_string()
}

// ---------------------------------------------------------------------------------------------
// Parties

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FspiopPartyIdType {
    Msisdn,
    Email,
    PersonalId,
    Business,
    Device,
    AccountId,
    Iban,
    Alias,
}

impl FspiopPartyIdType {
    pub fn as_str(self) -> &'static str {
        match self {
            FspiopPartyIdType::Msisdn => "MSISDN",
            FspiopPartyIdType::Email => "EMAIL",
            FspiopPartyIdType::PersonalId => "PERSONAL_ID",
            FspiopPartyIdType::Business => "BUSINESS",
            FspiopPartyIdType::Device => "DEVICE",
            FspiopPartyIdType::AccountId => "ACCOUNT_ID",
            FspiopPartyIdType::Iban => "IBAN",
            FspiopPartyIdType::Alias => "ALIAS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            FspiopPartyIdType::Msisdn,
            FspiopPartyIdType::Email,
            FspiopPartyIdType::PersonalId,
            FspiopPartyIdType::Business,
            FspiopPartyIdType::Device,
            FspiopPartyIdType::AccountId,
            FspiopPartyIdType::Iban,
            FspiopPartyIdType::Alias,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    /// Our identifier type for theirs; EMAIL and DEVICE have none.
    pub fn to_ours(self) -> Option<PartyIdType> {
        match self {
            FspiopPartyIdType::Msisdn => Some(PartyIdType::Msisdn),
            FspiopPartyIdType::PersonalId => Some(PartyIdType::PersonalId),
            FspiopPartyIdType::Business => Some(PartyIdType::Business),
            FspiopPartyIdType::AccountId => Some(PartyIdType::AccountId),
            FspiopPartyIdType::Iban => Some(PartyIdType::Iban),
            FspiopPartyIdType::Alias => Some(PartyIdType::Alias),
            FspiopPartyIdType::Email | FspiopPartyIdType::Device => None,
        }
    }
}

impl TryFrom<PartyIdType> for FspiopPartyIdType {
    type Error = WireError;
    fn try_from(t: PartyIdType) -> Result<Self, WireError> {
        match t {
            PartyIdType::Msisdn => Ok(FspiopPartyIdType::Msisdn),
            PartyIdType::AccountId => Ok(FspiopPartyIdType::AccountId),
            PartyIdType::Iban => Ok(FspiopPartyIdType::Iban),
            PartyIdType::Business => Ok(FspiopPartyIdType::Business),
            PartyIdType::Alias => Ok(FspiopPartyIdType::Alias),
            PartyIdType::PersonalId => Ok(FspiopPartyIdType::PersonalId),
            // Mapping a wallet id onto ACCOUNT_ID would change what the payee FSP looks up.
            PartyIdType::WalletId => Err(WireError::Unsupported(
                "FSPIOP has no WALLET_ID party type; use ACCOUNT_ID or ALIAS".to_owned(),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartyIdInfo {
    pub party_id_type: FspiopPartyIdType,
    pub party_identifier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party_sub_id_or_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsp_id: Option<String>,
}

impl PartyIdInfo {
    pub fn from_party(party: &Party, fsp_id: Option<&str>) -> Result<Self, WireError> {
        Ok(PartyIdInfo {
            party_id_type: party.id_type().try_into()?,
            party_identifier: party.id_value().to_owned(),
            party_sub_id_or_type: None,
            fsp_id: fsp_id.map(str::to_owned),
        })
    }

    /// Our party for theirs, when we have the identifier type; `name` is kept if valid.
    pub fn to_party(&self, name: Option<&str>) -> Option<Party> {
        let t = self.party_id_type.to_ours()?;
        Party::new(t, &self.party_identifier, name)
            .ok()
            .or_else(|| Party::new(t, &self.party_identifier, None).ok())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplexName {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonalInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complex_name: Option<ComplexName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FspiopParty {
    pub party_id_info: PartyIdInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_classification_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal_info: Option<PersonalInfo>,
}

/// `PUT /parties/{Type}/{ID}[/{SubId}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartiesPut {
    pub party: FspiopParty,
}

// ---------------------------------------------------------------------------------------------
// Transactions, quotes, transfers

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scenario {
    Deposit,
    Withdrawal,
    Transfer,
    Payment,
    Refund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Initiator {
    Payer,
    Payee,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InitiatorType {
    Consumer,
    Agent,
    Business,
    Device,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionType {
    pub scenario: Scenario,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_scenario: Option<String>,
    pub initiator: Initiator,
    pub initiator_type: InitiatorType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AmountType {
    Send,
    Receive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionList {
    pub extension: Vec<Extension>,
}

/// `POST /quotes` (API definition Table 22).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotesPost {
    pub quote_id: String,
    pub transaction_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_request_id: Option<String>,
    pub payee: FspiopParty,
    pub payer: FspiopParty,
    pub amount_type: AmountType,
    pub amount: FspiopMoney,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fees: Option<FspiopMoney>,
    pub transaction_type: TransactionType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// `PUT /quotes/{ID}` (Table 23).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotesPut {
    pub transfer_amount: FspiopMoney,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payee_receive_amount: Option<FspiopMoney>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payee_fsp_fee: Option<FspiopMoney>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payee_fsp_commission: Option<FspiopMoney>,
    pub expiration: String,
    pub ilp_packet: String,
    pub condition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// `POST /transfers` (Table 29).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransfersPost {
    pub transfer_id: String,
    pub payee_fsp: String,
    pub payer_fsp: String,
    pub amount: FspiopMoney,
    pub ilp_packet: String,
    pub condition: String,
    pub expiration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferState {
    Received,
    Reserved,
    Committed,
    Aborted,
}

/// `PUT /transfers/{ID}` (Table 31).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransfersPut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fulfilment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_timestamp: Option<String>,
    pub transfer_state: TransferState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// `POST /transactionRequests` (Table 18): the payer is a `PartyIdInfo`, not a `Party`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionRequestsPost {
    pub transaction_request_id: String,
    pub payee: FspiopParty,
    pub payer: PartyIdInfo,
    pub amount: FspiopMoney,
    pub transaction_type: TransactionType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionRequestState {
    Received,
    Pending,
    Accepted,
    Rejected,
}

/// `PUT /transactionRequests/{ID}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionRequestsPut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    pub transaction_request_state: TransactionRequestState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInformation {
    pub error_code: String,
    pub error_description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_list: Option<ExtensionList>,
}

/// The body of every `…/error` callback and of synchronous 4xx answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInformationObject {
    pub error_information: ErrorInformation,
}

impl ErrorInformationObject {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        ErrorInformationObject {
            error_information: ErrorInformation {
                error_code: code.code().to_owned(),
                error_description: description.into(),
                extension_list: None,
            },
        }
    }
}

/// Parses a body, naming the type in the error.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Serialises a body to the exact bytes we send.
pub fn to_body<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(value).map_err(|e| WireError::Malformed(e.to_string()))
}

/// `IlpCondition` / `IlpFulfilment`: 32 bytes, base64url without padding (43 characters).
pub fn is_ilp_digest(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

// ---------------------------------------------------------------------------------------------
// Error codes

/// The FSPIOP v1.1 error codes (API definition §7.6, Tables 110–117). Scheme-specific codes
/// (`xx40`–`xx99`) are read as their category's `xx00`, as the definition says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    CommunicationError,
    DestinationCommunicationError,
    GenericServerError,
    InternalServerError,
    NotImplemented,
    ServiceUnavailable,
    ServerTimedOut,
    ServerBusy,
    GenericClientError,
    UnacceptableVersion,
    UnknownUri,
    AddPartyInformationError,
    GenericValidationError,
    MalformedSyntax,
    MissingMandatoryElement,
    TooManyElements,
    TooLargePayload,
    InvalidSignature,
    ModifiedRequest,
    MissingMandatoryExtension,
    GenericIdNotFound,
    DestinationFspError,
    PayerFspIdNotFound,
    PayeeFspIdNotFound,
    PartyNotFound,
    QuoteIdNotFound,
    TransactionRequestIdNotFound,
    TransactionIdNotFound,
    TransferIdNotFound,
    BulkQuoteIdNotFound,
    BulkTransferIdNotFound,
    GenericExpired,
    TransactionRequestExpired,
    QuoteExpired,
    TransferExpired,
    GenericPayerError,
    PayerFspInsufficientLiquidity,
    GenericPayerRejection,
    PayerRejectedTransactionRequest,
    PayerFspUnsupportedTransactionType,
    PayerUnsupportedCurrency,
    PayerLimitError,
    PayerPermissionError,
    PayerBlocked,
    GenericPayeeError,
    PayeeFspInsufficientLiquidity,
    GenericPayeeRejection,
    PayeeRejectedQuote,
    PayeeFspUnsupportedTransactionType,
    PayeeFspRejectedQuote,
    PayeeRejectedTransaction,
    PayeeFspRejectedTransaction,
    PayeeUnsupportedCurrency,
    PayeeLimitError,
    PayeePermissionError,
    PayeeBlocked,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 56] = [
        ErrorCode::CommunicationError,
        ErrorCode::DestinationCommunicationError,
        ErrorCode::GenericServerError,
        ErrorCode::InternalServerError,
        ErrorCode::NotImplemented,
        ErrorCode::ServiceUnavailable,
        ErrorCode::ServerTimedOut,
        ErrorCode::ServerBusy,
        ErrorCode::GenericClientError,
        ErrorCode::UnacceptableVersion,
        ErrorCode::UnknownUri,
        ErrorCode::AddPartyInformationError,
        ErrorCode::GenericValidationError,
        ErrorCode::MalformedSyntax,
        ErrorCode::MissingMandatoryElement,
        ErrorCode::TooManyElements,
        ErrorCode::TooLargePayload,
        ErrorCode::InvalidSignature,
        ErrorCode::ModifiedRequest,
        ErrorCode::MissingMandatoryExtension,
        ErrorCode::GenericIdNotFound,
        ErrorCode::DestinationFspError,
        ErrorCode::PayerFspIdNotFound,
        ErrorCode::PayeeFspIdNotFound,
        ErrorCode::PartyNotFound,
        ErrorCode::QuoteIdNotFound,
        ErrorCode::TransactionRequestIdNotFound,
        ErrorCode::TransactionIdNotFound,
        ErrorCode::TransferIdNotFound,
        ErrorCode::BulkQuoteIdNotFound,
        ErrorCode::BulkTransferIdNotFound,
        ErrorCode::GenericExpired,
        ErrorCode::TransactionRequestExpired,
        ErrorCode::QuoteExpired,
        ErrorCode::TransferExpired,
        ErrorCode::GenericPayerError,
        ErrorCode::PayerFspInsufficientLiquidity,
        ErrorCode::GenericPayerRejection,
        ErrorCode::PayerRejectedTransactionRequest,
        ErrorCode::PayerFspUnsupportedTransactionType,
        ErrorCode::PayerUnsupportedCurrency,
        ErrorCode::PayerLimitError,
        ErrorCode::PayerPermissionError,
        ErrorCode::PayerBlocked,
        ErrorCode::GenericPayeeError,
        ErrorCode::PayeeFspInsufficientLiquidity,
        ErrorCode::GenericPayeeRejection,
        ErrorCode::PayeeRejectedQuote,
        ErrorCode::PayeeFspUnsupportedTransactionType,
        ErrorCode::PayeeFspRejectedQuote,
        ErrorCode::PayeeRejectedTransaction,
        ErrorCode::PayeeFspRejectedTransaction,
        ErrorCode::PayeeUnsupportedCurrency,
        ErrorCode::PayeeLimitError,
        ErrorCode::PayeePermissionError,
        ErrorCode::PayeeBlocked,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::CommunicationError => "1000",
            ErrorCode::DestinationCommunicationError => "1001",
            ErrorCode::GenericServerError => "2000",
            ErrorCode::InternalServerError => "2001",
            ErrorCode::NotImplemented => "2002",
            ErrorCode::ServiceUnavailable => "2003",
            ErrorCode::ServerTimedOut => "2004",
            ErrorCode::ServerBusy => "2005",
            ErrorCode::GenericClientError => "3000",
            ErrorCode::UnacceptableVersion => "3001",
            ErrorCode::UnknownUri => "3002",
            ErrorCode::AddPartyInformationError => "3003",
            ErrorCode::GenericValidationError => "3100",
            ErrorCode::MalformedSyntax => "3101",
            ErrorCode::MissingMandatoryElement => "3102",
            ErrorCode::TooManyElements => "3103",
            ErrorCode::TooLargePayload => "3104",
            ErrorCode::InvalidSignature => "3105",
            ErrorCode::ModifiedRequest => "3106",
            ErrorCode::MissingMandatoryExtension => "3107",
            ErrorCode::GenericIdNotFound => "3200",
            ErrorCode::DestinationFspError => "3201",
            ErrorCode::PayerFspIdNotFound => "3202",
            ErrorCode::PayeeFspIdNotFound => "3203",
            ErrorCode::PartyNotFound => "3204",
            ErrorCode::QuoteIdNotFound => "3205",
            ErrorCode::TransactionRequestIdNotFound => "3206",
            ErrorCode::TransactionIdNotFound => "3207",
            ErrorCode::TransferIdNotFound => "3208",
            ErrorCode::BulkQuoteIdNotFound => "3209",
            ErrorCode::BulkTransferIdNotFound => "3210",
            ErrorCode::GenericExpired => "3300",
            ErrorCode::TransactionRequestExpired => "3301",
            ErrorCode::QuoteExpired => "3302",
            ErrorCode::TransferExpired => "3303",
            ErrorCode::GenericPayerError => "4000",
            ErrorCode::PayerFspInsufficientLiquidity => "4001",
            ErrorCode::GenericPayerRejection => "4100",
            ErrorCode::PayerRejectedTransactionRequest => "4101",
            ErrorCode::PayerFspUnsupportedTransactionType => "4102",
            ErrorCode::PayerUnsupportedCurrency => "4103",
            ErrorCode::PayerLimitError => "4200",
            ErrorCode::PayerPermissionError => "4300",
            ErrorCode::PayerBlocked => "4400",
            ErrorCode::GenericPayeeError => "5000",
            ErrorCode::PayeeFspInsufficientLiquidity => "5001",
            ErrorCode::GenericPayeeRejection => "5100",
            ErrorCode::PayeeRejectedQuote => "5101",
            ErrorCode::PayeeFspUnsupportedTransactionType => "5102",
            ErrorCode::PayeeFspRejectedQuote => "5103",
            ErrorCode::PayeeRejectedTransaction => "5104",
            ErrorCode::PayeeFspRejectedTransaction => "5105",
            ErrorCode::PayeeUnsupportedCurrency => "5106",
            ErrorCode::PayeeLimitError => "5200",
            ErrorCode::PayeePermissionError => "5300",
            ErrorCode::PayeeBlocked => "5400",
        }
    }

    fn exact(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Reads an `errorCode`: exact codes first, then the category's `xx00`, then the class's
    /// `x000`. `None` for a string that is not four digits starting 1–5.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        let b = code.as_bytes();
        if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let category = format!("{}00", code.get(..2)?);
        let class = format!("{}000", code.get(..1)?);
        ErrorCode::exact(code)
            .or_else(|| ErrorCode::exact(&category))
            .or_else(|| ErrorCode::exact(&class))
    }

    /// What the code means for a payment, in our terms.
    pub fn failure_code(self) -> FailureCode {
        match self {
            ErrorCode::CommunicationError
            | ErrorCode::DestinationCommunicationError
            | ErrorCode::GenericServerError
            | ErrorCode::InternalServerError
            | ErrorCode::ServiceUnavailable
            | ErrorCode::ServerTimedOut
            | ErrorCode::ServerBusy => FailureCode::RailUnavailable,
            ErrorCode::NotImplemented => FailureCode::RailRejected,
            ErrorCode::GenericClientError
            | ErrorCode::UnacceptableVersion
            | ErrorCode::UnknownUri
            | ErrorCode::AddPartyInformationError
            | ErrorCode::GenericValidationError
            | ErrorCode::MalformedSyntax
            | ErrorCode::MissingMandatoryElement
            | ErrorCode::TooManyElements
            | ErrorCode::TooLargePayload
            | ErrorCode::InvalidSignature
            | ErrorCode::MissingMandatoryExtension
            | ErrorCode::PayerFspIdNotFound => FailureCode::InvalidRequest,
            ErrorCode::ModifiedRequest => FailureCode::Duplicate,
            ErrorCode::GenericIdNotFound
            | ErrorCode::DestinationFspError
            | ErrorCode::PayeeFspIdNotFound
            | ErrorCode::PartyNotFound => FailureCode::PartyNotFound,
            ErrorCode::QuoteIdNotFound
            | ErrorCode::TransactionRequestIdNotFound
            | ErrorCode::TransactionIdNotFound
            | ErrorCode::TransferIdNotFound
            | ErrorCode::BulkQuoteIdNotFound
            | ErrorCode::BulkTransferIdNotFound => FailureCode::RailRejected,
            ErrorCode::GenericExpired
            | ErrorCode::TransactionRequestExpired
            | ErrorCode::QuoteExpired
            | ErrorCode::TransferExpired => FailureCode::Expired,
            ErrorCode::PayerFspInsufficientLiquidity => FailureCode::InsufficientFunds,
            ErrorCode::GenericPayerRejection
            | ErrorCode::PayerRejectedTransactionRequest
            | ErrorCode::PayerBlocked
            | ErrorCode::GenericPayeeRejection
            | ErrorCode::PayeeRejectedQuote
            | ErrorCode::PayeeFspRejectedQuote
            | ErrorCode::PayeeRejectedTransaction
            | ErrorCode::PayeeFspRejectedTransaction
            | ErrorCode::PayeeBlocked => FailureCode::Declined,
            ErrorCode::PayerLimitError | ErrorCode::PayeeLimitError => FailureCode::LimitExceeded,
            ErrorCode::GenericPayerError
            | ErrorCode::PayerFspUnsupportedTransactionType
            | ErrorCode::PayerUnsupportedCurrency
            | ErrorCode::PayerPermissionError
            | ErrorCode::GenericPayeeError
            | ErrorCode::PayeeFspInsufficientLiquidity
            | ErrorCode::PayeeFspUnsupportedTransactionType
            | ErrorCode::PayeeUnsupportedCurrency
            | ErrorCode::PayeePermissionError => FailureCode::RailRejected,
        }
    }
}

/// Our failure for an `errorInformation`, keeping the rail's code beside it.
pub fn failure_of(info: &ErrorInformation) -> railgate_rail::Failure {
    let code = ErrorCode::parse(&info.error_code)
        .map(ErrorCode::failure_code)
        .unwrap_or(FailureCode::RailRejected);
    let reason: String = info.error_description.chars().take(200).collect();
    railgate_rail::Failure::new(code, reason, Some(info.error_code.clone()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn money(s: &str, c: Currency) -> Money {
        Money::parse(s, c).unwrap()
    }

    #[test]
    fn amounts_are_exact_and_in_fspiop_form() {
        let cases = [
            ("1500.50", Currency::Tzs, "1500.5"),
            ("1500.00", Currency::Tzs, "1500"),
            ("0.05", Currency::Usd, "0.05"),
            ("30000", Currency::Ugx, "30000"),
            ("1.230", Currency::Bhd, "1.23"),
            ("10000000000.01", Currency::Kes, "10000000000.01"),
        ];
        for (ours, c, theirs) in cases {
            let wire = FspiopMoney::from(money(ours, c));
            assert_eq!(wire.amount, theirs);
            assert!(is_fspiop_amount(&wire.amount));
            assert_eq!(Money::try_from(&wire).unwrap(), money(ours, c));
        }
    }

    #[test]
    fn fspiop_amount_grammar() {
        for ok in [
            "0",
            "5",
            "5.5",
            "100",
            "0.0001",
            "123456789012345678",
            "1.2345",
        ] {
            assert!(is_fspiop_amount(ok), "{ok}");
        }
        for bad in [
            "5.50",
            "5.",
            ".5",
            "05",
            "1.23456",
            "1234567890123456789",
            "-1",
            "1e3",
            "",
            "1,0",
        ] {
            assert!(!is_fspiop_amount(bad), "{bad}");
        }
        // Finer than the currency allows is refused, never rounded.
        let m = FspiopMoney {
            amount: "1.5".to_owned(),
            currency: "UGX".to_owned(),
        };
        assert!(Money::try_from(&m).is_err());
        let m = FspiopMoney {
            amount: "5.50".to_owned(),
            currency: "USD".to_owned(),
        };
        assert!(Money::try_from(&m).is_err());
    }

    #[test]
    fn derived_ids_are_v4_lowercase_and_reversible() {
        for _ in 0..50 {
            let attempt = Uuid::new_v4();
            for purpose in [
                IdPurpose::Quote,
                IdPurpose::Transaction,
                IdPurpose::TransactionRequest,
            ] {
                let id = derive_id(attempt, purpose).unwrap();
                assert_eq!(id.get_version_num(), 4);
                let s = id_string(id);
                assert!(is_correlation_id(&s), "{s}");
                assert_eq!(attempt_of(&s, purpose), Some(attempt));
            }
            assert_ne!(
                derive_id(attempt, IdPurpose::Quote).unwrap(),
                derive_id(attempt, IdPurpose::Transaction).unwrap()
            );
        }
        assert!(derive_id(Uuid::now_v7(), IdPurpose::Quote).is_err());
        assert!(!is_correlation_id(&Uuid::now_v7().to_string()));
        assert!(!is_correlation_id("7C23E80C-D078-4077-8263-2C047876FCF6"));
    }

    #[test]
    fn timestamps() {
        let at = DateTime::parse_from_rfc3339("2025-12-01T10:00:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(fspiop_datetime(at), "2025-12-01T10:00:30.000Z");
        assert_eq!(http_date(at), "Mon, 01 Dec 2025 10:00:30 GMT");
        assert_eq!(parse_http_date("Mon, 01 Dec 2025 10:00:30 GMT"), Some(at));
        assert_eq!(
            parse_fspiop_datetime("2025-12-01T11:00:30.000+01:00").unwrap(),
            at
        );
        assert!(parse_fspiop_datetime("2025-12-01T10:00:30Z").is_err());
        assert!(parse_fspiop_datetime("2025-12-01T10:00:30.000").is_err());
    }

    #[test]
    fn error_codes_map_with_category_fallback() {
        assert_eq!(
            ErrorCode::parse("4001"),
            Some(ErrorCode::PayerFspInsufficientLiquidity)
        );
        assert_eq!(
            ErrorCode::parse("3204").map(ErrorCode::failure_code),
            Some(FailureCode::PartyNotFound)
        );
        assert_eq!(
            ErrorCode::parse("5105").map(ErrorCode::failure_code),
            Some(FailureCode::Declined)
        );
        assert_eq!(
            ErrorCode::parse("3303").map(ErrorCode::failure_code),
            Some(FailureCode::Expired)
        );
        assert_eq!(
            ErrorCode::parse("4101").map(ErrorCode::failure_code),
            Some(FailureCode::Declined)
        );
        // Scheme-specific codes read as their category.
        assert_eq!(
            ErrorCode::parse("5142"),
            Some(ErrorCode::GenericPayeeRejection)
        );
        assert_eq!(ErrorCode::parse("3350"), Some(ErrorCode::GenericExpired));
        assert_eq!(
            ErrorCode::parse("2999"),
            Some(ErrorCode::GenericServerError)
        );
        assert_eq!(ErrorCode::parse("6001"), None);
        assert_eq!(ErrorCode::parse("40a1"), None);
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.code()), Some(c));
        }
    }

    #[test]
    fn headers_are_versioned_and_accept_is_never_left_to_the_client() {
        let at = Utc::now();
        let h = fspiop_headers(Resource::Quotes, "1.1", at, "railgate", Some("payeefsp"));
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("Content-Type").unwrap(),
            "application/vnd.interoperability.quotes+json;version=1.1"
        );
        assert_eq!(
            get("Accept").unwrap(),
            "application/vnd.interoperability.quotes+json;version=1.1"
        );
        assert_eq!(get("FSPIOP-Destination").unwrap(), "payeefsp");
        let lookup = fspiop_headers(Resource::Parties, "1.1", at, "railgate", None);
        assert!(lookup.iter().all(|(n, _)| n != "FSPIOP-Destination"));
    }
}
