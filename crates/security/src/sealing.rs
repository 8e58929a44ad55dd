//! AES-256-GCM sealing with the data-encryption keyring, behind the domain's [`Sealer`] port.
//!
//! Format: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The nonce is 96 random bits from
//! aws-lc for every seal (unique with overwhelming probability for far more values than one key
//! will ever seal here). The additional authenticated data is the format version, the key id and
//! the caller's context, so neither the key id nor the value can be moved to another row, column or
//! key without opening failing.
//!
//! Rotation: put a new key first in `DATA_ENCRYPTION_KEYS`; new values use it, old ones still open
//! with their key, and [`Sealer::needs_reseal`] says which to re-seal before the old key is removed.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_domain::sealing::{SealError, Sealer};
use secrecy::{ExposeSecret, SecretSlice};

use crate::keys::{DataKeyring, KeyId};

const VERSION: &str = "v1";

/// Seals with the keyring's active key; opens with whichever key sealed.
pub struct KeyringSealer {
    keys: Vec<(KeyId, RandomizedNonceKey)>,
}

impl std::fmt::Debug for KeyringSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeyringSealer")
            .field("key_ids", &ids)
            .finish()
    }
}

impl KeyringSealer {
    /// A sealer over the keyring (the first key is active).
    ///
    /// # Errors
    /// [`SealError::Crypto`] if aws-lc refuses a key (cannot happen for 32-byte keys).
    pub fn new(keyring: &DataKeyring) -> Result<Self, SealError> {
        let keys = keyring
            .keys()
            .iter()
            .map(|key| {
                RandomizedNonceKey::new(&AES_256_GCM, key.secret().expose_secret().as_slice())
                    .map(|cipher| (key.id().clone(), cipher))
                    .map_err(|_| SealError::Crypto)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    fn aad(key_id: &str, context: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(VERSION.len() + key_id.len() + context.len() + 2);
        aad.extend_from_slice(VERSION.as_bytes());
        aad.push(0);
        aad.extend_from_slice(key_id.as_bytes());
        aad.push(0);
        aad.extend_from_slice(context);
        aad
    }
}

impl Sealer for KeyringSealer {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String, SealError> {
        let (id, cipher) = self.keys.first().ok_or(SealError::Crypto)?;
        let mut buffer = plaintext.to_vec();
        let nonce = cipher
            .seal_in_place_append_tag(Aad::from(Self::aad(id.as_str(), context)), &mut buffer)
            .map_err(|_| SealError::Crypto)?;
        let mut sealed = nonce.as_ref().to_vec();
        sealed.extend_from_slice(&buffer);
        Ok(format!("{VERSION}.{id}.{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    fn open(&self, sealed: &str, context: &[u8]) -> Result<SecretSlice<u8>, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Malformed);
        };
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(key_id, _)| key_id.as_str() == id)
            .ok_or(SealError::UnknownKey)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = cipher
            .open_in_place(nonce, Aad::from(Self::aad(id, context)), &mut buffer)
            .map_err(|_| SealError::Crypto)?;
        Ok(SecretSlice::from(plaintext.to_vec()))
    }

    fn needs_reseal(&self, sealed: &str) -> bool {
        let id = sealed.split('.').nth(1);
        self.keys
            .first()
            .is_none_or(|(active, _)| id != Some(active.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn keyring(entries: &[(&str, u8)]) -> DataKeyring {
        let text = entries
            .iter()
            .map(|(id, seed)| {
                let key: Vec<u8> = (0u8..32)
                    .map(|i| i.wrapping_mul(7).wrapping_add(*seed))
                    .collect();
                format!(
                    "{id}:{}",
                    base64::engine::general_purpose::STANDARD.encode(key)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        DataKeyring::parse(&SecretString::from(text)).unwrap()
    }

    const CONTEXT: &[u8] = b"users.totp_secret:0b7e0a52-5f7e-4c21-9c53-5d2b6d0f3f11";

    #[test]
    fn a_sealed_value_opens_for_its_context_and_hides_its_plaintext() {
        let sealer = KeyringSealer::new(&keyring(&[("k1", 1)])).unwrap();
        let sealed = sealer.seal(b"JBSWY3DPEHPK3PXP", CONTEXT).unwrap();
        assert!(sealed.starts_with("v1.k1."));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            sealer.open(&sealed, CONTEXT).unwrap().expose_secret(),
            b"JBSWY3DPEHPK3PXP"
        );
        // Two seals of the same value differ (fresh nonce).
        assert_ne!(sealed, sealer.seal(b"JBSWY3DPEHPK3PXP", CONTEXT).unwrap());
    }

    #[test]
    fn a_value_moved_to_another_context_does_not_open() {
        let sealer = KeyringSealer::new(&keyring(&[("k1", 1)])).unwrap();
        let sealed = sealer.seal(b"secret", CONTEXT).unwrap();
        assert_eq!(
            sealer
                .open(&sealed, b"users.totp_secret:another-user")
                .unwrap_err(),
            SealError::Crypto
        );
    }

    #[test]
    fn tampering_is_detected() {
        let sealer = KeyringSealer::new(&keyring(&[("k1", 1)])).unwrap();
        let sealed = sealer.seal(b"secret", CONTEXT).unwrap();
        let body = sealed.rsplit('.').next().unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let flipped = format!("v1.k1.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(
            sealer.open(&flipped, CONTEXT).unwrap_err(),
            SealError::Crypto
        );
        for malformed in [
            "",
            "v1",
            "v1.k1",
            "v2.k1.AAAA",
            "v1.k1.not base64",
            "v1.k1.AAAA",
        ] {
            assert_eq!(
                sealer.open(malformed, CONTEXT).unwrap_err(),
                SealError::Malformed,
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_says_what_to_reseal() {
        let old = KeyringSealer::new(&keyring(&[("k1", 1)])).unwrap();
        let sealed_old = old.seal(b"secret", CONTEXT).unwrap();
        let rotated = KeyringSealer::new(&keyring(&[("k2", 2), ("k1", 1)])).unwrap();
        assert_eq!(
            rotated.open(&sealed_old, CONTEXT).unwrap().expose_secret(),
            b"secret"
        );
        assert!(rotated.needs_reseal(&sealed_old));
        let sealed_new = rotated.seal(b"secret", CONTEXT).unwrap();
        assert!(sealed_new.starts_with("v1.k2.") && !rotated.needs_reseal(&sealed_new));
        // Once the old key is gone, its values are refused as such.
        let without_old = KeyringSealer::new(&keyring(&[("k2", 2)])).unwrap();
        assert_eq!(
            without_old.open(&sealed_old, CONTEXT).unwrap_err(),
            SealError::UnknownKey
        );
    }

    #[test]
    fn relabelling_a_value_with_another_key_id_does_not_open() {
        // Two keys in the ring; a value sealed under k1 but relabelled k2 must not open (k2 differs,
        // and the key id is authenticated as well).
        let sealer = KeyringSealer::new(&keyring(&[("k1", 1), ("k2", 2)])).unwrap();
        let sealed = sealer.seal(b"secret", CONTEXT).unwrap();
        let relabelled = sealed.replacen("v1.k1.", "v1.k2.", 1);
        assert_eq!(
            sealer.open(&relabelled, CONTEXT).unwrap_err(),
            SealError::Crypto
        );
    }
}
