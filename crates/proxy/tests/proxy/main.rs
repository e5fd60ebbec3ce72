//! End-to-end tests of the proxy: real sockets on loopback, real upstream HTTP
//! servers started by the tests, a real client. One test binary, one module per
//! concern (ripgrep style).

mod common;
mod failures;
mod http01;
mod hygiene;
mod observations;
mod shutdown;
mod split;
mod switching;
mod table_props;
mod upgrade;
