//! End-to-end tests of the `cutover` binary: a real daemon process, real
//! instances of the example app, real HTTP through the proxy. One test binary,
//! one module per behaviour.

mod acme;
mod api_edge;
mod approvals;
mod assess;
mod audit;
mod backup;
mod backup_deploy;
mod browser;
mod canary;
mod certs;
mod common;
mod config_errors;
mod crash;
mod dashboard;
mod demo;
mod deploy;
mod docker;
mod dora;
mod edge;
mod environments;
mod gates;
mod hostile_api;
mod hostile_config;
mod init;
mod instance_env;
mod instance_logs;
mod lifecycle;
mod live;
mod lock;
mod metrics;
mod migrate;
mod notify;
mod restart;
mod roles;
mod rollback;
mod schema_deploy;
mod services;
mod state_store;
mod supervise;
mod switch_approval;
mod switch_gate;
mod systemd;
mod token;
mod workers;
