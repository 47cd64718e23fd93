//! The Mojaloop rail (FSPIOP v1.1, Railgate as the scheme's FSP) from its `[[rails]]` settings.

use super::{client_tls, invalid, oauth, required};
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
    let cfg = config(rc, callback_base, timeout)?;
    Ok(Arc::new(
        MojaloopAdapter::new(cfg).map_err(|e| invalid(rc, e))?,
    ))
}

fn config(
    rc: &RailConfig,
    callback_base: &str,
    timeout: Duration,
) -> Result<MojaloopConfig, ConfigError> {
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
        bulk_quotes: url("bulk_quotes_url")?,
        bulk_transfers: url("bulk_transfers_url")?,
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
    cfg.bulk_quote_wait = secs(rc, "bulk_quote_wait_secs", cfg.bulk_quote_wait)?;
    cfg.bulk_answer_wait = secs(rc, "bulk_answer_wait_secs", cfg.bulk_answer_wait)?;
    if let Some(peers) = rc.setting("peers") {
        cfg.peers = peers
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
    }
    cfg.http_timeout = timeout;
    cfg.tls = client_tls(rc)?;
    cfg.oauth = oauth(rc)?;
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

    fn rail(toml_text: &str) -> RailConfig {
        toml::from_str(&format!("id = \"ml\"\nkind = \"mojaloop\"\n{toml_text}")).unwrap()
    }

    const BASE: &str = r#"
        fsp_id = "nhif"
        ilp_secret = "s3cret"
        scheme_party = "BUSINESS:NHIF:National Health Insurance Fund"
    "#;

    fn err(toml_text: &str) -> String {
        match config(
            &rail(toml_text),
            "http://gw/rails/ml",
            Duration::from_secs(3),
        ) {
            Ok(_) => panic!("accepted: {toml_text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn one_hub_url_or_one_per_resource() {
        let rc = rail(&format!(
            "{BASE}hub_url = \"https://hub/\"\nquotes_url = \"https://quoting/\"\n\
             scheme_aliases = \"ALIAS:NHIF-PREMIUM\"\npeers = \"bankfsp, walletfsp\"\n\
             grace_secs = 45\nilp_version = \"1\"\n\
             bulk_transfers_url = \"https://bulk/\"\nbulk_answer_wait_secs = 5"
        ));
        let c = config(&rc, "http://gw/rails/ml", Duration::from_secs(3)).unwrap();
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
    }
}
