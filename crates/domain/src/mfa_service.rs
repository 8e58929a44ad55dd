//! The MFA use cases: set up TOTP (a step-up operation), confirm it with a code (which turns MFA
//! on and hands out recovery codes, once), turn it off (password and code) — and the second factor
//! of the sign-in flow ([`SecondFactor`], which `AuthService` asks).
//!
//! Secrets are sealed under a context naming the column and the user, so a sealed secret copied to
//! another user (or from the pending column to the active one) does not open. A code is accepted
//! once: the store records the last time step used, atomically. Every event is audited.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::account::{AccountError, AccountService};
use crate::audit::{AuditLog, NewAuditEvent, Outcome};
use crate::auth::{event, reason};
use crate::context::{Actor, Origin};
use crate::error::{OrUnexpected, Unexpected};
use crate::mfa::{MfaProof, MfaStore, RecoveryCodes, SecondFactor, Totp, TotpEnrolment};
use crate::opaque::{OpaqueTokens, TokenKind};
use crate::sealing::Sealer;
use crate::user::{FieldViolation, UserRepository};

/// The audit event types this module writes.
pub mod events {
    /// A TOTP setup was started (not active yet).
    pub const SETUP_STARTED: &str = "mfa.setup_started";
    /// MFA was turned on (recovery codes handed out).
    pub const ENABLED: &str = "mfa.enabled";
    /// MFA was turned off.
    pub const DISABLED: &str = "mfa.disabled";
    /// A code was refused while enabling or disabling.
    pub const CODE_REFUSED: &str = "mfa.code_refused";

    /// Every type above (a unit test parses them all).
    pub const ALL: [&str; 4] = [SETUP_STARTED, ENABLED, DISABLED, CODE_REFUSED];
}

/// The configurable rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaRules {
    /// How long a sign-in challenge lives (at most 5 minutes by contract).
    pub challenge_ttl: Duration,
    /// Attempts per challenge.
    pub max_attempts: u32,
    /// Recovery codes handed out when MFA is turned on.
    pub recovery_codes: usize,
}

impl Default for MfaRules {
    fn default() -> Self {
        Self {
            challenge_ttl: Duration::from_secs(5 * 60),
            max_attempts: 5,
            recovery_codes: 10,
        }
    }
}

/// Why an MFA operation failed, as far as the client may know.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// Field errors (a wrong code is one, on `code`).
    #[error("invalid input")]
    Invalid(Vec<FieldViolation>),
    /// `enable` without a setup in progress.
    #[error("no MFA setup in progress")]
    NoSetup,
    /// `disable` while MFA is off.
    #[error("MFA is not enabled")]
    NotEnabled,
    /// The step-up check failed (API key, stale sign-in, wrong password, throttled).
    #[error(transparent)]
    Account(AccountError),
    /// See [`Unexpected`].
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<AccountError> for MfaError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Unexpected(e) => Self::Unexpected(e),
            other => Self::Account(other),
        }
    }
}

/// The ports of the MFA service.
#[derive(Debug, Clone)]
pub struct MfaPorts {
    /// Secrets, recovery codes, challenges.
    pub store: Arc<dyn MfaStore>,
    /// TOTP.
    pub totp: Arc<dyn Totp>,
    /// Recovery codes.
    pub recovery: Arc<dyn RecoveryCodes>,
    /// Seals the TOTP secrets.
    pub sealer: Arc<dyn Sealer>,
    /// Mints challenge tokens.
    pub tokens: Arc<dyn OpaqueTokens>,
    /// Accounts (the authenticator's label is the email).
    pub users: Arc<dyn UserRepository>,
    /// The audit trail.
    pub audit: Arc<dyn AuditLog>,
}

/// TOTP setup, enable, disable; the second factor of sign-in.
#[derive(Debug, Clone)]
pub struct MfaService {
    ports: MfaPorts,
    rules: MfaRules,
    accounts: AccountService,
}

/// The sealing context of a user's active TOTP secret (public for `bulwark rotate-data-key`).
#[must_use]
pub fn active_context(user_id: Uuid) -> Vec<u8> {
    format!("mfa_totp.sealed_secret:{user_id}").into_bytes()
}

/// The sealing context of a user's pending TOTP secret (public for `bulwark rotate-data-key`).
#[must_use]
pub fn pending_context(user_id: Uuid) -> Vec<u8> {
    format!("mfa_totp.pending_sealed_secret:{user_id}").into_bytes()
}

fn wrong_code() -> MfaError {
    MfaError::Invalid(vec![FieldViolation::new(
        "code",
        "incorrect",
        "The code is not valid (or was already used).",
    )])
}

