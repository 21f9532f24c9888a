//! shipwatch's integration tests: one binary, the real router on a real listener, real git repositories, and
//! every store test on SQLite and (when reachable, always in CI) PostgreSQL.

mod action;
mod api;
mod architecture;
mod assign;
mod bombs;
mod browser;
mod cdp;
mod corpus;
mod corpus_cases;
mod crash;
mod diskfull;
mod github;
mod github_app;
mod ingest;
mod kill;
mod limits;
mod pipeline;
mod ranges;
mod regressions;
mod reports;
mod sdk;
mod store_contract;
mod support;
mod traces;
