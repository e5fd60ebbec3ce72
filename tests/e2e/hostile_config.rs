//! Hostile configs through the real binary: names of 65,536 characters, a
//! 70,000-character line, a 120 MB file, invalid UTF-8, durations near
//! 9.2e18 s, `lock_timeout = "25d"`, absurd counts. Each is refused by the
//! commands that load the config with a located error and exit code 2 —
//! never a panic (exit 101) — and `check --json` says so in JSON on stdout.

use std::process::Output;

use crate::common::{TestApp, stderr, stdout};

/// The config of a fresh app with `from` replaced by `to` (which must occur).
fn app_with(from: &str, to: &str) -> TestApp {
    let app = TestApp::new("10m");
    let path = app.config();
    let text = std::fs::read_to_string(&path).expect("config");
    assert!(text.contains(from), "{from} not in the config");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write config");
    app
}

/// The command was refused as a usage error, not a panic, and its message
/// names the config file with a line and column.
fn refused_with_a_place(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let place = regex_free_place(&err);
    assert!(place, "no file:line:column in {err}");
    err
}

/// True when `text` has `cutover.toml:LINE:COLUMN`.
fn regex_free_place(text: &str) -> bool {
    text.match_indices("cutover.toml:").any(|(at, found)| {
        let rest = &text[at + found.len()..];
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().unwrap_or("");
        let column: String = parts
            .next()
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        !line.is_empty() && line.chars().all(|c| c.is_ascii_digit()) && !column.is_empty()
    })
}

#[test]
fn names_of_65536_characters_are_refused_where_written() {
    for length in [65_536, 70_000] {
        let name = "n".repeat(length);
        for (from, to) in [
            ("name = \"hello\"", format!("name = \"{name}\"")),
            ("[service.web]", format!("[service.{name}]")),
            ("[environment.production]", format!("[environment.{name}]")),
        ] {
            let app = app_with(from, &to);
            for command in [&["check"][..], &["check", "--json"], &["status"]] {
                let out = app.cli(command);
                let err = refused_with_a_place(&out);
                assert!(err.contains("more than 64"), "{err}");
                assert!(err.len() < 8_000, "{} bytes of error", err.len());
            }
        }
    }
}

#[test]
fn an_error_on_a_70000_character_line_shows_a_window_of_it() {
    let value = "v".repeat(70_000);
    let app = app_with("replicas = 2", &format!("replicas = \"{value}\""));
    let out = app.cli(&["check"]);
    let err = refused_with_a_place(&out);
    assert!(err.contains("cutover.toml:11:"), "{err}");
    assert!(err.contains('…'), "{err}");
    assert!(err.len() < 8_000, "{} bytes of error", err.len());
}

#[test]
fn a_config_over_1_mib_is_refused_without_reading_it() {
    let app = TestApp::new("10m");
    // 120 MB, sparse: nothing is written, and cutover must read only 1 MiB.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(app.config())
        .expect("open config");
    file.set_len(120_000_000).expect("grow config");
    let out = app.cli(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("120000000 bytes"), "{err}");
    assert!(err.contains("1 MiB"), "{err}");
    assert!(err.len() < 2_000, "{err}");
}

