//! The backups pass on the fixture repositories.

use std::path::{Path, PathBuf};

use cutover_assess::{NoHooks, Report, assess};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(name: &str) -> Report {
    assess(&fixture(name), &NoHooks).expect("assess")
}

fn findings(report: &Report) -> Vec<String> {
    let mut v: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.rule.starts_with("backups/"))
        .map(|f| format!("{} {}", f.rule, f.evidence[0].location()))
        .collect();
    v.sort();
    v
}

fn facts(report: &Report) -> Vec<String> {
    let mut v: Vec<String> = report
        .facts
        .iter()
        .filter(|f| f.id.starts_with("backup."))
        .map(|f| format!("{} {}", f.id, f.evidence.location()))
        .collect();
    v.sort();
    v
}

#[test]
fn sqlite_cp_copies_a_live_database_twice() {
    let report = run("sqlite-cp");
    assert_eq!(
        findings(&report),
        [
            "backups/local-only backup.sh:5",
            "backups/no-restore-test backup.sh:5",
            "backups/no-retention backup.sh:5",
            "backups/sqlite-live-copy backup.sh:5",
            "backups/sqlite-live-copy deploy.sh:4",
        ]
    );
    assert_eq!(facts(&report), ["backup.script backup.sh:5"]);
    let live = report
        .findings
        .iter()
        .find(|f| f.rule == "backups/sqlite-live-copy")
        .expect("finding");
    assert!(live.fix.contains(".backup"));
    assert!(
        live.cutover
            .as_deref()
            .is_some_and(|c| c.contains("backup = {"))
    );
}

#[test]
fn fastapi_celery_dumps_in_plain_text_from_cron() {
    let report = run("fastapi-celery");
    assert_eq!(
        findings(&report),
        [
            "backups/local-only scripts/backup.sh:6",
            "backups/no-restore-test scripts/backup.sh:6",
            "backups/no-retention scripts/backup.sh:6",
            "backups/unencrypted-dump scripts/backup.sh:6",
        ]
    );
    assert_eq!(
        facts(&report),
        [
            "backup.scheduled scripts/crontab:2",
            "backup.script scripts/backup.sh:6"
        ]
    );
}

#[test]
fn repositories_without_backups_have_no_backup_findings() {
    for name in ["node-compose", "go-k8s"] {
        let report = run(name);
        assert!(findings(&report).is_empty(), "{name}");
        assert!(facts(&report).is_empty(), "{name}");
    }
}

#[test]
fn clean_backups_are_encrypted_pruned_tested_offsite_and_planned() {
    let report = run("clean");
    assert!(findings(&report).is_empty(), "{:?}", findings(&report));
    assert_eq!(
        facts(&report),
        [
            "backup.dr-plan docs/disaster-recovery.md:3",
            "backup.encrypted cutover.toml:35",
            "backup.offsite ops/backup.sh:8",
            "backup.restore-test cutover.toml:35",
            "backup.retention cutover.toml:35",
            "backup.scheduled cutover.toml:35",
            "backup.scheduled ops/crontab:2",
            "backup.script cutover.toml:35",
        ]
    );
    let level = report
        .areas
        .iter()
        .find(|a| a.area == cutover_assess::Area::Backups)
        .expect("area");
    assert_eq!(level.level, 5);
}

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

#[test]
fn cutover_toml_backups_and_online_sqlite_backups_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "cutover.toml",
        b"[database.main]\nurl = \"sqlite://data/app.db\"\nbackup = { recipients = [\"age1x\"], keep_last = 14, verify = true }\n",
    );
    write(
        root,
        "bin/snapshot.sh",
        b"sqlite3 data/app.db \".backup /tmp/snap.db\"\nrclone copy /tmp/snap.db remote:backups\n",
    );
    write(
        root,
        ".github/workflows/backup.yml",
        b"on:\n  schedule:\n    - cron: '0 2 * * *'\njobs:\n  backup:\n    runs-on: ubuntu-latest\n    steps:\n      - run: bin/snapshot.sh\n",
    );
    let report = assess(root, &NoHooks).expect("assess");
    // The snapshot is made with the online API, but written unencrypted.
    assert_eq!(
        findings(&report),
        ["backups/unencrypted-dump bin/snapshot.sh:1"]
    );
    assert_eq!(
        facts(&report),
        [
            "backup.encrypted cutover.toml:3",
            "backup.offsite bin/snapshot.sh:2",
            "backup.restore-test cutover.toml:3",
            "backup.retention cutover.toml:3",
            "backup.scheduled .github/workflows/backup.yml:3",
            "backup.script bin/snapshot.sh:1",
            "backup.script cutover.toml:3",
        ]
    );
}

#[test]
fn garbage_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "backup.sh", &[0xff, 0x00, 0xfe]);
    write(root, "cron.d/x", "cp ".repeat(100_000).as_bytes());
    write(root, "b.py", "shutil.copy(".as_bytes());
    write(root, "cutover.toml", b"backup = {{{{");
    write(root, "x.md", "RTO RPO ".repeat(50_000).as_bytes());
    write(root, "weird.sh", "cp é.db\u{0}".as_bytes());
    assess(root, &NoHooks).expect("assess");
}
