-- Events are their own queue: the worker claims ungrouped events in batches instead of one job row per event. An
-- event that cannot be grouped keeps why and leaves the queue. Jobs of the old per-event kind are done: the batches
-- pick their events up.
alter table events add column grouping_error text;
create index events_ungrouped on events (id) where group_id is null and grouping_error is null;
update jobs set status = 'done' where kind = 'process_event' and status in ('queued', 'running');
