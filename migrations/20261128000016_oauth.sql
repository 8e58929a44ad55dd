-- oauth: sign-in with an external identity provider (github, google, any openid connect issuer).
--
-- * an identity is keyed by (provider, subject): the provider's stable id for the user. never by
--   email — an email can be re-assigned or unverified at the provider, a subject cannot.
-- * a sign-in in flight is a row in oauth_states from `authorize` to `callback`: the state, and the
--   random value of the browser's __Host- cookie, are stored only as sha-256 digests; the pkce
--   verifier and the oidc nonce are sealed. the callback takes the row with one `delete …
--   returning` that requires the state, the cookie and the provider to match and the row to be
--   fresh — so a state is single-use, useless in another browser, and useless after ten minutes.
-- * link_user_id marks a sign-in started by a signed-in user to link a provider to their account.

create table oauth_identities (
    provider    text        not null,
    subject     text        not null,
    user_id     uuid        not null,
    -- the email the provider gave when the identity was linked (informational; never a key).
    email       text,
    created_at  timestamptz not null default now(),

    constraint oauth_identities_pkey primary key (provider, subject),
    constraint oauth_identities_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint oauth_identities_provider_check check (provider ~ '^[a-z][a-z0-9-]{0,31}$'),
    constraint oauth_identities_subject_check check (char_length(subject) between 1 and 255),
    constraint oauth_identities_email_check check (char_length(email) <= 254),
    -- one identity per provider per user: linking a second github account to the same user is
    -- refused rather than silently stacked.
    constraint oauth_identities_user_provider_key unique (user_id, provider)
);

create table oauth_states (
    state_digest     bytea       not null,
    browser_digest   bytea       not null,
    provider         text        not null,
    sealed_verifier  text        not null,
    sealed_nonce     text,
    link_user_id     uuid,
    expires_at       timestamptz not null,
    created_at       timestamptz not null default now(),

    constraint oauth_states_pkey primary key (state_digest),
    constraint oauth_states_link_user_id_fkey foreign key (link_user_id) references users (id) on delete cascade,
    constraint oauth_states_digests_check check (octet_length(state_digest) = 32 and octet_length(browser_digest) = 32),
    constraint oauth_states_expiry_check check (expires_at > created_at)
);

-- the purge of abandoned sign-ins.
create index oauth_states_expires_at_idx on oauth_states (expires_at);

comment on table oauth_identities is 'external identities, keyed by (provider, subject), never by email';
comment on table oauth_states is 'sign-ins in flight: state and browser cookie as digests, pkce verifier and nonce sealed; single-use';
