//! The environments-and-promotion ladder and its facts.

use super::{FactInfo, Ladder, Require, Step};
use crate::finding::{Area, Severity};

pub const FACTS: &[FactInfo] = &[
    FactInfo {
        id: "env.config-template",
        area: Area::Environments,
        description: "configuration comes from the environment, with a template (.env.example)",
    },
    FactInfo {
        id: "env.multiple",
        area: Area::Environments,
        description: "more than one environment is described (staging and production)",
    },
    FactInfo {
        id: "env.ci-environments",
        area: Area::Environments,
        description: "CI deploys to named environments",
    },
    FactInfo {
        id: "env.approvals",
        area: Area::Environments,
        description: "production deploys wait for an approval (required reviewers, manual jobs, cutover approvals)",
    },
    FactInfo {
        id: "env.promotion",
        area: Area::Environments,
        description: "the same artifact is promoted from one environment to the next",
    },
];

pub const LADDER: Ladder = Ladder {
    area: Area::Environments,
    steps: &[
        Step {
            level: 2,
            summary: "configuration comes from the environment",
            requires: &[Require::Any(&["env.config-template", "env.multiple"])],
        },
        Step {
            level: 3,
            summary: "staging and production are described separately",
            requires: &[Require::Any(&["env.multiple"])],
        },
        Step {
            level: 4,
            summary: "CI deploys to named environments and production needs an approval",
            requires: &[
                Require::Any(&["env.ci-environments", "deploy.cutover"]),
                Require::Any(&["env.approvals"]),
                Require::NoFindingsAtLeast(Severity::High),
            ],
        },
        Step {
            level: 5,
            summary: "the artifact tested in staging is the one promoted to production",
            requires: &[Require::Any(&["env.promotion"])],
        },
    ],
};
