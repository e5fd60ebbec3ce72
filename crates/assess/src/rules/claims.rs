//! Claims in the documentation (README*, *.md at the root, docs/**/*.md)
//! checked against what the other passes found: "zero downtime", "instant
//! rollback", "encrypted backups", "blue-green", "canary", "automatic
//! rollback". A claim nothing in the repository implements is a finding
//! that quotes it and says what is missing, as a reviewer would. Runs last:
//! it reads the facts the other passes recorded (`deploy.*`, `backup.*`).
//! A claim in a sentence that negates it ("does not offer zero downtime")
//! or inside a fenced code block is not a claim. Each kind of claim is one
//! finding for the whole repository, quoting its first place (README files
//! first) and listing up to five.

use std::sync::LazyLock;

use regex::Regex;

use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};
use crate::repo::RepoFile;

pub const ZERO_DOWNTIME: RuleInfo = RuleInfo {
    id: "claims/zero-downtime",
    area: Area::DeploymentAutomation,
    severity: Severity::High,
    title: "\"Zero downtime\" is claimed but nothing implements it",
    why: "Stopping the old version and starting the new one drops every request in between; a team that believes the claim deploys at peak hours.",
    fix: "Deploy so the old release serves until the new one is healthy — cutover (blue-green by default, health-gated, draining the old release), or a Kubernetes RollingUpdate with readiness probes and maxUnavailable: 0 — and make the app finish in-flight requests on SIGTERM. Or remove the claim.",
    cutover: Some(
        "[service.web]\nhealth = { path = \"/health\" }\ndrain_timeout = \"30s\"\n\n[service.web.rollout]\nstrategy = \"blue-green\"",
    ),
};

pub const ZERO_DOWNTIME_SHUTDOWN: RuleInfo = RuleInfo {
    id: "claims/zero-downtime-no-graceful-shutdown",
    area: Area::DeploymentAutomation,
    severity: Severity::Medium,
    title: "\"Zero downtime\" is claimed but the app does not shut down gracefully",
    why: "A rolling or progressive deploy stops old instances with SIGTERM; an app that exits at once drops the requests it was serving.",
    fix: "Handle SIGTERM: stop accepting connections, finish in-flight requests, then exit (Go: signal.Notify + srv.Shutdown(ctx); Node: process.on('SIGTERM', () => server.close()); gunicorn/uvicorn: their graceful timeout). Or deploy through cutover, whose proxy drains the old release before stopping it.",
    cutover: Some("[service.web]\ndrain_timeout = \"30s\"\nstop_timeout = \"10s\""),
};

pub const INSTANT_ROLLBACK: RuleInfo = RuleInfo {
    id: "claims/instant-rollback",
    area: Area::DeploymentAutomation,
    severity: Severity::High,
    title: "\"Instant rollback\" is claimed but nothing implements it",
    why: "A rollback that rebuilds or re-deploys the old version takes minutes, not seconds; an incident plan built on the claim fails when it is needed.",
    fix: "Keep the previous release running and switch traffic back to it: cutover keeps it warm for `rollback_window` and `cutover rollback` moves traffic in one step; or state the rollback time you have measured.",
    cutover: Some(
        "[environment.production]\nrollback_window = \"10m\"   # `cutover rollback` switches back to the warm previous release",
    ),
};

pub const ENCRYPTED_BACKUPS: RuleInfo = RuleInfo {
    id: "claims/encrypted-backups",
    area: Area::Backups,
    severity: Severity::High,
    title: "\"Encrypted backups\" are claimed but nothing encrypts them",
    why: "Plain dumps on disk or in a bucket expose every row to whoever reads the storage; the claim hides the risk from those who would fix it.",
    fix: "Encrypt backups when they are made (cutover backup with age recipients; or `pg_dump … | age -r age1… > dump.sql.age`, `gpg --encrypt`) and test a restore. Or remove the claim.",
    cutover: Some(
        "[database.main]\nbackup = { recipients_file = \"keys/backup.pub\", keep_last = 30, verify = true }",
    ),
};

pub const BLUE_GREEN: RuleInfo = RuleInfo {
    id: "claims/blue-green",
    area: Area::DeploymentAutomation,
    severity: Severity::Medium,
    title: "\"Blue-green\" deploys are claimed but nothing implements them",
    why: "Blue-green means two releases side by side and a switch; without it a deploy replaces the running version in place.",
    fix: "Run the new release beside the old one and switch traffic when it is healthy (cutover does this by default), or remove the claim.",
    cutover: Some("[service.web.rollout]\nstrategy = \"blue-green\""),
};

