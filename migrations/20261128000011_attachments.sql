-- Files attached to documents. The bytes live in the database next to their document: one
-- transaction covers the quota check and the insert, a backup holds everything, and deleting a
-- document deletes its files (cascade). At 5 MiB per file this is a reasonable default for a
-- template; a deployment with large files would move `content` to object storage and keep the row.
--
-- `owner_id` repeats the document's owner so that the per-user quota on attachment bytes is one
-- indexed sum, computed under the owner's row lock.

create table attachments (
    id            uuid        not null default gen_random_uuid(),
    document_id   uuid        not null,
    owner_id      uuid        not null,
    filename      text        not null,
    content_type  text        not null,
    size          bigint      not null,
    content       bytea       not null,
    created_at    timestamptz not null default now(),

    constraint attachments_pkey primary key (id),
    constraint attachments_document_id_fkey foreign key (document_id) references documents (id) on delete cascade,
    constraint attachments_owner_id_fkey foreign key (owner_id) references users (id) on delete cascade,
    constraint attachments_filename_check check (char_length(filename) between 1 and 100 and filename !~ '[/\\]'),
    constraint attachments_content_type_check check (content_type in ('image/png', 'image/jpeg', 'application/pdf', 'text/plain')),
    constraint attachments_size_check check (size between 1 and 5242880 and size = octet_length(content))
);

create index attachments_document_id_idx on attachments (document_id);
create index attachments_owner_id_idx on attachments (owner_id);

comment on table attachments is 'files of documents; the type is sniffed from the bytes, the name sanitised, both before insert';
