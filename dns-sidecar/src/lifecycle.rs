//! The whole run: prepare (metadata, names, addresses), publish (UPSERT, INSYNC), watch
//! (periodic ownership check feeding the health state, periodic reconcile, a late INSYNC
//! followed in the background), and clean up on SIGTERM/SIGINT. With
//! key sync configured, its loop ([`crate::keys`]) starts first and runs beside all this until
//! the stop signal; in keys-only mode (no DNS_HOSTED_ZONE_ID) it is the whole run.
//!
//! A stop signal during preparation exits at once (nothing was changed). A stop signal or a
//! failure after the UPSERT was sent runs the same clean-up as a normal stop, so a half-started
//! sidecar never leaves its record behind.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::{OnRecordLost, Plan, Settings};
use crate::discover;
use crate::error::{Error, Result};
use crate::health::{self, State};
use crate::keys::{self, settings::KeySettings, status::KeyStatus};
use crate::metadata::{self, TaskMetadata};
use crate::prune::Scope;
use crate::reconcile::Reconciler;
use crate::template::{check_record_name, check_set_identifier, Vars};
use dns_sidecar_route53::record::{self, OwnedRecord, Ownership};
use dns_sidecar_route53::route53::{Cleanup, Insync, Zone};

/// The AWS clients, built from the standard configuration chain (credentials, endpoints such
/// as AWS_ENDPOINT_URL) with the SDK's own retries off: [`dns_sidecar_route53::retry`] decides.
#[derive(Debug, Clone)]
pub struct Aws {
    pub zone: Zone,
    pub ec2: aws_sdk_ec2::Client,
    pub ecs: aws_sdk_ecs::Client,
}

impl Aws {
    pub async fn load(region: &str, zone_id: &str) -> Self {
        let conf = sdk_config(region).await;
        Aws {
            zone: Zone::new(aws_sdk_route53::Client::new(&conf), zone_id),
            ec2: aws_sdk_ec2::Client::new(&conf),
            ecs: aws_sdk_ecs::Client::new(&conf),
        }
    }
}

/// The AWS configuration every client is built from: the standard chain, `region`, short
/// timeouts, and no SDK retries (the callers decide: Route 53 calls retry with backoff, a
/// failed key read waits for the next interval).
pub async fn sdk_config(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .load()
        .await
}

/// Everything known before the first change.
pub struct Prepared {
    pub meta: Option<TaskMetadata>,
    pub vars: Vars,
    pub region: Option<String>,
    pub records: Vec<OwnedRecord>,
    pub aws: Option<Aws>,
}

pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .user_agent(concat!("dns-sidecar/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            Error::runtime(format!(
                "cannot set up the HTTP client: {} (no TLS root certificates? the image ships \
                 them at /etc/ssl/certs/ca-certificates.crt; SSL_CERT_FILE names the bundle)",
                metadata::error_chain(&e)
            ))
        })
}

/// Read the task metadata when it is configured or needed.
pub async fn task_metadata(
    settings: &Settings,
    http: &reqwest::Client,
    deadline: Instant,
    needed_for: Option<&str>,
) -> Result<Option<TaskMetadata>> {
    match (&settings.metadata_uri, needed_for) {
        (Some(uri), _) => {
            let meta = metadata::fetch(http, uri, deadline).await?;
            info!(event = "metadata", cluster = %meta.cluster, task_id = %meta.task_id,
                  family = %meta.family, az = meta.availability_zone.as_deref().unwrap_or(""),
                  private_ipv4 = %meta.private_ipv4.map(|i| i.to_string()).unwrap_or_default(),
                  "task metadata read");
            Ok(Some(meta))
        }
        (None, Some(why)) => Err(Error::config(format!(
            "ECS_CONTAINER_METADATA_URI_V4 is not set, and {why} needs the task metadata (ECS \
             sets it in every container; outside ECS set DNS_IP and AWS_REGION)"
        ))),
        (None, None) => Ok(None),
    }
}