pub const CANARY: RuleInfo = RuleInfo {
    id: "claims/canary",
    area: Area::DeploymentAutomation,
    severity: Severity::Medium,
    title: "Canary releases are claimed but nothing implements them",
    why: "A canary sends a share of traffic to the new release and judges it before the rest; without traffic splitting and analysis every user gets the new release at once.",
    fix: "Split traffic in steps and judge each (cutover's canary strategy with analysis, Argo Rollouts, Flagger), or remove the claim.",
    cutover: Some(
        "[service.web.rollout]\nstrategy = \"canary\"\nsteps = [5, 25, 50, 100]\nanalysis = { max_error_rate = 0.01, min_requests = 50 }",
    ),
};

pub const AUTOMATIC_ROLLBACK: RuleInfo = RuleInfo {
    id: "claims/automatic-rollback",
    area: Area::DeploymentAutomation,
    severity: Severity::High,
    title: "\"Automatic rollback\" is claimed but nothing rolls back on its own",
    why: "Without health or metric checks that abort a deploy, a bad release stays until someone notices and acts.",
    fix: "Gate the deploy on health and error rates and roll back on failure: cutover's canary analysis (abort_error_rate), Argo Rollouts analysis, or `helm upgrade --atomic`. Or remove the claim.",
    cutover: Some(
        "[service.web.rollout]\nstrategy = \"canary\"\nanalysis = { max_error_rate = 0.01, abort_error_rate = 0.05, min_requests = 50 }",
    ),
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[
    &ZERO_DOWNTIME,
    &ZERO_DOWNTIME_SHUTDOWN,
    &INSTANT_ROLLBACK,
    &ENCRYPTED_BACKUPS,
    &BLUE_GREEN,
    &CANARY,
    &AUTOMATIC_ROLLBACK,
];

/// A kind of claim: how it is written and what implements it.
struct Claim {
    /// What it is called in messages.
    name: &'static str,
    pattern: &'static str,
    rule: &'static RuleInfo,
    /// Any of these facts implements it.
    needs: &'static [&'static str],
    /// What is missing, in words.
    missing: &'static str,
}

const CLAIMS: &[Claim] = &[
    Claim {
        name: "zero downtime",
        pattern: r"\b(zero[- ]?downtime|no[- ]downtime|without (any )?downtime|downtime[- ]free)\b",
        rule: &ZERO_DOWNTIME,
        needs: &["deploy.rolling", "deploy.progressive", "deploy.cutover"],
        missing: "no rolling, blue-green or canary deploy (no Kubernetes rolling update, no cutover.toml): a deploy replaces the running version",
    },
    Claim {
        name: "instant rollback",
        pattern: r"\b(instant|instantaneous|one[- ]click|immediate|quick|fast)\s+roll[- ]?backs?\b|\broll[- ]?backs?\s+(in|within|under)\s+(<\s*)?(\d+|a few|seconds)|\b\d+[- ]?(second|sec|s)\s+roll[- ]?backs?\b|<\s*\d+\s*(s|sec|seconds?)\s+roll[- ]?backs?",
        rule: &INSTANT_ROLLBACK,
        needs: &[
            "deploy.progressive",
            "deploy.auto-rollback",
            "deploy.cutover",
        ],
        missing: "no previous release kept running to switch back to (no progressive deploy, no automatic rollback, no cutover.toml)",
    },
    Claim {
        name: "encrypted backups",
        pattern: r"\bencrypted\s+(database\s+)?backups?\b|\bbackups?\s+(are|is)\s+(\w+\s+)?encrypted\b|\bbackup\s+encryption\b|\bencrypt(s|ing)?\s+(all\s+|the\s+|your\s+)?backups?\b",
        rule: &ENCRYPTED_BACKUPS,
        needs: &["backup.encrypted"],
        missing: "no backup is encrypted (no gpg, age, openssl, restic or encrypted cutover backup)",
    },
    Claim {
        name: "blue-green",
        pattern: r"\bblue[-/ ]green\b",
        rule: &BLUE_GREEN,
        needs: &["deploy.progressive", "deploy.cutover"],
        missing: "no second release runs beside the first and no traffic switch (no progressive deploy, no cutover.toml)",
    },
    Claim {
        name: "canary",
        pattern: r"\bcanary[- ](releases?|deploys?|deployments?|rollouts?|analysis|traffic|strateg(y|ies)|versions?)\b|\b(releases?|deploys?|deployments?|rollouts?)\s+(as\s+)?(a\s+)?canar(y|ies)\b",
        rule: &CANARY,
        needs: &["deploy.progressive", "deploy.cutover"],
        missing: "no traffic splitting between releases (no progressive deploy, no cutover.toml)",
    },
    Claim {
        name: "automatic rollback",
        pattern: r"\bauto(matic(ally)?|[- ])\s*roll(s|ed|ing)?[- ]?backs?\b|\broll(s|ed)?[- ]?back\s+automatically\b",
        rule: &AUTOMATIC_ROLLBACK,
        needs: &["deploy.auto-rollback", "deploy.cutover"],
        missing: "nothing watches a deploy and rolls it back (no analysis, no `--atomic`, no cutover.toml)",
    },
];

