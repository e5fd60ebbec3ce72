//! Every limit of `limits.rs` as `check` applies it: a value at the limit
//! passes, one over it is a located error, and hostile sizes (huge names,
//! huge lines) render without panicking and without echoing the input.

use std::path::Path;

use super::{ConfigError, limits, parse_with_env, render};

fn no_variables(_: &str) -> Result<String, std::env::VarError> {
    Err(std::env::VarError::NotPresent)
}

fn parse(source: &str) -> Result<super::Config, ConfigError> {
    parse_with_env(source, Path::new("cutover.toml"), &no_variables)
}

/// A valid file with `service` lines in `[service.web]`, `environment` lines
/// in `[environment.production]` and `database` lines in `[database.main]`.
fn config(service: &str, environment: &str, database: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n{service}\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n{environment}\n\n[database.main]\nurl = \"sqlite://db.sqlite\"\n{database}\n"
    )
}

/// The one problem of `source`, which must be at `needle`, with its message.
fn refused_at(source: &str, needle: &str) -> String {
    let err = match parse(source) {
        Ok(_) => panic!("expected an error for {needle}"),
        Err(err) => err,
    };
    let rendered = render(&err);
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{rendered}");
    let at = source.find(needle).expect("needle");
    assert_eq!(problems[0].span().start, at, "{rendered}");
    let (line, column) = problems[0].line_column();
    assert!(
        rendered.contains(&format!("cutover.toml:{line}:{column}")),
        "{rendered}"
    );
    rendered
}

#[test]
fn every_duration_has_a_maximum() {
    let over = "9223372036854775807s";
    let service_keys = [
        "drain_timeout",
        "stop_timeout",
        "health.interval",
        "health.timeout",
        "health.start_timeout",
    ];
    for key in service_keys {
        let line = match key.split_once('.') {
            Some((table, key)) => format!("{table} = {{ {key} = \"{over}\" }}"),
            None => format!("{key} = \"{over}\""),
        };
        let rendered = refused_at(&config(&line, "", ""), &format!("\"{over}\""));
        assert!(
            rendered.contains(&format!("`{key}` must be at most 30d")),
            "{rendered}"
        );
    }
    for key in [
        "first_request_timeout",
        "h2_idle_timeout",
        "upgrade_idle_timeout",
        "idle_timeout",
    ] {
        let source = format!(
            "{}[environment.production.limits]\n{key} = \"31d\"\n",
            config("", "", "")
        );
        let rendered = refused_at(&source, "\"31d\"");
        assert!(
            rendered.contains(&format!("`limits.{key}` must be at most 30d")),
            "{rendered}"
        );
    }
    let rendered = refused_at(&config("", "rollback_window = \"31d\"", ""), "\"31d\"");
    assert!(rendered.contains("at most 30d"), "{rendered}");
    for key in ["step_duration", "check_interval"] {
        let line = format!("rollout = {{ strategy = \"canary\", {key} = \"31d\" }}");
        refused_at(&config(&line, "", ""), "\"31d\"");
    }
}

#[test]
fn database_timeouts_stay_below_what_sqlite_and_postgres_take() {
    for key in ["lock_timeout", "statement_timeout", "lock_wait"] {
        let rendered = refused_at(&config("", "", &format!("{key} = \"25d\"")), "\"25d\"");
        assert!(
            rendered.contains(&format!("`{key}` must be at most 24d")),
            "{rendered}"
        );
        let ok = config("", "", &format!("{key} = \"24d\""));
        assert!(parse(&ok).is_ok(), "{key} = 24d");
    }
}

#[test]
fn durations_at_the_limit_pass() {
    let source = config(
        "drain_timeout = \"30d\"\nstop_timeout = \"30d\"\nhealth = { start_timeout = \"30d\" }",
        "rollback_window = \"30d\"",
        "",
    );
    let config = parse(&source).expect("valid");
    assert_eq!(config.services["web"].drain_timeout, limits::MAX_DURATION);
}

#[test]
fn counts_and_sizes_have_maxima() {
    let cases = [
        ("replicas = 65", "65", "between 1 and 64"),
        ("health = { healthy = 101 }", "101", "between 1 and 100"),
        ("health = { unhealthy = 101 }", "101", "between 1 and 100"),
        (
            "max_request_body = \"17g\"",
            "\"17g\"",
            "`max_request_body` must be at most 16g",
        ),
    ];
    for (line, needle, message) in cases {
        let rendered = refused_at(&config(line, "", ""), needle);
        assert!(rendered.contains(message), "{rendered}");
    }
    let environment = [
        (
            "max_connections = 1000001",
            "1000001",
            "between 1 and 1000000",
        ),
        (
            "h2_max_concurrent_streams = 10001",
            "10001",
            "between 1 and 10000",
        ),
        (
            "max_request_body = 17179869185",
            "17179869185",
            "at most 16g",
        ),
    ];
    for (line, needle, message) in environment {
        let source = format!(
            "{}[environment.production.limits]\n{line}\n",
            config("", "", "")
        );
        let rendered = refused_at(&source, needle);
        assert!(rendered.contains(message), "{rendered}");
    }
    let rendered = refused_at(&config("", "", "retries = 101"), "101");
    assert!(rendered.contains("between 0 and 100"), "{rendered}");
    let rendered = refused_at(
        &config(
            "",
            "",
            "backup = { recipients = [\"age1xzupnqn4stl3rgvhc0w7k7mvq0x8d0ch80tfnm4e0q6yxlr2k4kqjcjxkq\"], keep_last = 10001 }",
        ),
        "10001",
    );
    assert!(rendered.contains("between 1 and 10000"), "{rendered}");
}