/// Metadata, names, AWS clients, addresses: everything but the change itself.
pub async fn prepare(
    settings: &Settings,
    http: &reqwest::Client,
    deadline: Instant,
) -> Result<Prepared> {
    let uses_ec2 =
        settings.explicit_ips.is_empty() && settings.ip_source != crate::config::IpSource::Echo;
    let needed_for = if settings.record_name.needs_metadata() {
        Some("DNS_RECORD_NAME's template")
    } else if settings
        .set_identifier
        .as_ref()
        .is_some_and(|t| t.needs_metadata())
    {
        Some("DNS_SET_IDENTIFIER's template")
    } else if uses_ec2 {
        Some("finding the public IP through EC2")
    } else {
        None
    };
    let meta = task_metadata(settings, http, deadline, needed_for).await?;
    let region = settings
        .region
        .clone()
        .or_else(|| meta.as_ref().and_then(|m| m.region.clone()));
    let vars = match &meta {
        Some(m) => m.vars(region.as_deref()),
        None => Vars {
            region: region.clone(),
            ..Vars::default()
        },
    };
    let name = check_record_name("DNS_RECORD_NAME", &settings.record_name.render(&vars)?)?;
    let set_identifier = match &settings.set_identifier {
        Some(t) => Some(check_set_identifier(
            "DNS_SET_IDENTIFIER",
            &t.render(&vars)?,
        )?),
        None => None,
    };
    let needs_aws = !settings.dry_run || uses_ec2;
    let aws = match (&region, needs_aws) {
        (Some(r), true) => Some(Aws::load(r, &settings.zone_id).await),
        (None, true) => {
            return Err(Error::config(
                "AWS_REGION is not set and there is no task metadata to take the region from",
            ))
        }
        (_, false) => None,
    };
    let found = discover::addresses(
        settings,
        meta.as_ref(),
        aws.as_ref().map(|a| &a.ec2),
        http,
        deadline,
    )
    .await?;
    let mut records = Vec::new();
    for f in found {
        info!(event = "discovered", ip = %f.ip, source = f.source, "address found");
        records.push(OwnedRecord {
            name: name.clone(),
            rtype: dns_sidecar_route53::address::RecordType::of(f.ip),
            ttl: settings.ttl,
            value: f.ip,
            set_identifier: set_identifier.clone(),
        });
    }
    Ok(Prepared {
        meta,
        vars,
        region,
        records,
        aws,
    })
}

/// SIGTERM (what ECS sends) and SIGINT (Ctrl-C).
pub struct Stop {
    term: Signal,
    int: Signal,
}

impl Stop {
    pub fn install() -> Result<Self> {
        let make = |kind| {
            signal(kind).map_err(|e| Error::runtime(format!("cannot install signal handlers: {e}")))
        };
        Ok(Stop {
            term: make(SignalKind::terminate())?,
            int: make(SignalKind::interrupt())?,
        })
    }

