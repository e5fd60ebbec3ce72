//! `cutover systemd`: the systemd units that run the daemon for the config
//! at hand: `NAME.service` (`Type=notify`, `KillMode=process`, reload by
//! SIGHUP) and one socket unit per listener, `NAME-LISTENER.socket`, whose
//! `FileDescriptorName=` is the name `cutover serve` looks the inherited
//! descriptor up by (`api`, `metrics`, `env-ENV`, `redirect-ENV`,
//! `preview-ENV`). One unit
//! per listener because systemd gives one name to every descriptor of a
//! socket unit. Printed, or written to `--out DIR`. Reference:
//! docs/systemd.md.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::output;
use crate::config::Config;
use crate::exit::{self, CliError};

/// The descriptor name of the API listener (`[server] listen`).
pub const API: &str = "api";
/// The descriptor name of `[server] metrics_listen`.
pub const METRICS: &str = "metrics";
/// The descriptor name of `[server] dashboard_listen`.
pub const DASHBOARD: &str = "dashboard";

/// Added to the longest `drain_timeout` for `TimeoutStopSec=`: the daemon
/// finishes in-flight requests and closes its store after the drain.
const STOP_MARGIN: Duration = Duration::from_secs(30);

/// The open-file limit the service gets (`LimitNOFILE=`).
const NOFILE: u64 = 1_048_576;

/// One listener of a config, as systemd passes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    /// The descriptor's name (`FileDescriptorName=`, `$LISTEN_FDNAMES`).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it is, for people (`environment production (listen)`).
    pub what: String,
}

/// Every listener of `config`, named as `cutover serve` looks inherited
/// descriptors up: the API, `/metrics` and the dashboard's own listener if
/// configured, then per environment
/// its `listen`, its `redirect_listen` and its `preview_listen` if any.
pub fn listeners(config: &Config) -> Vec<Listener> {
    let mut all = vec![Listener {
        name: API.to_owned(),
        addr: config.server.listen,
        what: "the API ([server] listen)".to_owned(),
    }];
    if let Some(addr) = config.server.metrics_listen {
        all.push(Listener {
            name: METRICS.to_owned(),
            addr,
            what: "/metrics ([server] metrics_listen)".to_owned(),
        });
    }
    if let Some(addr) = config
        .server
        .dashboard_listen
        .filter(|_| config.server.dashboard)
    {
        all.push(Listener {
            name: DASHBOARD.to_owned(),
            addr,
            what: "the dashboard ([server] dashboard_listen)".to_owned(),
        });
    }
    for (name, env) in &config.environments {
        all.push(Listener {
            name: format!("env-{name}"),
            addr: env.listen,
            what: format!("environment {name} (listen)"),
        });
        if let Some(addr) = env.redirect_listen {
            all.push(Listener {
                name: format!("redirect-{name}"),
                addr,
                what: format!("environment {name} (redirect_listen)"),
            });
        }
        if let Some(addr) = env.preview_listen {
            all.push(Listener {
                name: format!("preview-{name}"),
                addr,
                what: format!("environment {name} (preview_listen)"),
            });
        }
    }
    all
}

/// What the units are called and run.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    /// `NAME.service`, `NAME-LISTENER.socket`.
    pub name: String,
    /// The `cutover` binary `ExecStart=` runs (absolute).
    pub binary: PathBuf,
    /// `User=`, if any.
    pub user: Option<String>,
}

/// One unit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitFile {
    /// Its file name (`cutover.service`).
    pub name: String,
    /// Its contents.
    pub contents: String,
}

