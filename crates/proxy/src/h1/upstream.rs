//! The fast path's upstream HTTP/1.1 connections: opened on demand
//! (`TCP_NODELAY`, the connect timeout), and kept idle per instance address
//! between requests, driven by whichever client connection's task checks one
//! out — no task of their own, no channel.
//!
//! An idle connection is handed out again only while it is younger than
//! `upstream_idle_timeout` and has nothing to read (an instance that closed
//! it, or sent bytes nobody asked for, makes it readable): that check reads
//! the readiness the I/O driver already has, without a system call.
//! [`Pool::prune`], run by each listener every few seconds, closes the ones
//! that idled too long.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::instance::lock;

/// Room read at once from an upstream.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// One HTTP/1.1 connection to an instance, with its read buffer.
#[derive(Debug)]
pub(crate) struct UpstreamConn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
}

impl UpstreamConn {
    /// True when the instance closed it or sent something unasked.
    fn readable(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(self.stream.poll_read_ready(&mut cx), Poll::Ready(_))
    }
}

/// Opens a connection to `addr` within `timeout`.
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<UpstreamConn> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(stream) => stream?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection to {addr} within {timeout:?}"),
            ));
        }
    };
    stream.set_nodelay(true)?;
    Ok(UpstreamConn {
        stream,
        buf: BytesMut::with_capacity(READ_CHUNK),
    })
}

/// Idle upstream connections, by instance address.
#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    max_per_instance: usize,
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

impl Pool {
    pub(crate) fn new(max_per_instance: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_per_instance,
            idle_timeout,
        }
    }

    /// The most recently used idle connection to `addr` that is still good.
    pub(crate) fn checkout(&self, addr: SocketAddr) -> Option<UpstreamConn> {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        let list = idle.get_mut(&addr)?;
        while let Some(Idle { conn, since }) = list.pop() {
            if now.saturating_duration_since(since) < self.idle_timeout && !conn.readable() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `addr` (closes it when the
    /// instance already has its share of idle connections).
    pub(crate) fn checkin(&self, addr: SocketAddr, mut conn: UpstreamConn) {
        if self.max_per_instance == 0 {
            return;
        }
        conn.buf.clear();
        let mut idle = lock(&self.idle);
        let list = idle.entry(addr).or_default();
        if list.len() < self.max_per_instance {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Closes connections idle for longer than the idle timeout, and the ones
    /// their instance closed.
    pub(crate) fn prune(&self) {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        idle.retain(|_, list| {
            list.retain(|i| {
                now.saturating_duration_since(i.since) < self.idle_timeout && !i.conn.readable()
            });
            !list.is_empty()
        });
    }

    /// How often [`Pool::prune`] should run.
    pub(crate) fn prune_every(&self) -> Duration {
        (self.idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_connections_are_reused_until_closed_by_the_instance() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::new(4, Duration::from_secs(30));
        let conn = connect(addr, Duration::from_secs(1))
            .await
            .expect("connect");
        let (server_side, _) = listener.accept().await.expect("accept");
        pool.checkin(addr, conn);
        let conn = pool.checkout(addr).expect("reused");
        pool.checkin(addr, conn);
        // The instance closes it: the next checkout sees EOF and skips it.
        drop(server_side);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.checkout(addr).is_none());
    }

    #[tokio::test]
    async fn connections_idle_too_long_are_pruned() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::new(4, Duration::from_millis(20));
        let conn = connect(addr, Duration::from_secs(1))
            .await
            .expect("connect");
        pool.checkin(addr, conn);
        tokio::time::sleep(Duration::from_millis(40)).await;
        pool.prune();
        assert!(lock(&pool.idle).is_empty());
    }
}
