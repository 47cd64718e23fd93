//! `/reports`: the finance officer's page in a browser.
//!
//! Sign-in is with an API key (scope `reports:read`; `recon:write` to resolve breaks) typed
//! into a form. The key itself never goes back to the browser: the store opens a session
//! (`store::sessions`) and the browser gets its random id in an HttpOnly, SameSite=Strict
//! cookie scoped to `/reports`, `Secure` when the page is served over TLS. Scripts cannot read
//! it, other sites cannot send it (so the resolve form needs no separate CSRF token), and it is
//! checked against the store on every request: signing out deletes the session, so a copied
//! cookie stops working, and revoking the key signs its sessions out.
//!
//! HTTP Basic (any user name, the API key as password) is accepted as well, for scripts and
//! for browsers given credentials up front; `/reports?login=basic` asks for it with a 401.

use super::auth::{authenticate, Caller};
use super::problem::Problem;
use super::recon::{report_query, report_response, resolve_as, ReportQuery, ResolveInput};
use super::AppState;
use crate::recon::{render, report};
use crate::store::recon as rstore;
use crate::store::sessions;
use axum::extract::{Form, Path, Query, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

const COOKIE: &str = "railgate_session";
/// A signed-in page lasts a working day.
const MAX_AGE_SECS: u32 = 8 * 3600;

fn session_id(headers: &HeaderMap) -> Option<String> {
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

fn cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: u32) -> HeaderValue {
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
fn basic_key(headers: &HeaderMap) -> Option<String> {
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

async fn officer(state: &AppState, headers: &HeaderMap) -> Option<Caller> {
    let from_session = match session_id(headers) {
        Some(id) => session_caller(state, &id).await,
        None => None,
    };
    let caller = match from_session {
        Some(c) => c,
        None => authenticate(state, &basic_key(headers)?).await.ok()?,
    };
    caller.require("reports:read").ok()?;
    Some(caller)
}

fn login(status: StatusCode, error: Option<&str>) -> Response {
    (status, Html(render::login_page(error))).into_response()
}

fn message_page(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<h1>Reconciliation</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/reports\">Back to the report</a></p>",
        render::esc(text)
    );
    (status, Html(render::page("Reconciliation", &body))).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    from: Option<String>,
    to: Option<String>,
    rail: Option<String>,
    programme: Option<String>,
    resolved: Option<String>,
    /// `basic`: answer 401 with a Basic challenge instead of the sign-in form.
    login: Option<String>,
}

/// `GET /reports`: the sign-in form, or the report with runs and the break queue.
pub async fn page(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Ok(Query(q)) = query else {
        return Ok(message_page(
            StatusCode::BAD_REQUEST,
            "The query cannot be read: give each parameter once.",
        ));
    };
    let rq = ReportQuery {
        from: q.from.clone(),
        to: q.to.clone(),
        rail: q.rail.clone(),
        programme: q.programme.clone(),
        format: None,
        section: None,
    };
    // A period that cannot be read is refused before anything else, signed in or not.
    if let Err(p) = report_query(&rq, None) {
        return Ok(message_page(StatusCode::BAD_REQUEST, &p.detail_text()));
    }
    if q.login.as_deref().is_some_and(|l| l != "basic") {
        return Ok(message_page(
            StatusCode::BAD_REQUEST,
            "login: the only sign-in to ask for is basic",
        ));
    }
    let Some(caller) = officer(&state, &headers).await else {
        if q.login.as_deref() == Some("basic") {
            // Asks the browser for HTTP Basic credentials (user name free, API key as password).
            return Ok((
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"railgate-reports\", charset=\"UTF-8\"",
                )],
                Html(render::login_page(Some("Sign in with your API key."))),
            )
                .into_response());
        }
        let error = (session_id(&headers).is_some() || basic_key(&headers).is_some())
            .then_some("Your sign-in has expired or the key lacks reports:read.");
        return Ok(login(StatusCode::OK, error));
    };
    let rq = match report_query(&rq, Some(caller.client_id)) {
        Ok((r, _)) => r,
        Err(p) => return Ok(message_page(StatusCode::BAD_REQUEST, &p.detail_text())),
    };
    let r = report::build(&state.db, &rq).await?;
    let runs = rstore::recent_runs(&state.db, caller.client_id, 20).await?;
    let who = rstore::key_owner(&state.db, caller.key_id).await?;
    let flash = q
        .resolved
        .as_deref()
        .and_then(|id| Uuid::parse_str(id).ok())
        .map(|id| format!("Break {id} resolved."));
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Html(render::finance_page(&r, &runs, &who, flash.as_deref())),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    api_key: String,
}

/// `POST /reports/login`: checks the key, opens a session, sets its cookie, back to the page.
pub async fn login_post(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return login(StatusCode::BAD_REQUEST, Some("Enter an API key."));
    };
    let key = f.api_key.trim();
    let caller = match authenticate(&state, key).await {
        Ok(c) => c,
        Err(_) => return login(StatusCode::UNAUTHORIZED, Some("That API key is not valid.")),
    };
    if caller.require("reports:read").is_err() {
        return login(
            StatusCode::FORBIDDEN,
            Some("That key lacks the scope reports:read."),
        );
    }
    let session = match sessions::create(&state.db, caller.key_id, MAX_AGE_SECS).await {
        Ok(s) => s,
        Err(e) => return Problem::from(e).into_response(),
    };
    let mut resp = Redirect::to("/reports").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&state, &headers, &session, MAX_AGE_SECS),
    );
    resp
}

/// `POST /reports/logout`: ends the session in the store and clears the cookie.
pub async fn logout(AxState(state): AxState<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        if let Err(e) = sessions::delete(&state.db, &id).await {
            return Problem::from(e).into_response();
        }
    }
    let mut resp = Redirect::to("/reports").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, &headers, "", 0));
    resp
}

#[derive(Debug, Deserialize)]
pub struct ResolveForm {
    resolution: String,
    reason: String,
}

/// `POST /reports/breaks/{id}/resolve`: the page's resolution form.
pub async fn resolve(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<ResolveForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(caller) = officer(&state, &headers).await else {
        return login(StatusCode::UNAUTHORIZED, Some("Sign in to resolve breaks."));
    };
    if caller.require("recon:write").is_err() {
        return message_page(
            StatusCode::FORBIDDEN,
            "Resolving a break needs a key with the scope recon:write.",
        );
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return message_page(StatusCode::NOT_FOUND, "No such break.");
    };
    let Ok(Form(f)) = form else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Choose a resolution and give a reason.",
        );
    };
    let value = serde_json::json!({"resolution": f.resolution, "reason": f.reason});
    let input: ResolveInput = match super::recon::resolve_input(&value) {
        Ok(i) => i,
        Err(p) => return message_page(p.status, &p.detail_text()),
    };
    match resolve_as(&state, &caller, id, &input).await {
        Ok(_) => Redirect::to(&format!("/reports?resolved={id}")).into_response(),
        Err(p) => message_page(p.status, &p.detail_text()),
    }
}

/// `GET /reports/download`: the report as a file, for the signed-in officer.
pub async fn download(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Some(caller) = officer(&state, &headers).await else {
        return Ok(login(StatusCode::UNAUTHORIZED, Some("Sign in first.")));
    };
    let q = super::paging::query(query)?;
    let (rq, format) = report_query(&q, Some(caller.client_id))?;
    report_response(&state, &rq, format).await
}
