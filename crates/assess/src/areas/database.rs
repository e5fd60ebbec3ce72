//! The database-operations ladder and its facts.

use super::{FactInfo, Ladder, Require, Step};
use crate::finding::{Area, Severity};

pub const FACTS: &[FactInfo] = &[
    FactInfo {
        id: "db.schema-file",
        area: Area::DatabaseOperations,
        description: "the schema is kept in the repository",
    },
    FactInfo {
        id: "db.migrations",
        area: Area::DatabaseOperations,
        description: "schema changes are versioned migrations (a migration tool is in use)",
    },
    FactInfo {
        id: "db.down-migrations",
        area: Area::DatabaseOperations,
        description: "migrations can be reverted (down migrations)",
    },
    FactInfo {
        id: "db.migrate-in-pipeline",
        area: Area::DatabaseOperations,
        description: "migrations run from CI or the deploy, not by hand",
    },
    FactInfo {
        id: "db.migration-lint",
        area: Area::DatabaseOperations,
        description: "migrations are linted for locking DDL (squawk, cutover migrate lint)",
    },
    FactInfo {
        id: "db.expand-contract",
        area: Area::DatabaseOperations,
        description: "migrations are split into expand and contract phases",
    },
];

pub const LADDER: Ladder = Ladder {
    area: Area::DatabaseOperations,
    steps: &[
        Step {
            level: 2,
            summary: "the schema is versioned with the code",
            requires: &[Require::Any(&["db.migrations", "db.schema-file"])],
        },
        Step {
            level: 3,
            summary: "versioned migrations run by the pipeline, with no high findings",
            requires: &[
                Require::Any(&["db.migrations"]),
                Require::Any(&["db.migrate-in-pipeline", "deploy.cutover"]),
                Require::NoFindingsAtLeast(Severity::High),
            ],
        },
        Step {
            level: 4,
            summary: "migrations are linted for locking DDL and can be reverted",
            requires: &[
                Require::Any(&["db.migration-lint"]),
                Require::Any(&["db.down-migrations", "db.expand-contract"]),
            ],
        },
        Step {
            level: 5,
            summary: "expand/contract migrations with no medium findings",
            requires: &[
                Require::Any(&["db.expand-contract"]),
                Require::NoFindingsAtLeast(Severity::Medium),
            ],
        },
    ],
};
