-- A session's principal (its user's role, and whether the user may act at all) is cached per
-- instance next to its liveness (see crates/persistence/src/liveness.rs). When an administrator
-- changes a user's role, locks the account or it is deleted, every instance must forget the
-- cached principal of that user's sessions, so that the change counts from the very next request
-- (ASVS 8.3.2).
--
-- The same channel as session revocation is used: its payload is "a session id whose cached answer
-- is stale", whatever made it stale. One notification per live session of the user; a user has few
-- (sign-ins), and such changes are rare.

create function users_notify_principal_changed() returns trigger
language plpgsql as $$
declare
    session_id uuid;
begin
    for session_id in
        select id from sessions
        where user_id = new.id and revoked_at is null and expires_at > now()
    loop
        perform pg_notify('session_revoked', session_id::text);
    end loop;
    return new;
end;
$$;

create trigger users_notify_principal_changed
    after update of role, locked_at, deleted_at on users
    for each row
    when (old.role is distinct from new.role
          or old.locked_at is distinct from new.locked_at
          or old.deleted_at is distinct from new.deleted_at)
    execute function users_notify_principal_changed();
