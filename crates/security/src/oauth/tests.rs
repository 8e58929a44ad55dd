//! The adapters against `bulwark_testkit::fake_oauth`: a real HTTP server on 127.0.0.1 that
//! enforces PKCE, single-use codes and client authentication, and misbehaves on request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bulwark_domain::oauth::{OAuthProvider, ProviderError, ProviderIdentity, ProviderStart};
use bulwark_testkit::fake_oauth::{
    Behaviour, CLIENT_ID, CLIENT_SECRET, FakeProvider, FakeUser, s256,
};
use secrecy::{ExposeSecret, SecretString};

use super::*;

const REDIRECT_URI: &str = "http://localhost:8080/oauth/fake/callback";

fn oidc_config(fake: &FakeProvider) -> ProviderConfig {
    ProviderConfig::Oidc {
        id: "fake".to_owned(),
        issuer: fake.issuer(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: SecretString::from(CLIENT_SECRET),
        redirect_uri: REDIRECT_URI.to_owned(),
        scopes: Vec::new(),
    }
}

fn github_config(fake: &FakeProvider) -> ProviderConfig {
    ProviderConfig::Github {
        client_id: CLIENT_ID.to_owned(),
        client_secret: SecretString::from(CLIENT_SECRET),
        redirect_uri: REDIRECT_URI.to_owned(),
        authorize_url: fake.github_authorize_url(),
        token_url: fake.github_token_url(),
        api_base_url: fake.github_api_base_url(),
    }
}

async fn oidc(fake: &FakeProvider) -> Arc<dyn OAuthProvider> {
    build_provider(oidc_config(fake), &HttpSettings::default())
        .await
        .unwrap()
}

async fn github(fake: &FakeProvider) -> Arc<dyn OAuthProvider> {
    build_provider(github_config(fake), &HttpSettings::default())
        .await
        .unwrap()
}

/// The whole round: start, the browser at the provider, the callback.
async fn sign_in(
    provider: &dyn OAuthProvider,
    fake: &FakeProvider,
) -> Result<ProviderIdentity, ProviderError> {
    let start = provider.start().unwrap();
    let (code, _) = fake.authorize(&start.authorize_url);
    provider
        .finish(&code, &start.pkce_verifier, start.nonce.as_ref())
        .await
}

fn query(url: &str) -> HashMap<String, String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn alice() -> ProviderIdentity {
    ProviderIdentity {
        subject: "583231".to_owned(),
        email: Some("alice@example.com".to_owned()),
        email_verified: true,
        name: Some("Alice Liddell".to_owned()),
    }
}

/// The source of an `Unavailable`, as the log would show it.
fn unavailable_reason(error: &ProviderError) -> String {
    match error {
        ProviderError::Unavailable(source) => source.to_string(),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn secret(value: &SecretString) -> &str {
    value.expose_secret()
}

// --- OpenID Connect -------------------------------------------------------------------------

#[tokio::test]
async fn an_oidc_sign_in_yields_the_verified_identity() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;

    let start = provider.start().unwrap();
    let (code, state) = fake.authorize(&start.authorize_url);
    let identity = provider
        .finish(&code, &start.pkce_verifier, start.nonce.as_ref())
        .await
        .unwrap();

    assert_eq!(identity, alice(), "the email is lower-cased");
    assert_eq!(state, secret(&start.state));
    assert_eq!(provider.id(), "fake");
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn the_authorization_url_carries_state_pkce_s256_nonce_and_the_exact_redirect_uri() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;

    let start = provider.start().unwrap();

    assert!(
        start
            .authorize_url
            .starts_with(&format!("{}/authorize?", fake.base_url)),
        "{}",
        start.authorize_url
    );
    let params = query(&start.authorize_url);
    let verifier = secret(&start.pkce_verifier);
    let nonce = start.nonce.as_ref().map(secret).unwrap();
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(params["redirect_uri"], REDIRECT_URI);
    assert_eq!(params["scope"], "openid email profile");
    assert_eq!(params["state"], secret(&start.state));
    assert_eq!(params["code_challenge"], s256(verifier));
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["nonce"], nonce);
    // 256 random bits each, base64url: 43 characters, a valid RFC 7636 verifier.
    for value in [secret(&start.state), verifier, nonce] {
        assert_eq!(value.len(), 43, "{value}");
        assert!(is_pkce_verifier(value));
    }
    assert!(!params.contains_key("client_secret"));
}

#[tokio::test]
async fn two_sign_ins_never_share_a_state_a_verifier_or_a_nonce() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;

    let a = provider.start().unwrap();
    let b = provider.start().unwrap();

    assert_ne!(secret(&a.state), secret(&b.state));
    assert_ne!(secret(&a.pkce_verifier), secret(&b.pkce_verifier));
    assert_ne!(a.nonce.as_ref().map(secret), b.nonce.as_ref().map(secret));
}

