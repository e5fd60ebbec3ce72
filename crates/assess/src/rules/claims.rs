//! Claims: a README or docs that promise zero downtime, instant rollback, encrypted backups or blue-green with nothing in the repository that does it.
//!
//! (Being written: see docs/assess.md for the rules this pass will hold.)

use super::{Context, RuleInfo};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[];

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
