//! Each fixture repository as a whole: its overall level and each area's,
//! with every pass running (the passes' own tests pin their findings'
//! `file:line`); and `clean` without a single finding.

use std::path::PathBuf;

use cutover_assess::{Area, NoHooks, Report, Severity};

fn assess(name: &str) -> Report {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    cutover_assess::assess(&root, &NoHooks).expect("assess")
}

/// Levels in report order: containerization, CI/CD, deployment automation,
/// environments, observability, database operations, backups, security.
fn levels(r: &Report) -> Vec<u8> {
    assert_eq!(
        r.areas.iter().map(|a| a.area).collect::<Vec<_>>(),
        Area::ALL
    );
    r.areas.iter().map(|a| a.level).collect()
}

fn counts(r: &Report) -> [usize; 3] {
    [
        r.count(Severity::High),
        r.count(Severity::Medium),
        r.count(Severity::Low),
    ]
}

#[test]
fn every_fixture_scores_as_its_story_says() {
    // (name, overall, levels by area, [high, medium, low] findings)
    let expected: [(&str, u8, [u8; 8], [usize; 3]); 5] = [
        ("node-compose", 2, [2, 3, 1, 2, 2, 2, 1, 1], [1, 11, 12]),
        ("fastapi-celery", 2, [2, 3, 3, 4, 3, 2, 2, 1], [3, 6, 5]),
        ("go-k8s", 2, [4, 4, 2, 1, 3, 2, 1, 3], [1, 3, 2]),
        ("sqlite-cp", 1, [1, 1, 2, 1, 1, 2, 2, 1], [7, 4, 1]),
        ("clean", 5, [5; 8], [0, 0, 0]),
    ];
    let mut got = Vec::new();
    for (name, ..) in expected {
        let r = assess(name);
        let l = levels(&r);
        got.push(format!(
            "(\"{name}\", {}, {:?}, {:?}),",
            r.overall_level,
            l,
            counts(&r)
        ));
    }
    let want: Vec<String> = expected
        .iter()
        .map(|(n, o, l, c)| format!("(\"{n}\", {o}, {l:?}, {c:?}),"))
        .collect();
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn the_clean_fixture_has_no_findings_at_all() {
    let r = assess("clean");
    let found: Vec<String> = r
        .findings
        .iter()
        .map(|f| format!("{} {}", f.rule, f.evidence[0].location()))
        .collect();
    assert!(found.is_empty(), "{found:#?}");
    assert_eq!(r.overall_level, 5);
}

#[test]
fn the_weak_fixtures_list_high_findings_first_in_their_next_steps() {
    for name in ["node-compose", "fastapi-celery", "go-k8s", "sqlite-cp"] {
        let r = assess(name);
        let high: Vec<&str> = r
            .findings
            .iter()
            .filter(|f| f.severity == Severity::High)
            .map(|f| f.rule)
            .collect();
        assert!(!high.is_empty(), "{name} has high findings");
        assert!(
            high.iter().any(|rule| r.next_steps[0].contains(rule)),
            "{name}: {:?}",
            r.next_steps
        );
    }
}