#[tokio::test]
async fn configured_scopes_replace_the_default_ones() {
    let fake = FakeProvider::start().await;
    let ProviderConfig::Oidc {
        id,
        issuer,
        client_id,
        client_secret,
        redirect_uri,
        ..
    } = oidc_config(&fake)
    else {
        unreachable!()
    };
    let config = ProviderConfig::Oidc {
        id,
        issuer,
        client_id,
        client_secret,
        redirect_uri,
        scopes: vec!["openid".to_owned(), "email".to_owned()],
    };
    let provider = build_provider(config, &HttpSettings::default())
        .await
        .unwrap();

    let start = provider.start().unwrap();

    assert_eq!(query(&start.authorize_url)["scope"], "openid email");
}

#[tokio::test]
async fn a_verifier_from_another_sign_in_is_rejected_by_the_provider() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    let victim = provider.start().unwrap();
    let attacker = provider.start().unwrap();
    let (code, _) = fake.authorize(&victim.authorize_url);

    let result = provider
        .finish(&code, &attacker.pkce_verifier, victim.nonce.as_ref())
        .await;

    assert!(matches!(result, Err(ProviderError::Rejected)), "{result:?}");
    assert_eq!(fake.token_requests(), 1, "the provider itself refused it");
}

#[tokio::test]
async fn a_missing_or_malformed_verifier_is_rejected_before_any_request() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    let start = provider.start().unwrap();
    let (code, _) = fake.authorize(&start.authorize_url);

    for verifier in ["", "too-short", &"a b".repeat(20)] {
        let result = provider
            .finish(&code, &SecretString::from(verifier), start.nonce.as_ref())
            .await;
        assert!(matches!(result, Err(ProviderError::Rejected)), "{result:?}");
    }
    assert_eq!(fake.token_requests(), 0);
}

#[tokio::test]
async fn a_replayed_code_is_rejected() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    let start = provider.start().unwrap();
    let (code, _) = fake.authorize(&start.authorize_url);
    provider
        .finish(&code, &start.pkce_verifier, start.nonce.as_ref())
        .await
        .unwrap();

    let replay = provider
        .finish(&code, &start.pkce_verifier, start.nonce.as_ref())
        .await;

    assert!(matches!(replay, Err(ProviderError::Rejected)), "{replay:?}");
}

#[tokio::test]
async fn a_code_for_another_redirect_uri_is_rejected() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    let start = provider.start().unwrap();
    // The browser was sent somewhere else with the same PKCE challenge.
    let elsewhere = start
        .authorize_url
        .replace("localhost%3A8080", "evil.example");
    let (code, _) = fake.authorize(&elsewhere);

    let result = provider
        .finish(&code, &start.pkce_verifier, start.nonce.as_ref())
        .await;

    assert!(matches!(result, Err(ProviderError::Rejected)), "{result:?}");
}

