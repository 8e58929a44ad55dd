-- sessions and refresh tokens.
--
-- a session is one sign-in on one device. its id is the `sid` claim of every access token issued in
-- it, so revoking the row ends those tokens at once (the request path checks the session), and it is
-- also the *family* of its refresh tokens: every rotation adds a token to the same session.
--
-- refresh tokens are opaque random strings (256 bits); only their sha-256 is stored. a plain hash
-- (not argon2) is right here: the input has full entropy, so there is nothing to brute-force, and
-- the lookup must be an indexed equality.
--
-- rotation marks the presented token used and adds the next generation, in one transaction. a used
-- token presented again means it was copied: the whole session is revoked (reason `refresh_reuse`).

create table sessions (
    id               uuid        not null default gen_random_uuid(),
    user_id          uuid        not null,
    created_at       timestamptz not null default now(),
    last_used_at     timestamptz not null default now(),
    -- absolute lifetime: no amount of use extends a session past this.
    expires_at       timestamptz not null,
    -- inactivity timeout: pushed forward (never past expires_at) by each refresh.
    idle_expires_at  timestamptz not null,
    revoked_at       timestamptz,
    revoked_reason   text,
    ip               inet,
    user_agent       text,

    constraint sessions_pkey primary key (id),
    constraint sessions_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint sessions_expiry_check check (idle_expires_at <= expires_at and created_at < expires_at),
    constraint sessions_revocation_check check ((revoked_at is null) = (revoked_reason is null)),
    constraint sessions_revoked_reason_check check (revoked_reason in (
        'logout', 'logout_all', 'password_change', 'password_reset', 'account_locked',
        'account_deleted', 'refresh_reuse', 'session_revoked', 'admin')),
    constraint sessions_user_agent_length_check check (char_length(user_agent) <= 512)
);

-- "my sessions", "revoke all of a user's sessions", and the cascade when a user row goes.
create index sessions_user_id_idx on sessions (user_id);

create table refresh_tokens (
    token_hash  bytea       not null,
    session_id  uuid        not null,
    generation  integer     not null,
    created_at  timestamptz not null default now(),
    -- set when this token was exchanged for the next one; presenting it again is reuse.
    used_at     timestamptz,

    constraint refresh_tokens_pkey primary key (token_hash),
    constraint refresh_tokens_session_id_fkey foreign key (session_id) references sessions (id) on delete cascade,
    constraint refresh_tokens_hash_length_check check (octet_length(token_hash) = 32),
    constraint refresh_tokens_generation_check check (generation >= 1)
);

-- one token per generation per session: a second "next token" can never be minted.
create unique index refresh_tokens_session_generation_key on refresh_tokens (session_id, generation);

comment on table sessions is 'one sign-in; id = sid of its access tokens = family of its refresh tokens';
comment on column refresh_tokens.token_hash is 'sha-256 of the opaque refresh token; the token itself is never stored';
