//! The ECS task metadata endpoint v4: `GET ${ECS_CONTAINER_METADATA_URI_V4}/task`.
//!
//! It gives the cluster, task ARN, family, availability zone and the task network interface's
//! private IPv4 address, MAC address and (on dual-stack subnets) IPv6 address. It never holds
//! the public IPv4 address nor the network interface id: [`crate::discover`] finds those.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::template::Vars;
use dns_sidecar_route53::retry::Backoff;

/// What the sidecar uses from the task metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMetadata {
    /// Cluster name (the last part of the cluster ARN).
    pub cluster: String,
    pub task_arn: String,
    /// The task id: the last part of the task ARN.
    pub task_id: String,
    pub family: String,
    pub availability_zone: Option<String>,
    /// The region in the task ARN.
    pub region: Option<String>,
    pub private_ipv4: Option<Ipv4Addr>,
    pub mac: Option<String>,
    pub ipv6: Vec<Ipv6Addr>,
}

impl TaskMetadata {
    pub fn vars(&self, region: Option<&str>) -> Vars {
        Vars {
            region: region.map(str::to_string).or_else(|| self.region.clone()),
            az: self.availability_zone.clone(),
            cluster: Some(self.cluster.clone()),
            task_id: Some(self.task_id.clone()),
            family: Some(self.family.clone()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTask {
    cluster: String,
    #[serde(rename = "TaskARN")]
    task_arn: String,
    family: String,
    availability_zone: Option<String>,
    #[serde(default)]
    containers: Vec<RawContainer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    #[serde(default)]
    networks: Vec<RawNetwork>,
}

#[derive(Deserialize)]
struct RawNetwork {
    #[serde(rename = "NetworkMode", default)]
    network_mode: String,
    #[serde(rename = "IPv4Addresses", default)]
    ipv4: Vec<String>,
    #[serde(rename = "IPv6Addresses", default)]
    ipv6: Vec<String>,
    #[serde(rename = "MACAddress")]
    mac: Option<String>,
}

/// Parse the `/task` document.
pub fn parse(body: &str) -> Result<TaskMetadata> {
    let raw: RawTask = serde_json::from_str(body).map_err(|e| {
        Error::runtime(format!(
            "the ECS task metadata is not the expected JSON (Cluster, TaskARN, Family, \
             Containers[].Networks[]): {e}"
        ))
    })?;
    let task_id = last_part(&raw.task_arn);
    if task_id.is_empty() {
        return Err(Error::runtime(format!(
            "the ECS task metadata has TaskARN \"{}\" without a task id",
            raw.task_arn
        )));
    }
    let region = raw
        .task_arn
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .or_else(|| raw.availability_zone.as_deref().and_then(region_of_az));
    // In awsvpc mode every container shares the task's one network interface: take the first
    // awsvpc network that has an address.
    let network = raw
        .containers
        .iter()
        .flat_map(|c| c.networks.iter())
        .find(|n| n.network_mode == "awsvpc" && !n.ipv4.is_empty())
        .or_else(|| {
            raw.containers
                .iter()
                .flat_map(|c| c.networks.iter())
                .find(|n| !n.ipv4.is_empty())
        });
    let private_ipv4 = network
        .and_then(|n| n.ipv4.first())
        .map(|s| {
            s.parse::<Ipv4Addr>().map_err(|_| {
                Error::runtime(format!(
                    "the ECS task metadata has IPv4Addresses \"{}\", not an IPv4 address",
                    dns_sidecar_route53::address::printable(s)
                ))
            })
        })
        .transpose()?;
    let ipv6 = network
        .map(|n| n.ipv6.iter().filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_default();
    Ok(TaskMetadata {
        cluster: last_part(&raw.cluster).to_string(),
        task_id: task_id.to_string(),
        task_arn: raw.task_arn,
        family: raw.family,
        availability_zone: raw.availability_zone,
        region,
        private_ipv4,
        mac: network
            .and_then(|n| n.mac.clone())
            .map(|m| m.to_ascii_lowercase()),
        ipv6,
    })
}

fn last_part(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// `us-east-1d` -> `us-east-1`; `us-west-2-lax-1a` (a Local Zone) has no simple rule, so only
/// the standard form is handled (the task ARN's region is preferred anyway).
fn region_of_az(az: &str) -> Option<String> {
    let trimmed = az.trim_end_matches(|c: char| c.is_ascii_lowercase());
    (trimmed.len() < az.len() && trimmed.ends_with(|c: char| c.is_ascii_digit()))
        .then(|| trimmed.to_string())
}

/// Fetch and parse `${base}/task`, retrying connection failures and 5xx answers until
/// `deadline` (the endpoint can lag the container start by a moment).
pub async fn fetch(http: &reqwest::Client, base: &str, deadline: Instant) -> Result<TaskMetadata> {
    let url = format!("{base}/task");
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), deadline);
    let fail = |why: String| {
        Error::runtime(format!(
            "ECS_CONTAINER_METADATA_URI_V4: cannot read the task metadata at {url}: {why}"
        ))
    };
    loop {
        let attempt = http
            .get(&url)
            .timeout(backoff.attempt_timeout(Duration::from_secs(5)))
            .send()
            .await;
        let last = match attempt {
            Ok(resp) if resp.status().is_success() => {
                let body = resp.text().await.map_err(|e| fail(e.to_string()))?;
                return parse(&body).map_err(|e| e.context(format!("GET {url}")));
            }
            Ok(resp) if resp.status().is_server_error() => format!("HTTP {}", resp.status()),
            Ok(resp) => {
                return Err(fail(format!(
                    "HTTP {} (is the variable the one ECS set in this container?)",
                    resp.status()
                )))
            }
            Err(e) => error_chain(&e),
        };
        if !backoff.wait().await {
            return Err(fail(format!(
                "{last}; gave up after {} attempts",
                backoff.attempts()
            )));
        }
    }
}

/// An error and its sources on one line (reqwest's Display hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/ecs-task-metadata-v4-task.json");

    #[test]
    fn parses_the_documented_fargate_shape() {
        let m = parse(FIXTURE).unwrap();
        assert_eq!(m.cluster, "MyEmptyCluster");
        assert_eq!(m.task_id, "bfa2636268144d039771334145e490c5");
        assert_eq!(m.family, "sample-fargate");
        assert_eq!(m.availability_zone.as_deref(), Some("us-east-1d"));
        assert_eq!(m.region.as_deref(), Some("us-east-1"));
        assert_eq!(m.private_ipv4, Some(Ipv4Addr::new(172, 31, 42, 189)));
        assert_eq!(m.mac.as_deref(), Some("0e:98:9f:33:76:d3"));
        assert!(m.ipv6.is_empty());
        let v = m.vars(Some("eu-west-1"));
        assert_eq!(v.region.as_deref(), Some("eu-west-1"));
        assert_eq!(m.vars(None).region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn dual_stack_and_odd_documents() {
        let doc = FIXTURE.replace(
            "\"IPv4Addresses\": [\"172.31.42.189\"],",
            "\"IPv4Addresses\": [\"172.31.42.189\"], \"IPv6Addresses\": [\"2600:1f18:4a3:6901::5\"],",
        );
        assert_eq!(
            parse(&doc).unwrap().ipv6,
            vec!["2600:1f18:4a3:6901::5".parse::<Ipv6Addr>().unwrap()]
        );
        assert!(parse("{}")
            .unwrap_err()
            .message
            .contains("not the expected JSON"));
        assert!(parse("<html>").is_err());
        let bad_ip = FIXTURE.replace("172.31.42.189\"]", "banana\"]");
        assert!(parse(&bad_ip).unwrap_err().message.contains("banana"));
    }

    #[test]
    fn region_from_az() {
        assert_eq!(region_of_az("eu-west-1a").as_deref(), Some("eu-west-1"));
        assert_eq!(region_of_az("eu-west-1"), None);
    }
}
