//! Upgraded connections (WebSocket and any other `Upgrade`): once both sides
//! have switched protocols, bytes are copied both ways until either side
//! closes, or until no byte has moved either way for
//! [`crate::ProxyConfig::upgrade_idle_timeout`].
//!
//! A tunnel counts against its instance's in-flight state, so draining waits
//! for it; it is cut only when the drain's timeout passes, the listener's
//! shutdown timeout passes or it is idle too long, never merely because
//! draining started. It keeps its client connection's slot of
//! [`crate::ProxyConfig::max_connections`] until it ends.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::instance::InstanceState;

/// What a connection hands to the requests it serves: the listener's tunnels
/// and the token that cuts them when the listener's shutdown timeout passes,
/// the tunnels' idle timeout, and the connection's slot of the connection cap.
#[derive(Debug, Clone)]
pub(crate) struct ListenerCtx {
    pub(crate) tunnels: TaskTracker,
    pub(crate) cut: CancellationToken,
    pub(crate) upgrade_idle_timeout: Duration,
    /// The client connection's slot (kept by its tunnel after the upgrade).
    pub(crate) slot: Option<Arc<crate::server::Slot>>,
}

impl Default for ListenerCtx {
    fn default() -> Self {
        ListenerCtx {
            tunnels: TaskTracker::new(),
            cut: CancellationToken::new(),
            upgrade_idle_timeout: crate::DEFAULT_UPGRADE_IDLE_TIMEOUT,
            slot: None,
        }
    }
}

/// Joins the client's and the upstream's upgraded connections in a task.
pub(crate) fn spawn_tunnel(
    ctx: &ListenerCtx,
    state: &Arc<InstanceState>,
    client: OnUpgrade,
    upstream: OnUpgrade,
) {
    let (guard, drain_cut) = state.begin_upgrade();
    let listener_cut = ctx.cut.clone();
    let idle_timeout = ctx.upgrade_idle_timeout;
    let slot = ctx.slot.clone();
    ctx.tunnels.spawn(async move {
        let _guard = guard;
        let slot = slot;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let activity = Activity::new();
        let mut client = Watched::new(TokioIo::new(client), activity.clone());
        let mut upstream = Watched::new(TokioIo::new(upstream), activity.clone());
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = copied {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                }
            }
            () = activity.idle_for(idle_timeout) => {
                if let Some(slot) = &slot {
                    slot.metrics().idle_closed_upgrade();
                }
                tracing::debug!(?idle_timeout, "upgraded connection closed: idle");
            }
            _ = drain_cut.cancelled() => {
                tracing::debug!("upgraded connection cut: drain timeout");
            }
            _ = listener_cut.cancelled() => {
                tracing::debug!("upgraded connection cut: shutdown timeout");
            }
        }
    });
}

/// When bytes last moved on a tunnel, in milliseconds since it started.
#[derive(Debug, Clone)]
struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = crate::config::deadline_after(last, timeout);
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// An I/O object that records activity on every byte read or written.
struct Watched<T> {
    io: T,
    activity: Activity,
}

impl<T> Watched<T> {
    fn new(io: T, activity: Activity) -> Watched<T> {
        Watched { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
