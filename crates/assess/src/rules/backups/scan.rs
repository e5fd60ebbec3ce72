//! Reading one file for backup commands, line by line: dumps, copies of a
//! SQLite file, the online backup API, encryption, retention, restores,
//! uploads, schedules and a written RTO/RPO. Whole-repository judgement is
//! in the parent module.

use std::sync::LazyLock;

use regex::Regex;

use crate::repo::RepoFile;

/// What a line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// pg_dump, mysqldump, mongodump: output that needs encrypting.
    Dump,
    /// cp/rsync/scp/tar of a live SQLite file, or a copy from code.
    SqliteCopy,
    /// sqlite3 `.backup`, `VACUUM INTO`, litestream: a consistent copy.
    OnlineBackup,
    /// A backup tool that encrypts by itself (cutover backup, restic, borg).
    EncryptingTool,
    Encrypt,
    Retention,
    Restore,
    Offsite,
    Schedule,
    DrPlan,
}

/// One thing seen, with its 1-based line and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub kind: Kind,
    pub line: usize,
    pub detail: String,
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("regex")
}

static DUMP: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(pg_dump|pg_dumpall|pg_basebackup|mysqldump|mariadb-dump|mongodump)\b")
});
static ONLINE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\bsqlite3\b[^\n]*["'\s]\.backup\b|\bVACUUM\s+INTO\b|\blitestream\s+replicate\b|\.backup\(\s*\w|\bbackup-local\b|docker-volume-backup"#,
    )
});
static ENCRYPTING_TOOL: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(cutover\s+backup\s+create|restic\b[^\n]*\bbackup|borg\s+create)\b"));
static SHELL_COPY: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:^|[\s;&|(])(cp|rsync|scp|tar|install|dd)\s"));
static CODE_COPY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(shutil\.copy\w*|shutil\.move|copyfile|copyFileSync|copyFile|fs\.cp|cpSync|FileUtils\.cp)\s*\(",
    )
});
static SQLITE_FILE: LazyLock<Regex> = LazyLock::new(|| re(r#"[\w./${}~-]*\.(?:db|sqlite3?)\b"#));
static SQLITE_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\.(?:db|sqlite3?)\b|sqlite|db_?path|database_?(?:path|file)"));
static ENCRYPT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\bage\s+(?:-r|-R|-e|-p|--recipient|--encrypt)|\bgpg2?\b|\bopenssl\s+(?:enc|smime|cms)\b|\brestic\b|\bborg\b|--encrypt\b|--sse\b|\bkms\b|\bsops\b",
    )
});
static RETENTION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\bfind\b[^\n]*-mtime[^\n]*(?:-delete|-exec\s+rm)|--keep[-\w]*|\bprune\b|\bkeep_(?:last|within)\b|lifecycle_rule|lifecycle_configuration|put-bucket-lifecycle|\bretention\s*[:=]|tail\s+-n\s*\+\d+[^\n]*\b(?:rm|xargs)\b|\bBACKUP_KEEP_\w+",
    )
});
static RESTORE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(pg_restore|mongorestore|cutover\s+backup\s+(?:verify|restore)|restic\s+(?:check|restore)|borg\s+(?:check|extract)|litestream\s+restore|wal-g\s+backup-fetch)\b|\bsqlite3\b[^\n]*["'\s]\.restore\b|\b(?:psql|mysql)\b[^\n]*(?:<|\s-f)\s*\S*(?:dump|backup|\.sql)"#,
    )
});
static OFFSITE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\baws\s+s3\s+(?:cp|sync|mv)\b|\bs3cmd\b|\brclone\b|\bgsutil\b|\bgcloud\s+storage\s+cp\b|\bazcopy\b|\baz\s+storage\s+blob\b|\bb2\s+upload|\bmc\s+cp\b|\b(?:scp|rsync)\s[^\n]*\s[\w.@-]+:\S*|restic\s+-r\s+\S*(?:s3|sftp|b2|azure|gs|rest):|\blitestream\s+replicate\b|s3://",
    )
});
static OFFSITE_WHAT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)backup|dump|snapshot|\.sql\b|\.age\b|\.gpg\b|\.db\b|litestream|restic")
});
static CRON_LINE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^\s*(?:(?:[\d*/,-]+\s+){4}[\d*/,-]+|@(?:hourly|daily|weekly|monthly|midnight))\s+\S")
});
static CI_CRON: LazyLock<Regex> =
    LazyLock::new(|| re(r#"^\s*-?\s*cron:\s*['"]?[\d*/,-]+(?:\s+[\d*/,-]+){4}"#));
static CRONJOB: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*kind:\s*CronJob\b"));
static SCHEDULE_KEY: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)^\s*(?:OnCalendar=|schedule:\s*['"]?[\d*@])"#));
static RTO: LazyLock<Regex> = LazyLock::new(|| re(r"\bRTO\b[^\n]{0,60}\d"));
static RPO: LazyLock<Regex> = LazyLock::new(|| re(r"\bRPO\b[^\n]{0,60}\d"));

/// Whether `file` may hold backup commands or schedules.
pub fn is_candidate(file: &RepoFile) -> bool {
    let name = file.name.to_ascii_lowercase();
    let ext = file.ext();
    if file.size > 512 * 1024 {
        return false;
    }
    matches!(
        ext.as_str(),
        "sh" | "bash"
            | "zsh"
            | "yml"
            | "yaml"
            | "py"
            | "js"
            | "mjs"
            | "cjs"
            | "ts"
            | "rb"
            | "tf"
            | "timer"
            | "service"
            | "cron"
            | "md"
            | "ps1"
    ) || matches!(
        name.as_str(),
        "makefile" | "justfile" | "procfile" | "crontab" | "jenkinsfile" | "cutover.toml"
    ) || name.contains("cron")
}

fn is_code(ext: &str) -> bool {
    matches!(ext, "py" | "js" | "mjs" | "cjs" | "ts" | "rb")
}

/// Everything backup-related in one file.
pub fn scan(path: &str, text: &str) -> Vec<Seen> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut push = |kind, line: usize, detail: String| out.push(Seen { kind, line, detail });
    if ext == "md" {
        if let (Some(rto), Some(_)) = (RTO.find(text), RPO.find(text)) {
            let line = crate::repo::line_of(text, rto.start());
            push(Kind::DrPlan, line, "RTO and RPO stated".into());
        }
        return out;
    }
    if name == "cutover.toml" {
        return scan_cutover_toml(text);
    }
    let path_says_backup = path.to_ascii_lowercase().contains("backup");
    let code = is_code(&ext);
    let mut online_paths: Vec<String> = Vec::new();
    for line in text.lines() {
        if ONLINE.is_match(line) {
            online_paths.extend(SQLITE_FILE.find_iter(line).map(|m| m.as_str().to_string()));
        }
    }
    let mentions_backup =
        path_says_backup || text.to_ascii_lowercase().contains("backup") || DUMP.is_match(text);
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_start();
        if line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        if code {
            if let Some(m) = CODE_COPY.find(line) {
                let args = &line[m.end()..];
                let first = args.split(',').next().unwrap_or(args);
                if SQLITE_NAME.is_match(first) {
                    push(
                        Kind::SqliteCopy,
                        n,
                        m.as_str().trim_end_matches('(').trim().to_string(),
                    );
                }
            }
            if ONLINE.is_match(line) {
                push(Kind::OnlineBackup, n, "SQLite online backup API".into());
            }
            continue;
        }
        if let Some(m) = DUMP.find(line) {
            push(Kind::Dump, n, m.as_str().to_string());
        }
        if let Some(m) = ENCRYPTING_TOOL.find(line) {
            let tool = m
                .as_str()
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            push(Kind::EncryptingTool, n, tool);
        }
        if ONLINE.is_match(line) {
            push(Kind::OnlineBackup, n, online_detail(line));
        }
        if let Some(c) = SHELL_COPY.captures(line) {
            let after = c.get(0).map_or(line, |m| &line[m.end()..]);
            if let Some(src) = SQLITE_FILE.find(after)
                && !online_paths.iter().any(|p| p == src.as_str())
            {
                let cmd = c.get(1).map_or("cp", |m| m.as_str());
                push(Kind::SqliteCopy, n, format!("{cmd} {}", src.as_str()));
            }
        }
        if ENCRYPT.is_match(line) {
            push(Kind::Encrypt, n, clip_cmd(line));
        }
        if mentions_backup && RETENTION.is_match(line) {
            push(Kind::Retention, n, clip_cmd(line));
        }
        if ext == "tf" && RETENTION.is_match(line) {
            push(Kind::Retention, n, "object storage lifecycle rule".into());
        }
        if RESTORE.is_match(line) {
            push(Kind::Restore, n, clip_cmd(line));
        }
        if OFFSITE.is_match(line) && (path_says_backup || OFFSITE_WHAT.is_match(line)) {
            push(Kind::Offsite, n, clip_cmd(line));
        }
        let cron_line = CRON_LINE.is_match(raw)
            && (raw.to_ascii_lowercase().contains("backup") || DUMP.is_match(raw));
        let keyed = (CI_CRON.is_match(raw) || CRONJOB.is_match(raw) || SCHEDULE_KEY.is_match(raw))
            && mentions_backup;
        if cron_line || keyed {
            push(Kind::Schedule, n, clip_cmd(line));
        }
    }
    out
}

fn online_detail(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    if lower.contains("litestream") {
        "litestream".into()
    } else if lower.contains("vacuum") {
        "VACUUM INTO".into()
    } else if lower.contains(".backup") {
        "sqlite3 .backup".into()
    } else {
        "backup container".into()
    }
}

fn clip_cmd(line: &str) -> String {
    crate::finding::clip(line).chars().take(80).collect()
}

/// `[database.X] backup = { … }` in a cutover.toml (read as text).
fn scan_cutover_toml(text: &str) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut in_backup_table = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        if t.starts_with('[') {
            in_backup_table = t.trim_end_matches(']').ends_with(".backup");
        }
        let inline = t.starts_with("backup") && t.contains('{');
        if !(inline || in_backup_table) {
            continue;
        }
        let n = i + 1;
        if inline || t.starts_with('[') {
            out.push(Seen {
                kind: Kind::EncryptingTool,
                line: n,
                detail: "cutover backup".into(),
            });
        }
        if t.contains("recipients") {
            out.push(Seen {
                kind: Kind::Encrypt,
                line: n,
                detail: "age recipients in cutover.toml".into(),
            });
        }
        if t.contains("keep_last") || t.contains("keep_within") {
            out.push(Seen {
                kind: Kind::Retention,
                line: n,
                detail: "keep_last / keep_within in cutover.toml".into(),
            });
        }
        if t.contains("verify = true") || t.contains("verify=true") {
            out.push(Seen {
                kind: Kind::Restore,
                line: n,
                detail: "verify = true: each backup is restored into a scratch database".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(path: &str, text: &str) -> Vec<(Kind, usize)> {
        scan(path, text)
            .into_iter()
            .map(|s| (s.kind, s.line))
            .collect()
    }

    #[test]
    fn a_cp_of_a_sqlite_file_is_a_live_copy_but_a_copy_of_a_snapshot_is_not() {
        assert_eq!(
            kinds(
                "backup.sh",
                "#!/bin/sh\ncp data/app.db backups/app-$(date +%F).db\n"
            ),
            [(Kind::SqliteCopy, 2)]
        );
        assert_eq!(
            kinds(
                "backup.sh",
                "sqlite3 data/app.db \".backup /tmp/snap.db\"\ncp /tmp/snap.db /mnt/backups/\n"
            ),
            [(Kind::OnlineBackup, 1)]
        );
        assert_eq!(
            kinds(
                "tools/backup.py",
                "shutil.copy(DB_PATH, dest)\nshutil.copy(cfg, x)\n"
            ),
            [(Kind::SqliteCopy, 1)]
        );
    }

    #[test]
    fn dumps_encryption_retention_restores_uploads_and_schedules() {
        let text = "pg_dump \"$DATABASE_URL\" | age -r \"$AGE_RECIPIENT\" > /backups/db.sql.age\naws s3 cp /backups/db.sql.age s3://b/\nfind /backups -mtime +14 -delete\n";
        assert_eq!(
            kinds("ops/backup.sh", text),
            [
                (Kind::Dump, 1),
                (Kind::Encrypt, 1),
                (Kind::Offsite, 2),
                (Kind::Retention, 3)
            ]
        );
        assert_eq!(
            kinds(
                "ops/crontab",
                "0 3 * * * /srv/app/backup.sh\n15 * * * * other\n"
            ),
            [(Kind::Schedule, 1)]
        );
        assert_eq!(
            kinds(
                "scripts/restore-test.sh",
                "pg_restore -d scratch /tmp/db.dump\n"
            ),
            [(Kind::Restore, 1)]
        );
        assert_eq!(
            kinds(
                "docs/dr.md",
                "# DR\n\nRTO: 1 hour. RPO: 24 hours (daily backups).\n"
            ),
            [(Kind::DrPlan, 3)]
        );
    }

    #[test]
    fn a_deploy_rsync_is_not_an_offsite_backup() {
        assert!(kinds("deploy.sh", "rsync -a ./ deploy@server:/srv/app\n").is_empty());
    }

    #[test]
    fn cutover_toml_backups_are_read() {
        let text = "[database.main]\nurl = \"${DATABASE_URL}\"\nbackup = { before_deploy = true, recipients = [\"age1x\"], keep_last = 30, verify = true }\n";
        assert_eq!(
            kinds("cutover.toml", text),
            [
                (Kind::EncryptingTool, 3),
                (Kind::Encrypt, 3),
                (Kind::Retention, 3),
                (Kind::Restore, 3)
            ]
        );
    }
}
