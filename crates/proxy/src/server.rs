//! The listener: accepts TCP connections, serves HTTP/1.1 (keep-alive) and
//! HTTP/2 (prior knowledge) on each, and shuts down gracefully: stop accepting,
//! let in-flight requests and tunnels finish up to the shutdown timeout, then
//! cut what is left.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::Shared;
use crate::forward;
use crate::upgrade::ListenerCtx;

/// Smallest buffer hyper accepts for a request head.
const MIN_HEADER_BUF: usize = 8192;
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(shared.config.client_idle_timeout)
        .max_buf_size(shared.config.max_header_bytes.max(MIN_HEADER_BUF));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(shared.config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(shared.config.client_idle_timeout / 2));

    let ctx = ListenerCtx::default();
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr()?;
    tracing::info!(%local, "proxy listening");
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn_shared = shared.clone();
        let conn_ctx = ctx.clone();
        let service = service_fn(move |req| {
            let shared = conn_shared.clone();
            let ctx = conn_ctx.clone();
            async move {
                Ok::<_, Infallible>(
                    forward::handle(&shared, req, &forward::ConnInfo { peer, tls: false }, &ctx)
                        .await,
                )
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let cut = ctx.cut.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "client connection ended with an error");
                    }
                }
                _ = cut.cancelled() => {}
            }
        });
    }
    drop(listener);
    tracing::info!(%local, "proxy stopped accepting; finishing in-flight requests");
    let timeout = shared.config.shutdown_timeout;
    let finished = tokio::time::timeout(timeout, async {
        graceful.shutdown().await;
        ctx.tunnels.close();
        ctx.tunnels.wait().await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!(%local, ?timeout, "shutdown timeout passed; cutting remaining connections");
        ctx.cut.cancel();
        ctx.tunnels.close();
        ctx.tunnels.wait().await;
    }
    Ok(())
}
