//! The rules: each module reads one kind of file (or looks for one kind of
//! thing across the repository), records [`Fact`]s the maturity ladders read
//! and [`Finding`]s with evidence and a fix. A module declares its rules as
//! [`RuleInfo`] constants (listed in its `RULES`), so the catalogue — used
//! by SARIF's rule list, `--json` and docs/assess.md — is complete by
//! construction. Passes run in [`PASSES`] order; `claims` and
//! `cutover_config` run last because they read what the others found.

use crate::Hooks;
use crate::finding::{Area, Evidence, Fact, Finding, Severity};
use crate::repo::Repo;

pub mod backups;
pub mod ci;
pub mod claims;
pub mod code_health;
pub mod compose;
pub mod cutover_config;
pub mod deploy_tools;
pub mod dockerfile;
pub mod env_secrets;
pub mod image;
pub mod kubernetes;
pub mod migrations;
pub mod secrets;

/// What a rule is, for the catalogue and for every finding it makes.
#[derive(Debug)]
pub struct RuleInfo {
    /// `module/what`, e.g. `dockerfile/root-user`; stable, used by SARIF.
    pub id: &'static str,
    pub area: Area,
    pub severity: Severity,
    /// A short title, e.g. "Container runs as root".
    pub title: &'static str,
    /// Why it matters, one or two sentences (docs and SARIF's help).
    pub why: &'static str,
    /// The default fix a finding carries.
    pub fix: &'static str,
    /// The `cutover.toml` lines that do it, when cutover does.
    pub cutover: Option<&'static str>,
}

/// One pass over the repository.
pub struct Pass {
    pub name: &'static str,
    pub rules: &'static [&'static RuleInfo],
    pub run: fn(&mut Context<'_>),
}

/// Every pass, in the order they run.
pub const PASSES: &[Pass] = &[
    Pass {
        name: "dockerfile",
        rules: dockerfile::RULES,
        run: dockerfile::run,
    },
    Pass {
        name: "compose",
        rules: compose::RULES,
        run: compose::run,
    },
    Pass {
        name: "kubernetes",
        rules: kubernetes::RULES,
        run: kubernetes::run,
    },
    Pass {
        name: "ci",
        rules: ci::RULES,
        run: ci::run,
    },
    Pass {
        name: "migrations",
        rules: migrations::RULES,
        run: migrations::run,
    },
    Pass {
        name: "backups",
        rules: backups::RULES,
        run: backups::run,
    },
    Pass {
        name: "code_health",
        rules: code_health::RULES,
        run: code_health::run,
    },
    Pass {
        name: "secrets",
        rules: secrets::RULES,
        run: secrets::run,
    },
    Pass {
        name: "cutover_config",
        rules: cutover_config::RULES,
        run: cutover_config::run,
    },
    Pass {
        name: "claims",
        rules: claims::RULES,
        run: claims::run,
    },
];

/// Every rule of every pass.
pub fn catalogue() -> impl Iterator<Item = &'static RuleInfo> {
    PASSES.iter().flat_map(|p| p.rules.iter().copied())
}

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static RuleInfo> {
    catalogue().find(|r| r.id == id)
}

/// What passes read and write.
pub struct Context<'a> {
    pub repo: &'a Repo,
    pub hooks: &'a dyn Hooks,
    findings: Vec<Finding>,
    facts: Vec<Fact>,
}

impl<'a> Context<'a> {
    pub fn new(repo: &'a Repo, hooks: &'a dyn Hooks) -> Self {
        Context {
            repo,
            hooks,
            findings: Vec::new(),
            facts: Vec::new(),
        }
    }

    /// Records a finding of `rule` with its default fix.
    pub fn find(
        &mut self,
        rule: &'static RuleInfo,
        evidence: Evidence,
        message: impl Into<String>,
    ) {
        self.find_with(rule, vec![evidence], message, rule.fix.to_string());
    }

    /// Records a finding with several locations and a fix of its own.
    pub fn find_with(
        &mut self,
        rule: &'static RuleInfo,
        evidence: Vec<Evidence>,
        message: impl Into<String>,
        fix: String,
    ) {
        self.findings.push(Finding {
            rule: rule.id,
            area: rule.area,
            severity: rule.severity,
            message: message.into(),
            evidence,
            fix,
            cutover: rule.cutover.map(str::to_string),
        });
    }

    /// Records a fact. `id` must be in [`crate::areas::facts`].
    pub fn fact(&mut self, id: &'static str, detail: impl Into<String>, evidence: Evidence) {
        debug_assert!(
            crate::areas::fact(id).is_some(),
            "fact {id} is not in areas::facts()"
        );
        // Two passes may read the same file (a cutover.toml's backups, say):
        // one fact per id and place.
        if self.facts.iter().any(|f| {
            f.id == id && f.evidence.path == evidence.path && f.evidence.line == evidence.line
        }) {
            return;
        }
        self.facts.push(Fact {
            id,
            detail: detail.into(),
            evidence,
        });
    }

    /// Whether a pass has recorded fact `id`.
    pub fn has_fact(&self, id: &str) -> bool {
        self.facts.iter().any(|f| f.id == id)
    }

    /// The facts recorded so far.
    pub fn facts(&self) -> &[Fact] {
        &self.facts
    }

    /// The findings recorded so far.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    pub(crate) fn into_parts(self) -> (Vec<Finding>, Vec<Fact>) {
        (self.findings, self.facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn rule_ids_are_unique_and_named_after_their_pass() {
        let mut seen = HashSet::new();
        for pass in PASSES {
            for rule in pass.rules {
                assert!(seen.insert(rule.id), "duplicate rule id {}", rule.id);
                let prefix = rule.id.split('/').next().unwrap_or_default();
                assert!(
                    pass.name.replace('_', "-").starts_with(prefix)
                        || prefix.starts_with(&pass.name.replace('_', "-")),
                    "rule {} is in pass {}",
                    rule.id,
                    pass.name
                );
                assert!(!rule.fix.is_empty() && !rule.why.is_empty(), "{}", rule.id);
            }
        }
    }
}
