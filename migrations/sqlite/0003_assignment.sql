-- Assignment: per-project settings (code mappings, logins, default assignee, bot patterns) and, per group, the
-- outcome of mapping and blaming its first event at the deployed commit.

alter table projects add column settings text not null default '{}';

alter table error_groups add column assignment text;
alter table error_groups add column assignee text;
alter table error_groups add column assigned_at integer;
