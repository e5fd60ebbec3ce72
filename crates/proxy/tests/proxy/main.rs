//! End-to-end tests of the proxy: real sockets on loopback, real upstream HTTP
//! servers started by the tests, a real client. One test binary, one module per
//! concern (ripgrep style).

mod body_limit;
mod client_faults;
mod common;
mod failures;
mod fast_path;
mod forwarding;
mod host;
mod http01;
mod hygiene;
mod limits;
mod observations;
mod shutdown;
mod split;
mod switching;
mod table_props;
mod tls;
mod track_override;
mod upgrade;
