//! `cutover init`: the file it writes from a repository passes `cutover
//! check`, and deploys — a Procfile app becomes a process service that really
//! serves through the proxy.

use std::process::Command;

use crate::common::{TestApp, fetch, hello_bin, ok, stderr, stdout};

fn init(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("init")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run cutover init")
}

#[tokio::test]
async fn a_procfile_repository_is_initialised_checked_and_deployed() {
    let app = TestApp::new("1m");
    std::fs::remove_file(app.config()).expect("no config yet");
    std::fs::write(
        app.path().join("Procfile"),
        format!(
            "web: {} --port $PORT --version $CUTOVER_VERSION\nrelease: ./migrate.sh\n",
            hello_bin().display()
        ),
    )
    .expect("Procfile");
    let out = init(app.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("service web (http) (from Procfile:1)"),
        "{}",
        stdout(&out)
    );
    let written = std::fs::read_to_string(app.config()).expect("cutover.toml written");
    assert!(
        written.contains("command = [\"sh\", \"-c\", \"exec "),
        "{written}"
    );
    assert!(
        !written.contains("[service.release]"),
        "release: is not a service\n{written}"
    );

    // The test's own ports instead of the defaults; everything else as written.
    let config = written
        .replace("127.0.0.1:7070", &format!("127.0.0.1:{}", app.api_port))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", app.proxy_port));
    std::fs::write(app.config(), config).expect("ports");
    ok(&app, &app.cli(&["check"]));
    app.serve();
    app.deploy_ok("v1");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );

    // A second init refuses to overwrite; --force and --stdout do what they say.
    let again = init(app.path(), &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let printed = init(app.path(), &["--stdout"]);
    assert!(stdout(&printed).starts_with("# cutover.toml written by `cutover init`"));
}

#[test]
fn a_compose_repository_with_postgres_passes_check_with_its_variable_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  api:\n    build: .\n    ports: [\"3000:3000\"]\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: example\n",
    )
    .expect("compose");
    std::fs::write(dir.path().join("Dockerfile"), "FROM node:20\nEXPOSE 3000\n")
        .expect("Dockerfile");
    let out = init(dir.path(), &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["services"], serde_json::json!(["api"]));
    assert!(json["todo"].to_string().contains("DATABASE_URL"));
    let config = std::fs::read_to_string(dir.path().join("cutover.toml")).expect("written");
    assert!(config.contains("url = \"${DATABASE_URL}\""), "{config}");
    assert!(
        !config.contains("example"),
        "no value from the repository is copied: {config}"
    );

    let check = |url: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cutover"));
        c.arg("-c")
            .arg(dir.path().join("cutover.toml"))
            .arg("check")
            .env("NO_COLOR", "1")
            .env_remove("DATABASE_URL");
        if let Some(url) = url {
            c.env("DATABASE_URL", url);
        }
        c.output().expect("check")
    };
    let unset = check(None);
    assert_eq!(unset.status.code(), Some(2), "an unset variable is named");
    assert!(
        stderr(&unset).contains("DATABASE_URL"),
        "{}",
        stderr(&unset)
    );
    let set = check(Some("postgres://app:secret@127.0.0.1/app"));
    assert!(set.status.success(), "{}", stderr(&set));
}