#[test]
fn names_longer_than_64_characters_are_refused_where_written() {
    let at_limit = "a".repeat(limits::MAX_NAME_LEN);
    let over = "b".repeat(limits::MAX_NAME_LEN + 1);
    let ok = config("", "", "").replace("[service.web]", &format!("[service.{at_limit}]"));
    let config_ok = parse(&ok).expect("a 64-character name is valid");
    assert!(config_ok.summary().contains(&at_limit));

    let source = config("", "", "").replace("[service.web]", &format!("[service.{over}]"));
    let rendered = refused_at(&source, &over);
    assert!(rendered.contains("more than 64"), "{rendered}");
    assert!(rendered.contains("too long"), "{rendered}");

    let source = config("", "", "").replace("name = \"hello\"", &format!("name = \"{over}\""));
    let rendered = refused_at(&source, &format!("\"{over}\""));
    assert!(rendered.contains("app name"), "{rendered}");
}

#[test]
fn a_name_of_65536_characters_is_an_error_not_a_panic() {
    for name in ["n".repeat(65_536), "n".repeat(70_000)] {
        for (from, to) in [
            ("[service.web]", format!("[service.{name}]")),
            ("[environment.production]", format!("[environment.{name}]")),
            ("[database.main]", format!("[database.{name}]")),
        ] {
            let source = config("", "", "").replace(from, &to);
            let err = parse(&source).expect_err("too long");
            let rendered = render(&err);
            assert!(rendered.len() < 4_000, "{} bytes", rendered.len());
            assert!(rendered.contains("more than 64"), "{rendered}");
        }
    }
}

#[test]
fn an_error_on_a_huge_line_shows_a_window_of_it() {
    let value = "z".repeat(70_000);
    let source = format!(
        "{}[environment.production.limits]\nmax_connections = \"{value}\"\n",
        config("", "", "")
    );
    let err = parse(&source).expect_err("a string is not a count");
    let rendered = render(&err);
    assert!(
        rendered.len() < 4_000,
        "{} bytes:\n{rendered}",
        rendered.len()
    );
    assert!(rendered.contains('…'), "{rendered}");
    assert!(rendered.contains("max_connections"), "{rendered}");

    // The place far along the line: an unknown key after 70,000 spaces.
    let source = format!("{}{}bogus = 1\n", config("", "", ""), " ".repeat(70_000));
    let err = parse(&source).expect_err("unknown key");
    let rendered = render(&err);
    assert!(
        rendered.len() < 4_000,
        "{} bytes:\n{rendered}",
        rendered.len()
    );
    let (line, column) = err.problems()[0].line_column();
    assert_eq!(column, 70_001, "{rendered}");
    assert!(
        rendered.contains(&format!("cutover.toml:{line}:")),
        "{rendered}"
    );
}

#[test]
fn invalid_utf8_is_placed_by_line_and_column() {
    assert_eq!(super::line_column(b"ab\ncd\xffe", 5), (2, 3));
    assert_eq!(super::line_column(b"\xc3\xa9\xff", 2), (1, 2));
    assert_eq!(super::line_column(b"\xff", 0), (1, 1));
}

