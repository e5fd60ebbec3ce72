//! Compose file rules: health checks, restart policies, resource limits, published database ports, plaintext passwords.
//!
//! (Being written: see docs/assess.md for the rules this pass will hold.)

use super::{Context, RuleInfo};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[];

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
