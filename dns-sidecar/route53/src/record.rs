//! The records this task owns, and the two forms they take: a Route 53 change batch, and the
//! same batch as JSON for `--dry-run` (the shape of `aws route53 change-resource-record-sets
//! --change-batch`). Also the ownership rule: a record is ours only while it holds exactly our
//! address, under our name, type and set identifier.

use std::net::IpAddr;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use serde_json::{json, Value};

use crate::address::RecordType;
use crate::error::{Error, Result};

/// One record this task publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Lower case, without the trailing dot.
    pub name: String,
    pub rtype: RecordType,
    pub ttl: u32,
    pub value: IpAddr,
    /// Set with `DNS_SET_IDENTIFIER`: a multivalue-answer record.
    pub set_identifier: Option<String>,
}

impl OwnedRecord {
    fn rr_type(&self) -> RrType {
        match self.rtype {
            RecordType::A => RrType::A,
            RecordType::Aaaa => RrType::Aaaa,
        }
    }

    /// The record set to UPSERT.
    pub fn to_rrset(&self) -> Result<ResourceRecordSet> {
        let mut b = ResourceRecordSet::builder()
            .name(format!("{}.", self.name))
            .r#type(self.rr_type())
            .ttl(i64::from(self.ttl))
            .resource_records(
                ResourceRecord::builder()
                    .value(self.value.to_string())
                    .build()
                    .map_err(|e| Error::runtime(format!("building the record: {e}")))?,
            );
        if let Some(id) = &self.set_identifier {
            b = b.set_identifier(id).multi_value_answer(true);
        }
        b.build()
            .map_err(|e| Error::runtime(format!("building the record set: {e}")))
    }

    pub fn to_json(&self) -> Value {
        let mut rrset = json!({
            "Name": format!("{}.", self.name),
            "Type": self.rtype.as_str(),
            "TTL": self.ttl,
            "ResourceRecords": [{"Value": self.value.to_string()}],
        });
        if let Some(id) = &self.set_identifier {
            rrset["SetIdentifier"] = json!(id);
            rrset["MultiValueAnswer"] = json!(true);
        }
        rrset
    }

    /// One line for logs: `jumpbox.eu-west-1.example.com A 52.95.110.1 (set abc)`.
    pub fn describe(&self) -> String {
        match &self.set_identifier {
            Some(id) => format!("{} {} {} (set {id})", self.name, self.rtype, self.value),
            None => format!("{} {} {}", self.name, self.rtype, self.value),
        }
    }
}

/// The comment Route 53 stores with the change.
pub fn comment(task: Option<&str>) -> String {
    match task {
        Some(t) => format!("dns-sidecar: task {t}"),
        None => "dns-sidecar".to_string(),
    }
}

/// A change batch of `action` for every record, from the record sets given (`UPSERT` takes
/// ours; `DELETE` takes exactly what was read back, as Route 53 requires).
pub fn change_batch(
    action: ChangeAction,
    rrsets: Vec<ResourceRecordSet>,
    comment: &str,
) -> Result<ChangeBatch> {
    let mut changes = Vec::new();
    for set in rrsets {
        changes.push(
            Change::builder()
                .action(action.clone())
                .resource_record_set(set)
                .build()
                .map_err(|e| Error::runtime(format!("building the change: {e}")))?,
        );
    }
    ChangeBatch::builder()
        .set_changes(Some(changes))
        .comment(comment)
        .build()
        .map_err(|e| Error::runtime(format!("building the change batch: {e}")))
}

/// The `--dry-run` output: what an UPSERT would send.
pub fn dry_run_json(zone_id: &str, records: &[OwnedRecord], comment: &str) -> Value {
    json!({
        "HostedZoneId": zone_id,
        "ChangeBatch": {
            "Comment": comment,
            "Changes": records.iter().map(|r| json!({
                "Action": "UPSERT",
                "ResourceRecordSet": r.to_json(),
            })).collect::<Vec<_>>(),
        }
    })
}

