-- A session's cached principal (crates/persistence/src/liveness.rs) now holds the user's plan too:
-- the plan decides which daily request quota the user's requests count toward. When an
-- administrator changes a user's plan, every instance must forget the cached principal of that
-- user's sessions, exactly as for a change of role (20261128000008): an upgrade counts from the
-- next request, and so does a downgrade.
--
-- Only the trigger's column list and condition change; the function that notifies is the same.

drop trigger users_notify_principal_changed on users;

create trigger users_notify_principal_changed
    after update of role, plan, locked_at, deleted_at on users
    for each row
    when (old.role is distinct from new.role
          or old.plan is distinct from new.plan
          or old.locked_at is distinct from new.locked_at
          or old.deleted_at is distinct from new.deleted_at)
    execute function users_notify_principal_changed();
