//! How the adapter is configured. Secrets (the ILP secret, the JWS private key) come from the
//! environment or files through the gateway's config loader; `Debug` never prints them.

use crate::ilp::{IlpKey, IlpVersion};
use crate::jws::{JwsSigner, JwsVerifier};
use railgate_rail::oauth::OAuthConfig;
use railgate_rail::tls::ClientTls;
use railgate_rail::PartyIdType;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the hub serves each FSPIOP resource. Most hubs serve all of them behind one address;
/// some deployments split the account lookup service, the quoting service and the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubEndpoints {
    /// `GET /parties/...` goes to `{parties}/parties/...`.
    pub parties: String,
    /// `POST /quotes`.
    pub quotes: String,
    /// `POST /transfers`, `GET /transfers/{id}`.
    pub transfers: String,
    /// `POST /transactionRequests`, `GET /transactionRequests/{id}`.
    pub transaction_requests: String,
    /// `POST /bulkQuotes` (payrolls through bulk, see [`crate::bulk`]).
    pub bulk_quotes: String,
    /// `POST /bulkTransfers`, `GET /bulkTransfers/{id}`.
    pub bulk_transfers: String,
}

impl HubEndpoints {
    /// Every resource behind one base URL (no trailing slash needed).
    pub fn single(base: &str) -> Self {
        let b = base.trim_end_matches('/').to_owned();
        HubEndpoints {
            parties: b.clone(),
            quotes: b.clone(),
            transfers: b.clone(),
            transaction_requests: b.clone(),
            bulk_quotes: b.clone(),
            bulk_transfers: b,
        }
    }
}

/// One of the scheme's own identifiers in the Mojaloop directory (the insurer as `BUSINESS`
/// or `ALIAS`); payers' FSPs look it up before pushing a premium, with the policy or invoice
/// number as `partySubIdOrType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnParty {
    /// `Business` or `Alias` (others are refused when the adapter is built).
    pub id_type: PartyIdType,
    pub id_value: String,
    /// The display name returned in `PUT /parties`.
    pub name: String,
}

/// The ILP secret. Its `Debug` hides it.
#[derive(Clone)]
pub struct IlpSecret(String);

impl IlpSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        IlpSecret(secret.into())
    }
    pub(crate) fn key(&self) -> IlpKey {
        IlpKey::from_secret(&self.0)
    }
}

impl std::fmt::Debug for IlpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IlpSecret(***)")
    }
}

/// `FSPIOP-Signature` settings; absent means JWS is off both ways.
#[derive(Debug, Clone)]
pub struct JwsConfig {
    /// Our RS256 key: when present every POST and PUT we send is signed (GETs carry no body
    /// and are not signed, as in the SDK).
    pub signer: Option<JwsSigner>,
    /// Public keys of the FSPs (and the switch) that call us, by FSP id.
    pub peers: BTreeMap<String, JwsVerifier>,
    /// Refuse inbound requests with a body that are unsigned or badly signed.
    pub verify_inbound: bool,
    /// Accept unsigned messages whose `FSPIOP-Source` is the switch itself (hubs do not sign
    /// the errors they originate; §6 #14 of the notes). Signed ones are still verified.
    pub accept_unsigned_from_hub: bool,
}

