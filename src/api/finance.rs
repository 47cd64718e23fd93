//! `/reports`: the finance officer's page in a browser.
//!
//! Sign-in is with an API key (scope `reports:read`; `recon:write` to resolve breaks) typed
//! into a form. The key itself never goes back to the browser: the store opens a session
//! (`store::sessions`) and the browser gets its random id in an HttpOnly, SameSite=Strict
//! cookie scoped to `/reports`, `Secure` when the page is served over TLS. Scripts cannot read
//! it, other sites cannot send it, and it is checked against the store on every request:
//! signing out deletes the session, so a copied cookie stops working, and revoking the key
//! signs its sessions out. Every form carries the session's token as well
//! (`console::session`), and every action is written to the audit trail.
//!
//! HTTP Basic (any user name, the API key as password) is accepted as well, for scripts and
//! for browsers given credentials up front; `/reports?login=basic` asks for it with a 401.

use super::auth::authenticate;
use super::console::session::{self, cookie, session_id, Officer, MAX_AGE_SECS};
use super::console::{self, recon::RunView, Action, Chrome};
use super::problem::Problem;
use super::recon::{report_query, report_response, resolve_as, ReportQuery, ResolveInput};
use super::AppState;
use crate::recon::render::ReportView;
use crate::recon::report;
use crate::store::audit::Outcome;
use crate::store::recon as rstore;
use crate::store::sessions;
use askama::Template;
use axum::extract::{Form, Path, Query, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

fn login(status: StatusCode, error: Option<&str>) -> Response {
    console::login(status, error)
}

fn message_page(status: StatusCode, text: &str) -> Response {
    console::message(status, "Reconciliation", text, "/reports")
}

#[derive(Template)]
#[template(path = "console/report.html")]
struct ReportPage<'a> {
    chrome: Chrome,
    report: &'a ReportView,
    runs: Vec<RunView>,
    /// The pictures (server-rendered SVG), when there are any.
    charts: Option<String>,
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
    let Some(officer) = session::officer(&state, &headers).await else {
        if q.login.as_deref() == Some("basic") {
            // Asks the browser for HTTP Basic credentials (user name free, API key as password).
            let mut resp = login(StatusCode::UNAUTHORIZED, Some("Sign in with your API key."));
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(
                    "Basic realm=\"railgate-reports\", charset=\"UTF-8\"",
                ),
            );
            return Ok(resp);
        }
        return Ok(console::signed_out(&headers, StatusCode::OK));
    };
    let caller = &officer.caller;
    let rq = match report_query(&rq, Some(caller.client_id)) {
        Ok((r, _)) => r,
        Err(p) => return Ok(message_page(StatusCode::BAD_REQUEST, &p.detail_text())),
    };
    let r = report::build(&state.db, &rq).await?;
    let runs = rstore::recent_runs(&state.db, caller.client_id, 20).await?;
    let mut chrome = Chrome::new(&state, &officer, "Reconciliation", "report").await?;
    chrome.flash = q
        .resolved
        .as_deref()
        .and_then(|id| Uuid::parse_str(id).ok())
        .map(|id| format!("Break {id} resolved."));
    let view = ReportView::new(&r, Some(&officer.csrf));
    let charts = pictures(&state, &rq).await?;
    Ok(console::page(
        StatusCode::OK,
        &ReportPage {
            chrome,
            report: &view,
            runs: runs.iter().map(RunView::new).collect(),
            charts: Some(charts),
        },
    ))
}

