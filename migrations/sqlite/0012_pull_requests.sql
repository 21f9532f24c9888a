-- Pull requests: which one each suspect commit belongs to, as GitHub says (kept: a merged commit's pull request does
-- not change), the error groups attributed to each, and shipwatch's one comment on it (`comment_id` is null from
-- just before the create is sent until GitHub's answer is recorded).
create table commit_pulls (
    project_id integer not null references projects (id),
    sha text not null,
    pull_number integer,
    title text,
    url text,
    fetched_at integer not null,
    primary key (project_id, sha)
);

create table pull_groups (
    project_id integer not null references projects (id),
    pull_number integer not null,
    group_id integer not null references error_groups (id),
    primary key (project_id, pull_number, group_id)
);

create table pull_comments (
    project_id integer not null references projects (id),
    pull_number integer not null,
    comment_id integer,
    body text,
    sent_at integer not null,
    primary key (project_id, pull_number)
);