#[test]
fn invalid_utf8_is_placed_by_line_column_and_byte_offset() {
    let app = TestApp::new("10m");
    let path = app.config();
    let mut bytes = std::fs::read(&path).expect("config");
    let at = bytes
        .windows(b"\"hello\"".len())
        .position(|w| w == b"\"hello\"")
        .expect("app name");
    // `name = "he\xFFlo"` on line 2: the bad byte is column 11.
    bytes[at + 3] = 0xFF;
    std::fs::write(&path, &bytes).expect("write config");
    let out = app.cli(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cutover.toml:2:11"), "{err}");
    assert!(err.contains(&format!("byte offset {}", at + 3)), "{err}");

    let out = app.cli(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON error");
    assert_eq!(json["problems"][0]["line"], 2, "{json}");
    assert_eq!(json["problems"][0]["column"], 11, "{json}");
}

#[test]
fn durations_near_the_clock_limit_are_refused_by_check_and_serve() {
    let huge = "9223372036854775807s";
    for (from, to, line) in [
        (
            "start_timeout = \"5s\"",
            format!("start_timeout = \"{huge}\""),
            12,
        ),
        (
            "drain_timeout = \"5s\"",
            format!("drain_timeout = \"{huge}\""),
            13,
        ),
        (
            "stop_timeout = \"3s\"",
            format!("stop_timeout = \"{huge}\""),
            14,
        ),
        (
            "rollback_window = \"10m\"",
            "rollback_window = \"31d\"".to_owned(),
            18,
        ),
    ] {
        let app = app_with(from, &to);
        for command in [&["check"][..], &["serve"]] {
            let out = app.cli(command);
            let err = refused_with_a_place(&out);
            assert!(err.contains(&format!("cutover.toml:{line}:")), "{err}");
            assert!(err.contains("must be at most 30d"), "{err}");
        }
    }
}

#[test]
fn database_timeouts_over_24_days_are_refused() {
    for key in ["lock_timeout", "statement_timeout", "lock_wait"] {
        let app = TestApp::new("10m");
        app.append_config(&format!(
            "\n[database.main]\nurl = \"sqlite://app.db\"\n{key} = \"25d\"\n"
        ));
        for command in [&["check"][..], &["migrate", "status"]] {
            let out = app.cli(command);
            let err = refused_with_a_place(&out);
            assert!(
                err.contains(&format!("`{key}` must be at most 24d")),
                "{err}"
            );
        }
    }
}

#[test]
fn counts_and_sizes_over_their_maximum_are_refused() {
    for (from, to) in [
        ("replicas = 2", "replicas = 1000"),
        ("healthy = 2", "healthy = 4294967295"),
    ] {
        let app = app_with(from, to);
        let err = refused_with_a_place(&app.cli(&["check"]));
        assert!(err.contains("must be between 1 and"), "{err}");
    }
    let app = app_with("replicas = 2", "replicas = 2\nmax_request_body = \"1000g\"");
    let err = refused_with_a_place(&app.cli(&["check"]));
    assert!(err.contains("must be at most 16g"), "{err}");
}

#[test]
fn a_megabyte_of_problems_reports_the_first_50_and_a_count() {
    let app = TestApp::new("10m");
    let mut more = String::new();
    let mut i = 0;
    while more.len() < 1_000_000 {
        more.push_str(&format!(
            "\n[service.s{i}]\nkind = \"worker\"\ncommand = [\"x\"]\nreplicas = 0\n"
        ));
        i += 1;
    }
    app.append_config(&more);
    let out = app.cli(&["check"]);
    let err = refused_with_a_place(&out);
    assert!(
        err.contains("has 51 problems"),
        "{}",
        &err[..err.len().min(2_000)]
    );
    assert!(
        err.contains("more problems, not shown"),
        "{}",
        &err[err.len().saturating_sub(2_000)..]
    );
}

#[test]
fn check_json_on_an_invalid_config_prints_a_json_error() {
    let app = app_with("replicas = 2", "replicas = \"two\"");
    let out = app.cli(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&out)).expect("a JSON error on stdout");
    assert_eq!(json["error"], "usage", "{json}");
    assert!(json["message"].is_string(), "{json}");
    let problem = &json["problems"][0];
    assert!(
        problem["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("cutover.toml")),
        "{json}"
    );
    assert_eq!(problem["line"], 11, "{json}");
    assert!(problem["column"].as_u64().is_some(), "{json}");
    assert!(problem["message"].is_string(), "{json}");
    // Still told to people on stderr.
    assert!(
        stderr(&out).contains("cutover.toml:11:"),
        "{}",
        stderr(&out)
    );

    // A missing file is a JSON error too, with no located problem.
    std::fs::remove_file(app.config()).expect("remove config");
    let out = app.cli(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(json["problems"].as_array().map(Vec::len), Some(0), "{json}");
}
