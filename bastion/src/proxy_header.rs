//! The PROXY protocol (v1 text and v2 binary) header that a load balancer puts in front of a
//! client's SSH bytes: reading exactly that header from an accepted connection, checking that
//! it comes from a trusted proxy, and settling the real client address for logs and policy.
//!
//! Behind an AWS NLB (proxy protocol v2 on the target group) or haproxy (`send-proxy`,
//! `send-proxy-v2`) the socket peer is the load balancer; the header names the client. Parsing
//! is done by the `ppp` crate; this module owns the framing (how many bytes to read, and when
//! to stop), the deadline, the trust check and the mapping to an [`Outcome`].
//!
//! # No byte is lost, none is read too far
//! The header is read with exact-length reads only: the 16-byte fixed part and then exactly the
//! announced length for v2; for v1 the 15-byte minimum and then one or two bytes at a time, never
//! past the `\r\n`. So when a header is present the stream is left at the client's first SSH
//! byte, however the bytes were segmented (all in one write with the SSH banner, or one byte at
//! a time). To decide whether a header is present at all (`optional` mode) one byte is read:
//! `P` starts v1 (`PROXY `), `\r` starts v2, and an SSH client starts with `S` (`SSH-2.0-`). If
//! there is no header, that byte belongs to SSH: [`read_header`] returns it as the prefix, and
//! [`Prefixed`] (or [`accept`], which builds it) replays it in front of the stream. This works
//! for any `AsyncRead` (no `TcpStream::peek`, so tests run on in-memory pipes).
//!
//! # Trust
//! Only peers inside `BASTION_PROXY_TRUSTED` may send a header: in `required` mode any other
//! peer is refused before a byte is read; in `optional` mode a header from another peer is a
//! spoofing attempt and refused, while a plain SSH connection from it passes (`NoHeader`).
//! IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, as a `[::]` listener reports them) match IPv4
//! ranges. The PROXY protocol specification says a receiver must not guess whether a header is
//! present: `optional` is a migration aid and is only safe because of this trust check.
//!
//! # Servers that speak first
//! The bastion sends its SSH banner only after this module returns. By default an AWS NLB sends
//! the v2 header together with the client's first data segment (target group attribute
//! `proxy_protocol_v2.client_to_server.header_placement = on_first_ack_with_payload`), so a
//! client that waits for the server's banner before sending its own would get no answer until
//! the deadline ([`ProxyError::Timeout`]). OpenSSH (SSH-2 only) sends its banner at once, as do
//! the common clients, so this only bites unusual clients.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use ppp::v2::{Addresses as V2Addresses, Command as V2Command, Protocol as V2Protocol};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::net::{self, Brackets, Compatible, Escape, Nat64, Quoting};

mod prefixed;

pub use prefixed::Prefixed;

/// The setting that selects the [`ProxyMode`]; named in its parse errors.
pub const MODE_SETTING: &str = "BASTION_PROXY_PROTOCOL";

/// The setting that lists the trusted proxies; named in its parse errors.
pub const TRUSTED_SETTING: &str = "BASTION_PROXY_TRUSTED";

/// A sensible header deadline: the specification asks for at least 3 s (one TCP retransmit).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest v1 header, `\r\n` included (from the specification).
pub const V1_MAX_LEN: usize = 107;

/// Shortest valid v1 header: `PROXY UNKNOWN\r\n`.
pub const V1_MIN_LEN: usize = 15;

/// Largest v2 payload (addresses and TLVs after the 16-byte fixed part) that is read. An NLB
/// sends well under 200 bytes; the cap bounds what a peer can make us allocate and wait for.
pub const V2_MAX_PAYLOAD: usize = 1024;

/// The v1 signature, space included.
const V1_SIGNATURE: &[u8; 6] = b"PROXY ";

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Length of the v2 fixed part: signature, version/command, family/protocol, payload length.
const V2_FIXED_LEN: usize = 16;

/// The AWS TLV carrying the VPC endpoint id (subtype 0x01, then the ASCII id).
const PP2_TYPE_AWS: u8 = 0xEA;

/// The AWS TLV subtype for the VPC endpoint id.
const PP2_SUBTYPE_AWS_VPCE_ID: u8 = 0x01;

