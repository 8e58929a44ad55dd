//! Sign-in with an outside identity provider, behind the domain's [`OAuthProvider`] port: GitHub
//! (OAuth 2.0 plus its REST API) and any OpenID Connect issuer (Google is one).
//!
//! An adapter does two things. [`OAuthProvider::start`] mints the secrets of one sign-in — a
//! `state`, a PKCE verifier and, for OIDC, a `nonce`, each 256 bits from aws-lc's CSPRNG in
//! base64url — and builds the authorization URL that carries the state, the S256 challenge of the
//! verifier and the nonce. [`OAuthProvider::finish`] turns the code that came back into an identity
//! the service can trust: it exchanges the code (with the verifier), and then either validates the
//! ID token (OIDC) or asks GitHub's API who the token belongs to.
//!
//! What this module refuses to trust, and where:
//!
//! - **The network answer.** Every request goes through one locked-down reqwest 0.13 client per
//!   provider (module `transport`): no proxy, no redirects followed (a 3xx is an unusable answer,
//!   not a new URL to visit), a connect timeout and a total timeout that includes reading the
//!   body, and a size cap enforced while the body streams in, so a provider answering 50 MB costs
//!   us one megabyte and a failed sign-in, not a worker's memory. Answers are parsed into serde structs
//!   that name the fields we need (unknown fields are ignored, a missing one is an unusable answer).
//! - **The ID token.** Its `kid` must name a key of the issuer's JWKS; the algorithm is fixed by
//!   that key (RSA → RS256, P-256 → ES256, Ed25519 → EdDSA) and the token's `alg` must equal it, so
//!   `none`, HMAC and key confusion are impossible by construction; then `iss` (the configured
//!   issuer, which discovery had to confirm exactly), `aud` (our client id, with `azp` checked when
//!   present or when there are several audiences), `exp` (30 s of leeway), `iat` and the `nonce`
//!   (compared in constant time). See the `oidc` module.
//! - **Its own words.** Errors say what went wrong in fixed phrases: never a token, never the
//!   provider's response text (serde's messages quote the offending value, so only the *path* of a
//!   misshapen field is kept), never a URL with a query.
//!
//! **Why the `oauth2` crate, and without its default features.** The authorization URL, PKCE and
//! the form-encoded code exchange with its error vocabulary (`invalid_grant`, …) are exactly what
//! a well-kept crate should do for us. Its default features bring reqwest 0.12 and with it `ring`
//! (a second crypto backend, which makes rustls panic at start-up) and a second HTTP stack, so the
//! crate is used with `default-features = false`: it builds requests as `http::Request`s and hands
//! them to `transport::ProviderHttp`, our adapter implementing `oauth2::AsyncHttpClient` over the
//! project's client. Its PKCE and CSRF helpers would draw randomness from `rand` 0.8; ours comes
//! from aws-lc (the verifier is made here and only its S256 challenge is computed by oauth2).
//! Without default features oauth2 still depends on `rand` 0.8, `sha2` 0.10 and `chrono` (not
//! optional in oauth2 5.0); the workspace already built all three for other crates, and none is a
//! TLS backend. `cargo tree -p bulwark-security -i ring --target all` finds nothing.
//! What oauth2 does not cover — OIDC discovery, JWKS, ID tokens — is jsonwebtoken and glue here.
//!
//! Discovery runs in [`build_provider`] (a provider whose issuer is unreachable or misconfigured
//! fails at start-up, loudly, instead of at the first sign-in) and is refreshed after an hour.

mod github;
mod oidc;
mod transport;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_domain::oauth::{OAuthProvider, ProviderError};
use bulwark_domain::opaque::MintError;
use oauth2::basic::{BasicErrorResponse, BasicErrorResponseType};
use oauth2::{PkceCodeChallenge, PkceCodeVerifier, RequestTokenError};
use secrecy::SecretString;
use url::Url;

use self::transport::{HttpError, ProviderHttp};

/// How the providers' HTTP client behaves.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The longest a TCP (and TLS) connection to the provider may take to open.
    pub connect_timeout: Duration,
    /// The longest one request may take, from connecting to the last byte of the body.
    pub total_timeout: Duration,
    /// The most bytes of one response body that are read; a larger answer is unusable.
    pub max_response_bytes: usize,
}

impl Default for HttpSettings {
    /// 3 s to connect, 10 s per request, 1 MiB per answer (a JWKS or a token response is a few KiB).
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
        }
    }
}

