//! The security-and-secrets ladder and its facts.

use super::{FactInfo, Ladder, Require, Step};
use crate::finding::{Area, Severity};

pub const FACTS: &[FactInfo] = &[
    FactInfo {
        id: "sec.env-ignored",
        area: Area::Security,
        description: ".gitignore keeps .env files out of the repository",
    },
    FactInfo {
        id: "sec.secrets-from-env",
        area: Area::Security,
        description: "secrets are read from the environment or a secret store, not written in config",
    },
    FactInfo {
        id: "sec.secret-scan",
        area: Area::Security,
        description: "CI scans for committed secrets (gitleaks, trufflehog, detect-secrets)",
    },
    FactInfo {
        id: "sec.sast",
        area: Area::Security,
        description: "CI runs static analysis (CodeQL, Semgrep, Bandit, gosec)",
    },
    FactInfo {
        id: "sec.dependency-updates",
        area: Area::Security,
        description: "dependency updates are automated (Dependabot, Renovate)",
    },
];

pub const LADDER: Ladder = Ladder {
    area: Area::Security,
    steps: &[
        Step {
            level: 2,
            summary: "no committed secrets and .env kept out of git",
            requires: &[
                Require::Any(&["sec.env-ignored", "sec.secrets-from-env"]),
                Require::NoFindingsAtLeast(Severity::High),
            ],
        },
        Step {
            level: 3,
            summary: "dependencies are updated or scanned automatically",
            requires: &[Require::Any(&[
                "sec.dependency-updates",
                "ci.dependency-scan",
            ])],
        },
        Step {
            level: 4,
            summary: "CI scans for secrets or runs static analysis, with no medium findings",
            requires: &[
                Require::Any(&["sec.secret-scan", "sec.sast"]),
                Require::NoFindingsAtLeast(Severity::Medium),
            ],
        },
        Step {
            level: 5,
            summary: "secret scanning, static analysis and image scanning all run",
            requires: &[
                Require::Any(&["sec.secret-scan"]),
                Require::Any(&["sec.sast"]),
                Require::Any(&["ci.image-scan"]),
            ],
        },
    ],
};
