//! The deployment-automation ladder and its facts.

use super::{FactInfo, Ladder, Require, Step};
use crate::finding::{Area, Severity};

pub const FACTS: &[FactInfo] = &[
    FactInfo {
        id: "deploy.script",
        area: Area::DeploymentAutomation,
        description: "a deploy script or tool configuration (Kamal, Helm, Ansible, Capistrano, shell)",
    },
    FactInfo {
        id: "deploy.manifests",
        area: Area::DeploymentAutomation,
        description: "Kubernetes or Swarm manifests describe the deployment",
    },
    FactInfo {
        id: "deploy.cutover",
        area: Area::DeploymentAutomation,
        description: "a cutover.toml drives deployments",
    },
    FactInfo {
        id: "deploy.health-gated",
        area: Area::DeploymentAutomation,
        description: "traffic waits for health (readiness probes, compose health conditions, cutover health checks)",
    },
    FactInfo {
        id: "deploy.rolling",
        area: Area::DeploymentAutomation,
        description: "rolling updates never take capacity away (maxUnavailable 0, start-first)",
    },
    FactInfo {
        id: "deploy.progressive",
        area: Area::DeploymentAutomation,
        description: "blue-green or canary releases (cutover, Argo Rollouts, Flagger)",
    },
    FactInfo {
        id: "deploy.auto-rollback",
        area: Area::DeploymentAutomation,
        description: "a failing release is rolled back automatically (canary analysis, failure_action rollback)",
    },
    FactInfo {
        id: "deploy.graceful-shutdown",
        area: Area::DeploymentAutomation,
        description: "the application handles SIGTERM and drains",
    },
];

pub const LADDER: Ladder = Ladder {
    area: Area::DeploymentAutomation,
    steps: &[
        Step {
            level: 2,
            summary: "deployments are scripted or described, not done by hand",
            requires: &[Require::Any(&[
                "deploy.script",
                "deploy.manifests",
                "deploy.cutover",
                "ci.deploy",
            ])],
        },
        Step {
            level: 3,
            summary: "traffic reaches a new version only once it is healthy, with no high findings",
            requires: &[
                Require::Any(&["deploy.health-gated"]),
                Require::NoFindingsAtLeast(Severity::High),
            ],
        },
        Step {
            level: 4,
            summary: "releases roll without losing capacity and the app drains on SIGTERM",
            requires: &[
                Require::Any(&["deploy.rolling", "deploy.progressive"]),
                Require::Any(&["deploy.graceful-shutdown"]),
                Require::NoFindingsAtLeast(Severity::High),
            ],
        },
        Step {
            level: 5,
            summary: "blue-green or canary with automatic rollback",
            requires: &[
                Require::Any(&["deploy.progressive"]),
                Require::Any(&["deploy.auto-rollback"]),
            ],
        },
    ],
};
