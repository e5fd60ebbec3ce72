//! One HTTP GET, read whole: owns the keep-alive hyper client the kit uses,
//! what an answer is ([`Reply`]: status, body, and the version of the example
//! app that gave it) and how a request fails ([`HttpError`]).
//!
//! The example app (`examples/hello`) answers `hello from VERSION` and names
//! itself in an `x-version` header; [`Reply::version`] is that header, or the
//! body's `VERSION` when there is no header.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled keep-alive HTTP/1.1 client sending requests without a body.
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// The header in which the example app names its version.
pub const VERSION_HEADER: &str = "x-version";

/// A new keep-alive client (call inside a tokio runtime).
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Why a GET got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad URL {url:?}: {source}")]
    Url {
        url: String,
        source: hyper::http::uri::InvalidUri,
    },
    #[error("request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("reading the answer failed: {0}")]
    Body(#[from] hyper::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// An answer, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The `x-version` header, or the `VERSION` of a body `hello from VERSION`.
    pub version: Option<String>,
    /// The body as text (lossy UTF-8), without surrounding whitespace.
    pub body: String,
}

impl Reply {
    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Parses `url` as a request URI.
pub fn uri(url: &str) -> Result<Uri, HttpError> {
    url.parse().map_err(|source| HttpError::Url {
        url: url.to_owned(),
        source,
    })
}

/// One GET with `client`.
pub async fn get(client: &HttpClient, uri: Uri) -> Result<Reply, HttpError> {
    let resp = client.get(uri).await?;
    let status = resp.status().as_u16();
    let header = resp
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&bytes).trim().to_owned();
    let version = header.or_else(|| body.strip_prefix("hello from ").map(str::to_owned));
    Ok(Reply {
        status,
        version,
        body,
    })
}

/// [`get`], given up after `timeout`.
pub async fn get_within(
    client: &HttpClient,
    uri: Uri,
    timeout: Duration,
) -> Result<Reply, HttpError> {
    tokio::time::timeout(timeout, get(client, uri))
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
}

/// One GET of `url` on a fresh connection.
pub async fn fetch(url: &str) -> Result<Reply, HttpError> {
    get(&client(), uri(url)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_an_error_naming_it() {
        let err = uri("http://[::1").err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("http://[::1")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_request_error() -> Result<(), Box<dyn std::error::Error>> {
        let addr = crate::ports::free_addr()?;
        let got = fetch(&format!("http://{addr}/")).await;
        assert!(matches!(got, Err(HttpError::Request(_))), "{got:?}");
        Ok(())
    }
}
