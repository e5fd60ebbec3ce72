//! Backup and disaster-recovery rules: copies of a live SQLite file instead
//! of the online backup API, dumps written without encryption, no retention,
//! no restore test, backups that never leave the machine; and the facts the
//! backups ladder reads (scripted, scheduled, encrypted, pruned, restore
//! tested, off-site, a written RTO/RPO). Shell scripts, Makefiles, crontabs,
//! CI and Kubernetes YAML, Python/JS/Ruby scripts, Terraform lifecycle rules,
//! `cutover.toml` backups and Markdown docs are read; [`scan`] reads one file.

mod scan;

use std::collections::BTreeSet;

use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};

use scan::{Kind, Seen};

const BACKUP_LINES: &str = "[database.main]\nurl = \"${DATABASE_URL}\"\nbackup = { before_deploy = true, recipients_file = \"keys/backup.pub\", keep_last = 30, keep_within = \"30d\", verify = true }\n# and on a schedule: cutover backup create --db main && cutover backup prune";

pub const SQLITE_LIVE_COPY: RuleInfo = RuleInfo {
    id: "backups/sqlite-live-copy",
    area: Area::Backups,
    severity: Severity::High,
    title: "Live SQLite file copied instead of backed up",
    why: "Copying a SQLite database file (cp, rsync, tar, shutil.copy) while the application writes to it can capture a half-written page or miss the WAL file: the copy may not open, or silently lose the last transactions.",
    fix: "Use SQLite's online backup API: `sqlite3 data/app.db \".backup 'backups/app.db'\"` or `sqlite3 data/app.db \"VACUUM INTO 'backups/app.db'\"` (or litestream, or `cutover backup create`), then copy that file.",
    cutover: Some(
        "[database.main]\nurl = \"sqlite://data/app.db\"\nbackup = { before_deploy = true, recipients_file = \"keys/backup.pub\", keep_last = 30, verify = true }",
    ),
};

pub const UNENCRYPTED_DUMP: RuleInfo = RuleInfo {
    id: "backups/unencrypted-dump",
    area: Area::Backups,
    severity: Severity::High,
    title: "Database dump written without encryption",
    why: "A plain dump holds every row, password hash and token of the database; whoever reads the backup folder or the bucket reads the database.",
    fix: "Encrypt the dump in the same pipeline before it touches a disk: `pg_dump \"$DATABASE_URL\" | age -r \"$BACKUP_RECIPIENT\" > db-$(date +%F).sql.age` (or gpg --encrypt, restic, borg); keep the identity off the database host.",
    cutover: Some(BACKUP_LINES),
};

pub const NO_RETENTION: RuleInfo = RuleInfo {
    id: "backups/no-retention",
    area: Area::Backups,
    severity: Severity::Medium,
    title: "Backups are never pruned",
    why: "Without retention, backups fill the disk (and the database stops when they share one) or someone deletes them by hand, usually the wrong ones.",
    fix: "Prune by age and count after each backup: `find /backups -name '*.age' -mtime +30 -delete`, `restic forget --keep-daily 7 --keep-weekly 4 --prune`, or a lifecycle rule on the bucket.",
    cutover: Some(BACKUP_LINES),
};

pub const NO_RESTORE_TEST: RuleInfo = RuleInfo {
    id: "backups/no-restore-test",
    area: Area::Backups,
    severity: Severity::Medium,
    title: "Restores are never tested",
    why: "A backup nobody has restored is a hope: a wrong flag, a missing table or a lost key is found on the day it is needed.",
    fix: "Restore the newest backup into a scratch database on a schedule and check it (`pg_restore -d scratch …` then a row count or `SELECT` of a known table), in CI or a cron job that alerts on failure.",
    cutover: Some(BACKUP_LINES),
};

pub const LOCAL_ONLY: RuleInfo = RuleInfo {
    id: "backups/local-only",
    area: Area::Backups,
    severity: Severity::Low,
    title: "Backups stay on the database's machine",
    why: "Backups on the same disk or host as the database are lost with it: a failed disk, a deleted VM or ransomware takes both.",
    fix: "Copy each backup elsewhere after it is written: `aws s3 cp`, `rclone copy`, `gsutil cp`, restic/borg to a remote repository, or `scp` to another host.",
    cutover: Some(
        "[database.main]\nbackup = { dir = \"/mnt/offsite/backups\", recipients_file = \"keys/backup.pub\" }   # a mounted remote volume, or sync .cutover/backups with rclone",
    ),
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[
    &SQLITE_LIVE_COPY,
    &UNENCRYPTED_DUMP,
    &NO_RETENTION,
    &NO_RESTORE_TEST,
    &LOCAL_ONLY,
];

struct At<'a> {
    path: &'a str,
    text: &'a str,
    seen: Seen,
}

