//! The task's public address, by the first source that applies:
//!
//! 1. `DNS_IP`: explicit, wins over everything.
//! 2. EC2 `DescribeNetworkInterfaces`, filtered on the task ENI's private address (and zone),
//!    matched on its MAC address (private addresses repeat across VPCs), reading
//!    `Association.PublicIp`: authoritative.
//! 3. The echo URL (`DNS_IP_SOURCE=echo`, or in `auto` when the EC2 call is not permitted):
//!    one plain-text, globally routable IPv4 address, else refused. In a private subnet this is
//!    the NAT gateway's address, which is why it is only a fallback.
//!
//! IPv6 (`AAAA`) comes from the task metadata: on a dual-stack subnet the task's IPv6 address
//! is globally routable and needs no AWS call.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, NetworkInterface};
use tokio::time::Instant;
use tracing::warn;

use crate::config::{IpSource, Settings};
use crate::error::{Error, Result};
use crate::metadata::{error_chain, TaskMetadata};
use dns_sidecar_route53::address::{global_from, not_global, printable, RecordType};
use dns_sidecar_route53::retry::{self, Backoff};

/// One discovered address and where it came from (for the logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub ip: IpAddr,
    pub source: &'static str,
}

/// Find one address per configured record type.
pub async fn addresses(
    settings: &Settings,
    meta: Option<&TaskMetadata>,
    ec2: Option<&aws_sdk_ec2::Client>,
    http: &reqwest::Client,
    deadline: Instant,
) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for t in &settings.record_types {
        if let Some(ip) = settings
            .explicit_ips
            .iter()
            .find(|ip| RecordType::of(**ip) == *t)
        {
            out.push(Found {
                ip: *ip,
                source: "DNS_IP",
            });
            continue;
        }
        if !settings.explicit_ips.is_empty() {
            return Err(Error::config(format!(
                "DNS_IP has no {t} address but DNS_RECORD_TYPES asks for {t}; give both \
                 addresses (e.g. 203.0.113.10,2600:1f18::10) or drop {t}"
            )));
        }
        let found = match t {
            RecordType::A => public_ipv4(settings, meta, ec2, http, deadline).await?,
            RecordType::Aaaa => ipv6_from_metadata(meta)?,
        };
        out.push(found);
    }
    Ok(out)
}

