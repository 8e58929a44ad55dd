-- mfa: the second factor — a totp secret per user, single-use recovery codes, and the short-lived
-- challenges that sit between a correct password and a session.
--
-- * the totp secret is sealed (aes-256-gcm with the data-encryption keyring, bound to this column
--   and the user's id): the server needs it back to check codes, so it cannot be a hash. a setup
--   that is not yet confirmed lives in pending_sealed_secret and changes nothing until `enable`
--   proves the user's authenticator has it; enabling moves it to sealed_secret, so re-enrolment
--   replaces the old secret only once the new one works.
-- * last_used_step makes a code single-use: a code is accepted only for a 30-second step later than
--   the last one accepted, and the conditional update that records it is atomic, so two requests
--   racing with the same code cannot both win.
-- * recovery codes are stored as sha-256 digests (80 random bits each: nothing to brute-force) and
--   spent by setting used_at, once.
-- * a challenge is what `login` hands out instead of tokens when the account has mfa: an opaque
--   token stored as a digest, valid for minutes, with a bounded number of attempts counted in the
--   same statement that checks them.

create table mfa_totp (
    user_id                uuid        not null,
    sealed_secret          text,
    pending_sealed_secret  text,
    enabled_at             timestamptz,
    last_used_step         bigint,
    created_at             timestamptz not null default now(),
    updated_at             timestamptz not null default now(),

    constraint mfa_totp_pkey primary key (user_id),
    constraint mfa_totp_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    -- enabled exactly when there is an active secret.
    constraint mfa_totp_enabled_check check ((enabled_at is null) = (sealed_secret is null)),
    constraint mfa_totp_secrets_check check (sealed_secret is not null or pending_sealed_secret is not null)
);

create table mfa_recovery_codes (
    user_id     uuid        not null,
    digest      bytea       not null,
    used_at     timestamptz,
    created_at  timestamptz not null default now(),

    constraint mfa_recovery_codes_pkey primary key (user_id, digest),
    constraint mfa_recovery_codes_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint mfa_recovery_codes_digest_check check (octet_length(digest) = 32)
);

create table mfa_challenges (
    digest      bytea       not null,
    user_id     uuid        not null,
    attempts    integer     not null default 0,
    expires_at  timestamptz not null,
    created_at  timestamptz not null default now(),

    constraint mfa_challenges_pkey primary key (digest),
    constraint mfa_challenges_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint mfa_challenges_digest_check check (octet_length(digest) = 32),
    constraint mfa_challenges_attempts_check check (attempts >= 0),
    constraint mfa_challenges_expiry_check check (expires_at > created_at)
);

-- the purge of expired challenges, and one user's challenges.
create index mfa_challenges_expires_at_idx on mfa_challenges (expires_at);
create index mfa_challenges_user_id_idx on mfa_challenges (user_id);

comment on table mfa_totp is 'totp secrets, sealed; a pending secret becomes active only when a code proves it';
comment on table mfa_recovery_codes is 'single-use recovery codes, as sha-256 digests';
comment on table mfa_challenges is 'the step between a correct password and a session for mfa accounts: short-lived, attempt-limited';
