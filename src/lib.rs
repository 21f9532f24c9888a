//! shipwatch: a Git-integrated release tracker and error-assignment service.
//!
//! The modules follow `DESIGN.md`: `http` → domain services (`projects`, `releases`, `jobs`) → `store` and `git`.

pub mod app;
pub mod assign;
pub mod cache;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod domain;
pub mod events;
pub mod explain;
pub mod git;
pub mod github;
pub mod groups;
pub mod http;
pub mod ingest;
pub mod issues;
pub mod jobs;
pub mod markdown;
pub mod metrics;
pub mod output;
pub mod probes;
pub mod projects;
pub mod regressions;
pub mod releases;
pub mod retention;
pub mod stacktrace;
pub mod store;
pub mod webhooks;
pub mod worker;

pub use app::{serve, App, ServeOptions};
