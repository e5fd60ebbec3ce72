//! The backups-and-disaster-recovery ladder and its facts.

use super::{FactInfo, Ladder, Require, Step};
use crate::finding::{Area, Severity};

pub const FACTS: &[FactInfo] = &[
    FactInfo {
        id: "backup.script",
        area: Area::Backups,
        description: "backups are scripted (pg_dump, sqlite3 .backup, cutover backup, a backup tool)",
    },
    FactInfo {
        id: "backup.scheduled",
        area: Area::Backups,
        description: "backups run on a schedule (cron, a scheduled CI job, a CronJob)",
    },
    FactInfo {
        id: "backup.encrypted",
        area: Area::Backups,
        description: "backups are encrypted (age, gpg, openssl, restic, cutover)",
    },
    FactInfo {
        id: "backup.retention",
        area: Area::Backups,
        description: "old backups are pruned by a retention policy",
    },
    FactInfo {
        id: "backup.restore-test",
        area: Area::Backups,
        description: "restores are tested",
    },
    FactInfo {
        id: "backup.offsite",
        area: Area::Backups,
        description: "backups leave the machine (object storage, another host)",
    },
    FactInfo {
        id: "backup.dr-plan",
        area: Area::Backups,
        description: "a disaster-recovery plan states RTO and RPO",
    },
];

pub const LADDER: Ladder = Ladder {
    area: Area::Backups,
    steps: &[
        Step {
            level: 2,
            summary: "backups are scripted",
            requires: &[Require::Any(&["backup.script"])],
        },
        Step {
            level: 3,
            summary: "scheduled and encrypted, with no high findings",
            requires: &[
                Require::Any(&["backup.scheduled"]),
                Require::Any(&["backup.encrypted"]),
                Require::NoFindingsAtLeast(Severity::High),
            ],
        },
        Step {
            level: 4,
            summary: "restores are tested and old backups pruned",
            requires: &[
                Require::Any(&["backup.restore-test"]),
                Require::Any(&["backup.retention"]),
            ],
        },
        Step {
            level: 5,
            summary: "off-site copies and a written RTO/RPO",
            requires: &[
                Require::Any(&["backup.offsite"]),
                Require::Any(&["backup.dr-plan"]),
                Require::NoFindingsAtLeast(Severity::Medium),
            ],
        },
    ],
};
