-- tell every instance at once when a session ends.
--
-- each instance caches "session s is live" for a few seconds, so that an authenticated request does
-- not always cost a query. a revocation must reach those caches immediately: this trigger sends the
-- session id on the `session_revoked` channel whenever a session is revoked or deleted, whatever
-- code (or operator) did it with an update or a delete. postgresql delivers notifications when the
-- transaction commits, and never for one that rolls back.
--
-- what does not notify: truncate (no row triggers fire) and editing expires_at by hand. expiry is
-- checked in every liveness query, so the latter is stale for at most the cache's lifetime.

create function sessions_notify_revoked() returns trigger
language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        perform pg_notify('session_revoked', old.id::text);
        return old;
    end if;
    perform pg_notify('session_revoked', new.id::text);
    return new;
end;
$$;

create trigger sessions_notify_revoked_on_update
    after update of revoked_at on sessions
    for each row when (old.revoked_at is null and new.revoked_at is not null)
    execute function sessions_notify_revoked();

create trigger sessions_notify_revoked_on_delete
    after delete on sessions
    for each row execute function sessions_notify_revoked();