/// Whether connections start with a PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// Never read a header: the client is the socket peer.
    #[default]
    Off,
    /// Read a header when the first byte starts one (trusted peers only); otherwise the client
    /// is the socket peer. For migrations.
    Optional,
    /// Every connection must come from a trusted proxy and start with a header.
    Required,
}

impl FromStr for ProxyMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(ProxyMode::Off),
            "optional" => Ok(ProxyMode::Optional),
            "required" => Ok(ProxyMode::Required),
            _ => Err(format!(
                "{MODE_SETTING}: unknown value {:?}: use off, optional or required",
                s.chars().take(40).collect::<String>()
            )),
        }
    }
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyMode::Off => "off",
            ProxyMode::Optional => "optional",
            ProxyMode::Required => "required",
        })
    }
}

/// What the start of a connection said about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No header (mode off, or optional and the first byte does not start a PROXY signature):
    /// the client is the socket peer.
    NoHeader,
    /// A PROXY header (v1 TCP4/TCP6, or v2 PROXY command with INET/INET6): the real client and
    /// the address it connected to.
    Proxied {
        client: SocketAddr,
        destination: Option<SocketAddr>,
        version: u8,
        /// AWS PrivateLink: the VPC endpoint the client came through (TLV 0xEA subtype 0x01),
        /// with any non-printable byte escaped.
        vpce_id: Option<String>,
    },
    /// v1 `PROXY UNKNOWN` or v2 LOCAL command (load-balancer health checks): the client is the
    /// socket peer. Decided on the command alone; any addresses in the header are ignored.
    Local { version: u8 },
}

impl Outcome {
    /// The address to log and check policy against: the proxied client, else the socket peer.
    pub fn client(&self, peer: SocketAddr) -> SocketAddr {
        match self {
            Outcome::Proxied { client, .. } => *client,
            Outcome::NoHeader | Outcome::Local { .. } => peer,
        }
    }
}

