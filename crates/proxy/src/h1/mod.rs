//! The HTTP/1.1 fast path: client connections served without hyper.
//!
//! A request head is parsed in place with `httparse`, routed and rewritten
//! straight into the upstream head (`parse.rs`); the upstream HTTP/1.1
//! connection is checked out of a per-instance idle pool and driven by the
//! client connection's own task (`upstream.rs`); the response head is
//! rewritten the same way and passed on with its body, head and first body
//! bytes in one vectored write (`body.rs`). `conn.rs` runs the connection.
//!
//! hyper stays for HTTP/2 (ALPN `h2`, or the prior-knowledge preface, which
//! does not parse as HTTP/1), the redirect listener, and every request the
//! fast path does not handle: such a connection is handed to hyper, with
//! the bytes read so far (`rewind.rs`), before anything of that request was
//! sent anywhere. `parse.rs` lists what is handed off.

mod body;
mod conn;
mod date;
mod parse;
mod rewind;
pub(crate) mod upstream;

pub(crate) use conn::{ConnParams, Ended, serve};
pub(crate) use rewind::Rewind;