/// The report's pictures (server-rendered SVG): the period's daily flows, and the open
/// breaks by age. `crate::charts` escapes every text it writes, so the SVG goes into the page
/// as it is.
async fn pictures(state: &AppState, rq: &report::Query) -> Result<String, Problem> {
    let Some(client) = rq.client_id else {
        return Ok(String::new());
    };
    let flows = crate::store::charts::daily_flows(&state.db, client, rq.from, rq.to).await?;
    let now = crate::store::now_micros();
    let ageing = crate::store::charts::break_ageing(&state.db, client, now).await?;
    Ok(format!(
        "<figure class=\"chart\" id=\"chart-flows\">{}</figure><figure class=\"chart\" id=\"chart-ageing\">{}</figure>",
        crate::charts::flows::daily_flows(&flows, rq.from, rq.to),
        crate::charts::ageing::break_ageing(&ageing, crate::store::from_micros(now)),
    ))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    api_key: String,
    /// The nonce the form was served with (also in the `railgate_signin` cookie).
    signin: Option<String>,
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
    if !session::signin_matches(&headers, f.signin.as_deref()) {
        return login(
            StatusCode::FORBIDDEN,
            Some("This sign-in form has expired or did not come from this page: sign in again."),
        );
    }
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
    let who = Officer {
        caller,
        csrf: String::new(),
    };
    Action {
        officer: &who,
        name: "session.sign_in",
        subject: format!("key:{}", who.caller.key_id),
        scopes: &["reports:read"],
        back: "/reports".into(),
    }
    .record(&state, Outcome::Done, None, None)
    .await;
    let mut resp = Redirect::to("/reports").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&state, &headers, &session, MAX_AGE_SECS),
    );
    if let Ok(v) = HeaderValue::from_str(&session::signin_cookie("", 0)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    csrf: Option<String>,
}

/// `POST /reports/logout`: ends the session in the store and clears the cookie. The form
/// carries the session's token, so another site cannot sign the officer out.
pub async fn logout(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let token = form.ok().and_then(|Form(f)| f.csrf).unwrap_or_default();
    if let (Some(id), Some(officer)) = (
        session_id(&headers),
        session::officer(&state, &headers).await,
    ) {
        let action = Action {
            officer: &officer,
            name: "session.sign_out",
            subject: format!("key:{}", officer.caller.key_id),
            scopes: &["reports:read"],
            back: "/reports".into(),
        };
        if let Err(refused) = action.allowed(&state, &token).await {
            return refused;
        }
        if let Err(e) = sessions::delete(&state.db, &id).await {
            return Problem::from(e).into_response();
        }
        action.record(&state, Outcome::Done, None, None).await;
    }
    let mut resp = Redirect::to("/reports").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, &headers, "", 0));
    resp
}

#[derive(Debug, Deserialize)]
pub struct ResolveForm {
    csrf: Option<String>,
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
    let Some(officer) = session::officer(&state, &headers).await else {
        return login(StatusCode::UNAUTHORIZED, Some("Sign in to resolve breaks."));
    };
    let Ok(id) = Uuid::parse_str(&id) else {
        return message_page(StatusCode::NOT_FOUND, "No such break.");
    };
    let action = Action {
        officer: &officer,
        name: "break.resolve",
        subject: format!("break:{id}"),
        scopes: &["recon:write"],
        back: "/reports".into(),
    };
    let Ok(Form(f)) = form else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Choose a resolution and give a reason.",
        );
    };
    if let Err(refused) = action
        .allowed(&state, f.csrf.as_deref().unwrap_or(""))
        .await
    {
        return refused;
    }
    let value = serde_json::json!({"resolution": f.resolution, "reason": f.reason});
    let input: ResolveInput = match super::recon::resolve_input(&value) {
        Ok(i) => i,
        Err(p) => return message_page(p.status, &p.detail_text()),
    };
    match resolve_as(&state, &officer.caller, id, &input).await {
        Ok(_) => {
            action
                .record(
                    &state,
                    Outcome::Done,
                    Some(&input.reason),
                    Some(&input.resolution),
                )
                .await;
            Redirect::to(&format!("/reports?resolved={id}")).into_response()
        }
        Err(p) => {
            let outcome = if p.status.is_client_error() {
                Outcome::Refused
            } else {
                Outcome::Failed
            };
            action
                .record(&state, outcome, Some(&input.reason), Some(&p.detail_text()))
                .await;
            message_page(p.status, &p.detail_text())
        }
    }
}

/// `GET /reports/download`: the report as a file, for the signed-in officer.
pub async fn download(
    AxState(state): AxState<AppState>,
    headers: HeaderMap,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Some(officer) = session::officer(&state, &headers).await else {
        return Ok(login(StatusCode::UNAUTHORIZED, Some("Sign in first.")));
    };
    let q = super::paging::query(query)?;
    let (rq, format) = report_query(&q, Some(officer.caller.client_id))?;
    report_response(&state, &rq, format).await
}
