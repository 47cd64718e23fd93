//! GSMA Mobile Money API and M-Pesa Daraja rails from their `[[rails]]` settings.

use super::{client_tls, currencies, invalid, oauth, required};
use crate::config::{ConfigError, RailConfig};
use railgate_rail::RailAdapter;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn mmapi(
    rc: &RailConfig,
    callback_base: &str,
    timeout: Duration,
) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    use railgate_mmapi::{Auth, CallbackAuth, MmapiConfig, Notification, Secret};
    use railgate_rail::oauth::OAuthConfig;
    let table = oauth(rc)?;
    let auth_kind = match (rc.setting("auth"), &table) {
        (None, Some(_)) => "oauth2".to_owned(),
        (a, _) => a.unwrap_or_else(|| "none".to_owned()),
    };
    if table.is_some() && auth_kind != "oauth2" {
        return Err(invalid(
            rc,
            format!("[rails.oauth] with auth '{auth_kind}'"),
        ));
    }
    let auth = match auth_kind.as_str() {
        "none" => Auth::None,
        "api_key" => Auth::ApiKey {
            api_key: Secret::new(rc.secret("api_key")?),
        },
        "basic" => Auth::Basic {
            username: required(rc, "username")?,
            password: Secret::new(rc.secret("password")?),
            api_key: rc.secret("api_key").ok().map(Secret::new),
        },
        "oauth2" => Auth::OAuth2 {
            // `[rails.oauth]`, or the flat keys of earlier configurations.
            oauth: match table {
                Some(t) => t,
                None => OAuthConfig::client_credentials(
                    required(rc, "token_url")?,
                    required(rc, "client_id")?,
                    Secret::new(rc.secret("client_secret")?),
                ),
            },
            api_key: rc.secret("api_key").ok().map(Secret::new),
        },
        other => {
            return Err(invalid(
                rc,
                format!("auth '{other}' is not one of none, api_key, basic, oauth2"),
            ))
        }
    };
    let callback_auth = match rc.setting("callback_username") {
        Some(username) => CallbackAuth::Basic {
            username,
            password: Secret::new(rc.secret("callback_password")?),
        },
        None => CallbackAuth::PathSecret(Secret::new(rc.secret("callback_secret")?)),
    };
    let scheme_party = vec![(
        rc.setting("scheme_party_type")
            .unwrap_or_else(|| "msisdn".into()),
        required(rc, "scheme_party_value")?,
    )];
    let mut cfg = MmapiConfig::new(
        &rc.id,
        required(rc, "base_url")?,
        callback_base,
        auth,
        callback_auth,
        scheme_party,
        currencies(rc)?,
    );
    cfg.request_timeout = timeout;
    cfg.tls = client_tls(rc)?;
    if rc.setting("notification").as_deref() == Some("polling") {
        cfg.notification = Notification::Polling;
    }
    Ok(Arc::new(
        railgate_mmapi::MmapiAdapter::new(cfg).map_err(|e| invalid(rc, e))?,
    ))
}

pub(super) fn mpesa(
    rc: &RailConfig,
    callback_base: &str,
    timeout: Duration,
) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    use railgate_mpesa::{
        B2cConfig, CommandId, MpesaConfig, Secret, StkConfig, StkTransactionType,
    };
    let mut cfg = MpesaConfig::new(
        &rc.id,
        required(rc, "base_url")?,
        callback_base,
        Secret::new(rc.secret("callback_secret")?),
        required(rc, "consumer_key")?,
        Secret::new(rc.secret("consumer_secret")?),
    );
    if let Some(shortcode) = rc.setting("b2c_shortcode") {
        cfg.b2c = Some(B2cConfig {
            initiator_name: required(rc, "b2c_initiator_name")?,
            security_credential: Secret::new(rc.secret("b2c_security_credential")?),
            shortcode,
            command_id: match rc
                .setting("b2c_command_id")
                .as_deref()
                .unwrap_or("SalaryPayment")
            {
                "SalaryPayment" => CommandId::SalaryPayment,
                "BusinessPayment" => CommandId::BusinessPayment,
                "PromotionPayment" => CommandId::PromotionPayment,
                other => return Err(invalid(rc, format!("b2c_command_id '{other}'"))),
            },
        });
    }
    if let Some(shortcode) = rc.setting("stk_shortcode") {
        cfg.stk = Some(StkConfig {
            party_b: rc
                .setting("stk_party_b")
                .unwrap_or_else(|| shortcode.clone()),
            shortcode,
            passkey: Secret::new(rc.secret("stk_passkey")?),
            transaction_type: match rc
                .setting("stk_transaction_type")
                .as_deref()
                .unwrap_or("CustomerPayBillOnline")
            {
                "CustomerPayBillOnline" => StkTransactionType::CustomerPayBillOnline,
                "CustomerBuyGoodsOnline" => StkTransactionType::CustomerBuyGoodsOnline,
                other => return Err(invalid(rc, format!("stk_transaction_type '{other}'"))),
            },
        });
    }
    if let Some(peers) = rc.setting("allowed_peers") {
        cfg.allowed_peers = peers
            .split(',')
            .map(|p| {
                p.trim()
                    .parse()
                    .map_err(|_| invalid(rc, format!("allowed_peers: '{p}' is not an IP address")))
            })
            .collect::<Result<_, _>>()?;
    }
    cfg.request_timeout = timeout;
    cfg.tls = client_tls(rc)?;
    Ok(Arc::new(
        railgate_mpesa::MpesaAdapter::new(cfg).map_err(|e| invalid(rc, e))?,
    ))
}
