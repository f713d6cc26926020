//! Temporary stub.
use std::net::SocketAddr;
use std::time::Duration;
#[derive(Debug)]
pub struct DestinationPolicy;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Prohibited(String),
    Unresolvable(String),
}
#[derive(Debug)]
pub struct PolicyError(String);
impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl DestinationPolicy {
    pub fn parse(_s: &str) -> Result<Self, PolicyError> {
        Ok(DestinationPolicy)
    }
    pub fn describe(&self) -> String {
        "stub".into()
    }
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        _t: Duration,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        tokio::net::lookup_host((host, port))
            .await
            .map(|i| i.collect())
            .map_err(|e| Refusal::Unresolvable(e.to_string()))
    }
}
