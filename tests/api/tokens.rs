//! Access tokens under attack: every forged, altered, expired or misused token is refused with the
//! contract's 401 and `WWW-Authenticate` challenge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{Account, TestApp, assert_problem};

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a real token of `account`.
fn claims_of(account: &Account) -> Value {
    let payload = account.access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header_of(account: &Account) -> Value {
    let header = account.access_token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// A token signed with the app's real key, with these claims and header fields.
fn signed(app: &TestApp, claims: &Value, kid: Option<&str>, typ: &str) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    header.typ = Some(typ.to_owned());
    let key = EncodingKey::from_ed_der(&app.signing_pkcs8);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let response = app.get_me(token).await;
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some(r#"Bearer error="invalid_token""#),
        "{why}"
    );
    let problem = assert_problem(response, 401).await;
    assert_eq!(
        problem.type_uri, "urn:bulwark:problem:unauthenticated",
        "{why}"
    );
}

#[tokio::test]
async fn a_real_token_has_the_contract_claims_and_no_personal_data() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;

    let header = header_of(&account);
    let claims = claims_of(&account);

    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], app.signing_kid.as_str());
    for claim in ["iss", "aud", "sub", "sid", "iat", "nbf", "exp", "jti"] {
        assert!(claims.get(claim).is_some(), "{claim}");
    }
    assert_eq!(claims["sub"], account.user_id.as_str());
    let ttl = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(ttl <= 900);
    assert!(!claims.to_string().contains("ada@example.com"));
}

#[tokio::test]
async fn missing_or_malformed_authorization_is_refused_with_the_challenge() {
    let app = TestApp::spawn().await;

    let none = app.get("/api/v1/users/me").await;
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_problem(none, 401).await;
    for value in ["Basic YWRhOnB3", "Bearer", "Bearer not.a.jwt", "Token abc"] {
        let response = app
            .client
            .get(app.url("/api/v1/users/me"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{value}");
    }
}

#[tokio::test]
async fn alg_none_in_any_casing_is_refused() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    let claims = claims_of(&account);

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": app.signing_kid});
        let unsigned = format!("{}.{}.", b64(&header), b64(&claims));
        assert_refused(&app, &unsigned, alg).await;
        // The same with the original signature kept.
        let original_sig = account.access_token.rsplit('.').next().unwrap();
        let with_sig = format!("{}.{}.{original_sig}", b64(&header), b64(&claims));
        assert_refused(&app, &with_sig, alg).await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    let claims = claims_of(&account);

    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(app.signing_kid.clone());
    header.typ = Some("at+jwt".into());
    // The classic key-confusion attack: the public key (raw, and as the JWKS `x` text) as an HMAC
    // secret.
    let jwks_x = URL_SAFE_NO_PAD.encode(&app.public_key);
    for secret in [app.public_key.clone(), jwks_x.into_bytes()] {
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_refused(&app, &token, "HS256 with the public key").await;
    }
}

#[tokio::test]
async fn tampered_claims_with_the_original_signature_are_refused() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    let other = app.signed_up("bob@example.com").await;
    let parts: Vec<&str> = account.access_token.split('.').collect();

    let mut claims = claims_of(&account);
    claims["sub"] = json!(other.user_id);
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_refused(&app, &tampered, "sub changed").await;

    let mut claims = claims_of(&account);
    claims["exp"] = json!(now() + 86_400);
    let extended = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_refused(&app, &extended, "exp extended").await;
}

#[tokio::test]
async fn unknown_and_injected_key_ids_are_refused() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    let claims = claims_of(&account);

    for kid in [
        "jwt-unknown",
        "../../../../etc/passwd",
        "' or '1'='1",
        "x'; drop table users; --",
        "",
    ] {
        let token = signed(&app, &claims, Some(kid), "at+jwt");
        assert_refused(&app, &token, kid).await;
    }
    let no_kid = signed(&app, &claims, None, "at+jwt");
    assert_refused(&app, &no_kid, "no kid").await;
    // The database is intact and the real token still works.
    assert_eq!(app.get_me(&account.access_token).await.status(), 200);
}

#[tokio::test]
async fn expired_future_and_foreign_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;
    let base = claims_of(&account);
    let kid = app.signing_kid.clone();

    // Control: the same claims, re-signed, are accepted — so each refusal below is about the one
    // claim that changed.
    let control = signed(&app, &base, Some(&kid), "at+jwt");
    assert_eq!(app.get_me(&control).await.status(), 200);

    let cases: [(&str, Value); 4] = [
        (
            "expired",
            json!({"iat": now() - 3600, "nbf": now() - 3600, "exp": now() - 600}),
        ),
        (
            "nbf in the future",
            json!({"nbf": now() + 600, "exp": now() + 900}),
        ),
        ("wrong issuer", json!({"iss": "https://evil.example"})),
        ("wrong audience", json!({"aud": "another-api"})),
    ];
    for (why, changes) in cases {
        let mut claims = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let token = signed(&app, &claims, Some(&kid), "at+jwt");
        assert_refused(&app, &token, why).await;
    }
}

#[tokio::test]
async fn other_tokens_are_never_accepted_as_access_tokens() {
    let app = TestApp::spawn().await;
    let account = app.signed_up("ada@example.com").await;

    // The refresh token itself.
    assert_refused(&app, &account.refresh_token, "refresh token").await;
    // A JWT signed with the right key but another type.
    let claims = claims_of(&account);
    for typ in ["JWT", "refresh+jwt", "reset"] {
        let token = signed(&app, &claims, Some(&app.signing_kid), typ);
        assert_refused(&app, &token, typ).await;
    }
    // A verification token from the mail.
    let verify = app.mailed_token("ada@example.com", "verify_email").await;
    assert_refused(&app, &verify, "verification token").await;
}