/// Why a connection's start was refused. `Display` is one short phrase for an audit line.
#[derive(Debug)]
pub enum ProxyError {
    /// The header was not complete within the deadline (silence, or a partial header).
    Timeout,
    /// `required` mode and the connection does not start with a PROXY signature.
    Missing,
    /// A header that is not valid PROXY protocol, or one this server does not accept.
    Malformed(String),
    /// A header (or, in `required` mode, any connection) from a peer outside the trusted ranges.
    UntrustedSender(IpAddr),
    /// Reading failed, including the peer closing before the header was complete.
    Io(io::Error),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Timeout => {
                f.write_str("PROXY protocol header not complete before the deadline")
            }
            ProxyError::Missing => f.write_str(
                "connection does not start with a PROXY protocol header (mode is required)",
            ),
            ProxyError::Malformed(why) => write!(f, "malformed PROXY protocol header: {why}"),
            ProxyError::UntrustedSender(ip) => write!(
                f,
                "PROXY protocol peer {ip} is not a trusted proxy (see {TRUSTED_SETTING})"
            ),
            ProxyError::Io(e) => write!(f, "reading the PROXY protocol header: {e}"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProxyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// How headers are read: mode, trusted proxies and deadline.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub mode: ProxyMode,
    /// Peers allowed to send a header (IPv4-mapped peers match IPv4 entries).
    pub trusted: Vec<IpNet>,
    /// Deadline for the whole header, from the first read.
    pub timeout: Duration,
}

impl Default for ProxyConfig {
    /// Mode off, private ranges trusted, [`DEFAULT_TIMEOUT`].
    fn default() -> Self {
        ProxyConfig {
            mode: ProxyMode::Off,
            trusted: ProxyConfig::default_trusted(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ProxyConfig {
    /// The private ranges a load balancer inside a VPC sends from: 10/8, 172.16/12, 192.168/16
    /// and fc00::/7.
    pub fn default_trusted() -> Vec<IpNet> {
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// Parse a comma-separated list of CIDRs or bare IPs (a bare IP is a /32 or /128). IPv6
    /// may be bracketed. An empty list, an empty entry, or a CIDR with host bits set is an
    /// error naming `BASTION_PROXY_TRUSTED` and the entry.
    pub fn parse_trusted(list: &str) -> Result<Vec<IpNet>, String> {
        const EXAMPLE: &str = "e.g. 10.0.0.0/16,fd00::/8,192.0.2.7";
        if list.trim().is_empty() {
            return Err(format!(
                "{TRUSTED_SETTING} is empty: list the CIDRs your load balancers connect from \
                 ({EXAMPLE}), or leave it unset for the private ranges"
            ));
        }
        let mut nets = Vec::new();
        for (i, raw) in list.split(',').enumerate() {
            let entry = raw.trim();
            if entry.is_empty() {
                return Err(format!(
                    "{TRUSTED_SETTING}: entry {} is empty (two commas in a row, or a comma at \
                     the start or end)",
                    i + 1
                ));
            }
            nets.push(parse_net(entry).map_err(|why| {
                format!(
                    "{TRUSTED_SETTING}: entry {} {} {why} ({EXAMPLE})",
                    i + 1,
                    net::quoted(entry, Quoting::new(60, Escape::DebugFmt, false))
                )
            })?);
        }
        Ok(nets)
    }

    /// Is this socket peer a trusted proxy?
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        let canonical = canonical_ip(peer);
        self.trusted
            .iter()
            .any(|n| n.contains(&canonical) || n.contains(&peer))
    }
}

/// One CIDR or bare IP, optionally bracketed; IPv4-mapped IPv6 networks become IPv4.
fn parse_net(entry: &str) -> Result<IpNet, String> {
    net::parse_net(entry, Brackets::Allowed)
        .map(|n| net::canonical_net(n, Nat64::Keep))
        .map_err(|e| e.to_string())
}

/// IPv4-mapped IPv6 peers (a dual-stack listener's IPv4 clients) as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    net::canonical_ip(ip, Compatible::Keep, Nat64::Keep)
}

/// Read the PROXY header (if any) from `stream` according to `cfg`, given the socket peer.
///
/// Returns the outcome and the bytes that were read but belong to SSH: at most one byte, and
/// only when there was no header (`optional` mode). When a header is present exactly its bytes
/// are consumed and the returned prefix is empty. Put the prefix back in front of the stream
/// with [`Prefixed`] (or use [`accept`]).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    cfg: &ProxyConfig,
) -> Result<(Outcome, Vec<u8>), ProxyError> {
    if cfg.mode == ProxyMode::Off {
        return Ok((Outcome::NoHeader, Vec::new()));
    }
    let peer_ip = canonical_ip(peer.ip());
    let trust = if cfg.is_trusted(peer.ip()) {
        Trust::Full
    } else if peer_ip.is_loopback() {
        // Loopback is the task itself: `bastion healthcheck` sends a v2 LOCAL header.
        Trust::LocalOnly
    } else {
        Trust::None
    };
    if cfg.mode == ProxyMode::Required && trust == Trust::None {
        return Err(ProxyError::UntrustedSender(peer_ip));
    }
    match tokio::time::timeout(cfg.timeout, read_framed(stream, cfg.mode, trust, peer_ip)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProxyError::Timeout),
    }
}

/// How far a sender's PROXY header is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// A listed proxy: any header.
    Full,
    /// Untrusted loopback (the task's own health check): LOCAL / `UNKNOWN` only, which carry no
    /// client address; anything else from it is an untrusted sender, as from anyone else.
    LocalOnly,
    /// No header is believed.
    None,
}

/// The header's outcome, if `trust` lets this sender claim it.
fn believed(outcome: Outcome, trust: Trust, peer_ip: IpAddr) -> Result<Outcome, ProxyError> {
    match (trust, &outcome) {
        (Trust::Full, _) | (Trust::LocalOnly, Outcome::Local { .. }) => Ok(outcome),
        _ => Err(ProxyError::UntrustedSender(peer_ip)),
    }
}

/// [`read_header`], then wrap the stream so that SSH reads start with any byte it returned.
pub async fn accept<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    cfg: &ProxyConfig,
) -> Result<(Outcome, Prefixed<S>), ProxyError> {
    let (outcome, prefix) = read_header(&mut stream, peer, cfg).await?;
    Ok((outcome, Prefixed::new(prefix, stream)))
}

