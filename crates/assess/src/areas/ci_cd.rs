//! The CI/CD ladder and its facts.

use super::{FactInfo, Ladder, Require, Step};
use crate::finding::{Area, Severity};

pub const FACTS: &[FactInfo] = &[
    FactInfo {
        id: "ci.pipeline",
        area: Area::CiCd,
        description: "a CI pipeline runs on pushes or pull requests",
    },
    FactInfo {
        id: "ci.tests",
        area: Area::CiCd,
        description: "CI runs the test suite",
    },
    FactInfo {
        id: "ci.lint",
        area: Area::CiCd,
        description: "CI runs a linter or type checker",
    },
    FactInfo {
        id: "ci.dependency-scan",
        area: Area::CiCd,
        description: "CI scans dependencies for known vulnerabilities",
    },
    FactInfo {
        id: "ci.image-scan",
        area: Area::CiCd,
        description: "CI scans container images",
    },
    FactInfo {
        id: "ci.image-build",
        area: Area::CiCd,
        description: "CI builds the container image",
    },
    FactInfo {
        id: "ci.deploy",
        area: Area::CiCd,
        description: "a CI job deploys",
    },
    FactInfo {
        id: "ci.pinned-actions",
        area: Area::CiCd,
        description: "every third-party action is pinned to a commit SHA",
    },
];

pub const LADDER: Ladder = Ladder {
    area: Area::CiCd,
    steps: &[
        Step {
            level: 2,
            summary: "a CI pipeline runs on every change",
            requires: &[Require::Any(&["ci.pipeline"])],
        },
        Step {
            level: 3,
            summary: "CI runs the tests (and builds the image when there is one)",
            requires: &[Require::Any(&["ci.tests"])],
        },
        Step {
            level: 4,
            summary: "CI scans dependencies or images and a job deploys",
            requires: &[
                Require::Any(&["ci.dependency-scan", "ci.image-scan"]),
                Require::Any(&["ci.deploy"]),
            ],
        },
        Step {
            level: 5,
            summary: "actions pinned by SHA, linted, with no medium findings",
            requires: &[
                Require::Any(&["ci.pinned-actions"]),
                Require::Any(&["ci.lint"]),
                Require::NoFindingsAtLeast(Severity::Medium),
            ],
        },
    ],
};
