//! The application's databases (`[database.NAME]` in `cutover.toml`), as
//! opposed to cutover's own state store (`store`): for now, their schema
//! migrations (`migrate`), encrypted backups (`backup`), and the preflight
//! checks of both before a deploy (`preflight`).

pub mod backup;
pub mod migrate;
pub mod preflight;
