//! PostgreSQL over TLS, against a server of the test's own: `initdb` and
//! `pg_ctl` from Debian's PostgreSQL (run as the `postgres` user, so the
//! test needs root, as `scripts/test` runs it), `ssl = on` with a
//! certificate from a CA made here. With `sslmode=verify-full` and
//! `sslrootcert`, migrations, backups (`pg_dump`) and their verification
//! (`pg_restore`) all go over TLS; a wrong CA fails naming the certificate;
//! and once the server's TLS is off, `sslmode=require` refuses plaintext.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::app::{BackupApp, stderr};
use crate::certs::TestCa;
use crate::common::stdout;

/// A PostgreSQL server in a temporary folder, stopped when dropped.
struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres user (install postgresql)")
    };
    (id("-u"), id("-g"))
}

/// Runs `program args` as the postgres user; panics with its output on failure.
fn as_postgres(program: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser (the test needs root)");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    fn new(ca: &TestCa) -> Server {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's PostgreSQL (apt-get install postgresql)")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .max_by_key(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .expect("a PostgreSQL version")
            .join("bin");
        let dir = tempfile::Builder::new()
            .prefix("cutover-pgtls-")
            .tempdir()
            .expect("tempdir");
        let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
        std::fs::write(dir.path().join("server.crt"), &leaf.cert_pem).expect("cert");
        std::fs::write(dir.path().join("server.key"), &leaf.key_pem).expect("key");
        let (uid, gid) = postgres_user();
        for name in ["", "server.crt", "server.key"] {
            std::os::unix::fs::chown(dir.path().join(name), Some(uid), Some(gid)).expect("chown");
        }
        std::fs::set_permissions(
            dir.path().join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod key");
        let data = dir.path().join("data");
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-U",
                "cutover",
                "--auth=trust",
            ],
        );
        let port = cutover_kit::ports::free_ports(1).expect("a port")[0];
        let server = Server { dir, bin, port };
        server.start(true);
        server
    }

    fn start(&self, ssl: bool) {
        let d = self.dir.path();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c ssl={} -c ssl_cert_file={} -c ssl_key_file={}",
            self.port,
            d.display(),
            if ssl { "on" } else { "off" },
            d.join("server.crt").display(),
            d.join("server.key").display()
        );
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                d.join("data").to_str().expect("utf-8"),
                "-l",
                d.join("log").to_str().expect("utf-8"),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    fn stop(&self) {
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.dir.path().join("data").to_str().expect("utf-8"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// A URL of database `postgres` with these TLS parameters.
    fn url(&self, tls: &str) -> String {
        format!("postgres://cutover@127.0.0.1:{}/postgres?{tls}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// A project for `url` with an (empty) migrations folder.
fn project(url: &str) -> BackupApp {
    let app = BackupApp::new(url, "");
    std::fs::create_dir(app.path().join("migrations")).expect("migrations");
    app
}

#[test]
fn migrations_and_backups_go_over_verified_tls_and_never_fall_back_to_plaintext() {
    let ca = TestCa::new();
    let server = Server::new(&ca);
    let ca_file = server.dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.root_pem).expect("ca");
    let verified = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    ));
    let app = project(&verified);
    std::fs::write(
        app.path().join("migrations/0001_items.sql"),
        "CREATE TABLE items (id bigint PRIMARY KEY, body text);\nINSERT INTO items VALUES (1, 'over TLS');\n",
    )
    .expect("migration");
    let out = app.cli(&["migrate", "up"]);
    assert!(out.status.success(), "migrate up: {}", stderr(&out));
    let id = app.create();
    app.json(&["backup", "verify", &id]);

    // A CA that did not sign the server's certificate.
    let other = TestCa::new();
    let wrong_file = app.path().join("wrong-ca.crt");
    std::fs::write(&wrong_file, &other.root_pem).expect("wrong ca");
    let wrong = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        wrong_file.display()
    ));
    let wrong_app = project(&wrong);
    let out = wrong_app.cli(&["migrate", "status"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // The server without TLS: sslmode=require refuses to go on in plaintext.
    server.stop();
    server.start(false);
    let required = project(&server.url("sslmode=require"));
    let out = required.cli(&["migrate", "status"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("TLS") || err.contains("SSL"), "{err}");
    // `prefer` takes TLS when offered and goes on without it otherwise.
    let plain = project(&server.url("sslmode=prefer"));
    let out = plain.cli(&["migrate", "status"]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "it connected and saw 0001: {}",
        stderr(&out)
    );
}
