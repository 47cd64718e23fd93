//! The finance officers' page signs in to a server-side session: the cookie holds a random id,
//! never the API key; signing out ends the session so a copied cookie is refused; a forged one
//! is refused; `Secure` when the page is served over TLS. On both stores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with the key; returns the `Set-Cookie` header.
async fn sign_in(app: &TestApp, key: &str, headers: &[(&str, &str)]) -> String {
    let http = browser();
    let (signin_cookie, nonce) = sign_in_form(&http, app).await;
    let mut req = http
        .post(app.url("/reports/login"))
        .header("Cookie", signin_cookie)
        .form(&[("api_key", key), ("signin", nonce.as_str())]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    resp.headers()["set-cookie"].to_str().unwrap().to_owned()
}

/// `railgate_session=...` from a `Set-Cookie` header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

/// Whether the page answered to this cookie is the report (signed in), not the sign-in form.
async fn signed_in(app: &TestApp, cookie: &str) -> bool {
    let resp = browser()
        .get(app.url("/reports"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let page = resp.text().await.unwrap();
    !page.contains("name=\"api_key\"")
}

/// The form token the signed-in page carries (every form posts it back).
async fn token(app: &TestApp, cookie: &str) -> String {
    let page = browser()
        .get(app.url("/reports"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    page[at..at + 64].to_owned()
}

async fn download_status(app: &TestApp, cookie: &str) -> u16 {
    browser()
        .get(app.url("/reports/download?from=2026-01-01&to=2026-01-31&format=csv"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

both_stores!(
    the_cookie_is_an_opaque_revocable_session,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        let set = sign_in(&app, &app.key, &[]).await;
        assert!(
            set.contains("HttpOnly")
                && set.contains("SameSite=Strict")
                && set.contains("Path=/reports"),
            "{set}"
        );
        assert!(!set.contains("Secure"), "plain HTTP: {set}");
        let cookie = pair(&set);
        let value = cookie.strip_prefix("railgate_session=").unwrap();
        assert!(!value.is_empty());
        assert!(
            !set.contains(&app.key),
            "the API key is in the cookie: {set}"
        );
        assert!(!value.contains(&app.key[..10]), "{set}");
        // The store keeps a hash of the id, never the id.
        let stored: Vec<String> =
            railgate::store::sql::query_scalar("SELECT id_hash FROM sessions")
                .fetch_all(app.db.pool())
                .await
                .unwrap();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0], value);
        assert!(signed_in(&app, &cookie).await);
        assert_eq!(download_status(&app, &cookie).await, 200);

        // Signing out needs the page's form token: another site cannot sign the officer out.
        let resp = browser()
            .post(app.url("/reports/logout"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403);
        assert!(signed_in(&app, &cookie).await);

        // Signing out ends the session: the same cookie, copied elsewhere, is refused.
        let csrf = token(&app, &cookie).await;
        let resp = browser()
            .post(app.url("/reports/logout"))
            .header("Cookie", &cookie)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 303);
        let cleared = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert!(
            !signed_in(&app, &cookie).await,
            "a signed-out cookie still works"
        );
        assert_eq!(download_status(&app, &cookie).await, 401);
        assert_eq!(app.count("sessions").await, 0);

        // A forged id, and the API key itself as the cookie (what the page used to keep there).
        let forged = "railgate_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!signed_in(&app, forged).await);
        assert_eq!(download_status(&app, forged).await, 401);
        let raw_key = format!("railgate_session={}", app.key);
        assert!(!signed_in(&app, &raw_key).await);
        assert_eq!(download_status(&app, &raw_key).await, 401);

        // Revoking the key signs its sessions out.
        let cookie = pair(&sign_in(&app, &app.key, &[]).await);
        assert!(signed_in(&app, &cookie).await);
        let id = railgate::store::keys::lookup(&app.db, &app.key)
            .await
            .unwrap()
            .unwrap()
            .id;
        railgate::store::keys::revoke(&app.db, &id.to_string())
            .await
            .unwrap();
        assert!(
            !signed_in(&app, &cookie).await,
            "a revoked key's session works"
        );

        // HTTP Basic for scripts is unchanged.
        let resp = browser()
            .get(app.url("/reports"))
            .basic_auth("officer", Some(&app.other_client_key))
            .send()
            .await
            .unwrap();
        assert!(!resp.text().await.unwrap().contains("name=\"api_key\""));
        app.stop().await;
    }
);

both_stores!(the_cookie_is_secure_over_tls, |store| async move {
    let Some(app) = spawn_app_with(store, |c| {
        c.public_url = Some("https://gateway.example".into());
    })
    .await
    else {
        return;
    };
    let set = sign_in(&app, &app.key, &[]).await;
    assert!(set.contains("; Secure"), "public_url is https: {set}");
    let csrf = token(&app, &pair(&set)).await;
    let cleared = browser()
        .post(app.url("/reports/logout"))
        .header("Cookie", pair(&set))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cleared.contains("; Secure"), "{cleared}");
    app.stop().await;

    // Behind a TLS-terminating proxy that says so.
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let set = sign_in(&app, &app.key, &[("X-Forwarded-Proto", "https")]).await;
    assert!(set.contains("; Secure"), "X-Forwarded-Proto: https: {set}");
    let set = sign_in(&app, &app.key, &[("Forwarded", "for=10.0.0.1;proto=https")]).await;
    assert!(set.contains("; Secure"), "Forwarded: proto=https: {set}");
    let set = sign_in(&app, &app.key, &[("X-Forwarded-Proto", "http")]).await;
    assert!(!set.contains("Secure"), "{set}");
    app.stop().await;
});
