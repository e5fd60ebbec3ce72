//! `cutover backup` end to end, on real SQLite files, the real PostgreSQL
//! server (`CUTOVER_TEST_PG_URL`), Debian's `age`, `zstd`, `sqlite3` and
//! `pg_restore`: backups under load, verification, restores, tampering,
//! wrong keys, pruning, and the hand-made disaster-recovery pipeline.

pub(crate) mod app;
mod disk_full;
mod pg_tls;
mod postgres;
mod sqlite;
mod trust;
