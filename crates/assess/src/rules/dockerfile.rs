//! Dockerfile rules: non-root `USER`, `HEALTHCHECK`, base images pinned by digest or exact tag, `latest`, multi-stage builds, `COPY . .` before installing dependencies, secrets in `ENV`/`ARG`.
//!
//! (Being written: see docs/assess.md for the rules this pass will hold.)

use super::{Context, RuleInfo};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[];

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
