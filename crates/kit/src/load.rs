//! Load through an HTTP endpoint: owns the load generator of the e2e tests,
//! the benchmarks and `cutover demo`, and what it measures.
//!
//! [`Load`] runs keep-alive clients (one hyper client and one request in
//! flight each) on the current tokio runtime, sending GETs until it is
//! stopped: as fast as they can, or at a steady total rate
//! ([`LoadBuilder::rate`]; a request that is late skips its slot). Every
//! request is recorded as an [`Answer`]: when it was sent, when its answer was
//! read whole, and the [`Reply`] (status, body, version that answered) or why
//! there was none (refused, reset, timed out). [`Load::stop`] returns them
//! all, per client and in order, as a [`Report`], which also tallies them per
//! version ([`Tally`]).
//!
//! A request *failed* when it got no answer or a non-2xx one; while the load
//! runs, [`Load::failure_times`] says when each failed request was sent and
//! [`Load::completed`] how many requests each client has finished.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Uri;

use crate::http::{self, HttpError, Reply};

/// After a request that got no answer at all (a refused connection fails at
/// once), an unpaced client pauses this long instead of spinning.
const PAUSE_AFTER_NO_ANSWER: Duration = Duration::from_millis(5);

/// Why load could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("load needs at least one client")]
    NoClients,
    #[error("the load's rate must be at least 1 request per second")]
    ZeroRate,
    #[error("load must be started inside a tokio runtime")]
    NoRuntime,
    #[error(transparent)]
    Url(#[from] HttpError),
    #[error("a load client failed: {0}")]
    Client(#[from] tokio::task::JoinError),
}

/// One request of the load.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the request was sent.
    pub sent: Instant,
    /// When its answer was read whole (or when it failed).
    pub received: Instant,
    /// The answer, or why there was none.
    pub reply: Result<Reply, String>,
}

impl Answer {
    /// The answer's status; `None` when there was no answer.
    pub fn status(&self) -> Option<u16> {
        self.reply.as_ref().ok().map(|r| r.status)
    }

    /// The version that answered, if it said.
    pub fn version(&self) -> Option<&str> {
        self.reply.as_ref().ok().and_then(|r| r.version.as_deref())
    }

    /// The answer's body; `None` when there was no answer.
    pub fn body(&self) -> Option<&str> {
        self.reply.as_ref().ok().map(|r| r.body.as_str())
    }

    /// Answered with a 2xx status.
    pub fn is_success(&self) -> bool {
        self.reply.as_ref().is_ok_and(Reply::is_success)
    }
}

/// How to run a [`Load`]; from [`Load::builder`].
#[derive(Debug, Clone)]
pub struct LoadBuilder {
    url: String,
    clients: usize,
    rate: Option<u32>,
    timeout: Option<Duration>,
}

impl LoadBuilder {
    /// Concurrent keep-alive clients (default 8).
    pub fn clients(mut self, clients: usize) -> LoadBuilder {
        self.clients = clients;
        self
    }

    /// A steady total rate, requests per second, shared by the clients: each
    /// sends one request every `clients / rate` seconds, their slots spread
    /// evenly. Without it (the default) each client sends its next request as
    /// soon as the last one is answered.
    pub fn rate(mut self, per_second: u32) -> LoadBuilder {
        self.rate = Some(per_second);
        self
    }

    /// A request with no answer within `timeout` counts as failed (default:
    /// no limit).
    pub fn timeout(mut self, timeout: Duration) -> LoadBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// Starts the clients on the current tokio runtime.
    pub fn start(self) -> Result<Load, LoadError> {
        if self.clients == 0 {
            return Err(LoadError::NoClients);
        }
        let period = match self.rate {
            Some(0) => return Err(LoadError::ZeroRate),
            Some(rate) => Some(Duration::from_secs_f64(
                self.clients as f64 / f64::from(rate),
            )),
            None => None,
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LoadError::NoRuntime)?;
        let uri = http::uri(&self.url)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            failed_at: Mutex::new(Vec::new()),
            completed: (0..self.clients).map(|_| AtomicU64::new(0)).collect(),
        });
        let first = tokio::time::Instant::now();
        let tasks = (0..self.clients)
            .map(|k| {
                let pace = period.map(|p| {
                    let offset = p.mul_f64(k as f64 / self.clients as f64);
                    (first + offset, p)
                });
                let client = Client {
                    k,
                    shared: shared.clone(),
                    uri: uri.clone(),
                    pace,
                    timeout: self.timeout,
                };
                runtime.spawn(client.run())
            })
            .collect();
        Ok(Load { shared, tasks })
    }
}

/// Keep-alive clients sending GETs until stopped. Dropping it stops them too
/// (without waiting).
#[derive(Debug)]
pub struct Load {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// When each failed request was sent.
    failed_at: Mutex<Vec<Instant>>,
    /// Requests finished, per client.
    completed: Vec<AtomicU64>,
}