/// Route 53 returns names with a trailing dot, and escapes some octets (`\052` for `*`).
pub fn same_name(route53_name: &str, ours: &str) -> bool {
    route53_name
        .trim_end_matches('.')
        .eq_ignore_ascii_case(ours)
}

/// Whether `found` is the record set `ours` refers to (same name, type, set identifier).
pub fn same_set(found: &ResourceRecordSet, ours: &OwnedRecord) -> bool {
    same_name(found.name(), &ours.name)
        && found.r#type().as_str() == ours.rtype.as_str()
        && found.set_identifier() == ours.set_identifier.as_deref()
}

/// What became of one of our records.
#[derive(Debug, Clone, PartialEq)]
pub enum Ownership {
    /// Still exactly our address: this record set may be deleted.
    Ours(Box<ResourceRecordSet>),
    /// No record set of that name, type and identifier.
    Gone,
    /// The record set now holds something else (another task's or a person's change).
    Changed(String),
}

/// Judge `found` (the record set read back, if any) against what we published.
pub fn ownership(found: Option<&ResourceRecordSet>, ours: &OwnedRecord) -> Ownership {
    let Some(set) = found else {
        return Ownership::Gone;
    };
    if set.alias_target().is_some() {
        return Ownership::Changed("it is now an alias record".into());
    }
    let values: Vec<&str> = set.resource_records().iter().map(|r| r.value()).collect();
    let ours_value = ours.value.to_string();
    let holds_ours =
        values.len() == 1 && values[0].parse::<IpAddr>().is_ok_and(|ip| ip == ours.value);
    if holds_ours {
        Ownership::Ours(Box::new(set.clone()))
    } else {
        Ownership::Changed(format!(
            "it now holds [{}], not {ours_value}",
            values.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(set: Option<&str>) -> OwnedRecord {
        OwnedRecord {
            name: "jumpbox.eu-west-1.example.com".into(),
            rtype: RecordType::A,
            ttl: 60,
            value: "52.95.110.1".parse().unwrap(),
            set_identifier: set.map(str::to_string),
        }
    }

    #[test]
    fn dry_run_json_is_the_cli_change_batch_shape() {
        let v = dry_run_json("Z1", &[rec(Some("task1"))], "dns-sidecar: task task1");
        assert_eq!(
            v,
            json!({
                "HostedZoneId": "Z1",
                "ChangeBatch": {
                    "Comment": "dns-sidecar: task task1",
                    "Changes": [{
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": "jumpbox.eu-west-1.example.com.",
                            "Type": "A",
                            "TTL": 60,
                            "SetIdentifier": "task1",
                            "MultiValueAnswer": true,
                            "ResourceRecords": [{"Value": "52.95.110.1"}]
                        }
                    }]
                }
            })
        );
        assert!(rec(None).to_json().get("SetIdentifier").is_none());
    }

    #[test]
    fn ownership_requires_exactly_our_value() {
        let ours = rec(None);
        let set = ours.to_rrset().unwrap();
        assert!(same_set(&set, &ours));
        assert!(matches!(ownership(Some(&set), &ours), Ownership::Ours(_)));
        assert_eq!(ownership(None, &ours), Ownership::Gone);
        let mut other = ours.clone();
        other.value = "52.95.110.9".parse().unwrap();
        let changed = ownership(Some(&other.to_rrset().unwrap()), &ours);
        assert!(
            matches!(&changed, Ownership::Changed(m) if m.contains("52.95.110.9")),
            "{changed:?}"
        );
        let two = ResourceRecordSet::builder()
            .name("jumpbox.eu-west-1.example.com.")
            .r#type(RrType::A)
            .ttl(60)
            .resource_records(
                ResourceRecord::builder()
                    .value("52.95.110.1")
                    .build()
                    .unwrap(),
            )
            .resource_records(
                ResourceRecord::builder()
                    .value("52.95.110.2")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert!(matches!(
            ownership(Some(&two), &ours),
            Ownership::Changed(_)
        ));
        assert!(!same_set(&set, &rec(Some("t"))));
        assert!(same_name(
            "JumpBox.EU-West-1.example.com.",
            "jumpbox.eu-west-1.example.com"
        ));
    }
}
