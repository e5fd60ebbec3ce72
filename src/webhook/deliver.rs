//! One attempt of one delivery: a POST of the queued body, with the
//! Standard Webhooks headers for a webhook (signed anew with this attempt's
//! timestamp), within [`ATTEMPT_TIMEOUT`]. HTTPS through rustls (ring, the
//! system's roots); plain HTTP too, for endpoints on a trusted network.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::sign::signature;

/// The longest one attempt may take, answer included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `User-Agent` of every delivery.
const USER_AGENT: &str = concat!("cutover/", env!("CARGO_PKG_VERSION"));

/// The most of an answer's body kept for the error message.
const ERROR_BODY: usize = 200;

/// The HTTP(S) client the notifier sends with.
#[derive(Clone)]
pub struct Sender {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// How to sign an attempt.
pub struct Signing<'a> {
    /// The key (the bytes after `whsec_`).
    pub key: &'a [u8],
    /// The `webhook-id`.
    pub id: &'a str,
}

/// How an attempt went: `Ok(status)` for a 2xx, else the status (if any)
/// and why.
pub type Attempt = Result<u16, (Option<u16>, String)>;

impl Sender {
    /// A client with the system's trusted roots.
    pub fn new() -> std::io::Result<Sender> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Sender { client })
    }

    /// POSTs `body` to `url`; signed when `signing` is given, with
    /// `timestamp` (unix seconds of this attempt).
    pub async fn post(
        &self,
        url: &str,
        body: &str,
        signing: Option<Signing<'_>>,
        timestamp: i64,
    ) -> Attempt {
        let mut request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, USER_AGENT);
        if let Some(s) = signing {
            request = request
                .header("webhook-id", s.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signature(s.key, s.id, timestamp, body.as_bytes()),
                );
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|e| (None, format!("cannot make the request: {e}")))?;
        let answer = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| (None, describe(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, (Option<u16>, String)>((status, body))
        })
        .await
        .map_err(|_| {
            (
                None,
                format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()),
            )
        })??;
        let (status, body) = answer;
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY)]);
        let text = crate::label::printable(text.trim());
        Err((
            Some(status.as_u16()),
            if text.is_empty() {
                format!("answered {status}")
            } else {
                format!("answered {status}: {text}")
            },
        ))
    }
}

/// A client error with its causes (hyper's own message is terse), never
/// the URL (a Slack URL is a credential).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