/// The body of [`read_header`] (without the deadline and the required-mode trust check).
async fn read_framed<S: AsyncRead + Unpin>(
    stream: &mut S,
    mode: ProxyMode,
    trust: Trust,
    peer_ip: IpAddr,
) -> Result<(Outcome, Vec<u8>), ProxyError> {
    let mut first = [0u8; 1];
    fill(stream, &mut first).await?;
    match first[0] {
        b'P' => {
            let mut sig = [0u8; V1_SIGNATURE.len()];
            sig[0] = b'P';
            fill(stream, &mut sig[1..]).await?;
            if &sig != V1_SIGNATURE {
                return Err(ProxyError::Malformed(format!(
                    "starts like v1 but is {:?}, not \"PROXY \"",
                    sig.escape_ascii().to_string()
                )));
            }
            if trust == Trust::None {
                return Err(ProxyError::UntrustedSender(peer_ip));
            }
            Ok((
                believed(read_v1(stream).await?, trust, peer_ip)?,
                Vec::new(),
            ))
        }
        b'\r' => {
            let mut sig = [0u8; V2_SIGNATURE.len()];
            sig[0] = b'\r';
            fill(stream, &mut sig[1..]).await?;
            if &sig != V2_SIGNATURE {
                return Err(ProxyError::Malformed(format!(
                    "bad v2 signature {:?}",
                    sig.escape_ascii().to_string()
                )));
            }
            if trust == Trust::None {
                return Err(ProxyError::UntrustedSender(peer_ip));
            }
            Ok((
                believed(read_v2(stream).await?, trust, peer_ip)?,
                Vec::new(),
            ))
        }
        other => match mode {
            // Untrusted loopback without a header: refused as untrusted, as before it could
            // send LOCAL.
            ProxyMode::Required if trust == Trust::LocalOnly => {
                Err(ProxyError::UntrustedSender(peer_ip))
            }
            ProxyMode::Required => Err(ProxyError::Missing),
            ProxyMode::Optional | ProxyMode::Off => Ok((Outcome::NoHeader, vec![other])),
        },
    }
}

/// Read the rest of a v1 header (after `PROXY `) up to and including `\r\n`, never further.
async fn read_v1<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Outcome, ProxyError> {
    let mut buf = [0u8; V1_MAX_LEN];
    buf[..V1_SIGNATURE.len()].copy_from_slice(V1_SIGNATURE);
    // Every valid header is at least V1_MIN_LEN long, so reading that much cannot overshoot one.
    fill(stream, &mut buf[V1_SIGNATURE.len()..V1_MIN_LEN]).await?;
    let mut len = V1_MIN_LEN;
    let end = loop {
        if let Some(cr) = buf[..len].iter().position(|&b| b == b'\r') {
            if cr + 1 < len {
                if cr + 2 < len {
                    // The line ended inside the minimum read: too short to be valid.
                    return Err(ProxyError::Malformed(format!(
                        "v1 header {:?} is shorter than the {V1_MIN_LEN}-byte minimum",
                        buf[..cr + 2].escape_ascii().to_string()
                    )));
                }
                break cr + 2;
            }
        }
        if len == V1_MAX_LEN {
            return Err(ProxyError::Malformed(format!(
                "v1 header longer than {V1_MAX_LEN} bytes without \\r\\n"
            )));
        }
        // After a byte other than '\r' the line cannot end within the next byte, so two bytes
        // can be read at once without passing the '\n'.
        let step = if buf[len - 1] == b'\r' { 1 } else { 2 };
        let next = (len + step).min(V1_MAX_LEN);
        fill(stream, &mut buf[len..next]).await?;
        len = next;
    };
    let header = ppp::v1::Header::try_from(&buf[..end])
        .map_err(|e| ProxyError::Malformed(format!("v1: {e}")))?;
    Ok(match header.addresses {
        ppp::v1::Addresses::Unknown => Outcome::Local { version: 1 },
        ppp::v1::Addresses::Tcp4(a) => Outcome::Proxied {
            client: SocketAddr::new(IpAddr::V4(a.source_address), a.source_port),
            destination: Some(SocketAddr::new(
                IpAddr::V4(a.destination_address),
                a.destination_port,
            )),
            version: 1,
            vpce_id: None,
        },
        ppp::v1::Addresses::Tcp6(a) => Outcome::Proxied {
            client: SocketAddr::new(IpAddr::V6(a.source_address), a.source_port),
            destination: Some(SocketAddr::new(
                IpAddr::V6(a.destination_address),
                a.destination_port,
            )),
            version: 1,
            vpce_id: None,
        },
    })
}