/// `cutover systemd`: prints the units for the config at `path`, or writes
/// them into `out`.
pub fn run(
    path: &Path,
    out: Option<&Path>,
    name: &str,
    binary: Option<PathBuf>,
    user: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let config = output::load_config_checked(path)?;
    let binary = match binary {
        Some(binary) => std::path::absolute(&binary)
            .map(|b| normalized(&b))
            .map_err(|e| {
                CliError::new(
                    exit::USAGE,
                    format!("cannot make --bin {} absolute: {e}", binary.display()),
                )
            })?,
        None => std::env::current_exe().map_err(|e| {
            CliError::new(
                exit::FAILURE,
                format!("cannot tell where this cutover binary is ({e}); say it with --bin PATH"),
            )
        })?,
    };
    let options = UnitOptions {
        name: name.to_owned(),
        binary,
        user,
    };
    let files = units(&config, &options)?;
    match out {
        Some(dir) => {
            for file in &files {
                let target = dir.join(&file.name);
                std::fs::write(&target, &file.contents).map_err(|e| {
                    CliError::new(
                        exit::FAILURE,
                        format!(
                            "cannot write {}: {e}; check that {} exists and is writable",
                            target.display(),
                            dir.display()
                        ),
                    )
                })?;
            }
            if json {
                let written: Vec<PathBuf> = files.iter().map(|f| dir.join(&f.name)).collect();
                return output::print_json(&serde_json::json!({ "written": written }));
            }
            for file in &files {
                println!("wrote {}", dir.join(&file.name).display());
            }
            println!();
            print!("{}", next_steps(&options.name, &files));
            Ok(())
        }
        None if json => output::print_json(&serde_json::json!({ "files": files })),
        None => {
            for (i, file) in files.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("# ==> {} <==", file.name);
                print!("{}", file.contents);
            }
            Ok(())
        }
    }
}

/// The units for `config`: the service first, then one socket unit per
/// listener in [`listeners`] order.
pub fn units(config: &Config, options: &UnitOptions) -> Result<Vec<UnitFile>, CliError> {
    check_unit_name(&options.name)?;
    if let Some(user) = &options.user {
        check_plain("--user", user)?;
    }
    // systemd refuses a WorkingDirectory= with `.` or `..` in it.
    let base_dir = normalized(&config.base_dir);
    let config_path = base_dir.join(
        config
            .path
            .file_name()
            .unwrap_or_else(|| std::ffi::OsStr::new("cutover.toml")),
    );
    let binary = path_text("--bin", &options.binary)?;
    let config_text = path_text("the config's path", &config_path)?;
    let base_text = path_text("the config's folder", &base_dir)?;
    let listeners = listeners(config);
    let sockets: Vec<String> = listeners
        .iter()
        .map(|l| format!("{}-{}.socket", options.name, l.name))
        .collect();

    let mut files = vec![UnitFile {
        name: format!("{}.service", options.name),
        contents: service(
            config,
            options,
            &ServicePaths {
                binary: &binary,
                config: &config_text,
                base: &base_text,
            },
            &sockets,
        ),
    }];
    for (listener, file) in listeners.iter().zip(&sockets) {
        files.push(UnitFile {
            name: file.clone(),
            contents: socket(config, options, listener, &config_text),
        });
    }
    Ok(files)
}

struct ServicePaths<'a> {
    binary: &'a str,
    config: &'a str,
    base: &'a str,
}

