-- user plans, and the indexes behind the administrators' listings of users and of the audit trail.
--
-- * plan says which quotas apply to a user ('free' or 'pro'; the limits per plan are configuration,
--   not data). every existing user starts on 'free'. since postgresql 11 adding a column with a
--   constant default rewrites nothing: the default is stored once in the catalogue and read for the
--   old rows (only the check reads every row once, to validate it). the check is named, so a
--   violation says which rule broke; it restates crates/domain's Plan for any other writer.
alter table users
    add column plan text not null default 'free',
    add constraint users_plan_check check (plan in ('free', 'pro'));

comment on column users.plan is 'which quotas apply: free (the default) or pro; the limits are configuration';

-- * the admin user list pages by keyset, newest first: (created_at desc, id desc), the next page
--   starting strictly after the last (created_at, id) seen (id breaks ties, exactly as for
--   documents). deleted users are never listed, so the index holds only the rows the listing can
--   return: the query's `deleted_at is null` implies this predicate, and a page is an index range
--   scan that never steps over anonymised rows. the email/display-name search is a filter on that
--   scan (a substring match cannot use a btree; an administrator's search over a page of users does
--   not need a trigram index yet).
create index users_created_at_id_idx on users (created_at desc, id desc) where deleted_at is null;

-- * the audit listing pages by id, newest first (`id < before_id order by id desc limit n`). the
--   indexes of 20261128000002 order each actor's and each event type's rows by occurred_at, not by
--   id, and the two orders differ: occurred_at is when the inserting transaction began, id when it
--   drew from the identity sequence, so a long transaction can write a row with a higher id and an
--   earlier time. those indexes can find a user's rows but not hand them over in id order, so every
--   page would read and sort *all* of that user's events (an account under a brute-force
--   attack has many) before keeping n. with the id as the second key, a page is a range scan that
--   stops after n rows, at any depth.
--   - actor: "what did this user do".
--   - subject: "what was done to this user" (the listing matches subject_type = 'user' too; subject
--     ids of other kinds are uuids of documents and sessions, so this index also serves their
--     histories). there was no index on subject_id at all.
--   - event type: the same defect as the actor's; without it, filtering on a rare event type would
--     walk the trail backwards from the newest row until it found n of them.
--   the occurred_at indexes stay: they serve time-range questions (and the retention an operator
--   runs), which order by time, not by id. each index costs every audit insert a little; these three
--   are what makes the admin api's filters cost a page rather than a history.
create index audit_events_actor_id_idx on audit_events (actor_user_id, id desc) where actor_user_id is not null;
create index audit_events_subject_id_idx on audit_events (subject_id, id desc) where subject_id is not null;
create index audit_events_event_type_id_idx on audit_events (event_type, id desc);

-- a note for forks with big tables: these statements run inside the migration's transaction, and
-- `create index` blocks writes to its table until the index is built. that is nothing at this size;
-- on a large production table, build such an index with `create index concurrently`, alone in a
-- migration of its own that starts with sqlx's `-- no-transaction` line.
