//! A fake identity provider on 127.0.0.1 that plays both an OpenID Connect issuer and GitHub, so
//! the OAuth adapters are tested over real HTTP, against a server that enforces what a real one
//! enforces — and that misbehaves on request.
//!
//! What it checks, like a real provider: client credentials (HTTP Basic per RFC 6749 §2.3.1, or in
//! the form body), that a code is used once, that the PKCE verifier hashes (S256) to the challenge
//! the code was issued for, and that `redirect_uri` and `client_id` are the ones of the
//! authorization request. What it issues: an access token, and for a code whose scope has `openid`
//! an ID token signed ES256 with a P-256 key made by aws-lc-rs at start-up, published at `/jwks`.
//!
//! Endpoints (all under [`FakeProvider::base_url`], which is also the OIDC issuer):
//!
//! | path | plays |
//! | --- | --- |
//! | `/.well-known/openid-configuration` | OIDC discovery |
//! | `/authorize` | the authorization endpoint (302 back to `redirect_uri`); tests usually call [`FakeProvider::authorize`] instead |
//! | `/token` | the OIDC token endpoint: errors are 400 `{"error":"invalid_grant"}` and the like |
//! | `/jwks` | the issuer's public keys |
//! | `/login/oauth/authorize`, `/login/oauth/access_token` | GitHub's: a refused code is **200** `{"error":"bad_verification_code"}` |
//! | `/user`, `/user/emails` | GitHub's REST API (bearer token from a GitHub-style exchange) |
//!
//! [`Behaviour`] turns on one misbehaviour at a time: a forged, expired or misaddressed ID token,
//! a slow or enormous token answer, a discovery document that names another issuer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, LOCATION, USER_AGENT};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use url::Url;

/// The client id the fake provider knows.
pub const CLIENT_ID: &str = "bulwark-test-client";
/// The client secret of [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "bulwark-test-client-secret";

/// How large the [`Behaviour::Huge`] answer is: 50 MB.
pub const HUGE_BODY_BYTES: usize = 50 * 1024 * 1024;

/// The user the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    /// `sub` of the ID token; GitHub's `id` (sent as a JSON number when it is all digits, as
    /// GitHub does, and as a string otherwise).
    pub subject: String,
    /// The email address (OIDC `email`; GitHub's primary address).
    pub email: Option<String>,
    /// Whether the provider vouches for the address.
    pub email_verified: bool,
    /// The display name.
    pub name: Option<String>,
}

impl Default for FakeUser {
    /// Alice, numeric subject, a verified address in mixed case (adapters lower-case it).
    fn default() -> Self {
        Self {
            subject: "583231".to_owned(),
            email: Some("Alice@Example.COM".to_owned()),
            email_verified: true,
            name: Some("Alice Liddell".to_owned()),
        }
    }
}

/// One misbehaviour, or none. ID-token behaviours change the `id_token` of the next exchanges;
/// `Slow`, `Huge` and `TokenStatus` change the token endpoints' answer; the discovery behaviours
/// change the discovery document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// A well-behaved provider.
    #[default]
    Normal,
    /// The ID token carries another `nonce`.
    WrongNonce,
    /// The ID token's `aud` (and `azp`) is another client.
    WrongAudience,
    /// The ID token's `iss` is another issuer.
    WrongIssuer,
    /// The ID token is signed by a key that is not in the JWKS, under the published `kid`.
    BadSignature,
    /// The ID token expired an hour ago.
    Expired,
    /// The ID token is unsigned (`alg: none`).
    AlgNone,
    /// The ID token is "signed" HS256 with the public key's bytes as the HMAC secret.
    KeyConfusion,
    /// The ID token names a `kid` that is not in the JWKS.
    UnknownKid,
    /// The ID token's `email_verified` is the string `"true"`/`"false"` (as some issuers send it).
    EmailVerifiedAsString,
    /// The token endpoints wait this long before answering.
    Slow(Duration),
    /// The token endpoints answer [`HUGE_BODY_BYTES`] of JSON-looking bytes, streamed.
    Huge,
    /// The token endpoints answer this status with `{"error":"invalid_grant"}`.
    TokenStatus(u16),
    /// The discovery document names another issuer.
    WrongDiscoveryIssuer,
    /// The discovery document's token endpoint is plain `http` on a public host.
    InsecureEndpoint,
}