impl Shared {
    fn failed_at(&self) -> std::sync::MutexGuard<'_, Vec<Instant>> {
        self.failed_at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Load {
    /// Load on `url` from `clients` unpaced clients with no timeout.
    pub fn start(url: &str, clients: usize) -> Result<Load, LoadError> {
        Load::builder(url).clients(clients).start()
    }

    /// Load on `url`, configured before it starts.
    pub fn builder(url: &str) -> LoadBuilder {
        LoadBuilder {
            url: url.to_owned(),
            clients: 8,
            rate: None,
            timeout: None,
        }
    }

    /// When each request that failed so far was sent.
    pub fn failure_times(&self) -> Vec<Instant> {
        self.shared.failed_at().clone()
    }

    /// Requests each client has finished so far (answered or failed).
    pub fn completed(&self) -> Vec<u64> {
        self.shared
            .completed
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Stops the clients once their requests in flight are done; every answer.
    pub async fn stop(mut self) -> Result<Report, LoadError> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut clients = Vec::with_capacity(self.tasks.len());
        for task in std::mem::take(&mut self.tasks) {
            clients.push(task.await?);
        }
        Ok(Report { clients })
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// One client's loop.
struct Client {
    k: usize,
    shared: Arc<Shared>,
    uri: Uri,
    /// First slot and the time between two slots, when paced.
    pace: Option<(tokio::time::Instant, Duration)>,
    timeout: Option<Duration>,
}

impl Client {
    async fn run(self) -> Vec<Answer> {
        let http = http::client();
        let mut ticks = self.pace.map(|(first, period)| {
            let mut ticks = tokio::time::interval_at(first, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            ticks
        });
        let mut answers = Vec::new();
        loop {
            if let Some(ticks) = ticks.as_mut() {
                ticks.tick().await;
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let sent = Instant::now();
            let got = match self.timeout {
                Some(t) => http::get_within(&http, self.uri.clone(), t).await,
                None => http::get(&http, self.uri.clone()).await,
            };
            let answer = Answer {
                sent,
                received: Instant::now(),
                reply: got.map_err(|e| e.to_string()),
            };
            if !answer.is_success() {
                self.shared.failed_at().push(sent);
            }
            if let Some(done) = self.shared.completed.get(self.k) {
                done.fetch_add(1, Ordering::Relaxed);
            }
            let no_answer = answer.reply.is_err();
            answers.push(answer);
            if no_answer && ticks.is_none() {
                tokio::time::sleep(PAUSE_AFTER_NO_ANSWER).await;
            }
        }
        answers
    }
}

/// Every request of a stopped [`Load`], per client, in the order sent.
#[derive(Debug, Clone, Default)]
pub struct Report {
    clients: Vec<Vec<Answer>>,
}

impl Report {
    /// The answers of each client, in order.
    pub fn clients(&self) -> &[Vec<Answer>] {
        &self.clients
    }

    /// Every answer.
    pub fn answers(&self) -> impl Iterator<Item = &Answer> {
        self.clients.iter().flatten()
    }

    /// Every answer, the clients' one after the other.
    pub fn into_answers(self) -> Vec<Answer> {
        self.clients.into_iter().flatten().collect()
    }

    /// Requests sent.
    pub fn total(&self) -> usize {
        self.answers().count()
    }

    /// Requests that got no answer or a non-2xx one.
    pub fn failed(&self) -> usize {
        self.answers().filter(|a| !a.is_success()).count()
    }

    /// The bodies of the 2xx answers, per client, in order.
    pub fn bodies(&self) -> Vec<Vec<String>> {
        self.clients
            .iter()
            .map(|c| {
                c.iter()
                    .filter(|a| a.is_success())
                    .filter_map(|a| a.body().map(str::to_owned))
                    .collect()
            })
            .collect()
    }

    /// Status and body of every answer (any status), per client, in order;
    /// requests with no answer are left out.
    pub fn replies(&self) -> Vec<Vec<(u16, String)>> {
        self.clients
            .iter()
            .map(|c| {
                c.iter()
                    .filter_map(|a| a.reply.as_ref().ok())
                    .map(|r| (r.status, r.body.clone()))
                    .collect()
            })
            .collect()
    }

    /// The answers counted per version.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for a in self.answers() {
            tally.add(a);
        }
        tally
    }
}

/// Answers of one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// 2xx answers.
    pub ok: u64,
    /// Other answers.
    pub errors: u64,
}

/// Answers counted by the version that gave them; requests with no answer,
/// or an answer that names no version (the proxy's own errors), are *lost*.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    by_version: BTreeMap<String, Counts>,
    lost: u64,
}

impl Tally {
    /// Counts one more answer.
    pub fn add(&mut self, answer: &Answer) {
        match (answer.version(), answer.status()) {
            (Some(v), Some(status)) => {
                let counts = self.by_version.entry(v.to_owned()).or_default();
                if (200..300).contains(&status) {
                    counts.ok += 1;
                } else {
                    counts.errors += 1;
                }
            }
            _ => self.lost += 1,
        }
    }

    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.lost
            + self
                .by_version
                .values()
                .map(|c| c.ok + c.errors)
                .sum::<u64>()
    }

