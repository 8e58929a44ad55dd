-- when a user turns mfa on or off, every instance must forget the cached principal of that user's
-- sessions (the principal carries whether mfa is on: with REQUIRE_MFA_FOR_ADMINS an administrator
-- acts as an administrator only with mfa on, and turning it off must count from the next request).
-- the same channel and payload as revocations and role changes (see the principal_change_notify
-- migration): "a session id whose cached answer is stale".

create function mfa_totp_notify_principal_changed() returns trigger
language plpgsql as $$
declare
    changed_user uuid := coalesce(new.user_id, old.user_id);
    session_id uuid;
begin
    for session_id in
        select id from sessions
        where user_id = changed_user and revoked_at is null and expires_at > now()
    loop
        perform pg_notify('session_revoked', session_id::text);
    end loop;
    return null;
end;
$$;

-- insert with enabled_at set never happens (setup inserts a pending secret), but is covered anyway.
create trigger mfa_totp_notify_principal_changed
    after insert or delete or update of enabled_at on mfa_totp
    for each row
    execute function mfa_totp_notify_principal_changed();
