//! An existing `cutover.toml`: what `cutover check` finds, and settings that weaken safety (no health checks, a canary without analysis, backups without verify).
//!
//! (Being written: see docs/assess.md for the rules this pass will hold.)

use super::{Context, RuleInfo};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[];

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