/// One identity provider as configured. `Debug` prints no secret (`SecretString` redacts itself).
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    /// GitHub: OAuth 2.0 + its REST API (user, emails). URLs overridable for tests: every URL must
    /// be `https`, except plain `http` to 127.0.0.1/localhost.
    Github {
        /// The OAuth app's client id.
        client_id: String,
        /// The OAuth app's client secret.
        client_secret: SecretString,
        /// Our callback URL, exactly as registered with GitHub.
        redirect_uri: String,
        /// The authorization endpoint (`https://github.com/login/oauth/authorize`).
        authorize_url: String,
        /// The token endpoint (`https://github.com/login/oauth/access_token`).
        token_url: String,
        /// The REST API's base (`https://api.github.com`); `/user` and `/user/emails` are read.
        api_base_url: String,
    },
    /// Any OpenID Connect issuer (Google is one: issuer <https://accounts.google.com>), found by
    /// discovery.
    Oidc {
        /// The provider's id in paths (`/oauth/{id}/…`): 1 to 32 of `a-z`, `0-9` and `-`.
        id: String,
        /// The issuer identifier; `{issuer}/.well-known/openid-configuration` must name exactly
        /// this issuer. `https`, or `http://127.0.0.1…`/`http://localhost…` for tests.
        issuer: String,
        /// The client id registered with the issuer (the ID token's expected `aud`).
        client_id: String,
        /// The client secret registered with the issuer.
        client_secret: SecretString,
        /// Our callback URL, exactly as registered with the issuer (`https`, or plain `http` to
        /// 127.0.0.1/localhost).
        redirect_uri: String,
        /// Scopes to ask for; empty means `openid email profile`. Must contain `openid`.
        scopes: Vec<String>,
    },
}

impl ProviderConfig {
    /// GitHub with its real endpoints.
    #[must_use]
    pub fn github(client_id: String, client_secret: SecretString, redirect_uri: String) -> Self {
        Self::Github {
            client_id,
            client_secret,
            redirect_uri,
            authorize_url: "https://github.com/login/oauth/authorize".to_owned(),
            token_url: "https://github.com/login/oauth/access_token".to_owned(),
            api_base_url: "https://api.github.com".to_owned(),
        }
    }

    /// Google, as the OIDC issuer `https://accounts.google.com` with id `google` and the default
    /// scopes.
    #[must_use]
    pub fn google(client_id: String, client_secret: SecretString, redirect_uri: String) -> Self {
        Self::Oidc {
            id: "google".to_owned(),
            issuer: "https://accounts.google.com".to_owned(),
            client_id,
            client_secret,
            redirect_uri,
            scopes: Vec::new(),
        }
    }
}

/// A provider could not be set up. Configuration values (issuers, field names) may appear in the
/// message; secrets and the provider's answers never do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthSetupError {
    /// A configured value is unusable (the reason is a fixed phrase).
    #[error("invalid OAuth provider configuration: {0}")]
    InvalidConfig(&'static str),
    /// A URL is not absolute `https` (plain `http` is allowed to 127.0.0.1/localhost only).
    #[error("the {field} URL must be an absolute https URL")]
    InsecureUrl {
        /// Which URL: `issuer`, `redirect_uri`, `token_endpoint`, …
        field: &'static str,
    },
    /// The HTTP client could not be built (the TLS backend or platform verifier failed).
    #[error("the OAuth HTTP client could not be built")]
    HttpClient(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The discovery document could not be fetched or is not of the expected shape.
    #[error("OpenID Connect discovery failed for the issuer {issuer}")]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// Why (our own words: timeout, status, shape).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The discovery document names an issuer other than the configured one (a mix-up or a
    /// misconfiguration: ID tokens would be checked against the wrong issuer).
    #[error("the discovery document at {issuer} names another issuer")]
    IssuerMismatch {
        /// The configured issuer.
        issuer: String,
    },
    /// The discovery document lacks something this adapter requires.
    #[error("the discovery document of {issuer} is unusable: {reason}")]
    UnusableDiscovery {
        /// The configured issuer.
        issuer: String,
        /// A fixed phrase.
        reason: &'static str,
    },
}

/// Builds the adapter for `config`: checks the configuration, builds its HTTP client and, for an
/// OIDC issuer, performs discovery.
///
/// # Errors
/// [`OAuthSetupError`] when the configuration is unusable, the client cannot be built, or
/// discovery fails (unreachable issuer, wrong shape, another issuer named, insecure endpoints).
pub async fn build_provider(
    config: ProviderConfig,
    http: &HttpSettings,
) -> Result<Arc<dyn OAuthProvider>, OAuthSetupError> {
    let client =
        ProviderHttp::new(http).map_err(|error| OAuthSetupError::HttpClient(Box::new(error)))?;
    match config {
        ProviderConfig::Github {
            client_id,
            client_secret,
            redirect_uri,
            authorize_url,
            token_url,
            api_base_url,
        } => Ok(Arc::new(github::GithubProvider::new(
            github::GithubSettings {
                client_id,
                client_secret,
                redirect_uri,
                authorize_url,
                token_url,
                api_base_url,
            },
            client,
        )?)),
        ProviderConfig::Oidc {
            id,
            issuer,
            client_id,
            client_secret,
            redirect_uri,
            scopes,
        } => Ok(Arc::new(
            oidc::OidcProvider::discover(
                oidc::OidcSettings {
                    id,
                    issuer,
                    client_id,
                    client_secret,
                    redirect_uri,
                    scopes,
                },
                client,
            )
            .await?,
        )),
    }
}

/// 32 bytes from aws-lc's CSPRNG in base64url without padding (43 characters): a `state`, a
/// `nonce` or a PKCE verifier. 43 characters of the base64url alphabet are a valid RFC 7636
/// verifier (43..=128 of `[A-Za-z0-9-._~]`).
fn random_token() -> Result<String, MintError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| MintError)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    bytes.fill(0);
    Ok(token)
}

