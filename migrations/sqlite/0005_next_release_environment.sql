-- "Resolve in the next release" can name the environment whose next deploy it waits for.

alter table error_groups add column resolve_next_environment text;
