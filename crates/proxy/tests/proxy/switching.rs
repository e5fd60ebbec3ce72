//! Switching under load, and draining.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover_kit::load::Load;
use cutover_proxy::{DrainOutcome, InstanceId, Track, Weights};

use crate::common::{TestProxy, Upstream, client, get};

/// One table change as the test saw it: it started at `before`, returned at
/// `after`, and from then on only `routable` may get new requests.
struct Change {
    before: Instant,
    after: Instant,
    routable: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_succeeds_on_a_routable_instance_while_tables_flip() {
    let names = ["a", "b", "c"];
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let ups = [&a, &b, &c];
    let p = TestProxy::with_tracks(&[&a], &[]).await;
    let log: Arc<Mutex<Vec<Change>>> = Arc::new(Mutex::new(vec![Change {
        before: Instant::now(),
        after: Instant::now(),
        routable: "a",
    }]));

    let run_for = Duration::from_secs(4);
    let started = Instant::now();
    let load = Load::start(&p.url("/"), 32).expect("start the load");

    // Flip who serves at least 60 times, three ways: weights only, and whole
    // batches that move an instance onto a track and the weight onto it at once.
    let mut flips = 0;
    let mut current = 0usize; // index of the routable upstream
    let mut canary_holder: Option<usize> = None;
    while started.elapsed() < run_for - Duration::from_millis(300) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let next = (current + 1) % 3;
        let before = Instant::now();
        let form = flips % 3;
        if form == 0 && canary_holder == Some(next) {
            p.proxy.set_weights("app", Weights::ALL_CANARY).expect("w");
        } else if form == 1 || (form == 0 && canary_holder != Some(next)) {
            let inst = ups[next].instance();
            p.proxy
                .update(|u| {
                    u.set_instances("app", Track::Canary, vec![])?
                        .set_instances("app", Track::Stable, vec![inst])?
                        .set_weights("app", Weights::ALL_STABLE)
                        .map(drop)
                })
                .expect("batch");
            canary_holder = None;
        } else {
            let inst = ups[next].instance();
            p.proxy
                .update(|u| {
                    u.set_instances("app", Track::Stable, vec![])?
                        .set_instances("app", Track::Canary, vec![inst])?
                        .set_weights("app", Weights::ALL_CANARY)
                        .map(drop)
                })
                .expect("batch");
            canary_holder = Some(next);
        }
        let after = Instant::now();
        log.lock().expect("log").push(Change {
            before,
            after,
            routable: names[next],
        });
        current = next;
        flips += 1;
    }
    assert!(flips >= 50, "only {flips} flips");

    let log = std::mem::take(&mut *log.lock().expect("log"));
    tokio::time::sleep_until((started + run_for).into()).await;
    let report = load.stop().await.expect("stop the load");
    let mut total = 0;
    for answer in report.answers() {
        let (s, e) = (answer.sent, answer.received);
        total += 1;
        assert_eq!(
            answer.status(),
            Some(200),
            "request failed during a switch: {:?}",
            answer.reply
        );
        let body = answer.body().unwrap_or_default();
        // Allowed: every instance routable at some moment in [s, e].
        let mut allowed = HashSet::new();
        for (i, change) in log.iter().enumerate() {
            let from = change.before;
            let until = log.get(i + 1).map(|n| n.after);
            let overlaps = from <= e && until.is_none_or(|u| u >= s);
            if overlaps {
                allowed.insert(change.routable);
            }
        }
        assert!(
            allowed.contains(body),
            "response from {body}, which was not routable during the request"
        );
    }
    assert!(total > 1_000, "too little load: {total} requests");
    eprintln!("{total} requests, {flips} flips, 0 failures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_a_long_request_that_started_before_the_switch() {
    let old = Upstream::start("old").await;
    let new = Upstream::start("new").await;
    let p = TestProxy::with_tracks(&[&old], &[]).await;
    let c = client();

    let url = p.url("/slow?ms=2000");
    let slow = tokio::spawn(async move {
        let got = get(&c, &url).await;
        (got, Instant::now())
    });
    let old_id = InstanceId::from("old");
    // Wait until the slow request is on the old instance.
    let t0 = Instant::now();
    while p.proxy.in_flight(&old_id).requests == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "slow request never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Switch: only the new instance is in the table now.
    p.set_tracks(&[&new], &[]);
    assert_eq!(get(&client(), &p.url("/")).await.body, "new");
    assert_eq!(p.proxy.in_flight(&old_id).requests, 1);

    let outcome = p.proxy.drain(&old_id, Duration::from_secs(10)).await;
    let drained_at = Instant::now();
    let (got, finished_at) = slow.await.expect("slow");
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "old");
    assert!(
        matches!(outcome, DrainOutcome::Drained { .. }),
        "{outcome:?}"
    );
    assert!(
        drained_at >= finished_at - Duration::from_millis(50),
        "drain resolved before the in-flight request finished"
    );
    assert!(p.proxy.in_flight(&old_id).is_idle());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_gives_up_at_its_timeout() {
    let old = Upstream::start("old-t").await;
    let p = TestProxy::with_tracks(&[&old], &[]).await;
    let c = client();
    let url = p.url("/slow?ms=3000");
    let slow = tokio::spawn(async move { get(&c, &url).await });
    let id = InstanceId::from("old-t");
    while p.proxy.in_flight(&id).requests == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.set_tracks(&[], &[]);
    let t = Instant::now();
    let outcome = p.proxy.drain(&id, Duration::from_millis(300)).await;
    assert!(t.elapsed() < Duration::from_secs(2));
    match outcome {
        DrainOutcome::TimedOut { left } => assert_eq!(left.requests, 1),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The request itself is not cut by the proxy: the caller decides.
    assert_eq!(slow.await.expect("slow").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_with_an_endless_timeout_neither_panics_nor_waits_for_nothing() {
    let old = Upstream::start("old-max").await;
    let p = TestProxy::with_tracks(&[&old], &[]).await;
    let id = InstanceId::from("old-max");
    assert_eq!(get(&client(), &p.url("/")).await.body, "old-max");
    p.set_tracks(&[], &[]);

    // Idle: back at once, however long the timeout (a `drain_timeout` of
    // "300000000y" cannot be added to the clock).
    let t = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(2), p.proxy.drain(&id, Duration::MAX))
        .await
        .expect("an idle drain returns promptly");
    assert!(
        matches!(outcome, DrainOutcome::Drained { .. }),
        "{outcome:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    let unknown = p
        .proxy
        .drain(&InstanceId::from("never-seen"), Duration::MAX)
        .await;
    assert!(
        matches!(unknown, DrainOutcome::Drained { .. }),
        "{unknown:?}"
    );

    // Busy: waits for the request, not for the timeout.
    p.set_tracks(&[&old], &[]);
    let (c, url) = (client(), p.url("/slow?ms=300"));
    let slow = tokio::spawn(async move { get(&c, &url).await });
    while p.proxy.in_flight(&id).requests == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.set_tracks(&[], &[]);
    let outcome = tokio::time::timeout(Duration::from_secs(5), p.proxy.drain(&id, Duration::MAX))
        .await
        .expect("the drain returns once the request finished");
    assert!(
        matches!(outcome, DrainOutcome::Drained { .. }),
        "{outcome:?}"
    );
    assert_eq!(slow.await.expect("slow").status, 200);
}
