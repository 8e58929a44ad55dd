//! `GET /.well-known/jwks.json`: the public keys that verify access tokens (RFC 7517).
//!
//! Resource servers and clients fetch this to verify tokens offline. It lists the current signing
//! key and any earlier keys still accepted during a rotation; never a private part (`d`).

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

/// One public key.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "jwt-3f9a1c2b", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}))]
pub struct Jwk {
    /// Key type: always `OKP` (octet key pair).
    pub kty: &'static str,
    /// Curve: always `Ed25519`.
    pub crv: &'static str,
    /// Algorithm: always `EdDSA`.
    pub alg: &'static str,
    /// Use: always `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// Key id, as in the `kid` header of tokens.
    pub kid: String,
    /// The public key, base64url without padding.
    pub x: String,
}

impl Jwk {
    /// An Ed25519 signature key.
    #[must_use]
    pub fn ed25519(kid: String, x: String) -> Self {
        Self {
            kty: "OKP",
            crv: "Ed25519",
            alg: "EdDSA",
            use_: "sig",
            kid,
            x,
        }
    }
}

/// The key set.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JwkSet {
    /// Current signing key first.
    pub keys: Vec<Jwk>,
}

/// The public keys that verify access tokens.
#[utoipa::path(
    tag = "auth",
    operation_id = "get_jwks",
    security(()),
    responses((status = 200, description = "The JSON Web Key Set.", body = JwkSet)),
)]
#[get("/.well-known/jwks.json")]
pub async fn jwks(set: web::Data<JwkSet>) -> HttpResponse {
    // Public, and rotated rarely; a client may cache it briefly (and refetch on an unknown `kid`).
    HttpResponse::Ok()
        .insert_header((
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ))
        .json(set.as_ref())
}
