-- `document.created` joins the webhook events (the document service now publishes it, like the
-- other three). Only the two checks change: the allowed names, and one to four of them.

alter table webhooks
    drop constraint webhooks_events_check,
    add constraint webhooks_events_check check (
        events <@ array['document.created', 'document.updated', 'document.deleted', 'document.shared']::text[]
        and cardinality(events) between 1 and 4
        and array_ndims(events) = 1
    );

alter table webhook_deliveries
    drop constraint webhook_deliveries_event_check,
    add constraint webhook_deliveries_event_check
        check (event in ('document.created', 'document.updated', 'document.deleted', 'document.shared'));
