//! The service's long-lived keys: the Ed25519 key that signs access tokens and the keyring of
//! data-encryption keys (DEKs) that protect secrets at rest (TOTP seeds, webhook secrets).
//!
//! Both arrive from the environment as text. Parsing here is strict — a key that is malformed, of
//! the wrong kind, too short, or visibly non-random is refused, and the service does not start. The
//! error messages name the problem and how to fix it, never the key.

use std::collections::HashSet;
use std::fmt;

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};

/// Length of a data-encryption key: 256 bits, for AES-256-GCM or XChaCha20-Poly1305.
pub const DATA_KEY_LEN: usize = 32;

/// The fewest distinct byte values accepted in 32 bytes of key material. Thirty-two bytes from a
/// CSPRNG hold about 30 distinct values; fewer than 16 happens with a probability far below 2^-100,
/// so this refuses `aaaa…`, counters and other hand-typed "keys" without ever refusing a real one.
const MIN_DISTINCT_BYTES: usize = 16;

/// What is wrong with a key. The `Display` text is safe to print: it never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Empty value.
    #[error("is empty")]
    Empty,
    /// Not standard base64.
    #[error("is not valid base64 (standard alphabet, with padding)")]
    NotBase64,
    /// Base64, but not an Ed25519 private key in PKCS#8.
    #[error("is not an Ed25519 private key in PKCS#8 DER form; create one with `bulwark keygen`")]
    NotEd25519Pkcs8,
    /// Decoded to the wrong number of bytes.
    #[error("must decode to exactly {DATA_KEY_LEN} bytes, but decodes to {0}")]
    WrongLength(usize),
    /// The bytes do not look random.
    #[error("does not look random (too few distinct bytes); create one with `bulwark keygen`")]
    NotRandom,
    /// A key id that is not `[A-Za-z0-9._-]{1,64}`.
    #[error("has a key id that is not 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
    BadKeyId,
    /// A keyring entry without the `<key id>:<base64>` shape.
    #[error("entry {0} is not of the form `<key id>:<base64 key>`")]
    BadEntry(usize),
    /// The same key id twice in a keyring.
    #[error("names the key id `{0}` more than once")]
    DuplicateKeyId(String),
}

/// A key identifier: published as `kid` in JWT headers and the JWKS, stored beside every ciphertext.
/// It is not secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Parses a key id: 1 to 64 characters of `[A-Za-z0-9._-]`.
    ///
    /// # Errors
    /// [`KeyError::BadKeyId`] otherwise.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(KeyError::BadKeyId)
        }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Ed25519 key that signs access tokens, with its `kid`.
pub struct JwtSigningKey {
    kid: KeyId,
    pkcs8_der: SecretSlice<u8>,
    public_key: Vec<u8>,
}

impl fmt::Debug for JwtSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigningKey")
            .field("kid", &self.kid)
            .field("pkcs8_der", &"[REDACTED]")
            .finish()
    }
}

impl JwtSigningKey {
    /// Parses a base64 PKCS#8 (v1 or v2) Ed25519 private key. The key pair is checked by aws-lc
    /// (a v2 document's public key must match its private key) and its seed must look random.
    ///
    /// # Errors
    /// [`KeyError`] naming what is wrong.
    pub fn parse(kid: KeyId, base64_pkcs8: &SecretString) -> Result<Self, KeyError> {
        let der = decode_base64(base64_pkcs8)?;
        let pair = Ed25519KeyPair::from_pkcs8(der.expose_secret())
            .map_err(|_| KeyError::NotEd25519Pkcs8)?;
        let seed = pair
            .seed()
            .and_then(|s| s.as_be_bytes())
            .map_err(|_| KeyError::NotEd25519Pkcs8)?;
        if !looks_random(seed.as_ref()) {
            return Err(KeyError::NotRandom);
        }
        Ok(Self {
            kid,
            public_key: pair.public_key().as_ref().to_vec(),
            pkcs8_der: der,
        })
    }

    /// The key id published with tokens signed by this key.
    #[must_use]
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The raw 32-byte Ed25519 public key (what a JWKS publishes as `x`).
    #[must_use]
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The private key as PKCS#8 DER, for the token signer. Expose it only on the line that uses it.
    #[must_use]
    pub fn pkcs8_der(&self) -> &SecretSlice<u8> {
        &self.pkcs8_der
    }
}

