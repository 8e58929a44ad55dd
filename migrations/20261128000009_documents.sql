-- documents: the example resource, and the shares that let other users see them.
--
-- the domain (crates/domain/src/document.rs) is where the rules live: titles are trimmed and
-- bounded, bodies are sanitised html, tags are parsed. the checks below restate the bounds so that
-- no other writer (a psql session, a future script) can store a row the domain would refuse; every
-- one is named, so a violation says which rule broke.
--
-- a few choices worth reading:
--
-- * listings page by keyset, not offset: "newest first" is (created_at desc, id desc), and the next
--   page starts strictly after the last (created_at, id) seen. id breaks ties between rows created
--   in the same microsecond, so no row is skipped or repeated, and a page costs the same at any
--   depth. the two btree indexes below are that order, for everyone's view and for one owner's.
-- * version is an optimistic-concurrency counter (the etag): an update names the version it read
--   and bumps it, so two writers cannot silently overwrite each other.
-- * visibility decides what a share is worth: a share on a private document grants nothing (it is
--   kept, and counts again if the owner shares the document later); a public document is readable
--   by every signed-in user. the rule itself is DocumentAccess::of; the listing query is its twin.

create table documents (
    id          uuid        not null default gen_random_uuid(),
    owner_id    uuid        not null,
    title       text        not null,
    -- sanitised html (ammonia, strict allowlist) — never what the client sent.
    body        text        not null,
    visibility  text        not null default 'private',
    tags        text[]      not null default '{}',
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    version     integer     not null default 1,

    constraint documents_pkey primary key (id),
    -- users are anonymised, never deleted, by the application; the cascade only matters to an
    -- operator removing a row by hand, and then the documents go with their owner.
    constraint documents_owner_id_fkey foreign key (owner_id) references users (id) on delete cascade,
    -- characters, not bytes: the domain counts characters (MAX_TITLE_CHARS).
    constraint documents_title_length_check check (char_length(title) between 1 and 200),
    -- bytes, not characters: the bound is on storage (MAX_BODY_BYTES, 100 kib).
    constraint documents_body_size_check check (octet_length(body) <= 102400),
    constraint documents_visibility_check check (visibility in ('private', 'shared', 'public')),
    constraint documents_version_check check (version >= 1),
    constraint documents_tags_count_check check (cardinality(tags) <= 10),
    -- array_position finds nulls too (it compares with "is not distinct from").
    constraint documents_tags_no_nulls_check check (array_position(tags, null) is null),
    -- every tag is 1 to 32 of a-z, 0-9 and '-'. a check cannot loop over an array, so the tags are
    -- joined with commas and the whole string is matched at once. splitting that string again must
    -- give back the very same array: that refuses what the join would hide, a tag that itself
    -- holds a comma ('a,b' would pass as two good tags), a null (array_to_string skips nulls) and
    -- an array of more than one dimension (the split is always flat).
    constraint documents_tags_format_check check (
        array_to_string(tags, ',') ~ '^([a-z0-9-]{1,32}(,[a-z0-9-]{1,32})*)?$'
        and string_to_array(array_to_string(tags, ','), ',') = tags
    )
);

-- everyone's listing, newest first: the keyset order, so a page is an index range scan.
create index documents_created_at_id_idx on documents (created_at desc, id desc);

-- one owner's documents in the same order; it also serves the cascade from users.
create index documents_owner_id_created_at_id_idx on documents (owner_id, created_at desc, id desc);

-- the tag filter. a gin index answers the array operators (tags @> array['rust']), which is how the
-- repository asks; `'rust' = any(tags)` means the same but could not use it.
create index documents_tags_idx on documents using gin (tags);

create table document_shares (
    document_id uuid        not null,
    user_id     uuid        not null,
    permission  text        not null,
    created_at  timestamptz not null default now(),

    -- one share per user and document: sharing again changes the permission (an upsert).
    constraint document_shares_pkey primary key (document_id, user_id),
    constraint document_shares_document_id_fkey foreign key (document_id) references documents (id) on delete cascade,
    constraint document_shares_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint document_shares_permission_check check (permission in ('read', 'write'))
);

-- "documents shared with me" (the listing's exists-subquery looks up (document_id, user_id), which
-- the primary key answers; this one serves the reverse direction and the cascade from users).
create index document_shares_user_id_idx on document_shares (user_id);

comment on table documents is 'the example resource: sanitised html with a title, tags and a visibility; version is the etag';
comment on column documents.version is 'bumped by every change; updates name the version they read (optimistic concurrency)';
comment on table document_shares is 'who else may read (or write) a document; worth nothing while the document is private';
