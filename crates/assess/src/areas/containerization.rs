//! The containerization ladder and its facts.

use super::{FactInfo, Ladder, Require, Step};
use crate::finding::{Area, Severity};

pub const FACTS: &[FactInfo] = &[
    FactInfo {
        id: "container.dockerfile",
        area: Area::Containerization,
        description: "a Dockerfile builds the application's image",
    },
    FactInfo {
        id: "container.compose",
        area: Area::Containerization,
        description: "a compose file describes the services",
    },
    FactInfo {
        id: "container.non-root",
        area: Area::Containerization,
        description: "the image runs as a non-root USER",
    },
    FactInfo {
        id: "container.pinned-base",
        area: Area::Containerization,
        description: "base images are pinned to an exact tag or a digest",
    },
    FactInfo {
        id: "container.multi-stage",
        area: Area::Containerization,
        description: "a multi-stage build keeps build tools out of the image",
    },
    FactInfo {
        id: "container.healthcheck",
        area: Area::Containerization,
        description: "the image, its compose service or its Kubernetes probes check its health",
    },
    FactInfo {
        id: "container.digest-pinned",
        area: Area::Containerization,
        description: "base images are pinned by digest",
    },
    FactInfo {
        id: "container.dockerignore",
        area: Area::Containerization,
        description: "a .dockerignore keeps the build context small and secrets out",
    },
];

pub const LADDER: Ladder = Ladder {
    area: Area::Containerization,
    steps: &[
        Step {
            level: 2,
            summary: "the application builds into a container image",
            requires: &[Require::Any(&["container.dockerfile"])],
        },
        Step {
            level: 3,
            summary: "the image runs as a non-root user from pinned base images, with no high findings",
            requires: &[
                Require::Any(&["container.non-root"]),
                Require::Any(&["container.pinned-base", "container.digest-pinned"]),
                Require::NoFindingsAtLeast(Severity::High),
            ],
        },
        Step {
            level: 4,
            summary: "multi-stage build with a health check and a .dockerignore, no medium findings",
            requires: &[
                Require::Any(&["container.multi-stage"]),
                Require::Any(&["container.healthcheck"]),
                Require::Any(&["container.dockerignore"]),
                Require::NoFindingsAtLeast(Severity::Medium),
            ],
        },
        Step {
            level: 5,
            summary: "base images pinned by digest and images scanned in CI",
            requires: &[
                Require::Any(&["container.digest-pinned"]),
                Require::Any(&["ci.image-scan"]),
            ],
        },
    ],
};
