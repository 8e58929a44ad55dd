-- webhooks: urls a user registered to be told about document events, and the queue (and log) of
-- deliveries to them.
--
-- the rules live in the domain (crates/domain/src/webhook.rs, webhook_target.rs): the url passed
-- the ssrf policy when it was registered, and passes it again at every delivery, on the addresses
-- its name resolves to. the checks below restate the bounds for any other writer, each named so a
-- violation says which rule broke.
--
-- how delivery works, and why this way:
--
-- * at-least-once, from a queue in this database. an event writes one row per subscribed webhook
--   into webhook_deliveries; no message broker to run, and the log the user reads is the queue.
--   a receiver may see the same delivery twice (a worker can die after sending and before
--   recording), so every delivery carries its id for the receiver to deduplicate on.
-- * workers claim due rows with `for update skip locked`: each worker locks the rows it takes and
--   steps over rows another worker holds, so two workers never take the same delivery and never
--   wait on each other.
-- * a claim is a lease, not a status: claiming moves next_attempt_at to now() + lease and counts the
--   attempt, in the same statement, and commits at once — no transaction stays open while a slow
--   receiver is called. a worker that dies mid-delivery releases its rows by doing nothing: when the
--   lease runs out they are due again. the attempt it was making still counts, so a delivery that
--   crashes every worker cannot be retried for ever.
-- * recording an outcome ends the lease: delivered, failed (retries exhausted) and refused (the ssrf
--   policy refused the resolved address) are final; a retry stays pending with a later
--   next_attempt_at (the backoff is the caller's).

create table webhooks (
    id             uuid        not null default gen_random_uuid(),
    owner_id       uuid        not null,
    -- normalised by the url crate when registered; re-parsed by the domain on every read.
    url            text        not null,
    events         text[]      not null,
    -- the signing secret, sealed (aes-256-gcm with the data-encryption keyring): deliveries need it
    -- back to sign, so it cannot be a hash; a dump of this table signs nothing.
    sealed_secret  text        not null,
    created_at     timestamptz not null default now(),

    constraint webhooks_pkey primary key (id),
    -- users are anonymised, not deleted, by the application; an operator removing a user by hand
    -- removes their webhooks (and, by the cascade below, their deliveries) with them.
    constraint webhooks_owner_id_fkey foreign key (owner_id) references users (id) on delete cascade,
    -- bytes: the domain bounds the normalised url by MAX_URL_BYTES.
    constraint webhooks_url_length_check check (octet_length(url) between 1 and 2048),
    -- one to three known events. `<@` never matches a null, so an array holding one fails too; a
    -- two-dimensional array would pass `<@` (it compares elements, flattened), hence array_ndims.
    -- duplicates are the domain's to refuse (a check cannot compare elements with each other).
    constraint webhooks_events_check check (
        events <@ array['document.updated', 'document.deleted', 'document.shared']::text[]
        and cardinality(events) between 1 and 3
        and array_ndims(events) = 1
    ),
    constraint webhooks_sealed_secret_check check (char_length(sealed_secret) > 0)
);

-- one owner's webhooks, newest first (the listing); it also serves the quota's count and the
-- cascade from users.
create index webhooks_owner_id_created_at_idx on webhooks (owner_id, created_at desc);

create table webhook_deliveries (
    id                    uuid        not null default gen_random_uuid(),
    webhook_id            uuid        not null,
    event                 text        not null,
    payload               jsonb       not null,
    status                text        not null default 'pending',
    -- attempts started (counted when claimed, see above).
    attempts              integer     not null default 0,
    -- for a pending row: when it is due (its first attempt, its retry, or the end of its lease).
    next_attempt_at       timestamptz not null default now(),
    -- the receiver's http status at the last attempt, when it answered.
    last_response_status  smallint,
    -- why the last attempt failed: our own bounded words, never the receiver's body or a secret.
    last_error            text,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),

    constraint webhook_deliveries_pkey primary key (id),
    -- deleting a webhook deletes its queue and its log.
    constraint webhook_deliveries_webhook_id_fkey foreign key (webhook_id) references webhooks (id) on delete cascade,
    constraint webhook_deliveries_event_check check (event in ('document.updated', 'document.deleted', 'document.shared')),
    -- the body sent is always a json object (receivers parse it as one).
    constraint webhook_deliveries_payload_check check (jsonb_typeof(payload) = 'object'),
    constraint webhook_deliveries_status_check check (status in ('pending', 'delivered', 'failed', 'refused')),
    constraint webhook_deliveries_attempts_check check (attempts >= 0),
    constraint webhook_deliveries_last_response_status_check check (last_response_status between 100 and 599),
    -- characters: the repository cuts at 500 characters, on a character boundary.
    constraint webhook_deliveries_last_error_length_check check (char_length(last_error) <= 500)
);

-- the claim: only pending rows, by when they are due. finished rows (the vast majority, soon) are not
-- in it, so the workers' frequent polling reads a small index however long the log grows.
create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending';

-- one webhook's log, newest first; it also serves the cascade from webhooks.
create index webhook_deliveries_webhook_id_created_at_idx on webhook_deliveries (webhook_id, created_at desc);

comment on table webhooks is 'urls users registered for document events; the signing secret is sealed, never in the clear';
comment on table webhook_deliveries is 'at-least-once delivery queue and log: claimed with skip locked, leased through next_attempt_at';
comment on column webhook_deliveries.next_attempt_at is 'pending: when the row is due (first attempt, retry, or end of a worker''s lease)';
