//! A scratch project with a `[database.main]` that has `backup = { … }`, a
//! fresh age identity made by `cutover backup keygen` and a signing key made
//! by `cutover backup keygen --signing` (its public key in `signers`), and
//! the CLI run with `CUTOVER_BACKUP_IDENTITY` and
//! `CUTOVER_BACKUP_SIGNING_KEY` pointing at them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use crate::common::{stderr, stdout};

pub struct BackupApp {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub recipient: String,
    /// The public key of `signing.key`, listed in `signers`.
    pub signer: String,
}

impl BackupApp {
    /// A project for the database at `url` (`sqlite://…` relative to the
    /// project, or `postgres://…`); `extra` goes into the backup table.
    pub fn new(url: &str, extra: &str) -> BackupApp {
        let dir = tempfile::Builder::new()
            .prefix("cutover-backup-")
            .tempdir()
            .expect("tempdir");
        let mut app = BackupApp {
            dir,
            url: url.to_owned(),
            recipient: String::new(),
            signer: String::new(),
        };
        let out = app.bare(&["backup", "keygen", "-o", "key.txt"]);
        assert!(out.status.success(), "keygen: {}", stderr(&out));
        app.recipient = stdout(&out).trim().to_owned();
        assert!(app.recipient.starts_with("age1"), "{}", app.recipient);
        let out = app.bare(&["backup", "keygen", "--signing", "-o", "signing.key"]);
        assert!(out.status.success(), "keygen --signing: {}", stderr(&out));
        app.signer = stdout(&out).trim().to_owned();
        assert!(app.signer.starts_with("ed25519:"), "{}", app.signer);
        app.write_config(extra);
        app
    }

    pub fn write_config(&self, extra: &str) {
        self.write_config_signed_by(&[&self.signer], extra);
    }

    /// The config with `signers` as the trusted keys.
    pub fn write_config_signed_by(&self, signers: &[&str], extra: &str) {
        let signers: Vec<String> = signers.iter().map(|s| format!("\"{s}\"")).collect();
        let extra = format!(", signers = [{}]{extra}", signers.join(", "));
        let config = format!(
            r#"[app]
name = "shop"

[service.web]
command = ["./web", "--port", "{{port}}"]

[environment.production]
listen = "127.0.0.1:0"

[database.main]
url = "{}"
backup = {{ recipients = ["{}"]{extra} }}
"#,
            self.url, self.recipient
        );
        std::fs::write(self.path().join("cutover.toml"), config).expect("write config");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn key(&self) -> PathBuf {
        self.path().join("key.txt")
    }

    pub fn backups(&self) -> PathBuf {
        self.path().join(".cutover/backups")
    }

    fn bare(&self, args: &[&str]) -> Output {
        self.with_signing_key(args, Some(&self.path().join("signing.key")))
    }

    /// The CLI with `CUTOVER_BACKUP_SIGNING_KEY` at `key` (unset: `None`).
    pub fn with_signing_key(&self, args: &[&str], key: Option<&Path>) -> Output {
        self.command(args, key).output().expect("run cutover")
    }

    /// The CLI command, not started.
    pub fn command(&self, args: &[&str], key: Option<&Path>) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cutover"));
        match key {
            Some(key) => command.env("CUTOVER_BACKUP_SIGNING_KEY", key),
            None => command.env_remove("CUTOVER_BACKUP_SIGNING_KEY"),
        };
        command
            .current_dir(self.path())
            .arg("-c")
            .arg(self.path().join("cutover.toml"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("CUTOVER_BACKUP_IDENTITY", self.path().join("key.txt"))
            .env_remove("CUTOVER_CONFIG");
        command
    }

    /// Runs the CLI; its output and its peak resident memory in KiB (the
    /// kernel's high-water mark, `VmHWM`, read until it exits).
    pub fn peak_rss(&self, args: &[&str]) -> (Output, u64) {
        let child = self
            .command(args, Some(&self.path().join("signing.key")))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start cutover");
        let status = format!("/proc/{}/status", child.id());
        let watch = std::thread::spawn(move || {
            let mut peak = 0;
            while let Ok(text) = std::fs::read_to_string(&status) {
                let hwm = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
                match hwm {
                    Some(kib) => peak = peak.max(kib),
                    None => break, // a zombie: no memory left to read
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak
        });
        let out = child.wait_with_output().expect("wait for cutover");
        (out, watch.join().expect("watch"))
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.bare(args)
    }

    /// Runs the CLI with `--json`, expects success, parses the output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out = self.cli(&with_json);
        assert!(
            out.status.success(),
            "cutover {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// `backup create --json`: the new backup's id.
    pub fn create(&self) -> String {
        let manifest = self.json(&["backup", "create"]);
        manifest["id"].as_str().expect("an id").to_owned()
    }

    /// The encrypted file of backup `id`.
    pub fn file(&self, id: &str) -> PathBuf {
        self.backups().join(format!("{id}.age"))
    }

    /// Runs `script` with bash in the project folder; stdout, or a panic.
    pub fn sh(&self, script: &str) -> String {
        let out = Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(script)
            .current_dir(self.path())
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{script}\nfailed: {}\n{}",
            stderr(&out),
            stdout(&out)
        );
        stdout(&out)
    }
}
