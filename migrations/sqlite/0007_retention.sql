-- Indexes for retention (deleting what is older than its age, in batches) and for counting a project's events by
-- environment and time, which scanned every event of the project.
create index events_received on events (received_at);
create index events_project_env_time on events (project_id, environment, occurred_at);
create index jobs_finished on jobs (status, updated_at);
create index webhook_deliveries_received on webhook_deliveries (received_at);
-- A group's last event is kept whatever its age; finding whether an event is one needs this.
create index error_groups_last_event on error_groups (last_event_id);