/// The adapter's configuration.
#[derive(Debug, Clone)]
pub struct MojaloopConfig {
    /// The rail's id in the gateway ("mojaloop"); callbacks arrive under `/rails/{rail_id}`.
    pub rail_id: String,
    /// Our participant id in the scheme (`FSPIOP-Source` of everything we send), 1–32 chars.
    pub fsp_id: String,
    /// The switch's own FSP id (`switch` in a standard hub): the source of hub-originated
    /// errors and of answers to `GET /transfers`.
    pub hub_fsp_id: String,
    /// Where we reach the hub.
    pub endpoints: HubEndpoints,
    /// Where the hub reaches us: the gateway's `{public base}/rails/{rail_id}`. Registered with
    /// the hub as our participant endpoints (see [`crate::MojaloopAdapter::hub_endpoints`]);
    /// the adapter itself never sends it.
    pub callback_base: String,
    /// The FSPIOP version in `Content-Type` and `Accept`; only "1.1" is supported.
    pub fspiop_version: String,
    /// `FSPIOP-Signature` settings; `None` = JWS off.
    pub jws: Option<JwsConfig>,
    /// Secret our ILP fulfilments are derived from, as payee FSP.
    pub ilp_secret: IlpSecret,
    /// The ILP packet version we build as payee FSP (v4 by default; v1 for older peers).
    pub ilp_version: IlpVersion,
    /// How long our quotes (as payer and as payee) stay valid.
    pub quote_expiry: Duration,
    /// The `expiration` we put on our transfers; the switch times the transfer out after it.
    pub transfer_expiry: Duration,
    /// How long a request-to-pay waits for the payer.
    pub request_to_pay_expiry: Duration,
    /// How long after a transfer's expiration we still wait for its outcome before a "transfer
    /// not found" answer counts as final (the switch's timeout job runs every 15 s; keep ≥ 30 s).
    pub grace: Duration,
    /// Inbound messages whose `Date` is further than this from now are refused as stale.
    pub replay_window: Duration,
    /// The scheme's own identifiers. The first one is who we are in quotes (payer of a
    /// disbursement) and in requests-to-pay (payee); all are answered on `GET /parties`.
    pub own_parties: Vec<OwnParty>,
    /// FSPs allowed to call us besides the switch; empty = any FSP (JWS, when on, still
    /// decides who is who).
    pub peers: Vec<String>,
    /// Timeout of each HTTP call to the hub. A `POST /transfers` that times out is an unknown
    /// outcome, resolved by `GET /transfers/{id}`.
    pub http_timeout: Duration,
    /// Our client certificate, the hub's CA and an optional pin: hubs admit participants only
    /// over mutual TLS at their ingress. `None`: the public web roots, no client certificate.
    pub tls: Option<ClientTls>,
    /// OAuth2 client credentials, for a hub behind an API gateway that wants a bearer token
    /// on every request (callbacks we send included). `None`: no `Authorization` header.
    pub oauth: Option<OAuthConfig>,
    /// Bulk (payrolls): how long an upload waits for the party lookups of its lines and for
    /// the answer to its `POST /bulkQuotes`; past it nothing has moved and the upload is
    /// tried again (same ids).
    pub bulk_quote_wait: Duration,
    /// Bulk: how long after `POST /bulkTransfers` (or the last `GET`) the bulk's results may
    /// take before the hub is asked with `GET /bulkTransfers/{id}`.
    pub bulk_answer_wait: Duration,
}

impl MojaloopConfig {
    /// A configuration with the usual timings (quotes 60 s, transfers 30 s, request-to-pay
    /// 15 min, grace 30 s, replay window 5 min, HTTP 10 s, bulk quotes 30 s, bulk results
    /// 30 s), JWS off and ILP v4.
    pub fn new(
        fsp_id: &str,
        hub_base_url: &str,
        callback_base: &str,
        ilp_secret: IlpSecret,
        own_parties: Vec<OwnParty>,
    ) -> Self {
        MojaloopConfig {
            rail_id: "mojaloop".to_owned(),
            fsp_id: fsp_id.to_owned(),
            hub_fsp_id: "switch".to_owned(),
            endpoints: HubEndpoints::single(hub_base_url),
            callback_base: callback_base.trim_end_matches('/').to_owned(),
            fspiop_version: crate::wire::FSPIOP_VERSION.to_owned(),
            jws: None,
            ilp_secret,
            ilp_version: IlpVersion::V4,
            quote_expiry: Duration::from_secs(60),
            transfer_expiry: Duration::from_secs(30),
            request_to_pay_expiry: Duration::from_secs(15 * 60),
            grace: Duration::from_secs(30),
            replay_window: Duration::from_secs(300),
            own_parties,
            peers: Vec::new(),
            http_timeout: Duration::from_secs(10),
            tls: None,
            oauth: None,
            bulk_quote_wait: Duration::from_secs(30),
            bulk_answer_wait: Duration::from_secs(30),
        }
    }
}