#[tokio::test]
async fn forged_expired_or_misaddressed_id_tokens_are_invalid() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;

    for (behaviour, reason) in [
        (
            Behaviour::WrongNonce,
            "the ID token's nonce is not this sign-in's",
        ),
        (
            Behaviour::WrongAudience,
            "the ID token is meant for another client",
        ),
        (
            Behaviour::WrongIssuer,
            "the ID token was issued by another issuer",
        ),
        (
            Behaviour::BadSignature,
            "the ID token's signature does not verify",
        ),
        (Behaviour::Expired, "the ID token has expired"),
        // jsonwebtoken cannot even parse a header whose `alg` is `none`.
        (Behaviour::AlgNone, "the ID token is malformed"),
        (
            Behaviour::KeyConfusion,
            "the ID token's algorithm is not the one its key is for",
        ),
        (
            Behaviour::UnknownKid,
            "the ID token's key id is not in the issuer's JWKS",
        ),
    ] {
        fake.set_behaviour(behaviour);

        let result = sign_in(provider.as_ref(), &fake).await;

        let Err(error @ ProviderError::InvalidIdToken(_)) = result else {
            panic!("{behaviour:?} was not refused as an invalid ID token: {result:?}");
        };
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some(reason), "{behaviour:?}");
        // Neither the token (a JWT starts `eyJ`) nor any claim makes it into the error.
        let printed = format!("{error} {error:?}");
        assert!(!printed.contains("eyJ"), "{behaviour:?}: {printed}");
        assert!(!printed.contains("583231"), "{behaviour:?}: {printed}");
    }
    fake.set_behaviour(Behaviour::Normal);
    assert_eq!(sign_in(provider.as_ref(), &fake).await.unwrap(), alice());
}

#[tokio::test]
async fn an_oidc_callback_without_its_nonce_is_refused_before_any_request() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    let start = provider.start().unwrap();
    let (code, _) = fake.authorize(&start.authorize_url);

    let result = provider.finish(&code, &start.pkce_verifier, None).await;

    assert!(
        matches!(result, Err(ProviderError::InvalidIdToken(_))),
        "{result:?}"
    );
    assert_eq!(fake.token_requests(), 0);
}

#[tokio::test]
async fn an_unverified_email_passes_through_as_unverified() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    fake.set_user(FakeUser {
        email_verified: false,
        ..FakeUser::default()
    });

    let identity = sign_in(provider.as_ref(), &fake).await.unwrap();

    assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    assert!(!identity.email_verified);
}

#[tokio::test]
async fn email_verified_sent_as_a_string_is_understood() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    fake.set_behaviour(Behaviour::EmailVerifiedAsString);

    let verified = sign_in(provider.as_ref(), &fake).await.unwrap();
    fake.set_user(FakeUser {
        email_verified: false,
        ..FakeUser::default()
    });
    let unverified = sign_in(provider.as_ref(), &fake).await.unwrap();

    assert!(verified.email_verified);
    assert!(!unverified.email_verified);
}

#[tokio::test]
async fn a_user_without_email_or_name_signs_in_with_neither() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    fake.set_user(FakeUser {
        subject: "opaque-subject|42".to_owned(),
        email: None,
        email_verified: true,
        name: None,
    });

    let identity = sign_in(provider.as_ref(), &fake).await.unwrap();

    assert_eq!(
        identity,
        ProviderIdentity {
            subject: "opaque-subject|42".to_owned(),
            email: None,
            email_verified: false,
            name: None,
        }
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_unknown_kids_do_not_hammer_the_jwks() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    sign_in(provider.as_ref(), &fake).await.unwrap();
    assert_eq!(fake.jwks_requests(), 1);

    // The issuer rotates: the new kid is not in our cached JWKS, which is refetched once.
    fake.rotate_key();
    assert_eq!(sign_in(provider.as_ref(), &fake).await.unwrap(), alice());
    assert_eq!(fake.jwks_requests(), 2);
    sign_in(provider.as_ref(), &fake).await.unwrap();
    assert_eq!(fake.jwks_requests(), 2, "a known kid needs no fetch");

    // Made-up kids: refused, and no refetch within the minute.
    fake.set_behaviour(Behaviour::UnknownKid);
    for _ in 0..3 {
        let result = sign_in(provider.as_ref(), &fake).await;
        assert!(
            matches!(result, Err(ProviderError::InvalidIdToken(_))),
            "{result:?}"
        );
    }
    assert_eq!(fake.jwks_requests(), 2);
}

