//! Maturity levels: each area has a ladder of steps from Level 2 to Level 5
//! (Level 1 — Ad-hoc — is where every area starts). A step is met when all of
//! its requirements are: facts the passes recorded, or the absence of
//! findings. An area's level is the last step met in a row, and the report
//! names the step that set it and what the next one lacks. The facts a pass
//! may record are listed by [`facts`], each under the area it speaks for.
//! Each area's ladder lives in its own module.

use serde::Serialize;

use crate::finding::{Area, Fact, Finding, Severity};

mod backups;
mod ci_cd;
mod containerization;
mod database;
mod deployment;
mod environments;
mod observability;
mod security;

/// The names of the five levels.
pub const LEVEL_NAMES: [&str; 5] = [
    "Ad-hoc",
    "Managed",
    "Standardized",
    "Optimized",
    "Continuous",
];

/// "Level 3 — Standardized".
pub fn level_label(level: u8) -> String {
    let name = LEVEL_NAMES
        .get(usize::from(level.clamp(1, 5)) - 1)
        .copied()
        .unwrap_or("Ad-hoc");
    format!("Level {level} — {name}")
}

/// A fact a pass may record.
#[derive(Debug)]
pub struct FactInfo {
    pub id: &'static str,
    pub area: Area,
    /// What it means, e.g. "CI runs the test suite".
    pub description: &'static str,
}

/// One requirement of a step.
#[derive(Debug)]
pub enum Require {
    /// At least one of these facts.
    Any(&'static [&'static str]),
    /// No finding in this area at this severity or worse.
    NoFindingsAtLeast(Severity),
}

/// A step of a ladder: reaching `level` needs every requirement.
#[derive(Debug)]
pub struct Step {
    pub level: u8,
    /// What the step means, e.g. "tests run on every push".
    pub summary: &'static str,
    pub requires: &'static [Require],
}

/// An area's ladder: steps for levels 2, 3, 4 and 5 in order.
#[derive(Debug)]
pub struct Ladder {
    pub area: Area,
    pub steps: &'static [Step],
}

/// Every ladder, in area order.
pub const LADDERS: [&Ladder; 8] = [
    &containerization::LADDER,
    &ci_cd::LADDER,
    &deployment::LADDER,
    &environments::LADDER,
    &observability::LADDER,
    &database::LADDER,
    &backups::LADDER,
    &security::LADDER,
];

/// Every fact any pass may record.
pub fn facts() -> impl Iterator<Item = &'static FactInfo> {
    [
        containerization::FACTS,
        ci_cd::FACTS,
        deployment::FACTS,
        environments::FACTS,
        observability::FACTS,
        database::FACTS,
        backups::FACTS,
        security::FACTS,
    ]
    .into_iter()
    .flatten()
}

/// The fact with this id.
pub fn fact(id: &str) -> Option<&'static FactInfo> {
    facts().find(|f| f.id == id)
}

/// An area's level and why.
#[derive(Debug, Clone, Serialize)]
pub struct AreaLevel {
    pub area: Area,
    pub level: u8,
    /// "Level 2 — Managed".
    pub label: String,
    /// The summary of the step that set the level ("nothing found" at Level 1).
    pub set_by: String,
    /// The facts behind the steps met.
    pub evidence: Vec<Fact>,
    /// The next step, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<NextStep>,
}

/// What the next level needs.
#[derive(Debug, Clone, Serialize)]
pub struct NextStep {
    pub level: u8,
    pub summary: String,
    /// The requirements not met, in words.
    pub missing: Vec<String>,
}

/// Scores every area.
pub fn score(facts: &[Fact], findings: &[Finding]) -> Vec<AreaLevel> {
    LADDERS
        .iter()
        .map(|l| score_area(l, facts, findings))
        .collect()
}

