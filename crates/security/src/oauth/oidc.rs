//! OpenID Connect: one issuer, found by discovery, its ID tokens checked against its JWKS.
//!
//! - **Discovery** (`{issuer}/.well-known/openid-configuration`) runs when the provider is built
//!   and again when the document is an hour old (a failed refresh keeps the previous document and
//!   is retried a minute later). The document must name the configured issuer *exactly* — that
//!   string is what every ID token's `iss` is compared with — and its endpoints must be `https`
//!   (plain `http` only to loopback, and only when the issuer itself is on loopback: test mode).
//! - **The JWKS** is fetched at the first sign-in and kept for an hour. A token whose `kid` is not
//!   in it (the issuer rotated its keys) triggers one refetch, at most once a minute: otherwise
//!   anyone could make us hammer the issuer by sending tokens with made-up key ids.
//! - **Keys decide the algorithm.** Each usable JWK maps to exactly one algorithm — RSA to RS256,
//!   EC P-256 to ES256, OKP Ed25519 to EdDSA; a JWK whose `alg` says otherwise, whose `use` is not
//!   `sig`, or of any other type is ignored — and the token's header `alg` must be that algorithm.
//!   So `alg: none`, HMAC "signed" with a public key, and RS/ES confusion all fail before any
//!   signature is computed.
//! - **Claims**: `iss`, `aud` (contains our client id), `exp` (30 s leeway), `nbf` if present,
//!   `iat` present, `azp` equal to our client id when present (and required when there are several
//!   audiences, as OIDC Core §3.1.3.7 advises), `sub` of 1..=255 characters, and the `nonce` of this
//!   sign-in, compared in constant time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bulwark_domain::oauth::{OAuthProvider, ProviderError, ProviderIdentity, ProviderStart};
use bulwark_domain::opaque::MintError;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::transport::ProviderHttp;
use super::{
    OAuthSetupError, checked_client_id, checked_url, exchange_error, is_loopback_http,
    is_pkce_verifier, is_plausible_code, new_pkce, random_token, unavailable,
};

/// How long a discovery document is used before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(60 * 60);
/// How long after a failed re-discovery the next attempt is made.
const DISCOVERY_RETRY: Duration = Duration::from_secs(60);
/// How long a JWKS is used before it is fetched again.
const JWKS_TTL: Duration = Duration::from_secs(60 * 60);
/// The least time between two JWKS refetches caused by an unknown `kid`.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;
/// The scopes asked for when none are configured.
const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// The configuration of one OIDC provider, as [`super::ProviderConfig::Oidc`] gives it.
pub(super) struct OidcSettings {
    pub(super) id: String,
    pub(super) issuer: String,
    pub(super) client_id: String,
    pub(super) client_secret: SecretString,
    pub(super) redirect_uri: String,
    pub(super) scopes: Vec<String>,
}

/// The token response of an OIDC code exchange: a standard one plus the `id_token`, which is
/// required (a token response without one is unusable).
#[derive(Deserialize, Serialize)]
struct IdTokenField {
    id_token: String,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdTokenField([REDACTED])")
    }
}

impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

/// An oauth2 client with the discovered authorization and token endpoints.
type OidcClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The members of a discovery document this adapter uses (OpenID Connect Discovery 1.0 §3).
#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

/// What discovery found, ready to use.
struct Discovered {
    client: OidcClient,
    jwks_uri: String,
}

/// What never changes after configuration.
struct Static {
    id: String,
    issuer: String,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: RedirectUrl,
    scopes: Vec<Scope>,
    /// The issuer is plain `http` on loopback: endpoints may be too.
    test_mode: bool,
}