/// `n` as the reference writes it: `1,000,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_reference_lists_every_limit() {
    let reference = include_str!("../../docs/config.md");
    let limits_section = reference
        .split("## Limits")
        .nth(1)
        .expect("docs/config.md has a Limits section");
    let row = |key: &str| {
        limits_section
            .lines()
            .find(|line| line.starts_with('|') && line.contains(key))
            .unwrap_or_else(|| panic!("no row for {key} in docs/config.md, Limits"))
    };
    let counts: [(&str, u64); 17] = [
        (
            "`[[notify.webhook]]` and `[[notify.slack]]` tables",
            limits::MAX_NOTIFY_ENDPOINTS as u64,
        ),
        ("`allowed_upgrades`", limits::MAX_UPGRADES as u64),
        ("`tls.acme.domains`", limits::MAX_ACME_DOMAINS as u64),
        ("`[service.NAME]` tables", limits::MAX_SERVICES as u64),
        (
            "`[environment.NAME]` tables",
            limits::MAX_ENVIRONMENTS as u64,
        ),
        ("`[database.NAME]` tables", limits::MAX_DATABASES as u64),
        ("problems reported at once", limits::MAX_PROBLEMS as u64),
        ("`replicas`", u64::from(super::defaults::MAX_REPLICAS)),
        ("`health.healthy`", u64::from(limits::MAX_HEALTH_CHECKS)),
        (
            "`rollout.max_inconclusive`",
            u64::from(limits::MAX_INCONCLUSIVE),
        ),
        ("`rollout.analysis.min_requests`", limits::MAX_MIN_REQUESTS),
        (
            "`[database.NAME] retries`",
            u64::from(super::defaults::MAX_MIGRATE_RETRIES),
        ),
        ("`backup.keep_last`", u64::from(limits::MAX_KEEP_LAST)),
        (
            "`limits.max_connections`",
            u64::from(limits::MAX_CONNECTIONS),
        ),
        (
            "`limits.h2_max_concurrent_streams`",
            u64::from(limits::MAX_H2_STREAMS),
        ),
        ("the config file", limits::MAX_CONFIG_BYTES),
        ("names:", limits::MAX_NAME_LEN as u64),
    ];
    for (key, max) in counts {
        let row = row(key);
        assert!(row.contains(&thousands(max)), "{key}: {max} not in {row}");
    }
    let durations = [
        ("every duration not listed", limits::MAX_DURATION),
        ("`lock_timeout`", limits::MAX_DATABASE_TIMEOUT),
        ("`hsts`", limits::MAX_HSTS),
        ("`tls.acme.renew_before`", limits::MAX_RENEW_BEFORE),
        ("`backup.keep_within`", limits::MAX_KEEP_WITHIN),
    ];
    for (key, max) in durations {
        let row = row(key);
        let written = super::defaults::duration_text(max);
        assert!(
            row.contains(&format!("`\"{written}\"`")),
            "{key}: {written} not in {row}"
        );
    }
    for (key, max) in [
        ("`max_request_body`", limits::MAX_REQUEST_BODY),
        ("`resources.memory`", limits::MAX_MEMORY),
    ] {
        let row = row(key);
        let written = super::defaults::size_text(max);
        assert!(
            row.contains(&format!("`\"{written}\"`")),
            "{key}: {written} not in {row}"
        );
    }
}

#[test]
fn thousands_of_problems_are_reported_as_the_first_50_and_a_count() {
    let mut source = config("", "", "");
    for i in 0..2_000 {
        source.push_str(&format!(
            "[service.s{i}]\ncommand = [\"x\"]\nreplicas = 0\n"
        ));
    }
    let err = parse(&source).expect_err("replicas = 0");
    let problems = err.problems();
    assert_eq!(problems.len(), limits::MAX_PROBLEMS + 1);
    let last = problems.last().expect("a last problem");
    assert!(
        last.message().ends_with("more problems, not shown"),
        "{}",
        last.message()
    );
    assert!(render(&err).len() < 100_000);
}

#[test]
fn at_most_256_services_and_64_environments() {
    let mut source = config("", "", "");
    for i in 0..limits::MAX_SERVICES {
        source.push_str(&format!(
            "[service.s{i}]\nkind = \"worker\"\ncommand = [\"x\"]\n"
        ));
    }
    // With `web`, that is one service too many: the last one written is refused.
    let rendered = refused_at(&source, &format!("s{}]", limits::MAX_SERVICES - 1));
    assert!(
        rendered.contains("257 services, more than 256"),
        "{rendered}"
    );

    // One database for all of them, said so: only the count is refused.
    let mut source = config("", "", "shared = true");
    for i in 0..limits::MAX_ENVIRONMENTS {
        source.push_str(&format!(
            "[environment.e{i}]\nlisten = \"127.0.0.1:{}\"\n",
            9000 + i
        ));
    }
    let rendered = refused_at(&source, &format!("e{}]", limits::MAX_ENVIRONMENTS - 1));
    assert!(
        rendered.contains("65 environments, more than 64"),
        "{rendered}"
    );
}

#[test]
fn at_most_100_acme_domains() {
    let names: Vec<String> = (0..=limits::MAX_ACME_DOMAINS)
        .map(|i| format!("\"n{i}.example.com\""))
        .collect();
    let environment = format!(
        "tls = {{ acme = {{ email = \"ops@example.com\", domains = [{}] }} }}",
        names.join(", ")
    );
    let rendered = refused_at(&config("", &environment, ""), "[\"n0.");
    assert!(
        rendered.contains("lists 101 names, more than 100"),
        "{rendered}"
    );
}

#[test]
fn at_most_16_allowed_upgrades() {
    let names: Vec<String> = (0..=limits::MAX_UPGRADES)
        .map(|i| format!("\"p{i}\""))
        .collect();
    let line = format!("allowed_upgrades = [{}]", names.join(", "));
    let rendered = refused_at(&config(&line, "", ""), "[\"p0\"");
    assert!(
        rendered.contains("lists 17 protocols, more than 16"),
        "{rendered}"
    );
}
