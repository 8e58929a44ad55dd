//! EdDSA (Ed25519) access tokens with a `kid`, behind the domain's [`AccessTokens`] port, and the
//! public keys for `/.well-known/jwks.json`.
//!
//! Verification is strict and in this order: the header must name EdDSA (the algorithm is pinned,
//! never taken from the token: no `none`, no HMAC-with-the-public-key), say `typ: at+jwt` (so a
//! refresh, reset or ID token is never accepted as an access token) and carry a `kid` that is one
//! of the configured keys; then jsonwebtoken verifies the signature, and only then are the claims
//! read: `iss`, `aud`, `exp`, `nbf` (all required).
//!
//! Rotation: the current signing key signs; the public keys of earlier signing keys stay in
//! `JWT_VERIFICATION_KEYS` until every token they signed has expired (15 minutes at most).
//!
//! Verified tokens are remembered ([`VerifiedTokens`]): a client sends the same token on every
//! request of its lifetime, and the Ed25519 check was the dearest step of a request. Only what
//! passed every check above is remembered, keyed by a hash of the *whole* token (so one changed
//! byte is a different entry, checked in full); `exp` and `nbf` are still checked on every use.
//! Revocation is not this module's business: the session behind the token is checked on every
//! request by `bulwark_domain::auth::AuthService`, cached token or not.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bulwark_domain::token::{
    AccessClaims, AccessTokens, IssuedAccessToken, MAX_ACCESS_TOKEN_TTL_SECS, TokenIssueError,
    TokenRejection,
};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::{JwtSigningKey, KeyError, KeyId};

/// The `typ` header of an access token (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// A public key that verifies tokens signed by an earlier signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationKey {
    kid: KeyId,
    public_key: [u8; 32],
}

impl VerificationKey {
    /// Parses `JWT_VERIFICATION_KEYS`: comma-separated `<kid>:<base64 of the raw 32-byte Ed25519
    /// public key>`. Empty means none.
    ///
    /// # Errors
    /// [`KeyError`] for the first malformed entry.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, KeyError> {
        raw.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .enumerate()
            .map(|(index, entry)| {
                let (kid, key) = entry.split_once(':').ok_or(KeyError::BadEntry(index + 1))?;
                let bytes = STANDARD
                    .decode(key.trim())
                    .map_err(|_| KeyError::NotBase64)?;
                let public_key: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::WrongLength(bytes.len()))?;
                Ok(Self {
                    kid: KeyId::parse(kid.trim())?,
                    public_key,
                })
            })
            .collect()
    }

    /// The verification key of a signing key (what `bulwark keygen` prints for rotation).
    #[must_use]
    pub fn of(signing: &JwtSigningKey) -> Self {
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(signing.public_key());
        Self {
            kid: signing.kid().clone(),
            public_key,
        }
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// `<kid>:<base64>`, the form `JWT_VERIFICATION_KEYS` takes.
    #[must_use]
    pub fn to_env_entry(&self) -> String {
        format!("{}:{}", self.kid, STANDARD.encode(self.public_key))
    }
}

/// One entry of the JWKS document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// Key id.
    pub kid: String,
    /// The Ed25519 public key, base64url without padding (JWK `x`).
    pub x: String,
}

/// Token settings.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` of issued tokens, and the only one accepted.
    pub issuer: String,
    /// `aud` of issued tokens, and the only one accepted.
    pub audience: String,
    /// Lifetime (≤ 15 minutes).
    pub ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Issues and verifies EdDSA access tokens.
pub struct JwtAccessTokens {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    public: Vec<PublicJwk>,
    validation: Validation,
    settings: TokenSettings,
    verified: VerifiedTokens,
}

/// How many verified tokens are remembered: one per client active within a token's lifetime is
/// the working set; beyond it a token is simply verified again. About 150 bytes each.
pub const VERIFIED_TOKENS_CAPACITY: usize = 10_000;

/// Tokens that passed [`JwtAccessTokens`]'s checks, by the SHA-256 of their text, with what they
/// said. Bounded: when full, the expired entries go, and if that frees nothing, all of them (an
/// attacker cannot fill it: only a token this service signed gets in, and signing in is
/// throttled). Never holds a token itself, nor a failure: an invalid token costs a full check
/// every time, exactly as without the cache.
struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Verified>>,
    capacity: usize,
}

