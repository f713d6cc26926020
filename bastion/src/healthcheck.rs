//! `bastion healthcheck`: exit 0 only if an SSH server answers with a banner on the configured
//! port. The container image has no shell, so ECS `healthCheck` runs this subcommand. With
//! PROXY protocol on, the probe first sends a v2 LOCAL header (what a load balancer's own
//! health check sends), which the bastion accepts from loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to probe: the listen address, with an unspecified IP replaced by loopback.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// PROXY protocol v2, command LOCAL, family UNSPEC, no addresses: 16 bytes.
pub const PROXY_V2_LOCAL: [u8; 16] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00,
];

/// Connect (sending a PROXY v2 LOCAL header first when `proxy_local`) and read the
/// identification line; Ok with the banner, Err with what went wrong.
pub async fn check(
    listen: SocketAddr,
    timeout: Duration,
    proxy_local: bool,
) -> Result<String, String> {
    let addr = probe_addr(listen);
    let probe = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        if proxy_local {
            stream
                .write_all(&PROXY_V2_LOCAL)
                .await
                .map_err(|e| format!("sending the PROXY header to {addr}: {e}"))?;
        }
        let mut buf = Vec::with_capacity(256);
        let mut byte = [0u8; 1];
        // The banner is one line of at most 255 bytes (RFC 4253 §4.2).
        while buf.len() < 256 {
            let n = stream
                .read(&mut byte)
                .await
                .map_err(|e| format!("reading from {addr}: {e}"))?;
            if n == 0 || byte[0] == b'\n' {
                break;
            }
            buf.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        if line.starts_with("SSH-2.0-") {
            Ok(line)
        } else {
            Err(format!("{addr} answered without an SSH banner: {line:?}"))
        }
    };
    tokio::time::timeout(timeout, probe).await.map_err(|_| {
        format!(
            "no SSH banner from {addr} within {}s",
            timeout.as_secs_f32()
        )
    })?
}

#[cfg(test)]
mod tests;
