//! Route 53 calls: UPSERT our records, wait for `INSYNC`, read them back, and delete them only
//! while they still hold our address. Every call goes through [`crate::retry::call`]; errors
//! that will not go away are turned into messages naming the cause and the IAM action.

use std::time::Duration;

use aws_sdk_route53::types::{ChangeAction, ChangeStatus, ResourceRecordSet, RrType};
use aws_sdk_route53::Client;
use tokio::time::Instant;
use tracing::info;

use crate::address::RecordType;
use crate::error::{Error, Result};
use crate::record::{change_batch, ownership, same_name, same_set, OwnedRecord, Ownership};
use crate::retry::{self, AwsFailure, Backoff};

/// A hosted zone and the client to reach it.
#[derive(Debug, Clone)]
pub struct Zone {
    client: Client,
    zone_id: String,
    /// First delay between retries of a failed call (doubles up to `retry_max`).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// First delay between `GetChange` polls (doubles up to `poll_max`).
    pub poll_base: Duration,
    pub poll_max: Duration,
}

/// Where a change stands after [`Zone::poll_insync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insync {
    /// `INSYNC` after this long.
    Done(Duration),
    /// Not `INSYNC` when the deadline passed: its last status, and how long we polled.
    NotYet { status: String, waited: Duration },
}

/// What the clean-up did with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Cleanup {
    Deleted(OwnedRecord),
    /// Already gone: nothing to do.
    Gone(OwnedRecord),
    /// Someone else's now: left as it is.
    LeftUntouched(OwnedRecord, String),
}

impl Zone {
    pub fn new(client: Client, zone_id: impl Into<String>) -> Self {
        Zone {
            client,
            zone_id: zone_id.into(),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(5),
            poll_base: Duration::from_secs(1),
            poll_max: Duration::from_secs(10),
        }
    }

    pub fn id(&self) -> &str {
        &self.zone_id
    }

    fn backoff(&self, deadline: Instant) -> Backoff {
        Backoff::new(self.retry_base, self.retry_max, deadline)
    }

    /// Send one change batch; returns the change id.
    async fn change(
        &self,
        action: ChangeAction,
        sets: Vec<ResourceRecordSet>,
        comment: &str,
        deadline: Instant,
    ) -> Result<String> {
        let batch = change_batch(action.clone(), sets, comment)?;
        let out = retry::call(
            "ChangeResourceRecordSets",
            &mut self.backoff(deadline),
            || {
                self.client
                    .change_resource_record_sets()
                    .hosted_zone_id(&self.zone_id)
                    .change_batch(batch.clone())
                    .send()
            },
        )
        .await
        .map_err(|f| self.explain("ChangeResourceRecordSets", action.as_str(), f))?;
        Ok(out
            .change_info()
            .map(|c| c.id().to_string())
            .unwrap_or_default())
    }

    /// UPSERT `records` in one atomic batch; returns the change id.
    pub async fn upsert(
        &self,
        records: &[OwnedRecord],
        comment: &str,
        deadline: Instant,
    ) -> Result<String> {
        let sets = records
            .iter()
            .map(OwnedRecord::to_rrset)
            .collect::<Result<Vec<_>>>()?;
        self.change(ChangeAction::Upsert, sets, comment, deadline)
            .await
    }

    /// Poll `GetChange` until `INSYNC`; returns how long it took. Still pending at the
    /// deadline is an error naming DNS_TIMEOUT (see [`Zone::poll_insync`] for the tolerant form).
    pub async fn wait_insync(&self, change_id: &str, deadline: Instant) -> Result<Duration> {
        match self.poll_insync(change_id, deadline).await? {
            Insync::Done(took) => Ok(took),
            Insync::NotYet { status, waited } => Err(Error::runtime(format!(
                "Route 53 change {change_id} was still {status} when the deadline (DNS_TIMEOUT) \
                 passed after {:.1}s; the record was sent and will normally propagate, \
                 raise DNS_TIMEOUT or set DNS_WAIT_INSYNC=false",
                waited.as_secs_f64()
            ))),
        }
    }

    /// Poll `GetChange` until `INSYNC` or the deadline. A deadline passed while the change is
    /// still pending, or while `GetChange` keeps failing in a retryable way (throttling, 5xx),
    /// is [`Insync::NotYet`], not an error: Route 53 accepted the change. Errors that will not
    /// go away (access denied, unknown change) are errors.
    pub async fn poll_insync(&self, change_id: &str, deadline: Instant) -> Result<Insync> {
        let started = Instant::now();
        let mut polls = Backoff::new(self.poll_base, self.poll_max, deadline);
        loop {
            let status = match retry::call("GetChange", &mut self.backoff(deadline), || {
                self.client.get_change().id(change_id).send()
            })
            .await
            {
                Ok(out) => out.change_info().map(|c| c.status().clone()),
                Err(f) if f.gave_up => {
                    return Ok(Insync::NotYet {
                        status: format!("unknown (GetChange kept failing: {})", f.detail),
                        waited: started.elapsed(),
                    })
                }
                Err(f) => return Err(self.explain("GetChange", change_id, f)),
            };
            if status == Some(ChangeStatus::Insync) {
                return Ok(Insync::Done(started.elapsed()));
            }
            if !polls.wait().await {
                return Ok(Insync::NotYet {
                    status: status
                        .as_ref()
                        .map_or("unknown", |s| s.as_str())
                        .to_string(),
                    waited: started.elapsed(),
                });
            }
        }
    }