fn service(
    config: &Config,
    options: &UnitOptions,
    paths: &ServicePaths<'_>,
    sockets: &[String],
) -> String {
    let name = &options.name;
    let app = &config.app.name;
    let sockets = sockets.join(" ");
    let drain = config
        .services
        .values()
        .map(|s| s.drain_timeout)
        .max()
        .unwrap_or_default();
    let stop_timeout = drain.saturating_add(STOP_MARGIN).as_secs();
    let exec = format!(
        "{} -c {} serve",
        exec_arg(paths.binary),
        exec_arg(paths.config)
    );
    let down = format!("{} -c {} down", paths.binary, paths.config);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {name}.service: cutover for the app \"{app}\", generated by `cutover systemd`\n\
         # from {config}. docs/systemd.md explains each setting.\n\
         #\n\
         # Install (as root):\n\
         #   cutover -c {config} systemd --out /etc/systemd/system\n\
         #   systemctl daemon-reload\n\
         #   systemctl enable --now {sockets}\n\
         #   systemctl enable --now {name}.service\n\
         #\n\
         # What each command does to the app's instances:\n\
         #   systemctl restart {name}  new daemon, same instances: the sockets stay open,\n\
         #                        connections wait in the kernel while no daemon runs\n\
         #   systemctl reload {name}   `cutover reload`: check the changed config, hand the\n\
         #                        listeners over to a new daemon that reads it\n\
         #   cutover upgrade           hand over to a new daemon from the binary at its path\n\
         #                        now (install the new version there first)\n\
         #   systemctl stop {name}     the daemon only: instances keep running, unreachable\n\
         #                        until the next start adopts them\n\
         #   {down}\n\
         #                        everything: the daemon drains and stops every instance\n\
         #\n\
         # Restarting with a new version: install it at the same path, then\n\
         # `cutover upgrade` (no queueing at all) or `systemctl restart {name}`.",
        config = paths.config,
    );
    let _ = writeln!(
        s,
        "\n[Unit]\n\
         Description=cutover for {app}: deploys and reverse proxy\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         # The listening sockets belong to these units, not to the daemon: they stay\n\
         # open while the daemon restarts, so connections queue instead of being refused.\n\
         Requires={sockets}\n\
         After={sockets}"
    );
    let _ = writeln!(
        s,
        "\n[Service]\n\
         # The daemon says READY=1 once every listener serves and the instances are\n\
         # adopted; RELOADING=1 and STOPPING=1 around a hand-over or a stop.\n\
         Type=notify\n\
         # `cutover upgrade` and `cutover reload` start the new daemon as a child of\n\
         # the old one; it tells systemd MAINPID= and READY=1 itself, which systemd\n\
         # accepts from a process other than the main one only with NotifyAccess=all.\n\
         NotifyAccess=all\n\
         WorkingDirectory={base}\n\
         ExecStart={exec}\n\
         # SIGHUP is `cutover reload`: an invalid config leaves the running daemon as it is.\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Sockets={sockets}\n\
         # KillMode=process: on stop and restart systemd signals the daemon alone. The\n\
         # daemon (SIGTERM) stops accepting, finishes in-flight requests and exits,\n\
         # leaving the app's instances (processes it started, in this unit's control\n\
         # group) running for the next daemon to adopt: `systemctl restart` is not an\n\
         # outage. The default, control-group, would kill every instance with it.\n\
         # systemd logs \"left-over process\" at the next start: those are the instances.\n\
         KillMode=process\n\
         # The longest drain_timeout of the config ({drain}s) plus {margin}s; after that\n\
         # systemd sends SIGKILL to the daemon (only: KillMode=process).\n\
         TimeoutStopSec={stop_timeout}\n\
         # A crashed daemon comes back and adopts the instances; a clean exit\n\
         # (`cutover down`, SIGTERM) stays down.\n\
         Restart=on-failure\n\
         RestartSec=1\n\
         # Every client connection, upstream connection and log file is a descriptor;\n\
         # the daemon raises its soft limit to this.\n\
         LimitNOFILE={NOFILE}\n\
         # No ExecStop=: `systemctl restart` runs it too. To stop the app as well, run\n\
         # `cutover -c … down` (then stop the sockets, or a connection starts the daemon again).",
        base = systemd_value(paths.base),
        drain = drain.as_secs(),
        margin = STOP_MARGIN.as_secs(),
    );
    if let Some(user) = &options.user {
        let _ = writeln!(s, "User={user}");
    }
    let _ = writeln!(s, "\n[Install]\nWantedBy=multi-user.target");
    s
}

fn socket(
    config: &Config,
    options: &UnitOptions,
    listener: &Listener,
    config_path: &str,
) -> String {
    let name = &options.name;
    format!(
        "# {name}-{fd}.socket: {what} of the app \"{app}\", for {name}.service;\n\
         # generated by `cutover systemd` from {config_path}.\n\
         \n\
         [Unit]\n\
         Description=cutover for {app}: {what}\n\
         \n\
         [Socket]\n\
         ListenStream={addr}\n\
         # The name `cutover serve` takes this listener by ($LISTEN_FDNAMES).\n\
         FileDescriptorName={fd}\n\
         Service={name}.service\n\
         # The backlog cutover uses when it binds itself: connections made while no\n\
         # daemon runs (a restart) wait here.\n\
         Backlog={backlog}\n\
         \n\
         [Install]\n\
         WantedBy=sockets.target\n",
        fd = listener.name,
        what = listener.what,
        app = config.app.name,
        addr = listener.addr,
        backlog = cutover_proxy::LISTEN_BACKLOG,
    )
}

