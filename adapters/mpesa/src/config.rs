//! How one M-Pesa (Daraja) rail instance is configured.

use railgate_rail::tls::ClientTls;
pub use railgate_rail::Secret;
use std::net::IpAddr;
use std::time::Duration;

/// The B2C `CommandID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandId {
    /// Registered and unregistered customers.
    SalaryPayment,
    /// Registered customers only.
    BusinessPayment,
    /// Registered customers only, with a congratulatory SMS.
    PromotionPayment,
}

impl CommandId {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandId::SalaryPayment => "SalaryPayment",
            CommandId::BusinessPayment => "BusinessPayment",
            CommandId::PromotionPayment => "PromotionPayment",
        }
    }
}

/// Disbursements (B2C) and Transaction Status queries.
#[derive(Debug, Clone)]
pub struct B2cConfig {
    pub initiator_name: String,
    /// The initiator password RSA-encrypted with Safaricom's certificate and base64-encoded,
    /// as generated once on the Daraja portal; the adapter does not hold the plain password.
    pub security_credential: Secret,
    /// The bulk disbursement shortcode (`PartyA`).
    pub shortcode: String,
    pub command_id: CommandId,
}

/// The STK push `TransactionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StkTransactionType {
    CustomerPayBillOnline,
    CustomerBuyGoodsOnline,
}

impl StkTransactionType {
    pub fn as_str(self) -> &'static str {
        match self {
            StkTransactionType::CustomerPayBillOnline => "CustomerPayBillOnline",
            StkTransactionType::CustomerBuyGoodsOnline => "CustomerBuyGoodsOnline",
        }
    }
}

/// Collections by STK push (M-Pesa Express).
#[derive(Debug, Clone)]
pub struct StkConfig {
    /// `BusinessShortCode`, also part of the password.
    pub shortcode: String,
    pub passkey: Secret,
    pub transaction_type: StkTransactionType,
    /// `PartyB`: the paybill or till receiving the money (usually the shortcode).
    pub party_b: String,
}

#[derive(Debug, Clone)]
pub struct MpesaConfig {
    /// The rail's id in the gateway ("mpesa-ke").
    pub rail_id: String,
    /// `https://api.safaricom.co.ke` (or the sandbox), without a trailing slash.
    pub base_url: String,
    /// Where the gateway serves this rail's callbacks: `{gateway}/rails/{rail_id}`.
    pub callback_base: String,
    /// The unguessable first path segment of every callback URL (Daraja signs nothing).
    /// At least 32 random characters; rotate by re-registering URLs with a new one.
    pub callback_secret: Secret,
    /// When not empty, callbacks are accepted only from these addresses (the peer the gateway
    /// sees: behind a proxy, configure the proxy to pass the real client address).
    pub allowed_peers: Vec<IpAddr>,
    pub consumer_key: String,
    pub consumer_secret: Secret,
    pub b2c: Option<B2cConfig>,
    pub stk: Option<StkConfig>,
    pub request_timeout: Duration,
    /// Refresh the OAuth token this long before it expires.
    pub token_refresh_margin: Duration,
    /// Client certificate, CA bundle and pin for Daraja's TLS; `None`: the public web roots.
    pub tls: Option<ClientTls>,
}

impl MpesaConfig {
    /// A configuration with the usual defaults: no allow-list, 30 s timeout, 60 s margin.
    pub fn new(
        rail_id: impl Into<String>,
        base_url: impl Into<String>,
        callback_base: impl Into<String>,
        callback_secret: Secret,
        consumer_key: impl Into<String>,
        consumer_secret: Secret,
    ) -> MpesaConfig {
        MpesaConfig {
            rail_id: rail_id.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            callback_base: callback_base.into().trim_end_matches('/').to_owned(),
            callback_secret,
            allowed_peers: Vec::new(),
            consumer_key: consumer_key.into(),
            consumer_secret,
            b2c: None,
            stk: None,
            request_timeout: Duration::from_secs(30),
            token_refresh_margin: Duration::from_secs(60),
            tls: None,
        }
    }
}
