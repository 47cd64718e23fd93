//! The Mojaloop rail (FSPIOP v1.1, Railgate as the scheme's FSP) from its `[[rails]]` settings.

use super::{invalid, required};
use crate::config::{ConfigError, RailConfig};
use railgate_mojaloop::ilp::IlpVersion;
use railgate_mojaloop::jws::{JwsSigner, JwsVerifier};
use railgate_mojaloop::{
    HubEndpoints, IlpSecret, JwsConfig, MojaloopAdapter, MojaloopConfig, OwnParty,
};
use railgate_rail::{PartyIdType, RailAdapter};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn flag(rc: &RailConfig, key: &str, default: bool) -> Result<bool, ConfigError> {
    match rc.setting(key).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(invalid(rc, format!("{key} '{other}' is not true or false"))),
    }
}

fn secs(rc: &RailConfig, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    match rc.setting(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| invalid(rc, format!("{key} '{v}' is not a number of seconds"))),
    }
}

/// `TYPE:ID[:name]`, TYPE being BUSINESS or ALIAS.
fn own_party(rc: &RailConfig, text: &str, default_name: &str) -> Result<OwnParty, ConfigError> {
    let mut parts = text.trim().splitn(3, ':');
    let (Some(t), Some(id)) = (parts.next(), parts.next()) else {
        return Err(invalid(
            rc,
            format!("scheme identifier '{text}' is not TYPE:ID"),
        ));
    };
    let id_type = match PartyIdType::parse(t.trim()) {
        Some(t @ (PartyIdType::Business | PartyIdType::Alias)) => t,
        _ => {
            return Err(invalid(
                rc,
                format!("scheme identifier type '{t}' is not BUSINESS or ALIAS"),
            ))
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

fn read_pem(rc: &RailConfig, what: &str, path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path.trim())
        .map_err(|e| invalid(rc, format!("cannot read the {what} key file: {e}")))
}

/// JWS is on when a signing key or any peer key is configured.
fn jws(rc: &RailConfig) -> Result<Option<JwsConfig>, ConfigError> {
    let has_signer = [
        "jws_signing_key",
        "jws_signing_key_env",
        "jws_signing_key_file",
    ]
    .iter()
    .any(|k| rc.setting(k).is_some());
    let signer = if has_signer {
        let pem = rc.secret("jws_signing_key")?;
        Some(JwsSigner::from_pem(&pem).map_err(|e| invalid(rc, format!("jws_signing_key: {e}")))?)
    } else {
        None
    };
    let mut peers = BTreeMap::new();
    if let Some(list) = rc.setting("jws_peer_keys") {
        for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
            let Some((fsp, path)) = entry.split_once('=') else {
                return Err(invalid(
                    rc,
                    format!("jws_peer_keys entry '{entry}' is not FSP=FILE"),
                ));
            };
            let pem = read_pem(rc, "peer's public", path)?;
            let verifier = JwsVerifier::from_pem(&pem)
                .map_err(|e| invalid(rc, format!("jws_peer_keys {}: {e}", fsp.trim())))?;
            peers.insert(fsp.trim().to_owned(), verifier);
        }
    }
    if signer.is_none() && peers.is_empty() {
        return Ok(None);
    }
    Ok(Some(JwsConfig {
        signer,
        verify_inbound: flag(rc, "jws_verify_inbound", !peers.is_empty())?,
        accept_unsigned_from_hub: flag(rc, "jws_accept_unsigned_from_hub", true)?,
        peers,
    }))
}

/// Builds the Mojaloop adapter; the keys are listed in the README ("Mojaloop").
pub(super) fn mojaloop(
    rc: &RailConfig,
    callback_base: &str,
    timeout: Duration,
) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    let hub = rc.setting("hub_url");
    let url = |key: &str| -> Result<String, ConfigError> {
        rc.setting(key)
            .or_else(|| hub.clone())
            .map(|u| u.trim_end_matches('/').to_owned())
            .ok_or_else(|| invalid(rc, format!("'hub_url' (or '{key}') is required")))
    };
    let endpoints = HubEndpoints {
        parties: url("parties_url")?,
        quotes: url("quotes_url")?,
        transfers: url("transfers_url")?,
        transaction_requests: url("transaction_requests_url")?,
    };
    let name = rc
        .setting("scheme_name")
        .unwrap_or_else(|| "Health insurance scheme".to_owned());
    let mut own = vec![own_party(rc, &required(rc, "scheme_party")?, &name)?];
    if let Some(more) = rc.setting("scheme_aliases") {
        for p in more.split(',').filter(|p| !p.trim().is_empty()) {
            own.push(own_party(rc, p, &name)?);
        }
    }
    let mut cfg = MojaloopConfig::new(
        &required(rc, "fsp_id")?,
        &endpoints.parties,
        callback_base,
        IlpSecret::new(rc.secret("ilp_secret")?),
        own,
    );
    cfg.rail_id = rc.id.clone();
    cfg.endpoints = endpoints;
    if let Some(h) = rc.setting("hub_fsp_id") {
        cfg.hub_fsp_id = h;
    }
    if let Some(v) = rc.setting("fspiop_version") {
        cfg.fspiop_version = v;
    }
    cfg.ilp_version = match rc.setting("ilp_version").as_deref().unwrap_or("4") {
        "4" => IlpVersion::V4,
        "1" => IlpVersion::V1,
        other => return Err(invalid(rc, format!("ilp_version '{other}' is not 1 or 4"))),
    };
    cfg.jws = jws(rc)?;
    cfg.quote_expiry = secs(rc, "quote_expiry_secs", cfg.quote_expiry)?;
    cfg.transfer_expiry = secs(rc, "transfer_expiry_secs", cfg.transfer_expiry)?;
    cfg.request_to_pay_expiry = secs(rc, "request_to_pay_expiry_secs", cfg.request_to_pay_expiry)?;
    cfg.grace = secs(rc, "grace_secs", cfg.grace)?;
    cfg.replay_window = secs(rc, "replay_window_secs", cfg.replay_window)?;
    if let Some(peers) = rc.setting("peers") {
        cfg.peers = peers
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
    }
    cfg.http_timeout = timeout;
    Ok(Arc::new(
        MojaloopAdapter::new(cfg).map_err(|e| invalid(rc, e))?,
    ))
}
