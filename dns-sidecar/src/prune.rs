//! `dns-sidecar prune`: remove multivalue records that outlived their task.
//!
//! A task killed without SIGTERM (host failure, the whole task OOM-killed) never deletes its
//! record. Each multivalue record's set identifier names its task (`DNS_SET_IDENTIFIER` with
//! `{task_id}`), so a record whose task is not among the cluster's running tasks
//! (`ecs:ListTasks`) is stale. Records whose identifier does not match our template are
//! someone else's and are never touched; neither is this task's own record.

use std::collections::HashSet;

use aws_sdk_route53::types::ResourceRecordSet;
use tokio::time::Instant;
use tracing::info;

use crate::error::{Error, Result};
use crate::template::{Template, Vars};
use dns_sidecar_route53::retry::{self, Backoff};
use dns_sidecar_route53::route53::Zone;

/// The task id a set identifier names, if it follows `prefix{task_id}suffix` and the middle
/// looks like an ECS task id (32 hex digits, or the older UUID form): a record someone added by
/// hand under the same name (`manual`, `blue`) is never taken for a stale task's.
pub fn task_of<'a>(id: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .filter(|t| looks_like_task_id(t))
}

fn looks_like_task_id(t: &str) -> bool {
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    match t.len() {
        32 => hex(t),
        36 => {
            let parts: Vec<&str> = t.split('-').collect();
            parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| hex(p))
        }
        _ => false,
    }
}

/// The record sets among `sets` whose task is not running (and is not `own_task`).
pub fn stale<'a>(
    sets: &'a [ResourceRecordSet],
    template: &Template,
    vars: &Vars,
    running: &HashSet<String>,
    own_task: &str,
) -> Result<Vec<&'a ResourceRecordSet>> {
    let (prefix, suffix) = template.around_task_id(vars)?;
    Ok(sets
        .iter()
        .filter(|s| {
            s.set_identifier()
                .and_then(|id| task_of(id, &prefix, &suffix))
                .is_some_and(|task| task != own_task && !running.contains(task))
        })
        .collect())
}

/// The ids of the cluster's tasks that are running or about to (every page).
pub async fn running_tasks(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    deadline: Instant,
) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut backoff = Backoff::new(
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(5),
            deadline,
        );
        let out = retry::call("ListTasks", &mut backoff, || {
            ecs.list_tasks()
                .cluster(cluster)
                .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
                .set_next_token(token.clone())
                .send()
        })
        .await
        .map_err(|f| {
            let hint = if f.is_access_denied() {
                "; grant ecs:ListTasks on the cluster to the task role (needed only for prune)"
            } else {
                ""
            };
            Error::runtime(format!(
                "ecs:ListTasks for cluster {cluster}{hint}: {}",
                f.detail
            ))
        })?;
        for arn in out.task_arns() {
            ids.insert(arn.rsplit('/').next().unwrap_or(arn).to_string());
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(ids)
}

/// Find and delete stale records; returns how many were deleted.
#[allow(clippy::too_many_arguments)]
pub async fn prune(
    zone: &Zone,
    ecs: &aws_sdk_ecs::Client,
    name: &str,
    types: &[dns_sidecar_route53::address::RecordType],
    template: &Template,
    vars: &Vars,
    cluster: &str,
    own_task: &str,
    deadline: Instant,
) -> Result<usize> {
    // Read the records before the task list: a task that starts in between has its record
    // written after our read, so it cannot be taken for stale.
    let sets = zone.list(name, types, deadline).await?;
    let running = running_tasks(ecs, cluster, deadline).await?;
    let stale = stale(&sets, template, vars, &running, own_task)?;
    if stale.is_empty() {
        info!(
            event = "prune",
            name,
            checked = sets.len(),
            deleted = 0,
            "no stale records"
        );
        return Ok(0);
    }
    let ids: Vec<String> = stale
        .iter()
        .filter_map(|s| s.set_identifier().map(str::to_string))
        .collect();
    let count = stale.len();
    zone.delete_sets(
        stale.into_iter().cloned().collect(),
        "dns-sidecar prune: tasks no longer running",
        deadline,
    )
    .await?;
    info!(event = "prune", name, checked = sets.len(), deleted = count,
          set_identifiers = ?ids, "deleted records of tasks that no longer run");
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_route53::types::{ResourceRecord, RrType};

    fn set(id: &str) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name("jumpbox.example.com.")
            .r#type(RrType::A)
            .ttl(60)
            .set_identifier(id)
            .multi_value_answer(true)
            .resource_records(
                ResourceRecord::builder()
                    .value("52.95.110.1")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn only_records_of_gone_tasks_matching_the_template_are_stale() {
        let t = Template::parse("DNS_SET_IDENTIFIER", "{cluster}-{task_id}").unwrap();
        let vars = Vars {
            cluster: Some("prod".into()),
            ..Vars::default()
        };
        let running_id = "0123456789abcdef0123456789abcdef";
        let gone_id = "fedcba9876543210fedcba9876543210";
        let me = "00000000000000000000000000000001";
        let sets = vec![
            set(&format!("prod-{running_id}")),
            set(&format!("prod-{gone_id}")),
            set(&format!("prod-{me}")),
            set(&format!("staging-{gone_id}")),
            set("prod-manual"),
            set("manual"),
        ];
        let running: HashSet<String> = [running_id.to_string()].into();
        let stale = stale(&sets, &t, &vars, &running, me).unwrap();
        let ids: Vec<_> = stale.iter().map(|s| s.set_identifier().unwrap()).collect();
        assert_eq!(ids, vec![format!("prod-{gone_id}")]);
        assert_eq!(
            task_of(&format!("x-{gone_id}-y"), "x-", "-y"),
            Some(gone_id)
        );
        assert_eq!(task_of("x--y", "x-", "-y"), None);
        let uuid = "bfa26362-6814-4d03-9771-334145e490c5";
        assert_eq!(task_of(uuid, "", ""), Some(uuid));
        assert_eq!(task_of("not-a-task-id", "", ""), None);
    }
}
