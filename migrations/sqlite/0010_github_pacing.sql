-- GitHub write pacing shared by every process on this database (one row per pacing key), and what each group's
-- GitHub job has already done, so a job that comes back (for a write slot, after a failure) continues where it
-- stopped instead of starting over.
create table github_pacing (
    pacing_key text primary key,
    next_write_at integer not null
);
insert into github_pacing (pacing_key, next_write_at) values ('writes', 0);

create table github_steps (
    group_id integer not null references error_groups (id),
    step text not null,
    done_at integer not null,
    primary key (group_id, step)
);