/// An OpenID Connect issuer behind the [`OAuthProvider`] port.
pub(super) struct OidcProvider {
    config: Static,
    http: ProviderHttp,
    discovered: RwLock<Arc<Discovered>>,
    /// When the discovery document is next fetched; the lock also lets one refresh run at a time.
    refresh_after: tokio::sync::Mutex<Instant>,
    jwks: tokio::sync::Mutex<JwksCache>,
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("id", &self.config.id)
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .field("redirect_uri", &self.config.redirect_uri.as_str())
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// Checks the configuration and performs discovery.
    pub(super) async fn discover(
        settings: OidcSettings,
        http: ProviderHttp,
    ) -> Result<Self, OAuthSetupError> {
        let id_ok = (1..=32).contains(&settings.id.len())
            && settings
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(OAuthSetupError::InvalidConfig(
                "the provider id must be 1 to 32 of a-z, 0-9 and -",
            ));
        }
        checked_client_id(&settings.client_id)?;
        let issuer = checked_url("issuer", &settings.issuer, true)?;
        if issuer.query().is_some() {
            return Err(OAuthSetupError::InvalidConfig(
                "the issuer must not have a query",
            ));
        }
        checked_url("redirect_uri", &settings.redirect_uri, true)?;
        let redirect_uri =
            RedirectUrl::new(settings.redirect_uri).map_err(|_| OAuthSetupError::InsecureUrl {
                field: "redirect_uri",
            })?;
        let scopes: Vec<String> = if settings.scopes.is_empty() {
            DEFAULT_SCOPES.iter().map(|&s| s.to_owned()).collect()
        } else {
            settings.scopes
        };
        if !scopes.iter().any(|s| s == "openid") {
            return Err(OAuthSetupError::InvalidConfig(
                "the scopes of an OpenID Connect provider must include openid",
            ));
        }
        if scopes
            .iter()
            .any(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"'))
        {
            return Err(OAuthSetupError::InvalidConfig(
                "a scope must be printable ASCII without spaces or quotes",
            ));
        }

        let config = Static {
            id: settings.id,
            test_mode: is_loopback_http(&issuer),
            issuer: settings.issuer,
            client_id: settings.client_id,
            client_secret: settings.client_secret,
            redirect_uri,
            scopes: scopes.into_iter().map(Scope::new).collect(),
        };
        let discovered = config.discover(&http).await?;
        Ok(Self {
            config,
            http,
            discovered: RwLock::new(Arc::new(discovered)),
            refresh_after: tokio::sync::Mutex::new(Instant::now() + DISCOVERY_TTL),
            jwks: tokio::sync::Mutex::new(JwksCache::default()),
        })
    }

