//! Health and operations in the code: health endpoints declared with common frameworks, SIGTERM (graceful shutdown) handling.
//!
//! (Being written: see docs/assess.md for the rules this pass will hold.)

use super::{Context, RuleInfo};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[];

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
