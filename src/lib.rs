//! The `cutover` library: everything the `cutover` binary is made of, so that
//! integration tests and later crates can use the same code the CLI runs.
//!
//! See ARCHITECTURE.md for the map. In short: `config` reads `cutover.toml`;
//! `store` keeps releases, deployments, events, locks and instances in SQLite;
//! `db` migrates the application's own databases;
//! `drivers` start, health-check and stop instances; `runtime` carries out
//! deployments; `identity` says who a caller is and what their role may do
//! (the audit log lives in `store`); `webhook` sends notifications (signed
//! webhooks, Slack) from the history; `api` is the daemon's HTTP API and its client; `cli` is the
//! command line.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod db;
pub mod dora;
pub mod drivers;
pub mod edge;
pub mod exit;
pub mod identity;
pub mod label;
pub mod render;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod webhook;