impl MfaService {
    /// A service over these ports; `accounts` does the step-up and password checks.
    #[must_use]
    pub fn new(ports: MfaPorts, rules: MfaRules, accounts: AccountService) -> Self {
        Self {
            ports,
            rules,
            accounts,
        }
    }

    async fn record(&self, event: NewAuditEvent) -> Result<(), Unexpected> {
        self.ports.audit.record(event).await.or_unexpected("audit")
    }

    /// Starts a TOTP setup: a new secret, shown once, inactive until [`Self::enable`]. A step-up
    /// operation: a sign-in within the last ten minutes, or the password.
    ///
    /// # Errors
    /// `Account(SessionRequired | ReauthenticationRequired | WrongPassword | Throttled)`,
    /// `Unexpected`.
    pub async fn setup(
        &self,
        actor: &Actor,
        origin: &Origin,
        password: Option<&SecretString>,
    ) -> Result<TotpEnrolment, MfaError> {
        self.accounts.step_up(actor, origin, password).await?;
        let user = self
            .ports
            .users
            .find(actor.user_id)
            .await
            .or_unexpected("user lookup")?
            .ok_or(MfaError::Account(AccountError::NotFound))?;
        let enrolment = self
            .ports
            .totp
            .enrol(user.email.as_str())
            .or_unexpected("TOTP secret")?;
        let sealed = self
            .ports
            .sealer
            .seal(
                enrolment.secret.expose_secret(),
                &pending_context(actor.user_id),
            )
            .or_unexpected("seal TOTP secret")?;
        self.ports
            .store
            .set_pending(actor.user_id, &sealed)
            .await
            .or_unexpected("MFA store")?;
        self.record(
            event(origin, events::SETUP_STARTED, Outcome::Success)?.with_actor(actor.user_id),
        )
        .await?;
        Ok(enrolment)
    }

    /// Confirms the pending setup with a code from the authenticator: MFA is on (a previous
    /// secret, if any, is replaced) and the recovery codes are returned, once.
    ///
    /// # Errors
    /// `Account(SessionRequired)`, `NoSetup`, `Invalid` (a wrong code), `Unexpected`.
    pub async fn enable(
        &self,
        actor: &Actor,
        origin: &Origin,
        code: &str,
    ) -> Result<Vec<SecretString>, MfaError> {
        if !actor.is_session() {
            return Err(MfaError::Account(AccountError::SessionRequired));
        }
        let record = self
            .ports
            .store
            .totp(actor.user_id)
            .await
            .or_unexpected("MFA store")?;
        let Some(pending) = record.and_then(|r| r.pending_sealed_secret) else {
            return Err(MfaError::NoSetup);
        };
        let secret = self
            .ports
            .sealer
            .open(&pending, &pending_context(actor.user_id))
            .or_unexpected("open TOTP secret")?;
        let Some(step) = self
            .ports
            .totp
            .verify(&secret, code, OffsetDateTime::now_utc())
        else {
            self.record(
                event(origin, events::CODE_REFUSED, Outcome::Failure)?
                    .with_actor(actor.user_id)
                    .with_detail(reason("enable")?),
            )
            .await?;
            return Err(wrong_code());
        };
        let codes = self
            .ports
            .recovery
            .mint(self.rules.recovery_codes)
            .or_unexpected("recovery codes")?;
        let digests: Vec<_> = codes.iter().map(|(_, digest)| *digest).collect();
        let sealed = self
            .ports
            .sealer
            .seal(secret.expose_secret(), &active_context(actor.user_id))
            .or_unexpected("seal TOTP secret")?;
        if !self
            .ports
            .store
            .enable(actor.user_id, &sealed, step, &digests)
            .await
            .or_unexpected("MFA store")?
        {
            return Err(MfaError::NoSetup);
        }
        self.record(event(origin, events::ENABLED, Outcome::Success)?.with_actor(actor.user_id))
            .await?;
        Ok(codes.into_iter().map(|(code, _)| code).collect())
    }

