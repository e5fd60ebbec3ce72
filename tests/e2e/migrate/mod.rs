//! `cutover migrate` end to end, on a real SQLite file and a real PostgreSQL
//! server: every scenario runs against both (`both!` makes a `sqlite` and a
//! `postgres` test of it). The PostgreSQL tests need `CUTOVER_TEST_PG_URL`,
//! which `scripts/test` sets after starting a server; without it they fail.

pub(crate) mod app;
mod crash;
mod drift;
mod lifecycle;
mod lint;
mod locking;
mod repair;

/// Defines `mod NAME { fn sqlite(); fn postgres(); }` running `scenario`
/// against each database.
macro_rules! both {
    ($name:ident, $scenario:path) => {
        mod $name {
            #[test]
            fn sqlite() {
                $scenario($crate::migrate::app::Kind::Sqlite);
            }
            #[test]
            fn postgres() {
                $scenario($crate::migrate::app::Kind::Postgres);
            }
        }
    };
}
pub(crate) use both;