    /// Every record set named `name` of `types` (all set identifiers), following pages.
    pub async fn list(
        &self,
        name: &str,
        types: &[RecordType],
        deadline: Instant,
    ) -> Result<Vec<ResourceRecordSet>> {
        let mut found = Vec::new();
        for t in types {
            let rr_type = match t {
                RecordType::A => RrType::A,
                RecordType::Aaaa => RrType::Aaaa,
            };
            let mut start_id: Option<String> = None;
            let mut start_name = format!("{name}.");
            let mut start_type = rr_type.clone();
            loop {
                let out = retry::call(
                    "ListResourceRecordSets",
                    &mut self.backoff(deadline),
                    || {
                        self.client
                            .list_resource_record_sets()
                            .hosted_zone_id(&self.zone_id)
                            .start_record_name(&start_name)
                            .start_record_type(start_type.clone())
                            .set_start_record_identifier(start_id.clone())
                            .max_items(100)
                            .send()
                    },
                )
                .await
                .map_err(|f| self.explain("ListResourceRecordSets", name, f))?;
                let mut past = false;
                for set in out.resource_record_sets() {
                    if same_name(set.name(), name) && *set.r#type() == rr_type {
                        found.push(set.clone());
                    } else {
                        past = true;
                    }
                }
                if past || !out.is_truncated() {
                    break;
                }
                match (out.next_record_name(), out.next_record_type()) {
                    (Some(n), Some(t)) if same_name(n, name) && *t == rr_type => {
                        start_name = n.to_string();
                        start_type = t.clone();
                        start_id = out.next_record_identifier().map(str::to_string);
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    /// Read back the record set `rec` refers to, if it exists.
    pub async fn read(
        &self,
        rec: &OwnedRecord,
        deadline: Instant,
    ) -> Result<Option<ResourceRecordSet>> {
        let sets = self.list(&rec.name, &[rec.rtype], deadline).await?;
        Ok(sets.into_iter().find(|s| same_set(s, rec)))
    }

    /// Ownership of each record now.
    pub async fn check(
        &self,
        records: &[OwnedRecord],
        deadline: Instant,
    ) -> Result<Vec<Ownership>> {
        let mut out = Vec::new();
        for rec in records {
            let found = self.read(rec, deadline).await?;
            out.push(ownership(found.as_ref(), rec));
        }
        Ok(out)
    }

    /// Delete each record that still holds exactly our address, using the record set as read
    /// (Route 53 deletes only on an exact match). A record that changed between the read and
    /// the delete makes Route 53 refuse; it is read again and judged once more.
    pub async fn delete_if_ours(
        &self,
        records: &[OwnedRecord],
        comment: &str,
        deadline: Instant,
    ) -> Result<Vec<Cleanup>> {
        let mut results = Vec::new();
        for rec in records {
            let mut tries = 0;
            let outcome = loop {
                tries += 1;
                let found = self.read(rec, deadline).await?;
                match ownership(found.as_ref(), rec) {
                    Ownership::Gone => break Cleanup::Gone(rec.clone()),
                    Ownership::Changed(why) => break Cleanup::LeftUntouched(rec.clone(), why),
                    Ownership::Ours(set) => {
                        match self
                            .change(ChangeAction::Delete, vec![*set], comment, deadline)
                            .await
                        {
                            Ok(_) => break Cleanup::Deleted(rec.clone()),
                            Err(e) if tries < 3 && e.message.contains("InvalidChangeBatch") => {
                                info!(event = "delete_raced", record = %rec.describe(), error = %e,
                                      "the record changed while being deleted; reading it again");
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            };
            results.push(outcome);
        }
        Ok(results)
    }

    /// Delete record sets exactly as read (used by prune).
    pub async fn delete_sets(
        &self,
        sets: Vec<ResourceRecordSet>,
        comment: &str,
        deadline: Instant,
    ) -> Result<String> {
        self.change(ChangeAction::Delete, sets, comment, deadline)
            .await
    }

    /// A failed call as a message a person can act on.
    fn explain(&self, action: &str, what: &str, f: AwsFailure) -> Error {
        let zone = &self.zone_id;
        let code = f.code();
        let hint = if f.is_access_denied() {
            format!(
                "the task role is not allowed route53:{action} (add it for \
                 arn:aws:route53:::hostedzone/{zone}, see ecs/iam-policy.json)"
            )
        } else if code == "NoSuchHostedZone" {
            format!(
                "DNS_HOSTED_ZONE_ID={zone} names no hosted zone this account can see; check \
                 the id with `aws route53 list-hosted-zones`"
            )
        } else if code == "InvalidChangeBatch" {
            "Route 53 refused the change batch (is DNS_RECORD_NAME inside the hosted zone's \
             domain, and does no CNAME or record of another routing policy hold the name?)"
                .to_string()
        } else if code == "InvalidInput" {
            "Route 53 rejected the request as invalid".to_string()
        } else if matches!(
            code,
            "InvalidClientTokenId"
                | "UnrecognizedClientException"
                | "ExpiredToken"
                | "SignatureDoesNotMatch"
        ) {
            "the AWS credentials were refused (in ECS: the task role; elsewhere: the \
             environment or profile)"
                .to_string()
        } else if f.gave_up {
            format!(
                "still failing after {} attempts when the deadline passed (DNS_TIMEOUT / \
                 DNS_STOP_TIMEOUT)",
                f.attempts
            )
        } else {
            "the call failed".to_string()
        };
        let code_part = if code.is_empty() {
            String::new()
        } else {
            format!(" [{code}]")
        };
        Error::runtime(format!(
            "route53:{action} ({what}){code_part}: {hint}: {}",
            f.detail
        ))
    }
}
