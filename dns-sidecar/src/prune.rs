//! Which values of the shared name are stale, and their removal: `dns-sidecar prune`,
//! `DNS_PRUNE` at start, and each periodic reconcile ([`crate::reconcile`]).
//!
//! A task killed without SIGTERM (host failure, OOM, a clean-up that outlasted
//! DNS_STOP_TIMEOUT) never deletes its value. Each multivalue record's set identifier names its
//! cluster and task (`DNS_SET_IDENTIFIER`, e.g. `{cluster}/{task_id}`), so the rules are:
//! - a value is ours to judge only when its set identifier is THIS template rendered for THIS
//!   cluster (and region) around a well-formed task id: another cluster's or region's values,
//!   whose tasks our ListTasks cannot see, and values added by hand are never touched;
//! - it is stale when its task is not among the cluster's tasks whose desired status is
//!   RUNNING (that includes tasks still PROVISIONING, PENDING or ACTIVATING);
//! - this task's own value is never stale, and a task list that does not include this task
//!   itself is not trusted (wrong cluster, or ECS not yet consistent): nothing is deleted;
//! - the record sets are read before the task list, so a task that starts in between writes
//!   its value after our read and cannot be taken for stale.

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

/// Whether prune and reconcile can judge values under these templates: the set identifier
/// holds `{task_id}` and `{cluster}` (nothing else task-specific), and the set identifier or
/// the record name holds `{region}` (the same cluster name in another region must not share
/// both). Checked at start, so a template that cannot be judged safely fails with its reason.
pub fn check_templates(record_name: &Template, set_identifier: &Template) -> Result<()> {
    let probe = Vars {
        region: Some("r".into()),
        az: Some("a".into()),
        cluster: Some("c".into()),
        task_id: Some("t".into()),
        family: Some("f".into()),
    };
    set_identifier.around_task_id(&probe)?;
    let has_region = |t: &Template| t.uses().any(|v| v == "region");
    if !has_region(record_name) && !has_region(set_identifier) {
        return Err(Error::config(format!(
            "DNS_SET_IDENTIFIER: neither \"{}\" nor DNS_RECORD_NAME \"{}\" holds {{region}}, \
             so a cluster of the same name in another region would share the name and its live \
             values would look stale here; add {{region}} to either (e.g. \
             {{region}}/{{cluster}}/{{task_id}})",
            set_identifier.source(),
            record_name.source()
        )));
    }
    Ok(())
}

/// The record sets among `sets` that are ours to judge and whose task is not running (and is
/// not `own_task`). An error when `running` does not hold `own_task`: that list cannot be
/// trusted to say which tasks are gone.
pub fn stale<'a>(
    sets: &'a [ResourceRecordSet],
    template: &Template,
    vars: &Vars,
    running: &HashSet<String>,
    own_task: &str,
) -> Result<Vec<&'a ResourceRecordSet>> {
    let (prefix, suffix) = template.around_task_id(vars)?;
    if !running.contains(own_task) {
        return Err(Error::runtime(format!(
            "ecs:ListTasks for this cluster ({} tasks) does not list this task ({own_task}): \
             not trusting it to say which tasks are gone; nothing deleted",
            running.len()
        )));
    }
    Ok(ours(sets, &prefix, &suffix)
        .filter(|(_, task)| *task != own_task && !running.contains(*task))
        .map(|(set, _)| set)
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
                "; grant ecs:ListTasks on the cluster to the task role (needed for prune and \
                 reconcile; or set DNS_RECONCILE_INTERVAL=0)"
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

/// What one prune found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Record sets of the name (every cluster's, by hand or not).
    pub checked: usize,
    /// Set identifiers of the stale values deleted.
    pub deleted: Vec<String>,
    /// This cluster's tasks whose desired status is RUNNING.
    pub running: usize,
    /// Of those, the tasks with a value under the name: the jumpboxes users can reach by it.
    pub published: usize,
}

