//! The one way the OAuth adapters talk to a provider: a reqwest 0.13 client with no proxy, no
//! redirects, timeouts and a response cap, plus the small adapter that lets `oauth2` send its
//! token requests through it.
//!
//! Why a cap read chunk by chunk rather than `Response::bytes()`: `bytes()` buffers whatever the
//! peer sends until the total timeout fires, so a provider (or whoever sits on its DNS) answering
//! 50 MB would cost 50 MB of our memory per sign-in attempt. A declared `Content-Length` over the
//! cap is refused before reading anything; an undeclared one is refused at the first chunk that
//! crosses it.
//!
//! Why the errors are our own enum: reqwest's `Display` names the URL, serde's quotes the
//! offending value (which may be a token or an email). [`HttpError`] says what happened in fixed
//! phrases, keeps reqwest's error (stripped of its URL) as the source for the log, and keeps only
//! the *path* of a misshapen JSON field.

use std::future::Future;
use std::pin::Pin;

use oauth2::http::header::CONTENT_TYPE;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde::de::DeserializeOwned;

use super::HttpSettings;

/// How the adapters introduce themselves (GitHub's API refuses requests without a `User-Agent`).
pub(super) const USER_AGENT: &str = "Bulwark-OAuth/0.1";

/// The providers' HTTP client: one per provider, shared by all its sign-ins (and its pool).
#[derive(Clone)]
pub(super) struct ProviderHttp {
    client: reqwest::Client,
    max_response_bytes: usize,
}

impl std::fmt::Debug for ProviderHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderHttp")
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl ProviderHttp {
    /// Builds the client. rustls on aws-lc-rs with the platform verifier comes from
    /// bulwark-security's reqwest features.
    pub(super) fn new(settings: &HttpSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            // Also ignores HTTP(S)_PROXY: tokens and codes go to the provider and nowhere else.
            .no_proxy()
            // A redirect is a URL we did not configure or discover: never followed.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .user_agent(USER_AGENT)
            .referer(false)
            .http1_only()
            .build()?;
        Ok(Self {
            client,
            max_response_bytes: settings.max_response_bytes,
        })
    }

    /// `GET url` with `Accept: accept` (and a bearer token if given); the answer must be 200 and
    /// JSON of shape `T`.
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        accept: &str,
        bearer: Option<&str>,
    ) -> Result<T, HttpError> {
        let mut request = self.client.get(url).header(ACCEPT, accept);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(HttpError::from_reqwest)?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(HttpError::Status(status.as_u16()));
        }
        let body = self.read_capped(response).await?;
        parse_json(&body)
    }

    /// The body, read chunk by chunk and refused past the cap.
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, HttpError> {
        let cap = self.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|declared| declared > u64::try_from(cap).unwrap_or(u64::MAX))
        {
            return Err(HttpError::TooLarge(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(HttpError::from_reqwest)? {
            if body.len().saturating_add(chunk.len()) > cap {
                return Err(HttpError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// One request built by `oauth2` (the token exchange). 200 is the grant; 400 and 401 are the
    /// token endpoint's error answers (RFC 6749 §5.2), whose JSON body oauth2 reads to tell
    /// `invalid_grant` from the rest. Any other status is unusable and never reaches oauth2, so
    /// a 500 whose body happens to say `invalid_grant` is an outage, not a refused code.
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request).map_err(HttpError::from_reqwest)?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(HttpError::from_reqwest)?;
        let status = response.status();
        if !matches!(status.as_u16(), 200 | 400 | 401) {
            return Err(HttpError::Status(status.as_u16()));
        }
        let mut answer = oauth2::http::Response::builder().status(status);
        // oauth2 checks that a success is JSON; no other header matters to it.
        if let Some(content_type) = response.headers().get(CONTENT_TYPE) {
            answer = answer.header(CONTENT_TYPE, content_type.clone());
        }
        let body = self.read_capped(response).await?;
        answer.body(body).map_err(|_| HttpError::Unusable)
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

/// Parses `body` as `T`, keeping only the path of the field that did not fit.
pub(super) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| HttpError::Shape(error.path().to_string()))
}

/// Why a request to a provider gave no usable answer. Fixed phrases; the source (reqwest's error
/// without its URL) is for the log.
#[derive(Debug, thiserror::Error)]
pub(super) enum HttpError {
    /// Connecting or the whole request took longer than allowed.
    #[error("the request to the provider timed out")]
    TimedOut(#[source] reqwest::Error),
    /// The connection could not be opened (refused, TLS failure, no route).
    #[error("the connection to the provider failed")]
    Connect(#[source] reqwest::Error),
    /// Anything else reqwest reports (the connection broke mid-answer, …).
    #[error("the request to the provider failed")]
    Failed(#[source] reqwest::Error),
    /// The body was larger than the cap.
    #[error("the provider's answer exceeded {0} bytes")]
    TooLarge(usize),
    /// The provider answered a status this request cannot use (including any 3xx).
    #[error("the provider answered HTTP {0}")]
    Status(u16),
    /// The body was not JSON of the expected shape; the path of the first field that did not fit.
    #[error("the provider's answer is not of the expected shape (at `{0}`)")]
    Shape(String),
    /// The answer could not be handed on (headers reqwest accepted but `http` refused).
    #[error("the provider's answer is unusable")]
    Unusable,
}

impl HttpError {
    fn from_reqwest(error: reqwest::Error) -> Self {
        // reqwest's `Display` names the URL; ours never does.
        let error = error.without_url();
        if error.is_timeout() {
            Self::TimedOut(error)
        } else if error.is_connect() {
            Self::Connect(error)
        } else {
            Self::Failed(error)
        }
    }
}
