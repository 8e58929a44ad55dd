-- login_throttle: failed sign-ins per *submitted* email, for backoff and temporary lockout.
--
-- the key is the sha-256 of the normalised, lower-cased email that was typed, whether or not an
-- account has it. so throttling behaves the same for real and made-up addresses (it tells a stranger
-- nothing), and addresses that are not accounts are never stored in the clear.
--
-- failures older than the configured window stop counting: the next failure starts again at one.

create table login_throttle (
    key_hash         bytea       not null,
    failures         integer     not null,
    last_failure_at  timestamptz not null,
    blocked_until    timestamptz,

    constraint login_throttle_pkey primary key (key_hash),
    constraint login_throttle_key_length_check check (octet_length(key_hash) = 32),
    constraint login_throttle_failures_check check (failures >= 1)
);

-- for purging rows whose window has passed.
create index login_throttle_last_failure_idx on login_throttle (last_failure_at);
