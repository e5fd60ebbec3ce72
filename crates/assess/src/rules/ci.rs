//! CI workflow rules (GitHub Actions, GitLab CI): tests run, dependency and image scanning, a deploy job, environments with reviewers, pinned action versions.
//!
//! (Being written: see docs/assess.md for the rules this pass will hold.)

use super::{Context, RuleInfo};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[];

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
