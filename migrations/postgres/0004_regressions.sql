-- Resolution and regression: per group, what it was resolved against in each environment (the commit deployed
-- there, or a fixing commit), whether it is new in or introduced by a release; GitHub webhook deliveries, once.

alter table error_groups add column resolved_at bigint;
alter table error_groups add column fixed_in_commit text;
alter table error_groups add column regressed_at bigint;
alter table error_groups add column regressed_in text;
alter table error_groups add column times_regressed bigint not null default 0;
alter table error_groups add column new_in_release text;
alter table error_groups add column introduced_by text;
alter table error_groups add column github_issue bigint;

create table group_resolutions (
    group_id bigint not null references error_groups (id),
    environment text not null,
    sha text not null,
    primary key (group_id, environment)
);

create table webhook_deliveries (
    delivery_id text primary key,
    event text not null,
    payload text not null,
    received_at bigint not null
);
