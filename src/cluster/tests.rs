//! The election and route propagation against the real PostgreSQL server
//! (`CUTOVER_TEST_PG_URL`; these tests fail without it): two daemons of one
//! fresh database, one leads, a table the leader serves reaches the
//! follower's proxy, and a leader whose lock session is terminated steps
//! down while the other takes over.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};

use super::routes::InstanceSnapshot;
use super::*;
use crate::runtime::Daemon;
use crate::store::Store;

fn admin_url() -> String {
    match std::env::var("CUTOVER_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "CUTOVER_TEST_PG_URL is not set: the cluster tests need a PostgreSQL server. Run \
             scripts/test, or set CUTOVER_TEST_PG_URL=postgres://USER:PASSWORD@127.0.0.1:PORT/DB \
             for a role with CREATEDB."
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

/// A fresh database, dropped when the guard goes.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn new() -> Database {
        let admin = admin_url();
        let name = format!("cluster_{:016x}", fastrand::u64(..));
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to CUTOVER_TEST_PG_URL");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test database");
        let url = with_database(&admin, &name);
        Database { admin, name, url }
    }

    async fn drop_it(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("connect to CUTOVER_TEST_PG_URL");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .await
        .expect("drop the test database");
    }
}

const CONFIG: &str = r#"
[app]
name = "shop"

[service.web]
command = ["./web", "--port", "{port}"]

[environment.production]
listen = "127.0.0.1:1"
"#;

async fn member(db: &Database, host: &str) -> (Arc<Cluster>, Arc<Daemon>) {
    let config = crate::config::parse(CONFIG, Path::new("/tmp/cutover.toml")).expect("config");
    let store = Store::open("sqlite::memory:").await.expect("store");
    let daemon = Daemon::new(config, store).expect("daemon");
    let cluster = Cluster::connect(
        &db.url,
        "shop",
        Member::new(host, &format!("http://{host}")),
    )
    .await
    .expect("join the cluster");
    daemon.quiesce();
    daemon.join_cluster(cluster.clone());
    cluster.start(daemon.clone());
    (cluster, daemon)
}

async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leads_its_tables_reach_the_other_and_a_lost_session_hands_over() {
    let db = Database::new().await;
    let (a, da) = member(&db, "a").await;
    let (b, db_) = member(&db, "b").await;
    until("one daemon leads", Duration::from_secs(3), || {
        a.is_leader() || b.is_leader()
    })
    .await;
    // Give the other time to try the lock too: still one leader.
    tokio::time::sleep(TRY_INTERVAL * 3).await;
    assert!(a.is_leader() != b.is_leader(), "exactly one leads");
    let (leader, follower, dl, df) = if a.is_leader() {
        (&a, &b, &da, &db_)
    } else {
        (&b, &a, &db_, &da)
    };
    let record = leader.leader().await.expect("read").expect("recorded");
    assert_eq!(record.daemon_id, leader.me().daemon_id);
    assert!(!dl.is_quiesced(), "the leader acts");
    assert!(df.is_quiesced(), "the follower changes nothing");

    // A table the leader serves reaches the follower's proxy.
    let addr: SocketAddr = "127.0.0.1:4100".parse().expect("addr");
    let canary: SocketAddr = "127.0.0.1:4101".parse().expect("addr");
    let snapshot = RouteSnapshot {
        services: BTreeMap::from([(
            "web".to_owned(),
            ServiceSnapshot {
                canary_bp: 1000,
                stable: vec![InstanceSnapshot {
                    id: "web-1".into(),
                    addr,
                }],
                canary: vec![InstanceSnapshot {
                    id: "web-2".into(),
                    addr: canary,
                }],
            },
        )]),
    };
    let env_l = dl.environment(None).expect("env").clone();
    let env_f = df.environment(None).expect("env").clone();
    snapshot.apply(env_l.proxy()).expect("apply");
    env_l.changed();
    until(
        "the follower applies the table",
        Duration::from_secs(3),
        || env_f.proxy().table().service("web") == env_l.proxy().table().service("web"),
    )
    .await;
    until("both record what they applied", Duration::from_secs(3), || {
        let (l, f) = (leader.applied(), follower.applied());
        matches!((l.get("production"), f.get("production")), (Some(x), Some(y)) if x.generation == y.generation)
    })
    .await;
    let (l, f) = (leader.applied(), follower.applied());
    let spread = f["production"].applied_at_ms - l["production"].applied_at_ms;
    assert!(
        (0..=1000).contains(&spread),
        "the follower applied {spread} ms after the leader"
    );
    let view = follower.view().await.expect("view");
    assert_eq!(view.daemons.len(), 2, "{view:?}");
    assert!(view.daemons.iter().all(|d| d.alive));
    assert_eq!(view.tables.len(), 1);

    // The leader's lock session is terminated: it steps down, the other leads.
    let mut admin = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query(
        "SELECT pg_terminate_backend(backend_pid) FROM cutover_cluster_leader WHERE app = 'shop'",
    )
    .execute(&mut admin)
    .await
    .expect("terminate");
    let took = until("the other daemon leads", Duration::from_secs(5), || {
        follower.is_leader()
    })
    .await;
    until("the old leader follows", Duration::from_secs(3), || {
        !leader.is_leader()
    })
    .await;
    assert!(dl.is_quiesced(), "the deposed leader changes nothing");
    let now = follower.leader().await.expect("read").expect("recorded");
    assert_eq!(now.daemon_id, follower.me().daemon_id);
    assert_eq!(now.term, record.term + 1);
    eprintln!("failover after the session was terminated: {took:?}");

    a.stop();
    b.stop();
    drop(admin);
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.drop_it().await;
}