/// What to type after `--out`.
fn next_steps(name: &str, files: &[UnitFile]) -> String {
    let sockets: Vec<&str> = files
        .iter()
        .filter(|f| f.name.ends_with(".socket"))
        .map(|f| f.name.as_str())
        .collect();
    format!(
        "next:\n  systemctl daemon-reload\n  systemctl enable --now {}\n  systemctl enable --now {name}.service\n",
        sockets.join(" ")
    )
}

/// A unit name prefix systemd accepts and that names no template.
fn check_unit_name(name: &str) -> Result<(), CliError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    match valid {
        true => Ok(()),
        false => Err(CliError::new(
            exit::USAGE,
            format!(
                "--name {name:?} cannot name a systemd unit: use 1 to 128 letters, digits, '-', '_' or '.', not starting with '-'"
            ),
        )),
    }
}

/// A value that must fit on one line of a unit file.
fn check_plain(what: &str, value: &str) -> Result<(), CliError> {
    match value.is_empty() || value.chars().any(char::is_control) {
        true => Err(CliError::new(
            exit::USAGE,
            format!(
                "{what} {value:?} cannot go in a unit file: it is empty or has control characters"
            ),
        )),
        false => Ok(()),
    }
}

/// A path as UTF-8 text on one line, or a usage error naming it.
fn path_text(what: &str, path: &Path) -> Result<String, CliError> {
    let text = path.to_str().ok_or_else(|| {
        CliError::new(
            exit::USAGE,
            format!(
                "{what} {} is not UTF-8, which a unit file cannot hold; move it to a plain path",
                path.display()
            ),
        )
    })?;
    check_plain(what, text)?;
    Ok(text.to_owned())
}

