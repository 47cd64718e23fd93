//! A Mojaloop rail's `[[rails]]` settings (`kind = "mojaloop"`; FSPIOP v1.1, Railgate as the
//! scheme's FSP), read into a typed struct that refuses unknown keys. The keys are listed in
//! the README ("Mojaloop").

use crate::ilp::IlpVersion;
use crate::jws::{JwsSigner, JwsVerifier};
use crate::{HubEndpoints, IlpSecret, JwsConfig, MojaloopAdapter, MojaloopConfig, OwnParty};
use railgate_rail::settings::flex;
use railgate_rail::{PartyIdType, RailAdapter, RailSetup, SecretSetting, SettingsError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MojaloopSettings {
    pub hub_url: Option<String>,
    pub parties_url: Option<String>,
    pub quotes_url: Option<String>,
    pub transfers_url: Option<String>,
    pub transaction_requests_url: Option<String>,
    pub bulk_quotes_url: Option<String>,
    pub bulk_transfers_url: Option<String>,
    pub fsp_id: Option<String>,
    pub hub_fsp_id: Option<String>,
    pub fspiop_version: Option<String>,
    pub scheme_party: Option<String>,
    pub scheme_name: Option<String>,
    pub scheme_aliases: Option<String>,
    pub peers: Option<String>,
    pub ilp_secret: Option<SecretSetting>,
    pub ilp_version: Option<String>,
    pub jws_signing_key: Option<SecretSetting>,
    pub jws_peer_keys: Option<String>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub jws_verify_inbound: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub jws_accept_unsigned_from_hub: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub quote_expiry_secs: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub transfer_expiry_secs: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub request_to_pay_expiry_secs: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub grace_secs: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub replay_window_secs: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub bulk_quote_wait_secs: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub bulk_answer_wait_secs: Option<u64>,
}

impl MojaloopSettings {
    pub const SECRETS: &'static [&'static str] = &["ilp_secret", "jws_signing_key"];
}

fn secs(v: Option<u64>, default: Duration) -> Duration {
    v.map(Duration::from_secs).unwrap_or(default)
}

/// `TYPE:ID[:name]`, TYPE being BUSINESS or ALIAS.
fn own_party(setup: &RailSetup, text: &str, default_name: &str) -> Result<OwnParty, SettingsError> {
    let mut parts = text.trim().splitn(3, ':');
    let (Some(t), Some(id)) = (parts.next(), parts.next()) else {
        return Err(setup.invalid(format!("scheme identifier '{text}' is not TYPE:ID")));
    };
    let id_type = match PartyIdType::parse(t.trim()) {
        Some(t @ (PartyIdType::Business | PartyIdType::Alias)) => t,
        _ => {
            return Err(setup.invalid(format!(
                "scheme identifier type '{t}' is not BUSINESS or ALIAS"
            )))
        }
    };
    Ok(OwnParty {
        id_type,
        id_value: id.trim().to_owned(),
        name: parts
            .next()
            .map(str::trim)
            .unwrap_or(default_name)
            .to_owned(),
    })
}

fn read_pem(setup: &RailSetup, what: &str, path: &str) -> Result<String, SettingsError> {
    std::fs::read_to_string(path.trim())
        .map_err(|e| setup.invalid(format!("cannot read the {what} key file: {e}")))
}

/// JWS is on when a signing key or any peer key is configured.
fn jws(s: &MojaloopSettings, setup: &RailSetup) -> Result<Option<JwsConfig>, SettingsError> {
    let signer = match setup.optional_secret(&s.jws_signing_key, "jws_signing_key")? {
        Some(pem) => Some(
            JwsSigner::from_pem(pem.expose())
                .map_err(|e| setup.invalid(format!("jws_signing_key: {e}")))?,
        ),
        None => None,
    };
    let mut peers = BTreeMap::new();
    if let Some(list) = &s.jws_peer_keys {
        for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
            let Some((fsp, path)) = entry.split_once('=') else {
                return Err(setup.invalid(format!("jws_peer_keys entry '{entry}' is not FSP=FILE")));
            };
            let pem = read_pem(setup, "peer's public", path)?;
            let verifier = JwsVerifier::from_pem(&pem)
                .map_err(|e| setup.invalid(format!("jws_peer_keys {}: {e}", fsp.trim())))?;
            peers.insert(fsp.trim().to_owned(), verifier);
        }
    }
    if signer.is_none() && peers.is_empty() {
        return Ok(None);
    }
    Ok(Some(JwsConfig {
        signer,
        verify_inbound: s.jws_verify_inbound.unwrap_or(!peers.is_empty()),
        accept_unsigned_from_hub: s.jws_accept_unsigned_from_hub.unwrap_or(true),
        peers,
    }))
}

