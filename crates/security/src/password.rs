//! argon2id password hashing behind the domain's [`PasswordHasher`] port.
//!
//! - Parameters default to OWASP's minimum for argon2id (m = 19 MiB, t = 2, p = 1) and can only be
//!   raised; a stored hash with weaker parameters is re-hashed at the next successful login.
//! - An optional **pepper** (argon2's `secret` input) comes from the environment, not the database,
//!   so a stolen database alone does not allow offline guessing.
//! - Hashing is CPU- and memory-heavy (≈ 14 ms and 19 MiB each here). It runs on tokio's blocking
//!   pool, never on the async workers, and a semaphore bounds how many run at once: a login flood
//!   queues for hashing instead of starving every other request of CPU and memory.
//! - The queue itself is bounded in time: a hash that cannot start within `queue_wait` fails with
//!   [`Saturated`] (the transports answer 503 with `Retry-After`). Without that bound a flood would
//!   only move the pile-up from the CPU to memory and to every request's latency.
//! - An unknown account is verified against a dummy hash made at start-up with the current
//!   parameters, so "no such user" takes as long as "wrong password".

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use bulwark_domain::password::{
    HashError, Password, PasswordHash, PasswordHasher, Saturated, Verification,
};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use tokio::sync::Semaphore;

/// OWASP's minimum for argon2id: 19 MiB of memory.
pub const MIN_MEMORY_KIB: u32 = 19_456;
/// OWASP's minimum for argon2id: 2 passes.
pub const MIN_ITERATIONS: u32 = 2;
/// Shortest accepted pepper, in bytes.
pub const MIN_PEPPER_BYTES: usize = 32;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory in KiB (≥ [`MIN_MEMORY_KIB`]).
    pub memory_kib: u32,
    /// Passes (≥ [`MIN_ITERATIONS`]).
    pub iterations: u32,
    /// Lanes (≥ 1).
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: MIN_MEMORY_KIB,
            iterations: MIN_ITERATIONS,
            parallelism: 1,
        }
    }
}

/// The argon2id hasher.
#[derive(Clone)]
pub struct Argon2Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    pepper: Option<SecretSlice<u8>>,
    permits: Arc<Semaphore>,
    queue_wait: Duration,
    dummy: String,
}

impl std::fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2Hasher")
            .field("m_kib", &self.inner.params.m_cost())
            .field("t", &self.inner.params.t_cost())
            .field("p", &self.inner.params.p_cost())
            .field("pepper", &self.inner.pepper.as_ref().map(|_| "[REDACTED]"))
            .field("queue_wait", &self.inner.queue_wait)
            .finish_non_exhaustive()
    }
}

/// Settings that cannot make a hasher.
#[derive(Debug, thiserror::Error)]
pub enum HasherSetupError {
    /// Below the OWASP minimum, or rejected by argon2.
    #[error("argon2id parameters must be at least m={MIN_MEMORY_KIB} KiB, t={MIN_ITERATIONS}, p=1")]
    WeakParameters,
    /// The pepper is too short.
    #[error("the pepper must be at least {MIN_PEPPER_BYTES} bytes")]
    ShortPepper,
    /// At least one hash must be allowed at a time.
    #[error("the hashing concurrency must be at least 1")]
    NoConcurrency,
    /// The dummy hash could not be made.
    #[error("cannot compute the dummy hash")]
    Dummy(#[source] HashError),
}

impl Argon2Hasher {
    /// A hasher with these parameters, this optional pepper, at most `max_concurrent` hashes
    /// running at once, and a hash waiting at most `queue_wait` for its turn before it fails with
    /// [`Saturated`] (zero: never wait). Computes the dummy hash (one hash's worth of time).
    ///
    /// # Errors
    /// [`HasherSetupError`] for weak parameters, a short pepper or zero concurrency.
    pub fn new(
        settings: Argon2Settings,
        pepper: Option<SecretSlice<u8>>,
        max_concurrent: usize,
        queue_wait: Duration,
    ) -> Result<Self, HasherSetupError> {
        if settings.memory_kib < MIN_MEMORY_KIB
            || settings.iterations < MIN_ITERATIONS
            || settings.parallelism < 1
        {
            return Err(HasherSetupError::WeakParameters);
        }
        if pepper
            .as_ref()
            .is_some_and(|p| p.expose_secret().len() < MIN_PEPPER_BYTES)
        {
            return Err(HasherSetupError::ShortPepper);
        }
        if max_concurrent == 0 {
            return Err(HasherSetupError::NoConcurrency);
        }
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|_| HasherSetupError::WeakParameters)?;
        let mut inner = Inner {
            params,
            pepper,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            queue_wait,
            dummy: String::new(),
        };
        let dummy_password = crate::keys::random_hex(16)
            .map_err(|e| HasherSetupError::Dummy(HashError(Box::new(e))))?;
        inner.dummy = inner
            .hash_blocking(dummy_password.as_bytes())
            .map_err(HasherSetupError::Dummy)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Runs `work` on the blocking pool once a permit is free, or fails with [`Saturated`] when
    /// none frees up within `queue_wait`. The permit moves into the blocking task: if the caller
    /// gives up (a request deadline, a client that disconnects), the hash still running keeps its
    /// permit until it finishes, so the bound holds for work actually running.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permits = Arc::clone(&self.inner.permits);
        // A free permit is taken at once, whatever `queue_wait` is (even zero).
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                tokio::time::timeout(self.inner.queue_wait, permits.acquire_owned())
                    .await
                    .map_err(|_elapsed| HashError(Box::new(Saturated)))?
                    .map_err(|closed| HashError(Box::new(closed)))?
            }
            Err(closed @ tokio::sync::TryAcquireError::Closed) => {
                return Err(HashError(Box::new(closed)));
            }
        };
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let result = work(&inner);
            drop(permit);
            result
        })
        .await
        .map_err(|e| HashError(Box::new(e)))
    }
}