    /// Wait for either signal; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The main command. `started` is the process start, for the timing in the logs.
pub async fn run(plan: Plan, started: Instant) -> Result<()> {
    let mut stop = Stop::install()?;
    let http = http_client()?;
    if let Some(settings) = plan.dns.as_ref().filter(|s| s.dry_run) {
        return dry_run(settings, &http, &mut stop).await;
    }
    let listener = health::bind(plan.health_listen).await?;
    let keys = match &plan.keys {
        None => None,
        Some(k) => match start_keys(&plan, k, &http, &mut stop).await? {
            Some(sync) => Some(sync),
            None => return Ok(()), // stopped while finding the region
        },
    };
    let (state_tx, state_rx) = watch::channel(State::Starting);
    tokio::spawn(health::serve(
        listener,
        plan.dns.is_some().then_some(state_rx),
        keys.as_ref().map(|(_, rx)| rx.clone()),
    ));
    let result = match &plan.dns {
        Some(settings) => {
            let stay = keys.is_some();
            publish_and_watch(settings, &http, started, &state_tx, &mut stop, stay).await
        }
        None => {
            let sig = stop.recv().await;
            info!(event = "stopping", signal = sig, "stopping the key sync");
            Ok(())
        }
    };
    if let Some((sync, _)) = keys {
        sync.abort();
    }
    result
}

/// The key sync's region (AWS_REGION, else the task's, from the metadata), then its loop.
/// `None` when a stop signal came first.
async fn start_keys(
    plan: &Plan,
    settings: &KeySettings,
    http: &reqwest::Client,
    stop: &mut Stop,
) -> Result<Option<(JoinHandle<()>, watch::Receiver<KeyStatus>)>> {
    let region = match (&plan.region, &plan.metadata_uri) {
        (Some(r), _) => r.clone(),
        (None, Some(uri)) => {
            let deadline = Instant::now() + plan.timeout;
            let meta = tokio::select! {
                m = metadata::fetch(http, uri, deadline) => m?,
                sig = stop.recv() => {
                    info!(event = "stopped", signal = sig, "stopped before the key sync started");
                    return Ok(None);
                }
            };
            meta.region.ok_or_else(|| {
                Error::config("AWS_REGION is not set and the task ARN holds no region")
            })?
        }
        (None, None) => {
            return Err(Error::config(
                "AWS_REGION is not set and there is no task metadata to take the region from \
                 (the key sync needs it)",
            ))
        }
    };
    let conf = sdk_config(&region).await;
    keys::start(settings.clone(), &conf).map(Some)
}

/// [`prepare`], or `None` when a stop signal comes first (nothing was changed).
async fn prepare_or_stop(
    settings: &Settings,
    http: &reqwest::Client,
    deadline: Instant,
    stop: &mut Stop,
) -> Result<Option<Prepared>> {
    tokio::select! {
        p = prepare(settings, http, deadline) => p.map(Some),
        sig = stop.recv() => {
            info!(event = "stopped", signal = sig, "stopped before anything was published");
            Ok(None)
        }
    }
}

/// `--dry-run`: prepare, print the change batch, change nothing.
async fn dry_run(settings: &Settings, http: &reqwest::Client, stop: &mut Stop) -> Result<()> {
    let deadline = Instant::now() + settings.timeout;
    let Some(prepared) = prepare_or_stop(settings, http, deadline, stop).await? else {
        return Ok(());
    };
    let comment = record::comment(prepared.meta.as_ref().map(|m| m.task_id.as_str()));
    print_dry_run(&settings.zone_id, &prepared.records, &comment)
}

/// Publish the record, watch it until a stop signal, clean up. With `stay` (key sync runs
/// beside it), DNS_DELETE_ON_EXIT=false waits for the stop signal instead of exiting.
async fn publish_and_watch(
    settings: &Settings,
    http: &reqwest::Client,
    started: Instant,
    state_tx: &watch::Sender<State>,
    stop: &mut Stop,
    stay: bool,
) -> Result<()> {
    let deadline = Instant::now() + settings.timeout;
    let Some(prepared) = prepare_or_stop(settings, http, deadline, stop).await? else {
        return Ok(());
    };
    let comment = record::comment(prepared.meta.as_ref().map(|m| m.task_id.as_str()));
    let aws = prepared
        .aws
        .clone()
        .ok_or_else(|| Error::runtime("internal: no AWS clients for a real run"))?;
    if settings.prune {
        prune_at_start(settings, &prepared, &aws, deadline).await;
    }
    let publication = Publication {
        settings,
        zone: &aws.zone,
        records: &prepared.records,
        comment,
        started,
    };
    let Some((described, slow)) = publication.publish(deadline, stop).await? else {
        return Ok(()); // stopped while publishing, and cleaned up
    };
    state_tx.send_replace(State::Published(described));
    let mut background = Background::default();
    if let Some((change, since)) = slow {
        background.spawn(crate::insync::follow(aws.zone.clone(), change, since));
    }
    match reconciler(settings, &prepared, &aws) {
        Some(r) => background.spawn(r.run()),
        None => info!(
            event = "reconcile_off",
            reason = settings
                .reconcile_off
                .as_deref()
                .unwrap_or("DNS_RECONCILE_INTERVAL=0"),
            "no periodic reconcile"
        ),
    }
    if !settings.delete_on_exit {
        if !stay {
            info!(
                event = "exiting",
                "DNS_DELETE_ON_EXIT=false: the record stays; exiting"
            );
            return Ok(());
        }
        let sig = stop.recv().await;
        info!(
            event = "stopping",
            signal = sig,
            "DNS_DELETE_ON_EXIT=false: the record stays; stopping the key sync"
        );
        return Ok(());
    }
    let sig = watch_until_stop(&aws.zone, publication.records, settings, state_tx, stop).await;
    info!(
        event = "stopping",
        signal = sig,
        "removing the record if it is still ours"
    );
    state_tx.send_replace(State::Stopping);
    publication.cleanup().await
}

/// Tasks that run beside the watch (reconcile, a late INSYNC), aborted when dropped.
#[derive(Default)]
struct Background(Vec<JoinHandle<()>>);

impl Background {
    fn spawn(&mut self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(f));
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The periodic reconcile, when it is on and this is a multivalue record of an ECS task.
fn reconciler(settings: &Settings, prepared: &Prepared, aws: &Aws) -> Option<Reconciler> {
    if settings.reconcile_interval.is_zero() {
        return None;
    }
    let meta = prepared.meta.as_ref()?;
    Some(Reconciler {
        zone: aws.zone.clone(),
        ecs: aws.ecs.clone(),
        name: prepared.records.first()?.name.clone(),
        types: settings.record_types.clone(),
        template: settings.set_identifier.clone()?,
        vars: prepared.vars.clone(),
        cluster: meta.cluster.clone(),
        own_task: meta.task_id.clone(),
        interval: settings.reconcile_interval,
    })
}

/// `--dry-run`: the change batch as JSON on stdout.
fn print_dry_run(zone_id: &str, records: &[OwnedRecord], comment: &str) -> Result<()> {
    let batch = record::dry_run_json(zone_id, records, comment);
    let text = serde_json::to_string_pretty(&batch)
        .map_err(|e| Error::runtime(format!("printing the change batch: {e}")))?;
    println!("{text}");
    Ok(())
}

/// How the wait for `INSYNC` after the UPSERT went.
enum Waited {
    /// DNS_WAIT_INSYNC=false.
    Skipped,
    /// `INSYNC` after this many milliseconds.
    Done(u64),
    /// Not `INSYNC` by the deadline: its last status; `since` the UPSERT was accepted.
    Slow { status: String, since: Instant },
}

/// The records of one real run, and where and how they are published.
struct Publication<'a> {
    settings: &'a Settings,
    zone: &'a Zone,
    records: &'a [OwnedRecord],
    comment: String,
    /// The process start, for the timing in the logs.
    started: Instant,
}

impl Publication<'_> {
    /// The UPSERT, then (with `DNS_WAIT_INSYNC`) the wait for `INSYNC`, unless a stop signal
    /// comes first. `Some(description of the records, the change and when it was accepted if
    /// it is not INSYNC yet)` once published; `None` when stopped (after the clean-up). A
    /// failure also runs the clean-up first: the UPSERT may have landed. Not INSYNC by the
    /// deadline is no failure: Route 53 accepted the change (`insync_slow`).
    async fn publish(
        &self,
        deadline: Instant,
        stop: &mut Stop,
    ) -> Result<Option<(String, Option<(String, Instant)>)>> {
        let described = self
            .records
            .iter()
            .map(OwnedRecord::describe)
            .collect::<Vec<_>>()
            .join("; ");
        info!(event = "upsert", records = %described, zone = %self.settings.zone_id,
              ms_since_start = self.started.elapsed().as_millis() as u64,
              "sending the UPSERT to Route 53");
        let outcome = tokio::select! {
            r = self.upsert_and_wait(deadline) => Some(r),
            sig = stop.recv() => {
                info!(event = "stopping", signal = sig, "stop signal while publishing");
                None
            }
        };
        match outcome {
            Some(Ok((change, waited))) => {
                let insync_ms = match &waited {
                    Waited::Done(ms) => Some(*ms),
                    _ => None,
                };
                self.log_published(&change, insync_ms);
                let slow = match waited {
                    Waited::Slow { status, since } => {
                        warn!(event = "insync_slow", change_id = %change, status = %status,
                              waited_ms = since.elapsed().as_millis() as u64,
                              "Route 53 accepted the change but it is not INSYNC within \
                               DNS_TIMEOUT; the record is published (INSYNC only means every \
                               Route 53 server has it): reporting healthy and checking in the \
                               background");
                        Some((change, since))
                    }
                    _ => None,
                };
                Ok(Some((described, slow)))
            }
            Some(Err(e)) => {
                let _ = self.cleanup().await;
                Err(e)
            }
            None => self.cleanup().await.map(|()| None),
        }
    }

