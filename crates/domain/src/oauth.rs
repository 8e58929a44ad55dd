//! OAuth 2.0 / OpenID Connect sign-in: the port of one identity provider.
//!
//! The use case (state stored server-side and bound to the browser, identities keyed by provider
//! and subject, the linking rule, sessions) lives in the sign-in service; an adapter speaks one
//! provider's protocol: it builds the authorization URL (PKCE S256 always, a `nonce` for OIDC),
//! and turns a code into a verified identity (the code exchange, the ID token's signature against
//! the provider's JWKS, `iss`, `aud`, `exp`, `nonce`; or GitHub's user and emails API), with
//! short timeouts, no redirects followed and capped responses whose shape is validated.

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::opaque::MintError;

/// The start of one sign-in: where to send the browser, and the secrets to keep server-side until
/// the callback.
pub struct ProviderStart {
    /// The provider's authorization URL with `response_type=code`, `client_id`, the configured
    /// `redirect_uri`, `scope`, `state`, `code_challenge` (S256) and, for OIDC, `nonce`.
    pub authorize_url: String,
    /// The `state` (at least 128 random bits, URL-safe).
    pub state: SecretString,
    /// The PKCE verifier (43..=128 characters of the RFC 7636 alphabet).
    pub pkce_verifier: SecretString,
    /// The OIDC `nonce` (`None` for plain OAuth 2.0 providers such as GitHub).
    pub nonce: Option<SecretString>,
}

impl fmt::Debug for ProviderStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderStart").finish_non_exhaustive()
    }
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// The provider's stable id for the user (`sub`; GitHub's numeric id): the only key an
    /// identity is found by. Never the email.
    pub subject: String,
    /// The email the provider gives, if any (lower-cased by the adapter).
    pub email: Option<String>,
    /// Whether the provider asserts it verified that email (`email_verified`; GitHub's
    /// `verified` on the primary address). False when unknown.
    pub email_verified: bool,
    /// A display name, if the provider gives one.
    pub name: Option<String>,
}

/// Why a sign-in could not be completed. None of these carries the provider's words to the client.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached, timed out, answered an error status other than a refused
    /// grant, answered too much, or answered something of the wrong shape.
    #[error("the identity provider is unavailable or answered unusably")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The provider refused the code (`invalid_grant`: unknown, used, expired, or the PKCE
    /// verifier does not match).
    #[error("the identity provider refused the authorization code")]
    Rejected,
    /// The ID token failed validation (signature, `iss`, `aud`, `exp`, `nonce`, algorithm).
    #[error("the ID token is invalid")]
    InvalidIdToken(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One configured identity provider.
#[async_trait]
pub trait OAuthProvider: Send + Sync + fmt::Debug {
    /// The provider's id in paths (`/oauth/{id}/authorize`): `github`, `google`, or the configured
    /// id of a generic OIDC issuer.
    fn id(&self) -> &str;

    /// A fresh `state`, PKCE verifier and (OIDC) `nonce`, and the authorization URL carrying them.
    ///
    /// # Errors
    /// [`MintError`] when the system RNG fails.
    fn start(&self) -> Result<ProviderStart, MintError>;

    /// Exchanges `code` (with the verifier of its `state`) and returns the verified identity. For
    /// OIDC the ID token's `nonce` must equal `nonce`.
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn finish(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: Option<&SecretString>,
    ) -> Result<ProviderIdentity, ProviderError>;
}