/// One data-encryption key.
pub struct DataKey {
    id: KeyId,
    key: SecretBox<[u8; DATA_KEY_LEN]>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl DataKey {
    /// The key's id, stored beside each ciphertext so that old data stays readable after rotation.
    #[must_use]
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The key bytes. Expose them only on the line that uses them.
    #[must_use]
    pub fn secret(&self) -> &SecretBox<[u8; DATA_KEY_LEN]> {
        &self.key
    }
}

/// The data-encryption keyring: `DATA_ENCRYPTION_KEYS="<id>:<base64>,<id>:<base64>"`. The first key
/// encrypts new data; every key can decrypt. Rotation: put a new key first, keep the old ones until
/// re-encryption is done, then drop them.
#[derive(Debug)]
pub struct DataKeyring {
    keys: Vec<DataKey>,
}

impl DataKeyring {
    /// Parses a comma-separated keyring; whitespace around entries is ignored.
    ///
    /// # Errors
    /// [`KeyError`] for the first entry that is malformed, of the wrong length or non-random, or a
    /// duplicated key id.
    pub fn parse(raw: &SecretString) -> Result<Self, KeyError> {
        let text = raw.expose_secret().trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        for (index, entry) in text.split(',').enumerate() {
            let (id, key) = entry
                .trim()
                .split_once(':')
                .ok_or(KeyError::BadEntry(index + 1))?;
            let id = KeyId::parse(id)?;
            if !seen.insert(id.clone()) {
                return Err(KeyError::DuplicateKeyId(id.0));
            }
            let bytes = decode_base64(&SecretString::from(key))?;
            let array: [u8; DATA_KEY_LEN] = bytes
                .expose_secret()
                .try_into()
                .map_err(|_| KeyError::WrongLength(bytes.expose_secret().len()))?;
            if !looks_random(&array) {
                return Err(KeyError::NotRandom);
            }
            keys.push(DataKey {
                id,
                key: SecretBox::new(Box::new(array)),
            });
        }
        Ok(Self { keys })
    }

    /// The key that encrypts new data (the first one).
    #[must_use]
    pub fn active(&self) -> &DataKey {
        // Invariant: `parse` is the only constructor and it returns an error for an empty keyring,
        // so there is always a first key.
        &self.keys[0]
    }

    /// The key with this id, to decrypt data written under it.
    #[must_use]
    pub fn get(&self, id: &KeyId) -> Option<&DataKey> {
        self.keys.iter().find(|k| &k.id == id)
    }

    /// Every key, the active one first.
    #[must_use]
    pub fn keys(&self) -> &[DataKey] {
        &self.keys
    }

    /// How many keys the ring holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring has at least one key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Freshly generated key material, as the text the environment expects.
pub struct GeneratedKeys {
    /// For `JWT_SIGNING_KEY_ID`.
    pub jwt_key_id: String,
    /// For `JWT_SIGNING_KEY`.
    pub jwt_signing_key: SecretString,
    /// For `DATA_ENCRYPTION_KEYS`.
    pub data_encryption_keys: SecretString,
}

impl fmt::Debug for GeneratedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKeys")
            .field("jwt_key_id", &self.jwt_key_id)
            .finish_non_exhaustive()
    }
}

/// The system's CSPRNG failed; nothing sensible can continue.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomnessUnavailable;

/// Generates a new Ed25519 signing key and a one-key data keyring from the system CSPRNG.
///
/// # Errors
/// [`RandomnessUnavailable`] when the CSPRNG fails.
pub fn generate_keys() -> Result<GeneratedKeys, RandomnessUnavailable> {
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| RandomnessUnavailable)?;
    let mut dek = [0u8; DATA_KEY_LEN];
    aws_lc_rs::rand::fill(&mut dek).map_err(|_| RandomnessUnavailable)?;
    let encoded_dek = STANDARD.encode(dek);
    dek.fill(0);
    Ok(GeneratedKeys {
        jwt_key_id: format!("jwt-{}", random_hex(4)?),
        jwt_signing_key: SecretString::from(STANDARD.encode(pkcs8.as_ref())),
        data_encryption_keys: SecretString::from(format!("dek-{}:{encoded_dek}", random_hex(4)?)),
    })
}

/// `n` random bytes from the CSPRNG as lower-case hex (2n characters): ids and passwords for local
/// development.
///
/// # Errors
/// [`RandomnessUnavailable`] when the CSPRNG fails.
pub fn random_hex(n: usize) -> Result<String, RandomnessUnavailable> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomnessUnavailable)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn decode_base64(raw: &SecretString) -> Result<SecretSlice<u8>, KeyError> {
    let text = raw.expose_secret().trim();
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    STANDARD
        .decode(text)
        .map(SecretSlice::from)
        .map_err(|_| KeyError::NotBase64)
}

