//! Upgraded connections (WebSocket and any other `Upgrade`): once both sides
//! have switched protocols, bytes are copied both ways until either side closes.
//!
//! A tunnel counts against its instance's in-flight state, so draining waits
//! for it; it is cut only when the drain's timeout passes or the listener's
//! shutdown timeout passes, never merely because draining started.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::instance::InstanceState;

/// What the connections of one listener share: the tunnels they opened, and the
/// token that cuts them when the listener's shutdown timeout passes.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListenerCtx {
    pub(crate) tunnels: TaskTracker,
    pub(crate) cut: CancellationToken,
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
    ctx.tunnels.spawn(async move {
        let _guard = guard;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = copied {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                }
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