    /// The change id, and how the wait for `INSYNC` went.
    async fn upsert_and_wait(&self, deadline: Instant) -> Result<(String, Waited)> {
        let change = self
            .zone
            .upsert(self.records, &self.comment, deadline)
            .await?;
        let since = Instant::now();
        if !self.settings.wait_insync {
            return Ok((change, Waited::Skipped));
        }
        let waited = match self.zone.poll_insync(&change, deadline).await? {
            Insync::Done(took) => Waited::Done(took.as_millis() as u64),
            Insync::NotYet { status, .. } => Waited::Slow { status, since },
        };
        Ok((change, waited))
    }

    /// One `published` event per record.
    fn log_published(&self, change: &str, insync_ms: Option<u64>) {
        for r in self.records {
            info!(event = "published", name = %r.name, r#type = r.rtype.as_str(),
                  ip = %r.value, ttl = r.ttl,
                  set_identifier = r.set_identifier.as_deref().unwrap_or(""),
                  change_id = %change, insync_ms,
                  ms_since_start = self.started.elapsed().as_millis() as u64,
                  "record published");
        }
    }

    async fn cleanup(&self) -> Result<()> {
        cleanup(
            self.zone,
            self.records,
            &self.comment,
            self.settings.stop_timeout,
        )
        .await
    }
}