#[tokio::test]
async fn a_slow_provider_is_unavailable_within_the_timeout() {
    let fake = FakeProvider::start().await;
    let settings = HttpSettings {
        connect_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_millis(300),
        ..HttpSettings::default()
    };
    let provider = build_provider(oidc_config(&fake), &settings).await.unwrap();
    fake.set_behaviour(Behaviour::Slow(Duration::from_secs(5)));
    let started = Instant::now();

    let error = sign_in(provider.as_ref(), &fake).await.unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        unavailable_reason(&error),
        "the request to the provider timed out"
    );
}

#[tokio::test]
async fn a_50_mb_answer_is_unavailable_without_being_read() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    fake.set_behaviour(Behaviour::Huge);
    let started = Instant::now();

    let error = sign_in(provider.as_ref(), &fake).await.unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        unavailable_reason(&error),
        "the provider's answer exceeded 1048576 bytes"
    );
}

#[tokio::test]
async fn a_token_endpoint_error_status_is_an_outage_even_if_its_body_says_invalid_grant() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;

    for status in [500, 503, 302, 404] {
        fake.set_behaviour(Behaviour::TokenStatus(status));

        let error = sign_in(provider.as_ref(), &fake).await.unwrap_err();

        assert_eq!(
            unavailable_reason(&error),
            format!("the provider answered HTTP {status}")
        );
    }
}

