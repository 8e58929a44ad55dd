-- one_time_tokens: email-verification and password-reset tokens, used once.
--
-- like refresh tokens, these are opaque random strings (256 bits, with a prefix naming their kind)
-- and only their sha-256 is stored: a database dump holds nothing that can be typed into a link.
-- a plain hash is right for full-entropy input, and the lookup stays one indexed equality.
--
-- the rules the store keeps, each in one statement:
-- * single use: consuming is `update ... set used_at = now() where ... and used_at is null`. the row
--   lock makes concurrent consumers of one token wait for the first; when it commits they re-check
--   `used_at is null`, find it false, and get nothing. exactly one wins.
-- * only the newest mail works: issuing a token marks every earlier unused token of the same user
--   and purpose used, in the same transaction as the insert.
-- * kinds never cross: every lookup names the purpose, so a verification token is not a reset
--   token even if someone forged the prefix (and the prefix is part of the hashed string anyway).
-- * a deleted account's tokens are dead: lookups join users and skip rows with deleted_at set.
--
-- used and expired rows are kept, not deleted, so "used" and "unknown" look the same to a client
-- but stay distinguishable to an operator; purging old rows is a maintenance job.

create table one_time_tokens (
    token_hash  bytea       not null,
    user_id     uuid        not null,
    purpose     text        not null,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null,
    -- set when the token was consumed, or superseded by a newer one of the same purpose.
    used_at     timestamptz,

    constraint one_time_tokens_pkey primary key (token_hash),
    constraint one_time_tokens_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint one_time_tokens_hash_length_check check (octet_length(token_hash) = 32),
    -- refresh tokens live in refresh_tokens (they rotate within a session); they are not one-time
    -- tokens and cannot be stored here.
    constraint one_time_tokens_purpose_check check (purpose in ('email_verification', 'password_reset')),
    constraint one_time_tokens_expiry_check check (expires_at > created_at)
);

-- superseding earlier tokens on issue, and the cascade when a user row goes.
create index one_time_tokens_user_purpose_idx on one_time_tokens (user_id, purpose);

-- "only the newest mail works", as an invariant rather than a habit: at most one unused token per
-- user and purpose. the store also locks the user's row while it issues, so concurrent requests
-- take turns and never trip over this; it is here for any other writer.
create unique index one_time_tokens_one_unused_key on one_time_tokens (user_id, purpose) where used_at is null;

comment on table one_time_tokens is 'single-use email-verification and password-reset tokens; only their sha-256 is stored';
comment on column one_time_tokens.token_hash is 'sha-256 of the whole token string (prefix included); the token itself is never stored';