/// The Mojaloop adapter from its rail's setup (the registry's constructor for `mojaloop`).
pub fn mojaloop(setup: RailSetup) -> Result<Arc<dyn RailAdapter>, SettingsError> {
    let cfg = config(&setup)?;
    Ok(Arc::new(
        MojaloopAdapter::new(cfg).map_err(|e| setup.invalid(e))?,
    ))
}

/// The adapter's configuration from the rail's setup.
pub fn config(setup: &RailSetup) -> Result<MojaloopConfig, SettingsError> {
    let s: MojaloopSettings = setup.parse(MojaloopSettings::SECRETS)?;
    let url = |v: &Option<String>, key: &str| -> Result<String, SettingsError> {
        v.clone()
            .or_else(|| s.hub_url.clone())
            .map(|u| u.trim_end_matches('/').to_owned())
            .ok_or_else(|| setup.invalid(format!("'hub_url' (or '{key}') is required")))
    };
    let endpoints = HubEndpoints {
        parties: url(&s.parties_url, "parties_url")?,
        quotes: url(&s.quotes_url, "quotes_url")?,
        transfers: url(&s.transfers_url, "transfers_url")?,
        transaction_requests: url(&s.transaction_requests_url, "transaction_requests_url")?,
        bulk_quotes: url(&s.bulk_quotes_url, "bulk_quotes_url")?,
        bulk_transfers: url(&s.bulk_transfers_url, "bulk_transfers_url")?,
    };
    let name = s
        .scheme_name
        .clone()
        .unwrap_or_else(|| "Health insurance scheme".to_owned());
    let mut own = vec![own_party(
        setup,
        setup.required(&s.scheme_party, "scheme_party")?,
        &name,
    )?];
    if let Some(more) = &s.scheme_aliases {
        for p in more.split(',').filter(|p| !p.trim().is_empty()) {
            own.push(own_party(setup, p, &name)?);
        }
    }
    let ilp_secret = setup.secret(&s.ilp_secret, "ilp_secret")?;
    let mut cfg = MojaloopConfig::new(
        setup.required(&s.fsp_id, "fsp_id")?,
        &endpoints.parties,
        &setup.callback_base,
        IlpSecret::new(ilp_secret.expose()),
        own,
    );
    cfg.rail_id = setup.rail_id.clone();
    cfg.endpoints = endpoints;
    if let Some(h) = &s.hub_fsp_id {
        cfg.hub_fsp_id = h.clone();
    }
    if let Some(v) = &s.fspiop_version {
        cfg.fspiop_version = v.clone();
    }
    cfg.ilp_version = match s.ilp_version.as_deref().unwrap_or("4") {
        "4" => IlpVersion::V4,
        "1" => IlpVersion::V1,
        other => return Err(setup.invalid(format!("ilp_version '{other}' is not 1 or 4"))),
    };
    cfg.jws = jws(&s, setup)?;
    cfg.quote_expiry = secs(s.quote_expiry_secs, cfg.quote_expiry);
    cfg.transfer_expiry = secs(s.transfer_expiry_secs, cfg.transfer_expiry);
    cfg.request_to_pay_expiry = secs(s.request_to_pay_expiry_secs, cfg.request_to_pay_expiry);
    cfg.grace = secs(s.grace_secs, cfg.grace);
    cfg.replay_window = secs(s.replay_window_secs, cfg.replay_window);
    cfg.bulk_quote_wait = secs(s.bulk_quote_wait_secs, cfg.bulk_quote_wait);
    cfg.bulk_answer_wait = secs(s.bulk_answer_wait_secs, cfg.bulk_answer_wait);
    if let Some(peers) = &s.peers {
        cfg.peers = peers
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
    }
    cfg.http_timeout = setup.request_timeout;
    cfg.tls = setup.tls.clone();
    cfg.oauth = setup.oauth.clone();
    Ok(cfg)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    fn setup(toml_text: &str) -> RailSetup {
        let mut s = RailSetup::new("ml", "http://gw/rails/ml");
        s.request_timeout = Duration::from_secs(3);
        s.settings = toml::from_str(toml_text).unwrap();
        s
    }

    const BASE: &str = r#"
        fsp_id = "nhif"
        ilp_secret = "s3cret"
        scheme_party = "BUSINESS:NHIF:National Health Insurance Fund"
    "#;

    fn err(toml_text: &str) -> String {
        match config(&setup(toml_text)) {
            Ok(_) => panic!("accepted: {toml_text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn one_hub_url_or_one_per_resource() {
        let rc = setup(&format!(
            "{BASE}hub_url = \"https://hub/\"\nquotes_url = \"https://quoting/\"\n\
             scheme_aliases = \"ALIAS:NHIF-PREMIUM\"\npeers = \"bankfsp, walletfsp\"\n\
             grace_secs = 45\nilp_version = \"1\"\n\
             bulk_transfers_url = \"https://bulk/\"\nbulk_answer_wait_secs = 5"
        ));
        let c = config(&rc).unwrap();
        assert_eq!(c.rail_id, "ml");
        assert_eq!(c.fsp_id, "nhif");
        assert_eq!(c.hub_fsp_id, "switch");
        assert_eq!(c.endpoints.parties, "https://hub");
        assert_eq!(c.endpoints.quotes, "https://quoting");
        assert_eq!(c.endpoints.transfers, "https://hub");
        assert_eq!(c.endpoints.bulk_quotes, "https://hub");
        assert_eq!(c.endpoints.bulk_transfers, "https://bulk");
        assert_eq!(c.bulk_answer_wait, Duration::from_secs(5));
        assert_eq!(c.bulk_quote_wait, Duration::from_secs(30));
        assert_eq!(c.own_parties.len(), 2);
        assert_eq!(c.own_parties[0].id_type, PartyIdType::Business);
        assert_eq!(c.own_parties[0].name, "National Health Insurance Fund");
        assert_eq!(c.own_parties[1].id_type, PartyIdType::Alias);
        assert_eq!(c.peers, ["bankfsp", "walletfsp"]);
        assert_eq!(c.grace, Duration::from_secs(45));
        assert_eq!(c.ilp_version, IlpVersion::V1);
        assert_eq!(c.http_timeout, Duration::from_secs(3));
        assert!(c.jws.is_none(), "JWS off without keys");
        assert!(MojaloopAdapter::new(c).is_ok());
    }

    #[test]
    fn refuses_what_cannot_work() {
        assert!(err(BASE).contains("hub_url"));
        let hub = "hub_url = \"https://hub\"\n";
        assert!(err(&format!(
            "{hub}ilp_secret = \"s\"\nscheme_party = \"BUSINESS:X\""
        ))
        .contains("fsp_id"));
        assert!(err(&format!(
            "{hub}fsp_id = \"n\"\nscheme_party = \"BUSINESS:X\""
        ))
        .contains("ilp_secret"));
        assert!(err(&format!(
            "{hub}{BASE}scheme_aliases = \"MSISDN:255700000000\""
        ))
        .contains("BUSINESS or ALIAS"));
        assert!(err(&format!("{hub}{BASE}ilp_version = \"2\"")).contains("ilp_version"));
        assert!(err(&format!("{hub}{BASE}grace_secs = \"soon\"")).contains("grace_secs"));
        assert!(err(&format!("{hub}{BASE}jws_peer_keys = \"switch\"")).contains("FSP=FILE"));
        assert!(
            err(&format!("{hub}{BASE}jws_signing_key = \"not a key\"")).contains("jws_signing_key")
        );
        let typo = err(&format!("{hub}{BASE}grace_sec = 45"));
        assert!(
            typo.starts_with("rail ml: unknown field `grace_sec`"),
            "{typo}"
        );
    }
}