#[tokio::test]
async fn a_400_invalid_grant_is_a_rejection() {
    let fake = FakeProvider::start().await;
    let provider = oidc(&fake).await;
    fake.set_behaviour(Behaviour::TokenStatus(400));

    let result = sign_in(provider.as_ref(), &fake).await;

    assert!(matches!(result, Err(ProviderError::Rejected)), "{result:?}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_an_outage_not_a_rejected_code() {
    // A misconfiguration must page someone, not read as "the user's code was bad".
    let fake = FakeProvider::start().await;
    let ProviderConfig::Oidc {
        id,
        issuer,
        client_id,
        redirect_uri,
        scopes,
        ..
    } = oidc_config(&fake)
    else {
        unreachable!()
    };
    let config = ProviderConfig::Oidc {
        id,
        issuer,
        client_id,
        client_secret: SecretString::from("not-the-secret"),
        redirect_uri,
        scopes,
    };
    let provider = build_provider(config, &HttpSettings::default())
        .await
        .unwrap();

    let error = sign_in(provider.as_ref(), &fake).await.unwrap_err();

    assert_eq!(
        unavailable_reason(&error),
        "the token endpoint refused the request (invalid_client)"
    );
}

// --- Discovery and configuration ---------------------------------------------------------------

#[tokio::test]
async fn discovery_naming_another_issuer_is_a_setup_error() {
    let fake = FakeProvider::start().await;
    fake.set_behaviour(Behaviour::WrongDiscoveryIssuer);

    let result = build_provider(oidc_config(&fake), &HttpSettings::default()).await;

    assert!(
        matches!(result, Err(OAuthSetupError::IssuerMismatch { ref issuer }) if *issuer == fake.issuer()),
        "{result:?}"
    );
}

#[tokio::test]
async fn discovery_with_a_plain_http_endpoint_off_loopback_is_a_setup_error() {
    let fake = FakeProvider::start().await;
    fake.set_behaviour(Behaviour::InsecureEndpoint);

    let result = build_provider(oidc_config(&fake), &HttpSettings::default()).await;

    assert!(
        matches!(
            result,
            Err(OAuthSetupError::InsecureUrl {
                field: "token_endpoint"
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_setup_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let fake = FakeProvider::start().await;
    let mut config = oidc_config(&fake);
    if let ProviderConfig::Oidc { issuer, .. } = &mut config {
        *issuer = format!("http://127.0.0.1:{port}");
    }

    let result = build_provider(config, &HttpSettings::default()).await;

    let Err(error @ OAuthSetupError::Discovery { .. }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(
        std::error::Error::source(&error).unwrap().to_string(),
        "the connection to the provider failed"
    );
}

#[tokio::test]
async fn unusable_configurations_are_refused_before_any_request() {
    let fake = FakeProvider::start().await;
    let with = |change: fn(&mut ProviderConfig)| {
        let mut config = oidc_config(&fake);
        change(&mut config);
        config
    };
    let cases: [(ProviderConfig, &str); 6] = [
        (
            with(|c| {
                if let ProviderConfig::Oidc { issuer, .. } = c {
                    *issuer = "http://accounts.example.com".to_owned();
                }
            }),
            "the issuer URL must be an absolute https URL",
        ),
        (
            with(|c| {
                if let ProviderConfig::Oidc { redirect_uri, .. } = c {
                    *redirect_uri = "http://app.example.com/callback".to_owned();
                }
            }),
            "the redirect_uri URL must be an absolute https URL",
        ),
        (
            with(|c| {
                if let ProviderConfig::Oidc { redirect_uri, .. } = c {
                    *redirect_uri = "https://app.example.com/callback#fragment".to_owned();
                }
            }),
            "the redirect_uri URL must be an absolute https URL",
        ),
        (
            with(|c| {
                if let ProviderConfig::Oidc { scopes, .. } = c {
                    *scopes = vec!["email".to_owned()];
                }
            }),
            "invalid OAuth provider configuration: the scopes of an OpenID Connect provider must include openid",
        ),
        (
            with(|c| {
                if let ProviderConfig::Oidc { id, .. } = c {
                    *id = "Fake/../admin".to_owned();
                }
            }),
            "invalid OAuth provider configuration: the provider id must be 1 to 32 of a-z, 0-9 and -",
        ),
        (
            ProviderConfig::Github {
                client_id: CLIENT_ID.to_owned(),
                client_secret: SecretString::from(CLIENT_SECRET),
                redirect_uri: REDIRECT_URI.to_owned(),
                authorize_url: "https://github.com/login/oauth/authorize".to_owned(),
                token_url: "http://github.com/login/oauth/access_token".to_owned(),
                api_base_url: "https://api.github.com".to_owned(),
            },
            "the token_url URL must be an absolute https URL",
        ),
    ];

    for (config, expected) in cases {
        let error = build_provider(config, &HttpSettings::default())
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), expected);
    }
}

#[test]
fn the_presets_point_at_the_real_providers() {
    let secret = || SecretString::from("s");
    let ProviderConfig::Oidc {
        id, issuer, scopes, ..
    } = ProviderConfig::google("c".to_owned(), secret(), "https://app/cb".to_owned())
    else {
        panic!("google is an OIDC issuer");
    };
    assert_eq!(
        (id.as_str(), issuer.as_str()),
        ("google", "https://accounts.google.com")
    );
    assert!(
        scopes.is_empty(),
        "the default scopes: openid email profile"
    );

    let ProviderConfig::Github {
        authorize_url,
        token_url,
        api_base_url,
        ..
    } = ProviderConfig::github("c".to_owned(), secret(), "https://app/cb".to_owned())
    else {
        panic!("github is GitHub");
    };
    assert_eq!(authorize_url, "https://github.com/login/oauth/authorize");
    assert_eq!(token_url, "https://github.com/login/oauth/access_token");
    assert_eq!(api_base_url, "https://api.github.com");
}

#[tokio::test]
async fn debug_output_never_shows_a_secret() {
    let fake = FakeProvider::start().await;
    let config = oidc_config(&fake);
    let provider = oidc(&fake).await;
    let github = github(&fake).await;
    let start: ProviderStart = provider.start().unwrap();

    let printed = format!("{config:?} {provider:?} {github:?} {start:?}");

    assert!(!printed.contains(CLIENT_SECRET), "{printed}");
    assert!(!printed.contains(secret(&start.state)), "{printed}");
    assert!(!printed.contains(secret(&start.pkce_verifier)), "{printed}");
    assert!(printed.contains(CLIENT_ID), "{printed}");
}

// --- GitHub --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_github_sign_in_yields_the_numeric_id_and_the_primary_email() {
    let fake = FakeProvider::start().await;
    let provider = github(&fake).await;

    let start = provider.start().unwrap();
    let params = query(&start.authorize_url);
    let (code, state) = fake.authorize(&start.authorize_url);
    let identity = provider
        .finish(&code, &start.pkce_verifier, None)
        .await
        .unwrap();

    assert_eq!(identity, alice());
    assert_eq!(provider.id(), "github");
    assert_eq!(state, secret(&start.state));
    assert!(start.nonce.is_none());
    assert!(
        start
            .authorize_url
            .starts_with(&fake.github_authorize_url())
    );
    assert_eq!(params["scope"], "read:user user:email");
    assert_eq!(params["redirect_uri"], REDIRECT_URI);
    assert_eq!(params["code_challenge"], s256(secret(&start.pkce_verifier)));
    assert_eq!(params["code_challenge_method"], "S256");
    assert!(!params.contains_key("nonce"));
}

#[tokio::test]
async fn an_unverified_primary_github_email_is_unverified_even_if_another_address_is_verified() {
    let fake = FakeProvider::start().await;
    let provider = github(&fake).await;
    fake.set_user(FakeUser {
        email_verified: false,
        ..FakeUser::default()
    });

    let identity = sign_in(provider.as_ref(), &fake).await.unwrap();

    assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    assert!(!identity.email_verified);
}

#[tokio::test]
async fn github_answering_bad_verification_code_with_200_is_a_rejection() {
    let fake = FakeProvider::start().await;
    let provider = github(&fake).await;
    let start = provider.start().unwrap();
    let (code, _) = fake.authorize(&start.authorize_url);
    provider
        .finish(&code, &start.pkce_verifier, None)
        .await
        .unwrap();

    let replay = provider.finish(&code, &start.pkce_verifier, None).await;

    assert!(matches!(replay, Err(ProviderError::Rejected)), "{replay:?}");
}

#[tokio::test]
async fn a_github_user_of_the_wrong_shape_is_unavailable_and_the_error_quotes_nothing() {
    let fake = FakeProvider::start().await;
    let provider = github(&fake).await;
    fake.set_user(FakeUser {
        subject: "not-a-number".to_owned(),
        ..FakeUser::default()
    });

    let error = sign_in(provider.as_ref(), &fake).await.unwrap_err();

    assert_eq!(
        unavailable_reason(&error),
        "the provider's answer is not of the expected shape (at `id`)"
    );
    assert!(!format!("{error:?}").contains("not-a-number"));
}

#[tokio::test]
async fn a_slow_github_is_unavailable_within_the_timeout() {
    let fake = FakeProvider::start().await;
    let settings = HttpSettings {
        total_timeout: Duration::from_millis(300),
        ..HttpSettings::default()
    };
    let provider = build_provider(github_config(&fake), &settings)
        .await
        .unwrap();
    fake.set_behaviour(Behaviour::Slow(Duration::from_secs(5)));
    let started = Instant::now();

    let error = sign_in(provider.as_ref(), &fake).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        unavailable_reason(&error),
        "the request to the provider timed out"
    );
}