    /// 2xx answers from `version`.
    pub fn ok(&self, version: &str) -> u64 {
        self.by_version.get(version).map_or(0, |c| c.ok)
    }

    /// Non-2xx answers from `version`.
    pub fn errors(&self, version: &str) -> u64 {
        self.by_version.get(version).map_or(0, |c| c.errors)
    }

    /// Requests with no answer or none that names a version.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Lost requests and non-2xx answers of every version.
    pub fn failed(&self) -> u64 {
        self.lost + self.by_version.values().map(|c| c.errors).sum::<u64>()
    }

    /// The counts of each version that answered.
    pub fn by_version(&self) -> &BTreeMap<String, Counts> {
        &self.by_version
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A server answering `hello from v1` with `x-version: v1`, except on
    /// every third request (per connection) 500 without a version.
    async fn server() -> std::io::Result<std::net::SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = Arc::new(AtomicU64::new(0));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req: Request<_>| {
                        let n = n.fetch_add(1, Ordering::Relaxed);
                        async move {
                            let resp = if n % 3 == 2 {
                                Response::builder()
                                    .status(500)
                                    .body(Full::new(Bytes::new()))
                            } else {
                                Response::builder()
                                    .header("x-version", "v1")
                                    .body(Full::new(Bytes::from_static(b"hello from v1\n")))
                            };
                            Ok::<_, Infallible>(resp.unwrap_or_default())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(addr)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_records_and_tallies_every_answer() -> TestResult {
        let addr = server().await?;
        let load = Load::start(&format!("http://{addr}/"), 3)?;
        let running = &load;
        crate::wait::Wait::up_to(Duration::from_secs(10))
            .every(Duration::from_millis(5))
            .until_async(|| async move { running.completed().iter().all(|n| *n >= 9) })
            .await?;
        let failures = load.failure_times().len();
        let report = load.stop().await?;
        assert_eq!(report.clients().len(), 3);
        assert!(report.failed() >= failures);
        let tally = report.tally();
        assert_eq!(tally.total() as usize, report.total());
        assert_eq!(tally.ok("v1") as usize, report.total() - report.failed());
        assert_eq!(
            tally.lost() as usize,
            report.failed(),
            "500s name no version"
        );
        for client in report.clients() {
            // One connection per client: every third answer is the 500.
            let statuses: Vec<Option<u16>> = client.iter().map(Answer::status).collect();
            assert_eq!(statuses[..3], [Some(200), Some(200), Some(500)]);
            assert!(client.windows(2).all(|w| w[0].sent <= w[1].sent));
        }
        let bodies = report.bodies();
        assert!(bodies.iter().flatten().all(|b| b == "hello from v1"));
        let replies = report.replies();
        assert_eq!(replies.iter().map(Vec::len).sum::<usize>(), report.total());
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paced_load_keeps_to_its_rate() -> TestResult {
        let addr = server().await?;
        let load = Load::builder(&format!("http://{addr}/"))
            .clients(2)
            .rate(100)
            .timeout(Duration::from_secs(1))
            .start()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let report = load.stop().await?;
        // 100 requests/s for 0.5 s, give or take the slots at both ends.
        assert!((40..=60).contains(&report.total()), "{}", report.total());
        Ok(())
    }

    #[tokio::test]
    async fn refused_connections_are_lost_requests() -> TestResult {
        let addr = crate::ports::free_addr()?;
        let load = Load::start(&format!("http://{addr}/"), 1)?;
        let running = &load;
        crate::wait::Wait::up_to(Duration::from_secs(10))
            .until_async(|| async move { running.failure_times().len() >= 3 })
            .await?;
        let report = load.stop().await?;
        assert_eq!(report.failed(), report.total());
        assert!(report.answers().all(|a| a.reply.is_err()));
        assert_eq!(report.tally().lost() as usize, report.total());
        assert!(report.bodies().iter().all(Vec::is_empty));
        Ok(())
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(matches!(
            Load::start("http://127.0.0.1:1/", 0),
            Err(LoadError::NoClients)
        ));
        assert!(matches!(
            Load::builder("http://127.0.0.1:1/").rate(0).start(),
            Err(LoadError::ZeroRate)
        ));
        assert!(matches!(
            Load::start("http://127.0.0.1:1/", 1),
            Err(LoadError::NoRuntime)
        ));
    }
}
