//! The application's databases (`[database.NAME]` in `cutover.toml`), as
//! opposed to cutover's own state store (`store`): for now, their schema
//! migrations (`migrate`) and encrypted backups (`backup`).

pub mod backup;
pub mod migrate;
