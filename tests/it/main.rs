//! shipwatch's integration tests: one binary, the real router on a real listener, real git repositories, and
//! every store test on SQLite and (when reachable, always in CI) PostgreSQL.

mod api;
mod crash;
mod ranges;
mod store_contract;
mod support;