fn score_area(ladder: &Ladder, facts: &[Fact], findings: &[Finding]) -> AreaLevel {
    let mut level = 1;
    let mut set_by = "nothing in the repository reaches Level 2".to_string();
    let mut evidence = Vec::new();
    let mut next = None;
    for step in ladder.steps {
        let missing: Vec<String> = step
            .requires
            .iter()
            .filter(|r| !met(r, ladder.area, facts, findings))
            .map(|r| describe(r, ladder.area, findings))
            .collect();
        if missing.is_empty() {
            level = step.level;
            set_by = step.summary.to_string();
            for r in step.requires {
                if let Require::Any(ids) = r
                    && let Some(f) = facts.iter().find(|f| ids.contains(&f.id))
                    && !evidence.contains(f)
                {
                    evidence.push(f.clone());
                }
            }
        } else {
            next = Some(NextStep {
                level: step.level,
                summary: step.summary.to_string(),
                missing,
            });
            break;
        }
    }
    AreaLevel {
        area: ladder.area,
        level,
        label: level_label(level),
        set_by,
        evidence,
        next,
    }
}

fn met(r: &Require, area: Area, facts: &[Fact], findings: &[Finding]) -> bool {
    match r {
        Require::Any(ids) => facts.iter().any(|f| ids.contains(&f.id)),
        Require::NoFindingsAtLeast(sev) => !findings
            .iter()
            .any(|f| f.area == area && f.severity <= *sev),
    }
}

fn describe(r: &Require, area: Area, findings: &[Finding]) -> String {
    match r {
        Require::Any(ids) => ids
            .iter()
            .map(|id| fact(id).map(|f| f.description).unwrap_or(id))
            .collect::<Vec<_>>()
            .join(", or "),
        Require::NoFindingsAtLeast(sev) => {
            let n = findings
                .iter()
                .filter(|f| f.area == area && f.severity <= *sev)
                .count();
            let worse = if *sev == Severity::High {
                ""
            } else {
                " or worse"
            };
            format!("no {sev}{worse} findings in this area ({n} now)")
        }
    }
}

/// The overall level: the lower median of the areas' levels.
pub fn overall(levels: &[AreaLevel]) -> u8 {
    let mut v: Vec<u8> = levels.iter().map(|l| l.level).collect();
    v.sort_unstable();
    match v.len() {
        0 => 1,
        n => v[(n - 1) / 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Evidence;
    use std::collections::HashSet;

    #[test]
    fn ladders_climb_from_two_to_five_and_name_known_facts() {
        let mut ids = HashSet::new();
        for f in facts() {
            assert!(ids.insert(f.id), "duplicate fact {}", f.id);
        }
        for (ladder, area) in LADDERS.iter().zip(Area::ALL) {
            assert_eq!(ladder.area, area);
            let levels: Vec<u8> = ladder.steps.iter().map(|s| s.level).collect();
            assert_eq!(levels, [2, 3, 4, 5], "{area}");
            for step in ladder.steps {
                for r in step.requires {
                    if let Require::Any(any) = r {
                        for id in *any {
                            assert!(ids.contains(id), "{area}: unknown fact {id}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn an_empty_repository_is_level_one_everywhere() {
        let levels = score(&[], &[]);
        assert!(levels.iter().all(|l| l.level == 1));
        assert!(
            levels
                .iter()
                .all(|l| l.next.as_ref().is_some_and(|n| n.level == 2))
        );
        assert_eq!(overall(&levels), 1);
    }

    #[test]
    fn a_level_stops_at_the_first_unmet_step() {
        let ladder = &containerization::LADDER;
        let first = match ladder.steps[0].requires[0] {
            Require::Any(ids) => ids[0],
            Require::NoFindingsAtLeast(_) => unreachable!("step 2 starts with a fact"),
        };
        let facts = vec![Fact {
            id: first,
            detail: String::new(),
            evidence: Evidence::file("Dockerfile"),
        }];
        let level = score_area(ladder, &facts, &[]);
        assert!(level.level >= 2);
        assert_eq!(level.evidence.len(), 1);
    }

    #[test]
    fn the_overall_level_is_the_lower_median() {
        let mk = |level| AreaLevel {
            area: Area::CiCd,
            level,
            label: level_label(level),
            set_by: String::new(),
            evidence: vec![],
            next: None,
        };
        let levels: Vec<AreaLevel> = [4, 2, 1, 2, 3, 2, 5, 1].into_iter().map(mk).collect();
        assert_eq!(overall(&levels), 2);
        assert_eq!(level_label(3), "Level 3 — Standardized");
    }
}
