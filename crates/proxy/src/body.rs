//! Bodies crossing the proxy. The response body the proxy streams back, and
//! the bookkeeping that happens when it ends: the instance's in-flight count
//! goes down, and the request is recorded in the observations and metrics with
//! its full duration. The request body streamed upstream ([`ClientBody`]),
//! which enforces the body limit and notes when the client is at fault (a
//! malformed, cut-short, too large or stalled body), so that such a failure is
//! answered 400 / 413 / 408 and never counted against the instance.
//!
//! Bodies are streamed frame by frame, never buffered whole.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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

/// How a request failed by the client's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientFaultKind {
    /// The body was malformed (bad chunked encoding) or cut short (the client
    /// closed the connection or reset the stream before its end).
    BadBody,
    /// The body grew past the limit.
    TooLarge,
    /// The response header timeout passed while the proxy was waiting for
    /// the client to send more of its body.
    SlowBody,
    /// The client asked for an `Upgrade` the service does not allow, and the
    /// instance switched protocols on the request anyway.
    UpgradeRefused,
}

impl ClientFaultKind {
    /// Label value for the client faults metric.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            ClientFaultKind::BadBody => "bad_body",
            ClientFaultKind::TooLarge => "body_too_large",
            ClientFaultKind::SlowBody => "slow_body",
            ClientFaultKind::UpgradeRefused => "upgrade_refused",
        }
    }

    fn code(self) -> u8 {
        match self {
            ClientFaultKind::BadBody => 1,
            ClientFaultKind::TooLarge => 2,
            ClientFaultKind::SlowBody => 3,
            ClientFaultKind::UpgradeRefused => 4,
        }
    }

    fn from_code(code: u8) -> Option<ClientFaultKind> {
        match code {
            1 => Some(ClientFaultKind::BadBody),
            2 => Some(ClientFaultKind::TooLarge),
            3 => Some(ClientFaultKind::SlowBody),
            4 => Some(ClientFaultKind::UpgradeRefused),
            _ => None,
        }
    }
}

/// What the request body saw of the client, shared by the [`ClientBody`] and
/// the request's bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct ClientState {
    fault: AtomicU8,
    /// The body was last found waiting for the client to send more.
    waiting_on_client: AtomicBool,
    /// The body ended (every byte the client promised arrived).
    ended: AtomicBool,
}

impl ClientState {
    /// The client's fault, if the request failed by it.
    pub(crate) fn fault(&self) -> Option<ClientFaultKind> {
        ClientFaultKind::from_code(self.fault.load(Ordering::Acquire))
    }

    /// Notes a fault (the first one sticks).
    pub(crate) fn set_fault(&self, kind: ClientFaultKind) {
        let _ = self
            .fault
            .compare_exchange(0, kind.code(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// True while the body has not ended and the proxy is waiting for the
    /// client (not for the upstream to read).
    pub(crate) fn stalled_by_client(&self) -> bool {
        !self.ended.load(Ordering::Acquire) && self.waiting_on_client.load(Ordering::Acquire)
    }
}

/// Why the request body sent upstream stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientBodyError {
    /// The client's body broke.
    #[error("the client's request body broke off: {0}")]
    Client(#[source] hyper::Error),
    /// The body passed the limit.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

/// The client's request body on its way upstream: counts bytes against the
/// limit and notes client faults in the shared [`ClientState`].
#[derive(Debug)]
pub(crate) struct ClientBody {
    inner: Incoming,
    limit: u64,
    seen: u64,
    state: Arc<ClientState>,
}

impl ClientBody {
    pub(crate) fn new(inner: Incoming, limit: u64, state: Arc<ClientState>) -> ClientBody {
        ClientBody {
            inner,
            limit,
            seen: 0,
            state,
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.state
            .waiting_on_client
            .store(polled.is_pending(), Ordering::Release);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.state.ended.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.state.set_fault(ClientFaultKind::BadBody);
                Poll::Ready(Some(Err(ClientBodyError::Client(e))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limit {
                        this.state.set_fault(ClientFaultKind::TooLarge);
                        return Poll::Ready(Some(Err(ClientBodyError::TooLarge {
                            limit: this.limit,
                        })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

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
    /// The track was forced with `X-Cutover-Track`: metrics only, no
    /// observation.
    pub(crate) forced: bool,
    /// What the request body saw of the client.
    pub(crate) client: Arc<ClientState>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.started);
        let track = self.metrics.track(self.track);
        let outcome = if let Some(fault) = self.client.fault() {
            // The upstream stopped because the client's body did: not its fault.
            track.client_fault(fault.reason());
            Outcome::ClientFault
        } else if self.broken {
            track.proxy_error("upstream_body");
            Outcome::ProxyError
        } else {
            Outcome::Response {
                status: self.status,
                latency,
            }
        };
        if !self.forced {
            self.guard.state().record(now, outcome);
        }
        track.count(self.status);
        track.observe_seconds(latency.as_secs_f64());
    }
}

/// A response body: either the upstream's, streamed, or one the proxy made.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Either<Incoming, Full<Bytes>>,
    /// The whole body of a response the proxy made (for the HTTP/1 fast
    /// path, which writes it itself).
    text: Option<Bytes>,
    finish: Option<Finish>,
}

impl ResponseBody {
    pub(crate) fn upstream(body: Incoming, finish: Finish) -> ResponseBody {
        ResponseBody {
            inner: Either::Left(body),
            text: None,
            finish: Some(finish),
        }
    }

    pub(crate) fn text(text: String) -> ResponseBody {
        let text = Bytes::from(text);
        ResponseBody {
            inner: Either::Right(Full::new(text.clone())),
            text: Some(text),
            finish: None,
        }
    }

    /// The whole body of a response the proxy made; `None` for an upstream's.
    pub(crate) fn text_bytes(&self) -> Option<&Bytes> {
        self.text.as_ref()
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
