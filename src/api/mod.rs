//! The daemon's HTTP API: the JSON types and error codes both sides share
//! (`wire.rs`), the server (`server.rs`), the streamed instance output
//! (`logs.rs`), the event feed and its server-sent stream (`events.rs`),
//! the live traffic figures of `status` (`live.rs`), reading server-sent
//! events (`sse.rs`), the client the CLI uses (`client.rs`), the bootstrap bearer
//! token (`token.rs`), who a token is and what its role may call
//! (`auth.rs`), named tokens (`tokens.rs`), the audit log (`audit.rs`),
//! HTTPS for an API off loopback (`tls.rs`), the daemon's own upgrade,
//! reload and stop (`daemon.rs`), the DORA figures (`dora.rs`) and the
//! daemons sharing a PostgreSQL store (`cluster.rs`).
//!
//! Every route lives under `/v1`. Errors are JSON `{ "error": CODE, "message": … }`
//! where CODE is a [`wire::ErrorCode`]: one HTTP status per code on the server,
//! one exit code per code in the CLI (see `crate::exit`).

pub mod audit;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod daemon;
pub mod dora;
pub mod events;
pub mod extract;
pub mod gates;
pub mod live;
pub mod logs;
pub mod server;
pub mod sse;
pub mod tls;
pub mod token;
pub mod tokens;
pub mod wire;