    fn current(&self) -> Arc<Discovered> {
        // A panic elsewhere while holding the lock leaves a complete `Arc` behind.
        self.discovered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The discovery document, fetched again once it is an hour old.
    async fn fresh_discovery(&self) -> Arc<Discovered> {
        let mut refresh_after = self.refresh_after.lock().await;
        if Instant::now() < *refresh_after {
            return self.current();
        }
        match self.config.discover(&self.http).await {
            Ok(discovered) => {
                let discovered = Arc::new(discovered);
                *self
                    .discovered
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = discovered.clone();
                *refresh_after = Instant::now() + DISCOVERY_TTL;
                discovered
            }
            Err(error) => {
                // The previous document is still the issuer's last word; sign-ins go on with it.
                tracing::warn!(provider = %self.config.id, error = %error, "OIDC re-discovery failed; keeping the previous document");
                *refresh_after = Instant::now() + DISCOVERY_RETRY;
                self.current()
            }
        }
    }

    /// The verified claims of `id_token`.
    async fn validate_id_token(
        &self,
        id_token: &str,
        expected_nonce: &SecretString,
        jwks_uri: &str,
    ) -> Result<IdTokenClaims, ProviderError> {
        let header =
            jsonwebtoken::decode_header(id_token).map_err(|_| invalid(IdTokenError::Malformed))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| invalid(IdTokenError::NoKeyId))?;
        let key = self.key_for(kid, jwks_uri).await?;
        // The key decides the algorithm; the header only has to agree.
        if header.alg != key.algorithm {
            return Err(invalid(IdTokenError::AlgorithmMismatch));
        }

        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<IdTokenClaims>(id_token, &key.key, &validation)
            .map_err(|error| invalid(IdTokenError::from_jwt(error.kind())))?
            .claims;

        if claims.iat.is_none() {
            return Err(invalid(IdTokenError::MissingClaim("iat")));
        }
        let several_audiences = claims.aud.len() > 1;
        match claims.azp.as_deref() {
            Some(azp) if azp != self.config.client_id => {
                return Err(invalid(IdTokenError::AuthorizedParty));
            }
            None if several_audiences => return Err(invalid(IdTokenError::AuthorizedParty)),
            _ => {}
        }
        let nonce_matches = claims.nonce.as_deref().is_some_and(|nonce| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                nonce.as_bytes(),
                expected_nonce.expose_secret().as_bytes(),
            )
            .is_ok()
        });
        if !nonce_matches {
            return Err(invalid(IdTokenError::Nonce));
        }
        Ok(claims)
    }

    /// The issuer's key named `kid`: from the cached JWKS, fetching it when it is missing or an
    /// hour old, and once more (at most once a minute) when `kid` is unknown.
    async fn key_for(&self, kid: &str, jwks_uri: &str) -> Result<VerifyingKey, ProviderError> {
        let mut cache = self.jwks.lock().await;
        let stale = cache.uri != jwks_uri
            || cache
                .fetched_at
                .is_none_or(|fetched| fetched.elapsed() >= JWKS_TTL);
        if stale {
            cache.refresh(&self.http, jwks_uri).await?;
        }
        if let Some(key) = cache.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_refetch = !stale
            && cache
                .last_unknown_kid_refetch
                .is_none_or(|last| last.elapsed() >= JWKS_REFETCH_INTERVAL);
        if may_refetch {
            cache.last_unknown_kid_refetch = Some(Instant::now());
            cache.refresh(&self.http, jwks_uri).await?;
            if let Some(key) = cache.keys.get(kid) {
                return Ok(key.clone());
            }
        }
        Err(invalid(IdTokenError::UnknownKey))
    }
}

impl Static {
    /// Fetches and checks the discovery document, and builds the oauth2 client from it.
    async fn discover(&self, http: &ProviderHttp) -> Result<Discovered, OAuthSetupError> {
        // OIDC Discovery §4: a trailing `/` of the issuer is removed before appending the path.
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let document: DiscoveryDocument = http
            .get_json(&url, "application/json", None)
            .await
            .map_err(|error| OAuthSetupError::Discovery {
                issuer: self.issuer.clone(),
                source: Box::new(error),
            })?;
        if document.issuer != self.issuer {
            return Err(OAuthSetupError::IssuerMismatch {
                issuer: self.issuer.clone(),
            });
        }
        let authorization_endpoint = checked_url(
            "authorization_endpoint",
            &document.authorization_endpoint,
            self.test_mode,
        )?;
        let token_endpoint =
            checked_url("token_endpoint", &document.token_endpoint, self.test_mode)?;
        checked_url("jwks_uri", &document.jwks_uri, self.test_mode)?;
        let unusable = |reason| OAuthSetupError::UnusableDiscovery {
            issuer: self.issuer.clone(),
            reason,
        };
        if document
            .code_challenge_methods_supported
            .is_some_and(|methods| !methods.iter().any(|m| m == "S256"))
        {
            return Err(unusable("the issuer does not support PKCE with S256"));
        }
        // Absent means client_secret_basic (Discovery §3); basic is preferred when offered.
        let auth_type = match document.token_endpoint_auth_methods_supported {
            None => AuthType::BasicAuth,
            Some(methods) if methods.iter().any(|m| m == "client_secret_basic") => {
                AuthType::BasicAuth
            }
            Some(methods) if methods.iter().any(|m| m == "client_secret_post") => {
                AuthType::RequestBody
            }
            Some(_) => {
                return Err(unusable(
                    "the token endpoint takes neither client_secret_basic nor client_secret_post",
                ));
            }
        };
        let client = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::from_url(authorization_endpoint))
            .set_token_uri(TokenUrl::from_url(token_endpoint))
            .set_redirect_uri(self.redirect_uri.clone())
            .set_auth_type(auth_type);
        Ok(Discovered {
            client,
            jwks_uri: document.jwks_uri,
        })
    }
}

