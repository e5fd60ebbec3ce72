//! The shared kit of cutover's end-to-end tests (`tests/e2e`), the proxy's
//! tests, the benchmarks (`bench`) and `cutover demo`.
//!
//! Nothing here assumes a test framework: every failure is a returned error
//! (the callers decide whether to panic), so production code such as the demo
//! can use it too. One module per concern:
//!
//! - [`activation`]: systemd-style socket activation without systemd
//!   (held listening sockets passed as `LISTEN_FDS`, a stand-in
//!   `$NOTIFY_SOCKET`);
//! - [`ports`]: free loopback ports to listen on;
//! - [`http`]: one GET read whole, and which version of the example app
//!   answered it;
//! - [`load`]: keep-alive clients putting load on an HTTP endpoint until
//!   stopped, recording every answer and tallying them;
//! - [`wait`]: waiting for a condition with a deadline instead of sleeping a
//!   guessed duration.

pub mod activation;
pub mod http;
pub mod load;
pub mod ports;
pub mod wait;
