//! The bodies of cutover's fuzz targets, one function per target, each
//! taking the fuzzer's bytes. A target panics only when cutover has a bug
//! (a panic inside the parser, output that cannot be encoded, a parse that
//! does not round-trip); every input cutover rejects with an error is fine.
//!
//! `src/bin/*.rs` wrap them for AFL (`cargo afl build --features afl`, run by
//! `scripts/fuzz`); the tests below replay every file of `fuzz/corpus/` and
//! `fuzz/regressions/` through them on every `cargo test`, so a crash the
//! fuzzer found stays fixed.

use std::path::Path;

use cutover::api::wire::{
    DeployRequest, LockRequest, LogsRequest, RollbackRequest, RolloutCommandRequest,
};
use cutover::config::limits::MAX_CONFIG_BYTES;
use cutover::db::backup::Manifest;
use cutover::db::migrate::{files, lint, statements};

/// Where the fuzzed config "lives": names it in messages, the base for
/// relative paths. Nothing is read from it.
const CONFIG_PATH: &str = "/fuzz/cutover.toml";

/// The config loader: TOML → resolved config → the summary `cutover check`
/// prints and the JSON `cutover check --json` prints; an error is rendered
/// the way `cutover check` shows it.
pub fn config(data: &[u8]) {
    // `config::load` refuses larger files before parsing.
    if data.len() as u64 > MAX_CONFIG_BYTES {
        return;
    }
    // Invalid UTF-8 is refused by `load` before `parse`; lossy keeps the
    // rest of such an input useful to the fuzzer.
    let text = String::from_utf8_lossy(data);
    match cutover::config::parse(&text, Path::new(CONFIG_PATH)) {
        Ok(config) => {
            let _ = config.summary();
            let json = serde_json::to_string(&config).expect("a resolved config encodes as JSON");
            let _: serde_json::Value =
                serde_json::from_str(&json).expect("the config's JSON reads back");
        }
        Err(err) => {
            let _ = err.problems();
            let _ = cutover::config::render(&err);
        }
    }
}

/// The API's JSON request bodies, as the server reads them (`serde_json`
/// into the wire types), then what the server does with their text first:
/// `label::clean_text` of why (who asks is the token's name, not read from
/// the body), `label::check_version` of the
/// version, and the cleaned rejection message when the body is refused.
pub fn api_bodies(data: &[u8]) {
    let said = |err: serde_json::Error| {
        let _ = cutover::label::clean_text(&err.to_string());
    };
    match serde_json::from_slice::<DeployRequest>(data) {
        Ok(req) => {
            let _ = cutover::label::check_version(&req.version);
            if let Some(reason) = &req.reason {
                let _ = cutover::label::clean_text(reason);
            }
            round_trip(&req);
        }
        Err(err) => said(err),
    }
    match serde_json::from_slice::<LockRequest>(data) {
        Ok(req) => {
            let _ = cutover::label::clean_text(&req.reason);
            if let Some(until) = &req.until {
                let _ = cutover::label::parse_until(until, jiff::Timestamp::UNIX_EPOCH);
            }
            round_trip(&req);
        }
        Err(err) => said(err),
    }
    match serde_json::from_slice::<RolloutCommandRequest>(data) {
        Ok(req) => {
            if let Some(reason) = &req.reason {
                let _ = cutover::label::clean_text(reason);
            }
            round_trip(&req);
        }
        Err(err) => said(err),
    }
    match serde_json::from_slice::<RollbackRequest>(data) {
        Ok(req) => {
            round_trip(&req);
        }
        Err(err) => said(err),
    }
    match serde_json::from_slice::<LogsRequest>(data) {
        Ok(req) => round_trip(&req),
        Err(err) => said(err),
    }
}

/// A backup manifest (`ID.json` beside each backup) as `Manifest::load`
/// reads it; one that reads must write and read back to the same value.
pub fn manifest(data: &[u8]) {
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(data) {
        let text = serde_json::to_vec_pretty(&manifest).expect("a manifest encodes");
        let again: Manifest = serde_json::from_slice(&text).expect("a saved manifest reads back");
        assert_eq!(again, manifest, "a manifest changed on a save and load");
    }
}

/// A migration file (`migrations/NNNN_name.sql`): directives, up and down
/// parts, checksum; then what `cutover db migrate` does next with one: the
/// split into statements and the lint, for SQLite and for PostgreSQL.
pub fn migration(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(migration) = files::parse(Path::new("migrations/0001_fuzz.sql"), &text) else {
        return;
    };
    let _ = files::checksum(&text);
    let _ = statements::split(&migration.up);
    if let Some(down) = &migration.down {
        let _ = statements::split(down);
    }
    let levels = lint::Levels::default();
    let _ = lint::lint(&migration, false, &levels);
    let _ = lint::lint(&migration, true, &levels);
}

/// A request the API read must encode and read back as the same JSON.
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) {
    let json = serde_json::to_value(value).expect("a request encodes");
    let again: T = serde_json::from_value(json.clone()).expect("a request reads back");
    let json_again = serde_json::to_value(&again).expect("a request encodes");
    assert_eq!(json, json_again, "a request changed on a round trip");
}

#[cfg(test)]
mod tests {
    //! Every seed and every crash found (`fuzz/corpus/TARGET/`,
    //! `fuzz/regressions/TARGET/`) replayed through its target.

    use std::path::PathBuf;

    fn replay(target: &str, run: fn(&[u8])) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut count = 0;
        for folder in ["corpus", "regressions"] {
            let dir = root.join(folder).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a corpus entry").path();
                let data = std::fs::read(&path).expect("a corpus file reads");
                run(&data);
                count += 1;
            }
        }
        assert!(count > 0, "no corpus for target {target}");
    }

    #[test]
    fn config_corpus_replays() {
        replay("config", super::config);
    }

    #[test]
    fn api_bodies_corpus_replays() {
        replay("api_bodies", super::api_bodies);
    }

    #[test]
    fn manifest_corpus_replays() {
        replay("manifest", super::manifest);
    }

    #[test]
    fn migration_corpus_replays() {
        replay("migration", super::migration);
    }
}