/// One remembered token.
#[derive(Clone)]
struct Verified {
    claims: AccessClaims,
    not_before: u64,
}

impl VerifiedTokens {
    fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn key(token: &str) -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        key
    }

    /// The entries; a panic while they were held cannot leave them half-written (each change is
    /// one map operation), so a poisoned lock is used as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Verified>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &[u8; 32]) -> Option<Verified> {
        self.lock().get(key).cloned()
    }

    fn forget(&self, key: &[u8; 32]) {
        self.lock().remove(key);
    }

    fn remember(&self, key: [u8; 32], verified: Verified, now: u64, leeway: u64) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, entry| !expired(entry.claims.expires_at, now, leeway));
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, verified);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// jsonwebtoken's rule for `exp`, to the second: expired once `exp` is more than `leeway` ago.
fn expired(expires_at: u64, now: u64, leeway: u64) -> bool {
    expires_at.saturating_add(leeway) < now
}

impl std::fmt::Debug for JwtAccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAccessTokens")
            .field("kid", &self.kid)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Settings that cannot make a token service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenSetupError {
    /// The lifetime is zero or above 15 minutes.
    #[error("the access token lifetime must be 1 to {MAX_ACCESS_TOKEN_TTL_SECS} seconds")]
    Lifetime,
    /// Two different keys share one key id (the signing key's or another verification key's).
    #[error("key id `{0}` names two different keys")]
    ConflictingKeyId(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    sid: String,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

impl JwtAccessTokens {
    /// A token service signing with `signing` and also accepting tokens of the `previous` keys.
    ///
    /// # Errors
    /// [`TokenSetupError`] for a lifetime out of range or a key id that names two keys.
    pub fn new(
        signing: &JwtSigningKey,
        previous: &[VerificationKey],
        settings: TokenSettings,
    ) -> Result<Self, TokenSetupError> {
        if settings.ttl.is_zero() || settings.ttl.as_secs() > MAX_ACCESS_TOKEN_TTL_SECS {
            return Err(TokenSetupError::Lifetime);
        }
        let current = VerificationKey::of(signing);
        let mut keys = vec![current.clone()];
        for key in previous {
            // One id, one key: two different keys under one `kid` would make verification depend on
            // which one happens to be looked up.
            match keys.iter().find(|k| k.kid == key.kid) {
                Some(existing) if existing != key => {
                    return Err(TokenSetupError::ConflictingKeyId(key.kid.to_string()));
                }
                Some(_) => {}
                None => keys.push(key.clone()),
            }
        }
        let public: Vec<PublicJwk> = keys
            .iter()
            .map(|k| PublicJwk {
                kid: k.kid.to_string(),
                x: URL_SAFE_NO_PAD.encode(k.public_key),
            })
            .collect();
        let decoding = keys
            .iter()
            .map(|k| (k.kid.to_string(), DecodingKey::from_ed_der(&k.public_key)))
            .collect();

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = settings.leeway.as_secs();

        Ok(Self {
            kid: signing.kid().to_string(),
            encoding: EncodingKey::from_ed_der(signing.pkcs8_der().expose_secret()),
            decoding,
            public,
            validation,
            settings,
            verified: VerifiedTokens::new(VERIFIED_TOKENS_CAPACITY),
        })
    }

    /// The public keys, current first, for the JWKS document.
    #[must_use]
    pub fn public_keys(&self) -> &[PublicJwk] {
        &self.public
    }
}

fn now() -> u64 {
    // A clock before 1970 is not a state this service can run in; treat it as the epoch.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AccessTokens for JwtAccessTokens {
    fn issue(&self, user_id: Uuid, session_id: Uuid) -> Result<IssuedAccessToken, TokenIssueError> {
        let issued_at = now();
        let ttl = self.settings.ttl.as_secs();
        let claims = AccessClaims {
            user_id,
            session_id,
            token_id: Uuid::new_v4(),
            issued_at,
            expires_at: issued_at + ttl,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
        let body = Claims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            jti: claims.token_id.to_string(),
            iat: issued_at,
            nbf: issued_at,
            exp: claims.expires_at,
        };
        let token = jsonwebtoken::encode(&header, &body, &self.encoding)
            .map_err(|e| TokenIssueError(Box::new(e)))?;
        Ok(IssuedAccessToken {
            token: SecretString::from(token),
            expires_in: ttl,
            claims,
        })
    }

    fn verify(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        self.verify_at(token, now())
    }
}

impl JwtAccessTokens {
    /// [`AccessTokens::verify`] at `now` (seconds since the epoch): a remembered token's `exp` and
    /// `nbf` are checked against it; a token not remembered gets every check.
    fn verify_at(&self, token: &str, now: u64) -> Result<AccessClaims, TokenRejection> {
        let leeway = self.validation.leeway;
        let key = VerifiedTokens::key(token);
        if let Some(known) = self.verified.get(&key) {
            // The signature, header, issuer and audience were checked when it was remembered and
            // cannot have changed (same bytes); only the clock has moved.
            if expired(known.claims.expires_at, now, leeway) {
                self.verified.forget(&key);
                return Err(TokenRejection::Expired);
            }
            if known.not_before > now.saturating_add(leeway) {
                return Err(TokenRejection::NotYetValid);
            }
            return Ok(known.claims);
        }
        let verified = self.verify_fully(token)?;
        let claims = verified.claims.clone();
        self.verified.remember(key, verified, now, leeway);
        Ok(claims)
    }

    /// Every check, in the order the module documentation gives.
    fn verify_fully(&self, token: &str) -> Result<Verified, TokenRejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                TokenRejection::WrongAlgorithm
            }
            _ => TokenRejection::Malformed,
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenRejection::WrongAlgorithm);
        }
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(TokenRejection::WrongType);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(TokenRejection::UnknownKey)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::InvalidSignature => TokenRejection::BadSignature,
                    ErrorKind::ExpiredSignature => TokenRejection::Expired,
                    ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
                    ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
                    ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
                    ErrorKind::InvalidAlgorithm => TokenRejection::WrongAlgorithm,
                    ErrorKind::MissingRequiredClaim(_)
                    | ErrorKind::Json(_)
                    | ErrorKind::InvalidSubject => TokenRejection::InvalidClaims,
                    _ => TokenRejection::Malformed,
                }
            })?;
        let parse = |raw: &str| Uuid::parse_str(raw).map_err(|_| TokenRejection::InvalidClaims);
        Ok(Verified {
            claims: AccessClaims {
                user_id: parse(&data.claims.sub)?,
                session_id: parse(&data.claims.sid)?,
                token_id: parse(&data.claims.jti)?,
                issued_at: data.claims.iat,
                expires_at: data.claims.exp,
            },
            not_before: data.claims.nbf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_keys;

    fn signing_key() -> JwtSigningKey {
        let keys = generate_keys().unwrap();
        JwtSigningKey::parse(
            KeyId::parse(&keys.jwt_key_id).unwrap(),
            &keys.jwt_signing_key,
        )
        .unwrap()
    }

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "bulwark".into(),
            audience: "bulwark-api".into(),
            ttl: Duration::from_secs(600),
            leeway: Duration::ZERO,
        }
    }

    fn service(key: &JwtSigningKey) -> JwtAccessTokens {
        JwtAccessTokens::new(key, &[], settings()).unwrap()
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    /// Splits a token into decoded header, decoded claims and signature.
    fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
        let mut it = token.split('.');
        let header =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
        let claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
        (header, claims, it.next().unwrap().to_owned())
    }

    fn issue(tokens: &JwtAccessTokens) -> String {
        tokens
            .issue(Uuid::new_v4(), Uuid::new_v4())
            .unwrap()
            .token
            .expose_secret()
            .to_owned()
    }

    #[test]
    fn an_issued_token_verifies_and_says_only_who_and_which_session() {
        let key = signing_key();
        let tokens = service(&key);
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let issued = tokens.issue(user, session).unwrap();
        assert_eq!(issued.expires_in, 600);

        let claims = tokens.verify(issued.token.expose_secret()).unwrap();
        assert_eq!((claims.user_id, claims.session_id), (user, session));

        let (header, body, _) = parts(issued.token.expose_secret());
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], key.kid().as_str());
        let mut names: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["aud", "exp", "iat", "iss", "jti", "nbf", "sid", "sub"]
        );
    }

    #[test]
    fn alg_none_in_any_casing_is_refused() {
        let tokens = service(&signing_key());
        let (_, claims, _) = parts(&issue(&tokens));
        for alg in ["none", "None", "NONE", "nOnE"] {
            let forged = format!(
                "{}.{}.",
                b64(&serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": tokens.kid})),
                b64(&claims)
            );
            let rejection = tokens.verify(&forged).unwrap_err();
            assert!(
                matches!(
                    rejection,
                    TokenRejection::WrongAlgorithm | TokenRejection::Malformed
                ),
                "{alg}: {rejection:?}"
            );
        }
    }

    #[test]
    fn hmac_signed_with_the_public_key_is_refused() {
        // Key confusion: an attacker signs HS256 using the published public key as the secret.
        let key = signing_key();
        let tokens = service(&key);
        let (_, claims, _) = parts(&issue(&tokens));
        let header = serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": tokens.kid});
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.public_key()),
            signing_input.as_bytes(),
        );
        let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(tokens.verify(&forged), Err(TokenRejection::WrongAlgorithm));
    }

    #[test]
    fn tampered_claims_with_the_original_signature_are_refused() {
        let tokens = service(&signing_key());
        let token = issue(&tokens);
        let (header, mut claims, signature) = parts(&token);
        claims["sub"] = serde_json::json!(Uuid::new_v4().to_string());
        let forged = format!("{}.{}.{signature}", b64(&header), b64(&claims));
        assert_eq!(tokens.verify(&forged), Err(TokenRejection::BadSignature));
    }

    #[test]
    fn a_token_signed_by_another_key_with_our_kid_is_refused() {
        let ours = service(&signing_key());
        let theirs = JwtSigningKey::parse(
            KeyId::parse(&ours.kid).unwrap(),
            &generate_keys().unwrap().jwt_signing_key,
        )
        .unwrap();
        let forged = issue(&service(&theirs));
        assert_eq!(ours.verify(&forged), Err(TokenRejection::BadSignature));
    }

    #[test]
    fn unknown_missing_and_hostile_kids_are_refused() {
        let tokens = service(&signing_key());
        let (mut header, claims, signature) = parts(&issue(&tokens));
        for kid in [
            serde_json::json!("other"),
            serde_json::json!("../../etc/passwd"),
            serde_json::json!("' or 1=1 --"),
            serde_json::Value::Null,
        ] {
            header["kid"] = kid.clone();
            let forged = format!("{}.{}.{signature}", b64(&header), b64(&claims));
            assert_eq!(
                tokens.verify(&forged),
                Err(TokenRejection::UnknownKey),
                "{kid}"
            );
        }
    }

    #[test]
    fn other_token_types_are_refused() {
        let tokens = service(&signing_key());
        let (mut header, claims, signature) = parts(&issue(&tokens));
        for typ in [
            serde_json::json!("JWT"),
            serde_json::json!("refresh+jwt"),
            serde_json::Value::Null,
        ] {
            header["typ"] = typ.clone();
            let forged = format!("{}.{}.{signature}", b64(&header), b64(&claims));
            assert_eq!(
                tokens.verify(&forged),
                Err(TokenRejection::WrongType),
                "{typ}"
            );
        }
    }

    /// Signs arbitrary claims with a real key and a correct header: only the claims are wrong.
    fn signed(key: &JwtSigningKey, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(key.kid().to_string());
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_ed_der(key.pkcs8_der().expose_secret()),
        )
        .unwrap()
    }

    #[test]
    fn expired_premature_and_foreign_tokens_are_refused() {
        let key = signing_key();
        let tokens = service(&key);
        let now = now();
        let claims = |iss: &str, aud: &str, nbf: u64, exp: u64| serde_json::json!({"iss": iss, "aud": aud, "sub": Uuid::new_v4(), "sid": Uuid::new_v4(), "jti": Uuid::new_v4(), "iat": now, "nbf": nbf, "exp": exp});
        let cases = [
            (
                claims("bulwark", "bulwark-api", now - 700, now - 100),
                TokenRejection::Expired,
            ),
            (
                claims("bulwark", "bulwark-api", now + 300, now + 900),
                TokenRejection::NotYetValid,
            ),
            (
                claims("evil", "bulwark-api", now, now + 300),
                TokenRejection::WrongIssuer,
            ),
            (
                claims("bulwark", "another-api", now, now + 300),
                TokenRejection::WrongAudience,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(tokens.verify(&signed(&key, &body)), Err(expected), "{body}");
        }
        let no_exp = serde_json::json!({"iss": "bulwark", "aud": "bulwark-api", "sub": Uuid::new_v4(), "sid": Uuid::new_v4(), "jti": Uuid::new_v4(), "iat": now, "nbf": now});
        assert!(tokens.verify(&signed(&key, &no_exp)).is_err());
        let bad_sub = serde_json::json!({"iss": "bulwark", "aud": "bulwark-api", "sub": "admin", "sid": Uuid::new_v4(), "jti": Uuid::new_v4(), "iat": now, "nbf": now, "exp": now + 60});
        assert_eq!(
            tokens.verify(&signed(&key, &bad_sub)),
            Err(TokenRejection::InvalidClaims)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let tokens = service(&signing_key());
        for garbage in [
            "",
            "a",
            "a.b",
            "a.b.c",
            "....",
            "eyJhbGciOiJFZERTQSJ9.e30",
            &"x".repeat(10_000),
        ] {
            let rejection = tokens.verify(garbage).unwrap_err();
            // A header that decodes but says nothing else is refused for its missing `typ`.
            assert!(
                matches!(
                    rejection,
                    TokenRejection::Malformed | TokenRejection::WrongType
                ),
                "{garbage:?}: {rejection:?}"
            );
        }
    }

    #[test]
    fn tokens_of_a_previous_key_verify_during_rotation_and_the_jwks_lists_both() {
        let old = signing_key();
        let old_token = issue(&service(&old));
        let new = signing_key();
        let rotated = JwtAccessTokens::new(&new, &[VerificationKey::of(&old)], settings()).unwrap();
        assert!(rotated.verify(&old_token).is_ok());
        assert!(rotated.verify(&issue(&rotated)).is_ok());
        let kids: Vec<&str> = rotated
            .public_keys()
            .iter()
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(kids, [new.kid().as_str(), old.kid().as_str()]);
        // Without the old key, its tokens are refused.
        assert_eq!(
            service(&new).verify(&old_token),
            Err(TokenRejection::UnknownKey)
        );
    }

    #[test]
    fn verification_keys_parse_from_their_env_form() {
        let key = VerificationKey::of(&signing_key());
        let parsed = VerificationKey::parse_list(&format!(" {} ,", key.to_env_entry())).unwrap();
        assert_eq!(parsed, vec![key]);
        assert!(VerificationKey::parse_list("").unwrap().is_empty());
        assert!(VerificationKey::parse_list("k1:AAAA").is_err());
        assert!(VerificationKey::parse_list("nocolon").is_err());
    }

    #[test]
    fn one_key_id_cannot_name_two_keys() {
        let (current, a, b) = (signing_key(), signing_key(), signing_key());
        let b_as_a =
            JwtSigningKey::parse(a.kid().clone(), &generate_keys().unwrap().jwt_signing_key)
                .unwrap();
        let previous = [VerificationKey::of(&a), VerificationKey::of(&b_as_a)];
        assert!(matches!(
            JwtAccessTokens::new(&current, &previous, settings()),
            Err(TokenSetupError::ConflictingKeyId(_))
        ));
        // The same key listed twice is harmless.
        let twice = [VerificationKey::of(&b), VerificationKey::of(&b)];
        assert_eq!(
            JwtAccessTokens::new(&current, &twice, settings())
                .unwrap()
                .public_keys()
                .len(),
            2
        );
    }

    #[test]
    fn lifetimes_above_fifteen_minutes_are_refused() {
        let key = signing_key();
        for ttl in [0, 901, 3600] {
            let result = JwtAccessTokens::new(
                &key,
                &[],
                TokenSettings {
                    ttl: Duration::from_secs(ttl),
                    ..settings()
                },
            );
            assert_eq!(result.unwrap_err(), TokenSetupError::Lifetime, "{ttl}");
        }
    }

    // --- the verified-token cache -------------------------------------------------------------

    #[test]
    fn a_remembered_token_still_expires_to_the_second() {
        let tokens = service(&signing_key());
        let token = issue(&tokens);
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(tokens.verified.len(), 1);
        // Answered from memory (a time jsonwebtoken would refuse to check against today's clock).
        assert_eq!(
            tokens.verify_at(&token, claims.expires_at),
            Ok(claims.clone())
        );
        assert_eq!(
            tokens.verify_at(&token, claims.expires_at + 1),
            Err(TokenRejection::Expired)
        );
        // Forgotten once expired: no stale entry outlives its token.
        assert_eq!(tokens.verified.len(), 0);
    }

    #[test]
    fn a_remembered_token_keeps_the_leeway_and_not_before_rules() {
        let tokens = JwtAccessTokens::new(
            &signing_key(),
            &[],
            TokenSettings {
                leeway: Duration::from_secs(30),
                ..settings()
            },
        )
        .unwrap();
        let token = issue(&tokens);
        let claims = tokens.verify(&token).unwrap();
        assert!(tokens.verify_at(&token, claims.expires_at + 30).is_ok());
        // A clock stepped back before `nbf` - leeway: refused, as a full check would.
        assert_eq!(
            tokens.verify_at(&token, claims.issued_at - 31),
            Err(TokenRejection::NotYetValid)
        );
        assert_eq!(
            tokens.verify_at(&token, claims.expires_at + 31),
            Err(TokenRejection::Expired)
        );
    }

    #[test]
    fn one_changed_byte_of_a_remembered_token_gets_the_full_check() {
        let tokens = service(&signing_key());
        let token = issue(&tokens);
        tokens.verify(&token).unwrap();
        let (header, claims, signature) = parts(&token);
        // Another signature byte (a character well inside the signature, so every bit counts).
        let at = token.len() - 10;
        let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
        let resigned = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
        assert_eq!(tokens.verify(&resigned), Err(TokenRejection::BadSignature));
        // Claims changed under the remembered signature: another user.
        let mut forged_claims = claims;
        forged_claims["sub"] = serde_json::json!(Uuid::new_v4().to_string());
        let forged = format!("{}.{}.{signature}", b64(&header), b64(&forged_claims));
        assert_eq!(tokens.verify(&forged), Err(TokenRejection::BadSignature));
        // Neither failure was remembered; the genuine token still is.
        assert_eq!(tokens.verified.len(), 1);
        assert!(tokens.verify(&token).is_ok());
    }

    #[test]
    fn failures_are_never_remembered() {
        let tokens = service(&signing_key());
        let other = service(&signing_key());
        let foreign = issue(&other);
        for _ in 0..3 {
            assert!(tokens.verify(&foreign).is_err());
        }
        assert!(tokens.verify("not.a.token").is_err());
        assert_eq!(tokens.verified.len(), 0);
    }

    #[test]
    fn the_memory_is_bounded_expired_entries_first() {
        let cache = VerifiedTokens::new(2);
        let entry = |expires_at| Verified {
            claims: AccessClaims {
                user_id: Uuid::new_v4(),
                session_id: Uuid::new_v4(),
                token_id: Uuid::new_v4(),
                issued_at: 0,
                expires_at,
            },
            not_before: 0,
        };
        let now = 1_000;
        cache.remember(VerifiedTokens::key("a"), entry(now - 1), now, 0);
        cache.remember(VerifiedTokens::key("b"), entry(now + 600), now, 0);
        // Full: the expired one makes room, the live one stays.
        cache.remember(VerifiedTokens::key("c"), entry(now + 600), now, 0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&VerifiedTokens::key("a")).is_none());
        assert!(cache.get(&VerifiedTokens::key("b")).is_some());
        // Full of live entries: all go, so it never grows past its bound.
        cache.remember(VerifiedTokens::key("d"), entry(now + 600), now, 0);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&VerifiedTokens::key("d")).is_some());
    }
}
