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
use crate::retry::{self, Backoff};
use crate::route53::Zone;
use crate::template::{Template, Vars};

/// The task id a set identifier names, if it follows `prefix{task_id}suffix`.
pub fn task_of<'a>(id: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .filter(|t| !t.is_empty())
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
    types: &[crate::address::RecordType],
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
        let sets = vec![
            set("prod-running1"),
            set("prod-gone1"),
            set("prod-me"),
            set("staging-gone2"),
            set("manual"),
        ];
        let running: HashSet<String> = ["running1".to_string()].into();
        let stale = stale(&sets, &t, &vars, &running, "me").unwrap();
        let ids: Vec<_> = stale.iter().map(|s| s.set_identifier().unwrap()).collect();
        assert_eq!(ids, vec!["prod-gone1"]);
        assert_eq!(task_of("x-abc-y", "x-", "-y"), Some("abc"));
        assert_eq!(task_of("x--y", "x-", "-y"), None);
    }
}
