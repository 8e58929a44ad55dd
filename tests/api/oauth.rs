//! `/api/v1/auth/oauth/*` against a fake OpenID Connect issuer and a fake GitHub on loopback
//! (`bulwark_testkit::fake_oauth`). The attacks: a missing, wrong, replayed or other-browser
//! state; a code bound to another PKCE verifier; every way an ID token can be wrong; an
//! unverified email that matches a victim's account; a provider that hangs or answers 50 MB.

use std::time::{Duration, Instant};

use bulwark_security::oauth::ProviderConfig;
use bulwark_testkit::fake_oauth::{Behaviour, CLIENT_ID, CLIENT_SECRET, FakeProvider, FakeUser};
use reqwest::{Method, Response};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem};

const REDIRECT: &str = "http://127.0.0.1:8080/api/v1/auth/oauth/acme/callback";
const GITHUB_REDIRECT: &str = "http://127.0.0.1:8080/api/v1/auth/oauth/github/callback";

/// An app that signs in with the fake as OIDC issuer `acme` and as `github`.
async fn app_with(fake: &FakeProvider, total_timeout: Duration) -> TestApp {
    let issuer = fake.issuer();
    let github = ProviderConfig::Github {
        client_id: CLIENT_ID.to_owned(),
        client_secret: SecretString::from(CLIENT_SECRET),
        redirect_uri: GITHUB_REDIRECT.to_owned(),
        authorize_url: fake.github_authorize_url(),
        token_url: fake.github_token_url(),
        api_base_url: fake.github_api_base_url(),
    };
    TestApp::spawn_configured(move |config| {
        config.oauth.providers = vec![
            ProviderConfig::Oidc {
                id: "acme".to_owned(),
                issuer,
                client_id: CLIENT_ID.to_owned(),
                client_secret: SecretString::from(CLIENT_SECRET),
                redirect_uri: REDIRECT.to_owned(),
                scopes: Vec::new(),
            },
            github,
        ];
        config.oauth.http.total_timeout = total_timeout;
    })
    .await
}

/// What a browser holds after `authorize`: where it was sent and its cookie.
struct Started {
    location: String,
    cookie: String,
}

impl TestApp {
    async fn oauth_start(&self, provider: &str) -> Started {
        let response = self
            .get(&format!("/api/v1/auth/oauth/{provider}/authorize"))
            .await;
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        for attribute in [
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=600",
        ] {
            assert!(set_cookie.contains(attribute), "{set_cookie}");
        }
        assert!(!set_cookie.contains("Domain"), "{set_cookie}");
        let cookie = set_cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("__Host-bulwark_oauth=")
            .unwrap()
            .to_owned();
        Started { location, cookie }
    }

    async fn oauth_callback(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        cookie: Option<&str>,
    ) -> Response {
        // Codes and states here are URL-safe already (base64url), as real ones are.
        let mut request = self.client.get(self.url(&format!(
            "/api/v1/auth/oauth/{provider}/callback?code={code}&state={state}"
        )));
        if let Some(cookie) = cookie {
            request = request.header("cookie", format!("__Host-bulwark_oauth={cookie}"));
        }
        request.send().await.unwrap()
    }

    /// A whole sign-in through the fake: authorize, the provider's consent, the callback.
    async fn oauth_sign_in(&self, fake: &FakeProvider, provider: &str) -> Response {
        let started = self.oauth_start(provider).await;
        let (code, state) = fake.authorize(&started.location);
        self.oauth_callback(provider, &code, &state, Some(&started.cookie))
            .await
    }

    async fn users(&self) -> i64 {
        sqlx::query_scalar("select count(*) from users")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_new_identity_creates_an_account_and_signs_in_again_as_it() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(5)).await;

