-- audit_events: the append-only security audit trail (asvs 16.2.1, 16.3.x).
--
-- each row says who (actor_user_id), what (event_type, subject_type/subject_id, outcome),
-- when (occurred_at) and where (ip, user_agent, request_id) for one security-relevant event.
--
-- append-only is enforced here, in the database, not only in the code: a trigger rejects every
-- update and delete, and a statement trigger rejects truncate. no query the application sends --
-- whether by a bug or by an injected statement -- can rewrite the trail.
--
-- what the trigger cannot stop is the table's *owner*, who may disable it. the role that runs these
-- migrations owns the table, so in production the service should run as a different role that has
-- only insert and select on audit_events (see docs/security.md). in development the app runs
-- migrations itself and therefore owns the table: the guarantee there is against bugs, not against
-- someone holding the database password. (retention is an operator's job, inside a maintenance
-- window, and that act is visible in the postgresql log.)
--
-- there is deliberately no foreign key to users: an audit row must outlive the account it talks
-- about, and "on delete set null" would be an update, which the trigger forbids.

create table audit_events (
    id            bigint      generated always as identity,
    occurred_at   timestamptz not null default now(),
    event_type    text        not null,
    outcome       text        not null,
    actor_user_id uuid,
    subject_type  text,
    subject_id    uuid,
    ip            inet,
    user_agent    text,
    request_id    text,
    detail        jsonb       not null default '{}'::jsonb,

    constraint audit_events_pkey primary key (id),
    constraint audit_events_event_type_check check (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' and char_length(event_type) <= 64),
    constraint audit_events_outcome_check check (outcome in ('success', 'failure', 'denied')),
    constraint audit_events_subject_check check ((subject_type is null) = (subject_id is null)),
    constraint audit_events_user_agent_length_check check (char_length(user_agent) <= 512),
    constraint audit_events_request_id_length_check check (char_length(request_id) <= 128),
    -- the detail is a flat object of scalars; the domain type guarantees it, and this repeats the
    -- most important part of that promise for any other writer: no top-level key that names a secret.
    constraint audit_events_detail_object_check check (jsonb_typeof(detail) = 'object'),
    constraint audit_events_detail_no_secrets_check check (
        not (detail ?| array['password', 'new_password', 'current_password', 'token', 'access_token',
                             'refresh_token', 'secret', 'code', 'recovery_code', 'password_hash', 'api_key'])
    )
);

create index audit_events_occurred_at_idx on audit_events (occurred_at desc, id desc);
create index audit_events_actor_idx on audit_events (actor_user_id, occurred_at desc) where actor_user_id is not null;
create index audit_events_type_idx on audit_events (event_type, occurred_at desc);

create function audit_events_reject_change() returns trigger
language plpgsql as $$
begin
    raise exception 'audit_events is append-only: % is not allowed', tg_op
        using errcode = 'insufficient_privilege', constraint = 'audit_events_append_only';
end;
$$;

create trigger audit_events_append_only
    before update or delete on audit_events
    for each row execute function audit_events_reject_change();

create trigger audit_events_no_truncate
    before truncate on audit_events
    for each statement execute function audit_events_reject_change();

comment on table audit_events is 'append-only security audit trail; update, delete and truncate are rejected by triggers';