/// `path` without `.` and `..` components (lexically, as `cd` does: a
/// symlinked folder stays as named).
fn normalized(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A value with systemd's specifiers (`%`) escaped.
fn systemd_value(value: &str) -> String {
    value.replace('%', "%%")
}

/// One `ExecStart=` argument: specifiers and variables escaped, quoted when
/// it holds a space, quote or backslash.
fn exec_arg(arg: &str) -> String {
    let escaped = systemd_value(arg).replace('$', "$$");
    if escaped.contains([' ', '\t', '"', '\'', '\\', ';']) {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[app]
name = "shop"

[server]
listen = "127.0.0.1:7070"
metrics_listen = "127.0.0.1:9100"
dashboard_listen = "127.0.0.1:9091"

[service.web]
kind = "http"
command = ["./bin/web", "--port", "{port}"]
drain_timeout = "45s"

[environment.production]
listen = "0.0.0.0:443"
redirect_listen = "0.0.0.0:80"
tls = { cert = "cert.pem", key = "key.pem" }

[environment.staging]
listen = "[::1]:8081"
"#;

    fn config() -> Config {
        crate::config::parse(CONFIG, Path::new("/srv/shop/cutover.toml"))
            .unwrap_or_else(|e| panic!("{}", crate::config::render(&e)))
    }

    fn options() -> UnitOptions {
        UnitOptions {
            name: "cutover".to_owned(),
            binary: PathBuf::from("/usr/local/bin/cutover"),
            user: Some("shop".to_owned()),
        }
    }

    fn lines_with<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.lines().filter_map(|l| l.strip_prefix(key)).collect()
    }

    #[test]
    fn one_named_listener_per_address_of_the_config() {
        let names: Vec<(String, String)> = listeners(&config())
            .into_iter()
            .map(|l| (l.name, l.addr.to_string()))
            .collect();
        let expected = [
            ("api", "127.0.0.1:7070"),
            ("metrics", "127.0.0.1:9100"),
            ("dashboard", "127.0.0.1:9091"),
            ("env-production", "0.0.0.0:443"),
            ("redirect-production", "0.0.0.0:80"),
            ("env-staging", "[::1]:8081"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_socket_unit_per_listener_with_its_name_and_address() {
        let files = units(&config(), &options()).expect("units");
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cutover.service",
                "cutover-api.socket",
                "cutover-metrics.socket",
                "cutover-dashboard.socket",
                "cutover-env-production.socket",
                "cutover-redirect-production.socket",
                "cutover-env-staging.socket",
            ]
        );
        for (file, listener) in files[1..].iter().zip(listeners(&config())) {
            let text = &file.contents;
            // One address and one name per unit: systemd names every
            // descriptor of a socket unit alike.
            assert_eq!(
                lines_with(text, "ListenStream="),
                [listener.addr.to_string()]
            );
            assert_eq!(
                lines_with(text, "FileDescriptorName="),
                [listener.name.as_str()]
            );
            assert_eq!(lines_with(text, "Service="), ["cutover.service"]);
            assert_eq!(lines_with(text, "Backlog="), ["4096"]);
        }
    }

    #[test]
    fn the_service_is_notify_kills_only_the_daemon_and_reloads_by_sighup() {
        let files = units(&config(), &options()).expect("units");
        let text = &files[0].contents;
        let one = |key: &str| -> String {
            let found = lines_with(text, key);
            assert_eq!(found.len(), 1, "{key} once in:\n{text}");
            found[0].to_owned()
        };
        assert_eq!(one("Type="), "notify");
        assert_eq!(one("NotifyAccess="), "all");
        assert_eq!(one("KillMode="), "process");
        assert_eq!(one("ExecReload="), "/bin/kill -HUP $MAINPID");
        assert_eq!(one("Restart="), "on-failure");
        assert_eq!(one("LimitNOFILE="), "1048576");
        assert_eq!(one("WorkingDirectory="), "/srv/shop");
        assert_eq!(
            one("ExecStart="),
            "/usr/local/bin/cutover -c /srv/shop/cutover.toml serve"
        );
        assert_eq!(one("User="), "shop");
        // 45 s drain + 30 s.
        assert_eq!(one("TimeoutStopSec="), "75");
        let sockets = "cutover-api.socket cutover-metrics.socket cutover-dashboard.socket cutover-env-production.socket cutover-redirect-production.socket cutover-env-staging.socket";
        assert_eq!(one("Sockets="), sockets);
        assert_eq!(one("Requires="), sockets);
        assert!(lines_with(text, "ExecStop=").is_empty(), "{text}");
    }

    #[test]
    fn the_folder_is_normalized_for_systemd() {
        let config = crate::config::parse(CONFIG, Path::new("/srv/shop/deploy/../cutover.toml"))
            .unwrap_or_else(|e| panic!("{}", crate::config::render(&e)));
        let files = units(&config, &options()).expect("units");
        let text = &files[0].contents;
        assert_eq!(lines_with(text, "WorkingDirectory="), ["/srv/shop"]);
        assert_eq!(
            lines_with(text, "ExecStart="),
            ["/usr/local/bin/cutover -c /srv/shop/cutover.toml serve"]
        );
    }

    #[test]
    fn odd_paths_are_quoted_and_escaped() {
        assert_eq!(exec_arg("/usr/bin/cutover"), "/usr/bin/cutover");
        assert_eq!(
            exec_arg("/srv/my app/cutover.toml"),
            "\"/srv/my app/cutover.toml\""
        );
        assert_eq!(exec_arg("/srv/100%/$HOME"), "/srv/100%%/$$HOME");
        assert_eq!(exec_arg("/a\"b\\c"), "\"/a\\\"b\\\\c\"");
    }

    #[test]
    fn names_systemd_cannot_take_are_refused() {
        for bad in ["", "-x", "cutover@", "a b", "x/y"] {
            let mut o = options();
            o.name = bad.to_owned();
            let err = units(&config(), &o).expect_err(bad);
            assert_eq!(err.code, exit::USAGE, "{bad}");
        }
        let mut o = options();
        o.user = Some("shop\nExecStartPre=/bin/evil".to_owned());
        assert_eq!(units(&config(), &o).expect_err("newline").code, exit::USAGE);
        let mut o = options();
        o.name = "shop-proxy".to_owned();
        let files = units(&config(), &o).expect("a plain name");
        assert_eq!(files[1].name, "shop-proxy-api.socket");
    }
}