/// A fresh PKCE verifier and its S256 challenge.
fn new_pkce() -> Result<(PkceCodeChallenge, PkceCodeVerifier), MintError> {
    let verifier = PkceCodeVerifier::new(random_token()?);
    // `from_code_verifier_sha256` asserts 43..=128 characters; `random_token` always gives 43.
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    Ok((challenge, verifier))
}

/// Whether `verifier` has the shape RFC 7636 §4.1 requires. A verifier that does not could only
/// come from a bug or a forged callback; it is refused before any request is sent.
fn is_pkce_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `code` is plausibly an authorization code: non-empty, printable ASCII, bounded. (The
/// provider decides whether it is valid; this only keeps junk off the wire.)
fn is_plausible_code(code: &str) -> bool {
    (1..=2048).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `url` is plain `http` to a loopback host (127.0.0.0/8, `[::1]` or `localhost`): the
/// only plain-HTTP targets allowed, so tests can run providers on this machine.
fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

/// Parses a configured or discovered URL and requires `https` (or, when `allow_loopback_http`,
/// plain `http` to a loopback host), no credentials and no fragment.
fn checked_url(
    field: &'static str,
    raw: &str,
    allow_loopback_http: bool,
) -> Result<Url, OAuthSetupError> {
    let insecure = || OAuthSetupError::InsecureUrl { field };
    let url = Url::parse(raw).map_err(|_| insecure())?;
    let scheme_ok = url.scheme() == "https" || (allow_loopback_http && is_loopback_http(&url));
    if !scheme_ok
        || url.host().is_none()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(insecure());
    }
    Ok(url)
}

/// A non-empty client id without control characters.
fn checked_client_id(client_id: &str) -> Result<(), OAuthSetupError> {
    if client_id.is_empty() || client_id.len() > 256 || client_id.chars().any(char::is_control) {
        return Err(OAuthSetupError::InvalidConfig(
            "the client id must be 1 to 256 printable characters",
        ));
    }
    Ok(())
}

/// Why a code exchange gave no token, in fixed phrases: the provider's `error_description` and
/// body are never kept.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    /// The token endpoint answered an OAuth error other than a refused grant; the RFC 6749 code
    /// (an extension code is not repeated: it is the provider's text).
    #[error("the token endpoint refused the request ({0})")]
    Refused(&'static str),
    /// The answer was not a token response of the expected shape.
    #[error("the token endpoint's answer is not of the expected shape (at `{0}`)")]
    Shape(String),
    /// oauth2 found the answer unusable (no JSON content type, empty body).
    #[error("the token endpoint's answer is unusable")]
    Unusable,
}

/// Just the `error` member of an OAuth error body.
#[derive(serde::Deserialize)]
struct ErrorCode {
    error: String,
}

/// Maps a failed code exchange onto the port's errors: a refused grant (`invalid_grant`, or one
/// of `rejection_codes`, which a provider may use instead) is [`ProviderError::Rejected`];
/// everything else is [`ProviderError::Unavailable`].
fn exchange_error(
    error: RequestTokenError<HttpError, BasicErrorResponse>,
    rejection_codes: &[&str],
) -> ProviderError {
    let is_rejection = |code: &str| code == "invalid_grant" || rejection_codes.contains(&code);
    match error {
        RequestTokenError::ServerResponse(response) => {
            let code = response.error();
            if is_rejection(code.as_ref()) {
                ProviderError::Rejected
            } else {
                unavailable(ExchangeError::Refused(standard_code(code)))
            }
        }
        RequestTokenError::Request(error) => unavailable(error),
        RequestTokenError::Parse(error, body) => {
            // A 200 that carries an error instead of a token: GitHub's way of refusing a code.
            match serde_json::from_slice::<ErrorCode>(&body) {
                Ok(ErrorCode { error: code }) if is_rejection(&code) => ProviderError::Rejected,
                Ok(_) => unavailable(ExchangeError::Refused("an error in a success answer")),
                Err(_) => unavailable(ExchangeError::Shape(error.path().to_string())),
            }
        }
        RequestTokenError::Other(_) => unavailable(ExchangeError::Unusable),
    }
}

/// The RFC 6749 §5.2 code, or a fixed phrase for an extension code (which is the provider's text).
const fn standard_code(code: &BasicErrorResponseType) -> &'static str {
    match code {
        BasicErrorResponseType::InvalidClient => "invalid_client",
        BasicErrorResponseType::InvalidGrant => "invalid_grant",
        BasicErrorResponseType::InvalidRequest => "invalid_request",
        BasicErrorResponseType::InvalidScope => "invalid_scope",
        BasicErrorResponseType::UnauthorizedClient => "unauthorized_client",
        BasicErrorResponseType::UnsupportedGrantType => "unsupported_grant_type",
        BasicErrorResponseType::Extension(_) => "a provider-specific error",
    }
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> ProviderError {
    ProviderError::Unavailable(Box::new(error))
}
