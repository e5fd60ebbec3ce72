//! The CLI's client for the daemon's API: JSON over HTTP/1.1 on the daemon's
//! (loopback by default) address, with the bearer token; over HTTPS when the
//! config gives the API a certificate (`[server] tls`), trusting exactly that
//! certificate (see `tls.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::wire::{
    Accepted, ApiErrorBody, ApproveRequest, AuditRow, DaemonAnswer, DecisionAnswer, DeployRequest,
    Deployment, DeploymentDetail, EnvironmentEvent, ErrorCode, EventFeed, FeedEvent, LogsRequest,
    RejectRequest, RollbackRequest, RolloutCommandRequest, StatusResponse, TokenCreateRequest,
    TokenCreated, TokenInfo,
};

/// Longest wait for one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address.
    #[error("cannot reach the cutover daemon at {addr}: {reason}. Is `cutover serve` running?")]
    Unreachable {
        /// Where we looked.
        addr: SocketAddr,
        /// The connection error.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// What went wrong, machine-readable; decides the CLI's exit code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}

/// A client bound to one daemon.
#[derive(Clone)]
pub struct ApiClient {
    addr: SocketAddr,
    token: String,
    transport: Transport,
    /// Longest wait for one call.
    timeout: Duration,
}

/// How requests reach the daemon.
#[derive(Clone)]
enum Transport {
    /// Plain HTTP, pooled.
    Plain(Box<Client<HttpConnector, Full<Bytes>>>),
    /// HTTPS, one connection per call (the CLI makes few).
    Tls(Arc<cutover_proxy::rustls::ClientConfig>),
}

impl ApiClient {
    /// A client for the daemon at `addr` with `token`, over plain HTTP.
    pub fn new(addr: SocketAddr, token: String) -> ApiClient {
        ApiClient {
            addr,
            token,
            transport: Transport::Plain(Box::new(
                Client::builder(TokioExecutor::new()).build_http(),
            )),
            timeout: CALL_TIMEOUT,
        }
    }

    /// A client for the daemon at `addr` over HTTPS with `tls` (see
    /// [`super::tls::pinned_client_config`]).
    pub fn with_tls(
        addr: SocketAddr,
        token: String,
        tls: Arc<cutover_proxy::rustls::ClientConfig>,
    ) -> ApiClient {
        ApiClient {
            addr,
            token,
            transport: Transport::Tls(tls),
            timeout: CALL_TIMEOUT,
        }
    }

    /// The same client, waiting up to `timeout` for each answer (a hand-over
    /// takes longer than most calls).
    pub fn with_call_timeout(mut self, timeout: Duration) -> ApiClient {
        self.timeout = timeout;
        self
    }

    /// The request URI for `path`: absolute for the pooled client, origin-form
    /// (with a `Host` header) on a connection of our own.
    fn uri(&self, path: &str) -> String {
        match self.transport {
            Transport::Plain(_) => format!("http://{}{}", self.addr, path),
            Transport::Tls(_) => path.to_owned(),
        }
    }

    /// Sends `req` within [`CALL_TIMEOUT`].
    async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: self.addr,
            reason,
        };
        let sent = async {
            match &self.transport {
                Transport::Plain(http) => http.request(req).await.map_err(|e| error_chain(&e)),
                Transport::Tls(config) => {
                    if let Ok(host) = http::HeaderValue::from_str(&self.addr.to_string()) {
                        req.headers_mut().insert(header::HOST, host);
                    }
                    let tcp = tokio::net::TcpStream::connect(self.addr)
                        .await
                        .map_err(|e| e.to_string())?;
                    let name = cutover_proxy::rustls::pki_types::ServerName::IpAddress(
                        self.addr.ip().into(),
                    );
                    let tls = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake: {}", error_chain(&e)))?;
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tls))
                            .await
                            .map_err(|e| error_chain(&e))?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    sender.send_request(req).await.map_err(|e| error_chain(&e))
                }
            }
        };
        tokio::time::timeout(self.timeout, sent)
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", self.timeout.as_secs())))?
            .map_err(unreachable)
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        self.call(Method::GET, "/v1/status", None::<&()>).await
    }

    /// `POST /v1/deployments`.
    pub async fn deploy(&self, req: &DeployRequest) -> Result<Accepted, ClientError> {
        self.call(Method::POST, "/v1/deployments", Some(req)).await
    }

    /// `GET /v1/releases[?environment=…]`: versions, digests, where each ran.
    pub async fn releases(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<crate::api::wire::ReleaseView>, ClientError> {
        let mut path = "/v1/releases".to_owned();
        if let Some(env) = environment {
            path.push_str("?environment=");
            path.push_str(&percent_encode(env));
        }
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `POST /v1/locks`: lock an environment against deploys.
    pub async fn lock(
        &self,
        req: &crate::api::wire::LockRequest,
    ) -> Result<crate::api::wire::OperatorLock, ClientError> {
        self.call(Method::POST, "/v1/locks", Some(req)).await
    }

    /// `DELETE /v1/locks/{environment}`: remove an environment's lock.
    pub async fn unlock(
        &self,
        environment: &str,
    ) -> Result<crate::api::wire::Unlocked, ClientError> {
        let path = format!("/v1/locks/{}", percent_encode(environment));
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// `POST /v1/daemon/{action}`: `upgrade`, `reload` or `down`.
    pub async fn daemon_action(&self, action: &str) -> Result<DaemonAnswer, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/daemon/{action}"),
            Some(&serde_json::json!({})),
        )
        .await
    }

    /// `POST /v1/rollback`.
    pub async fn rollback(&self, req: &RollbackRequest) -> Result<Accepted, ClientError> {
        self.call(Method::POST, "/v1/rollback", Some(req)).await
    }

    /// `POST /v1/rollout/{command}`: pause, resume, promote or abort.
    pub async fn rollout_command(
        &self,
        command: &str,
        req: &RolloutCommandRequest,
    ) -> Result<Accepted, ClientError> {
        self.call(Method::POST, &format!("/v1/rollout/{command}"), Some(req))
            .await
    }

    /// `POST /v1/deployments/{id}/approve`.
    pub async fn approve(
        &self,
        id: i64,
        req: &ApproveRequest,
    ) -> Result<DecisionAnswer, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/deployments/{id}/approve"),
            Some(req),
        )
        .await
    }

    /// `POST /v1/deployments/{id}/reject`.
    pub async fn reject(
        &self,
        id: i64,
        req: &RejectRequest,
    ) -> Result<DecisionAnswer, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/deployments/{id}/reject"),
            Some(req),
        )
        .await
    }

    /// `GET /v1/deployments/{id}`.
    pub async fn deployment(&self, id: i64) -> Result<DeploymentDetail, ClientError> {
        self.call(Method::GET, &format!("/v1/deployments/{id}"), None::<&()>)
            .await
    }

    /// `GET /v1/deployments/{id}?seen=N&wait_ms=M`: answers once the
    /// deployment has more than `seen` events or has ended, or after `wait`
    /// (at once from a daemon that does not know the parameters).
    pub async fn deployment_news(
        &self,
        id: i64,
        seen: usize,
        wait: Duration,
    ) -> Result<DeploymentDetail, ClientError> {
        let path = format!(
            "/v1/deployments/{id}?seen={seen}&wait_ms={}",
            wait.as_millis()
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/deployments?environment=…&limit=…`, newest first.
    pub async fn deployments(
        &self,
        environment: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Deployment>, ClientError> {
        let mut path = format!("/v1/deployments?limit={limit}");
        if let Some(env) = environment {
            path.push_str("&environment=");
            path.push_str(&percent_encode(env));
        }
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/events?environment=…&limit=…`: the environment's events
    /// outside deployments (its certificates), newest first.
    pub async fn environment_events(
        &self,
        environment: &str,
        limit: u32,
    ) -> Result<Vec<EnvironmentEvent>, ClientError> {
        let path = format!(
            "/v1/events?environment={}&limit={limit}",
            percent_encode(environment)
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `POST /v1/tokens`: makes a named token; the answer holds it, once.
    pub async fn token_create(
        &self,
        req: &TokenCreateRequest,
    ) -> Result<TokenCreated, ClientError> {
        self.call(Method::POST, "/v1/tokens", Some(req)).await
    }

    /// `GET /v1/tokens`: every named token, without its secret.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.call(Method::GET, "/v1/tokens", None::<&()>).await
    }

    /// `DELETE /v1/tokens/{name}`.
    pub async fn token_revoke(&self, name: &str) -> Result<TokenInfo, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/v1/tokens/{}", percent_encode(name)),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/audit?since=…&limit=…`: the newest `limit` rows written at
    /// `since` or later, oldest first.
    pub async fn audit(
        &self,
        since: Option<jiff::Timestamp>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, ClientError> {
        let mut path = format!("/v1/audit?limit={limit}");
        if let Some(since) = since {
            path.push_str(&format!("&since={}", percent_encode(&since.to_string())));
        }
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/audit?after=ID&limit=…`: the rows after id `after`, oldest
    /// first (a page of the whole log).
    pub async fn audit_after(&self, after: i64, limit: u32) -> Result<Vec<AuditRow>, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/audit?after={after}&limit={limit}"),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/logs?…`: a service's output as it arrives; `write` gets each
    /// chunk. Returns when the daemon ends the answer (at once without
    /// `follow`; with it, when the instances stop).
    pub async fn logs(
        &self,
        query: &LogsRequest,
        mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), ClientError> {
        let mut path = format!("/v1/logs?service={}", percent_encode(&query.service));
        if let Some(env) = &query.environment {
            path.push_str(&format!("&environment={}", percent_encode(env)));
        }
        if let Some(release) = &query.release {
            path.push_str(&format!("&release={}", percent_encode(release)));
        }
        if let Some(tail) = query.tail {
            path.push_str(&format!("&tail={tail}"));
        }
        if query.follow {
            path.push_str("&follow=true");
        }
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.uri(&path))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?
                .to_bytes();
            return Err(api_error(status, &bytes));
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(error_chain(&e)))?;
            if let Some(data) = frame.data_ref() {
                write(data).map_err(|e| ClientError::Protocol(format!("writing the logs: {e}")))?;
            }
        }
        Ok(())
    }

    /// `GET /v1/events/feed`: the latest `limit` events (of `environment`
    /// only, if given), oldest first, and the cursor after them.
    pub async fn event_feed(
        &self,
        environment: Option<&str>,
        limit: u32,
    ) -> Result<EventFeed, ClientError> {
        let mut path = format!("/v1/events/feed?limit={limit}");
        if let Some(env) = environment {
            path.push_str(&format!("&environment={}", percent_encode(env)));
        }
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/events/stream` from `after` (a cursor; `Last-Event-ID`):
    /// `on_event` gets each event as it arrives. Returns when the daemon
    /// ends the stream (it stops) with `Ok`, or with the error that cut it;
    /// a stream silent (not even a keep-alive) for three keep-alive
    /// intervals counts as cut.
    pub async fn event_stream(
        &self,
        environment: Option<&str>,
        after: &str,
        mut on_event: impl FnMut(FeedEvent) -> std::io::Result<()>,
    ) -> Result<(), ClientError> {
        let mut path = "/v1/events/stream".to_owned();
        if let Some(env) = environment {
            path.push_str(&format!("?environment={}", percent_encode(env)));
        }
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.uri(&path))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "text/event-stream")
            .header("last-event-id", after)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?
                .to_bytes();
            return Err(api_error(status, &bytes));
        }
        let silence = super::events::KEEP_ALIVE.saturating_mul(3);
        let mut parser = super::sse::SseParser::new();
        loop {
            let frame = match tokio::time::timeout(silence, body.frame()).await {
                Err(_) => {
                    return Err(ClientError::Protocol(format!(
                        "the event stream was silent for {} s",
                        silence.as_secs()
                    )));
                }
                Ok(None) => return Ok(()),
                Ok(Some(frame)) => frame.map_err(|e| ClientError::Protocol(error_chain(&e)))?,
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            for event in parser.push(data) {
                let event: FeedEvent = serde_json::from_str(&event.data).map_err(|e| {
                    ClientError::Protocol(format!("an event that is not JSON: {e}"))
                })?;
                on_event(event)
                    .map_err(|e| ClientError::Protocol(format!("writing the events: {e}")))?;
            }
        }
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Protocol(e.to_string()))?,
            None => Vec::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(self.uri(path))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()));
        }
        Err(api_error(status, &body))
    }
}

/// The error an answer with a non-2xx `status` and `body` means: the code and
/// message of an [`ApiErrorBody`], else the code the status suggests and the
/// body as text.
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(err) => ClientError::Api {
            status: status.as_u16(),
            code: err.error,
            message: err.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: ErrorCode::from_status(status),
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(error: ClientError) -> (ErrorCode, String) {
        match error {
            ClientError::Api { code, message, .. } => (code, message),
            other => panic!("not an API error: {other:?}"),
        }
    }

    #[test]
    fn an_error_body_is_read_into_its_code() {
        for code in ErrorCode::ALL {
            let body = serde_json::to_vec(&ApiErrorBody {
                error: code,
                message: "why".into(),
            })
            .expect("serializes");
            assert_eq!(
                code_of(api_error(code.status(), &body)),
                (code, "why".to_owned())
            );
        }
    }

    #[test]
    fn a_body_that_is_not_an_error_body_is_read_from_the_status() {
        let (code, message) = code_of(api_error(StatusCode::CONFLICT, b"busy"));
        assert_eq!((code, message.as_str()), (ErrorCode::Locked, "busy"));
        let (code, _) = code_of(api_error(StatusCode::UNPROCESSABLE_ENTITY, b"bad JSON"));
        assert_eq!(code, ErrorCode::Internal);
    }
}
