//! The operations console under `/reports`: the reconciliation report (`super::finance`),
//! payments, payrolls, statements and runs, and the audit trail, in one signed-in page.
//!
//! Pages are rendered on the server from templates (`templates/console/`, askama: checked at
//! compile time, every value escaped). A handler reads the officer ([`session`]), checks the
//! scope its action needs, checks the form token on a post, calls one function of the core,
//! and writes what happened to the audit trail ([`crate::store::audit`]), refusals included.
//! No page needs JavaScript; a running payroll's page refreshes itself by a meta refresh.

pub mod audit;
pub mod exceptions;
pub mod mask;
pub mod payments;
pub mod payrolls;
pub mod recon;
pub mod session;

use super::AppState;
use crate::store::audit::{self as trail, Entry, Outcome};
use askama::Template;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use session::Officer;

/// What every signed-in page shows around its content.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub title: String,
    /// Which link of the navigation is this page.
    pub active: &'static str,
    pub who: String,
    pub csrf: String,
    pub flash: Option<String>,
    /// Reload the page after this many seconds (0: never): a running payroll's progress.
    pub refresh_secs: u32,
}

/// The console's sections: link, label, key.
const LINKS: [(&str, &str, &str); 6] = [
    ("/reports", "Reconciliation", "report"),
    ("/reports/payments", "Payments", "payments"),
    ("/reports/payrolls", "Payrolls", "payrolls"),
    ("/reports/exceptions", "Exceptions", "exceptions"),
    ("/reports/statements", "Statements and runs", "statements"),
    ("/reports/audit", "Audit trail", "audit"),
];

impl Chrome {
    pub async fn new(
        state: &AppState,
        officer: &Officer,
        title: impl Into<String>,
        active: &'static str,
    ) -> Result<Chrome, super::problem::Problem> {
        Ok(Chrome {
            title: title.into(),
            active,
            who: crate::store::recon::key_owner(&state.db, officer.caller.key_id).await?,
            csrf: officer.csrf.clone(),
            flash: None,
            refresh_secs: 0,
        })
    }

    pub fn links(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &LINKS
    }
}

/// A rendered page, never cached (it holds the officer's data and form token).
pub fn page<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Console page could not be rendered");
            super::problem::Problem::internal().into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct Login<'a> {
    title: &'a str,
    error: Option<&'a str>,
    signin: &'a str,
}

/// The sign-in form, with an error when there is one. The form carries a fresh nonce that
/// also goes out as the `railgate_signin` cookie: a sign-in is taken only when the two agree
/// (see `session::signin_matches`), so another site cannot post its own key to our form and
/// sign the officer's browser in as someone else.
pub fn login(status: StatusCode, error: Option<&str>) -> Response {
    let nonce = hex::encode(rand::random::<[u8; 32]>());
    let mut resp = page(
        status,
        &Login {
            title: "Sign in · Railgate",
            error,
            signin: &nonce,
        },
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&session::signin_cookie(&nonce, 900)) {
        resp.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
    resp
}

/// The sign-in form for a request that is not signed in (saying why when it tried).
pub fn signed_out(headers: &HeaderMap, status: StatusCode) -> Response {
    let error = session::tried(headers)
        .then_some("Your sign-in has expired or the key lacks reports:read.");
    login(status, error)
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct Message<'a> {
    title: &'a str,
    heading: &'a str,
    text: &'a str,
    back: &'a str,
}

/// A page that says one thing (a refusal, a bad form) with a link back.
pub fn message(status: StatusCode, heading: &str, text: &str, back: &str) -> Response {
    page(
        status,
        &Message {
            title: heading,
            heading,
            text,
            back,
        },
    )
}

/// What one console action is, for its checks and its line in the audit trail.
pub struct Action<'a> {
    pub officer: &'a Officer,
    pub name: &'static str,
    pub subject: String,
    /// The scopes that allow it (any one of them).
    pub scopes: &'static [&'static str],
    /// Where the refusal page links back to.
    pub back: String,
}

impl Action<'_> {
    /// The trail's entry for this action.
    pub async fn entry(
        &self,
        state: &AppState,
        outcome: Outcome,
        reason: Option<&str>,
        detail: Option<&str>,
    ) -> Entry {
        let actor =
            match crate::store::recon::key_owner(&state.db, self.officer.caller.key_id).await {
                Ok(a) => a,
                Err(_) => format!("key {}", self.officer.caller.key_id),
            };
        Entry {
            client_id: self.officer.caller.client_id,
            key_id: self.officer.caller.key_id,
            actor,
            action: self.name,
            subject: self.subject.clone(),
            reason: reason.map(str::to_owned),
            outcome,
            detail: detail.map(str::to_owned),
        }
    }

    /// Writes the action to the trail. A trail that cannot be written is logged: the action
    /// itself has happened (or been refused) already and must not be reported otherwise.
    /// (An action that changes a payment writes its row in its own transaction instead, with
    /// [`Action::entry`] and `trail::record_in`.)
    pub async fn record(
        &self,
        state: &AppState,
        outcome: Outcome,
        reason: Option<&str>,
        detail: Option<&str>,
    ) {
        let entry = self.entry(state, outcome, reason, detail).await;
        if let Err(e) = trail::record(&state.db, &entry).await {
            tracing::error!(action = self.name, error = %e, "Audit trail could not be written");
        }
    }

    /// Checks the form token and the scope; a refusal is written to the trail and answered
    /// with a page saying why.
    pub async fn allowed(&self, state: &AppState, token: &str) -> Result<(), Response> {
        if !self.officer.token_ok(token) {
            self.record(
                state,
                Outcome::Refused,
                None,
                Some("form token missing or wrong"),
            )
            .await;
            return Err(message(
                StatusCode::FORBIDDEN,
                "Refused",
                "The form has expired or did not come from this console: reload the page and try again.",
                &self.back,
            ));
        }
        if !self.scopes.iter().any(|s| self.officer.may(s)) {
            let named = self.scopes.join(" or ");
            let detail = format!("needs the scope {named}");
            self.record(state, Outcome::Refused, None, Some(&detail))
                .await;
            return Err(message(
                StatusCode::FORBIDDEN,
                "Refused",
                &format!("This action needs a key with the scope {named}."),
                &self.back,
            ));
        }
        Ok(())
    }
}

/// A reason as typed: trimmed, required, at most [`trail::MAX_TEXT`] characters.
pub fn reason(given: Option<&str>) -> Result<String, &'static str> {
    let r = given.map(str::trim).unwrap_or("");
    if r.is_empty() {
        Err("Give a reason: it goes into the audit trail.")
    } else if r.chars().count() > trail::MAX_TEXT {
        Err("The reason is too long (at most 2000 characters).")
    } else {
        Ok(r.to_owned())
    }
}

/// A timestamp as pages show it (UTC, to the second).
pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}
