-- Error events (stored before the SDK gets its 200), error groups with counts per release and environment, and
-- counters of the envelope items that are accepted but not kept.

create table error_groups (
    id integer primary key autoincrement,
    project_id integer not null references projects (id),
    fingerprint text not null,
    title text not null,
    culprit text,
    level text,
    status text not null,
    first_seen integer not null,
    last_seen integer not null,
    first_release text,
    times_seen integer not null,
    last_event_id integer,
    unique (project_id, fingerprint)
);
create index error_groups_project_seen on error_groups (project_id, last_seen);

create table events (
    id integer primary key autoincrement,
    project_id integer not null references projects (id),
    event_id text not null,
    received_at integer not null,
    occurred_at integer not null,
    release text,
    environment text,
    platform text,
    payload text not null,
    group_id integer references error_groups (id),
    unique (project_id, event_id)
);
create index events_group on events (group_id, occurred_at);

create table group_counts (
    group_id integer not null references error_groups (id),
    release text not null,
    environment text not null,
    count integer not null,
    first_seen integer not null,
    last_seen integer not null,
    primary key (group_id, release, environment)
);

create table item_counts (
    project_id integer not null references projects (id),
    item_type text not null,
    count integer not null,
    primary key (project_id, item_type)
);