impl At<'_> {
    fn evidence(&self) -> Evidence {
        Evidence::at(self.path, self.text, self.seen.line)
    }
}

fn is_backup(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Dump | Kind::SqliteCopy | Kind::OnlineBackup | Kind::EncryptingTool
    )
}

/// Runs the pass.
pub fn run(cx: &mut Context<'_>) {
    let repo = cx.repo;
    let mut all: Vec<At<'_>> = Vec::new();
    for file in repo.files().iter().filter(|f| scan::is_candidate(f)) {
        let Some(text) = repo.text(file) else {
            continue;
        };
        all.extend(scan::scan(&file.path, text).into_iter().map(|seen| At {
            path: &file.path,
            text,
            seen,
        }));
    }
    let first = |kind: Kind| all.iter().find(|a| a.seen.kind == kind);
    if let Some(dr) = first(Kind::DrPlan) {
        cx.fact("backup.dr-plan", dr.seen.detail.clone(), dr.evidence());
    }
    let Some(backup) = all.iter().find(|a| is_backup(a.seen.kind)) else {
        return;
    };
    cx.fact(
        "backup.script",
        backup.seen.detail.clone(),
        backup.evidence(),
    );
    let backup_files: BTreeSet<&str> = all
        .iter()
        .filter(|a| is_backup(a.seen.kind))
        .map(|a| a.path)
        .collect();

    for a in all.iter().filter(|a| a.seen.kind == Kind::SqliteCopy) {
        cx.find(
            &SQLITE_LIVE_COPY,
            a.evidence(),
            format!(
                "`{}` copies a live SQLite file: the copy can be torn or miss the WAL",
                a.seen.detail
            ),
        );
    }

    let encryption = all.iter().find(|a| {
        a.seen.kind == Kind::EncryptingTool
            || (a.seen.kind == Kind::Encrypt && backup_files.contains(a.path))
    });
    if let Some(e) = encryption {
        cx.fact("backup.encrypted", e.seen.detail.clone(), e.evidence());
    }
    for a in all.iter().filter(|a| {
        a.seen.kind == Kind::Dump
            || (a.seen.kind == Kind::OnlineBackup
                && matches!(a.seen.detail.as_str(), "sqlite3 .backup" | "VACUUM INTO"))
    }) {
        let encrypted_here = all.iter().any(|e| {
            e.path == a.path && matches!(e.seen.kind, Kind::Encrypt | Kind::EncryptingTool)
        });
        if !encrypted_here {
            cx.find(
                &UNENCRYPTED_DUMP,
                a.evidence(),
                format!(
                    "`{}` output is written without encryption (no age, gpg, openssl enc, restic or borg in {})",
                    a.seen.detail, a.path
                ),
            );
        }
    }

    for (kind, fact) in [
        (Kind::Schedule, "backup.scheduled"),
        (Kind::Retention, "backup.retention"),
        (Kind::Restore, "backup.restore-test"),
        (Kind::Offsite, "backup.offsite"),
    ] {
        if let Some(a) = first(kind) {
            cx.fact(fact, a.seen.detail.clone(), a.evidence());
        }
    }
    let what = backup.seen.detail.as_str();
    if first(Kind::Retention).is_none() {
        cx.find(
            &NO_RETENTION,
            backup.evidence(),
            format!("Backups made by `{what}` are never pruned: no find -mtime -delete, --keep, prune or lifecycle rule"),
        );
    }
    if first(Kind::Restore).is_none() {
        cx.find(
            &NO_RESTORE_TEST,
            backup.evidence(),
            format!("Backups made by `{what}` are never restored to check them: no pg_restore, restore script or verify"),
        );
    }
    if first(Kind::Offsite).is_none() {
        cx.find(
            &LOCAL_ONLY,
            backup.evidence(),
            format!("Backups made by `{what}` stay on this machine: no upload to object storage or another host"),
        );
    }
}
