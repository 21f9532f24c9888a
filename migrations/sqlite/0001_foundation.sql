-- Projects, deploys with their commit ranges, and the durable job queue.
-- Times are unix milliseconds (author/committer times of commits are unix seconds, as git gives them).

create table projects (
    id integer primary key autoincrement,
    name text not null unique,
    repo_url text not null,
    github_repo text,
    ingest_key text not null unique,
    deploy_token text not null,
    created_at integer not null
);

create table deploys (
    id integer primary key autoincrement,
    project_id integer not null references projects (id),
    environment text not null,
    seq integer not null,
    version text not null,
    sha text not null,
    previous_sha text,
    previous_deploy_id integer references deploys (id),
    base_sha text,
    status text not null,
    range_status text,
    merge_base text,
    commit_count integer,
    commits_stored integer,
    failure_reason text,
    deployed_at integer not null,
    deployer text,
    url text,
    created_at integer not null,
    processed_at integer,
    unique (project_id, environment, seq)
);
create index deploys_project_env on deploys (project_id, environment, id);

create table commits (
    project_id integer not null references projects (id),
    sha text not null,
    parents text not null,
    author_name text not null,
    author_email text not null,
    author_time integer not null,
    committer_name text not null,
    committer_email text not null,
    committer_time integer not null,
    summary text not null,
    message text not null,
    pr_number integer,
    co_authors text not null,
    closes text not null,
    files text not null,
    primary key (project_id, sha)
);

create table deploy_commits (
    deploy_id integer not null references deploys (id),
    sha text not null,
    ord integer not null,
    primary key (deploy_id, sha)
);

create table jobs (
    id integer primary key autoincrement,
    kind text not null,
    payload text not null,
    status text not null,
    attempts integer not null default 0,
    max_attempts integer not null,
    run_at integer not null,
    lease_until integer,
    lease_token text,
    last_error text,
    created_at integer not null,
    updated_at integer not null
);
create index jobs_ready on jobs (status, run_at);
