//! Migration rules: which tool is in use (Alembic, Flyway, Liquibase, Prisma, Knex, Django, goose, sqlx, Rails, golang-migrate, raw SQL folders), whether down migrations exist, and dangerous DDL through cutover's own linter.
//!
//! (Being written: see docs/assess.md for the rules this pass will hold.)

use super::{Context, RuleInfo};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[];

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
