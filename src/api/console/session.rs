//! Who is at the console: the finance officer's session (or HTTP Basic), and the form token
//! every action must carry.
//!
//! The session cookie is HttpOnly and SameSite=Strict, scoped to `/reports`; each form also
//! carries a token bound to the secret that signed the request in (the session id, or the
//! API key under HTTP Basic): `SHA-256("railgate-console-form\0" ‖ secret)`. Another site can
//! neither read it (it is only in the page) nor work it out (the secret never reaches a
//! script), so a form posted from elsewhere is refused even by a browser that ignores
//! SameSite, and a token copied from one session is useless in the next.

use super::super::auth::{authenticate, Caller};
use super::super::AppState;
use crate::store::sessions;
use axum::http::{header, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "railgate_session";
/// A signed-in page lasts a working day.
pub const MAX_AGE_SECS: u32 = 8 * 3600;

/// The form field that carries the token.
pub const CSRF_FIELD: &str = "csrf";

/// A signed-in officer: the key's caller and the token its forms carry.
#[derive(Debug, Clone)]
pub struct Officer {
    pub caller: Caller,
    pub csrf: String,
}

impl Officer {
    /// Whether a posted token is this officer's (compared in constant time).
    pub fn token_ok(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }

    pub fn may(&self, scope: &str) -> bool {
        self.caller.require(scope).is_ok()
    }
}

fn csrf_for(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"railgate-console-form\0");
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the page reached the browser over TLS: the gateway's public URL is `https`, or the
/// proxy in front says so (`X-Forwarded-Proto: https`, `Forwarded: proto=https`). The headers
/// need no trust: they can only add `Secure`, and a client that lies gets a cookie its own
/// browser will not send over plain HTTP.
fn served_over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    let said = |name: &str, f: &dyn Fn(&str) -> bool| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(f)
    };
    state.cfg.public_url().starts_with("https://")
        || said("x-forwarded-proto", &|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
        || said("forwarded", &|v| {
            v.split([';', ','])
                .filter_map(|kv| kv.trim().split_once('='))
                .any(|(k, p)| {
                    k.eq_ignore_ascii_case("proto")
                        && p.trim_matches('"').eq_ignore_ascii_case("https")
                })
        })
}

/// The sign-in form's nonce cookie, scoped to the sign-in path. Not marked `Secure`: the
/// nonce is no credential (it only ties a sign-in post to a form this gateway served), and the
/// form must keep working on plain HTTP where an operator runs it so.
pub fn signin_cookie(nonce: &str, max_age: u32) -> String {
    format!("{SIGNIN_COOKIE}={nonce}; HttpOnly; SameSite=Strict; Path=/reports/login; Max-Age={max_age}")
}

pub const SIGNIN_COOKIE: &str = "railgate_signin";

/// Whether the sign-in post carries the nonce its form was served with (form field and
/// cookie agree, compared in constant time).
pub fn signin_matches(headers: &HeaderMap, form_nonce: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let Some(form_nonce) = form_nonce.filter(|n| n.len() == 64) else {
        return false;
    };
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == SIGNIN_COOKIE && bool::from(v.as_bytes().ct_eq(form_nonce.as_bytes())))
}

pub fn cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: u32) -> HeaderValue {
    let secure = if served_over_tls(state, headers) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/reports; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("railgate_session=; Path=/reports; Max-Age=0"))
}

/// The key from `Authorization: Basic` (any user name, the API key as password).
pub fn basic_key(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (_, key) = text.split_once(':')?;
    (!key.is_empty()).then(|| key.to_owned())
}

/// The caller behind a live session of a key that is not revoked.
async fn session_caller(state: &AppState, id: &str) -> Option<Caller> {
    let record = sessions::lookup(&state.db, id).await.ok()??;
    record.revoked_at.is_none().then_some(Caller {
        client_id: record.client_id,
        key_id: record.id,
        scopes: record.scopes,
    })
}

/// The signed-in officer (a session, else HTTP Basic) whose key has `reports:read`.
pub async fn officer(state: &AppState, headers: &HeaderMap) -> Option<Officer> {
    let from_session = match session_id(headers) {
        Some(id) => session_caller(state, &id).await.map(|c| (c, id)),
        None => None,
    };
    let (caller, secret) = match from_session {
        Some(found) => found,
        None => {
            let key = basic_key(headers)?;
            (authenticate(state, &key).await.ok()?, key)
        }
    };
    caller.require("reports:read").ok()?;
    Some(Officer {
        caller,
        csrf: csrf_for(&secret),
    })
}

/// Whether the request tried to sign in at all (a cookie or Basic credentials).
pub fn tried(headers: &HeaderMap) -> bool {
    session_id(headers).is_some() || basic_key(headers).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_secret() {
        let a = csrf_for("session-a");
        assert_eq!(a, csrf_for("session-a"));
        assert_ne!(a, csrf_for("session-b"));
        assert_eq!(a.len(), 64);
    }
}