static COMPILED: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    CLAIMS
        .iter()
        .map(|c| Regex::new(&format!("(?i){}", c.pattern)).expect("CLAIMS are valid regexes"))
        .collect()
});

static NEGATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(not|no|never|without|isn't|doesn't|don't|won't|lacks?|cannot|can't|nor)\b")
        .expect("NEGATION is a valid regex")
});

/// Whether the file is documentation claims are read from.
fn is_doc(file: &RepoFile) -> bool {
    let lower = file.name.to_ascii_lowercase();
    let at_root = !file.path.contains('/');
    (at_root && (lower.starts_with("readme") || lower.ends_with(".md")))
        || (file.path.starts_with("docs/") && (lower.ends_with(".md") || lower.ends_with(".rst")))
}

/// Whether the text before a match (in its sentence) negates it.
fn negated(before: &str) -> bool {
    let sentence = before
        .rfind(['.', '!', '?', ';', ':'])
        .map(|i| &before[i + 1..])
        .unwrap_or(before);
    NEGATION.is_match(sentence)
}

/// One occurrence of a claim: line and the phrase.
struct Hit {
    line: usize,
    phrase: String,
}

fn find_claims(text: &str) -> Vec<Vec<Hit>> {
    let mut hits: Vec<Vec<Hit>> = CLAIMS.iter().map(|_| Vec::new()).collect();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced || line.len() > 5000 {
            continue;
        }
        for (k, re) in COMPILED.iter().enumerate() {
            if let Some(m) = re.find_iter(line).find(|m| !negated(&line[..m.start()])) {
                hits[k].push(Hit {
                    line: i + 1,
                    phrase: m.as_str().to_string(),
                });
            }
        }
    }
    hits
}

/// How many places a claim's finding lists.
const MAX_EVIDENCE: usize = 5;

/// README files first (where a claim is made to users), then other
/// documents at the root, then docs/.
fn doc_rank(file: &RepoFile) -> (u8, &str) {
    let rank = if file.name.to_ascii_lowercase().starts_with("readme") && !file.path.contains('/') {
        0
    } else if !file.path.contains('/') {
        1
    } else {
        2
    };
    (rank, file.path.as_str())
}

