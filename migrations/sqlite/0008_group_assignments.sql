-- Each assignment kept with the deploy it was made at, so a deploy's report keeps its own suspect and owner after a
-- later regression re-assigns the group at another deploy.
create table group_assignments (
    group_id integer not null references error_groups (id),
    deploy_id integer not null references deploys (id),
    assignment text not null,
    assignee text,
    assigned_at integer not null,
    primary key (group_id, deploy_id)
);