#[async_trait]
impl OAuthProvider for OidcProvider {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn start(&self) -> Result<ProviderStart, MintError> {
        let state = random_token()?;
        let nonce = random_token()?;
        let (challenge, verifier) = new_pkce()?;
        let discovered = self.current();
        let (url, state) = discovered
            .client
            .authorize_url(|| CsrfToken::new(state))
            .add_scopes(self.config.scopes.iter().cloned())
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.clone())
            .url();
        Ok(ProviderStart {
            authorize_url: url.into(),
            state: SecretString::from(state.into_secret()),
            pkce_verifier: SecretString::from(verifier.into_secret()),
            nonce: Some(SecretString::from(nonce)),
        })
    }

    async fn finish(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: Option<&SecretString>,
    ) -> Result<ProviderIdentity, ProviderError> {
        let Some(nonce) = nonce else {
            return Err(invalid(IdTokenError::NoNonce));
        };
        if !is_plausible_code(code) || !is_pkce_verifier(pkce_verifier.expose_secret()) {
            return Err(ProviderError::Rejected);
        }
        let discovered = self.fresh_discovery().await;
        let tokens = discovered
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(
                pkce_verifier.expose_secret().to_owned(),
            ))
            .request_async(&self.http)
            .await
            .map_err(|error| exchange_error(error, &[]))?;
        let claims = self
            .validate_id_token(&tokens.extra_fields().id_token, nonce, &discovered.jwks_uri)
            .await?;
        claims.into_identity().map_err(invalid)
    }
}

/// A key of the issuer and the one algorithm it verifies.
#[derive(Clone)]
struct VerifyingKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The issuer's keys by `kid`, and when they were fetched.
#[derive(Default)]
struct JwksCache {
    uri: String,
    keys: HashMap<String, VerifyingKey>,
    fetched_at: Option<Instant>,
    last_unknown_kid_refetch: Option<Instant>,
}

impl JwksCache {
    async fn refresh(&mut self, http: &ProviderHttp, uri: &str) -> Result<(), ProviderError> {
        let document: JwkSetDocument = http
            .get_json(uri, "application/jwk-set+json, application/json", None)
            .await
            .map_err(unavailable)?;
        let mut keys = HashMap::new();
        for (kid, key) in document.keys.iter().filter_map(JwkDocument::verifying_key) {
            // Two keys under one kid: the first wins, the same rule every lookup then follows.
            keys.entry(kid).or_insert(key);
        }
        self.keys = keys;
        self.uri = uri.to_owned();
        self.fetched_at = Some(Instant::now());
        Ok(())
    }
}

/// A JWK Set (RFC 7517 §5); keys this adapter cannot use are skipped, not fatal.
#[derive(Deserialize)]
struct JwkSetDocument {
    keys: Vec<JwkDocument>,
}

