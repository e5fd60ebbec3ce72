//! The monitoring-and-observability ladder and its facts.

use super::{FactInfo, Ladder, Require, Step};
use crate::finding::{Area, Severity};

pub const FACTS: &[FactInfo] = &[
    FactInfo {
        id: "obs.health-endpoint",
        area: Area::Observability,
        description: "the application serves a health endpoint",
    },
    FactInfo {
        id: "obs.readiness",
        area: Area::Observability,
        description: "readiness is checked apart from liveness",
    },
    FactInfo {
        id: "obs.metrics",
        area: Area::Observability,
        description: "the application exports metrics (Prometheus, OpenMetrics, StatsD)",
    },
    FactInfo {
        id: "obs.structured-logs",
        area: Area::Observability,
        description: "logs are structured (JSON logger)",
    },
    FactInfo {
        id: "obs.alerts",
        area: Area::Observability,
        description: "alert rules are kept in the repository",
    },
    FactInfo {
        id: "obs.dashboards",
        area: Area::Observability,
        description: "dashboards are kept in the repository",
    },
    FactInfo {
        id: "obs.tracing",
        area: Area::Observability,
        description: "requests are traced (OpenTelemetry, Jaeger, Zipkin)",
    },
    FactInfo {
        id: "obs.error-tracking",
        area: Area::Observability,
        description: "errors are reported to a tracker (Sentry, Rollbar, Bugsnag)",
    },
];

pub const LADDER: Ladder = Ladder {
    area: Area::Observability,
    steps: &[
        Step {
            level: 2,
            summary: "the application says whether it is healthy",
            requires: &[Require::Any(&["obs.health-endpoint"])],
        },
        Step {
            level: 3,
            summary: "it exports metrics or structured logs",
            requires: &[Require::Any(&["obs.metrics", "obs.structured-logs"])],
        },
        Step {
            level: 4,
            summary: "alerts or dashboards are versioned with the code, readiness apart from liveness",
            requires: &[
                Require::Any(&["obs.alerts", "obs.dashboards"]),
                Require::Any(&["obs.readiness"]),
                Require::NoFindingsAtLeast(Severity::High),
            ],
        },
        Step {
            level: 5,
            summary: "requests are traced and errors tracked",
            requires: &[
                Require::Any(&["obs.tracing"]),
                Require::Any(&["obs.error-tracking", "obs.alerts"]),
            ],
        },
    ],
};
