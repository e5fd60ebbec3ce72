//! Secret rules: committed `.env` files, private keys, credentials and high-entropy strings in configuration.
//!
//! (Being written: see docs/assess.md for the rules this pass will hold.)

use super::{Context, RuleInfo};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[];

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