/// The members of a JWK this adapter reads (RFC 7517 §4, RFC 7518 §6). All optional, so one key of
/// an unknown type does not make the whole set unreadable.
#[derive(Deserialize)]
struct JwkDocument {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// base64url (no padding) of 32 bytes: a P-256 coordinate or an Ed25519 public key.
const COORDINATE_LEN: usize = 43;

impl JwkDocument {
    /// The key's id and the key with its one algorithm, if this JWK is a signing key we accept.
    fn verifying_key(&self) -> Option<(String, VerifyingKey)> {
        let kid = self.kid.clone().filter(|kid| !kid.is_empty())?;
        if self.usage.as_deref().is_some_and(|usage| usage != "sig") {
            return None;
        }
        let coordinate = |c: &Option<String>| {
            c.as_deref()
                .filter(|c| c.len() == COORDINATE_LEN)
                .map(str::to_owned)
        };
        let (algorithm, key) = match (self.kty.as_deref()?, self.crv.as_deref()) {
            ("RSA", _) => (
                Algorithm::RS256,
                DecodingKey::from_rsa_components(self.n.as_deref()?, self.e.as_deref()?).ok()?,
            ),
            ("EC", Some("P-256")) => (
                Algorithm::ES256,
                DecodingKey::from_ec_components(&coordinate(&self.x)?, &coordinate(&self.y)?)
                    .ok()?,
            ),
            ("OKP", Some("Ed25519")) => (
                Algorithm::EdDSA,
                DecodingKey::from_ed_components(&coordinate(&self.x)?).ok()?,
            ),
            _ => return None,
        };
        // A key that names its algorithm must name the one its type stands for here.
        if self
            .alg
            .as_deref()
            .is_some_and(|alg| alg != algorithm_name(algorithm))
        {
            return None;
        }
        Some((kid, VerifyingKey { algorithm, key }))
    }
}

const fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        // Never produced by `verifying_key`.
        _ => "",
    }
}

/// The ID token claims this adapter reads; jsonwebtoken checks `exp`, `nbf`, `iss` and `aud`.
#[derive(Deserialize)]
struct IdTokenClaims {
    sub: String,
    #[serde(deserialize_with = "one_or_many")]
    aud: Vec<String>,
    iat: Option<f64>,
    nonce: Option<String>,
    azp: Option<String>,
    email: Option<String>,
    email_verified: Option<FlexibleBool>,
    name: Option<String>,
}

/// `aud` is one string or an array of them (RFC 7519 §4.1.3).
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// `email_verified` as a boolean, or as the string `"true"`/`"false"` some issuers send.
#[derive(Deserialize)]
#[serde(untagged)]
enum FlexibleBool {
    Bool(bool),
    Text(String),
}

impl IdTokenClaims {
    fn into_identity(self) -> Result<ProviderIdentity, IdTokenError> {
        if !(1..=255).contains(&self.sub.chars().count()) {
            return Err(IdTokenError::Subject);
        }
        let email_verified = match self.email_verified {
            Some(FlexibleBool::Bool(verified)) => verified,
            Some(FlexibleBool::Text(text)) => text == "true",
            None => false,
        };
        let email = self
            .email
            .filter(|email| !email.is_empty())
            .map(|email| email.to_lowercase());
        Ok(ProviderIdentity {
            subject: self.sub,
            // Verified says something about an address; without one it says nothing.
            email_verified: email_verified && email.is_some(),
            email,
            name: self.name.filter(|name| !name.is_empty()),
        })
    }
}

/// Why an ID token was refused. Fixed phrases: never a claim's value.
#[derive(Debug, thiserror::Error)]
enum IdTokenError {
    #[error("no nonce was kept for this OpenID Connect sign-in")]
    NoNonce,
    #[error("the ID token is malformed")]
    Malformed,
    #[error("the ID token names no key id (kid)")]
    NoKeyId,
    #[error("the ID token's key id is not in the issuer's JWKS")]
    UnknownKey,
    #[error("the ID token's algorithm is not the one its key is for")]
    AlgorithmMismatch,
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is not valid yet")]
    NotYetValid,
    #[error("the ID token was issued by another issuer")]
    Issuer,
    #[error("the ID token is meant for another client")]
    Audience,
    #[error("the ID token's authorized party (azp) is not this client")]
    AuthorizedParty,
    #[error("the ID token's nonce is not this sign-in's")]
    Nonce,
    #[error("the ID token lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("the ID token's subject is empty or longer than 255 characters")]
    Subject,
    #[error("the ID token's claims are not of the expected shape")]
    Claims,
}

