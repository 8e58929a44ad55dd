-- Events of capped business flows (see crates/domain/src/flow.rs): one row per share, webhook
-- registration, ... by a user, kept only as long as the longest window needs (the hourly purge
-- deletes older rows). Counting happens under a per-user, per-flow advisory lock, so concurrent
-- requests take turns and never pass the cap together.

create table flow_events (
    id           bigint      generated always as identity,
    user_id      uuid        not null,
    flow         text        not null,
    occurred_at  timestamptz not null default now(),

    constraint flow_events_pkey primary key (id),
    constraint flow_events_user_id_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint flow_events_flow_check check (flow in ('share', 'webhook_create'))
);

create index flow_events_user_flow_idx on flow_events (user_id, flow, occurred_at);