/// A running fake provider; stopped when dropped.
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT`, no trailing slash; also the OIDC issuer.
    pub base_url: String,
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeProvider")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeProvider {
    /// Starts the provider on a free port of 127.0.0.1 (one actix worker) with
    /// [`FakeUser::default`] and [`Behaviour::Normal`].
    ///
    /// # Panics
    /// When no port can be bound: the test cannot run.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("a bound address").port();
        let base_url = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared::new(base_url.clone()));
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks", web::get().to(jwks))
                .route("/authorize", web::get().to(authorize_redirect))
                .route("/login/oauth/authorize", web::get().to(authorize_redirect))
                .route("/token", web::post().to(oidc_token))
                .route("/login/oauth/access_token", web::post().to(github_token))
                .route("/user", web::get().to(github_user))
                .route("/user/emails", web::get().to(github_emails))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen on the bound socket")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base_url,
            shared,
            server: handle,
        }
    }

    /// The OIDC issuer: [`Self::base_url`].
    #[must_use]
    pub fn issuer(&self) -> String {
        self.base_url.clone()
    }

    /// GitHub's authorization endpoint on this fake.
    #[must_use]
    pub fn github_authorize_url(&self) -> String {
        format!("{}/login/oauth/authorize", self.base_url)
    }

    /// GitHub's token endpoint on this fake.
    #[must_use]
    pub fn github_token_url(&self) -> String {
        format!("{}/login/oauth/access_token", self.base_url)
    }

    /// GitHub's API base on this fake ([`Self::base_url`]).
    #[must_use]
    pub fn github_api_base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The user that codes issued from now on belong to.
    pub fn set_user(&self, user: FakeUser) {
        self.shared.state().user = user;
    }

    /// The misbehaviour from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.shared.state().behaviour = behaviour;
    }

    /// A new signing key with a new `kid`; ID tokens are signed with it from now on. The JWKS
    /// keeps publishing the old keys too, as issuers do during a rotation.
    pub fn rotate_key(&self) {
        let key = SigningKey::generate(&format!("key-{}", random_token()));
        self.shared.state().keys.push(key);
    }

    /// What the browser would get back from the authorization endpoint for `authorize_url`: a
    /// fresh single-use code bound to the request's PKCE challenge, nonce, `redirect_uri` and
    /// client id, and the request's `state`.
    ///
    /// # Panics
    /// When the URL is not this provider's, or the request lacks what a real provider requires:
    /// `response_type=code`, the known client id, a `redirect_uri`, a `state`, a `scope` and an
    /// S256 `code_challenge`.
    #[must_use]
    pub fn authorize(&self, authorize_url: &str) -> (String, String) {
        assert!(
            authorize_url.starts_with(&format!("{}/", self.base_url)),
            "not this provider's authorization URL: {authorize_url}"
        );
        let url = Url::parse(authorize_url).expect("the authorization URL parses");
        let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
        match self.shared.issue_code(&params) {
            Ok(issued) => (issued.code, issued.state),
            Err(reason) => panic!("the fake provider refused the authorization request: {reason}"),
        }
    }

    /// How many requests the token endpoints received.
    #[must_use]
    pub fn token_requests(&self) -> usize {
        self.shared.state().token_requests
    }

    /// How many times the JWKS was fetched.
    #[must_use]
    pub fn jwks_requests(&self) -> usize {
        self.shared.state().jwks_requests
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        // `stop` sends the command at once; awaiting its completion is not possible in `drop`.
        #[allow(clippy::let_underscore_future)]
        let _ = self.server.stop(false);
    }
}

/// What the handlers share.
struct Shared {
    base_url: String,
    state: Mutex<State>,
}

struct State {
    user: FakeUser,
    behaviour: Behaviour,
    codes: HashMap<String, Grant>,
    /// Every key ever used; the last signs.
    keys: Vec<SigningKey>,
    /// GitHub-style access tokens and whose they are.
    access_tokens: HashMap<String, FakeUser>,
    token_requests: usize,
    jwks_requests: usize,
}

/// What an authorization code was issued for.
struct Grant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    openid: bool,
    user: FakeUser,
}

/// The answer of the authorization endpoint.
struct Issued {
    code: String,
    state: String,
    redirect_uri: String,
}

impl Shared {
    fn new(base_url: String) -> Self {
        Self {
            base_url,
            state: Mutex::new(State {
                user: FakeUser::default(),
                behaviour: Behaviour::Normal,
                codes: HashMap::new(),
                keys: vec![SigningKey::generate("key-1")],
                access_tokens: HashMap::new(),
                token_requests: 0,
                jwks_requests: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves a state that is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Validates an authorization request and issues a code for it.
    fn issue_code(&self, params: &HashMap<String, String>) -> Result<Issued, &'static str> {
        let param = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
        if param("response_type").as_deref() != Some("code") {
            return Err("response_type must be code");
        }
        if param("client_id").as_deref() != Some(CLIENT_ID) {
            return Err("unknown client_id");
        }
        let redirect_uri = param("redirect_uri").ok_or("redirect_uri missing")?;
        let state = param("state").ok_or("state missing")?;
        let scope = param("scope").ok_or("scope missing")?;
        let code_challenge = param("code_challenge").ok_or("code_challenge missing (PKCE)")?;
        if param("code_challenge_method").as_deref() != Some("S256") {
            return Err("code_challenge_method must be S256");
        }
        let code = random_token();
        let mut guard = self.state();
        let grant = Grant {
            client_id: CLIENT_ID.to_owned(),
            redirect_uri: redirect_uri.clone(),
            code_challenge,
            nonce: param("nonce"),
            openid: scope.split(' ').any(|s| s == "openid"),
            user: guard.user.clone(),
        };
        guard.codes.insert(code.clone(), grant);
        Ok(Issued {
            code,
            state,
            redirect_uri,
        })
    }

    /// A signed (or, per the behaviour, mis-signed) ID token for `grant`.
    fn id_token(&self, state: &State, grant: &Grant) -> String {
        let behaviour = state.behaviour;
        let now = unix_now();
        let (iat, exp) = if behaviour == Behaviour::Expired {
            (now - 7200, now - 3600)
        } else {
            (now, now + 600)
        };
        let audience = if behaviour == Behaviour::WrongAudience {
            "another-client"
        } else {
            grant.client_id.as_str()
        };
        let issuer = if behaviour == Behaviour::WrongIssuer {
            "https://issuer.invalid".to_owned()
        } else {
            self.base_url.clone()
        };
        let mut claims = json!({
            "iss": issuer,
            "sub": grant.user.subject,
            "aud": audience,
            "azp": audience,
            "iat": iat,
            "exp": exp,
        });
        let nonce = if behaviour == Behaviour::WrongNonce {
            Some("not-the-nonce-of-this-sign-in".to_owned())
        } else {
            grant.nonce.clone()
        };
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(email) = &grant.user.email {
            claims["email"] = json!(email);
            claims["email_verified"] = if behaviour == Behaviour::EmailVerifiedAsString {
                json!(grant.user.email_verified.to_string())
            } else {
                json!(grant.user.email_verified)
            };
        }
        if let Some(name) = &grant.user.name {
            claims["name"] = json!(name);
        }

        let current = state.keys.last().expect("there is always a key");
        match behaviour {
            Behaviour::AlgNone => {
                let header = json!({ "alg": "none", "typ": "JWT", "kid": current.kid });
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                )
            }
            Behaviour::KeyConfusion => {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(current.kid.clone());
                let secret = EncodingKey::from_secret(&current.public_point);
                jsonwebtoken::encode(&header, &claims, &secret).expect("HS256 signs")
            }
            Behaviour::BadSignature => {
                let impostor = SigningKey::generate(&current.kid);
                impostor.sign(&current.kid, &claims)
            }
            Behaviour::UnknownKid => current.sign("a-kid-nobody-published", &claims),
            _ => current.sign(&current.kid, &claims),
        }
    }
}

/// One ES256 signing key of the issuer.
struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    /// The uncompressed point, 0x04 || x || y.
    public_point: Vec<u8>,
}

impl SigningKey {
    fn generate(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 keygen");
        Self {
            kid: kid.to_owned(),
            pkcs8: pair.to_pkcs8v1().expect("PKCS#8").as_ref().to_vec(),
            public_point: pair.public_key().as_ref().to_vec(),
        }
    }

    fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8))
            .expect("ES256 signs")
    }

    fn jwk(&self) -> Value {
        let (x, y) = self.public_point[1..].split_at(32);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        })
    }
}

async fn discovery(shared: web::Data<Shared>) -> HttpResponse {
    let base = &shared.base_url;
    let behaviour = shared.state().behaviour;
    let issuer = if behaviour == Behaviour::WrongDiscoveryIssuer {
        format!("{base}/another-tenant")
    } else {
        base.clone()
    };
    let token_endpoint = if behaviour == Behaviour::InsecureEndpoint {
        "http://provider.example/token".to_owned()
    } else {
        format!("{base}/token")
    };
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": token_endpoint,
        "jwks_uri": format!("{base}/jwks"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "email", "email_verified", "name"],
    }))
}

async fn jwks(shared: web::Data<Shared>) -> HttpResponse {
    let mut state = shared.state();
    state.jwks_requests += 1;
    let keys: Vec<Value> = state.keys.iter().map(SigningKey::jwk).collect();
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

async fn authorize_redirect(shared: web::Data<Shared>, request: HttpRequest) -> HttpResponse {
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect();
    match shared.issue_code(&params) {
        Ok(issued) => match Url::parse(&issued.redirect_uri) {
            Ok(mut back) => {
                back.query_pairs_mut()
                    .append_pair("code", &issued.code)
                    .append_pair("state", &issued.state);
                HttpResponse::Found()
                    .insert_header((LOCATION, back.as_str()))
                    .finish()
            }
            Err(_) => HttpResponse::BadRequest().body("redirect_uri is not a URL"),
        },
        Err(reason) => HttpResponse::BadRequest().body(reason),
    }
}

/// How a token endpoint words its errors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// RFC 6749 §5.2: 400 (401 for client authentication) with `{"error": …}`.
    Oidc,
    /// GitHub: 200 with `{"error": …}`.
    Github,
}

async fn oidc_token(
    shared: web::Data<Shared>,
    request: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    token(&shared, &request, &form, Style::Oidc).await
}

async fn github_token(
    shared: web::Data<Shared>,
    request: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    token(&shared, &request, &form, Style::Github).await
}

async fn token(
    shared: &Shared,
    request: &HttpRequest,
    form: &HashMap<String, String>,
    style: Style,
) -> HttpResponse {
    let behaviour = {
        let mut state = shared.state();
        state.token_requests += 1;
        state.behaviour
    };
    match behaviour {
        Behaviour::Slow(delay) => tokio::time::sleep(delay).await,
        Behaviour::Huge => return huge_answer(),
        Behaviour::TokenStatus(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return HttpResponse::build(status).json(json!({ "error": "invalid_grant" }));
        }
        _ => {}
    }

    let refuse = |code: &str| {
        match (style, code) {
        (Style::Github, "invalid_grant") => {
            HttpResponse::Ok().json(json!({ "error": "bad_verification_code", "error_description": "The code passed is incorrect or expired." }))
        }
        (Style::Github, _) => HttpResponse::Ok().json(json!({ "error": code })),
        (Style::Oidc, "invalid_client") => HttpResponse::Unauthorized().json(json!({ "error": code })),
        (Style::Oidc, _) => HttpResponse::BadRequest().json(json!({ "error": code })),
    }
    };

    let field = |name: &str| form.get(name).map(String::as_str);
    let Some(client_id) = authenticate(request, form, style) else {
        return refuse("invalid_client");
    };
    if field("grant_type") != Some("authorization_code") {
        return refuse("unsupported_grant_type");
    }
    // Single use: the code is gone whatever happens next.
    let Some(grant) = field("code").and_then(|code| shared.state().codes.remove(code)) else {
        return refuse("invalid_grant");
    };
    let verifier_ok = field("code_verifier").is_some_and(|verifier| {
        is_pkce_verifier(verifier) && s256(verifier) == grant.code_challenge
    });
    if grant.client_id != client_id
        || field("redirect_uri") != Some(grant.redirect_uri.as_str())
        || !verifier_ok
    {
        return refuse("invalid_grant");
    }

    let access_token = format!("fake_at_{}", random_token());
    let mut state = shared.state();
    state
        .access_tokens
        .insert(access_token.clone(), grant.user.clone());
    match style {
        Style::Github => HttpResponse::Ok().json(json!({
            "access_token": access_token,
            "token_type": "bearer",
            "scope": "read:user,user:email",
        })),
        Style::Oidc => {
            let mut answer = json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": if grant.openid { "openid email profile" } else { "" },
            });
            if grant.openid {
                answer["id_token"] = json!(shared.id_token(&state, &grant));
            }
            HttpResponse::Ok().json(answer)
        }
    }
}

/// The authenticated client id: HTTP Basic (form-urlencoded id and secret, RFC 6749 §2.3.1) or,
/// for the OIDC endpoint, `client_id`/`client_secret` in the body — never both. GitHub takes
/// the body only.
fn authenticate(
    request: &HttpRequest,
    form: &HashMap<String, String>,
    style: Style,
) -> Option<String> {
    let basic = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let in_body = form.get("client_secret").is_some();
    let (id, secret) = match (basic, in_body) {
        (Some(_), true) => return None,
        (Some(_), false) if style == Style::Github => return None,
        (Some(pair), false) => {
            let (id, secret) = pair.split_once(':')?;
            (form_decode(id), form_decode(secret))
        }
        (None, true) => (
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ),
        (None, false) => return None,
    };
    (id == CLIENT_ID && secret == CLIENT_SECRET).then_some(id)
}

/// One `application/x-www-form-urlencoded` component, decoded.
fn form_decode(component: &str) -> String {
    // An encoded component has no raw `=` or `&`, so it parses as a single key.
    url::form_urlencoded::parse(component.as_bytes())
        .next()
        .map(|(key, _)| key.into_owned())
        .unwrap_or_default()
}

/// 50 MB, streamed in 64 KiB chunks so the fake does not hold it in memory.
fn huge_answer() -> HttpResponse {
    const CHUNK: usize = 64 * 1024;
    let filler = Bytes::from(vec![b'a'; CHUNK]);
    let chunks = (0..HUGE_BODY_BYTES / CHUNK).map(move |i| {
        Ok::<_, Infallible>(if i == 0 {
            Bytes::from_static(br#"{"access_token":""#)
        } else {
            filler.clone()
        })
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .streaming(futures_util::stream::iter(chunks))
}

/// Why GitHub's API refused a request.
enum ApiRefusal {
    /// GitHub's API refuses requests without a `User-Agent`.
    NoUserAgent,
    /// No bearer token, or one this provider did not issue.
    BadCredentials,
}

impl ApiRefusal {
    fn response(&self) -> HttpResponse {
        match self {
            Self::NoUserAgent => {
                HttpResponse::Forbidden().json(json!({ "message": "User-Agent required" }))
            }
            Self::BadCredentials => {
                HttpResponse::Unauthorized().json(json!({ "message": "Bad credentials" }))
            }
        }
    }
}

/// The user a GitHub-style bearer token belongs to.
fn github_caller(shared: &Shared, request: &HttpRequest) -> Result<FakeUser, ApiRefusal> {
    if request.headers().get(USER_AGENT).is_none() {
        return Err(ApiRefusal::NoUserAgent);
    }
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| shared.state().access_tokens.get(token).cloned())
        .ok_or(ApiRefusal::BadCredentials)
}

async fn github_user(shared: web::Data<Shared>, request: HttpRequest) -> HttpResponse {
    match github_caller(&shared, &request) {
        Ok(user) => {
            let id = user
                .subject
                .parse::<u64>()
                .map_or_else(|_| json!(user.subject), |id| json!(id));
            HttpResponse::Ok().json(json!({
                "login": format!("user{}", user.subject),
                "id": id,
                "node_id": "MDQ6VXNlcjE=",
                "type": "User",
                "name": user.name,
                "email": null,
            }))
        }
        Err(refusal) => refusal.response(),
    }
}

async fn github_emails(shared: web::Data<Shared>, request: HttpRequest) -> HttpResponse {
    match github_caller(&shared, &request) {
        Ok(user) => {
            // A verified but non-primary address first: the adapter must pick the primary one.
            let mut emails = vec![json!({
                "email": format!("{}+user@users.noreply.github.com", user.subject),
                "primary": false,
                "verified": true,
                "visibility": null,
            })];
            if let Some(email) = &user.email {
                emails.push(json!({
                    "email": email,
                    "primary": true,
                    "verified": user.email_verified,
                    "visibility": "public",
                }));
            }
            HttpResponse::Ok().json(emails)
        }
        Err(refusal) => refusal.response(),
    }
}

/// RFC 7636 §4.1: 43..=128 of `[A-Za-z0-9-._~]`.
fn is_pkce_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of `verifier`: base64url(SHA-256(verifier)).
#[must_use]
pub fn s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn authorize_url(provider: &FakeProvider) -> String {
        let mut url = Url::parse(&format!("{}/authorize", provider.base_url)).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", "http://localhost/callback")
            .append_pair("scope", "openid email")
            .append_pair("state", "s")
            .append_pair("nonce", "n")
            .append_pair("code_challenge", &s256(VERIFIER))
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    async fn exchange(provider: &FakeProvider, form: &[(&str, &str)]) -> (u16, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = reqwest::Client::new()
            .post(format!("{}/token", provider.base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    #[test]
    fn the_s256_challenge_is_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            s256(VERIFIER),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[tokio::test]
    async fn the_token_endpoint_enforces_pkce_and_single_use_codes() {
        let provider = FakeProvider::start().await;
        let (code, state) = provider.authorize(&authorize_url(&provider));
        assert_eq!(state, "s");
        let base = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://localhost/callback"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ];

        // No verifier at all: refused, and the code is spent.
        let (status, body) = exchange(&provider, &base).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let mut with_verifier = base.to_vec();
        with_verifier.push(("code_verifier", VERIFIER));
        let (status, _) = exchange(&provider, &with_verifier).await;
        assert_eq!(status, 400);

        // A fresh code with the right verifier works once.
        let (code, _) = provider.authorize(&authorize_url(&provider));
        let mut form = with_verifier.clone();
        form[1] = ("code", code.as_str());
        let (status, body) = exchange(&provider, &form).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["id_token"].is_string());
        let (status, _) = exchange(&provider, &form).await;
        assert_eq!(status, 400);

        // Wrong client secret: 401 invalid_client.
        let (code, _) = provider.authorize(&authorize_url(&provider));
        let mut form = with_verifier;
        form[1] = ("code", code.as_str());
        form[4] = ("client_secret", "wrong");
        let (status, body) = exchange(&provider, &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        assert_eq!(provider.token_requests(), 5);
    }

    #[tokio::test]
    async fn the_authorization_endpoint_redirects_back_with_code_and_state() {
        let provider = FakeProvider::start().await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        let response = client.get(authorize_url(&provider)).send().await.unwrap();

        assert_eq!(response.status().as_u16(), 302);
        let location = response.headers()[LOCATION.as_str()].to_str().unwrap();
        assert!(
            location.starts_with("http://localhost/callback?code="),
            "{location}"
        );
        assert!(location.ends_with("&state=s"), "{location}");
    }

    #[test]
    #[should_panic(expected = "code_challenge missing")]
    fn an_authorization_request_without_pkce_is_refused() {
        let shared = Shared::new("http://127.0.0.1:1".to_owned());
        let params: HashMap<String, String> = [
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "http://localhost/callback"),
            ("scope", "openid"),
            ("state", "s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();

        if let Err(reason) = shared.issue_code(&params) {
            panic!("{reason}");
        }
    }
}