    let started = app.oauth_start("acme").await;
    for parameter in [
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "nonce=",
        "response_type=code",
    ] {
        assert!(started.location.contains(parameter), "{}", started.location);
    }
    let (code, state) = fake.authorize(&started.location);
    let response = app
        .oauth_callback("acme", &code, &state, Some(&started.cookie))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cleared = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let pair: Value = response.json().await.unwrap();
    let me: Value = app
        .get_me(pair["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["display_name"], "Alice Liddell");

    // The same identity again: the same account, even after the provider's email changed.
    fake.set_user(FakeUser {
        email: Some("alice@new.example".to_owned()),
        ..FakeUser::default()
    });
    let again: Value = app.oauth_sign_in(&fake, "acme").await.json().await.unwrap();
    let me_again: Value = app
        .get_me(again["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me_again["id"], me["id"]);
    assert_eq!(app.users().await, 1);
    // No password: the account cannot sign in with one.
    assert_problem(app.login("alice@example.com", PASSWORD).await, 401).await;
    assert_eq!(app.audit_events("oauth.registered").await.len(), 1);
}

#[tokio::test]
async fn the_state_is_single_use_and_bound_to_the_browser() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(5)).await;
    let started = app.oauth_start("acme").await;
    let (code, state) = fake.authorize(&started.location);
    let other_browser = app.oauth_start("acme").await;

    for (state, cookie) in [
        (state.as_str(), None),
        (state.as_str(), Some(other_browser.cookie.as_str())),
        ("forged-state", Some(started.cookie.as_str())),
        ("", Some(started.cookie.as_str())),
    ] {
        let response = app.oauth_callback("acme", &code, state, cookie).await;
        assert_problem(response, 400).await;
    }
    // For another provider, the state is unknown too.
    assert_problem(
        app.oauth_callback("github", &code, &state, Some(&started.cookie))
            .await,
        400,
    )
    .await;

    let ok = app
        .oauth_callback("acme", &code, &state, Some(&started.cookie))
        .await;
    assert_eq!(ok.status(), 200);
    let replay = app
        .oauth_callback("acme", &code, &state, Some(&started.cookie))
        .await;
    assert_problem(replay, 400).await;
    assert!(!app.audit_events("oauth.refused").await.is_empty());
}

#[tokio::test]
async fn a_code_issued_for_another_pkce_challenge_is_refused() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(5)).await;
    let first = app.oauth_start("acme").await;
    let (stolen_code, _) = fake.authorize(&first.location);
    let second = app.oauth_start("acme").await;
    let (_, state) = fake.authorize(&second.location);

    // The attacker's state and cookie, the victim's code: the verifier does not match the
    // challenge the code was issued for.
    let response = app
        .oauth_callback("acme", &stolen_code, &state, Some(&second.cookie))
        .await;
    assert_problem(response, 401).await;
    assert_eq!(app.users().await, 0);
}

#[tokio::test]
async fn every_kind_of_bad_id_token_is_refused() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(5)).await;
    for behaviour in [
        Behaviour::WrongNonce,
        Behaviour::WrongAudience,
        Behaviour::WrongIssuer,
        Behaviour::BadSignature,
        Behaviour::Expired,
        Behaviour::AlgNone,
        Behaviour::KeyConfusion,
        Behaviour::UnknownKid,
    ] {
        fake.set_behaviour(behaviour);
        let response = app.oauth_sign_in(&fake, "acme").await;
        let problem = assert_problem(response, 401).await;
        assert_eq!(
            problem.type_uri, "urn:bulwark:problem:invalid-credentials",
            "{behaviour:?}"
        );
    }
    assert_eq!(app.users().await, 0, "a bad ID token created an account");
}

#[tokio::test]
async fn an_unverified_email_never_takes_over_an_existing_account() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(5)).await;
    let victim = app.signed_up("alice@example.com").await;

    // The provider does not vouch for the address: 409, nothing linked.
    fake.set_user(FakeUser {
        email_verified: false,
        ..FakeUser::default()
    });
    assert_problem(app.oauth_sign_in(&fake, "acme").await, 409).await;
    // It vouches, but the local address was never verified: still 409.
    fake.set_user(FakeUser::default());
    assert_problem(app.oauth_sign_in(&fake, "acme").await, 409).await;
    let linked: i64 = sqlx::query_scalar("select count(*) from oauth_identities")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(linked, 0);

    // Both sides verified: linked automatically, and it is the victim's own account.
    let token = app.mailed_token("alice@example.com", "verify_email").await;
    assert_eq!(app.verify_email(&token).await.status(), 204);
    let pair: Value = app.oauth_sign_in(&fake, "acme").await.json().await.unwrap();
    let me: Value = app
        .get_me(pair["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], victim.user_id);
    assert_eq!(app.users().await, 1);
    assert_eq!(app.audit_events("oauth.linked").await.len(), 1);
}

/// Account pre-hijacking: an attacker signs in at a lax provider with the victim's address before
/// the victim registers. No account is created from an unverified address, so nothing is waiting
/// for the victim to "recover" while the attacker's identity stays linked.
#[tokio::test]
async fn no_account_is_created_from_an_unverified_email() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(5)).await;
    fake.set_user(FakeUser {
        email_verified: false,
        ..FakeUser::default()
    });
    assert_problem(app.oauth_sign_in(&fake, "acme").await, 400).await;
    assert_eq!(app.users().await, 0);

    // The victim registers normally and owns the address alone.
    let victim = app.signed_up("alice@example.com").await;
    let identities: i64 = sqlx::query_scalar("select count(*) from oauth_identities")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(identities, 0);
    assert_eq!(app.get_me(&victim.access_token).await.status(), 200);
}