    /// Turns MFA off: needs the password and a current code (or a recovery code).
    ///
    /// # Errors
    /// `Account(SessionRequired | WrongPassword | Throttled)`, `NotEnabled`, `Invalid` (a wrong
    /// code), `Unexpected`.
    pub async fn disable(
        &self,
        actor: &Actor,
        origin: &Origin,
        password: &SecretString,
        code: &str,
    ) -> Result<(), MfaError> {
        self.accounts.step_up(actor, origin, Some(password)).await?;
        if !self
            .ports
            .store
            .enabled(actor.user_id)
            .await
            .or_unexpected("MFA store")?
        {
            return Err(MfaError::NotEnabled);
        }
        let proof = self.proof_of(code);
        if !self.check(actor.user_id, &proof).await? {
            self.record(
                event(origin, events::CODE_REFUSED, Outcome::Failure)?
                    .with_actor(actor.user_id)
                    .with_detail(reason("disable")?),
            )
            .await?;
            return Err(wrong_code());
        }
        self.ports
            .store
            .disable(actor.user_id)
            .await
            .or_unexpected("MFA store")?;
        self.record(event(origin, events::DISABLED, Outcome::Success)?.with_actor(actor.user_id))
            .await?;
        Ok(())
    }

    /// A recovery code when the input has a recovery code's shape, else a TOTP code.
    fn proof_of(&self, code: &str) -> MfaProof {
        if self.ports.recovery.recognise(code).is_some() {
            MfaProof::RecoveryCode(SecretString::from(code.to_owned()))
        } else {
            MfaProof::Totp(code.to_owned())
        }
    }

    async fn active_secret(&self, user_id: Uuid) -> Result<Option<SecretSlice<u8>>, Unexpected> {
        let record = self
            .ports
            .store
            .totp(user_id)
            .await
            .or_unexpected("MFA store")?;
        let Some(sealed) = record.and_then(|r| r.sealed_secret) else {
            return Ok(None);
        };
        Ok(Some(
            self.ports
                .sealer
                .open(&sealed, &active_context(user_id))
                .or_unexpected("open TOTP secret")?,
        ))
    }
}

#[async_trait::async_trait]
impl SecondFactor for MfaService {
    async fn required(&self, user_id: Uuid) -> Result<bool, Unexpected> {
        self.ports
            .store
            .enabled(user_id)
            .await
            .or_unexpected("MFA store")
    }

    async fn challenge(&self, user_id: Uuid) -> Result<SecretString, Unexpected> {
        let minted = self
            .ports
            .tokens
            .mint(TokenKind::MfaChallenge)
            .or_unexpected("MFA token")?;
        self.ports
            .store
            .create_challenge(user_id, &minted.digest, self.rules.challenge_ttl)
            .await
            .or_unexpected("MFA store")?;
        Ok(minted.secret)
    }

    async fn attempt(&self, presented: &str) -> Result<Option<Uuid>, Unexpected> {
        let Some(digest) = self
            .ports
            .tokens
            .recognise(TokenKind::MfaChallenge, presented)
        else {
            return Ok(None);
        };
        Ok(self
            .ports
            .store
            .attempt_challenge(&digest, self.rules.max_attempts)
            .await
            .or_unexpected("MFA store")?
            .map(|a| a.user_id))
    }

    async fn check(&self, user_id: Uuid, proof: &MfaProof) -> Result<bool, Unexpected> {
        match proof {
            MfaProof::Totp(code) => {
                let Some(secret) = self.active_secret(user_id).await? else {
                    return Ok(false);
                };
                let Some(step) = self
                    .ports
                    .totp
                    .verify(&secret, code, OffsetDateTime::now_utc())
                else {
                    return Ok(false);
                };
                self.ports
                    .store
                    .use_step(user_id, step)
                    .await
                    .or_unexpected("MFA store")
            }
            MfaProof::RecoveryCode(code) => {
                let Some(digest) = self.ports.recovery.recognise(code.expose_secret()) else {
                    return Ok(false);
                };
                self.ports
                    .store
                    .use_recovery_code(user_id, &digest)
                    .await
                    .or_unexpected("MFA store")
            }
        }
    }

    async fn finish(&self, presented: &str) -> Result<bool, Unexpected> {
        let Some(digest) = self
            .ports
            .tokens
            .recognise(TokenKind::MfaChallenge, presented)
        else {
            return Ok(false);
        };
        self.ports
            .store
            .consume_challenge(&digest)
            .await
            .or_unexpected("MFA store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventType;

    #[test]
    fn every_audit_event_type_parses() {
        for name in events::ALL {
            assert!(EventType::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_challenge_lives_at_most_five_minutes_with_at_most_five_attempts() {
        let rules = MfaRules::default();
        assert!(rules.challenge_ttl <= Duration::from_secs(300));
        assert!(rules.max_attempts <= 5);
        assert_eq!(rules.recovery_codes, 10);
    }

    #[test]
    fn the_sealing_contexts_name_the_column_and_the_user() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_ne!(active_context(a), active_context(b));
        assert_ne!(active_context(a), pending_context(a));
    }
}