async fn prune_at_start(settings: &Settings, prepared: &Prepared, aws: &Aws, deadline: Instant) {
    let (Some(meta), Some(template), Some(first)) = (
        prepared.meta.as_ref(),
        settings.set_identifier.as_ref(),
        prepared.records.first(),
    ) else {
        warn!(
            event = "prune_skipped",
            "DNS_PRUNE needs the task metadata and DNS_SET_IDENTIFIER"
        );
        return;
    };
    let scope = Scope {
        zone: &aws.zone,
        ecs: &aws.ecs,
        name: &first.name,
        types: &settings.record_types,
        template,
        vars: &prepared.vars,
        cluster: &meta.cluster,
        own_task: &meta.task_id,
    };
    match crate::prune::prune(&scope, deadline).await {
        Ok(done) => log_pruned(&first.name, &done),
        Err(e) => {
            warn!(event = "prune_failed", error = %e, "pruning stale records failed; publishing anyway")
        }
    }
}

/// The `prune` event of one prune at start or by the command.
fn log_pruned(name: &str, done: &crate::prune::Pruned) {
    info!(event = "prune", name, checked = done.checked, deleted = done.deleted.len(),
          set_identifiers = ?done.deleted, "this cluster's values of tasks that no longer run removed");
}

/// Idle until a stop signal, checking every `DNS_VERIFY_INTERVAL` that the record is ours.
async fn watch_until_stop(
    zone: &Zone,
    records: &[OwnedRecord],
    settings: &Settings,
    state: &watch::Sender<State>,
    stop: &mut Stop,
) -> &'static str {
    loop {
        let tick = async {
            if settings.verify_interval.is_zero() {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(settings.verify_interval).await
            }
        };
        tokio::select! {
            sig = stop.recv() => return sig,
            _ = tick => {}
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        match zone.check(records, deadline).await {
            Ok(results) => {
                let lost: Vec<String> = records
                    .iter()
                    .zip(&results)
                    .filter_map(|(r, o)| match o {
                        Ownership::Ours(_) => None,
                        Ownership::Gone => Some(format!("{} was deleted", r.describe())),
                        Ownership::Changed(why) => Some(format!("{}: {why}", r.describe())),
                    })
                    .collect();
                let next = if lost.is_empty() {
                    State::Published(
                        records
                            .iter()
                            .map(OwnedRecord::describe)
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                } else if settings.on_record_lost == OnRecordLost::Warn {
                    State::LostTolerated(lost.join("; "))
                } else {
                    State::Lost(lost.join("; "))
                };
                if next != *state.borrow() {
                    match &next {
                        State::Lost(why) => warn!(event = "record_lost", reason = %why,
                            on_record_lost = "unhealthy",
                            "the record no longer holds this task's address; not fighting over \
                             it (health check fails until it does: DNS_ON_RECORD_LOST=unhealthy)"),
                        State::LostTolerated(why) => warn!(event = "record_lost", reason = %why,
                            on_record_lost = "warn",
                            "the record no longer holds this task's address; not fighting over \
                             it (health check stays ok: DNS_ON_RECORD_LOST=warn)"),
                        _ => info!(
                            event = "record_ours_again",
                            "the record holds this task's address again"
                        ),
                    }
                    state.send_replace(next);
                }
            }
            Err(e) => {
                warn!(event = "verify_failed", error = %e, "could not check the record; will retry")
            }
        }
    }
}

/// Delete our records if still ours, within `limit`. Logs one event per record.
pub async fn cleanup(
    zone: &Zone,
    records: &[OwnedRecord],
    comment: &str,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    let results = zone
        .delete_if_ours(records, comment, deadline)
        .await
        .map_err(|e| Error::from(e).context("removing the record at stop"))?;
    for r in results {
        match r {
            Cleanup::Deleted(rec) => {
                info!(event = "deleted", record = %rec.describe(), "record deleted")
            }
            Cleanup::Gone(rec) => {
                info!(event = "already_gone", record = %rec.describe(), "record already gone; nothing to delete")
            }
            Cleanup::LeftUntouched(rec, why) => {
                info!(event = "left_untouched", record = %rec.describe(), reason = %why,
                      "the record is no longer ours; left untouched")
            }
        }
    }
    Ok(())
}

/// `dns-sidecar prune`.
pub async fn prune_command(settings: Settings) -> Result<()> {
    let http = http_client()?;
    let deadline = Instant::now() + settings.timeout;
    let template = settings.set_identifier.clone().ok_or_else(|| {
        Error::config(
            "prune needs DNS_SET_IDENTIFIER (e.g. {cluster}/{task_id}): only multivalue records \
             say which cluster and task own them",
        )
    })?;
    crate::prune::check_templates(&settings.record_name, &template)?;
    let meta = task_metadata(&settings, &http, deadline, Some("prune (the cluster name)"))
        .await?
        .ok_or_else(|| Error::config("prune needs ECS_CONTAINER_METADATA_URI_V4"))?;
    let region = settings
        .region
        .clone()
        .or_else(|| meta.region.clone())
        .ok_or_else(|| Error::config("AWS_REGION is not set and the task ARN holds no region"))?;
    let vars = meta.vars(Some(&region));
    let name = check_record_name("DNS_RECORD_NAME", &settings.record_name.render(&vars)?)?;
    let aws = Aws::load(&region, &settings.zone_id).await;
    let scope = Scope {
        zone: &aws.zone,
        ecs: &aws.ecs,
        name: &name,
        types: &settings.record_types,
        template: &template,
        vars: &vars,
        cluster: &meta.cluster,
        own_task: &meta.task_id,
    };
    let done = crate::prune::prune(&scope, deadline).await?;
    log_pruned(&name, &done);
    Ok(())
}
