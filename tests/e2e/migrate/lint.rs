//! `cutover migrate lint` through the CLI: file:line:column, rule, exit 1;
//! safe equivalents pass; `-- cutover:allow RULE because …` is reported as
//! allowed. Lint reads files only: the database is never contacted.

use super::app::{expect_code, stdout};

fn project(url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("migrations")).expect("folder");
    let config = format!(
        "[app]\nname = \"shop\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:0\"\n\n[database.main]\nurl = \"{url}\"\n"
    );
    std::fs::write(dir.path().join("cutover.toml"), config).expect("config");
    dir
}

fn lint(dir: &tempfile::TempDir, json: bool) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
    command
        .arg("-c")
        .arg(dir.path().join("cutover.toml"))
        .args(["migrate", "lint"]);
    if json {
        command.arg("--json");
    }
    command.output().expect("run cutover")
}

#[test]
fn postgres_lint_names_file_line_and_rule() {
    // Nothing listens there: lint must not connect.
    let dir = project("postgres://nobody:secret@127.0.0.1:1/none");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join("migrations").join(name), text).expect("write")
    };
    write(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\n",
    );
    write(
        "0002_add_email.sql",
        "ALTER TABLE users ADD COLUMN email text NOT NULL;\nCREATE INDEX users_email ON users (email);\nALTER TABLE users DROP COLUMN name;\n",
    );
    write(
        "0003_flags.sql",
        "-- cutover:allow require-concurrent-index-creation because flags has a dozen rows\nCREATE INDEX flags_name ON flags (name);\n",
    );

    let out = lint(&dir, false);
    expect_code(&out, 1);
    let text = stdout(&out);
    for expected in [
        "migrations/0002_add_email.sql:1:19: error: adding-required-field",
        "migrations/0002_add_email.sql:2:1: error: require-concurrent-index-creation",
        "migrations/0002_add_email.sql:3:19: error: drop-in-expand",
        "migrations/0003_flags.sql:2: require-concurrent-index-creation allowed because flags has a dozen rows",
        "3 problems in 3 files",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    let json: serde_json::Value = serde_json::from_slice(&lint(&dir, true).stdout).expect("JSON");
    assert_eq!(json["findings"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["findings"][0]["line"], 1);

    write(
        "0002_add_email.sql",
        "ALTER TABLE users ADD COLUMN email text;\n",
    );
    write(
        "0004_index_email.sql",
        "-- cutover:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);\n",
    );
    write(
        "0005_drop_name.sql",
        "-- cutover:phase contract\nALTER TABLE users DROP COLUMN name;\n",
    );
    let out = lint(&dir, false);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("no problems in 5 files"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn style_advice_warns_without_failing_and_the_config_moves_rules() {
    let dir = project("postgres://nobody:secret@127.0.0.1:1/none");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join("migrations").join(name), text).expect("write")
    };
    // A first migration: SERIAL and varchar are style advice, and a new
    // table's index and NOT NULL column lock nothing anyone waits for.
    write(
        "0001_jobs.sql",
        "CREATE TABLE jobs (id SERIAL PRIMARY KEY, name varchar(50));
CREATE INDEX jobs_name ON jobs (name);
ALTER TABLE jobs ADD COLUMN state text NOT NULL;
",
    );
    let out = lint(&dir, false);
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("0001_jobs.sql:1:") && text.contains("warning: prefer-identity"),
        "{text}"
    );
    assert!(!text.contains("error:"), "{text}");
    assert!(text.contains("no problems and"), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&lint(&dir, true).stdout).expect("JSON");
    let levels: Vec<&str> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["level"].as_str())
        .collect();
    assert!(
        !levels.is_empty() && levels.iter().all(|l| *l == "warn"),
        "{json}"
    );

    // An index on a table that exists already still blocks.
    write(
        "0002_index.sql",
        "CREATE INDEX jobs_state ON jobs (state);
",
    );
    let out = lint(&dir, false);
    expect_code(&out, 1);
    assert!(
        stdout(&out).contains("0002_index.sql:1:1: error: require-concurrent-index-creation"),
        "{}",
        stdout(&out)
    );

    // The config moves rules: the index rule to warn, prefer-identity to deny.
    let config = dir.path().join("cutover.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(
        "lint = { warn = [\"require-concurrent-index-creation\"], deny = [\"prefer-identity\"], off = [\"prefer-text-field\"] }\n",
    );
    std::fs::write(&config, &text).expect("config");
    let out = lint(&dir, false);
    expect_code(&out, 1);
    let printed = stdout(&out);
    assert!(
        printed.contains("warning: require-concurrent-index-creation"),
        "{printed}"
    );
    assert!(printed.contains("error: prefer-identity"), "{printed}");
    assert!(!printed.contains("prefer-text-field"), "{printed}");

    // A rule that does not exist is a config error with its place.
    std::fs::write(
        &config,
        text.replace(
            "deny = [\"prefer-identity\"]",
            "deny = [\"prefer-identiy\"]",
        ),
    )
    .expect("config");
    let out = lint(&dir, false);
    expect_code(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("names no lint rule"), "{err}");
    assert!(err.contains("did you mean `prefer-identity`?"), "{err}");
    assert!(err.contains("cutover.toml:"), "{err}");
}

#[test]
fn sqlite_lint_checks_phases() {
    let dir = project("sqlite://app.db");
    std::fs::write(
        dir.path().join("migrations/0001_rename.sql"),
        "ALTER TABLE users RENAME COLUMN name TO full_name;\n",
    )
    .expect("write");
    let out = lint(&dir, false);
    expect_code(&out, 1);
    assert!(
        stdout(&out).contains("0001_rename.sql:1:19: error: rename-in-expand"),
        "{}",
        stdout(&out)
    );
    assert!(
        !dir.path().join("app.db").exists(),
        "lint creates no database"
    );
}
