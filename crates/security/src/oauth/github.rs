//! GitHub: plain OAuth 2.0 (no ID token), so the identity comes from its REST API.
//!
//! The code is exchanged at the token endpoint (client credentials in the form body, as GitHub
//! documents; PKCE S256 as everywhere). GitHub answers a bad, used or expired code with **200**
//! and `{"error":"bad_verification_code"}`, which is treated as the refused grant it is. With the
//! access token, `GET /user` gives the stable numeric `id` (the subject — never the login, which a
//! user can rename and someone else can then take) and `GET /user/emails` the addresses: the
//! identity's email is the one marked `primary`, and it is verified only if GitHub says so for that
//! very address. The access token is used for these two requests and then dropped.

use std::fmt;

use async_trait::async_trait;
use bulwark_domain::oauth::{OAuthProvider, ProviderError, ProviderIdentity, ProviderStart};
use bulwark_domain::opaque::MintError;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::transport::ProviderHttp;
use super::{
    OAuthSetupError, checked_client_id, checked_url, exchange_error, is_pkce_verifier,
    is_plausible_code, new_pkce, random_token, unavailable,
};

/// The scopes asked for: the profile (for the id and name) and the email addresses.
const SCOPES: [&str; 2] = ["read:user", "user:email"];
/// GitHub's REST API media type.
const API_ACCEPT: &str = "application/vnd.github+json";
/// Codes in a token answer that mean "this code is refused" rather than "something is broken".
const REJECTION_CODES: [&str; 1] = ["bad_verification_code"];

/// The configuration of GitHub, as [`super::ProviderConfig::Github`] gives it.
pub(super) struct GithubSettings {
    pub(super) client_id: String,
    pub(super) client_secret: SecretString,
    pub(super) redirect_uri: String,
    pub(super) authorize_url: String,
    pub(super) token_url: String,
    pub(super) api_base_url: String,
}

type GithubClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// GitHub behind the [`OAuthProvider`] port.
pub(super) struct GithubProvider {
    client: GithubClient,
    api_base_url: String,
    http: ProviderHttp,
}

impl fmt::Debug for GithubProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubProvider")
            .field("client_id", &self.client.client_id().as_str())
            .field("api_base_url", &self.api_base_url)
            .finish_non_exhaustive()
    }
}

impl GithubProvider {
    /// Checks the configuration and builds the adapter (no request is sent).
    pub(super) fn new(
        settings: GithubSettings,
        http: ProviderHttp,
    ) -> Result<Self, OAuthSetupError> {
        checked_client_id(&settings.client_id)?;
        let authorize_url = checked_url("authorize_url", &settings.authorize_url, true)?;
        let token_url = checked_url("token_url", &settings.token_url, true)?;
        let api_base_url = checked_url("api_base_url", &settings.api_base_url, true)?;
        if api_base_url.query().is_some() {
            return Err(OAuthSetupError::InvalidConfig(
                "the API base URL must not have a query",
            ));
        }
        checked_url("redirect_uri", &settings.redirect_uri, true)?;
        let redirect_uri =
            RedirectUrl::new(settings.redirect_uri).map_err(|_| OAuthSetupError::InsecureUrl {
                field: "redirect_uri",
            })?;
        let client = BasicClient::new(ClientId::new(settings.client_id))
            .set_client_secret(ClientSecret::new(
                settings.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::from_url(authorize_url))
            .set_token_uri(TokenUrl::from_url(token_url))
            .set_redirect_uri(redirect_uri)
            .set_auth_type(AuthType::RequestBody);
        Ok(Self {
            client,
            api_base_url: settings.api_base_url.trim_end_matches('/').to_owned(),
            http,
        })
    }
}

/// `GET /user`: the fields used.
#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
}

/// One entry of `GET /user/emails`.
#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

#[async_trait]
impl OAuthProvider for GithubProvider {
    fn id(&self) -> &str {
        "github"
    }

    fn start(&self) -> Result<ProviderStart, MintError> {
        let state = random_token()?;
        let (challenge, verifier) = new_pkce()?;
        let (url, state) = self
            .client
            .authorize_url(|| CsrfToken::new(state))
            .add_scopes(SCOPES.iter().map(|&scope| Scope::new(scope.to_owned())))
            .set_pkce_challenge(challenge)
            .url();
        Ok(ProviderStart {
            authorize_url: url.into(),
            state: SecretString::from(state.into_secret()),
            pkce_verifier: SecretString::from(verifier.into_secret()),
            nonce: None,
        })
    }

    async fn finish(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        _nonce: Option<&SecretString>,
    ) -> Result<ProviderIdentity, ProviderError> {
        if !is_plausible_code(code) || !is_pkce_verifier(pkce_verifier.expose_secret()) {
            return Err(ProviderError::Rejected);
        }
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(
                pkce_verifier.expose_secret().to_owned(),
            ))
            .request_async(&self.http)
            .await
            .map_err(|error| exchange_error(error, &REJECTION_CODES))?;
        let access_token = tokens.access_token().secret();

        let user: GithubUser = self
            .http
            .get_json(
                &format!("{}/user", self.api_base_url),
                API_ACCEPT,
                Some(access_token),
            )
            .await
            .map_err(unavailable)?;
        let emails: Vec<GithubEmail> = self
            .http
            .get_json(
                &format!("{}/user/emails", self.api_base_url),
                API_ACCEPT,
                Some(access_token),
            )
            .await
            .map_err(unavailable)?;

        let primary = emails.into_iter().find(|email| email.primary);
        Ok(ProviderIdentity {
            subject: user.id.to_string(),
            email_verified: primary.as_ref().is_some_and(|email| email.verified),
            email: primary.map(|email| email.email.to_lowercase()),
            name: user
                .name
                .filter(|name| !name.is_empty())
                .or(Some(user.login).filter(|login| !login.is_empty())),
        })
    }
}