fn ipv6_from_metadata(meta: Option<&TaskMetadata>) -> Result<Found> {
    let meta = meta.ok_or_else(|| {
        Error::config(
            "DNS_RECORD_TYPES has AAAA but ECS_CONTAINER_METADATA_URI_V4 is not set: the IPv6 \
             address comes from the task metadata (or give it in DNS_IP)",
        )
    })?;
    meta.ipv6
        .iter()
        .find(|ip| not_global(IpAddr::V6(**ip)).is_none())
        .map(|ip| Found {
            ip: IpAddr::V6(*ip),
            source: "task metadata (IPv6)",
        })
        .ok_or_else(|| {
            Error::runtime(format!(
                "DNS_RECORD_TYPES has AAAA but the task has no globally routable IPv6 address \
                 (metadata lists [{}]); use a dual-stack subnet, or DNS_RECORD_TYPES=A",
                meta.ipv6
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

async fn public_ipv4(
    settings: &Settings,
    meta: Option<&TaskMetadata>,
    ec2: Option<&aws_sdk_ec2::Client>,
    http: &reqwest::Client,
    deadline: Instant,
) -> Result<Found> {
    match settings.ip_source {
        IpSource::Echo => echo(http, &settings.echo_url, deadline).await,
        IpSource::Ecs | IpSource::Auto => {
            let (meta, ec2) = match (meta, ec2) {
                (Some(m), Some(c)) => (m, c),
                _ => {
                    return Err(Error::config(format!(
                        "DNS_IP_SOURCE={}: finding the public IP needs the ECS task metadata \
                         (ECS_CONTAINER_METADATA_URI_V4, set by ECS); outside ECS set DNS_IP \
                         or DNS_IP_SOURCE=echo",
                        if settings.ip_source == IpSource::Ecs {
                            "ecs"
                        } else {
                            "auto"
                        }
                    )))
                }
            };
            match from_ec2(ec2, meta, deadline).await {
                Ok(found) => Ok(found),
                Err(Ec2Error::NotPermitted(why)) if settings.ip_source == IpSource::Auto => {
                    warn!(event = "ec2_not_permitted", error = %why, echo_url = %settings.echo_url,
                          "ec2:DescribeNetworkInterfaces is not permitted: asking the echo URL \
                           instead; in a private subnet it answers with the NAT gateway's \
                           address, not the task's (grant the action to use the authoritative \
                           source)");
                    echo(http, &settings.echo_url, deadline).await
                }
                Err(Ec2Error::NotPermitted(why)) | Err(Ec2Error::Other(why)) => {
                    Err(Error::runtime(why))
                }
            }
        }
    }
}

enum Ec2Error {
    NotPermitted(String),
    Other(String),
}

async fn from_ec2(
    ec2: &aws_sdk_ec2::Client,
    meta: &TaskMetadata,
    deadline: Instant,
) -> std::result::Result<Found, Ec2Error> {
    let private = meta.private_ipv4.ok_or_else(|| {
        Ec2Error::Other(
            "the task metadata lists no IPv4 address for the task's network interface (is the \
             task in awsvpc network mode?)"
                .into(),
        )
    })?;
    let candidates = describe_interfaces(ec2, meta, private, deadline).await?;
    public_address(&candidates, meta, private)
}

/// `DescribeNetworkInterfaces` filtered on the task's private address (and zone), retried
/// within the deadline.
async fn describe_interfaces(
    ec2: &aws_sdk_ec2::Client,
    meta: &TaskMetadata,
    private: Ipv4Addr,
    deadline: Instant,
) -> std::result::Result<Vec<NetworkInterface>, Ec2Error> {
    let mut filters = vec![Filter::builder()
        .name("addresses.private-ip-address")
        .values(private.to_string())
        .build()];
    if let Some(az) = &meta.availability_zone {
        filters.push(
            Filter::builder()
                .name("availability-zone")
                .values(az)
                .build(),
        );
    }
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5), deadline);
    let out = retry::call("DescribeNetworkInterfaces", &mut backoff, || {
        ec2.describe_network_interfaces()
            .set_filters(Some(filters.clone()))
            .send()
    })
    .await
    .map_err(|f| {
        let msg = format!(
            "ec2:DescribeNetworkInterfaces for {private}{}: {}",
            f.code
                .as_deref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default(),
            f.detail
        );
        if f.is_access_denied() {
            Ec2Error::NotPermitted(format!(
                "{msg}; grant ec2:DescribeNetworkInterfaces to the task role (see \
                 ecs/iam-policy.json)"
            ))
        } else {
            Ec2Error::Other(msg)
        }
    })?;
    Ok(out.network_interfaces().to_vec())
}

/// The task's interface among `candidates` (by MAC address; private addresses repeat across
/// VPCs) and its associated public address, which must be globally routable.
fn public_address(
    candidates: &[NetworkInterface],
    meta: &TaskMetadata,
    private: Ipv4Addr,
) -> std::result::Result<Found, Ec2Error> {
    let eni = match &meta.mac {
        Some(mac) => candidates
            .iter()
            .find(|e| e.mac_address().is_some_and(|m| m.eq_ignore_ascii_case(mac))),
        None if candidates.len() == 1 => candidates.first(),
        None => None,
    }
    .ok_or_else(|| {
        Ec2Error::Other(format!(
            "no network interface with private address {private} and MAC {} among the {} \
             EC2 returned (is the sidecar in the same task and account as the interface?)",
            meta.mac.as_deref().unwrap_or("(none in the metadata)"),
            candidates.len()
        ))
    })?;
    let eni_id = eni.network_interface_id().unwrap_or("?");
    let public = eni
        .association()
        .and_then(|a| a.public_ip())
        .ok_or_else(|| {
            Ec2Error::Other(format!(
                "the task has no public IP: its network interface {eni_id} ({private}) has \
                 no public address association. Run the service with assignPublicIp ENABLED \
                 in a public subnet, or put it behind the NLB (then no record is needed)"
            ))
        })?;
    let ip = global_from(&format!("EC2 (interface {eni_id})"), public)
        .map_err(|e| Ec2Error::Other(e.message))?;
    Ok(Found {
        ip,
        source: "ec2:DescribeNetworkInterfaces",
    })
}

/// Ask the echo URL (3 tries, 5 s each, within the deadline) for one public IPv4 address.
pub async fn echo(http: &reqwest::Client, url: &reqwest::Url, deadline: Instant) -> Result<Found> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(2), deadline);
    let source = format!("the echo URL {url} (DNS_ECHO_URL)");
    loop {
        let attempt = async {
            let resp = http
                .get(url.clone())
                .timeout(backoff.attempt_timeout(Duration::from_secs(5)))
                .send()
                .await
                .map_err(|e| (true, error_chain(&e)))?;
            let status = resp.status();
            if !status.is_success() {
                return Err((status.is_server_error(), format!("HTTP {status}")));
            }
            let body = resp.bytes().await.map_err(|e| (true, error_chain(&e)))?;
            if body.len() > 1024 {
                return Err((
                    false,
                    format!("an answer of {} bytes, not one address", body.len()),
                ));
            }
            let text = String::from_utf8_lossy(&body).to_string();
            match global_from(&source, &text) {
                Ok(ip @ IpAddr::V4(_)) => Ok(ip),
                Ok(ip) => Err((
                    false,
                    format!("{ip}, an IPv6 address; the echo URL must answer with IPv4"),
                )),
                Err(e) => Err((false, e.message)),
            }
        }
        .await;
        match attempt {
            Ok(ip) => {
                return Ok(Found {
                    ip,
                    source: "DNS_ECHO_URL",
                })
            }
            Err((false, why)) => {
                return Err(Error::runtime(if why.starts_with(&source) {
                    why
                } else {
                    format!("{source}: {}", printable(&why))
                }))
            }
            Err((true, why)) => {
                if backoff.attempts() >= 3 || !backoff.wait().await {
                    return Err(Error::runtime(format!(
                        "{source}: {why} (after {} attempts)",
                        backoff.attempts()
                    )));
                }
            }
        }
    }
}