impl Inner {
    fn argon2(&self) -> Result<Argon2<'_>, HashError> {
        match &self.pepper {
            Some(pepper) => Argon2::new_with_secret(
                pepper.expose_secret(),
                Algorithm::Argon2id,
                Version::V0x13,
                self.params.clone(),
            )
            .map_err(|e| HashError(Box::new(e))),
            None => Ok(Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                self.params.clone(),
            )),
        }
    }

    fn hash_blocking(&self, password: &[u8]) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt)
            .map_err(|_| HashError("the random number generator failed".into()))?;
        let hash = self
            .argon2()?
            .hash_password_with_salt(password, &salt)
            .map_err(|e| HashError(Box::new(e)))?;
        Ok(hash.to_string())
    }

    fn verify_blocking(&self, candidate: &[u8], stored: &str) -> Result<Verification, HashError> {
        let parsed = phc::PasswordHash::new(stored).map_err(|e| HashError(Box::new(e)))?;
        match self.argon2()?.verify_password(candidate, &parsed) {
            Ok(()) => Ok(Verification::Match {
                needs_rehash: self.is_weaker(&parsed),
            }),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(Verification::Mismatch),
            Err(e) => Err(HashError(Box::new(e))),
        }
    }

    /// The stored hash is not argon2id, or any of its parameters is below the current ones.
    fn is_weaker(&self, stored: &phc::PasswordHash) -> bool {
        let Ok(params) = Params::try_from(stored) else {
            return true;
        };
        stored.algorithm.as_str() != "argon2id"
            || stored.version != Some(Version::V0x13.into())
            || stored
                .hash
                .as_ref()
                .is_none_or(|h| h.len() < Params::DEFAULT_OUTPUT_LEN)
            || params.m_cost() < self.params.m_cost()
            || params.t_cost() < self.params.t_cost()
            || params.p_cost() < self.params.p_cost()
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let secret = password.secret().clone();
        let phc = self
            .run(move |inner| inner.hash_blocking(secret.expose_secret().as_bytes()))
            .await??;
        Ok(PasswordHash::from_stored(phc))
    }

    async fn verify(
        &self,
        candidate: &SecretString,
        stored: Option<&PasswordHash>,
    ) -> Result<Verification, HashError> {
        // The same normalisation as the policy applied when the password was set.
        let candidate = bulwark_domain::password::normalize(candidate);
        let stored = stored.map(|h| h.as_str().to_owned());
        // One event per verification, in the request's span: the black-box suite counts them to
        // prove that every sign-in failure costs exactly one (never the password or the hash).
        tracing::debug!(against_dummy = stored.is_none(), "password verification");
        self.run(move |inner| match stored {
            Some(stored) => inner.verify_blocking(candidate.expose_secret().as_bytes(), &stored),
            None => inner
                .verify_blocking(candidate.expose_secret().as_bytes(), &inner.dummy)
                .map(|_| Verification::Mismatch),
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_domain::password::{PasswordContext, PasswordPolicy};
    use bulwark_domain::user::{DisplayName, Email};

    fn password(text: &str) -> Password {
        let email = Email::parse("someone@example.com").unwrap();
        let name = DisplayName::parse("Someone").unwrap();
        PasswordPolicy::default()
            .check(
                SecretString::from(text),
                PasswordContext {
                    email: Some(&email),
                    display_name: Some(&name),
                },
            )
            .unwrap()
    }

    const PW: &str = "Correct-Horse-Battery-9-Staple";
    /// Long enough that no test here is ever saturated by accident.
    const PATIENT: Duration = Duration::from_secs(60);

    fn hasher() -> Argon2Hasher {
        Argon2Hasher::new(Argon2Settings::default(), None, 2, PATIENT).unwrap()
    }

    fn is_saturated(error: &HashError) -> bool {
        error.0.downcast_ref::<Saturated>().is_some()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_unique_salts() {
        let hasher = hasher();
        let a = hasher.hash(&password(PW)).await.unwrap();
        let b = hasher.hash(&password(PW)).await.unwrap();
        assert!(
            a.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            a.as_str()
        );
        assert_ne!(a, b, "same password, same hash: the salt is not unique");
    }

    #[tokio::test]
    async fn verification_matches_only_the_right_password() {
        let hasher = hasher();
        let hash = hasher.hash(&password(PW)).await.unwrap();
        assert_eq!(
            hasher
                .verify(&SecretString::from(PW), Some(&hash))
                .await
                .unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
        for wrong in [
            "Correct-Horse-Battery-9-Staplf",
            "correct-horse-battery-9-staple",
            " Correct-Horse-Battery-9-Staple",
            "",
        ] {
            assert_eq!(
                hasher
                    .verify(&SecretString::from(wrong), Some(&hash))
                    .await
                    .unwrap(),
                Verification::Mismatch,
                "{wrong:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_password_typed_in_another_unicode_form_still_verifies() {
        let hasher = hasher();
        let hash = hasher
            .hash(&password("Caf\u{e9}-Horse-Battery-9-Staple"))
            .await
            .unwrap();
        let decomposed = SecretString::from("Cafe\u{301}-Horse-Battery-9-Staple");
        assert!(matches!(
            hasher.verify(&decomposed, Some(&hash)).await.unwrap(),
            Verification::Match { .. }
        ));
    }

    #[tokio::test]
    async fn an_unknown_account_never_matches_even_the_dummys_own_password() {
        let hasher = hasher();
        assert_eq!(
            hasher.verify(&SecretString::from(PW), None).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn the_pepper_is_part_of_the_hash() {
        let pepper = |byte: u8| {
            Some(SecretSlice::from(
                (0..32).map(|i| i ^ byte).collect::<Vec<u8>>(),
            ))
        };
        let peppered =
            Argon2Hasher::new(Argon2Settings::default(), pepper(0x5a), 1, PATIENT).unwrap();
        let hash = peppered.hash(&password(PW)).await.unwrap();
        assert!(matches!(
            peppered
                .verify(&SecretString::from(PW), Some(&hash))
                .await
                .unwrap(),
            Verification::Match { .. }
        ));
        // Without the pepper (a stolen database alone) or with another one, nothing matches.
        assert_eq!(
            hasher()
                .verify(&SecretString::from(PW), Some(&hash))
                .await
                .unwrap(),
            Verification::Mismatch
        );
        let other = Argon2Hasher::new(Argon2Settings::default(), pepper(0x33), 1, PATIENT).unwrap();
        assert_eq!(
            other
                .verify(&SecretString::from(PW), Some(&hash))
                .await
                .unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn a_hash_with_weaker_parameters_asks_for_a_rehash() {
        let stronger = Argon2Hasher::new(
            Argon2Settings {
                memory_kib: 24_576,
                iterations: 3,
                parallelism: 1,
            },
            None,
            1,
            PATIENT,
        )
        .unwrap();
        let old = hasher().hash(&password(PW)).await.unwrap();
        assert_eq!(
            stronger
                .verify(&SecretString::from(PW), Some(&old))
                .await
                .unwrap(),
            Verification::Match { needs_rehash: true }
        );
        let new = stronger.hash(&password(PW)).await.unwrap();
        assert_eq!(
            stronger
                .verify(&SecretString::from(PW), Some(&new))
                .await
                .unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn garbage_in_the_hash_column_is_an_error_not_a_match() {
        let hasher = hasher();
        for stored in [
            "",
            "plaintext-password",
            "$argon2id$v=19$m=19456,t=2,p=1$bad",
            "$2b$12$abcdefghijklmnopqrstuv",
        ] {
            let result = hasher
                .verify(
                    &SecretString::from(PW),
                    Some(&PasswordHash::from_stored(stored.to_owned())),
                )
                .await;
            assert!(
                !matches!(result, Ok(Verification::Match { .. })),
                "{stored:?}"
            );
        }
    }

    #[test]
    fn weak_settings_are_refused() {
        for settings in [
            Argon2Settings {
                memory_kib: 4096,
                ..Argon2Settings::default()
            },
            Argon2Settings {
                iterations: 1,
                ..Argon2Settings::default()
            },
            Argon2Settings {
                parallelism: 0,
                ..Argon2Settings::default()
            },
        ] {
            assert!(
                matches!(
                    Argon2Hasher::new(settings, None, 1, PATIENT),
                    Err(HasherSetupError::WeakParameters)
                ),
                "{settings:?}"
            );
        }
        assert!(matches!(
            Argon2Hasher::new(
                Argon2Settings::default(),
                Some(SecretSlice::from(vec![1u8; 8])),
                1,
                PATIENT
            ),
            Err(HasherSetupError::ShortPepper)
        ));
        assert!(matches!(
            Argon2Hasher::new(Argon2Settings::default(), None, 0, PATIENT),
            Err(HasherSetupError::NoConcurrency)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_bound_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hasher = Argon2Hasher::new(Argon2Settings::default(), None, 2, PATIENT).unwrap();
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (hasher, running, peak) =
                    (hasher.clone(), Arc::clone(&running), Arc::clone(&peak));
                tokio::spawn(async move {
                    hasher
                        .run(move |_| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                        .unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            2,
            "at most two at once, and two did run at once"
        );
        assert_eq!(
            hasher.inner.permits.available_permits(),
            2,
            "every permit was returned"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_hash_keeps_its_permit_until_it_finishes() {
        let hasher = Argon2Hasher::new(Argon2Settings::default(), None, 1, PATIENT).unwrap();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let caller = {
            let hasher = hasher.clone();
            tokio::spawn(async move {
                hasher
                    .run(move |_| {
                        started_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();

        // The caller gives up (a deadline, a disconnect) while the work still runs.
        caller.abort();
        let _ = caller.await;
        assert_eq!(
            hasher.inner.permits.available_permits(),
            0,
            "the running hash still holds its permit"
        );

        release_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while hasher.inner.permits.available_permits() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn an_unknown_account_costs_a_real_verification() {
        // With the only permit taken, a verification for "no such account" has to wait for it:
        // it does hash (against the dummy) rather than answering at once.
        let hasher = Argon2Hasher::new(Argon2Settings::default(), None, 1, PATIENT).unwrap();
        let held = Arc::clone(&hasher.inner.permits)
            .acquire_owned()
            .await
            .unwrap();
        let candidate = SecretString::from(PW);
        let verify = hasher.verify(&candidate, None);
        tokio::pin!(verify);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut verify)
                .await
                .is_err()
        );
        drop(held);
        assert_eq!(verify.await.unwrap(), Verification::Mismatch);
    }

    #[tokio::test]
    async fn a_hash_that_cannot_start_within_the_queue_wait_is_saturated() {
        let hasher =
            Argon2Hasher::new(Argon2Settings::default(), None, 1, Duration::from_millis(1))
                .unwrap();
        let held = Arc::clone(&hasher.inner.permits)
            .acquire_owned()
            .await
            .unwrap();

        let hashed = hasher.hash(&password(PW)).await;
        let verified = hasher.verify(&SecretString::from(PW), None).await;

        assert!(matches!(&hashed, Err(e) if is_saturated(e)), "{hashed:?}");
        assert!(
            matches!(&verified, Err(e) if is_saturated(e)),
            "{verified:?}"
        );
        assert_eq!(
            hasher.inner.permits.available_permits(),
            0,
            "a refused hash took no permit"
        );
        drop(held);
        assert!(
            hasher.hash(&password(PW)).await.is_ok(),
            "a free hasher hashes again"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_two_concurrent_hashes_behind_one_permit_and_no_patience_one_is_saturated() {
        // A slow-ish setting (tens of milliseconds) against a 1 ms queue: the second hash cannot
        // start in time.
        let slow = Argon2Settings {
            memory_kib: 4 * MIN_MEMORY_KIB,
            iterations: 4,
            parallelism: 1,
        };
        let hasher = Argon2Hasher::new(slow, None, 1, Duration::from_millis(1)).unwrap();
        let (a, b) = (password(PW), password(PW));

        let (first, second) = tokio::join!(hasher.hash(&a), hasher.hash(&b));

        let outcomes = [first, second];
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            1,
            "{outcomes:?}"
        );
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, Err(e) if is_saturated(e)))
                .count(),
            1,
            "{outcomes:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_within_its_wait_is_served_in_full() {
        // Six hashes behind two permits: each waits a few hashes' time, well inside the bound.
        let hasher =
            Argon2Hasher::new(Argon2Settings::default(), None, 2, Duration::from_secs(30)).unwrap();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&password(PW)).await })
            })
            .collect();

        for task in tasks {
            assert!(task.await.unwrap().is_ok());
        }
        assert_eq!(hasher.inner.permits.available_permits(), 2);
    }

    #[test]
    fn a_saturated_error_says_nothing_about_the_password() {
        let printed = format!("{:?} {}", HashError(Box::new(Saturated)), Saturated);
        assert!(!printed.contains(PW), "{printed}");
    }
}