/// The running tasks of this cluster that have a value among `sets` (a task with A and AAAA
/// values counts once).
pub fn published(
    sets: &[ResourceRecordSet],
    template: &Template,
    vars: &Vars,
    running: &HashSet<String>,
) -> Result<usize> {
    let (prefix, suffix) = template.around_task_id(vars)?;
    let tasks: HashSet<&str> = ours(sets, &prefix, &suffix)
        .map(|(_, task)| task)
        .filter(|task| running.contains(*task))
        .collect();
    Ok(tasks.len())
}

/// The record sets of this cluster (`prefix{task_id}suffix`), each with the task it names.
fn ours<'a, 'p>(
    sets: &'a [ResourceRecordSet],
    prefix: &'p str,
    suffix: &'p str,
) -> impl Iterator<Item = (&'a ResourceRecordSet, &'a str)> + use<'a, 'p> {
    sets.iter().filter_map(move |s| {
        s.set_identifier()
            .and_then(|id| task_of(id, prefix, suffix))
            .map(|task| (s, task))
    })
}

/// Where and as whom to prune: the name, its types, our template and task.
pub struct Scope<'a> {
    pub zone: &'a Zone,
    pub ecs: &'a aws_sdk_ecs::Client,
    pub name: &'a str,
    pub types: &'a [dns_sidecar_route53::address::RecordType],
    pub template: &'a Template,
    pub vars: &'a Vars,
    pub cluster: &'a str,
    pub own_task: &'a str,
}