/// Read the rest of a v2 header (after the signature): the 4 fixed bytes, then exactly the
/// announced payload length (checked against [`V2_MAX_PAYLOAD`] before anything is allocated).
async fn read_v2<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Outcome, ProxyError> {
    let mut fixed = [0u8; V2_FIXED_LEN - V2_SIGNATURE.len()];
    fill(stream, &mut fixed).await?;
    let [ver_cmd, _family, len_hi, len_lo] = fixed;
    let version = ver_cmd >> 4;
    if version != 2 {
        return Err(ProxyError::Malformed(format!(
            "v2: version {version}, expected 2"
        )));
    }
    let command = ver_cmd & 0x0F;
    if command > 1 {
        return Err(ProxyError::Malformed(format!(
            "v2: unknown command {command:#x} (expected LOCAL 0x0 or PROXY 0x1)"
        )));
    }
    let payload = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyError::Malformed(format!(
            "v2: length {payload} over the limit of {V2_MAX_PAYLOAD} bytes"
        )));
    }
    let mut buf = Vec::with_capacity(V2_FIXED_LEN + payload);
    buf.extend_from_slice(V2_SIGNATURE);
    buf.extend_from_slice(&fixed);
    buf.resize(V2_FIXED_LEN + payload, 0);
    fill(stream, &mut buf[V2_FIXED_LEN..]).await?;

    if command == 0 {
        // LOCAL: "discard the protocol block including the family" (the specification). An NLB
        // fills in dummy addresses and padding, so nothing after the command is looked at.
        return Ok(Outcome::Local { version: 2 });
    }
    let header = ppp::v2::Header::try_from(buf.as_slice())
        .map_err(|e| ProxyError::Malformed(format!("v2: {e}")))?;
    if header.command != V2Command::Proxy {
        return Err(ProxyError::Malformed("v2: command is not PROXY".to_owned()));
    }
    if header.protocol == V2Protocol::Datagram {
        return Err(ProxyError::Malformed(
            "v2: transport protocol DGRAM on a stream connection".to_owned(),
        ));
    }
    let (client, destination) =
        match header.addresses {
            V2Addresses::IPv4(a) => (
                SocketAddr::new(IpAddr::V4(a.source_address), a.source_port),
                SocketAddr::new(IpAddr::V4(a.destination_address), a.destination_port),
            ),
            V2Addresses::IPv6(a) => (
                SocketAddr::new(IpAddr::V6(a.source_address), a.source_port),
                SocketAddr::new(IpAddr::V6(a.destination_address), a.destination_port),
            ),
            V2Addresses::Unspecified => return Err(ProxyError::Malformed(
                "v2: PROXY command with address family UNSPEC (only INET and INET6 are supported)"
                    .to_owned(),
            )),
            V2Addresses::Unix(_) => return Err(ProxyError::Malformed(
                "v2: PROXY command with address family UNIX (only INET and INET6 are supported)"
                    .to_owned(),
            )),
        };
    let mut vpce_id = None;
    for tlv in header.tlvs() {
        let tlv = tlv.map_err(|e| ProxyError::Malformed(format!("v2 TLV: {e}")))?;
        if tlv.kind == PP2_TYPE_AWS {
            if let Some((&PP2_SUBTYPE_AWS_VPCE_ID, id)) = tlv.value.split_first() {
                vpce_id = Some(id.escape_ascii().to_string());
            }
        }
    }
    Ok(Outcome::Proxied {
        client,
        destination: Some(destination),
        version: 2,
        vpce_id,
    })
}

/// `read_exact`, with end of stream reported as a connection closed mid-header.
async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<(), ProxyError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ProxyError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before the PROXY protocol header was complete",
        ))),
        Err(e) => Err(ProxyError::Io(e)),
    }
}

#[cfg(test)]
mod tests;
