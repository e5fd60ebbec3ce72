//! Several daemons sharing one PostgreSQL store (docs/cluster.md): real
//! `cutover serve` processes on one fresh database of the server in
//! `CUTOVER_TEST_PG_URL` (these tests fail without it), each with its own
//! API and proxy ports from `[host.NAME]`. Exactly one leads; a canary runs
//! across all of them with load on every proxy; kill -9 of the leader
//! mid-canary hands over to a follower within 5 s, which finishes the
//! rollout; a switch reaches every proxy within 100 ms of the leader's, by
//! the daemons' own recorded times; a leader whose lock session is
//! terminated steps down.

use std::io::Read;
use std::io::Write as _;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cutover_kit::load::Load;
use cutover_kit::ports;
use sqlx::{Connection, Executor};

use crate::common::{Release, TestApp, fetch, stderr, stdout, wait_until};

fn pg_admin_url() -> String {
    match std::env::var("CUTOVER_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "CUTOVER_TEST_PG_URL is not set: the cluster tests need a PostgreSQL server. Run \
             scripts/test (it starts one and sets the variable), or set \
             CUTOVER_TEST_PG_URL=postgres://USER:PASSWORD@127.0.0.1:PORT/DB for a role with CREATEDB."
        ),
    }
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("a database URL has a path");
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

async fn sql(url: &str, statement: String) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL");
    conn.execute(sqlx::AssertSqlSafe(statement))
        .await
        .expect("run SQL");
}

/// One daemon of the cluster.
pub struct Node {
    pub host: String,
    pub api_port: u16,
    pub proxy_port: u16,
    child: Option<Child>,
}

/// An app served by several daemons on one fresh PostgreSQL database.
pub struct ClusterApp {
    pub app: TestApp,
    pub nodes: Vec<Node>,
    pub db_url: String,
    admin_url: String,
    db_name: String,
}

const CANARY: &str = r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 50, 100]
step_duration = "2s"
check_interval = "250ms"
on_daemon_restart = "resume"
analysis = { max_error_rate = 0.02, max_p95 = "500ms", min_requests = 10 }
"#;

