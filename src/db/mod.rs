//! The application's databases (`[database.NAME]` in `cutover.toml`), as
//! opposed to cutover's own state store (`store`): for now, their schema
//! migrations (`migrate`). Backups and preflight checks will live here too.

pub mod migrate;
