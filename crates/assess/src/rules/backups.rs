//! Backup and disaster-recovery rules: copies of a live SQLite file, unencrypted `pg_dump`, no restore test, no retention.
//!
//! (Being written: see docs/assess.md for the rules this pass will hold.)

use super::{Context, RuleInfo};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[];

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
