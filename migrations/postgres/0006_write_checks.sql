-- One row that the readiness check rewrites: readiness means the database takes a committed write (a full disk or
-- a held write lock show here), not merely that it answers a read.
create table write_checks (id integer primary key, checked_at bigint not null);
insert into write_checks (id, checked_at) values (1, 0);