fn looks_random(bytes: &[u8]) -> bool {
    let distinct: HashSet<u8> = bytes.iter().copied().collect();
    distinct.len() >= MIN_DISTINCT_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> SecretString {
        SecretString::from(STANDARD.encode(bytes))
    }

    #[test]
    fn generated_keys_parse_back() {
        let keys = generate_keys().unwrap();
        let kid = KeyId::parse(&keys.jwt_key_id).unwrap();
        let signing = JwtSigningKey::parse(kid, &keys.jwt_signing_key).unwrap();
        assert_eq!(signing.public_key().len(), 32);
        let ring = DataKeyring::parse(&keys.data_encryption_keys).unwrap();
        assert_eq!(ring.len(), 1);
        assert!(ring.active().id().as_str().starts_with("dek-"));
    }

    #[test]
    fn two_generations_differ() {
        let (a, b) = (generate_keys().unwrap(), generate_keys().unwrap());
        assert_ne!(
            a.jwt_signing_key.expose_secret(),
            b.jwt_signing_key.expose_secret()
        );
        assert_ne!(
            a.data_encryption_keys.expose_secret(),
            b.data_encryption_keys.expose_secret()
        );
    }

    #[test]
    fn a_jwt_key_that_is_not_ed25519_pkcs8_is_refused() {
        let kid = KeyId::parse("k1").unwrap();
        assert_eq!(
            JwtSigningKey::parse(kid.clone(), &SecretString::from("")).unwrap_err(),
            KeyError::Empty
        );
        assert_eq!(
            JwtSigningKey::parse(kid.clone(), &SecretString::from("not base64!")).unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            JwtSigningKey::parse(kid.clone(), &b64(&[7u8; 48])).unwrap_err(),
            KeyError::NotEd25519Pkcs8
        );
        // A truncated real key is refused too.
        let real = generate_keys().unwrap().jwt_signing_key;
        let der = STANDARD.decode(real.expose_secret()).unwrap();
        assert_eq!(
            JwtSigningKey::parse(kid, &b64(&der[..der.len() - 5])).unwrap_err(),
            KeyError::NotEd25519Pkcs8
        );
    }

    #[test]
    fn a_jwt_key_with_a_non_random_seed_is_refused() {
        // RFC 8410 PKCS#8 v1 prefix for Ed25519, followed by an all-zero seed.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&[0u8; 32]);
        let result = JwtSigningKey::parse(KeyId::parse("k1").unwrap(), &b64(&der));
        assert_eq!(result.unwrap_err(), KeyError::NotRandom);
    }

    #[test]
    fn keyring_entries_must_be_32_random_bytes_with_unique_ids() {
        let good = STANDARD.encode((0u8..32).collect::<Vec<_>>());
        let ring =
            DataKeyring::parse(&SecretString::from(format!("new:{good}, old:{good}"))).unwrap();
        assert_eq!(ring.active().id().as_str(), "new");
        assert!(ring.get(&KeyId::parse("old").unwrap()).is_some());

        let cases = [
            (String::new(), KeyError::Empty),
            (good.clone(), KeyError::BadEntry(1)),
            (format!("bad id:{good}"), KeyError::BadKeyId),
            (
                format!("k:{}", STANDARD.encode([1u8; 16])),
                KeyError::WrongLength(16),
            ),
            (
                format!("k:{}", STANDARD.encode([9u8; 32])),
                KeyError::NotRandom,
            ),
            (
                format!("k:{good},k:{good}"),
                KeyError::DuplicateKeyId("k".into()),
            ),
            ("k:%%%".to_owned(), KeyError::NotBase64),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                DataKeyring::parse(&SecretString::from(raw.clone())).unwrap_err(),
                expected,
                "{raw}"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let keys = generate_keys().unwrap();
        let signing =
            JwtSigningKey::parse(KeyId::parse("k1").unwrap(), &keys.jwt_signing_key).unwrap();
        let ring = DataKeyring::parse(&keys.data_encryption_keys).unwrap();
        let printed = format!("{signing:?} {ring:?} {keys:?}");
        assert!(printed.contains("[REDACTED]"));
        assert!(!printed.contains(keys.jwt_signing_key.expose_secret()));
        let dek_b64 = keys
            .data_encryption_keys
            .expose_secret()
            .split_once(':')
            .unwrap()
            .1
            .to_owned();
        assert!(!printed.contains(&dek_b64));
    }

    #[test]
    fn key_ids_are_restricted() {
        assert!(KeyId::parse("2026-11.main_1").is_ok());
        for bad in [
            "",
            "a b",
            "../etc/passwd",
            "k'; drop table",
            &"k".repeat(65),
        ] {
            assert_eq!(KeyId::parse(bad), Err(KeyError::BadKeyId), "{bad}");
        }
    }
}
