//! Free loopback ports: owns finding a TCP port on 127.0.0.1 that nothing
//! listens on, by binding port 0 and letting the kernel choose.
//!
//! A port is free when it is returned, not reserved: the caller binds it (or
//! hands it to a process that does) soon after. [`free_ports`] returns several
//! ports that are also distinct from each other, and [`free_addr`] an address
//! for an upstream that refuses connections.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// No free loopback port could be found.
#[derive(Debug, thiserror::Error)]
#[error("cannot find a free loopback port: {0}")]
pub struct PortError(#[from] std::io::Error);

/// A TCP port on 127.0.0.1 that nothing listens on.
pub fn free_port() -> Result<u16, PortError> {
    Ok(bind_any()?.local_addr()?.port())
}

/// `n` distinct free TCP ports on 127.0.0.1 (each listener is held until all
/// are found, so the kernel cannot hand out the same port twice).
pub fn free_ports(n: usize) -> Result<Vec<u16>, PortError> {
    let listeners = (0..n).map(|_| bind_any()).collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// `127.0.0.1:PORT` with a free port: nothing listens there, so connections
/// to it are refused.
pub fn free_addr() -> Result<SocketAddr, PortError> {
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)))
}

fn bind_any() -> std::io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound() -> Result<(), Box<dyn std::error::Error>> {
        let port = free_port()?;
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        Ok(())
    }

    #[test]
    fn free_ports_are_distinct() -> Result<(), Box<dyn std::error::Error>> {
        let mut ports = free_ports(16)?;
        assert_eq!(ports.len(), 16);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 16, "a port was handed out twice");
        Ok(())
    }

    #[test]
    fn nothing_listens_on_a_free_addr() -> Result<(), Box<dyn std::error::Error>> {
        let addr = free_addr()?;
        assert!(addr.ip().is_loopback());
        assert!(std::net::TcpStream::connect(addr).is_err());
        Ok(())
    }
}
