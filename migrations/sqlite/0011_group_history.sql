-- What happened to each group, in order, for its page's timeline and for reports per environment: resolutions and
-- by whom, regressions with the build and the reason, GitHub issue links and fixing commits. Assignments per deploy
-- stay in group_assignments. A rollback's deploy keeps the commits it took out (removed = 1), and how many there were.
create table group_history (
    id integer primary key autoincrement,
    group_id integer not null references error_groups (id),
    at integer not null,
    kind text not null,
    release text,
    environment text,
    deploy_id integer,
    detail text
);
create index group_history_group on group_history (group_id, at);
create index group_history_release on group_history (kind, release, environment);

alter table deploy_commits add column removed integer not null default 0;
alter table deploys add column removed_count integer;
