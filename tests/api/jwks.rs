//! `/.well-known/jwks.json`: the keys that verify access tokens, and nothing private.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bulwark_security::keys::{JwtSigningKey, KeyId, generate_keys};
use bulwark_security::tokens::VerificationKey;
use secrecy::ExposeSecret;

use crate::helpers::{TestApp, assert_security_headers};

#[tokio::test]
async fn the_jwks_publishes_the_signing_keys_public_part_only() {
    let app = TestApp::spawn().await;

    let response = app.get_jwks().await;

    assert_eq!(response.status(), 200);
    assert_security_headers(&response);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let set: serde_json::Value = response.json().await.unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].as_str().unwrap().starts_with("jwt-"));
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(key["x"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["alg", "crv", "kid", "kty", "use", "x"],
        "no private member such as `d`"
    );
}

#[tokio::test]
async fn during_a_rotation_the_jwks_lists_the_previous_key_too() {
    let old = generate_keys().unwrap();
    let old_key =
        JwtSigningKey::parse(KeyId::parse(&old.jwt_key_id).unwrap(), &old.jwt_signing_key).unwrap();
    let entry = VerificationKey::of(&old_key).to_env_entry();
    let app = TestApp::spawn_with(&[("JWT_VERIFICATION_KEYS", entry.as_str())]).await;

    let set: serde_json::Value = app.get_jwks().await.json().await.unwrap();

    let kids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[1], old.jwt_key_id);
    let published = URL_SAFE_NO_PAD
        .decode(set["keys"][1]["x"].as_str().unwrap())
        .unwrap();
    assert_eq!(STANDARD.encode(published), entry.split_once(':').unwrap().1);
    // The private keys appear nowhere.
    let text = set.to_string();
    assert!(!text.contains(old.jwt_signing_key.expose_secret()));
}