/// Find and delete this cluster's stale values, one change each: a value another sidecar
/// deleted first (Route 53 refuses the DELETE) is skipped, not an error.
pub async fn prune(scope: &Scope<'_>, deadline: Instant) -> Result<Pruned> {
    // Read the records before the task list: a task that starts in between has its record
    // written after our read, so it cannot be taken for stale.
    let sets = scope.zone.list(scope.name, scope.types, deadline).await?;
    let running = running_tasks(scope.ecs, scope.cluster, deadline).await?;
    let stale = stale(&sets, scope.template, scope.vars, &running, scope.own_task)?;
    let published = published(&sets, scope.template, scope.vars, &running)?;
    let mut deleted = Vec::new();
    for set in stale {
        let id = set.set_identifier().unwrap_or_default().to_string();
        let comment = "dns-sidecar prune: task no longer running";
        match scope
            .zone
            .delete_sets(vec![set.clone()], comment, deadline)
            .await
        {
            Ok(_) => deleted.push(id),
            Err(e) if e.message.contains("[InvalidChangeBatch]") => {
                info!(event = "prune_raced", set_identifier = %id, error = %e,
                      "the stale value changed or went away before our DELETE; left to the next run")
            }
            Err(e) => return Err(Error::from(e).context("deleting a stale value")),
        }
    }
    Ok(Pruned {
        checked: sets.len(),
        deleted,
        running: running.len(),
        published,
    })
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

    const RUNNING: &str = "0123456789abcdef0123456789abcdef";
    const GONE: &str = "fedcba9876543210fedcba9876543210";
    const ME: &str = "00000000000000000000000000000001";

    fn prod() -> Vars {
        Vars {
            region: Some("eu-west-1".into()),
            cluster: Some("prod".into()),
            ..Vars::default()
        }
    }

    fn stale_ids(sets: &[ResourceRecordSet], template: &str, running: &[&str]) -> Vec<String> {
        let t = Template::parse("DNS_SET_IDENTIFIER", template).unwrap();
        let running: HashSet<String> = running.iter().map(|s| s.to_string()).collect();
        stale(sets, &t, &prod(), &running, ME)
            .unwrap()
            .iter()
            .map(|s| s.set_identifier().unwrap().to_string())
            .collect()
    }

    #[test]
    fn only_this_clusters_values_of_gone_tasks_are_stale() {
        let sets = vec![
            set(&format!("prod/{RUNNING}")),
            set(&format!("prod/{GONE}")),
            set(&format!("prod/{ME}")),
            // Another cluster's value: its task is not in OUR list, but it is not ours to judge.
            set(&format!("staging/{GONE}")),
            set(&format!("prod-2/{GONE}")),
            // A value of the old `{task_id}` form, and values added by hand.
            set(GONE),
            set("prod/manual"),
            set("manual"),
        ];
        assert_eq!(
            stale_ids(&sets, "{cluster}/{task_id}", &[RUNNING, ME]),
            vec![format!("prod/{GONE}")]
        );
        // The same values seen from cluster `staging` (whose list holds neither task).
        let t = Template::parse("DNS_SET_IDENTIFIER", "{cluster}/{task_id}").unwrap();
        let staging = Vars {
            cluster: Some("staging".into()),
            ..prod()
        };
        let running: HashSet<String> = [ME.to_string()].into();
        let ids: Vec<_> = stale(&sets, &t, &staging, &running, ME)
            .unwrap()
            .iter()
            .map(|s| s.set_identifier().unwrap().to_string())
            .collect();
        assert_eq!(ids, vec![format!("staging/{GONE}")]);
    }

    #[test]
    fn region_in_the_template_keeps_other_regions_out() {
        let sets = vec![
            set(&format!("eu-west-1/prod/{GONE}")),
            set(&format!("us-east-1/prod/{GONE}")),
        ];
        assert_eq!(
            stale_ids(&sets, "{region}/{cluster}/{task_id}", &[ME]),
            vec![format!("eu-west-1/prod/{GONE}")]
        );
    }

    #[test]
    fn published_counts_running_tasks_of_this_cluster_with_a_value_once() {
        let t = Template::parse("DNS_SET_IDENTIFIER", "{cluster}/{task_id}").unwrap();
        let sets = vec![
            set(&format!("prod/{ME}")),
            set(&format!("prod/{RUNNING}")),
            set(&format!("prod/{RUNNING}")), // its AAAA value: still one task
            set(&format!("prod/{GONE}")),    // not running: not reachable for long
            set(&format!("staging/{RUNNING}")),
            set("prod/manual"),
        ];
        let running: HashSet<String> = [ME, RUNNING, "another-running-task"]
            .map(String::from)
            .into();
        assert_eq!(published(&sets, &t, &prod(), &running).unwrap(), 2);
        assert_eq!(published(&sets, &t, &prod(), &HashSet::new()).unwrap(), 0);
    }

    #[test]
    fn a_task_list_without_this_task_is_not_trusted() {
        let t = Template::parse("DNS_SET_IDENTIFIER", "{cluster}/{task_id}").unwrap();
        let sets = vec![set(&format!("prod/{GONE}"))];
        let e = stale(&sets, &t, &prod(), &HashSet::new(), ME).unwrap_err();
        assert!(e.message.contains("does not list this task"), "{e}");
    }

    #[test]
    fn templates_must_name_the_cluster_and_somewhere_the_region() {
        let p = |s: &str| Template::parse("X", s).unwrap();
        let regional = p("jumpbox.{region}.example.com");
        let global = p("jumpbox.example.com");
        assert!(check_templates(&regional, &p("{cluster}/{task_id}")).is_ok());
        assert!(check_templates(&global, &p("{region}/{cluster}/{task_id}")).is_ok());
        let e = check_templates(&global, &p("{cluster}/{task_id}")).unwrap_err();
        assert!(e.message.contains("{region}"), "{e}");
        let e = check_templates(&regional, &p("{task_id}")).unwrap_err();
        assert!(e.message.contains("{cluster}"), "{e}");
        assert!(check_templates(&regional, &p("{cluster}")).is_err());
        assert!(check_templates(&regional, &p("{az}/{cluster}/{task_id}")).is_err());
    }

    #[test]
    fn task_ids_are_recognised_in_both_forms() {
        assert_eq!(task_of(&format!("x-{GONE}-y"), "x-", "-y"), Some(GONE));
        assert_eq!(task_of("x--y", "x-", "-y"), None);
        let uuid = "bfa26362-6814-4d03-9771-334145e490c5";
        assert_eq!(task_of(uuid, "", ""), Some(uuid));
        assert_eq!(task_of("not-a-task-id", "", ""), None);
    }
}