impl ClusterApp {
    /// `n` daemons (`d1`…`dn`) with releases `v1`…`v4`; `rollout` is
    /// appended to the config. Nothing runs yet.
    pub async fn new(n: usize, rollout: &str) -> ClusterApp {
        let app = TestApp::new("10m");
        for v in ["v1", "v2", "v3", "v4"] {
            app.release(v, Release::Good);
        }
        let admin_url = pg_admin_url();
        let db_name = format!("cluster_e2e_{:016x}", fastrand::u64(..));
        sql(&admin_url, format!("CREATE DATABASE {db_name}")).await;
        let db_url = with_database(&admin_url, &db_name);
        let free = ports::free_ports(2 * n).expect("free ports");
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                host: format!("d{}", i + 1),
                api_port: free[2 * i],
                proxy_port: free[2 * i + 1],
                child: None,
            })
            .collect();
        let mut config = std::fs::read_to_string(app.config()).expect("config");
        config = config.replace(
            "[service.web]",
            &format!("[state]\nurl = \"{db_url}\"\n\n[service.web]"),
        );
        config.push_str(rollout);
        for node in &nodes {
            config.push_str(&format!(
                "\n[host.{h}]\nlisten = \"127.0.0.1:{a}\"\n\n[host.{h}.environment.production]\nlisten = \"127.0.0.1:{p}\"\n",
                h = node.host,
                a = node.api_port,
                p = node.proxy_port
            ));
        }
        std::fs::write(app.config(), config).expect("write config");
        ClusterApp {
            app,
            nodes,
            db_url,
            admin_url,
            db_name,
        }
    }

    /// Starts daemon `i` and waits until its API answers.
    pub fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.app.path().join(format!("{}.log", node.host)))
            .expect("daemon log");
        let child = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .arg("-c")
            .arg(self.app.config())
            .args(["--host", &node.host, "serve"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start daemon");
        node.child = Some(child);
        let port = node.api_port;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "daemon {i} did not start:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts every daemon, one after the other.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// `kill -9` of daemon `i` (its instances keep running).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(self.app.path().join(format!("{}.log", n.host)))
                    .unwrap_or_default();
                format!("--- {} ---\n{text}", n.host)
            })
            .collect()
    }

    /// The CLI, asking daemon `i`.
    pub fn cli(&self, i: usize, args: &[&str]) -> Output {
        self.cli_command(i, args).output().expect("run cutover")
    }

    fn cli_command(&self, i: usize, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cutover"));
        command
            .arg("-c")
            .arg(self.app.config())
            .args(["--host", &self.nodes[i].host])
            .args(args)
            .env("NO_COLOR", "1");
        command
    }

    pub fn cli_background(&self, i: usize, args: &[&str]) -> std::thread::JoinHandle<Output> {
        let mut command = self.cli_command(i, args);
        std::thread::spawn(move || command.output().expect("run cutover"))
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.app.path().join(".cutover").join("api.token"))
            .expect("the API token")
            .trim()
            .to_owned()
    }

    /// `GET /v1/cluster` of daemon `i`, or `None` when it does not answer.
    pub fn cluster(&self, i: usize) -> Option<serde_json::Value> {
        let port = self.nodes[i].api_port;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "GET /v1/cluster HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        serde_json::from_str(body).ok()
    }

    /// The daemons (among those running) that say they lead.
    pub fn leaders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.is_up(i))
            .filter(|&i| {
                self.cluster(i)
                    .is_some_and(|v| v["role"]["role"] == "leader")
            })
            .collect()
    }

    /// Waits until exactly one running daemon leads, and returns it.
    pub fn wait_for_one_leader(&self, limit: Duration) -> usize {
        let started = Instant::now();
        loop {
            let leaders = self.leaders();
            if leaders.len() == 1
                && self
                    .cluster(leaders[0])
                    .is_some_and(|v| v["recovering"] == false)
            {
                return leaders[0];
            }
            assert!(
                leaders.len() < 2,
                "two daemons lead at once: {leaders:?}\n{}",
                self.logs()
            );
            assert!(
                started.elapsed() < limit,
                "no daemon leads after {limit:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn proxy_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}/", self.nodes[i].proxy_port)
    }

    /// Waits until every running daemon applied the stored table of
    /// `production` and returns (generation, each daemon's applied_at_ms).
    pub fn wait_all_applied(&self, limit: Duration) -> (i64, Vec<i64>) {
        let started = Instant::now();
        loop {
            let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.is_up(i)).collect();
            if let Some(view) = self.cluster(up[0]) {
                let generation = view["tables"]
                    .as_array()
                    .and_then(|t| t.iter().find(|t| t["environment"] == "production"))
                    .and_then(|t| t["generation"].as_i64());
                let alive: Vec<&serde_json::Value> = view["daemons"]
                    .as_array()
                    .map(|d| d.iter().filter(|d| d["alive"] == true).collect())
                    .unwrap_or_default();
                if let Some(generation) = generation
                    && alive.len() == up.len()
                {
                    let applied: Vec<Option<i64>> = alive
                        .iter()
                        .map(|d| {
                            let a = &d["applied"]["production"];
                            (a["generation"].as_i64() == Some(generation))
                                .then(|| a["applied_at_ms"].as_i64())
                                .flatten()
                        })
                        .collect();
                    if applied.iter().all(Option::is_some) {
                        return (generation, applied.into_iter().flatten().collect());
                    }
                }
            }
            assert!(
                started.elapsed() < limit,
                "not every daemon applied the table within {limit:?}: {:#?}\n{}",
                self.cluster(up[0]),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The newest deployment's state, asked of daemon `i`.
    pub fn last_state(&self, i: usize) -> String {
        let out = self.cli(i, &["history", "--json", "--limit", "1"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        list[0]["state"].as_str().unwrap_or_default().to_owned()
    }

    pub fn deploy_ok(&self, i: usize, version: &str) {
        let out = self.cli(i, &["deploy", version]);
        assert!(
            out.status.success(),
            "deploy {version} failed: {}\n{}\n{}",
            stdout(&out),
            stderr(&out),
            self.logs()
        );
    }
}

impl Drop for ClusterApp {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        // The instances go with the TestApp; the database here.
        let (admin, name) = (self.admin_url.clone(), self.db_name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(sql(
                &admin,
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ));
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_canary_across_three_daemons_survives_kill_9_of_the_leader() {
    let mut c = ClusterApp::new(3, CANARY).await;
    c.start_all();
    let leader = c.wait_for_one_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    // A follower refuses a change and names the leader.
    let out = c.cli(follower, &["deploy", "v1"]);
    assert_eq!(out.status.code(), Some(13), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("leader") && err.contains(&format!("--host {}", c.nodes[leader].host)),
        "{err}"
    );
    c.deploy_ok(leader, "v1");
    c.wait_all_applied(Duration::from_secs(10));
    for i in 0..3 {
        assert_eq!(
            fetch(&c.proxy_url(i)).await.as_deref(),
            Some("hello from v1"),
            "proxy of {}",
            c.nodes[i].host
        );
    }
    // Load on every daemon's proxy; the canary starts on the leader. Paced,
    // so that three proxies' worth of clients leave the machine's two cores
    // to the daemons (and to the tests running beside this one).
    let loads: Vec<Load> = (0..3)
        .map(|i| {
            Load::builder(&c.proxy_url(i))
                .clients(3)
                .rate(150)
                .start()
                .expect("load")
        })
        .collect();
    let deploy = c.cli_background(leader, &["deploy", "v2"]);
    wait_until(
        Duration::from_secs(30),
        "the canary takes its first step",
        || {
            let out = c.cli(follower, &["history", "--json", "--limit", "1", "--events"]);
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            list[0]["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "step"))
        },
    );
    let mut loads: Vec<Option<Load>> = loads.into_iter().map(Some).collect();
    // The leader's own proxy goes with it: its load stops first.
    let leader_load = loads[leader].take().expect("load");
    let report = leader_load.stop().await.expect("stop load");
    assert_eq!(report.failed(), 0, "requests failed on the leader's proxy");
    let killed = Instant::now();
    c.kill(leader);
    let new_leader = c.wait_for_one_leader(Duration::from_secs(5));
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(5),
        "a follower led {took:?} after the kill\n{}",
        c.logs()
    );
    // The CLI that followed the deploy on the killed leader gives up.
    let _ = deploy.join();
    eprintln!("failover: a follower led {took:?} after kill -9 of the leader");
    wait_until(Duration::from_secs(60), "the canary finishes", || {
        c.last_state(new_leader) == "succeeded"
    });
    let (_, applied) = c.wait_all_applied(Duration::from_secs(10));
    assert_eq!(applied.len(), 2);
    for (i, load) in loads.into_iter().enumerate() {
        let Some(load) = load else { continue };
        let report = load.stop().await.expect("stop load");
        assert_eq!(
            report.failed(),
            0,
            "requests failed on {}'s proxy\n{}",
            c.nodes[i].host,
            c.logs()
        );
        assert!(report.total() > 0);
        assert_eq!(
            fetch(&c.proxy_url(i)).await.as_deref(),
            Some("hello from v2"),
            "proxy of {}",
            c.nodes[i].host
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_switch_reaches_every_proxy_within_100ms_and_a_lost_session_steps_down() {
    let mut c = ClusterApp::new(3, "").await;
    c.start_all();
    let leader = c.wait_for_one_leader(Duration::from_secs(10));
    c.deploy_ok(leader, "v1");
    for version in ["v2", "v3", "v4"] {
        c.deploy_ok(leader, version);
        let (generation, applied) = c.wait_all_applied(Duration::from_secs(10));
        let spread = applied.iter().max().expect("max") - applied.iter().min().expect("min");
        eprintln!("switch to {version}: generation {generation}, spread {spread} ms");
        assert!(
            spread <= 100,
            "the proxies applied generation {generation} {spread} ms apart: {applied:?}"
        );
        for i in 0..3 {
            assert_eq!(
                fetch(&c.proxy_url(i)).await.as_deref(),
                Some(format!("hello from {version}").as_str())
            );
        }
    }
    // The leader's lock session is terminated: it steps down, another leads.
    sql(
        &c.db_url,
        "SELECT pg_terminate_backend(backend_pid) FROM cutover_cluster_leader".into(),
    )
    .await;
    let started = Instant::now();
    wait_until(Duration::from_secs(5), "another daemon leads", || {
        c.leaders().iter().any(|&l| l != leader)
    });
    eprintln!(
        "after the session was terminated, another led in {:?}",
        started.elapsed()
    );
    // The deposed leader notices at its next check of the session (every
    // 500 ms, docs/cluster.md): until then both may say they lead.
    wait_until(Duration::from_secs(3), "the deposed leader follows", || {
        c.leaders().len() == 1
    });
    let now = c.wait_for_one_leader(Duration::from_secs(5));
    assert_ne!(now, leader);
    let log = std::fs::read_to_string(c.app.path().join(format!("{}.log", c.nodes[leader].host)))
        .unwrap_or_default();
    assert!(log.contains("lost the leader lock"), "{log}");
    // The deposed daemon still serves its proxy, following the new leader.
    c.deploy_ok(now, "v1");
    c.wait_all_applied(Duration::from_secs(10));
    assert_eq!(
        fetch(&c.proxy_url(leader)).await.as_deref(),
        Some("hello from v1")
    );
}