/// Runs the pass: one finding per kind of claim that nothing backs, quoting
/// its first place (README first) and listing up to five.
pub fn run(cx: &mut Context<'_>) {
    let mut docs: Vec<&RepoFile> = cx.repo.files().iter().filter(|f| is_doc(f)).collect();
    docs.sort_by(|a, b| doc_rank(a).cmp(&doc_rank(b)));
    let mut places: Vec<Vec<(Evidence, String)>> = CLAIMS.iter().map(|_| Vec::new()).collect();
    for file in docs {
        let Some(text) = cx.repo.text(file) else {
            continue;
        };
        for (k, hits) in find_claims(text).into_iter().enumerate() {
            for hit in hits {
                if places[k].len() < MAX_EVIDENCE {
                    places[k].push((Evidence::at(&file.path, text, hit.line), hit.phrase));
                }
            }
        }
    }
    for (claim, found) in CLAIMS.iter().zip(places) {
        let Some((first, phrase)) = found.first() else {
            continue;
        };
        let location = first.location();
        let phrase = phrase.clone();
        let evidence: Vec<Evidence> = found.into_iter().map(|(e, _)| e).collect();
        if !claim.needs.iter().any(|f| cx.has_fact(f)) {
            cx.find_with(
                claim.rule,
                evidence,
                format!(
                    "{location} claims \"{phrase}\" ({}), but {}.",
                    claim.name, claim.missing
                ),
                claim.rule.fix.to_string(),
            );
        } else if claim.rule.id == ZERO_DOWNTIME.id
            && !cx.has_fact("deploy.cutover")
            && !cx.has_fact("deploy.graceful-shutdown")
        {
            cx.find_with(
                &ZERO_DOWNTIME_SHUTDOWN,
                evidence,
                format!(
                    "{location} claims \"{phrase}\"; deploys replace instances gradually, but nothing in the app handles SIGTERM, so each stopped instance drops the requests it was serving."
                ),
                ZERO_DOWNTIME_SHUTDOWN.fix.to_string(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoHooks;
    use crate::finding::Finding;
    use crate::repo::Repo;
    use std::fs;

    /// Runs the pass on `files` after recording `facts` as other passes would.
    fn run_with(files: &[(&str, &str)], facts: &[&'static str]) -> Vec<Finding> {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, text).expect("write");
        }
        let repo = Repo::open(dir.path()).expect("open");
        let mut cx = Context::new(&repo, &NoHooks);
        for f in facts {
            cx.fact(f, "test", Evidence::file("x"));
        }
        run(&mut cx);
        cx.into_parts().0
    }

    fn rules(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .map(|f| format!("{} {}", f.rule, f.evidence[0].location()))
            .collect()
    }

    const README: &str = "# App\n\nZero-downtime deploys and instant rollback.\n\n```\nblue-green in a code block\n```\nBackups are encrypted with AES.\nThis is not a blue-green setup.\nWe do canary releases; rollbacks happen automatically? No: it rolls back automatically.\n";

    #[test]
    fn unbacked_claims_are_findings_with_lines() {
        let findings = run_with(
            &[
                ("README.md", README),
                ("docs/ops/deploy.md", "Zero downtime.\n"),
                ("src/notes.md", "zero downtime\n"),
            ],
            &[],
        );
        assert_eq!(
            rules(&findings),
            [
                "claims/zero-downtime README.md:3",
                "claims/instant-rollback README.md:3",
                "claims/encrypted-backups README.md:8",
                "claims/canary README.md:10",
                "claims/automatic-rollback README.md:10",
            ]
        );
        let places: Vec<String> = findings[0].evidence.iter().map(|e| e.location()).collect();
        assert_eq!(places, ["README.md:3", "docs/ops/deploy.md:1"]);
        assert_eq!(
            findings[0].message,
            "README.md:3 claims \"Zero-downtime\" (zero downtime), but no rolling, blue-green or canary deploy (no Kubernetes rolling update, no cutover.toml): a deploy replaces the running version."
        );
        assert_eq!(findings[2].area, Area::Backups);
    }

    #[test]
    fn facts_back_claims() {
        let all = ["deploy.cutover", "backup.encrypted"];
        assert!(run_with(&[("README.md", README)], &all).is_empty());
        // A rolling update without graceful shutdown backs zero downtime only halfway.
        let findings = run_with(&[("README.md", "zero downtime\n")], &["deploy.rolling"]);
        assert_eq!(
            rules(&findings),
            ["claims/zero-downtime-no-graceful-shutdown README.md:1"]
        );
        let findings = run_with(
            &[("README.md", "zero downtime\n")],
            &["deploy.rolling", "deploy.graceful-shutdown"],
        );
        assert!(findings.is_empty());
        let findings = run_with(
            &[("README.md", "Rollback in 30 seconds.\n")],
            &["deploy.rolling"],
        );
        assert_eq!(rules(&findings), ["claims/instant-rollback README.md:1"]);
    }

    #[test]
    fn garbage_never_panics() {
        let long = "zero downtime ".repeat(1000);
        let findings = run_with(
            &[
                ("README.md", &long),
                ("docs/x.md", "```\n~~~\né\u{1F600}blue green"),
                ("docs/bin.md", "\u{0}zero downtime"),
            ],
            &[],
        );
        assert!(findings.iter().any(|f| f.rule == "claims/blue-green"));
    }
}