#[tokio::test]
async fn a_hanging_or_flooding_provider_is_a_generic_502_within_the_timeout() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(1)).await;

    fake.set_behaviour(Behaviour::Slow(Duration::from_secs(5)));
    let started = Instant::now();
    let problem = assert_problem(app.oauth_sign_in(&fake, "acme").await, 502).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(!problem.detail.contains("127.0.0.1"));

    fake.set_behaviour(Behaviour::Huge);
    assert_problem(app.oauth_sign_in(&fake, "acme").await, 502).await;
    fake.set_behaviour(Behaviour::TokenStatus(500));
    assert_problem(app.oauth_sign_in(&fake, "acme").await, 502).await;
    assert_eq!(app.users().await, 0);
}

#[tokio::test]
async fn github_signs_in_with_its_numeric_id_and_primary_email() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(5)).await;
    let pair: Value = app
        .oauth_sign_in(&fake, "github")
        .await
        .json()
        .await
        .unwrap();
    let me: Value = app
        .get_me(pair["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "alice@example.com");
    let subject: String =
        sqlx::query_scalar("select subject from oauth_identities where provider = 'github'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(subject, "583231");
}

#[tokio::test]
async fn linking_needs_a_recent_session_and_binds_the_identity_to_it() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(5)).await;
    let bob = app.signed_up("bob@example.com").await;

    let response = app
        .authed(
            Method::POST,
            "/api/v1/auth/oauth/acme/link",
            &bob.access_token,
            Some(&json!({})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = set_cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("__Host-bulwark_oauth=")
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let (code, state) = fake.authorize(body["authorize_url"].as_str().unwrap());
    let linked = app
        .oauth_callback("acme", &code, &state, Some(&cookie))
        .await;
    assert_eq!(linked.status(), 200);
    assert_eq!(linked.json::<Value>().await.unwrap()["linked"], true);

    // Alice's identity (another email) now signs in as Bob.
    let pair: Value = app.oauth_sign_in(&fake, "acme").await.json().await.unwrap();
    let me: Value = app
        .get_me(pair["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], bob.user_id);

    // An API key cannot start a link; an unknown provider is 404.
    let key = app.api_key(&bob, &["documents:read"]).await;
    let refused = app
        .authed(
            Method::POST,
            "/api/v1/auth/oauth/acme/link",
            key["key"].as_str().unwrap(),
            Some(&json!({})),
        )
        .await;
    assert_problem(refused, 403).await;
    assert_problem(app.get("/api/v1/auth/oauth/nope/authorize").await, 404).await;
}

#[tokio::test]
async fn an_mfa_account_still_needs_its_second_factor_after_the_provider() {
    let fake = FakeProvider::start().await;
    let app = app_with(&fake, Duration::from_secs(5)).await;
    let first: Value = app.oauth_sign_in(&fake, "acme").await.json().await.unwrap();
    let token = first["access_token"].as_str().unwrap();
    let setup: Value = app.totp_setup(token, None).await.json().await.unwrap();
    let secret = setup["secret"].as_str().unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let code = bulwark_security::totp::code_at(secret, now).unwrap();
    assert_eq!(app.totp_enable(token, &code).await.status(), 200);

    let second: Value = app.oauth_sign_in(&fake, "acme").await.json().await.unwrap();
    assert_eq!(second["mfa_required"], true);
    assert!(second.get("access_token").is_none());
}
