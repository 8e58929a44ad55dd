-- mail_outbox: mail the service has decided to send, written in the same database as everything
-- else.
--
-- a use case that mails (registration, a reset request) writes its row here instead of talking to
-- an smtp server in the middle of a request: nothing is lost between a commit and a crash, a slow or
-- absent mail server never slows a request down, and the tests read the mail from this table. a
-- delivery task sends pending rows and records the outcome.
--
-- what is stored, and what is not:
-- * payload holds the mail's secret part (the verification or reset token) *sealed*: aes-256-gcm
--   with the data-encryption keyring, bound to the context `mail_outbox:<template>`. a database
--   dump or a read-only sql injection yields no working link. mails without a secret store an
--   empty sealed value, so every row has the same shape.
-- * the recipient is in the clear: it is needed to send, and to count mails per address.
-- * last_error is bounded: a mail server's reply is not ours to store in full.
--
-- counting recent mails per recipient and template is the per-address cap that stops anyone from
-- mail-bombing an address through the service; the first index serves it.

create table mail_outbox (
    id          uuid        not null default gen_random_uuid(),
    recipient   text        not null,
    template    text        not null,
    payload     text        not null,
    created_at  timestamptz not null default now(),
    sent_at     timestamptz,
    attempts    integer     not null default 0,
    last_error  text,

    constraint mail_outbox_pkey primary key (id),
    constraint mail_outbox_recipient_length_check check (char_length(recipient) between 3 and 254),
    constraint mail_outbox_template_check check (template in ('verify_email', 'password_reset', 'account_exists', 'password_changed')),
    constraint mail_outbox_attempts_check check (attempts >= 0),
    constraint mail_outbox_last_error_length_check check (char_length(last_error) <= 1000)
);

-- "how many mails of this template went to this address lately" (case-insensitive, like users).
create index mail_outbox_recipient_template_idx on mail_outbox (lower(recipient), template, created_at);

-- the delivery task's queue: only unsent rows, oldest first.
create index mail_outbox_pending_idx on mail_outbox (created_at) where sent_at is null;

comment on table mail_outbox is 'mail waiting to be sent (or sent); secret parts of the payload are sealed, never in the clear';
comment on column mail_outbox.payload is 'sealed json of the mail''s secret part (context mail_outbox:<template>:<recipient>)';
