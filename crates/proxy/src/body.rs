//! The response body the proxy streams back, and the bookkeeping that happens
//! when it ends: the instance's in-flight count goes down, and the request is
//! recorded in the observations and metrics with its full duration.
//!
//! Bodies are streamed frame by frame, never buffered whole.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::instance::ActiveGuard;
use crate::metrics::ServiceMetrics;
use crate::observe::Outcome;
use crate::table::Track;

/// Error type of bodies crossing the proxy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bookkeeping for one upstream response, done once, when it ends or is dropped.
#[derive(Debug)]
pub(crate) struct Finish {
    pub(crate) guard: ActiveGuard,
    pub(crate) started: Instant,
    pub(crate) status: u16,
    pub(crate) metrics: Arc<ServiceMetrics>,
    pub(crate) track: Track,
    /// Set when the upstream body broke off mid-stream.
    pub(crate) broken: bool,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.started);
        let track = self.metrics.track(self.track);
        if self.broken {
            self.guard.state().record(now, Outcome::ProxyError);
            track.proxy_error("upstream_body");
        } else {
            self.guard.state().record(
                now,
                Outcome::Response {
                    status: self.status,
                    latency,
                },
            );
        }
        track.count(self.status);
        track.observe_seconds(latency.as_secs_f64());
    }
}

/// A response body: either the upstream's, streamed, or one the proxy made.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Either<Incoming, Full<Bytes>>,
    finish: Option<Finish>,
}

impl ResponseBody {
    pub(crate) fn upstream(body: Incoming, finish: Finish) -> ResponseBody {
        ResponseBody {
            inner: Either::Left(body),
            finish: Some(finish),
        }
    }

    pub(crate) fn text(text: String) -> ResponseBody {
        ResponseBody {
            inner: Either::Right(Full::new(Bytes::from(text))),
            finish: None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                this.finish = None;
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut finish) = this.finish.take() {
                    finish.broken = true;
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