impl IdTokenError {
    fn from_jwt(kind: &ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => Self::Signature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidIssuer => Self::Issuer,
            ErrorKind::InvalidAudience => Self::Audience,
            ErrorKind::MissingRequiredClaim(claim) => Self::MissingClaim(match claim.as_str() {
                "exp" => "exp",
                "iss" => "iss",
                "aud" => "aud",
                "sub" => "sub",
                _ => "a required",
            }),
            ErrorKind::InvalidAlgorithm
            | ErrorKind::MissingAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::UnsupportedAlgorithm => Self::AlgorithmMismatch,
            ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => Self::Claims,
            _ => Self::Malformed,
        }
    }
}

fn invalid(error: IdTokenError) -> ProviderError {
    ProviderError::InvalidIdToken(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: &str) -> Option<Algorithm> {
        let document: JwkDocument = serde_json::from_str(json).unwrap();
        document.verifying_key().map(|(_, key)| key.algorithm)
    }

    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn each_key_type_stands_for_exactly_one_algorithm() {
        let ec = format!(r#"{{"kty":"EC","crv":"P-256","kid":"k","x":"{X}","y":"{Y}"}}"#);
        let ed = format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{X}"}}"#);
        let rsa = r#"{"kty":"RSA","kid":"k","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}"#;

        assert_eq!(jwk(&ec), Some(Algorithm::ES256));
        assert_eq!(jwk(&ed), Some(Algorithm::EdDSA));
        assert_eq!(jwk(rsa), Some(Algorithm::RS256));
    }

    #[test]
    fn keys_that_could_confuse_the_algorithm_are_ignored() {
        for json in [
            // A symmetric key: HMAC "signed" with something public.
            r#"{"kty":"oct","kid":"k","k":"c2VjcmV0"}"#.to_owned(),
            // An EC key claiming to be for RS256.
            format!(r#"{{"kty":"EC","crv":"P-256","kid":"k","alg":"RS256","x":"{X}","y":"{Y}"}}"#),
            // An encryption key.
            format!(r#"{{"kty":"EC","crv":"P-256","kid":"k","use":"enc","x":"{X}","y":"{Y}"}}"#),
            // Curves and types we do not accept, and a key without a kid.
            format!(r#"{{"kty":"EC","crv":"P-384","kid":"k","x":"{X}","y":"{Y}"}}"#),
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{X}","y":"{Y}"}}"#),
            format!(r#"{{"kty":"EC","crv":"P-256","kid":"k","x":"{X}"}}"#),
            r#"{"kid":"k"}"#.to_owned(),
        ] {
            assert_eq!(jwk(&json), None, "{json}");
        }
    }

    #[test]
    fn email_verified_is_true_only_for_true_or_the_string_true() {
        let identity = |verified: &str| {
            let json = format!(
                r#"{{"sub":"s","aud":"c","email":"a@b.example","email_verified":{verified}}}"#
            );
            serde_json::from_str::<IdTokenClaims>(&json)
                .unwrap()
                .into_identity()
                .unwrap()
                .email_verified
        };

        assert!(identity("true"));
        assert!(identity(r#""true""#));
        assert!(!identity("false"));
        assert!(!identity(r#""false""#));
        assert!(!identity(r#""yes""#));
        assert!(!identity("null"));
    }

    #[test]
    fn a_subject_must_have_1_to_255_characters() {
        let identity = |sub: &str| {
            IdTokenClaims {
                sub: sub.to_owned(),
                aud: vec!["c".to_owned()],
                iat: Some(0.0),
                nonce: None,
                azp: None,
                email: Some("Ünïcode@Example.COM".to_owned()),
                email_verified: None,
                name: Some(String::new()),
            }
            .into_identity()
        };

        assert!(identity("").is_err());
        assert!(identity(&"é".repeat(256)).is_err());
        let ok = identity(&"é".repeat(255)).unwrap();
        assert_eq!(ok.email.as_deref(), Some("ünïcode@example.com"));
        assert_eq!(ok.name, None);
        assert!(!ok.email_verified);
    }
}
