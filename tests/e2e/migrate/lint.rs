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
        "migrations/0002_add_email.sql:1:19: adding-required-field",
        "migrations/0002_add_email.sql:2:1: require-concurrent-index-creation",
        "migrations/0002_add_email.sql:3:19: drop-in-expand",
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
        stdout(&out).contains("0001_rename.sql:1:19: rename-in-expand"),
        "{}",
        stdout(&out)
    );
    assert!(
        !dir.path().join("app.db").exists(),
        "lint creates no database"
    );
}
