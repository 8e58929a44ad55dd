-- api_keys: long-lived credentials a user creates for scripts and integrations.
--
-- a key looks like `bwk_<prefix>_<secret>`: the prefix (12 characters, public, shown in listings)
-- finds the row with one indexed equality; the secret (256 random bits) is never stored — only the
-- sha-256 digest of the whole key, compared in constant time by the application after the lookup.
-- a fast hash is right here, unlike for passwords: the input has 256 bits of entropy, so there is
-- nothing to brute-force. a dump of this table authenticates nobody.
--
-- what a key may do is its scopes (checked by the domain on every use) and never more than its
-- owner's role; it can never manage keys, sessions, mfa, passwords or admin functions. revoking a
-- key deletes its row: the next request with it is a 401, there is no cache to wait for.

create table api_keys (
    id             uuid        not null default gen_random_uuid(),
    owner_id       uuid        not null,
    name           text        not null,
    prefix         text        not null,
    secret_digest  bytea       not null,
    scopes         text[]      not null,
    expires_at     timestamptz,
    last_used_at   timestamptz,
    created_at     timestamptz not null default now(),

    constraint api_keys_pkey primary key (id),
    -- users are anonymised, not deleted, by the application (which deletes their keys itself); an
    -- operator removing a user by hand removes their keys with them.
    constraint api_keys_owner_id_fkey foreign key (owner_id) references users (id) on delete cascade,
    constraint api_keys_prefix_key unique (prefix),
    constraint api_keys_prefix_check check (prefix ~ '^[a-z2-7]{12}$'),
    constraint api_keys_name_check check (char_length(name) between 1 and 100),
    constraint api_keys_secret_digest_check check (octet_length(secret_digest) = 32),
    constraint api_keys_scopes_check check (
        scopes <@ array['documents:read', 'documents:write', 'webhooks:read', 'webhooks:write']::text[]
        and cardinality(scopes) between 1 and 4
        and array_ndims(scopes) = 1
    ),
    constraint api_keys_expiry_check check (expires_at is null or expires_at > created_at)
);

-- one owner's keys, newest first (the listing, the quota's count, the cascade).
create index api_keys_owner_id_created_at_idx on api_keys (owner_id, created_at desc);

comment on table api_keys is 'api keys: looked up by public prefix, verified against a sha-256 digest; the key itself is never stored';
